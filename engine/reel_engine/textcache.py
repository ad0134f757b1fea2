"""Text embeddings, computed once per distinct text and kept.

Most jobs of a batch share their negative prompt, and retries and styles repeat whole prompts, so the umT5 encoder
(5.7 B parameters for the real models) need not run for every job. WanPipeline.encode_prompt encodes the prompt and
the negative prompt with separate calls of `_get_t5_prompt_embeds`, one text each, so an embedding cached per text
is exactly what the pipeline would have computed.

Where the encoder lives is the model's text placement (placement.py):
- `resident`: on the model's device with the other components;
- `device`: on another device of its own (`--text-device`, the split layout), which encodes the next job's prompt
  (`prepare`) while the model's device denoises the current one;
- `offload`: in host memory, moved to the model's device only to encode, then back (memory budgets).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future

import torch

log = logging.getLogger("reel_engine.textcache")

MAX_SEQUENCE_LENGTH = 512  # WanPipeline.__call__'s default
DEFAULT_CAPACITY = 64  # entries; one is 512 x 4096 bf16 = 4 MiB for the real encoder


def _t5_prompt_embeds(pipe, text: str, device: torch.device) -> torch.Tensor:
    """One text's embedding by WanPipeline's `_get_t5_prompt_embeds`, for every model, the WanImageToVideoPipeline
    of I2V-A14B included: WanImageToVideoPipeline's copy of it is the same code, except that its prompt cleaning
    calls `ftfy.fix_text` whether or not ftfy is installed (diffusers 0.42.1 pipeline_wan_i2v.py `basic_clean`; in
    pipeline_wan.py the call is guarded by `is_ftfy_available()`), so without ftfy it raises NameError."""
    from diffusers import WanPipeline

    return WanPipeline._get_t5_prompt_embeds(pipe, prompt=[text], num_videos_per_prompt=1,
                                             max_sequence_length=MAX_SEQUENCE_LENGTH, device=device)


class TextEmbeddings:
    """An LRU cache of per-text embeddings on the model's device, in the transformer's dtype.

    `get` returns (embedding, cached); concurrent requests for one text encode it once. Encoding itself is
    serialised: one encoder, one call at a time."""

    def __init__(self, pipe, target_device: torch.device, target_dtype: torch.dtype, placement: str = "resident",
                 encode_device: torch.device | None = None, capacity: int = DEFAULT_CAPACITY):
        self.pipe = pipe
        self.target_device, self.target_dtype = target_device, target_dtype
        self.placement = placement
        self.encode_device = encode_device or target_device
        self.capacity = capacity
        self._entries: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._pending: dict[str, Future] = {}
        self._lock = threading.Lock()
        self._encoder_lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.encode_seconds = 0.0

    def get(self, text: str) -> tuple[torch.Tensor, bool]:
        """The embedding of `text` (1, 512, dim) on the target device; `cached` is True when no encoding ran."""
        with self._lock:
            entry = self._entries.get(text)
            if entry is not None:
                self._entries.move_to_end(text)
                self.hits += 1
                return entry, True
            future = self._pending.get(text)
            owner = future is None
            if owner:
                future = Future()
                self._pending[text] = future
        if not owner:
            embedding = future.result()  # another thread (a `prepare`) is encoding it right now
            with self._lock:
                self.hits += 1
            return embedding, True
        try:
            embedding = self._encode(text)
        except BaseException as e:
            with self._lock:
                del self._pending[text]
            future.set_exception(e)
            raise
        with self._lock:
            del self._pending[text]
            self._entries[text] = embedding
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
            self.misses += 1
        future.set_result(embedding)
        return embedding, False

    def prepare(self, texts: list[str]) -> None:
        """Encodes `texts` ahead of the job that will need them (errors are logged, never raised)."""
        for text in texts:
            try:
                self.get(text)
            except Exception:
                log.exception("preparing a text embedding failed; the job will encode it itself")

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __contains__(self, text: str) -> bool:
        with self._lock:
            return text in self._entries

    def offload_to_host(self) -> None:
        """For the `offload` placement: the encoder's weights live in pinned host memory. Encoding copies them to
        the device (fast, from pinned memory) and then simply drops the device copies: nothing is copied back."""
        encoder = self.pipe.text_encoder
        encoder.to("cpu")
        pin = torch.cuda.is_available()
        self._host = {}
        for name, tensor in list(encoder.named_parameters()) + list(encoder.named_buffers()):
            if pin:
                tensor.data = tensor.data.pin_memory()
            self._host[name] = tensor.data

    def _swap(self, to_device: bool) -> None:
        encoder = self.pipe.text_encoder
        for name, tensor in list(encoder.named_parameters()) + list(encoder.named_buffers()):
            host = self._host[name]
            tensor.data = host.to(self.target_device, non_blocking=True) if to_device else host

    def _encode(self, text: str) -> torch.Tensor:
        with self._encoder_lock, torch.no_grad():
            t0 = time.perf_counter()
            if self.placement == "offload":
                self._swap(to_device=True)
                device = self.target_device
            else:
                device = self.encode_device
            try:
                embedding = _t5_prompt_embeds(self.pipe, text, device)
                embedding = embedding.to(device=self.target_device, dtype=self.target_dtype)
                if self.target_device.type == "cuda":
                    torch.cuda.current_stream(self.target_device).synchronize()
            finally:
                if self.placement == "offload":
                    self._swap(to_device=False)
            self.encode_seconds += time.perf_counter() - t0
        return embedding

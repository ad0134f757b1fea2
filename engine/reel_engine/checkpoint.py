"""Denoising checkpoints: save the loop's state every N steps into the job directory, resume a retried job from it.

A checkpoint holds everything the denoising loop carries from one step to the next: the latents and the scheduler's
whole mutable state (for diffusers' UniPCMultistepScheduler: `_step_index`, `model_outputs`, `timestep_list`,
`last_sample`, `lower_order_nums`, `this_order`, `sigmas`, `timesteps`, …: every attribute of the scheduler but
its config is saved and restored as it was). The loop draws no random numbers after the initial noise (UniPC is a
deterministic solver, and Wan's flow-matching use of it adds no noise), so no RNG state is needed: a resumed job
produces exactly the frames of an uninterrupted one (tests/test_checkpoint.py checks it bit for bit).

File format (`checkpoint.pt`, all integers little-endian):

    magic     8 bytes   b"REELCKPT"
    format    u32       FORMAT_VERSION
    H         u32       header length
    P         u64       payload length
    header    H bytes   UTF-8 JSON: {"identity": {...}, "step": S, "total": N, "expert": "transformer"|"transformer_2"}
    payload   P bytes   torch.save({"latents": tensor, "scheduler": {name: value}}), tensors on the CPU
    sha256    32 bytes  SHA-256 of everything before it

The trailing SHA-256 makes a truncated or corrupted file detectable before anything in it is trusted; the payload is
then read with `torch.load(weights_only=True)`, which unpickles tensors and plain containers only. A checkpoint is
used only when its identity (model, architecture, device kind, dtype, software versions, loop version, seed, size,
frames, steps, guidance(s) and a SHA-256 of prompt and negative prompt) equals the request's.

Writing: the tensors are copied to the CPU on the loop's thread (on CUDA this is one device-to-host copy of a few
tensors; the step has already synchronised), then serialised, hashed, written to `.checkpoint.pt.tmp`, fsync'd and
renamed over `checkpoint.pt` on a background thread. A save that comes due while the previous one is still being
written waits for it. A failed write is logged and the job goes on (the previous checkpoint, if any, stays).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any

import torch

from . import PROTOCOL_VERSION, __version__

log = logging.getLogger("reel_engine.checkpoint")

CHECKPOINT_NAME = "checkpoint.pt"
TMP_NAME = f".{CHECKPOINT_NAME}.tmp"
MAGIC = b"REELCKPT"
FORMAT_VERSION = 1
# Bump when pipeline.py's denoising loop changes what it computes: older checkpoints are then rejected.
LOOP_VERSION = 1
_PREFIX = struct.Struct("<8sIIQ")
_DIGEST_SIZE = 32
MAX_HEADER_BYTES = 1 << 20
# Scheduler attributes that are configuration, not state.
_SKIP_ATTRIBUTES = ("_internal_dict",)


class CheckpointRejected(Exception):
    """A checkpoint that cannot be used; the message is the `reason` of the `checkpoint_rejected` event."""


@dataclass
class Resume:
    """A verified checkpoint: the state after `step` of `total` finished denoising steps."""

    step: int
    total: int
    expert: str
    latents: torch.Tensor  # on the CPU
    scheduler_state: dict
    path: str


# ---------------------------------------------------------------------------------------------------------------
# Identity


def prompt_sha256(prompt: str, negative_prompt: str) -> str:
    return hashlib.sha256(json.dumps([prompt, negative_prompt], ensure_ascii=False).encode("utf-8")).hexdigest()


def _device_kind(device: torch.device) -> str:
    """Bit-exactness holds on one kind of device: the CPU, or one GPU model (not a GPU index)."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return device.type


def identity(model, *, prompt: str, negative_prompt: str, width: int, height: int, frames: int, steps: int,
             guidance: float, guidance_2: float | None, seed: int) -> dict:
    """What a checkpoint must match to be resumed: the job's inputs and everything that changes the computation."""
    import diffusers

    from .models import A14B, TINY_RECIPE_VERSION

    if model.architecture == A14B and guidance_2 is None:
        guidance_2 = guidance
    if model.architecture != A14B:
        guidance_2 = None
    scheduler_config = json.dumps(dict(model.pipe.scheduler.config), sort_keys=True, default=str)
    return {
        "engine": __version__,
        "protocol": PROTOCOL_VERSION,
        "loop": LOOP_VERSION,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "model": model.name,
        "model_path": model.path,
        "architecture": model.architecture,
        "tiny_recipe": TINY_RECIPE_VERSION if model.name.startswith("tiny") else None,
        "scheduler_config_sha256": hashlib.sha256(scheduler_config.encode("utf-8")).hexdigest(),
        "device": _device_kind(model.device),
        "dtype": model.dtype_name,
        "seed": seed,
        "width": width,
        "height": height,
        "frames": frames,
        "steps": steps,
        "guidance": float(guidance),
        "guidance_2": float(guidance_2) if guidance_2 is not None else None,
        "prompt_sha256": prompt_sha256(prompt, negative_prompt),
    }


def request_identity(model, req) -> dict:
    return identity(model, prompt=req.prompt, negative_prompt=req.negative_prompt, width=req.width,
                    height=req.height, frames=req.frames, steps=req.steps, guidance=req.guidance,
                    guidance_2=req.guidance_2, seed=req.seed)


def _differences(saved: Any, expected: dict) -> list[str]:
    if not isinstance(saved, dict):
        return ["identity"]
    out = []
    for key in sorted(set(saved) | set(expected)):
        if saved.get(key, "<absent>") != expected.get(key, "<absent>"):
            if key == "prompt_sha256":
                out.append("prompt or negative prompt differs")
            else:
                out.append(f"{key} is {json.dumps(saved.get(key))} in the checkpoint, "
                           f"{json.dumps(expected.get(key))} in the request")
    return out


# ---------------------------------------------------------------------------------------------------------------
# Scheduler state


def _encode(value: Any, where: str) -> Any:
    """A CPU copy of one scheduler attribute; tensors remember their device type."""
    if isinstance(value, torch.Tensor):
        return {"__tensor__": value.detach().to("cpu", copy=True), "device": value.device.type}
    if isinstance(value, list):
        return [_encode(v, where) for v in value]
    if isinstance(value, tuple):
        return tuple(_encode(v, where) for v in value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"scheduler attribute {where} of type {type(value).__name__} cannot be checkpointed")


def _decode(value: Any, device: torch.device) -> Any:
    if isinstance(value, dict):
        tensor = value["__tensor__"]
        return tensor if value["device"] == "cpu" else tensor.to(device)
    if isinstance(value, list):
        return [_decode(v, device) for v in value]
    if isinstance(value, tuple):
        return tuple(_decode(v, device) for v in value)
    return value


def scheduler_state(scheduler) -> dict:
    """Every attribute of the scheduler but its config, copied to the CPU."""
    return {name: _encode(value, name) for name, value in vars(scheduler).items() if name not in _SKIP_ATTRIBUTES}


def restore_scheduler(scheduler, state: dict, device: torch.device) -> None:
    """Puts a saved state into a scheduler of the same class and config (tensors that were on the accelerator go
    to `device`)."""
    for name, value in state.items():
        setattr(scheduler, name, _decode(value, device))


# ---------------------------------------------------------------------------------------------------------------
# File format


def checkpoint_parts(header: dict, payload: dict) -> list:
    """The file's bytes as a list of pieces (no copy of the serialised tensors is made to join them)."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getbuffer()
    head = json.dumps(header, ensure_ascii=False, sort_keys=True).encode("utf-8")
    parts = [_PREFIX.pack(MAGIC, FORMAT_VERSION, len(head), len(body)), head, body]
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return parts + [digest.digest()]


def encode_checkpoint(header: dict, payload: dict) -> bytes:
    return b"".join(checkpoint_parts(header, payload))


def decode_checkpoint(data: bytes) -> tuple[dict, bytes]:
    """(header, payload bytes) of a checkpoint file's bytes, or CheckpointRejected if it is not intact."""
    if len(data) < _PREFIX.size + _DIGEST_SIZE:
        raise CheckpointRejected(f"corrupt: truncated ({len(data)} bytes)")
    magic, version, header_len, payload_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise CheckpointRejected("corrupt: not a Reel checkpoint (bad magic bytes)")
    expected_len = _PREFIX.size + header_len + payload_len + _DIGEST_SIZE
    if len(data) != expected_len:
        raise CheckpointRejected(f"corrupt: truncated or extended ({len(data)} bytes, expected {expected_len})")
    if hashlib.sha256(data[:-_DIGEST_SIZE]).digest() != data[-_DIGEST_SIZE:]:
        raise CheckpointRejected("corrupt: SHA-256 checksum mismatch")
    if version != FORMAT_VERSION:
        raise CheckpointRejected(f"unsupported checkpoint format {version} (this engine reads {FORMAT_VERSION})")
    if header_len > MAX_HEADER_BYTES:
        raise CheckpointRejected(f"corrupt: header of {header_len} bytes")
    start = _PREFIX.size
    try:
        header = json.loads(data[start:start + header_len].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CheckpointRejected(f"corrupt: unreadable header ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointRejected("corrupt: header is not an object")
    return header, data[start + header_len:-_DIGEST_SIZE]


def load(path: str, expected_identity: dict, latent_shape: tuple[int, ...]) -> Resume:
    """Reads and verifies a checkpoint for a request; raises CheckpointRejected saying why it cannot be used."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CheckpointRejected(f"unreadable: {e}") from None
    header, body = decode_checkpoint(data)
    differences = _differences(header.get("identity"), expected_identity)
    if differences:
        raise CheckpointRejected("does not match the request: " + "; ".join(differences))
    step, total, expert = header.get("step"), header.get("total"), header.get("expert")
    steps = expected_identity["steps"]
    if not isinstance(step, int) or isinstance(step, bool) or not 1 <= step < steps or total != steps:
        raise CheckpointRejected(f"invalid: step {step} of {total} for a {steps}-step job")
    try:
        payload = torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
        latents, state = payload["latents"], payload["scheduler"]
    except Exception as e:  # the bytes are intact, so this is a file from an incompatible writer
        raise CheckpointRejected(f"invalid payload: {type(e).__name__}: {e}") from None
    if not isinstance(latents, torch.Tensor) or tuple(latents.shape) != tuple(latent_shape):
        shape = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
        raise CheckpointRejected(f"invalid: latents of shape {shape}, expected {tuple(latent_shape)}")
    if latents.dtype != torch.float32:
        raise CheckpointRejected(f"invalid: latents of dtype {latents.dtype}, expected torch.float32")
    if not isinstance(state, dict) or state.get("_step_index") != step:
        raise CheckpointRejected("invalid: the scheduler state is not at the checkpoint's step")
    return Resume(step=step, total=total, expert=str(expert), latents=latents, scheduler_state=state, path=path)


def write_atomically(path: str, parts: list) -> None:
    """Writes the byte strings `parts` to a temporary file in the same directory, fsyncs it, renames it over `path`,
    fsyncs the directory: after a crash `path` holds either the previous checkpoint or this one, whole."""
    directory = os.path.dirname(path)
    tmp = os.path.join(directory, TMP_NAME)
    try:
        with open(tmp, "wb") as f:
            for part in parts:
                f.write(part)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    try:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass  # some filesystems do not fsync directories; the rename itself is atomic


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


# ---------------------------------------------------------------------------------------------------------------
# One job's checkpoints


class Checkpointer:
    """Saves a job's checkpoints every `every` steps (0: never) and carries the state it resumes from, if any."""

    def __init__(self, out_dir: str, identity: dict, every: int = 0, resume: Resume | None = None):
        self.path = os.path.join(out_dir, CHECKPOINT_NAME)
        self.identity = identity
        self.every = every or 0
        self.resume = resume
        self.on_resumed = None  # called with (step, total) right before the first resumed step
        self._thread: threading.Thread | None = None
        self.saves = 0
        self.snapshot_seconds = 0.0  # on the loop's thread: the CPU copies
        self.write_seconds = 0.0  # on the writer thread: serialise, hash, write, fsync, rename
        self.failures = 0

    def due(self, step: int, total: int) -> bool:
        """Whether to save after finished step `step` (1-based): every N steps, never after the last one."""
        return self.every > 0 and step < total and step % self.every == 0

    def save(self, step: int, total: int, latents: torch.Tensor, scheduler, expert: str) -> None:
        """Copies the state to the CPU now and writes it on a background thread."""
        self.flush()  # one write at a time; a slow disk makes the loop wait rather than pile up copies
        t0 = time.perf_counter()
        header = {"identity": self.identity, "step": step, "total": total, "expert": expert}
        payload = {"latents": latents.detach().to("cpu", copy=True), "scheduler": scheduler_state(scheduler)}
        self.snapshot_seconds += time.perf_counter() - t0
        self._thread = threading.Thread(target=self._write, args=(header, payload), name="checkpoint-writer",
                                        daemon=True)
        self._thread.start()

    def _write(self, header: dict, payload: dict) -> None:
        t0 = time.perf_counter()
        try:
            write_atomically(self.path, checkpoint_parts(header, payload))
        except Exception:
            self.failures += 1
            log.exception("writing checkpoint %s (step %d) failed; the job goes on", self.path, header["step"])
            return
        self.saves += 1
        self.write_seconds += time.perf_counter() - t0
        log.debug("checkpoint %s: step %d of %d", self.path, header["step"], header["total"])

    def flush(self) -> None:
        """Waits for the write in flight, if any."""
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()

    def discard(self) -> None:
        """Removes the checkpoint (after the job's outputs exist)."""
        self.flush()
        _remove(self.path)
        _remove(os.path.join(os.path.dirname(self.path), TMP_NAME))


def open_for_job(out_dir: str, expected_identity: dict, latent_shape: tuple[int, ...], every: int | None,
                 rejected=None) -> Checkpointer:
    """The Checkpointer of a job starting in `out_dir`: resumes from a valid checkpoint there; a checkpoint that
    is corrupt or does not match is reported through `rejected(reason)` and deleted."""
    path = os.path.join(out_dir, CHECKPOINT_NAME)
    _remove(os.path.join(out_dir, TMP_NAME))  # a write cut short by a crash
    resume = None
    if os.path.lexists(path):
        try:
            resume = load(path, expected_identity, latent_shape)
        except CheckpointRejected as e:
            log.warning("checkpoint %s rejected: %s", path, e)
            if rejected is not None:
                rejected(str(e))
            try:
                _remove(path)
            except OSError as remove_error:  # a directory under that name, say: it is never read again anyway
                log.warning("cannot remove rejected checkpoint %s: %s", path, remove_error)
        else:
            log.info("resuming from %s: step %d of %d", path, resume.step, resume.total)
    return Checkpointer(out_dir, expected_identity, every or 0, resume)

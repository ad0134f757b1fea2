"""Denoising checkpoints: save the loop's state every N steps into the job directory, resume a retried job from it.

A checkpoint holds everything the denoising loop carries from one step to the next: the latents and the scheduler's
whole mutable state (for diffusers' UniPCMultistepScheduler: `_step_index`, `model_outputs`, `timestep_list`,
`last_sample`, `lower_order_nums`, `this_order`, `sigmas`, `timesteps`, …: every attribute of the scheduler but
its config is saved and restored as it was). The loop draws no random numbers after the initial noise (UniPC is a
deterministic solver, and Wan's flow-matching use of it adds no noise), so no RNG state is needed: a resumed job
produces exactly the frames of an uninterrupted one (tests/test_checkpoint.py checks it bit for bit).

File format: checkpoint_file.py's framing (magic, format version, a JSON header {"identity", "step", "total",
"expert"}, the payload, a SHA-256 of everything before it), around the payload
`torch.save({"latents": tensor, "scheduler": {name: value}})`, tensors on the CPU.

The trailing SHA-256 makes a truncated or corrupted file detectable before anything in it is trusted; the payload is
then read with `torch.load(weights_only=True)`, which unpickles tensors and plain containers only. A checkpoint is
used only when its identity (model, architecture, device kind, dtype, software versions, loop version, seed, size,
frames, steps, guidance(s), a SHA-256 of prompt and negative prompt, each image's SHA-256 and fit, each LoRA's
SHA-256, scale and expert, the sampler and the recipe) equals the request's.

Writing: the tensors are copied to the CPU on the loop's thread (on CUDA this is one device-to-host copy of a few
tensors; the step has already synchronised), then serialised, hashed, written to `.checkpoint.pt.tmp`, fsync'd and
renamed over `checkpoint.pt` on a background thread. A save that comes due while the previous one is still being
written waits for it. A write that fails for want of a writable job directory (full disk, read-only or vanished
directory) fails the job with `disk_full` or `output_unwritable`; any other failed write is logged and the job goes
on (the previous checkpoint, if any, stays).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import torch

from . import PROTOCOL_VERSION, __version__
from .checkpoint_file import (  # noqa: F401 - re-exported: the file format is part of this module's interface
    CHECKPOINT_NAME,
    FORMAT_VERSION,
    MAGIC,
    TMP_NAME,
    BackgroundWriter,
    CheckpointRejected,
    decode_checkpoint,
    frame,
    identity_differences,
    image_identity,
    open_existing,
    prompt_sha256,
    read_checkpoint,
    write_atomically,
)

log = logging.getLogger("reel_engine.checkpoint")

# Bump when pipeline.py's denoising loop changes what it computes: older checkpoints are then rejected.
# 2: image conditioning (TI2V-5B's first frame, I2V-A14B's mask and image latent).
# 3: per-job LoRAs and samplers (the identity's `loras`, `sampler` and `recipe`).
LOOP_VERSION = 3
# Scheduler attributes that are configuration, not state.
_SKIP_ATTRIBUTES = ("_internal_dict",)


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


def _device_kind(device: torch.device) -> str:
    """Bit-exactness holds on one kind of device: the CPU, or one GPU model (not a GPU index)."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return device.type


def identity(model, *, prompt: str, negative_prompt: str, width: int, height: int, frames: int, steps: int,
             guidance: float, guidance_2: float | None, seed: int, image_sha256: str | None = None,
             last_image_sha256: str | None = None, fit: str = "cover", loras=(), sampler=None,
             recipe: str | None = None) -> dict:
    """What a checkpoint must match to be resumed: the job's inputs and everything that changes the computation.
    `loras` are the request's (protocol.LoRARef), identified by SHA-256, scale and expert in request order;
    `sampler` its protocol.SamplerSpec (None: the model's scheduler, whose config is hashed either way)."""
    import diffusers

    from . import loras as lora_files
    from .catalog import TWO_EXPERTS
    from .tiny_models import TINY_RECIPE_VERSION

    if model.architecture in TWO_EXPERTS and guidance_2 is None:
        guidance_2 = guidance
    if model.architecture not in TWO_EXPERTS:
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
        **image_identity(image_sha256, last_image_sha256, fit),
        "loras": lora_files.identity(loras),
        "sampler": sampler.to_json() if sampler is not None else None,
        "recipe": recipe,
    }


def request_identity(model, req) -> dict:
    """The identity of a request; its images' SHA-256 are the request's, which the job has checked against the
    files (images.py) before it looks at a checkpoint."""
    return identity(model, prompt=req.prompt, negative_prompt=req.negative_prompt, width=req.width,
                    height=req.height, frames=req.frames, steps=req.steps, guidance=req.guidance,
                    guidance_2=req.guidance_2, seed=req.seed,
                    image_sha256=req.image.sha256 if req.image is not None else None,
                    last_image_sha256=req.last_image.sha256 if req.last_image is not None else None, fit=req.fit,
                    loras=req.loras, sampler=req.sampler, recipe=req.recipe)


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
# File contents


def checkpoint_parts(header: dict, payload: dict) -> list:
    """The file's bytes as a list of pieces (no copy of the serialised tensors is made to join them)."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return frame(header, buffer.getbuffer())


def encode_checkpoint(header: dict, payload: dict) -> bytes:
    return b"".join(checkpoint_parts(header, payload))


def load(path: str, expected_identity: dict, latent_shape: tuple[int, ...]) -> Resume:
    """Reads and verifies a checkpoint for a request; raises CheckpointRejected saying why it cannot be used."""
    header, body = read_checkpoint(path, expected_identity)
    step, total, expert = header["step"], header["total"], header.get("expert")
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
        self.writer = BackgroundWriter(self.path)
        self.snapshot_seconds = 0.0  # on the loop's thread: the CPU copies

    @property
    def saves(self) -> int:
        return self.writer.saves

    @property
    def failures(self) -> int:
        return self.writer.failures

    @property
    def write_seconds(self) -> float:
        return self.writer.write_seconds

    def due(self, step: int, total: int) -> bool:
        """Whether to save after finished step `step` (1-based): every N steps, never after the last one."""
        return self.every > 0 and step < total and step % self.every == 0

    def save(self, step: int, total: int, latents: torch.Tensor, scheduler, expert: str) -> None:
        """Copies the state to the CPU now and writes it on a background thread."""
        self.writer.flush()  # the copies below wait for the previous write, so they never pile up
        t0 = time.perf_counter()
        header = {"identity": self.identity, "step": step, "total": total, "expert": expert}
        payload = {"latents": latents.detach().to("cpu", copy=True), "scheduler": scheduler_state(scheduler)}
        self.snapshot_seconds += time.perf_counter() - t0
        self.writer.start(step, lambda: checkpoint_parts(header, payload))

    def flush(self) -> None:
        """Waits for the write in flight, if any."""
        self.writer.flush()

    def raise_if_failed(self) -> None:
        """Fails the job (OutputError) once a checkpoint could not be written to its directory."""
        self.writer.raise_if_failed()

    def discard(self) -> None:
        """Removes the checkpoint (after the job's outputs exist)."""
        self.writer.discard()


def open_for_job(out_dir: str, expected_identity: dict, latent_shape: tuple[int, ...], every: int | None,
                 rejected=None) -> Checkpointer:
    """The Checkpointer of a job starting in `out_dir`: resumes from a valid checkpoint there; a checkpoint that
    is corrupt or does not match is reported through `rejected(reason)` and deleted."""
    resume = open_existing(out_dir, lambda path: load(path, expected_identity, latent_shape), rejected)
    if resume is not None:
        log.info("resuming from %s: step %d of %d", resume.path, resume.step, resume.total)
    return Checkpointer(out_dir, expected_identity, every or 0, resume)

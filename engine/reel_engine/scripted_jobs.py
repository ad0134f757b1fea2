"""The scripted worker's job runner: the real runner's events, testing hooks, checkpoints and files, with frames that
numpy draws from the request instead of a model computing them. Torch-free.

The stand-in for the denoising loop's state is a 32-byte digest: it starts as the SHA-256 of the job's identity
(seed, size, prompts, …) and every step hashes it with the step number. The frames are drawn from the final digest,
so they depend on every step having run exactly once, and a job resumed from a checkpoint (which saves the digest)
gives the same frames as an uninterrupted one only if the checkpoint really carried the state.

What stays the same as the real runner (jobs.py), through the code both share (jobflow.py, checkpoint_file.py,
media.py, metadata.py, images.py): the order of the events, every testing hook, the checkpoint file's framing, atomic
writing and its rules for resuming and rejecting, the request's images (read, checked against their SHA-256, decoded
and fitted, or refused with the same `bad_request`; their SHA-256 and fit are part of the identity, so another image
gives another video), the MP4 (H.264 through PyAV) and PNG writing, job.json, and the errors a job ends with (a full
disk included). The scripted-only hooks (`malformed_output`, `exit_at_step`,
`result_without_files`) are applied here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import resource
import time
from collections.abc import Callable

import numpy as np

from . import PROTOCOL_VERSION, __version__, checkpoint_file, distributed, images, jobflow, loras, metadata, protocol
from .catalog import TWO_EXPERTS
from .jobflow import Cancelled, Emit, Job

log = logging.getLogger("reel_engine.scripted_jobs")

LOOP_VERSION = "scripted-2"  # 2: the identity's loras, sampler and recipe
STATE_BYTES = 32
INTERPOLATION_METHOD = "scripted (frames drawn at fps*k)"
MALFORMED_LINE = b"this line is not an event (debug.malformed_output)\n"


def identity(model, req: protocol.GenerateRequest) -> dict:
    """What a scripted checkpoint must match to be resumed: the request's fields that decide the frames, and the
    model and device, as in the real engine's identity (checkpoint.identity)."""
    guidance_2 = None
    if model.architecture in TWO_EXPERTS:
        guidance_2 = float(req.guidance_2 if req.guidance_2 is not None else req.guidance)
    return {
        "engine": __version__,
        "protocol": PROTOCOL_VERSION,
        "loop": LOOP_VERSION,
        "scripted": True,
        "model": model.name,
        "model_path": model.path,
        "architecture": model.architecture,
        "device": model.device.split(":")[0],
        "dtype": model.dtype_name,
        "seed": req.seed,
        "width": req.width,
        "height": req.height,
        "frames": req.frames,
        "steps": req.steps,
        "guidance": float(req.guidance),
        "guidance_2": guidance_2,
        "prompt_sha256": checkpoint_file.prompt_sha256(req.prompt, req.negative_prompt),
        **checkpoint_file.image_identity(req.image.sha256 if req.image is not None else None,
                                         req.last_image.sha256 if req.last_image is not None else None, req.fit),
        "loras": loras.identity(req.loras),
        "sampler": req.sampler.to_json() if req.sampler is not None else None,
        "recipe": req.recipe,
    }


def initial_state(job_identity: dict) -> bytes:
    return hashlib.sha256(json.dumps(job_identity, sort_keys=True).encode("utf-8")).digest()


def advance(state: bytes, step: int) -> bytes:
    """The state after denoising step `step` (1-based)."""
    return hashlib.sha256(state + step.to_bytes(4, "little")).digest()


def render(state: bytes, width: int, height: int, times: list[float]) -> np.ndarray:
    """uint8 RGB frames (len(times), height, width, 3): two colours and a drift drawn from `state`, mixed along
    diagonal bands that move with time `t` (in source frames), so a frame at an integer `t` is the same whether the
    video is interpolated or not."""
    rng = np.random.default_rng(int.from_bytes(state[:8], "little"))
    colours = rng.integers(0, 256, size=(2, 3)).astype(np.float32)
    drift = float(rng.uniform(2.0, 8.0))
    tilt = float(rng.uniform(0.2, 1.0))
    x = np.arange(width, dtype=np.float32)[None, :]
    y = np.arange(height, dtype=np.float32)[:, None]
    out = np.empty((len(times), height, width, 3), dtype=np.uint8)
    for i, t in enumerate(times):
        mix = 0.5 + 0.5 * np.sin(2 * np.pi * (x + tilt * y + drift * t) / max(width, height))
        out[i] = np.rint(colours[0] * (1 - mix[..., None]) + colours[1] * mix[..., None])
    return out


class ScriptedCheckpointer:
    """`checkpoint_every` for the scripted worker: the state digest after a step, in checkpoint_file's framing,
    written atomically on a background thread like a real checkpoint."""

    def __init__(self, out_dir: str, job_identity: dict, every: int | None, rejected: Callable[[str], None]):
        self.identity = job_identity
        self.every = every or 0
        self.path = os.path.join(out_dir, checkpoint_file.CHECKPOINT_NAME)
        self.writer = checkpoint_file.BackgroundWriter(self.path)
        self.resume = checkpoint_file.open_existing(out_dir, self._load, rejected)

    def _load(self, path: str) -> tuple[int, bytes]:
        header, body = checkpoint_file.read_checkpoint(path, self.identity)
        if len(body) != STATE_BYTES:
            raise checkpoint_file.CheckpointRejected(f"invalid payload: {len(body)} bytes, expected {STATE_BYTES}")
        return header["step"], bytes(body)

    def due(self, step: int, total: int) -> bool:
        return self.every > 0 and step < total and step % self.every == 0

    def save(self, step: int, total: int, state: bytes) -> None:
        header = {"identity": self.identity, "step": step, "total": total}
        self.writer.start(step, lambda: checkpoint_file.frame(header, state))

    def flush(self) -> None:
        self.writer.flush()

    def raise_if_failed(self) -> None:
        self.writer.raise_if_failed()

    def discard(self) -> None:
        self.writer.discard()


class ScriptedStages(jobflow.Stages):
    """The real stage reporter plus the scripted-only hooks."""

    def __init__(self, job: Job, emit: Emit, hang, checkpoint, write_line: Callable[[bytes], None] | None):
        super().__init__(job, emit, hang, checkpoint)
        self.write_line = write_line

    def after(self, stage: str, step: int) -> None:
        debug = self.job.request.debug
        if debug.malformed_output and stage == "text_encoding" and step == 0 and self.write_line is not None:
            log.warning("job %s: debug.malformed_output, writing a line that is not JSON", self.job.request.job)
            self.write_line(MALFORMED_LINE)
        if stage == "denoising" and debug.exit_at_step == step:
            self.exit(f"debug.exit_at_step={step}", 0)


def run_job(model, job: Job, emit: Emit, hang: Callable[[dict], None] | None = None,
            gpu_done: Callable[[], None] = lambda: None, write_line: Callable[[bytes], None] | None = None) -> dict:
    """Runs `job` as the real runner would, emitting the same events; returns the final event (never raises).
    `write_line` writes a raw stdout line (the malformed-output hook)."""
    return jobflow.finish(job, lambda: _run(model, job, emit, hang, gpu_done, write_line), model.device)


def _run(model, job: Job, emit: Emit, hang, gpu_done: Callable[[], None], write_line) -> dict:
    req = distributed.request_for_rank(job.request, model.group)  # rank > 0 writes into a scratch directory
    debug = req.debug
    started = time.perf_counter()
    timeline = {"started": time.time()}
    job_images = images.load_request_images(req)  # as the real runner: before the job directory and any work
    check_loras(model, req)  # likewise: read, SHA-256, every key checked against the model's layers
    jobflow.make_job_dir(req)
    job_identity = identity(model, req)
    ckpt = ScriptedCheckpointer(req.out_dir, job_identity, req.checkpoint_every,
                                rejected=lambda reason: emit(protocol.checkpoint_rejected_event(req.job, reason)))
    stages = ScriptedStages(job, emit, hang, ckpt, write_line)
    seconds: dict[str, float] = {"lora_load": 0.0, "lora_switch": 0.0} if model.lora_slots else {}

    stages("text_encoding", 0, 1)
    t0 = time.perf_counter()
    text_cache = {"prompt": "hit" if model.text.get(req.prompt) else "miss"}
    if req.guidance > 1.0:
        text_cache["negative_prompt"] = "hit" if model.text.get(req.negative_prompt or "") else "miss"
    seconds["text_encoding"] = time.perf_counter() - t0
    stages("text_encoding", 1, 1)
    if job_images["image"] is not None:  # the real loop VAE-encodes the conditioning frames here
        stages("image_encoding", 0, 1)
        seconds["image_encoding"] = 0.0
        stages("image_encoding", 1, 1)

    t0 = time.perf_counter()
    state, first_step = initial_state(job_identity), 0
    if ckpt.resume is not None:
        first_step, state = ckpt.resume
        log.info("resuming from %s: step %d of %d", ckpt.path, first_step, req.steps)
        emit(protocol.resumed_event(req.job, first_step, req.steps))
    try:
        for i in range(first_step, req.steps):
            if job.cancel.is_set():
                raise Cancelled("denoising", i + 1, req.steps)
            state = advance(state, i + 1)
            if ckpt.due(i + 1, req.steps):
                ckpt.save(i + 1, req.steps, state)
            stages("denoising", i + 1, req.steps)
    finally:
        ckpt.flush()  # no write outlives the loop, whatever ended it
    seconds["denoising"] = time.perf_counter() - t0
    if job.cancel.is_set():
        raise Cancelled("vae_decode")

    stages("vae_decode", 0, 1)
    t0 = time.perf_counter()
    frames = render(state, req.width, req.height, [float(i) for i in range(req.frames)])
    seconds["vae_decode"] = time.perf_counter() - t0
    stages("vae_decode", 1, 1)
    source_fps = req.fps or model.fps
    if model.group is not None and not model.group.writes_outputs:
        return distributed.follower_result(req, frames.shape, source_fps, seconds)
    method = None
    if req.interpolate > 1:
        stages("interpolating", 0, 1)
        t0 = time.perf_counter()
        k = req.interpolate
        frames = render(state, req.width, req.height, [j / k for j in range((req.frames - 1) * k + 1)])
        method = INTERPOLATION_METHOD
        seconds["interpolating"] = time.perf_counter() - t0
        stages("interpolating", 1, 1)
    fps = source_fps * req.interpolate
    peak = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # as the real engine reports a CPU's

    if debug is not None and debug.result_without_files:
        return _result_without_files(job, req, stages, frames, fps, seconds, started, gpu_done, peak)

    def record(seconds: dict) -> dict:
        contents = metadata.job_record(req, model, fps=fps, frame_count=int(frames.shape[0]), seconds=seconds,
                                       peak_memory_bytes=peak, source_fps=source_fps, source_frames=req.frames,
                                       interpolation_method=method,
                                       resumed_from_step=ckpt.resume[0] if ckpt.resume is not None else None,
                                       text_cache=text_cache, images=job_images)
        contents["scripted"] = True
        return contents

    return jobflow.deliver(job, req, stages, frames, fps, seconds, started, timeline, record, ckpt.discard, gpu_done,
                           peak)


def check_loras(model, req) -> None:
    """The request's LoRAs checked as a real worker checks them (loras.check_request), nothing converted."""
    if not req.loras:
        return
    if not model.lora_slots:
        raise loras.LoRAError("loras: this worker has no LoRA slots (it was started with --lora-slots 0)")
    loras.check_request(req.loras, model.lora_targets, model.lora_slots, model.lora_max_rank)


def _result_without_files(job: Job, req, stages, frames, fps: int, seconds: dict, started: float, gpu_done,
                          peak: int) -> dict:
    """debug.result_without_files: the encoding stage's events, then a `result` naming files that were never
    written."""
    gpu_done()
    stages("encoding", 0, 1)
    seconds["encoding"] = 0.0
    seconds["total"] = time.perf_counter() - started
    stages("encoding", 1, 1)
    log.warning("job %s: debug.result_without_files, answering without writing any file", req.job)
    n, height, width = frames.shape[:3]
    outputs = jobflow.outputs(req, os.path.join(req.out_dir, "video.mp4"), os.path.join(req.out_dir, "job.json"),
                              os.path.join(req.out_dir, "frames") if req.png_frames else None, n, width, height, fps)
    return protocol.result_event(req.job, outputs, {k: round(v, 4) for k, v in seconds.items()}, peak)

"""One generate job on a loaded model, from request to files: read and check the request's images (images.py), resume
from a checkpoint in the job directory or reject it (checkpoint.py), denoise and decode (pipeline.py), optionally
interpolate frames (interpolation.py), then write the MP4/PNGs and job.json and turn the outcome into the job's final
event (jobflow.py, shared with the scripted worker)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from . import checkpoint, distributed, images, interpolation, jobflow, lora_slots, metadata, protocol
from .catalog import TWO_EXPERTS
from .jobflow import CRASH_EXIT_STATUS, Emit, Job  # noqa: F401 - re-exported: the worker's interface to a job
from .pipeline import free_memory, generate, latent_shape, peak_memory_bytes, reset_peak_memory

log = logging.getLogger("reel_engine.jobs")


def run_job(model, job: Job, emit: Emit, hang: Callable[[dict], None] | None = None,
            gpu_done: Callable[[], None] = lambda: None) -> dict:
    """Runs `job` on `model`, emitting progress events; returns the final event (never raises). `gpu_done` is
    called once the job no longer needs the device (before its files are encoded), so the next job may start."""
    return jobflow.finish(job, lambda: _run(model, job, emit, hang, gpu_done), str(model.device),
                          cleanup=lambda: free_memory(model.device))


def _run(model, job: Job, emit: Emit, hang: Callable[[dict], None] | None, gpu_done: Callable[[], None]) -> dict:
    req = distributed.request_for_rank(job.request)  # parallel groups: rank > 0 never touches the job's directory
    started = time.perf_counter()
    timeline = {"started": time.time()}  # wall-clock instants, for measuring device idle time between jobs
    if req.interpolate > 1:
        interpolation.check_available()  # fail before the expensive part, not after it
    # The images are read, checked and fitted before anything else: a bad one fails the job (bad_request) before
    # its directory, a checkpoint, the text encoder or the device is touched.
    job_images = images.load_request_images(req)
    # So are its LoRAs (read, checked against their SHA-256 and the model's layers, converted or taken from the
    # cache): a bad one fails the job the same way, before anything is applied.
    lora_started = time.perf_counter()
    job_loras = lora_slots.prepare(model, req)
    lora_load = time.perf_counter() - lora_started
    jobflow.make_job_dir(req)
    reset_peak_memory(model.device)
    ckpt = checkpoint.open_for_job(
        req.out_dir, checkpoint.request_identity(model, req), latent_shape(model, req.width, req.height, req.frames),
        req.checkpoint_every, rejected=lambda reason: emit(protocol.checkpoint_rejected_event(req.job, reason)))
    ckpt.on_resumed = lambda step, total: emit(protocol.resumed_event(req.job, step, total))
    resumed_from_step = ckpt.resume.step if ckpt.resume is not None else None
    stages = jobflow.Stages(job, emit, hang, checkpoint=ckpt)
    lora_switch = lora_slots.apply(model, job_loras)  # the slots now hold this job's set (the empty one included)

    generation = generate(
        model,
        prompt=req.prompt,
        negative_prompt=req.negative_prompt,
        width=req.width,
        height=req.height,
        frames=req.frames,
        steps=req.steps,
        guidance=req.guidance,
        guidance_2=req.guidance_2 if model.architecture in TWO_EXPERTS else None,
        seed=req.seed,
        image=job_images["image"].image if job_images["image"] is not None else None,
        last_image=job_images["last_image"].image if job_images["last_image"] is not None else None,
        memory_saving=req.memory_saving,
        progress=stages,
        cancelled=job.cancel.is_set,
        checkpoint=ckpt,
        sampler=req.sampler,
    )
    if ckpt.saves or ckpt.failures:
        log.info("job %s: %d checkpoint(s) saved (%d failed): %.1f ms per save on the loop, %.1f ms writing",
                 req.job, ckpt.saves, ckpt.failures, 1000 * ckpt.snapshot_seconds / max(1, ckpt.saves + ckpt.failures),
                 1000 * ckpt.write_seconds / max(1, ckpt.saves))
    # lora_load: reading, hashing and converting the files (nothing when all are cached and unchanged); lora_switch:
    # copying them into the slots.
    seconds = ({"lora_load": lora_load, "lora_switch": lora_switch} if lora_switch is not None else {}) \
        | generation.seconds
    text_cache = generation.text_cache
    frames = generation.video
    del generation
    # Parallel groups: the ranks compare their frames; rank > 0 stops here and writes nothing (distributed.py).
    follower = distributed.after_frames(req, frames, req.fps or model.fps, seconds)
    if follower is not None:
        return follower
    source_fps = req.fps or model.fps
    source_frames = int(frames.shape[0])
    method = None
    if req.interpolate > 1:
        stages("interpolating", 0, 1)
        t0 = time.perf_counter()
        frames, method = interpolation.interpolate(
            frames, source_fps, req.interpolate, job.cancel.is_set, device=model.device
        )
        seconds["interpolating"] = time.perf_counter() - t0
        stages("interpolating", 1, 1)
    fps = source_fps * req.interpolate
    peak = peak_memory_bytes(model.device)  # before the next job can use the device

    def record(seconds: dict) -> dict:
        return metadata.job_record(req, model, fps=fps, frame_count=int(frames.shape[0]), seconds=seconds,
                                   peak_memory_bytes=peak, source_fps=source_fps, source_frames=source_frames,
                                   interpolation_method=method, resumed_from_step=resumed_from_step,
                                   text_cache=text_cache, images=job_images)

    return jobflow.deliver(job, req, stages, frames, fps, seconds, started, timeline, record, ckpt.discard, gpu_done,
                           peak)

"""One generate job from request to files: resume from a checkpoint in the job directory or reject it
(checkpoint.py), denoise and decode (pipeline.py), optionally interpolate frames (interpolation.py), write the
MP4/PNGs (media.py) and job.json (metadata.py), remove the checkpoint, and turn the outcome into the job's final
event (`result` or `error`)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from . import checkpoint, distributed, interpolation, media, metadata, protocol
from .pipeline import Cancelled, free_memory, generate, latent_shape, peak_memory_bytes, reset_peak_memory

log = logging.getLogger("reel_engine.jobs")

CRASH_EXIT_STATUS = 70

Emit = Callable[[dict], None]


class Job:
    """A running generate request and its cancel flag."""

    def __init__(self, request: protocol.GenerateRequest):
        self.request = request
        self.cancel = threading.Event()
        self.stage = "setup"


def run_job(model, job: Job, emit: Emit, hang: Callable[[dict], None] | None = None,
            gpu_done: Callable[[], None] = lambda: None) -> dict:
    """Runs `job` on `model`, emitting progress events; returns the final event (never raises). `gpu_done` is
    called once the job no longer needs the device (before its files are encoded), so the next job may start."""
    req = job.request
    try:
        return _run(model, job, emit, hang, gpu_done)
    except Cancelled as e:
        log.info("job %s: %s", req.job, e)
        event = protocol.error_event(req.job, "cancelled", f"job {req.job} was cancelled ({e})")
    except interpolation.InterpolationUnavailable as e:
        log.error("job %s: %s", req.job, e)
        event = protocol.error_event(req.job, "model_error", f"interpolation unavailable: {e}")
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # every failure becomes an event; the worker keeps serving
        if _is_out_of_memory(e):
            log.warning("job %s: out of memory during %s: %s", req.job, job.stage, e)
            event = protocol.error_event(req.job, "out_of_memory",
                                         f"{model.device} ran out of memory during {job.stage}: {e}")
        else:
            log.exception("job %s failed during %s", req.job, job.stage)
            event = protocol.error_event(req.job, "internal", f"{type(e).__name__} during {job.stage}: {e}")
    # Outside the except block the traceback is gone, and with it the frames that still held the job's tensors.
    free_memory(model.device)
    return event


def _is_out_of_memory(e: BaseException) -> bool:
    if isinstance(e, MemoryError):
        return True
    import torch

    return isinstance(e, torch.cuda.OutOfMemoryError)


def _run(model, job: Job, emit: Emit, hang: Callable[[dict], None] | None, gpu_done: Callable[[], None]) -> dict:
    req = distributed.request_for_rank(job.request)  # parallel groups: rank > 0 never touches the job's directory
    debug = req.debug
    started = time.perf_counter()
    timeline = {"started": time.time()}  # wall-clock instants, for measuring device idle time between jobs
    if req.interpolate > 1:
        interpolation.check_available()  # fail before the expensive part, not after it
    os.makedirs(req.out_dir, exist_ok=True)
    reset_peak_memory(model.device)
    ckpt = checkpoint.open_for_job(
        req.out_dir, checkpoint.request_identity(model, req), latent_shape(model, req.width, req.height, req.frames),
        req.checkpoint_every, rejected=lambda reason: emit(protocol.checkpoint_rejected_event(req.job, reason)))
    ckpt.on_resumed = lambda step, total: emit(protocol.resumed_event(req.job, step, total))
    resumed_from_step = ckpt.resume.step if ckpt.resume is not None else None

    def crash(what: str) -> None:
        ckpt.flush()  # a checkpoint write in flight completes first, so crash tests know what is on disk
        log.warning("job %s: %s, exiting with status %d", req.job, what, CRASH_EXIT_STATUS)
        os._exit(CRASH_EXIT_STATUS)

    def progress(stage: str, step: int, total: int) -> None:
        job.stage = stage
        event = protocol.progress_event(req.job, stage, step, total)
        if debug is not None and stage == "denoising" and debug.hang_at_step == step and hang is not None:
            log.warning("job %s: debug.hang_at_step=%d, hanging", req.job, step)
            hang(event)  # writes this last event and mutes the worker in one step; never returns
        emit(event)
        if debug is None:
            return
        if stage == debug.crash_in and step == 0:
            crash(f"debug.crash_in={stage}")
        if stage == "denoising":
            if debug.crash_at_step == step:
                crash(f"debug.crash_at_step={step}")
            if debug.oom_at_step == step and not req.memory_saving:
                raise MemoryError(f"simulated out of memory at denoising step {step} (debug.oom_at_step)")
            if debug.step_delay:
                job.cancel.wait(debug.step_delay)

    generation = generate(
        model,
        prompt=req.prompt,
        negative_prompt=req.negative_prompt,
        width=req.width,
        height=req.height,
        frames=req.frames,
        steps=req.steps,
        guidance=req.guidance,
        guidance_2=req.guidance_2 if model.architecture == "t2v-a14b" else None,
        seed=req.seed,
        memory_saving=req.memory_saving,
        progress=progress,
        cancelled=job.cancel.is_set,
        checkpoint=ckpt,
    )
    if ckpt.saves or ckpt.failures:
        log.info("job %s: %d checkpoint(s) saved (%d failed): %.1f ms per save on the loop, %.1f ms writing",
                 req.job, ckpt.saves, ckpt.failures, 1000 * ckpt.snapshot_seconds / max(1, ckpt.saves + ckpt.failures),
                 1000 * ckpt.write_seconds / max(1, ckpt.saves))
    seconds = dict(generation.seconds)
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
        progress("interpolating", 0, 1)
        t0 = time.perf_counter()
        frames, method = interpolation.interpolate(
            frames, source_fps, req.interpolate, job.cancel.is_set, device=model.device
        )
        seconds["interpolating"] = time.perf_counter() - t0
        progress("interpolating", 1, 1)
    fps = source_fps * req.interpolate
    peak = peak_memory_bytes(model.device)  # before the next job can use the device

    # The device is free from here on: the worker may start the next job's denoising while this one encodes.
    # It is freed before the event that says so goes out, so a client that answers the event is never "busy".
    timeline["device_done"] = time.time()
    gpu_done()
    progress("encoding", 0, 1)
    t0 = time.perf_counter()
    if debug is not None and debug.encode_delay:
        job.cancel.wait(debug.encode_delay)
    if job.cancel.is_set():
        raise Cancelled("encoding")
    video_path = media.write_video(frames, req.out_dir, fps)
    frames_dir = media.write_png_frames(frames, req.out_dir) if req.png_frames else None
    seconds["encoding"] = time.perf_counter() - t0
    seconds["total"] = time.perf_counter() - started
    seconds = {k: round(v, 4) for k, v in seconds.items()}
    timeline["files_written"] = time.time()
    n, height, width, _ = frames.shape
    record = metadata.job_record(req, model, fps=fps, frame_count=n, seconds=seconds, peak_memory_bytes=peak,
                                 source_fps=source_fps, source_frames=source_frames, interpolation_method=method,
                                 resumed_from_step=resumed_from_step, text_cache=text_cache)
    record["timeline"] = {k: round(v, 3) for k, v in timeline.items()}
    metadata_path = metadata.write_job_json(record, req.out_dir)
    ckpt.discard()  # the outputs exist: a retry of this job has nothing left to resume
    progress("encoding", 1, 1)
    outputs = {
        "dir": req.out_dir,
        "video": video_path,
        "metadata": metadata_path,
        "frames_dir": frames_dir,
        "frame_count": int(n),
        "width": int(width),
        "height": int(height),
        "fps": fps,
    }
    log.info("job %s done in %.2fs (%s)", req.job, seconds["total"],
             ", ".join(f"{k} {v:.2f}s" for k, v in seconds.items() if k != "total"))
    return protocol.result_event(req.job, outputs, seconds, peak)

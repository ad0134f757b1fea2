"""Frame interpolation after VAE decode: `interpolate` = k turns n frames at `fps` into (n-1)*k+1 frames at fps*k,
so the video lasts just as long.

The method is FFmpeg's motion-compensated `minterpolate` filter (mi_mode=mci, mc_mode=aobmc, me_mode=bidir,
vsbmc=1) run on the CPU through PyAV's filter graph (buffer → minterpolate → buffersink), one frame at a time.
If the FFmpeg inside the PyAV wheel lacks minterpolate, a linear cross-fade of the two neighbouring source frames
is used instead and job.json's `interpolation_method` says so.

Exactness: every k-th output frame is the source frame itself (minterpolate copies source frames at those
instants anyway; substituting the RGB source avoids the RGB→YUV→RGB rounding), so the first and last frames are
the source's first and last. minterpolate only emits the frames of an interval once it has seen the frame after
it, so the last source frame is pushed twice; the output is then taken by timestamp, exactly (n-1)*k+1 frames.

RIFE: when REEL_RIFE_CHECKPOINT names a Practical-RIFE v4.25 `flownet.pkl` (rife.py), the in-between frames come
from that IFNet instead, on the worker's device, with the source frames kept exactly at every k-th position, and
job.json's `interpolation_method` is "rife:<file name> (v4.25)". check_available loads the checkpoint (strictly), so
a missing or wrong file fails the job with InterpolationUnavailable before generating rather than after.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from fractions import Fraction

import numpy as np

from .jobflow import JobFailure

log = logging.getLogger("reel_engine.interpolation")

FACTORS = (1, 2, 4)
RIFE_ENV = "REEL_RIFE_CHECKPOINT"
MINTERPOLATE_OPTIONS = "mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1"
MINTERPOLATE_METHOD = "minterpolate (FFmpeg, mci/aobmc/bidir)"
BLEND_METHOD = "blend (linear cross-fade of neighbouring frames; this FFmpeg build has no minterpolate)"
# minterpolate accepts planar YUV only; 4:4:4 keeps the colour of the in-between frames at full resolution.
WORK_FORMAT = "yuv444p"


class InterpolationUnavailable(JobFailure):
    """The configured interpolation method cannot be used (a missing or unloadable RIFE checkpoint): the job fails
    with `model_error`."""

    code = "model_error"

    @property
    def event_message(self) -> str:
        return f"interpolation unavailable: {self}"


def output_frame_count(frames: int, factor: int) -> int:
    return (frames - 1) * factor + 1


def has_minterpolate() -> bool:
    import av.filter

    return "minterpolate" in av.filter.filters_available


def check_available() -> None:
    """Raises InterpolationUnavailable when the environment asks for a method this engine cannot run: a
    REEL_RIFE_CHECKPOINT that is not a file or not a loadable Practical-RIFE IFNet state dict."""
    checkpoint = os.environ.get(RIFE_ENV)
    if not checkpoint:
        return
    if not os.path.isfile(checkpoint):
        raise InterpolationUnavailable(f"{RIFE_ENV}={checkpoint} is not a file; unset it to use FFmpeg's "
                                       "minterpolate")
    from . import rife

    try:
        rife.cached(checkpoint, _device(None))
    except rife.CheckpointError as e:
        raise InterpolationUnavailable(
            f"RIFE checkpoint support needs a Practical-RIFE v{rife.VERSION} IFNet state dict "
            f"(train_log/flownet.pkl) in {RIFE_ENV}; {e}") from None


def rife_method_name(checkpoint: str) -> str:
    from . import rife

    return f"rife:{os.path.basename(checkpoint)} (v{rife.VERSION})"


def _device(device):
    """The device RIFE runs on: `device` if given, else the worker's GPU when this process uses CUDA (a CUDA
    worker has selected its GPU with torch.cuda.set_device), else the CPU."""
    import torch

    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def method_name() -> str:
    checkpoint = os.environ.get(RIFE_ENV)
    if checkpoint:
        return rife_method_name(checkpoint)
    return MINTERPOLATE_METHOD if has_minterpolate() else BLEND_METHOD


def interpolate(frames: np.ndarray, fps: int, factor: int,
                cancelled: Callable[[], bool] = lambda: False, device=None) -> tuple[np.ndarray, str | None]:
    """uint8 RGB frames (n, height, width, 3) at `fps` → ((n-1)*factor+1 frames at fps*factor, method name).

    Factor 1 returns the frames unchanged and method None. With REEL_RIFE_CHECKPOINT set, RIFE runs on `device`
    (default: see _device). Raises InterpolationUnavailable (see check_available) and
    jobflow.Cancelled("interpolating") when `cancelled()` turns true (checked once per frame or interval)."""
    if factor not in FACTORS:
        raise ValueError(f"interpolation factor must be one of {FACTORS}, got {factor}")
    if factor == 1:
        return frames, None
    check_available()
    if len(frames) < 2:
        return frames, method_name()
    checkpoint = os.environ.get(RIFE_ENV)
    if checkpoint:
        from . import rife

        dev = _device(device)
        try:
            net = rife.cached(checkpoint, dev)
        except rife.CheckpointError as e:
            raise InterpolationUnavailable(str(e)) from None
        log.info("interpolating %d frames x%d with RIFE v%s (%s) on %s", len(frames), factor, rife.VERSION,
                 checkpoint, dev)
        return rife.interpolate(net, frames, factor, dev, lambda: _check(cancelled)), rife_method_name(checkpoint)
    if has_minterpolate():
        return _minterpolate(frames, fps, factor, cancelled), MINTERPOLATE_METHOD
    log.warning("this FFmpeg build has no minterpolate filter; interpolating by blending neighbouring frames")
    return _blend(frames, factor, cancelled), BLEND_METHOD


def _check(cancelled: Callable[[], bool]) -> None:
    if cancelled():
        from .jobflow import Cancelled

        raise Cancelled("interpolating")


def _minterpolate(frames: np.ndarray, fps: int, factor: int, cancelled: Callable[[], bool]) -> np.ndarray:
    import av
    import av.error
    import av.filter

    n, height, width, _ = frames.shape
    total = output_frame_count(n, factor)
    in_base = Fraction(1, fps)
    graph = av.filter.Graph()
    source = graph.add_buffer(width=width, height=height, format=WORK_FORMAT, time_base=in_base)
    motion = graph.add("minterpolate", f"fps={fps * factor}:{MINTERPOLATE_OPTIONS}")
    sink = graph.add("buffersink")
    source.link_to(motion)
    motion.link_to(sink)
    graph.configure()

    out = np.empty((total, height, width, 3), dtype=np.uint8)
    filled = np.zeros(total, dtype=bool)

    def drain() -> None:
        while True:
            try:
                frame = graph.vpull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return
            # Output timestamps are in 1/(fps*factor): index j is source instant j/factor.
            j = int(round(frame.pts * frame.time_base * fps * factor))
            if 0 <= j < total and j % factor and not filled[j]:
                out[j] = frame.to_ndarray(format="rgb24")
                filled[j] = True

    # The last source frame goes in twice: minterpolate emits an interval's frames only once it has the next one.
    for pts, i in enumerate([*range(n), n - 1]):
        _check(cancelled)
        frame = av.VideoFrame.from_ndarray(frames[i], format="rgb24").reformat(format=WORK_FORMAT)
        frame.pts, frame.time_base = pts, in_base
        graph.vpush(frame)
        drain()
    graph.vpush(None)
    drain()

    out[::factor] = frames
    filled[::factor] = True
    missing = np.flatnonzero(~filled)
    if missing.size:  # not seen with FFmpeg 8; kept deterministic should a build behave differently
        log.warning("minterpolate did not emit %d of %d frames; blending those", missing.size, total)
        for j in missing:
            out[j] = _blend_at(frames, j, factor)
    return out


def _blend_at(frames: np.ndarray, j: int, factor: int) -> np.ndarray:
    i, r = divmod(j, factor)
    if r == 0:
        return frames[i]
    t = r / factor
    mix = (1.0 - t) * frames[i].astype(np.float32) + t * frames[i + 1].astype(np.float32)
    return np.clip(np.rint(mix), 0, 255).astype(np.uint8)


def _blend(frames: np.ndarray, factor: int, cancelled: Callable[[], bool]) -> np.ndarray:
    total = output_frame_count(len(frames), factor)
    out = np.empty((total, *frames.shape[1:]), dtype=np.uint8)
    for j in range(total):
        _check(cancelled)
        out[j] = _blend_at(frames, j, factor)
    return out

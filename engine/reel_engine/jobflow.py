"""The torch-free skeleton of one generate job, shared by the real job runner (jobs.py) and the scripted one
(scripted_jobs.py), so that both behave the same where the protocol is concerned:

- `Job`: a running request and its cancel flag;
- `Stages`: emits the job's `progress` events and applies the testing hooks at the points the protocol names;
- `deliver`: the job's second phase, once the device is free: writing the MP4, PNGs and job.json, then `result`;
- `writing` and `OutputError`: a file of the job that cannot be written (full disk, read-only or vanished
  directory) fails the job with `disk_full` or `output_unwritable`, naming the path;
- `finish`: every way a job can end, turned into its final event.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

from . import media, metadata, protocol

log = logging.getLogger("reel_engine.jobflow")

CRASH_EXIT_STATUS = 70

Emit = Callable[[dict], None]

DISK_FULL = "disk_full"
OUTPUT_UNWRITABLE = "output_unwritable"
# No room: the same request succeeds once space is freed.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# The job's directory or one of its files cannot be written at all: permissions, a read-only file system, a
# directory that vanished or a file where a directory should be, a file too large for the file system, I/O errors.
UNWRITABLE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR, errno.EISDIR,
                               errno.EEXIST, errno.ENAMETOOLONG, errno.ELOOP, errno.EFBIG, errno.EIO,
                               errno.ENOTEMPTY})


class Job:
    """A running generate request and its cancel flag."""

    def __init__(self, request: protocol.GenerateRequest):
        self.request = request
        self.cancel = threading.Event()
        self.stage = "setup"


class Cancelled(Exception):
    """The job was cancelled at a step or stage boundary."""

    def __init__(self, stage: str, step: int | None = None, total: int | None = None):
        where = f"{stage} step {step} of {total}" if step is not None else stage
        super().__init__(f"cancelled before {where}")
        self.stage, self.step, self.total = stage, step, total


class JobFailure(Exception):
    """A failure that has an error code of its own; `event_message` is the `error` event's message."""

    code = "internal"

    @property
    def event_message(self) -> str:
        return str(self)


class OutputError(JobFailure):
    """A file of the job cannot be written: `disk_full` or `output_unwritable`."""

    def __init__(self, code: str, message: str, path: str):
        super().__init__(message)
        self.code, self.path = code, path


def output_error(e: OSError, path: str, what: str) -> OutputError | None:
    """The OutputError for an OSError raised while writing `what` at `path`; None when the error is not about the
    file system (the caller re-raises it)."""
    number = e.errno
    if number in DISK_FULL_ERRNOS:
        code = DISK_FULL
    elif number in UNWRITABLE_ERRNOS:
        code = OUTPUT_UNWRITABLE
    else:
        return None
    return OutputError(code, _describe(e, what, path), path)


def _describe(e: OSError, what: str, path: str) -> str:
    """"cannot write the video /out/j-1/video.mp4: No space left on device (ENOSPC)"."""
    name = errno.errorcode.get(e.errno, str(e.errno))
    return f"cannot write {what} {path}: {e.strerror or os.strerror(e.errno)} ({name})"


@contextmanager
def writing(path: str, what: str):
    """Turns an OSError of the file system while writing `what` (the video, job.json, …) at `path` into an
    OutputError; other errors pass through unchanged."""
    try:
        yield
    except OSError as e:
        error = output_error(e, path, what)
        if error is None:
            raise
        raise error from e


class Stages:
    """Reports a job's stages as `progress` events and applies its testing hooks (docs/worker-protocol.md, "Testing
    hooks") right after the events the protocol names. `checkpoint` (optional) has `flush()`, called before a crash
    hook exits so that the checkpoint of the step is on disk, and `raise_if_failed()`, which fails the job once a
    checkpoint could not be written."""

    def __init__(self, job: Job, emit: Emit, hang: Callable[[dict], None] | None = None, checkpoint=None):
        self.job, self.emit, self.hang, self.checkpoint = job, emit, hang, checkpoint

    def __call__(self, stage: str, step: int, total: int) -> None:
        req, job = self.job.request, self.job
        debug = req.debug
        if self.checkpoint is not None:
            self.checkpoint.raise_if_failed()
        job.stage = stage
        event = protocol.progress_event(req.job, stage, step, total)
        if debug is not None and stage == "denoising" and debug.hang_at_step == step and self.hang is not None:
            log.warning("job %s: debug.hang_at_step=%d, hanging", req.job, step)
            self.hang(event)  # writes this last event and mutes the worker in one step; never returns
        self.emit(event)
        if debug is None:
            return
        self.after(stage, step)
        if stage == debug.crash_in and step == 0:
            self.exit(f"debug.crash_in={stage}", CRASH_EXIT_STATUS)
        if stage == "denoising":
            if debug.crash_at_step == step:
                self.exit(f"debug.crash_at_step={step}", CRASH_EXIT_STATUS)
            if debug.oom_at_step == step and not req.memory_saving:
                raise MemoryError(f"simulated out of memory at denoising step {step} (debug.oom_at_step)")
            if debug.step_delay:
                job.cancel.wait(debug.step_delay)

    def after(self, stage: str, step: int) -> None:
        """Runs right after each progress event of a job with a `debug` object; a runner adds hooks of its own."""

    def exit(self, why: str, status: int) -> None:
        """Ends the process at once (a checkpoint write in flight completes first, so tests know what is on disk)."""
        if self.checkpoint is not None:
            self.checkpoint.flush()
        log.warning("job %s: %s, exiting with status %d", self.job.request.job, why, status)
        sys.stderr.flush()
        os._exit(status)


def outputs(req: protocol.GenerateRequest, video: str, metadata_path: str, frames_dir: str | None, frame_count: int,
            width: int, height: int, fps: int) -> dict:
    """The `outputs` object of a `result` event."""
    return {"dir": req.out_dir, "video": video, "metadata": metadata_path, "frames_dir": frames_dir,
            "frame_count": int(frame_count), "width": int(width), "height": int(height), "fps": fps}


def make_job_dir(req: protocol.GenerateRequest) -> None:
    with writing(req.out_dir, "the job directory"):
        os.makedirs(req.out_dir, exist_ok=True)


def deliver(job: Job, req: protocol.GenerateRequest, stages: Stages, frames, fps: int, seconds: dict,
            started: float, timeline: dict, record: Callable[[dict], dict], discard: Callable[[], None],
            gpu_done: Callable[[], None], peak_memory_bytes: int) -> dict:
    """The job's files, written once its device work is over: frees the device (`gpu_done`), reports `encoding`,
    writes the MP4, the PNGs (`png_frames`) and job.json (`record(seconds)` gives its contents), removes the
    checkpoint (`discard`), and returns the `result` event. If any file cannot be written, the files this job had
    already put under their final names are removed again and the OutputError propagates."""
    debug = req.debug
    # The device is free from here on: the worker may start the next job's denoising while this one encodes.
    # It is freed before the event that says so goes out, so a client that answers the event is never "busy".
    timeline["device_done"] = time.time()
    gpu_done()
    stages("encoding", 0, 1)
    t0 = time.perf_counter()
    if debug is not None and debug.encode_delay:
        job.cancel.wait(debug.encode_delay)
    if job.cancel.is_set():
        raise Cancelled("encoding")
    written: list[str] = []
    try:
        with writing(os.path.join(req.out_dir, media.VIDEO_NAME), "the video"):
            video_path = media.write_video(frames, req.out_dir, fps)
        written.append(video_path)
        frames_dir = None
        if req.png_frames:
            with writing(os.path.join(req.out_dir, media.FRAMES_DIR), "the PNG frames"):
                frames_dir = media.write_png_frames(frames, req.out_dir)
            written.append(frames_dir)
        seconds["encoding"] = time.perf_counter() - t0
        seconds["total"] = time.perf_counter() - started
        seconds = {k: round(v, 4) for k, v in seconds.items()}
        timeline["files_written"] = time.time()
        contents = record(seconds)
        contents["timeline"] = {k: round(v, 3) for k, v in timeline.items()}
        with writing(os.path.join(req.out_dir, metadata.METADATA_NAME), "job.json"):
            metadata_path = metadata.write_job_json(contents, req.out_dir)
    except BaseException:
        for path in written:  # a failed job leaves no outputs, only its checkpoint
            _remove_output(path)
        raise
    discard()  # the outputs exist: a retry of this job has nothing left to resume
    stages("encoding", 1, 1)
    n, height, width = frames.shape[:3]
    log.info("job %s done in %.2fs (%s)", req.job, seconds["total"],
             ", ".join(f"{k} {v:.2f}s" for k, v in seconds.items() if k != "total"))
    return protocol.result_event(req.job, outputs(req, video_path, metadata_path, frames_dir, n, width, height, fps),
                                 seconds, peak_memory_bytes)


def _remove_output(path: str) -> None:
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    except OSError as e:
        log.warning("cannot remove %s of a failed job: %s", path, e)


def is_out_of_memory(e: BaseException) -> bool:
    """MemoryError, or CUDA's out-of-memory error when torch is loaded (a process without torch has none)."""
    if isinstance(e, MemoryError):
        return True
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(e, torch.cuda.OutOfMemoryError)


def finish(job: Job, body: Callable[[], dict], device: str, cleanup: Callable[[], None] = lambda: None) -> dict:
    """Runs `body` (the job) and returns its final event: `body`'s result, or the `error` event for whatever
    ended it. Never raises (but KeyboardInterrupt and SystemExit pass). `cleanup` runs after a failure, outside
    the except block, when the traceback no longer holds the failed job's frames (and their tensors)."""
    req = job.request
    try:
        return body()
    except Cancelled as e:
        log.info("job %s: %s", req.job, e)
        event = protocol.error_event(req.job, "cancelled", f"job {req.job} was cancelled ({e})")
    except OutputError as e:
        log.error("job %s: %s", req.job, e)
        event = protocol.error_event(req.job, e.code, e.event_message)
    except JobFailure as e:
        log.error("job %s failed during %s: %s", req.job, job.stage, e)
        event = protocol.error_event(req.job, e.code, e.event_message)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # every failure becomes an event; the worker keeps serving
        if is_out_of_memory(e):
            log.warning("job %s: out of memory during %s: %s", req.job, job.stage, e)
            event = protocol.error_event(req.job, "out_of_memory",
                                         f"{device} ran out of memory during {job.stage}: {e}")
        elif isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS:
            # A write this engine does not wrap (a library's temporary file, say): still a full disk.
            log.error("job %s: %s during %s", req.job, e, job.stage)
            event = protocol.error_event(req.job, DISK_FULL, _describe(e, f"a file during {job.stage}",
                                                                       e.filename or req.out_dir))
        else:
            log.exception("job %s failed during %s", req.job, job.stage)
            event = protocol.error_event(req.job, "internal", f"{type(e).__name__} during {job.stage}: {e}")
    cleanup()
    return event

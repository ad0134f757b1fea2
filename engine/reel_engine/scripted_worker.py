"""The scripted worker: `python -m reel_engine.scripted_worker` with the flags of `python -m reel_engine.worker`.

A stand-in engine worker for tests of the processes around it (the Swift scheduler's fault tests): it speaks worker
protocol v1 through the real worker's own code (dispatcher.Worker, event_writer.EventWriter, protocol.py's
parsing and validation), reports the `ready` event a real worker reports for the same model name (plus
`"scripted": true`), and runs jobs with scripted_jobs.py, which emits the real event sequence and writes real files
(an H.264 MP4 through PyAV, PNGs, job.json, checkpoints) without computing anything: it never imports torch,
diffusers or transformers, starts in a fraction of a second, and a denoising step takes no time unless
`debug.step_delay` says so.

Scripted start-up, chosen through the environment (docs/worker-protocol.md, "The scripted worker"):
REEL_SCRIPTED_LOAD_SECONDS=x waits x seconds before `ready`; REEL_SCRIPTED_START=fail|oom|crash|hang makes the
start fail with a `model_error` (exit 3), fail with `out_of_memory` (exit 3), exit with status 70 before any event,
or never become ready.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import time

from . import __version__, protocol
from .cli import parse_args
from .dispatcher import Worker
from .event_writer import EventWriter
from .process import (
    INTERRUPTED_EXIT_STATUS,
    LOAD_FAILED_EXIT_STATUS,
    claim_stdout,
    configure_logging,
    exit_now,
    faults_allowed,
)

log = logging.getLogger("reel_engine.scripted_worker")

START_ENV = "REEL_SCRIPTED_START"
LOAD_SECONDS_ENV = "REEL_SCRIPTED_LOAD_SECONDS"
START_MODES = ("ready", "fail", "oom", "crash", "hang")
CRASH_EXIT_STATUS = 70


class StartFailure(Exception):
    """The scripted start-up fails as asked (or its environment is wrong): an `error` event with `code`, exit 3."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def start_mode() -> tuple[str, float]:
    """(REEL_SCRIPTED_START, REEL_SCRIPTED_LOAD_SECONDS), checked."""
    mode = os.environ.get(START_ENV) or "ready"
    if mode not in START_MODES:
        raise StartFailure("model_error", f"{START_ENV}={mode!r}: expected one of {', '.join(START_MODES)}")
    raw = os.environ.get(LOAD_SECONDS_ENV) or "0"
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise StartFailure("model_error", f"{LOAD_SECONDS_ENV}={raw!r}: expected a number of seconds >= 0")
    return mode, seconds


def load(args):
    """The scripted model, after the scripted start-up delay and failure modes."""
    t0 = time.perf_counter()
    mode, seconds = start_mode()
    time.sleep(seconds)
    if mode == "crash":
        log.warning("%s=crash: exiting with status %d before ready", START_ENV, CRASH_EXIT_STATUS)
        sys.stderr.flush()
        os._exit(CRASH_EXIT_STATUS)
    if mode == "hang":
        log.warning("%s=hang: never becoming ready", START_ENV)
        threading.Event().wait()
    if mode == "fail":
        raise StartFailure("model_error", f"scripted start failure ({START_ENV}=fail)")
    if mode == "oom":
        raise StartFailure("out_of_memory", f"out of memory while loading the model: scripted ({START_ENV}=oom)")
    from . import scripted_model

    model = scripted_model.load(args)
    model.load_seconds = time.perf_counter() - t0
    return model


def main(argv: list[str] | None = None) -> int:
    out = claim_stdout()
    configure_logging()
    args = parse_args(argv, prog="python -m reel_engine.scripted_worker", description=__doc__.splitlines()[0])
    writer = EventWriter(out)
    allow_faults = faults_allowed()
    log.info("reel-engine %s scripted worker starting: model %s on %s (pid %d)", __version__, args.model,
             args.device, os.getpid())
    try:
        model = load(args)
    except Exception as e:  # as in the real worker: one event, then exit 3
        code = e.code if isinstance(e, StartFailure) else "model_error"
        message = str(e) if type(e).__name__ in ("StartFailure", "ModelError") else f"{type(e).__name__}: {e}"
        log.error("loading %s failed: %s", args.model, message)
        writer.emit(protocol.error_event(None, code, message))
        return LOAD_FAILED_EXIT_STATUS
    from . import scripted_jobs

    writer.emit(protocol.ready_event(**model.ready_fields()))
    log.info("ready: %s (%s, %s, scripted) in %.3fs", model.name, model.architecture, model.dtype_name,
             model.load_seconds)
    run_job = functools.partial(scripted_jobs.run_job, write_line=writer.write_line)
    try:
        Worker(model, writer, allow_faults=allow_faults, run_job=run_job).serve(sys.stdin.buffer)
    except KeyboardInterrupt:
        return INTERRUPTED_EXIT_STATUS
    return 0


if __name__ == "__main__":
    exit_now(main())

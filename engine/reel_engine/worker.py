"""The worker process: `python -m reel_engine.worker --device DEV --model MODEL [--data-dir DIR] [--memory-saving]`.

The process claims stdout for events (process.py), parses its flags (cli.py), loads the model (startup.py), writes
`ready`, then the dispatcher (dispatcher.py) serves requests from stdin until shutdown or EOF: the main thread reads
them, a generate runs on its own thread (one at a time), so ping and cancel are answered while a job runs.
"""

from __future__ import annotations

import logging
import os
import sys

from . import __version__, protocol

# The names below were this module's before it was split; code that imports them from here keeps working.
from .cli import parse_args
from .dispatcher import STOP_JOIN_SECONDS, Worker, run_model_job
from .event_writer import EventWriter
from .process import (
    INTERRUPTED_EXIT_STATUS,
    LOAD_FAILED_EXIT_STATUS,
    claim_stdout,
    configure_logging,
    exit_now,
    faults_allowed,
)
from .startup import load_error, prepare_for_speed, ready_fields, start

__all__ = ["LOAD_FAILED_EXIT_STATUS", "STOP_JOIN_SECONDS", "EventWriter", "Worker", "claim_stdout", "main",
           "parse_args", "prepare_for_speed", "ready_fields", "run_model_job"]

log = logging.getLogger("reel_engine.worker")


def main(argv: list[str] | None = None) -> int:
    out = claim_stdout()
    configure_logging()
    args = parse_args(argv, description=__doc__.splitlines()[0])
    writer = EventWriter(out)
    allow_faults = faults_allowed()
    log.info("reel-engine %s starting: model %s on %s (pid %d)", __version__, args.model, args.device, os.getpid())
    try:
        model, group = start(args)
    except Exception as e:  # any load failure is reported as one event, then exit 3
        code, message = load_error(e)
        log.error("loading %s failed: %s", args.model, message, exc_info=type(e).__name__ != "ModelError")
        writer.emit(protocol.error_event(None, code, message))
        return LOAD_FAILED_EXIT_STATUS
    writer.emit(protocol.ready_event(**ready_fields(model), **(group.ready_fields() if group is not None else {})))
    log.info("ready: %s (%s, %s) in %.2fs", model.name, model.architecture, model.dtype_name, model.load_seconds)
    try:
        Worker(model, writer, allow_faults=allow_faults).serve(sys.stdin.buffer)
    except KeyboardInterrupt:
        return INTERRUPTED_EXIT_STATUS
    return 0


if __name__ == "__main__":
    exit_now(main())

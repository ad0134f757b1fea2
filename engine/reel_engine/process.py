"""What a worker process (the real one and the scripted one) sets up before anything else, and how it ends.

stdout belongs to the protocol. Before any library is imported the real stdout file descriptor is kept for events,
and both sys.stdout and fd 1 are pointed at stderr, so neither Python prints nor C libraries can corrupt the event
stream. Logs go to stderr. Exit statuses: 0 after `shutdown` or EOF, 3 when the model cannot be loaded, 70 from a
crash hook (jobflow.CRASH_EXIT_STATUS), 130 on SIGINT.
"""

from __future__ import annotations

import logging
import os
import sys

LOAD_FAILED_EXIT_STATUS = 3
INTERRUPTED_EXIT_STATUS = 130
ALLOW_FAULTS_ENV = "REEL_ENGINE_ALLOW_FAULTS"


def claim_stdout():
    """Keeps the real stdout for events and points fd 1 and sys.stdout at stderr."""
    sys.stdout.flush()
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return open(fd, "wb", buffering=1 << 16)


def configure_logging() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def faults_allowed() -> bool:
    """Whether the testing hooks are honoured: REEL_ENGINE_ALLOW_FAULTS=1 in the environment."""
    return os.environ.get(ALLOW_FAULTS_ENV) == "1"


def exit_now(status: int) -> None:
    """Ends the process at once with `status`, after flushing stderr: a cancelled job's daemon thread may still be
    inside torch, and interpreter teardown around it can crash."""
    sys.stderr.flush()
    os._exit(status)

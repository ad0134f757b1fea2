"""The event stream: one whole protocol line per event on the stdout that process.claim_stdout kept, flushed, under
one lock, so the events of a job thread, of the encoding thread and of the main thread never interleave."""

from __future__ import annotations

import logging
import os
import threading

from . import protocol

log = logging.getLogger("reel_engine.event_writer")


class EventWriter:
    """Serialises events: one whole line per event, flushed, under one lock."""

    def __init__(self, stream):
        self._stream = stream
        self._lock = threading.Lock()
        self._muted = False

    def emit(self, event: dict, then_mute: bool = False) -> None:
        """Writes one event; with `then_mute`, nothing is written after it (the hang test hook)."""
        self.write_line(protocol.encode_event(event), then_mute)

    def write_line(self, data: bytes, then_mute: bool = False) -> None:
        """Writes one whole line as it is (the scripted worker's malformed-output hook uses it directly)."""
        with self._lock:
            if self._muted:
                return
            self._muted = then_mute
            try:
                self._stream.write(data)
                self._stream.flush()
            except (BrokenPipeError, ValueError, OSError):
                # The parent is gone: nobody can read our events any more.
                log.error("stdout is closed; exiting")
                os._exit(0)

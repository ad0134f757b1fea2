"""The checkpoint file of a job directory, whatever its payload holds: the framing with a trailing SHA-256, atomic
writes on a background thread, and reading back (or rejecting) the checkpoint a job directory holds. Torch-free:
checkpoint.py puts the real denoising loop's tensors in the payload, the scripted worker its own small state.

File layout (`checkpoint.pt`, all integers little-endian):

    magic     8 bytes   b"REELCKPT"
    format    u32       FORMAT_VERSION
    H         u32       header length
    P         u64       payload length
    header    H bytes   UTF-8 JSON: {"identity": {...}, "step": S, "total": N, ...}
    payload   P bytes   the writer's own serialisation
    sha256    32 bytes  SHA-256 of everything before it
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from . import jobflow

log = logging.getLogger("reel_engine.checkpoint")

CHECKPOINT_NAME = "checkpoint.pt"
TMP_NAME = f".{CHECKPOINT_NAME}.tmp"
MAGIC = b"REELCKPT"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sIIQ")
_DIGEST_SIZE = 32
MAX_HEADER_BYTES = 1 << 20


class CheckpointRejected(Exception):
    """A checkpoint that cannot be used; the message is the `reason` of the `checkpoint_rejected` event."""


def frame(header: dict, body) -> list:
    """The file's bytes as a list of pieces, around the payload `body` (bytes-like; it is not copied)."""
    head = json.dumps(header, ensure_ascii=False, sort_keys=True).encode("utf-8")
    parts = [_PREFIX.pack(MAGIC, FORMAT_VERSION, len(head), len(body)), head, body]
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return parts + [digest.digest()]


def decode_checkpoint(data: bytes) -> tuple[dict, bytes]:
    """(header, payload bytes) of a checkpoint file's bytes, or CheckpointRejected if it is not intact."""
    if len(data) < _PREFIX.size + _DIGEST_SIZE:
        raise CheckpointRejected(f"corrupt: truncated ({len(data)} bytes)")
    magic, version, header_len, payload_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise CheckpointRejected("corrupt: not a Reel checkpoint (bad magic bytes)")
    expected_len = _PREFIX.size + header_len + payload_len + _DIGEST_SIZE
    if len(data) != expected_len:
        raise CheckpointRejected(f"corrupt: truncated or extended ({len(data)} bytes, expected {expected_len})")
    if hashlib.sha256(data[:-_DIGEST_SIZE]).digest() != data[-_DIGEST_SIZE:]:
        raise CheckpointRejected("corrupt: SHA-256 checksum mismatch")
    if version != FORMAT_VERSION:
        raise CheckpointRejected(f"unsupported checkpoint format {version} (this engine reads {FORMAT_VERSION})")
    if header_len > MAX_HEADER_BYTES:
        raise CheckpointRejected(f"corrupt: header of {header_len} bytes")
    start = _PREFIX.size
    try:
        header = json.loads(data[start:start + header_len].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CheckpointRejected(f"corrupt: unreadable header ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointRejected("corrupt: header is not an object")
    return header, data[start + header_len:-_DIGEST_SIZE]


def read_checkpoint(path: str, expected_identity: dict) -> tuple[dict, bytes]:
    """Reads a checkpoint file and checks that it is intact, of this job, and at a step before the last one;
    returns (header, payload bytes) or raises CheckpointRejected saying why it cannot be used."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CheckpointRejected(f"unreadable: {e}") from None
    header, body = decode_checkpoint(data)
    differences = identity_differences(header.get("identity"), expected_identity)
    if differences:
        raise CheckpointRejected("does not match the request: " + "; ".join(differences))
    step, total = header.get("step"), header.get("total")
    steps = expected_identity["steps"]
    if not isinstance(step, int) or isinstance(step, bool) or not 1 <= step < steps or total != steps:
        raise CheckpointRejected(f"invalid: step {step} of {total} for a {steps}-step job")
    return header, body


def prompt_sha256(prompt: str, negative_prompt: str) -> str:
    return hashlib.sha256(json.dumps([prompt, negative_prompt], ensure_ascii=False).encode("utf-8")).hexdigest()


def image_identity(image_sha256: str | None, last_image_sha256: str | None, fit: str) -> dict:
    """The identity's image fields: each image's SHA-256 (None without one) and the fit (None without any image,
    where it changes nothing); part of the real engine's identity (checkpoint.identity) and the scripted worker's."""
    has_image = image_sha256 is not None or last_image_sha256 is not None
    return {"image_sha256": image_sha256, "last_image_sha256": last_image_sha256, "fit": fit if has_image else None}


def identity_differences(saved: Any, expected: dict) -> list[str]:
    """What differs between a checkpoint's identity and the request's, one phrase per field (prompts only hashed)."""
    if not isinstance(saved, dict):
        return ["identity"]
    out = []
    for key in sorted(set(saved) | set(expected)):
        if saved.get(key, "<absent>") != expected.get(key, "<absent>"):
            if key == "prompt_sha256":
                out.append("prompt or negative prompt differs")
            else:
                out.append(f"{key} is {json.dumps(saved.get(key))} in the checkpoint, "
                           f"{json.dumps(expected.get(key))} in the request")
    return out


def write_atomically(path: str, parts: list) -> None:
    """Writes the byte strings `parts` to a temporary file in the same directory, fsyncs it, renames it over `path`,
    fsyncs the directory: after a crash `path` holds either the previous checkpoint or this one, whole. A failed
    write leaves no temporary file."""
    directory = os.path.dirname(path)
    tmp = os.path.join(directory, TMP_NAME)
    try:
        with open(tmp, "wb") as f:
            for part in parts:
                f.write(part)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        remove(tmp)
        raise
    try:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass  # some filesystems do not fsync directories; the rename itself is atomic


def remove(path: str) -> None:
    """Removes a file if it is there; a file that cannot be removed is logged, never raised."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        log.warning("cannot remove %s: %s", path, e)


class BackgroundWriter:
    """Writes a job's checkpoints to `path` on a background thread, one at a time.

    A write that fails because the job directory cannot hold it (full disk, read-only or vanished directory) is
    kept as an OutputError that `raise_if_failed` raises on the job's thread: the job's other files could not be
    written either, so it fails at once rather than after denoising. Any other failed write is logged and the job
    goes on (the previous checkpoint, if any, stays)."""

    def __init__(self, path: str):
        self.path = path
        self._thread: threading.Thread | None = None
        self.error: jobflow.OutputError | None = None
        self.saves = 0
        self.failures = 0
        self.write_seconds = 0.0  # serialise, hash, write, fsync, rename

    def start(self, step: int, parts: Callable[[], list]) -> None:
        """Writes the checkpoint of step `step`, whose bytes `parts()` makes, on a new background thread (after the
        write in flight, if any)."""
        self.flush()  # one write at a time; a slow disk makes the loop wait rather than pile up copies
        self._thread = threading.Thread(target=self._write, args=(step, parts), name="checkpoint-writer", daemon=True)
        self._thread.start()

    def _write(self, step: int, parts: Callable[[], list]) -> None:
        t0 = time.perf_counter()
        try:
            write_atomically(self.path, parts())
        except OSError as e:
            self.failures += 1
            self.error = jobflow.output_error(e, self.path, "the checkpoint")
            if self.error is not None:
                log.error("writing checkpoint %s (step %d) failed: %s", self.path, step, self.error)
                return
            log.exception("writing checkpoint %s (step %d) failed; the job goes on", self.path, step)
            return
        except Exception:
            self.failures += 1
            log.exception("writing checkpoint %s (step %d) failed; the job goes on", self.path, step)
            return
        self.saves += 1
        self.write_seconds += time.perf_counter() - t0
        log.debug("checkpoint %s: step %d", self.path, step)

    def flush(self) -> None:
        """Waits for the write in flight, if any."""
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()

    def raise_if_failed(self) -> None:
        """Raises the OutputError of a write that has failed for want of a writable job directory."""
        if self.error is not None:
            raise self.error

    def discard(self) -> None:
        """Removes the checkpoint (after the job's outputs exist)."""
        self.flush()
        remove(self.path)
        remove(os.path.join(os.path.dirname(self.path), TMP_NAME))


def open_existing(out_dir: str, load: Callable[[str], Any], rejected: Callable[[str], None] | None = None):
    """What `load(path)` makes of the checkpoint in `out_dir`, or None when there is none. A checkpoint that `load`
    rejects (CheckpointRejected) is reported through `rejected(reason)` and deleted; a temporary file left by a
    write that a crash cut short is deleted."""
    path = os.path.join(out_dir, CHECKPOINT_NAME)
    remove(os.path.join(out_dir, TMP_NAME))
    if not os.path.lexists(path):
        return None
    try:
        resume = load(path)
    except CheckpointRejected as e:
        log.warning("checkpoint %s rejected: %s", path, e)
        if rejected is not None:
            rejected(str(e))
        remove(path)  # a directory under that name, say, is never read again anyway
        return None
    return resume

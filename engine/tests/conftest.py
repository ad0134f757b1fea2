"""Shared fixtures: one data directory per test session, tiny models loaded once per module, and a helper that
drives a real worker subprocess over its stdin/stdout."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time

import pytest

# One intra-op thread for the tests and the workers they start: on a small shared machine, OpenMP threads that
# spin-wait for each other make CPU runs several times slower than one thread. Set before torch is imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")

EVENT_TIMEOUT = 90.0  # generous: the CI machine has 2 cores shared with a Swift build


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("reel-data"))


@pytest.fixture(scope="module")
def tiny_ti2v(data_dir):
    from reel_engine.models import load_model

    return load_model("tiny", "cpu", data_dir)


@pytest.fixture(scope="module")
def tiny_a14b(data_dir):
    from reel_engine.models import load_model

    return load_model("tiny:t2v-a14b", "cpu", data_dir)


class WorkerProcess:
    """A `python -m reel_engine.worker` subprocess; events are read on a thread and queued."""

    def __init__(self, *args: str, data_dir: str, log_path: str, allow_faults: bool = True):
        env = dict(os.environ)
        env.pop("REEL_ENGINE_ALLOW_FAULTS", None)
        if allow_faults:
            env["REEL_ENGINE_ALLOW_FAULTS"] = "1"
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reel_engine.worker", "--data-dir", data_dir, *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env,
        )
        self.raw_lines: list[bytes] = []
        self.events: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in iter(self.proc.stdout.readline, b""):
            self.raw_lines.append(line)
            try:
                self.events.put(json.loads(line))
            except ValueError:
                self.events.put({"event": "<not json>", "line": line})
        self.events.put(None)  # EOF

    def send(self, request) -> None:
        line = request if isinstance(request, (str, bytes)) else json.dumps(request)
        data = line if isinstance(line, bytes) else line.encode("utf-8")
        self.proc.stdin.write(data + b"\n")
        self.proc.stdin.flush()

    def next_event(self, timeout: float = EVENT_TIMEOUT) -> dict | None:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no event within {timeout}s; worker log:\n{self.log()}") from None

    def wait_for(self, predicate, timeout: float = EVENT_TIMEOUT) -> tuple[dict, list[dict]]:
        """Returns the first event matching `predicate` and the events seen before it."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            event = self.next_event(max(0.1, deadline - time.monotonic()))
            if event is None:
                raise AssertionError(f"worker stdout closed while waiting; seen {seen}; log:\n{self.log()}")
            if predicate(event):
                return event, seen
            seen.append(event)

    def wait_final(self, job: str, timeout: float = EVENT_TIMEOUT) -> tuple[dict, list[dict]]:
        return self.wait_for(lambda e: e.get("job") == job and e["event"] in ("result", "error"), timeout)

    def close_stdin(self) -> None:
        self.proc.stdin.close()

    def wait_exit(self, timeout: float = 60.0) -> int:
        return self.proc.wait(timeout=timeout)

    def log(self) -> str:
        self._log.flush()
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()[-4000:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@pytest.fixture
def start_worker(data_dir, tmp_path):
    """Starts workers for one test and kills any that are still running at its end."""
    workers = []

    def start(*args: str, allow_faults: bool = True) -> WorkerProcess:
        w = WorkerProcess(*args, data_dir=data_dir, log_path=str(tmp_path / f"worker-{len(workers)}.log"),
                          allow_faults=allow_faults)
        workers.append(w)
        return w

    yield start
    for w in workers:
        w.kill()


def generate_request(job: str, out_dir: str, **overrides) -> dict:
    request = {"type": "generate", "job": job, "prompt": "a red fox in snow", "negative_prompt": "blurry",
               "width": 128, "height": 128, "frames": 9, "steps": 2, "guidance": 5.0, "seed": 7,
               "out_dir": out_dir}
    request.update(overrides)
    return request


class ForwardCounter:
    """Counts the forward calls of each of some modules (for example the two A14B experts) until removed."""

    def __init__(self, *modules):
        self.counts = [0] * len(modules)
        self.handles = [m.register_forward_hook(self._hook(i)) for i, m in enumerate(modules)]

    def _hook(self, i):
        def hook(module, args, output):
            self.counts[i] += 1
        return hook

    def remove(self):
        for h in self.handles:
            h.remove()

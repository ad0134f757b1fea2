"""Shared fixtures: one data directory per test session, tiny models loaded once per session, a helper that drives a
worker subprocess (the real one or the scripted one) over its stdin/stdout and one that starts several at once, and
a file system that is full."""

from __future__ import annotations

import errno
import json
import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import pytest

# One intra-op thread for the tests and the workers they start: on a small shared machine, OpenMP threads that
# spin-wait for each other make CPU runs several times slower than one thread. Set before torch is imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")

EVENT_TIMEOUT = 90.0  # generous: the CI machine has 2 cores shared with a Swift build


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("reel-data"))


@pytest.fixture(scope="session")
def libraries():
    """torch, transformers and diffusers imported once for the session as a real worker's start imports them: with the
    collector paused, then frozen (startup.collector_paused), so that the garbage collections of the tests that run
    models in this process do not walk the libraries' objects each time."""
    import gc

    from reel_engine import startup

    with startup.collector_paused():
        startup.import_libraries()
        startup.import_model_classes()
    yield
    gc.unfreeze()  # the interpreter's exit then frees them (else triton's nanobind bindings report them as leaked)


@pytest.fixture(scope="session")
def tiny_ti2v(data_dir, libraries):
    """The tiny TI2V model, loaded once for the session: tests that change it (hooks, caches) undo what they do."""
    from reel_engine.models import load_model

    return load_model("tiny", "cpu", data_dir)


@pytest.fixture(scope="session")
def tiny_a14b(data_dir, libraries):
    from reel_engine.models import load_model

    return load_model("tiny:t2v-a14b", "cpu", data_dir)


@pytest.fixture(scope="session")
def tiny_i2v(data_dir, libraries):
    from reel_engine.models import load_model

    return load_model("tiny:i2v-a14b", "cpu", data_dir)


@pytest.fixture(scope="session")
def tiny_on_disk(data_dir, libraries) -> str:
    """The tiny TI2V model's directory in the session's data directory, created before any worker process is started
    on it, so that workers started together do not each build it."""
    from reel_engine.catalog import TI2V
    from reel_engine.tiny_models import ensure_tiny

    return ensure_tiny(data_dir, TI2V)[0]


@pytest.fixture(scope="session")
def full_size_meta(libraries):
    """The full-size pipeline of an architecture, built once per session on the meta device (shapes, no memory)."""
    import functools

    import torch

    from reel_engine.building import build_pipeline

    @functools.cache
    def build(architecture: str):
        return build_pipeline(architecture, tiny=False, device=torch.device("meta"), dtype=torch.bfloat16)

    return build


REAL_WORKER = "reel_engine.worker"
SCRIPTED_WORKER = "reel_engine.scripted_worker"
WORKERS = {"real": REAL_WORKER, "scripted": SCRIPTED_WORKER}


class WorkerProcess:
    """A `python -m reel_engine.worker` (or `module`) subprocess; events are read on a thread and queued."""

    def __init__(self, *args: str, data_dir: str, log_path: str, allow_faults: bool = True,
                 module: str = REAL_WORKER, env: dict | None = None, command: list[str] | None = None):
        environment = dict(os.environ)
        environment.pop("REEL_ENGINE_ALLOW_FAULTS", None)
        if allow_faults:
            environment["REEL_ENGINE_ALLOW_FAULTS"] = "1"
        environment.update(env or {})
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [*(command or [sys.executable, "-m", module]), "--data-dir", data_dir, *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=environment,
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

    def ready(self) -> dict | None:
        """The worker's first event (its `ready`, or the error it could not start with), read once and kept."""
        if not hasattr(self, "_first_event"):
            self._first_event = self.next_event()
        return self._first_event

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

    def start(*args: str, allow_faults: bool = True, module: str = REAL_WORKER, env: dict | None = None,
              command: list[str] | None = None) -> WorkerProcess:
        w = WorkerProcess(*args, data_dir=data_dir, log_path=str(tmp_path / f"worker-{len(workers)}.log"),
                          allow_faults=allow_faults, module=module, env=env, command=command)
        workers.append(w)
        return w

    yield start
    for w in workers:
        w.kill()


@dataclass(frozen=True)
class EarlyStart:
    """Worker processes a test module needs, declared in its EARLY_WORKERS list so that they are started when the
    session begins (see `early_workers`)."""

    name: str
    count: int
    args: tuple[str, ...]  # "{dir}" in an argument stands for a directory of the session's (rendezvous files)
    module: str = REAL_WORKER
    env: tuple[tuple[str, str], ...] = ()
    selects: str = ""  # started only if the id of a selected test of the module holds this ("": any test)


class EarlyWorkers:
    """Workers started when the session begins, for the selected modules that declare them: a real worker's start is
    mostly importing torch, which then runs while the modules without early workers run (they run first, see
    pytest_collection_modifyitems), instead of while a test waits for it. `take` hands a module its workers."""

    def __init__(self, data_dir: str, log_dir):
        self.data_dir = data_dir
        self.log_dir = log_dir
        self._started: dict[str, list[WorkerProcess]] = {}
        self._taken: list[WorkerProcess] = []

    def start(self, spec: EarlyStart) -> None:
        args = [arg.replace("{dir}", str(self.log_dir)) for arg in spec.args]
        self._started[spec.name] = [
            WorkerProcess(*args, data_dir=self.data_dir, log_path=str(self.log_dir / f"{spec.name}-{i}.log"),
                          module=spec.module, env=dict(spec.env))
            for i in range(spec.count)]

    def take(self, spec: EarlyStart) -> list[WorkerProcess]:
        """The workers started for `spec`, or started now if they were not (a spec no module declares)."""
        if spec.name not in self._started:
            self.start(spec)
        workers = self._started.pop(spec.name)
        self._taken.extend(workers)
        return workers

    def kill(self) -> None:
        for w in self._taken + [w for ws in self._started.values() for w in ws]:
            w.kill()


@pytest.fixture(scope="session")
def early_workers(data_dir, tiny_on_disk, tmp_path_factory):
    workers = EarlyWorkers(data_dir, tmp_path_factory.mktemp("early-worker-logs"))
    yield workers
    workers.kill()


@pytest.fixture(scope="session", autouse=True)
def _start_early_workers(request):
    """Starts, before the session's first test, the workers that the modules of the selected tests declare."""
    items = [item for item in request.session.items if hasattr(item, "module")]
    specs = [spec for module in dict.fromkeys(item.module for item in items)
             for spec in getattr(module, "EARLY_WORKERS", ())
             if any(spec.selects in item.nodeid for item in items if item.module is module)]
    if specs:
        early = request.getfixturevalue("early_workers")
        for spec in specs:
            early.start(spec)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """The modules that declare early workers run last (in their own order), once those workers had time to start."""
    items.sort(key=lambda item: bool(getattr(getattr(item, "module", None), "EARLY_WORKERS", None)))


class WorkerSet:
    """Several workers started at once (a real worker's start is mostly importing torch, so starting them together
    uses both cores of a small machine while the tests wait): `shared` for the tests of a module in file order, and
    spares for tests that end the worker they use (crash and hang hooks), each taken once."""

    def __init__(self, shared: WorkerProcess, spares: list[WorkerProcess]):
        self.shared = shared
        self._spares = list(spares)

    def take(self) -> WorkerProcess:
        """A spare worker, ready: its `ready` event has been read."""
        assert self._spares, "every spare worker of this module is used; start one more in its fixture"
        w = self._spares.pop(0)
        ready = w.ready()
        assert ready is not None and ready["event"] == "ready", w.log()
        return w


def generate_request(job: str, out_dir: str, **overrides) -> dict:
    request = {"type": "generate", "job": job, "prompt": "a red fox in snow", "negative_prompt": "blurry",
               "width": 128, "height": 128, "frames": 9, "steps": 2, "guidance": 5.0, "seed": 7,
               "out_dir": out_dir}
    request.update(overrides)
    return request


def write_image(path, width: int = 96, height: int = 64, seed: int = 0, format: str = "PNG", **save) -> dict:
    """Writes a picture of smooth colour gradients (the VAE's latent of it is not flat) and returns the request's
    reference to it: {"path": ..., "sha256": ...}."""
    import hashlib

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = [np.sin(x / width * rng.uniform(2, 6) + y / height * rng.uniform(2, 6) + rng.uniform(0, 6))
                for _ in range(3)]
    pixels = np.rint(127.5 + 127.5 * np.stack(channels, axis=-1)).astype(np.uint8)
    Image.fromarray(pixels).save(str(path), format=format, **save)
    with open(path, "rb") as f:
        return {"path": str(path), "sha256": hashlib.sha256(f.read()).hexdigest()}


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


def decode_video(path) -> tuple:
    """An MP4 decoded back with PyAV: its stream's codec, pixel format, size and rate, and its frames (n, h, w, 3)."""
    import av
    import numpy as np

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        info = dict(codec=stream.codec_context.name, pix_fmt=stream.codec_context.pix_fmt, width=stream.width,
                    height=stream.height, rate=stream.average_rate)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    return info, np.stack(frames)


def files_under(path) -> list[str]:
    """Every file below `path` (temporary ones included), relative to it."""
    return sorted(os.path.relpath(os.path.join(d, f), path) for d, _, fs in os.walk(path) for f in fs)


class FullDisk:
    """A tmpfs of its own, filled to the last byte: every file written on it fails with ENOSPC until `make_room`."""

    def __init__(self, root):
        self.root = root
        self.filler = os.path.join(root, ".filler")

    def fill(self) -> None:
        with open(self.filler, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e

    def make_room(self) -> None:
        os.remove(self.filler)


def mount_tmpfs(path, options: str) -> None:
    """Mounts a tmpfs at `path`, or skips the test, saying why, where mounting is refused (it needs root)."""
    os.makedirs(path, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True,
                              text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"cannot mount a tmpfs for this test: {e}")
    if done.returncode != 0:
        pytest.skip(f"mount -t tmpfs was refused (it needs root): {done.stderr.strip()}")


def unmount(path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30, check=False)


@pytest.fixture
def full_disk(tmp_path):
    """A full file system (a small tmpfs filled up), unmounted after the test."""
    root = tmp_path / "full-disk"
    mount_tmpfs(root, "size=256k")
    try:
        disk = FullDisk(str(root))
        disk.fill()
        yield disk
    finally:
        unmount(root)


@pytest.fixture
def read_only_disk(tmp_path):
    """A read-only file system (a tmpfs mounted ro), unmounted after the test."""
    root = tmp_path / "read-only-disk"
    mount_tmpfs(root, "size=64k,ro")
    try:
        yield str(root)
    finally:
        unmount(root)

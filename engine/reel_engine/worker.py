"""The worker process: `python -m reel_engine.worker --device DEV --model MODEL [--data-dir DIR] [--memory-saving]`.

stdout belongs to the protocol. Before any library is imported the real stdout file descriptor is kept for events,
and both sys.stdout and fd 1 are pointed at stderr, so neither Python prints nor C libraries can corrupt the
event stream. The main thread reads requests from stdin; a generate runs on its own thread (one at a time), so
ping and cancel are answered while a job runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading

from . import __version__, protocol

log = logging.getLogger("reel_engine.worker")

LOAD_FAILED_EXIT_STATUS = 3
STOP_JOIN_SECONDS = 10.0  # on shutdown/EOF: how long a cancelled job may take to reach a step boundary


def claim_stdout():
    """Keeps the real stdout for events and points fd 1 and sys.stdout at stderr."""
    sys.stdout.flush()
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return open(fd, "wb", buffering=1 << 16)


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


def run_model_job(model, job, emit, hang=None, gpu_done=lambda: None) -> dict:
    """The real job runner (jobs.run_job), imported only when the first job starts."""
    from .jobs import run_job

    return run_job(model, job, emit, hang=hang, gpu_done=gpu_done)


class Worker:
    """Dispatches request lines: answers ping/cancel at once, runs one generate job at a time on a thread.

    `run_job(model, job, emit, hang=, gpu_done=)` runs one job and returns its final event: the real one by
    default, the scripted worker's stand-in in scripted_worker.py. `model` needs `spatial_stride`,
    `temporal_stride` and `text` (with `in` and `prepare(texts)`)."""

    def __init__(self, model, writer: EventWriter, allow_faults: bool = False, run_job=run_model_job):
        self.model = model
        self.writer = writer
        self.run_job = run_job
        self.limits = protocol.Limits(model.spatial_stride, model.temporal_stride, allow_faults)
        self._lock = threading.Lock()
        self._job = None  # the job using the device, at most one
        self._encoding: dict = {}  # jobs whose device work is done, writing their files
        self._threads: dict[str, threading.Thread] = {}

    def serve(self, stdin) -> None:
        """Serves until shutdown or EOF, then cancels any running job."""
        try:
            for line in iter(stdin.readline, b""):
                if line.strip() and not self.handle_line(line):
                    break
        finally:
            self.stop()

    def handle_line(self, line: bytes) -> bool:
        """Handles one request line; returns False when the worker should stop."""
        try:
            request = protocol.parse_request(line, self.limits)
        except protocol.RequestError as e:
            log.warning("bad request: %s", e.message)
            self.writer.emit(protocol.error_event(e.job, "bad_request", e.message))
            return True
        if isinstance(request, protocol.PingRequest):
            self.writer.emit(protocol.pong_event())
        elif isinstance(request, protocol.CancelRequest):
            with self._lock:
                job = self._encoding.get(request.job)
                if self._job is not None and self._job.request.job == request.job:
                    job = self._job
                if job is not None:
                    log.info("cancelling job %s", request.job)
                    job.cancel.set()
        elif isinstance(request, protocol.ShutdownRequest):
            log.info("shutdown requested")
            return False
        elif isinstance(request, protocol.PrepareRequest):
            self.prepare(request)
        else:
            self.start(request)
        return True

    def prepare(self, request) -> None:
        """Encodes the texts of a job that will come, on a thread of its own (the text encoder's device may be
        idle while this one denoises)."""
        texts = [request.prompt] + ([request.negative_prompt] if request.negative_prompt is not None else [])
        texts = [t for t in texts if t not in self.model.text]
        if texts:
            threading.Thread(target=self.model.text.prepare, args=(texts,), name="prepare", daemon=True).start()

    def start(self, request: protocol.GenerateRequest) -> None:
        from .jobflow import Job  # here, after claim_stdout: it imports numpy

        with self._lock:
            if self._job is not None:
                self.writer.emit(protocol.error_event(
                    request.job, "bad_request", f"worker busy: job {self._job.request.job} is running"))
                return
            if request.job in self._encoding:
                self.writer.emit(protocol.error_event(
                    request.job, "bad_request", f"worker busy: job {request.job} is still being encoded"))
                return
            job = Job(request)
            self._job = job
            thread = threading.Thread(target=self._run, args=(job,), name=f"job-{request.job}", daemon=True)
            self._threads[request.job] = thread
            thread.start()

    def _gpu_done(self, job) -> None:
        """The job's device work is over and only its MP4/PNG encoding remains: the device takes the next job."""
        with self._lock:
            if self._job is job:
                self._job = None
                self._encoding[job.request.job] = job

    def _run(self, job) -> None:
        final = self.run_job(self.model, job, self.writer.emit, hang=self._hang, gpu_done=lambda: self._gpu_done(job))
        # The job is forgotten and its final event written under one lock: a client that sends its next
        # generate as soon as it reads the result is never told "busy", and never sees the next job's events
        # before this result.
        with self._lock:
            if self._job is job:
                self._job = None
            self._encoding.pop(job.request.job, None)
            self._threads.pop(job.request.job, None)
            self.writer.emit(final)

    def _hang(self, last_event: dict) -> None:
        """Test hook: send `last_event`, then no event at all (pong included), and never finish the job."""
        self.writer.emit(last_event, then_mute=True)
        threading.Event().wait()

    def stop(self, timeout: float = STOP_JOIN_SECONDS) -> None:
        with self._lock:
            jobs = ([self._job] if self._job is not None else []) + list(self._encoding.values())
            threads = list(self._threads.values())
            for job in jobs:
                log.info("stopping: cancelling job %s", job.request.job)
                job.cancel.set()
        for thread in threads:
            thread.join(timeout)


def parse_args(argv: list[str] | None, prog: str = "python -m reel_engine.worker",
               description: str | None = None) -> argparse.Namespace:
    """The worker's command line (the scripted worker's too: it takes the same flags)."""
    parser = argparse.ArgumentParser(prog=prog, description=description or __doc__.splitlines()[0])
    parser.add_argument("--device", required=True, help="cpu, cuda or cuda:N")
    parser.add_argument("--model", required=True,
                        help="tiny, tiny:t2v-a14b, random:ti2v-5b, random:t2v-a14b, or a diffusers Wan2.2 directory")
    parser.add_argument("--data-dir", default=None, help="where tiny models are cached (default $REEL_DATA_DIR, "
                                                          "else ~/.local/share/reel)")
    parser.add_argument("--memory-saving", action="store_true",
                        help="VAE tiling always, model CPU offload on CUDA")
    parser.add_argument("--text-device", default=None,
                        help="run the text encoder on this device instead of --device (the split layout)")
    parser.add_argument("--memory-budget", type=float, default=None, metavar="GIB",
                        help="cap this worker's GPU memory at GIB and place components to fit")
    parser.add_argument("--approximate", default=None, metavar="NAME[:THRESHOLD]",
                        help="an approximate speed-up that changes the output (off by default): first-block-cache")
    parser.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                        help="regional torch.compile of the transformer blocks, warmed up before ready "
                             "(auto: on CUDA only)")
    group = parser.add_argument_group("parallel groups (distributed.py): one job over several workers")
    group.add_argument("--rank", type=int, default=None, help="this worker's rank in its group")
    group.add_argument("--world-size", type=int, default=None, help="how many workers the group has")
    group.add_argument("--dist-init", default=None, metavar="URL",
                       help="the group's torch.distributed rendezvous: file:///PATH or tcp://127.0.0.1:PORT")
    return parser.parse_args(argv)


def _configure_libraries() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models are local paths; never wait on the network
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_warning()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_warning()
    transformers.utils.logging.disable_progress_bar()


def prepare_for_speed(model, compile_mode: str = "auto", approximate: str | None = None) -> None:
    """On CUDA: picks the fastest attention kernel; compiles the transformer blocks and warms them up at the
    model's default size (compile "on" does it on the CPU too). Records what it did in `model.speed`."""
    import time

    from . import speed

    from .placement import JobShape

    d = model.defaults
    tokens = JobShape(d.width, d.height, d.frames, model.spatial_stride, model.temporal_stride).tokens
    if model.device.type == "cuda":
        model.speed.update(speed.select_attention(model, tokens))
        if not (model.memory_plan is not None and model.memory_plan.model_offload):
            model.speed["vae_warm_up_seconds"] = round(speed.warm_up_vae(model, d.width, d.height, d.frames), 2)
    compile_on = compile_mode == "on" or (compile_mode == "auto" and model.device.type == "cuda")
    if approximate:
        model.speed["approximate"] = speed.apply_approximate(model, approximate)
        compile_on = False  # the cache's hooks decide per step which blocks run: not one graph to compile
    model.speed["compiled"] = compile_on
    if compile_on:
        t0 = time.perf_counter()
        speed.compile_transformers(model)
        speed.warm_up(model, d.width, d.height, d.frames)
        model.speed["warm_up_seconds"] = round(time.perf_counter() - t0, 2)
        log.info("transformer blocks compiled and warmed up at %dx%dx%d in %.1fs", d.width, d.height, d.frames,
                 model.speed["warm_up_seconds"])
    # The negative prompt jobs share unless a style or the user sets one (empty) is encoded once, now.
    model.text.prepare([""])


def ready_fields(model) -> dict:
    from .models import memory_info

    free, total = memory_info(model.device)
    return dict(
        device=str(model.device),
        model=model.name,
        architecture=model.architecture,
        dtype=model.dtype_name,
        free_memory_bytes=free,
        total_memory_bytes=total,
        fps=model.fps,
        spatial_stride=model.spatial_stride,
        temporal_stride=model.temporal_stride,
        engine_version=__version__,
        pid=os.getpid(),
        random_weights=model.random_weights,
        load_seconds=round(model.load_seconds, 3),
        defaults=model.defaults.to_json(),
        memory_saving=model.memory_saving,
        model_path=model.path,
        placement=model.memory_plan.to_json() | {"text_device": str(model.text_device or model.device),
                                                 "text_encoder": model.text.placement},
        speed=model.speed,
    )


def main(argv: list[str] | None = None) -> int:
    out = claim_stdout()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    writer = EventWriter(out)
    allow_faults = os.environ.get("REEL_ENGINE_ALLOW_FAULTS") == "1"
    log.info("reel-engine %s starting: model %s on %s (pid %d)", __version__, args.model, args.device, os.getpid())
    try:
        _configure_libraries()
        from .models import load_model

        group = None
        if args.world_size is not None or args.rank is not None or args.dist_init is not None:
            from . import distributed  # every rank joins before loading, so a missing rank fails fast

            group = distributed.join(args.rank, args.world_size, args.dist_init, args.device, args.model)
        model = load_model(args.model, args.device, args.data_dir, memory_saving=args.memory_saving,
                           text_device=args.text_device, memory_budget_gib=args.memory_budget)
        if group is not None:  # before compilation: the compiled blocks must see the sharded attention
            distributed.attach(model, group)
        prepare_for_speed(model, args.compile, args.approximate)
    except Exception as e:  # any load failure is reported as one event, then exit 3
        code, message = _load_error(e)
        log.error("loading %s failed: %s", args.model, message, exc_info=type(e).__name__ != "ModelError")
        writer.emit(protocol.error_event(None, code, message))
        return LOAD_FAILED_EXIT_STATUS
    writer.emit(protocol.ready_event(**ready_fields(model), **(group.ready_fields() if group is not None else {})))
    log.info("ready: %s (%s, %s) in %.2fs", model.name, model.architecture, model.dtype_name, model.load_seconds)
    try:
        Worker(model, writer, allow_faults=allow_faults).serve(sys.stdin.buffer)
    except KeyboardInterrupt:
        return 130
    return 0


def _load_error(e: Exception) -> tuple[str, str]:
    try:
        import torch

        oom = isinstance(e, (MemoryError, torch.cuda.OutOfMemoryError))
    except Exception:  # torch itself may be what failed to import
        oom = isinstance(e, MemoryError)
    if oom:
        return "out_of_memory", f"out of memory while loading the model: {e}"
    if type(e).__name__ == "ModelError":
        return "model_error", str(e)
    return "model_error", f"{type(e).__name__}: {e}"


if __name__ == "__main__":
    status = main()
    sys.stderr.flush()
    # os._exit: a cancelled job's daemon thread may still be inside torch; interpreter teardown around it can crash.
    os._exit(status)

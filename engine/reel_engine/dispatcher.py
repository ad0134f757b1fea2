"""The worker's dispatcher: reads request lines, answers ping and cancel at once, runs one generate job at a time on
a thread of its own (the next one may start while the previous one encodes its files), encodes texts ahead on
`prepare`, and cancels what runs on shutdown or EOF. Model-agnostic: the real worker and the scripted one run it
with their own job runner."""

from __future__ import annotations

import logging
import threading

from . import protocol
from .event_writer import EventWriter

log = logging.getLogger("reel_engine.dispatcher")

STOP_JOIN_SECONDS = 10.0  # on shutdown/EOF: how long a cancelled job may take to reach a step boundary


def run_model_job(model, job, emit, hang=None, gpu_done=lambda: None) -> dict:
    """The real job runner (jobs.run_job), imported only when the first job starts."""
    from .jobs import run_job

    return run_job(model, job, emit, hang=hang, gpu_done=gpu_done)


class Worker:
    """Dispatches request lines: answers ping/cancel at once, runs one generate job at a time on a thread.

    `run_job(model, job, emit, hang=, gpu_done=)` runs one job and returns its final event: the real one by
    default, the scripted worker's stand-in in scripted_worker.py. `model` needs `architecture` (which images its
    requests may give), `spatial_stride`, `temporal_stride` and `text` (with `in` and `prepare(texts)`)."""

    def __init__(self, model, writer: EventWriter, allow_faults: bool = False, run_job=run_model_job):
        self.model = model
        self.writer = writer
        self.run_job = run_job
        self.limits = protocol.Limits(model.spatial_stride, model.temporal_stride, allow_faults,
                                      architecture=getattr(model, "architecture", None),
                                      lora_slots=getattr(model, "lora_slots", None))
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

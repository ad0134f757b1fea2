"""The protocol's dispatch rules, through a worker process: bad requests, ping and busy while a job runs, a job still
encoding, prepare, shutdown, EOF during a job, the testing-hook switch and a model that cannot be loaded.

Both workers run these rules through the same code (dispatcher.Worker, protocol.py's parser and validation, the
event writer, catalog.py's directory check), whatever model is loaded, so they are tested once, on the scripted
worker, which starts in a fraction of a second. What depends on the model is in test_conformance.py, against both."""

import json
import os
import shutil

import pytest
from conftest import SCRIPTED_WORKER, WorkerProcess, generate_request

# The scripted worker's steps take no time: a window in which a test acts while a job is in some phase needs only
# a fraction of the real worker's delays.
PACE = 0.35


@pytest.fixture(scope="module")
def worker(data_dir, tmp_path_factory):
    """One worker shared by the tests below in file order; the shutdown test ends it."""
    log_dir = tmp_path_factory.mktemp("dispatcher-worker-logs")
    w = WorkerProcess("--device", "cpu", "--model", "tiny", data_dir=data_dir, log_path=str(log_dir / "worker.log"),
                      module=SCRIPTED_WORKER)
    assert w.next_event()["event"] == "ready", w.log()
    yield w
    w.kill()


@pytest.mark.parametrize("line, job, fragment", [
    ("this is not json", None, "not valid JSON"),
    ("[1, 2, 3]", None, "must be a JSON object"),
    ('{"type":"teleport","job":"t-1"}', "t-1", "unknown request type"),
    (json.dumps({k: v for k, v in generate_request("m-1", "/tmp/x").items() if k != "prompt"}), "m-1",
     "prompt: missing field"),
    (json.dumps(generate_request("s-1", "/tmp/x", width=100)), "s-1", "width: 100 is not a multiple"),
    (json.dumps(generate_request("f-1", "/tmp/x", frames=10)), "f-1", "frames: 10"),
    (json.dumps(generate_request("i-1", "/tmp/x", interpolate=3)), "i-1", "interpolate: must be 1, 2 or 4"),
])
def test_bad_requests_get_an_error_and_the_worker_keeps_serving(worker, line, job, fragment):
    worker.send(line)
    event = worker.next_event()
    assert event["event"] == "error" and event["code"] == "bad_request", event
    assert event["job"] == job and fragment in event["message"]
    worker.send({"type": "ping"})
    assert worker.next_event() == {"event": "pong"}


def test_generate_after_bad_requests_succeeds(worker, tmp_path):
    worker.send(generate_request("g-1", str(tmp_path / "g-1")))
    final, _ = worker.wait_final("g-1")
    assert final["event"] == "result", final
    assert os.path.isfile(final["outputs"]["video"])


def test_ping_and_busy_while_a_job_runs(worker, tmp_path):
    worker.send(generate_request("p-1", str(tmp_path / "p-1"), steps=3, debug={"step_delay": 0.7 * PACE}))
    worker.wait_for(lambda e: e.get("stage") == "denoising")
    worker.send({"type": "ping"})
    worker.send(generate_request("p-2", str(tmp_path / "p-2")))
    pong, _ = worker.wait_for(lambda e: e["event"] != "progress")
    assert pong == {"event": "pong"}
    busy, _ = worker.wait_for(lambda e: e["event"] != "progress")
    assert busy["event"] == "error" and busy["job"] == "p-2" and busy["code"] == "bad_request"
    assert "worker busy" in busy["message"]
    final, _ = worker.wait_final("p-1")
    assert final["event"] == "result"
    assert not os.path.exists(tmp_path / "p-2")


def test_a_job_still_encoding_cannot_be_started_twice(worker, tmp_path):
    worker.send(generate_request("d-1", str(tmp_path / "d-1"), debug={"encode_delay": 2.0 * PACE}))
    worker.wait_for(lambda e: e.get("job") == "d-1" and e.get("stage") == "encoding")
    worker.send(generate_request("d-1", str(tmp_path / "d-1")))
    busy, _ = worker.wait_for(lambda e: e["event"] == "error")
    assert busy["job"] == "d-1" and "still being encoded" in busy["message"]
    final, _ = worker.wait_final("d-1")
    assert final["event"] == "result"


def test_a_bad_prepare_is_refused_by_field(worker):
    worker.send({"type": "prepare", "prompt": "  "})
    event = worker.next_event()
    assert event["event"] == "error" and event["code"] == "bad_request" and "prompt" in event["message"]


def test_shutdown_exits_zero(worker):
    worker.send({"type": "shutdown"})
    assert worker.wait_exit() == 0
    assert worker.next_event() is None  # stdout closed, nothing after the last event


def test_eof_during_a_job_cancels_it_and_exits_zero(start_worker, tmp_path):
    w = start_worker("--device", "cpu", "--model", "tiny", module=SCRIPTED_WORKER)
    assert w.next_event()["event"] == "ready", w.log()
    w.send(generate_request("e-1", str(tmp_path / "e-1"), steps=50, debug={"step_delay": 1.0 * PACE}))
    w.wait_for(lambda e: e.get("job") == "e-1" and e.get("stage") == "denoising")
    w.close_stdin()
    assert w.wait_exit(timeout=30) == 0
    final, _ = w.wait_final("e-1", timeout=5)
    assert final["code"] == "cancelled"
    assert w.next_event() is None  # stdout closed, nothing after the last event


def test_debug_is_refused_without_the_environment_switch(start_worker, tmp_path):
    w = start_worker("--device", "cpu", "--model", "tiny", allow_faults=False, module=SCRIPTED_WORKER)
    assert w.next_event()["event"] == "ready", w.log()
    w.send(generate_request("d-1", str(tmp_path / "d-1"), debug={"crash_at_step": 1}))
    event = w.next_event()
    assert event["code"] == "bad_request" and "REEL_ENGINE_ALLOW_FAULTS" in event["message"]
    w.close_stdin()
    assert w.wait_exit() == 0


def test_incomplete_model_directory_is_a_model_error_with_status_3(start_worker, tiny_on_disk, tmp_path):
    path = tmp_path / "Wan2.2-TI2V-5B-Diffusers"
    shutil.copytree(tiny_on_disk, path)
    shutil.rmtree(path / "vae")
    w = start_worker("--device", "cpu", "--model", str(path), module=SCRIPTED_WORKER)
    assert w.wait_exit() == 3
    event = w.next_event()
    assert event["event"] == "error" and event["code"] == "model_error" and event["job"] is None
    assert "'vae'" in event["message"] and "Wan-AI/Wan2.2-TI2V-5B-Diffusers" in event["message"]
    assert w.next_event() is None and len(w.raw_lines) == 1

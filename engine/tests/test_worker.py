"""The worker as a real subprocess speaking the protocol over stdin/stdout."""

import json
import os
import shutil
import time

import pytest
from conftest import WorkerProcess, files_under, generate_request

READY_FIELDS = {"event", "protocol", "device", "model", "architecture", "dtype", "free_memory_bytes",
                "total_memory_bytes", "fps", "spatial_stride", "temporal_stride", "engine_version", "pid",
                "random_weights", "load_seconds", "defaults", "memory_saving", "model_path", "placement", "speed"}


@pytest.fixture(scope="module")
def worker(data_dir, tmp_path_factory):
    """One worker shared by the tests below, in file order; the last test shuts it down."""
    log_dir = tmp_path_factory.mktemp("worker-logs")
    w = WorkerProcess("--device", "cpu", "--model", "tiny", data_dir=data_dir, log_path=str(log_dir / "worker.log"))
    w.ready = w.next_event()
    yield w
    w.kill()


def test_ready_event(worker):
    ready = worker.ready
    assert ready["event"] == "ready", worker.log()
    assert set(ready) == READY_FIELDS
    assert ready["protocol"] == 1 and ready["device"] == "cpu" and ready["model"] == "tiny"
    assert ready["architecture"] == "ti2v-5b" and ready["dtype"] == "float32" and ready["random_weights"] is True
    assert (ready["fps"], ready["spatial_stride"], ready["temporal_stride"]) == (24, 32, 4)
    # No budget on the CPU: everything resident; no compilation on the CPU unless asked for.
    assert ready["placement"]["tier"] == "resident" and ready["placement"]["text_encoder"] == "resident"
    assert ready["speed"]["compiled"] is False
    assert ready["pid"] == worker.proc.pid and ready["engine_version"] == "0.1.0"
    assert 0 < ready["free_memory_bytes"] <= ready["total_memory_bytes"]
    assert ready["defaults"] == {"width": 256, "height": 256, "frames": 17, "steps": 4, "guidance": 5.0}
    assert ready["memory_saving"] is False and ready["model_path"].endswith("tiny-ti2v-5b")


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
    worker.send(generate_request("g-1", str(tmp_path / "g-1"), png_frames=True))
    final, seen = worker.wait_final("g-1")
    assert final["event"] == "result", final
    assert final["outputs"]["frame_count"] == 9 and os.path.isfile(final["outputs"]["video"])
    assert sorted(os.listdir(tmp_path / "g-1")) == ["frames", "job.json", "video.mp4"]
    assert [e["stage"] for e in seen if e["event"] == "progress"][0] == "text_encoding"


def test_interpolated_generate(worker, tmp_path):
    worker.send(generate_request("i-2", str(tmp_path / "i-2"), width=64, height=64, interpolate=2))
    final, seen = worker.wait_final("i-2")
    assert final["event"] == "result", final
    assert (final["outputs"]["frame_count"], final["outputs"]["fps"]) == (17, 48)
    assert "interpolating" in final["seconds"]
    stages = [(e["stage"], e["step"]) for e in seen if e["event"] == "progress"]
    assert stages[-4:] == [("interpolating", 0), ("interpolating", 1), ("encoding", 0), ("encoding", 1)]


def test_ping_and_busy_while_a_job_runs(worker, tmp_path):
    worker.send(generate_request("p-1", str(tmp_path / "p-1"), steps=3, debug={"step_delay": 0.7}))
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


def test_cancel_during_a_job_then_the_next_job_runs(worker, tmp_path):
    worker.send(generate_request("c-1", str(tmp_path / "c-1"), steps=20, debug={"step_delay": 1.0}))
    first, _ = worker.wait_for(lambda e: e.get("job") == "c-1" and e.get("stage") == "denoising")
    worker.send({"type": "cancel", "job": "some-other-job"})  # ignored
    worker.send({"type": "cancel", "job": "c-1"})
    final, seen = worker.wait_final("c-1", timeout=30)
    assert final["event"] == "error" and final["code"] == "cancelled", final
    assert max([first["step"]] + [e["step"] for e in seen if e.get("stage") == "denoising"]) < 20
    assert not os.path.exists(tmp_path / "c-1" / "video.mp4")
    worker.send(generate_request("c-2", str(tmp_path / "c-2")))
    final, _ = worker.wait_final("c-2")
    assert final["event"] == "result"


def _job_json(out_dir) -> dict:
    with open(os.path.join(out_dir, "job.json"), encoding="utf-8") as f:
        return json.load(f)


def test_next_job_denoises_while_the_previous_one_encodes(worker, tmp_path):
    # o-1's encoding is held for 3 s; once o-1 reports the encoding stage the device is free, so o-2 is accepted
    # and denoises while o-1 is still writing its files.
    worker.send(generate_request("o-1", str(tmp_path / "o-1"), debug={"encode_delay": 3.0}))
    worker.wait_for(lambda e: e.get("job") == "o-1" and e.get("stage") == "encoding")
    worker.send(generate_request("o-2", str(tmp_path / "o-2")))
    denoising, before = worker.wait_for(lambda e: e.get("job") == "o-2" and e.get("stage") == "denoising")
    assert not any(e.get("job") == "o-1" and e["event"] in ("result", "error") for e in before), before
    first, seen = worker.wait_for(lambda e: e["event"] in ("result", "error"))
    second, _ = worker.wait_for(lambda e: e["event"] in ("result", "error"))
    finals = {first["job"]: first, second["job"]: second}
    assert set(finals) == {"o-1", "o-2"} and all(f["event"] == "result" for f in finals.values()), finals
    for job in ("o-1", "o-2"):
        assert os.path.isfile(finals[job]["outputs"]["video"]) and _job_json(tmp_path / job)["job"] == job


def test_a_job_still_encoding_cannot_be_started_twice(worker, tmp_path):
    worker.send(generate_request("d-1", str(tmp_path / "d-1"), debug={"encode_delay": 2.0}))
    worker.wait_for(lambda e: e.get("job") == "d-1" and e.get("stage") == "encoding")
    worker.send(generate_request("d-1", str(tmp_path / "d-1")))
    busy, _ = worker.wait_for(lambda e: e["event"] == "error")
    assert busy["job"] == "d-1" and "still being encoded" in busy["message"]
    final, _ = worker.wait_final("d-1")
    assert final["event"] == "result"


def test_text_embeddings_are_reused_and_prepared_ahead(worker, tmp_path):
    # The first job with a new prompt encodes it; the negative prompt "blurry" was encoded by an earlier test.
    worker.send(generate_request("t-1", str(tmp_path / "t-1"), prompt="a lighthouse at dusk"))
    assert worker.wait_final("t-1")[0]["event"] == "result"
    assert _job_json(tmp_path / "t-1")["text_embeddings"] == {"prompt": "miss", "negative_prompt": "hit"}
    # The same prompt again: nothing to encode.
    worker.send(generate_request("t-2", str(tmp_path / "t-2"), prompt="a lighthouse at dusk", seed=8))
    assert worker.wait_final("t-2")[0]["event"] == "result"
    assert _job_json(tmp_path / "t-2")["text_embeddings"] == {"prompt": "hit", "negative_prompt": "hit"}
    # A prompt announced with `prepare` is encoded before its job arrives.
    worker.send({"type": "prepare", "prompt": "a paper boat on a river", "negative_prompt": "grainy"})
    worker.send({"type": "ping"})
    assert worker.wait_for(lambda e: e["event"] == "pong")[0] == {"event": "pong"}
    time.sleep(1.0)
    worker.send(generate_request("t-3", str(tmp_path / "t-3"), prompt="a paper boat on a river",
                                 negative_prompt="grainy"))
    assert worker.wait_final("t-3")[0]["event"] == "result"
    record = _job_json(tmp_path / "t-3")
    assert record["text_embeddings"] == {"prompt": "hit", "negative_prompt": "hit"}
    assert record["execution"]["compiled"] is False and record["execution"]["placement"]["tier"] == "resident"
    assert record["execution"]["approximate"] is None  # exact by default


def test_a_bad_prepare_is_refused_by_field(worker):
    worker.send({"type": "prepare", "prompt": "  "})
    event = worker.next_event()
    assert event["event"] == "error" and event["code"] == "bad_request" and "prompt" in event["message"]


def stages(events) -> list[tuple]:
    return [(e["stage"], e["step"], e["total"]) for e in events if e["event"] == "progress"]


def test_a_full_disk_fails_the_job_at_once_and_the_next_job_succeeds(worker, full_disk):
    out = os.path.join(full_disk.root, "f-1")
    worker.send(generate_request("f-1", out))
    final, _ = worker.wait_final("f-1")
    assert final == {"event": "error", "job": "f-1", "code": "disk_full",
                     "message": f"cannot write the video {out}/video.mp4: No space left on device (ENOSPC)"}
    assert files_under(out) == []  # no partial file, no temporary one
    # A checkpoint that cannot be written fails the job before it decodes anything.
    worker.send(generate_request("f-2", os.path.join(full_disk.root, "f-2"), steps=4, checkpoint_every=1))
    final, seen = worker.wait_final("f-2")
    checkpoint = os.path.join(full_disk.root, "f-2", "checkpoint.pt")
    assert (final["code"], final["message"]) == (
        "disk_full", f"cannot write the checkpoint {checkpoint}: No space left on device (ENOSPC)")
    assert {s[0] for s in stages(seen)} <= {"text_encoding", "denoising"}, seen
    assert files_under(os.path.join(full_disk.root, "f-2")) == []
    full_disk.make_room()
    worker.send(generate_request("f-1", out))
    final, _ = worker.wait_final("f-1")
    assert final["event"] == "result", final
    assert files_under(out) == ["job.json", "video.mp4"]


def test_a_read_only_file_system_fails_the_job_as_output_unwritable(worker, read_only_disk):
    out = os.path.join(read_only_disk, "r-1")
    worker.send(generate_request("r-1", out))
    final, seen = worker.wait_final("r-1")
    assert final == {"event": "error", "job": "r-1", "code": "output_unwritable",
                     "message": f"cannot write the job directory {out}: Read-only file system (EROFS)"}
    assert seen == []  # before any work


def test_stdout_holds_only_json_event_lines(worker):
    assert worker.raw_lines
    for line in worker.raw_lines:
        assert line.endswith(b"\n")
        event = json.loads(line)
        assert isinstance(event, dict) and "event" in event


def test_shutdown_exits_zero(worker):
    worker.send({"type": "shutdown"})
    assert worker.wait_exit() == 0
    assert worker.next_event() is None  # stdout closed, nothing after the last event


def test_eof_during_a_job_cancels_it_and_exits_zero(start_worker, tmp_path):
    w = start_worker("--device", "cpu", "--model", "tiny")
    assert w.next_event()["event"] == "ready", w.log()
    w.send(generate_request("e-1", str(tmp_path / "e-1"), steps=50, debug={"step_delay": 1.0}))
    w.wait_for(lambda e: e.get("stage") == "denoising")
    w.close_stdin()
    assert w.wait_exit(timeout=30) == 0
    final, _ = w.wait_final("e-1", timeout=5)
    assert final["code"] == "cancelled"


def test_incomplete_model_directory_is_a_model_error_with_status_3(start_worker, tiny_ti2v, tmp_path):
    path = tmp_path / "Wan2.2-TI2V-5B-Diffusers"
    shutil.copytree(tiny_ti2v.path, path)
    shutil.rmtree(path / "vae")
    w = start_worker("--device", "cpu", "--model", str(path))
    assert w.wait_exit() == 3
    event = w.next_event()
    assert event["event"] == "error" and event["code"] == "model_error" and event["job"] is None
    assert "'vae'" in event["message"] and "Wan-AI/Wan2.2-TI2V-5B-Diffusers" in event["message"]
    assert w.next_event() is None and len(w.raw_lines) == 1


@pytest.mark.parametrize("debug, last", [
    ({"crash_at_step": 2}, ("denoising", 2, 4)),
    ({"crash_in": "encoding"}, ("encoding", 0, 1)),
])
def test_crash_hooks_exit_with_status_70(start_worker, tmp_path, debug, last):
    w = start_worker("--device", "cpu", "--model", "tiny")
    assert w.next_event()["event"] == "ready", w.log()
    w.send(generate_request("x-1", str(tmp_path / "x-1"), steps=4, debug=debug))
    assert w.wait_exit() == 70
    events = []
    while (event := w.next_event()) is not None:
        events.append(event)
    stage, step, total = last
    assert events[-1] == {"event": "progress", "job": "x-1", "stage": stage, "step": step, "total": total}
    assert not os.path.exists(tmp_path / "x-1" / "video.mp4")


def test_hang_hook_stops_all_events(start_worker, tmp_path):
    w = start_worker("--device", "cpu", "--model", "tiny")
    assert w.next_event()["event"] == "ready", w.log()
    w.send(generate_request("h-1", str(tmp_path / "h-1"), steps=4, debug={"hang_at_step": 1}))
    last, _ = w.wait_for(lambda e: e.get("stage") == "denoising")
    assert last["step"] == 1
    w.send({"type": "ping"})
    with pytest.raises(AssertionError, match="no event within"):
        w.next_event(timeout=2)
    assert w.proc.poll() is None


def test_debug_is_refused_without_the_environment_switch(start_worker, tmp_path):
    w = start_worker("--device", "cpu", "--model", "tiny", allow_faults=False)
    assert w.next_event()["event"] == "ready", w.log()
    w.send(generate_request("d-1", str(tmp_path / "d-1"), debug={"crash_at_step": 1}))
    event = w.next_event()
    assert event["code"] == "bad_request" and "REEL_ENGINE_ALLOW_FAULTS" in event["message"]
    w.close_stdin()
    assert w.wait_exit() == 0

"""Worker protocol conformance: the real worker and the scripted worker as subprocesses speaking the protocol over
stdin/stdout, each test run against both (`kind` is `real` or `scripted`). What a parent sees must not tell them
apart, except for the scripted worker's `"scripted": true` in `ready` and job.json."""

import json
import os
import shutil
import time

import pytest
from conftest import WORKERS, WorkerProcess, decode_video, files_under, generate_request

READY_FIELDS = {"event", "protocol", "device", "model", "architecture", "dtype", "free_memory_bytes",
                "total_memory_bytes", "fps", "spatial_stride", "temporal_stride", "engine_version", "pid",
                "random_weights", "load_seconds", "defaults", "memory_saving", "model_path", "placement", "speed"}


@pytest.fixture(scope="module", params=sorted(WORKERS))
def kind(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def pace(kind) -> float:
    """How much of the real worker's delays a test needs: the scripted worker's steps take no time, so the windows in
    which a test acts while a job is in some phase can be shorter."""
    return 1.0 if kind == "real" else 0.35


@pytest.fixture(scope="module")
def worker(kind, data_dir, tmp_path_factory):
    """One worker of each kind shared by the tests below, in file order; the shutdown test ends it."""
    log_dir = tmp_path_factory.mktemp(f"{kind}-worker-logs")
    w = WorkerProcess("--device", "cpu", "--model", "tiny", data_dir=data_dir, log_path=str(log_dir / "worker.log"),
                      module=WORKERS[kind])
    w.ready = w.next_event()
    yield w
    w.kill()


def test_ready_event(worker, kind):
    ready = worker.ready
    assert ready["event"] == "ready", worker.log()
    assert set(ready) == READY_FIELDS | ({"scripted"} if kind == "scripted" else set())
    assert ready.get("scripted", False) is (kind == "scripted")
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


def stages(events) -> list[tuple]:
    return [(e["stage"], e["step"], e["total"]) for e in events if e["event"] == "progress"]


def test_generate_after_bad_requests_succeeds(worker, kind, tmp_path):
    out = tmp_path / "g-1"
    worker.send(generate_request("g-1", str(out), png_frames=True))
    final, seen = worker.wait_final("g-1")
    assert final["event"] == "result", final
    assert final["outputs"] == {"dir": str(out), "video": str(out / "video.mp4"), "metadata": str(out / "job.json"),
                                "frames_dir": str(out / "frames"), "frame_count": 9, "width": 128, "height": 128,
                                "fps": 24}
    assert set(final["seconds"]) == {"text_encoding", "denoising", "vae_decode", "encoding", "total"}
    assert final["peak_memory_bytes"] > 0
    assert stages(seen) == [("text_encoding", 0, 1), ("text_encoding", 1, 1), ("denoising", 1, 2),
                            ("denoising", 2, 2), ("vae_decode", 0, 1), ("vae_decode", 1, 1), ("encoding", 0, 1),
                            ("encoding", 1, 1)]
    assert files_under(out) == sorted(["job.json", "video.mp4"] + [f"frames/{i:06d}.png" for i in range(1, 10)])
    info, frames = decode_video(final["outputs"]["video"])
    assert (info["codec"], info["pix_fmt"], info["rate"]) == ("h264", "yuv420p", 24)
    assert frames.shape == (9, 128, 128, 3)
    record = json.loads((out / "job.json").read_text())
    assert (record["job"], record["frames"], record["fps"], record["seed"]) == ("g-1", 9, 24, 7)
    assert record["seconds"] == final["seconds"] and record.get("scripted", False) is (kind == "scripted")


def test_interpolated_generate(worker, tmp_path):
    worker.send(generate_request("i-2", str(tmp_path / "i-2"), width=64, height=64, interpolate=2))
    final, seen = worker.wait_final("i-2")
    assert final["event"] == "result", final
    assert (final["outputs"]["frame_count"], final["outputs"]["fps"]) == (17, 48)
    assert "interpolating" in final["seconds"]
    assert stages(seen)[-4:] == [("interpolating", 0, 1), ("interpolating", 1, 1), ("encoding", 0, 1),
                                 ("encoding", 1, 1)]
    info, frames = decode_video(final["outputs"]["video"])
    assert info["rate"] == 48 and frames.shape == (17, 64, 64, 3)
    record = json.loads((tmp_path / "i-2" / "job.json").read_text())
    assert (record["frames"], record["fps"], record["source_frames"], record["source_fps"]) == (17, 48, 9, 24)


def test_ping_and_busy_while_a_job_runs(worker, pace, tmp_path):
    worker.send(generate_request("p-1", str(tmp_path / "p-1"), steps=3, debug={"step_delay": 0.7 * pace}))
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


def test_cancel_during_a_job_then_the_next_job_runs(worker, pace, tmp_path):
    worker.send(generate_request("c-1", str(tmp_path / "c-1"), steps=20, debug={"step_delay": 1.0 * pace}))
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


def test_next_job_denoises_while_the_previous_one_encodes(worker, pace, tmp_path):
    # o-1's encoding is held for a while; once o-1 reports the encoding stage the device is free, so o-2 is accepted
    # and denoises while o-1 is still writing its files.
    worker.send(generate_request("o-1", str(tmp_path / "o-1"), debug={"encode_delay": 3.0 * pace}))
    worker.wait_for(lambda e: e.get("job") == "o-1" and e.get("stage") == "encoding")
    worker.send(generate_request("o-2", str(tmp_path / "o-2")))
    _, before = worker.wait_for(lambda e: e.get("job") == "o-2" and e.get("stage") == "denoising")
    assert not any(e.get("job") == "o-1" and e["event"] in ("result", "error") for e in before), before
    first, _ = worker.wait_for(lambda e: e["event"] in ("result", "error"))
    second, _ = worker.wait_for(lambda e: e["event"] in ("result", "error"))
    finals = {first["job"]: first, second["job"]: second}
    assert set(finals) == {"o-1", "o-2"} and all(f["event"] == "result" for f in finals.values()), finals
    for job in ("o-1", "o-2"):
        assert os.path.isfile(finals[job]["outputs"]["video"]) and _job_json(tmp_path / job)["job"] == job


def test_a_job_still_encoding_cannot_be_started_twice(worker, pace, tmp_path):
    worker.send(generate_request("d-1", str(tmp_path / "d-1"), debug={"encode_delay": 2.0 * pace}))
    worker.wait_for(lambda e: e.get("job") == "d-1" and e.get("stage") == "encoding")
    worker.send(generate_request("d-1", str(tmp_path / "d-1")))
    busy, _ = worker.wait_for(lambda e: e["event"] == "error")
    assert busy["job"] == "d-1" and "still being encoded" in busy["message"]
    final, _ = worker.wait_final("d-1")
    assert final["event"] == "result"


def test_text_embeddings_are_reused_and_prepared_ahead(worker, pace, tmp_path):
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
    time.sleep(1.0 * pace)
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


def test_oom_hook_fails_the_job_and_the_worker_keeps_serving(worker, tmp_path):
    worker.send(generate_request("m-1", str(tmp_path / "m-1"), steps=3, debug={"oom_at_step": 2}))
    final, seen = worker.wait_final("m-1")
    assert final["event"] == "error" and final["code"] == "out_of_memory", final
    assert "cpu ran out of memory during denoising" in final["message"]
    assert [s for s in stages(seen) if s[0] == "denoising"] == [("denoising", 1, 3), ("denoising", 2, 3)]
    # With memory_saving (the scheduler's retry after an out-of-memory error) the hook stands down.
    worker.send(generate_request("m-1", str(tmp_path / "m-1"), steps=3, memory_saving=True,
                                 debug={"oom_at_step": 2}))
    assert worker.wait_final("m-1")[0]["event"] == "result"


def test_a_failed_job_resumes_from_its_checkpoint(worker, tmp_path):
    out = tmp_path / "k-1"
    request = generate_request("k-1", str(out), steps=4, checkpoint_every=1)
    worker.send({**request, "debug": {"oom_at_step": 2}})
    assert worker.wait_final("k-1")[0]["code"] == "out_of_memory"
    assert os.listdir(out) == ["checkpoint.pt"]  # a failed job leaves its last checkpoint, nothing else
    worker.send(request)
    final, seen = worker.wait_final("k-1")
    assert final["event"] == "result", final
    kinds = [(e["event"], e.get("stage"), e.get("step")) for e in seen]
    assert kinds[:5] == [("progress", "text_encoding", 0), ("progress", "text_encoding", 1), ("resumed", None, 2),
                         ("progress", "denoising", 3), ("progress", "denoising", 4)]
    assert seen[2] == {"event": "resumed", "job": "k-1", "step": 2, "total": 4}
    assert sorted(os.listdir(out)) == ["job.json", "video.mp4"]  # the checkpoint is gone once the files exist
    assert _job_json(out)["resumed_from_step"] == 2 and _job_json(out)["checkpoint_every"] == 1


def test_a_checkpoint_of_another_job_is_rejected_first_and_the_job_starts_over(worker, tmp_path):
    out = tmp_path / "k-2"
    worker.send(generate_request("k-2", str(out), seed=8, steps=3, checkpoint_every=1, debug={"oom_at_step": 1}))
    assert worker.wait_final("k-2")[0]["code"] == "out_of_memory"
    worker.send(generate_request("k-2", str(out), seed=7, steps=3))
    final, seen = worker.wait_final("k-2")
    assert final["event"] == "result", final
    assert seen[0]["event"] == "checkpoint_rejected" and seen[0]["job"] == "k-2"
    assert seen[0]["reason"] == "does not match the request: seed is 8 in the checkpoint, 7 in the request"
    assert stages(seen[1:])[:3] == [("text_encoding", 0, 1), ("text_encoding", 1, 1), ("denoising", 1, 3)]
    assert not [e for e in seen if e["event"] == "resumed"] and sorted(os.listdir(out)) == ["job.json", "video.mp4"]


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


def test_eof_during_a_job_cancels_it_and_exits_zero(start_worker, kind, pace, tmp_path):
    w = start_worker("--device", "cpu", "--model", "tiny", module=WORKERS[kind])
    assert w.next_event()["event"] == "ready", w.log()
    w.send(generate_request("e-1", str(tmp_path / "e-1"), steps=50, debug={"step_delay": 1.0 * pace}))
    w.wait_for(lambda e: e.get("stage") == "denoising")
    w.close_stdin()
    assert w.wait_exit(timeout=30) == 0
    final, _ = w.wait_final("e-1", timeout=5)
    assert final["code"] == "cancelled"


def test_incomplete_model_directory_is_a_model_error_with_status_3(start_worker, kind, tiny_ti2v, tmp_path):
    path = tmp_path / "Wan2.2-TI2V-5B-Diffusers"
    shutil.copytree(tiny_ti2v.path, path)
    shutil.rmtree(path / "vae")
    w = start_worker("--device", "cpu", "--model", str(path), module=WORKERS[kind])
    assert w.wait_exit() == 3
    event = w.next_event()
    assert event["event"] == "error" and event["code"] == "model_error" and event["job"] is None
    assert "'vae'" in event["message"] and "Wan-AI/Wan2.2-TI2V-5B-Diffusers" in event["message"]
    assert w.next_event() is None and len(w.raw_lines) == 1


@pytest.mark.parametrize("debug, last", [
    ({"crash_at_step": 2}, ("denoising", 2, 4)),
    ({"crash_in": "encoding"}, ("encoding", 0, 1)),
])
def test_crash_hooks_exit_with_status_70(start_worker, kind, tmp_path, debug, last):
    w = start_worker("--device", "cpu", "--model", "tiny", module=WORKERS[kind])
    assert w.next_event()["event"] == "ready", w.log()
    w.send(generate_request("x-1", str(tmp_path / "x-1"), steps=4, debug=debug))
    assert w.wait_exit() == 70
    events = []
    while (event := w.next_event()) is not None:
        events.append(event)
    stage, step, total = last
    assert events[-1] == {"event": "progress", "job": "x-1", "stage": stage, "step": step, "total": total}
    assert not os.path.exists(tmp_path / "x-1" / "video.mp4")


def test_hang_hook_stops_all_events(start_worker, kind, pace, tmp_path):
    w = start_worker("--device", "cpu", "--model", "tiny", module=WORKERS[kind])
    assert w.next_event()["event"] == "ready", w.log()
    w.send(generate_request("h-1", str(tmp_path / "h-1"), steps=4, debug={"hang_at_step": 1}))
    last, _ = w.wait_for(lambda e: e.get("stage") == "denoising")
    assert last["step"] == 1
    w.send({"type": "ping"})
    with pytest.raises(AssertionError, match="no event within"):
        w.next_event(timeout=max(1.0, 2 * pace))
    assert w.proc.poll() is None


def test_debug_is_refused_without_the_environment_switch(start_worker, kind, tmp_path):
    w = start_worker("--device", "cpu", "--model", "tiny", allow_faults=False, module=WORKERS[kind])
    assert w.next_event()["event"] == "ready", w.log()
    w.send(generate_request("d-1", str(tmp_path / "d-1"), debug={"crash_at_step": 1}))
    event = w.next_event()
    assert event["code"] == "bad_request" and "REEL_ENGINE_ALLOW_FAULTS" in event["message"]
    w.close_stdin()
    assert w.wait_exit() == 0

"""Worker protocol conformance: the real worker and the scripted worker as subprocesses speaking the protocol over
stdin/stdout, each test run against both (`kind` is `real` or `scripted`). What a parent sees must not tell them
apart, except for the scripted worker's `"scripted": true` in `ready` and job.json.

These are the tests whose outcome depends on the job runner and the model behind it (the ready fields, the files, a
cancel at a step, every testing hook, checkpoints, full and read-only disks). The dispatch rules both workers run
through the same code (bad requests, busy, ping, prepare, shutdown, EOF) are tested once, on the scripted worker, in
test_dispatcher.py."""

import json
import os
import time

import numpy as np
import pytest
from conftest import (
    WORKERS,
    EarlyStart,
    WorkerProcess,
    WorkerSet,
    decode_video,
    files_under,
    generate_request,
    write_image,
)
from PIL import Image

READY_FIELDS = {"event", "protocol", "device", "model", "architecture", "dtype", "free_memory_bytes",
                "total_memory_bytes", "fps", "spatial_stride", "temporal_stride", "image", "last_image",
                "engine_version", "pid", "random_weights", "load_seconds", "defaults", "memory_saving", "model_path",
                "placement", "speed", "lora_slots", "lora_max_rank"}
SPARES = 2  # the tests that end a worker before the others are done with the shared one: the crash hooks
WORKERS_OF = {kind: EarlyStart(f"conformance-{kind}", 1 + SPARES, ("--device", "cpu", "--model", "tiny"), module,
                               selects=f"[{kind}]")
              for kind, module in WORKERS.items()}
EARLY_WORKERS = [WORKERS_OF["real"]]  # started when the session begins (conftest.py); the scripted ones start at once


@pytest.fixture(scope="module", params=sorted(WORKERS))
def kind(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def pace(kind) -> float:
    """How much of the real worker's delays a test needs: the scripted worker's steps take no time, so the windows in
    which a test acts while a job is in some phase can be shorter."""
    return 1.0 if kind == "real" else 0.35


@pytest.fixture(scope="module")
def workers(kind, early_workers):
    """Every worker of this kind the module needs, started together: `shared` is used by the tests below in file order
    (the hang test, last, ends it), the spares by the crash tests."""
    started = early_workers.take(WORKERS_OF[kind])
    yield WorkerSet(started[0], started[1:])
    for w in started:
        w.kill()


@pytest.fixture(scope="module")
def worker(workers) -> WorkerProcess:
    return workers.shared


def stages(events) -> list[tuple]:
    return [(e["stage"], e["step"], e["total"]) for e in events if e["event"] == "progress"]


def events_until_exit(w: WorkerProcess) -> list[dict]:
    events = []
    while (event := w.next_event()) is not None:
        events.append(event)
    return events


def _job_json(out_dir) -> dict:
    with open(os.path.join(out_dir, "job.json"), encoding="utf-8") as f:
        return json.load(f)


def png_frames(out_dir) -> np.ndarray:
    folder = os.path.join(out_dir, "frames")
    return np.stack([np.asarray(Image.open(os.path.join(folder, n))) for n in sorted(os.listdir(folder))])


def test_ready_event(worker, kind):
    ready = worker.ready()
    assert ready["event"] == "ready", worker.log()
    assert set(ready) == READY_FIELDS | ({"scripted"} if kind == "scripted" else set())
    assert ready.get("scripted", False) is (kind == "scripted")
    assert ready["protocol"] == 1 and ready["device"] == "cpu" and ready["model"] == "tiny"
    assert ready["architecture"] == "ti2v-5b" and ready["dtype"] == "float32" and ready["random_weights"] is True
    assert (ready["fps"], ready["spatial_stride"], ready["temporal_stride"]) == (24, 32, 4)
    assert (ready["image"], ready["last_image"]) == ("optional", False)
    # No budget on the CPU: everything resident; no compilation on the CPU unless asked for.
    assert ready["placement"]["tier"] == "resident" and ready["placement"]["text_encoder"] == "resident"
    assert ready["speed"]["compiled"] is False
    assert ready["pid"] == worker.proc.pid and ready["engine_version"] == "0.1.0"
    assert 0 < ready["free_memory_bytes"] <= ready["total_memory_bytes"]
    assert ready["defaults"] == {"width": 256, "height": 256, "frames": 17, "steps": 4, "guidance": 5.0}
    assert ready["memory_saving"] is False and ready["model_path"].endswith("tiny-ti2v-5b")
    assert (ready["lora_slots"], ready["lora_max_rank"]) == (2, 64)  # the defaults


def test_generate_writes_the_video_the_frames_and_job_json(worker, kind, tmp_path):
    out = tmp_path / "g-1"
    worker.send(generate_request("g-1", str(out), png_frames=True))
    final, seen = worker.wait_final("g-1")
    assert final["event"] == "result", final
    assert final["outputs"] == {"dir": str(out), "video": str(out / "video.mp4"), "metadata": str(out / "job.json"),
                                "frames_dir": str(out / "frames"), "frame_count": 9, "width": 128, "height": 128,
                                "fps": 24}
    assert set(final["seconds"]) == {"lora_load", "lora_switch", "text_encoding", "denoising", "vae_decode", "encoding",
                                     "total"}
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


def test_an_image_job_records_its_image_and_a_bad_image_is_refused(worker, kind, tmp_path):
    """TI2V-5B with a first-frame image: the image is encoded after the text, job.json records it; another fit or
    another image gives another video. A wrong SHA-256 or a last frame (TI2V-5B takes none) is a bad_request naming
    the field, before any work."""
    image = write_image(tmp_path / "first.png", 96, 64)
    worker.send(generate_request("p-1", str(tmp_path / "p-1"), width=64, height=64, image=image))
    final, seen = worker.wait_final("p-1")
    assert final["event"] == "result", final
    assert stages(seen)[:4] == [("text_encoding", 0, 1), ("text_encoding", 1, 1), ("image_encoding", 0, 1),
                                ("image_encoding", 1, 1)]
    assert "image_encoding" in final["seconds"] and decode_video(final["outputs"]["video"])[1].shape == (9, 64, 64, 3)
    record = _job_json(tmp_path / "p-1")
    assert record["image"] == {"sha256": image["sha256"], "width": 96, "height": 64, "fit": "cover"}
    assert record["last_image"] is None and record["seconds"]["image_encoding"] >= 0
    worker.send(generate_request("p-2", str(tmp_path / "p-2"), width=64, height=64, image=image, fit="contain"))
    assert worker.wait_final("p-2")[0]["event"] == "result"
    assert _job_json(tmp_path / "p-2")["image"]["fit"] == "contain"
    first, contained = (decode_video(tmp_path / job / "video.mp4")[1] for job in ("p-1", "p-2"))
    assert not np.array_equal(first, contained)

    worker.send(generate_request("p-3", str(tmp_path / "p-3"), image={**image, "sha256": "0" * 64}))
    final, seen = worker.wait_final("p-3")
    assert (final["event"], final["code"]) == ("error", "bad_request") and seen == []
    assert final["message"] == (f"image: the SHA-256 of {image['path']} is {image['sha256']}, not the request's "
                                f"{'0' * 64}")
    assert not os.path.exists(tmp_path / "p-3")
    worker.send(generate_request("p-4", str(tmp_path / "p-4"), image=image, last_image=image))
    final, _ = worker.wait_final("p-4")
    assert (final["code"], final["message"].split(";")[0]) == ("bad_request",
                                                              "last_image: ti2v-5b models take no last frame image")


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


def test_a_worker_killed_mid_denoising_is_resumed_by_another(workers, worker, tmp_path):
    """The crash hook ends a worker (exit 70) right after step 2, whose checkpoint is then on disk; another worker
    resumes the job, and its frames equal those of an uninterrupted job on that worker."""
    out = str(tmp_path / "x-1")
    req = generate_request("x-1", out, width=64, height=64, frames=5, steps=4, png_frames=True, checkpoint_every=1)
    doomed = workers.take()
    doomed.send({**req, "debug": {"crash_at_step": 2}})
    assert doomed.wait_exit() == 70
    assert events_until_exit(doomed)[-1] == {"event": "progress", "job": "x-1", "stage": "denoising", "step": 2,
                                             "total": 4}
    assert os.listdir(out) == ["checkpoint.pt"]

    worker.send(req)
    final, seen = worker.wait_final("x-1")
    assert final["event"] == "result", final
    assert [e for e in seen if e["event"] == "resumed"] == [{"event": "resumed", "job": "x-1", "step": 2, "total": 4}]
    assert [s[1] for s in stages(seen) if s[0] == "denoising"] == [3, 4]
    worker.send({**req, "job": "x-2", "out_dir": str(tmp_path / "x-2")})
    final, seen = worker.wait_final("x-2")
    assert final["event"] == "result" and not [e for e in seen if e["event"] == "resumed"]
    assert np.array_equal(png_frames(out), png_frames(tmp_path / "x-2"))
    assert sorted(os.listdir(out)) == ["frames", "job.json", "video.mp4"]


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


def test_the_crash_hook_of_a_stage_exits_with_status_70(workers, tmp_path):
    w = workers.take()
    w.send(generate_request("x-3", str(tmp_path / "x-3"), steps=4, debug={"crash_in": "encoding"}))
    assert w.wait_exit() == 70
    assert events_until_exit(w)[-1] == {"event": "progress", "job": "x-3", "stage": "encoding", "step": 0, "total": 1}
    assert not os.path.exists(tmp_path / "x-3" / "video.mp4")


def test_stdout_holds_only_json_event_lines(worker):
    assert worker.raw_lines
    for line in worker.raw_lines:
        assert line.endswith(b"\n")
        event = json.loads(line)
        assert isinstance(event, dict) and "event" in event


def test_hang_hook_stops_all_events(worker, pace, tmp_path):
    # The last test of the shared worker: it writes nothing more afterwards. (Stopping on EOF or shutdown while a
    # job runs is the dispatcher's, tested in test_dispatcher.py, and on real workers in test_distributed.py.)
    worker.send(generate_request("h-1", str(tmp_path / "h-1"), steps=4, debug={"hang_at_step": 1}))
    last, _ = worker.wait_for(lambda e: e.get("job") == "h-1" and e.get("stage") == "denoising")
    assert last["step"] == 1
    worker.send({"type": "ping"})
    with pytest.raises(AssertionError, match="no event within"):
        worker.next_event(timeout=max(1.0, 2 * pace))
    assert worker.proc.poll() is None

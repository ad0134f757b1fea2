"""The scripted worker's own behaviour: no torch in its process, a fast start, the scripted start-up failures and
debug hooks, and what it makes of the command-line flags and model names. The protocol itself is tested against
both workers in test_conformance.py; the model-level parity with the real worker in test_scripted_model.py."""

import json
import os
import sys
import time

import pytest
from conftest import SCRIPTED_WORKER, WorkerProcess, decode_video, files_under, generate_request

# Runs the scripted worker in this interpreter, then records which heavy libraries its process had imported.
WITH_MODULE_REPORT = """
import json, os, sys
from reel_engine import scripted_worker
status = scripted_worker.main(sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "diffusers", "transformers"))
used = sorted(m for m in ("numpy", "av", "PIL") if m in sys.modules)
with open(os.environ["MODULE_REPORT"], "w") as f:
    json.dump({"heavy": heavy, "used": used}, f)
os._exit(status)
"""


def start_scripted(start_worker, *args, **kwargs):
    return start_worker(*(args or ("--device", "cpu", "--model", "tiny")), module=SCRIPTED_WORKER, **kwargs)


@pytest.fixture(scope="module")
def worker(data_dir, tmp_path_factory):
    """One scripted worker for the tests below, in file order; it records the libraries its process imported, which
    the last of them checks once it has run every kind of job."""
    logs = tmp_path_factory.mktemp("scripted-worker")
    w = WorkerProcess("--device", "cpu", "--model", "tiny", data_dir=data_dir, log_path=str(logs / "worker.log"),
                      command=[sys.executable, "-c", WITH_MODULE_REPORT],
                      env={"MODULE_REPORT": str(logs / "modules.json")})
    w.module_report = logs / "modules.json"
    assert w.next_event()["event"] == "ready", w.log()
    yield w
    w.kill()


def test_the_scripted_worker_starts_without_loading_anything(start_worker):
    w = start_scripted(start_worker)
    ready = w.next_event()
    assert ready["event"] == "ready" and ready["scripted"] is True, w.log()
    # Nothing to load: a fraction of a second even on a busy machine (the real worker's load takes seconds).
    assert ready["load_seconds"] < 1.0
    # From the process's start, Python's own start-up included (about 0.3 s): generous for a loaded 2-core
    # machine, and far below the ~10 s that importing torch alone takes there.
    assert time.monotonic() - w.started < 5.0


@pytest.mark.parametrize("mode, code, message", [
    ("fail", "model_error", "scripted start failure (REEL_SCRIPTED_START=fail)"),
    ("oom", "out_of_memory", "out of memory while loading the model: scripted (REEL_SCRIPTED_START=oom)"),
    ("explode", "model_error", "REEL_SCRIPTED_START='explode': expected one of ready, fail, oom, crash, hang"),
])
def test_a_scripted_start_failure_is_one_error_event_and_status_3(start_worker, mode, code, message):
    w = start_scripted(start_worker, env={"REEL_SCRIPTED_START": mode})
    assert w.wait_exit() == 3
    assert w.next_event() == {"event": "error", "job": None, "code": code, "message": message}
    assert w.next_event() is None and len(w.raw_lines) == 1


def test_a_gpu_the_scripted_machine_lacks_fails_the_start_naming_it(start_worker, tmp_path):
    # Rank 1 of a parallel group placed on cuda:7 of a machine with two GPUs, as the Swift tests ask for it.
    w = start_scripted(start_worker, "--device", "cuda:7", "--model", "tiny", "--rank", "1", "--world-size", "2",
                       "--dist-init", f"file://{tmp_path}/rendezvous", env={"REEL_SCRIPTED_GPUS": "2"})
    assert w.wait_exit() == 3
    assert w.next_event() == {"event": "error", "job": None, "code": "model_error",
                              "message": "device cuda:7: only 2 CUDA device(s) are visible"}
    assert w.next_event() is None and len(w.raw_lines) == 1


def test_a_scripted_start_crash_exits_70_before_any_event(start_worker):
    w = start_scripted(start_worker, env={"REEL_SCRIPTED_START": "crash"})
    assert w.wait_exit() == 70
    assert w.next_event() is None and w.raw_lines == []


def test_a_scripted_start_hang_never_becomes_ready(start_worker):
    w = start_scripted(start_worker, env={"REEL_SCRIPTED_START": "hang"})
    w.send({"type": "ping"})
    with pytest.raises(AssertionError, match="no event within"):
        w.next_event(timeout=1.0)
    assert w.proc.poll() is None


def test_the_load_delay_comes_before_ready(start_worker):
    w = start_scripted(start_worker, env={"REEL_SCRIPTED_LOAD_SECONDS": "0.6"})
    ready = w.next_event()
    assert ready["event"] == "ready" and ready["load_seconds"] >= 0.6
    # A value that is not a number of seconds fails the start, naming the variable.
    w = start_scripted(start_worker, env={"REEL_SCRIPTED_LOAD_SECONDS": "nope"})
    assert w.wait_exit() == 3
    assert "REEL_SCRIPTED_LOAD_SECONDS='nope'" in w.next_event()["message"]


def test_malformed_output_writes_one_line_that_is_not_json_and_the_job_goes_on(worker, tmp_path):
    w = worker
    w.send(generate_request("b-1", str(tmp_path / "b-1"), debug={"malformed_output": True}))
    final, seen = w.wait_final("b-1")
    assert final["event"] == "result"
    bad = [e for e in seen if e["event"] == "<not json>"]
    assert [e["line"] for e in bad] == [b"this line is not an event (debug.malformed_output)\n"]
    assert seen[0] == {"event": "progress", "job": "b-1", "stage": "text_encoding", "step": 0, "total": 1}
    assert seen[1] == bad[0]  # right after the job's first event
    w.send({"type": "ping"})
    assert w.next_event() == {"event": "pong"}


def test_exit_at_step_ends_the_process_cleanly_after_that_step(start_worker, tmp_path):
    w = start_scripted(start_worker)
    assert w.next_event()["event"] == "ready"
    out = tmp_path / "q-1"
    w.send(generate_request("q-1", str(out), steps=4, checkpoint_every=1, debug={"exit_at_step": 2}))
    assert w.wait_exit() == 0
    events = []
    while (event := w.next_event()) is not None:
        events.append(event)
    assert events[-1] == {"event": "progress", "job": "q-1", "stage": "denoising", "step": 2, "total": 4}
    assert os.listdir(out) == ["checkpoint.pt"]  # step 2's checkpoint is on disk, as with the crash hooks


def test_result_without_files_names_files_that_do_not_exist(worker, tmp_path):
    w = worker
    out = tmp_path / "w-1"
    w.send(generate_request("w-1", str(out), png_frames=True, debug={"result_without_files": True}))
    final, seen = w.wait_final("w-1")
    assert final["event"] == "result"
    assert final["outputs"] == {"dir": str(out), "video": str(out / "video.mp4"), "metadata": str(out / "job.json"),
                                "frames_dir": str(out / "frames"), "frame_count": 9, "width": 128, "height": 128,
                                "fps": 24}
    assert [(e["stage"], e["step"]) for e in seen][-2:] == [("encoding", 0), ("encoding", 1)]
    assert files_under(out) == []


@pytest.mark.parametrize("stage", ["text_encoding", "vae_decode", "interpolating"])
def test_crash_in_each_stage_exits_70_after_its_first_event(start_worker, tmp_path, stage):
    w = start_scripted(start_worker)
    assert w.next_event()["event"] == "ready"
    w.send(generate_request("y-1", str(tmp_path / "y-1"), interpolate=2, debug={"crash_in": stage}))
    assert w.wait_exit() == 70
    events = []
    while (event := w.next_event()) is not None:
        events.append(event)
    assert events[-1] == {"event": "progress", "job": "y-1", "stage": stage, "step": 0, "total": 1}


def test_an_a14b_job_on_a_scripted_gpu_group_rank_writes_nothing(start_worker, tmp_path):
    w = start_scripted(start_worker, "--device", "cuda:1", "--model", "tiny:t2v-a14b", "--rank", "1",
                       "--world-size", "2", "--dist-init", f"file://{tmp_path}/rendezvous")
    ready = w.next_event()
    assert ready["event"] == "ready", w.log()
    assert (ready["device"], ready["dtype"], ready["fps"], ready["spatial_stride"]) == ("cuda:1", "bfloat16", 16, 16)
    assert ready["group"] == {"rank": 1, "world_size": 2, "backend": "nccl", "sharded": True,
                              "context_parallel": "ulysses"}
    out = tmp_path / "g-1"
    w.send(generate_request("g-1", str(out), width=64, height=64, frames=5))
    final, _ = w.wait_final("g-1")
    assert final["event"] == "result", final
    assert (final["outputs"]["video"], final["outputs"]["metadata"], final["outputs"]["fps"]) == ("", "", 16)
    assert not out.exists()


def test_frames_follow_the_seed_and_survive_a_resume(worker, tmp_path):
    w = worker
    videos = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        w.send(generate_request(name, str(tmp_path / name), seed=seed, steps=4))
        assert w.wait_final(name)[0]["event"] == "result"
        videos[name] = decode_video(tmp_path / name / "video.mp4")[1]
    # "r" stops after step 2 and resumes from its checkpoint: the state carried over must be step 2's.
    w.send(generate_request("r", str(tmp_path / "r"), seed=1, steps=4, checkpoint_every=2, debug={"oom_at_step": 3}))
    assert w.wait_final("r")[0]["code"] == "out_of_memory"
    w.send(generate_request("r", str(tmp_path / "r"), seed=1, steps=4))
    final, seen = w.wait_final("r")
    assert final["event"] == "result" and [e["step"] for e in seen if e["event"] == "resumed"] == [2]
    videos["r"] = decode_video(tmp_path / "r" / "video.mp4")[1]
    assert (videos["a"] == videos["b"]).all() and (videos["a"] == videos["r"]).all()
    assert not (videos["a"] == videos["c"]).all()
    assert videos["a"].std() > 10  # a picture, not a flat colour


def test_the_scripted_worker_never_imports_torch_diffusers_or_transformers(worker, tmp_path):
    worker.send({"type": "prepare", "prompt": "a lighthouse"})
    out = str(tmp_path / "n-1")
    worker.send(generate_request("n-1", out, png_frames=True, interpolate=2, checkpoint_every=1,
                                 debug={"oom_at_step": 1}))
    assert worker.wait_final("n-1")[0]["code"] == "out_of_memory"
    worker.send(generate_request("n-1", out, png_frames=True, interpolate=2))  # resumes
    assert worker.wait_final("n-1")[0]["event"] == "result"
    worker.send(generate_request("n-2", str(tmp_path / "n-1" / "job.json" / "x")))  # a failure of its own
    assert worker.wait_final("n-2")[0]["code"] == "output_unwritable"
    worker.close_stdin()
    assert worker.wait_exit() == 0
    assert json.loads(worker.module_report.read_text()) == {"heavy": [], "used": ["PIL", "av", "numpy"]}

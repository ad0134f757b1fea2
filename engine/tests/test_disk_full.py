"""A job whose files cannot be written ends at once with `disk_full` or `output_unwritable`, naming the path, leaves
no partial or temporary file, and the next job succeeds: the real job runner and the scripted one, in process, with
the failures forced deterministically. (test_conformance.py does the same through worker processes on a real full
tmpfs and a read-only one.)"""

import errno
import os
import shutil

import pytest
from conftest import files_under

from reel_engine import checkpoint_file, cli, jobflow, jobs, scripted_jobs, scripted_model
from reel_engine.protocol import GenerateRequest


@pytest.fixture(params=["real", "scripted"])
def runner(request, data_dir):
    """(model, run_job) of the real engine on the tiny model, or of the scripted worker."""
    if request.param == "real":
        return request.getfixturevalue("tiny_ti2v"), jobs.run_job
    model = scripted_model.load(cli.parse_args(["--device", "cpu", "--model", "tiny", "--data-dir", data_dir]))
    return model, scripted_jobs.run_job


def request(out_dir, **overrides) -> GenerateRequest:
    fields = dict(job="z-1", prompt="a red fox in snow", negative_prompt="blurry", width=64, height=64, frames=5,
                  steps=2, guidance=5.0, seed=42, out_dir=str(out_dir))
    fields.update(overrides)
    return GenerateRequest(**fields)


def run(runner, req, on_event=None):
    model, run_job = runner
    events = []

    def emit(event):
        events.append(event)
        if on_event is not None:
            on_event(event)

    return run_job(model, jobflow.Job(req), emit), events


def full_device_under(path):
    """Makes `path` a name for /dev/full, where every write fails with ENOSPC: the temporary name the engine
    writes first, so the real write path (FFmpeg's file I/O for the MP4, Python's for job.json) meets a full disk."""
    if not os.path.exists("/dev/full"):
        pytest.skip("this system has no /dev/full to stand for a full disk")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.symlink("/dev/full", path)


def test_enospc_writing_the_mp4_is_disk_full(runner, tmp_path):
    out = tmp_path / "z-1"
    full_device_under(str(out / ".video.mp4.tmp"))
    final, events = run(runner, request(out, png_frames=True))
    assert final == {"event": "error", "job": "z-1", "code": "disk_full",
                     "message": f"cannot write the video {out}/video.mp4: No space left on device (ENOSPC)"}
    assert events[-1]["stage"] == "encoding" and events[-1]["step"] == 0
    assert files_under(out) == []
    final, _ = run(runner, request(out, png_frames=True))  # space again: the same job succeeds
    assert final["event"] == "result", final
    assert "video.mp4" in files_under(out)


def test_enospc_writing_job_json_is_disk_full_and_removes_the_files_already_written(runner, tmp_path):
    out = tmp_path / "z-1"
    full_device_under(str(out / ".job.json.tmp"))
    final, _ = run(runner, request(out, png_frames=True))
    assert (final["code"], final["message"]) == (
        "disk_full", f"cannot write job.json {out}/job.json: No space left on device (ENOSPC)")
    assert files_under(out) == []  # neither the video nor the PNGs of a failed job stay behind
    final, _ = run(runner, request(out))
    assert final["event"] == "result", final


def test_enospc_writing_a_checkpoint_fails_the_job_before_it_decodes(runner, tmp_path, monkeypatch):
    def no_space(path, parts):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    monkeypatch.setattr(checkpoint_file, "write_atomically", no_space)
    out = tmp_path / "z-1"
    final, events = run(runner, request(out, steps=4, checkpoint_every=1))
    assert (final["code"], final["message"]) == (
        "disk_full", f"cannot write the checkpoint {out}/checkpoint.pt: No space left on device (ENOSPC)")
    assert {e["stage"] for e in events} <= {"text_encoding", "denoising"}
    assert files_under(out) == []


def test_a_directory_removed_while_the_job_runs_is_output_unwritable(runner, tmp_path):
    out = tmp_path / "z-1"

    def remove_the_directory(event):
        if event.get("stage") == "encoding" and event["step"] == 0:
            shutil.rmtree(out)

    final, _ = run(runner, request(out), on_event=remove_the_directory)
    assert (final["code"], final["message"]) == (
        "output_unwritable", f"cannot write the video {out}/video.mp4: No such file or directory (ENOENT)")
    assert not out.exists()


def test_a_job_directory_that_cannot_be_created_is_output_unwritable(runner, tmp_path, monkeypatch):
    def refused(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)

    monkeypatch.setattr(os, "makedirs", refused)  # as root, permissions cannot be used to refuse it
    final, events = run(runner, request(tmp_path / "z-1"))
    assert (final["code"], final["message"]) == (
        "output_unwritable", f"cannot write the job directory {tmp_path / 'z-1'}: Permission denied (EACCES)")
    assert events == []

"""A whole job in process: the MP4 (decoded back with PyAV), PNG frames, job.json and atomic naming."""

import json
import os

import av
import numpy as np
import pytest
from PIL import Image

from reel_engine import jobs, protocol
from reel_engine.protocol import GenerateRequest


def request(out_dir, **overrides) -> GenerateRequest:
    fields = dict(job="j-1", prompt="a red fox in snow", negative_prompt="blurry", width=256, height=256, frames=17,
                  steps=4, guidance=5.0, seed=42, out_dir=str(out_dir))
    fields.update(overrides)
    return GenerateRequest(**fields)


def run(model, req):
    events = []
    final = jobs.run_job(model, jobs.Job(req), events.append)
    return final, events


def decode(path):
    with av.open(path) as container:
        stream = container.streams.video[0]
        info = dict(codec=stream.codec_context.name, pix_fmt=stream.codec_context.pix_fmt, width=stream.width,
                    height=stream.height, rate=stream.average_rate)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    return info, np.stack(frames)


def files_under(path):
    return sorted(os.path.relpath(os.path.join(d, f), path) for d, _, fs in os.walk(path) for f in fs)


@pytest.fixture(scope="module")
def default_job(tiny_ti2v, tmp_path_factory):
    out = tmp_path_factory.mktemp("jobs") / "j-1"
    final, events = run(tiny_ti2v, request(out, png_frames=True, metadata={"style": "noir", "batch": 3}))
    return out, final, events


def test_default_tiny_job_writes_a_decodable_h264_mp4(default_job):
    out, final, events = default_job
    assert final["event"] == "result", final
    info, frames = decode(final["outputs"]["video"])
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert (info["width"], info["height"], info["rate"]) == (256, 256, 24)
    assert frames.shape == (17, 256, 256, 3)
    assert final["outputs"] == {"dir": str(out), "video": str(out / "video.mp4"), "metadata": str(out / "job.json"),
                                "frames_dir": str(out / "frames"), "frame_count": 17, "width": 256, "height": 256,
                                "fps": 24}
    assert set(final["seconds"]) == {"text_encoding", "denoising", "vae_decode", "encoding", "total"}
    assert final["peak_memory_bytes"] > 0
    stages = [(e["stage"], e["step"]) for e in events]
    assert stages[0] == ("text_encoding", 0) and stages[-1] == ("encoding", 1)
    assert [s for s in stages if s[0] == "denoising"] == [("denoising", i) for i in range(1, 5)]


def test_png_frames_and_no_temporary_files(default_job):
    out, final, _ = default_job
    expected = ["job.json", "video.mp4"] + [f"frames/{i:06d}.png" for i in range(1, 18)]
    assert files_under(out) == sorted(expected)
    with Image.open(out / "frames" / "000001.png") as image:
        assert image.size == (256, 256) and image.mode == "RGB"


def test_job_json(default_job):
    out, final, _ = default_job
    record = json.loads((out / "job.json").read_text())
    expected = {"job": "j-1", "prompt": "a red fox in snow", "negative_prompt": "blurry", "seed": 42, "width": 256,
                "height": 256, "frames": 17, "fps": 24, "steps": 4, "guidance": 5.0, "model": "tiny",
                "architecture": "ti2v-5b", "random_weights": True, "device": "cpu", "dtype": "float32",
                "memory_saving": False, "metadata": {"style": "noir", "batch": 3}, "source_frames": 17,
                "source_fps": 24, "interpolate": 1, "interpolation_method": None}
    assert {k: record[k] for k in expected} == expected
    assert "noise" in record["note"]
    assert record["seconds"] == final["seconds"] and record["peak_memory_bytes"] == final["peak_memory_bytes"]
    assert set(record["versions"]) == {"engine", "python", "torch", "diffusers", "transformers", "av"}
    assert record["versions"]["diffusers"] == "0.42.1" and all(record["versions"].values())


def test_non_square_video_and_fps_override(tiny_ti2v, tmp_path):
    final, _ = run(tiny_ti2v, request(tmp_path / "wide", width=160, height=96, frames=5, steps=1, fps=12))
    assert final["event"] == "result", final
    info, frames = decode(final["outputs"]["video"])
    assert frames.shape == (5, 96, 160, 3)
    assert (info["width"], info["height"], info["rate"], info["pix_fmt"]) == (160, 96, 12, "yuv420p")


def test_same_seed_same_video_other_seed_other_video(tiny_ti2v, tmp_path):
    small = dict(width=64, height=64, frames=5, steps=2, png_frames=True)
    results = {}
    for name, seed in (("a", 99), ("b", 99), ("c", 100)):
        final, _ = run(tiny_ti2v, request(tmp_path / name, seed=seed, **small))
        assert final["event"] == "result", final
        pngs = np.stack([np.asarray(Image.open(tmp_path / name / "frames" / f"{i:06d}.png")) for i in range(1, 6)])
        results[name] = (decode(final["outputs"]["video"])[1], pngs)
    assert np.array_equal(results["a"][0], results["b"][0]) and np.array_equal(results["a"][1], results["b"][1])
    assert not np.array_equal(results["a"][1], results["c"][1])
    assert not np.array_equal(results["a"][0], results["c"][0])


def test_cancelled_job_leaves_no_outputs(tiny_ti2v, tmp_path):
    job = jobs.Job(request(tmp_path / "cancelled", width=64, height=64, frames=5, steps=5))
    events = []

    def emit(event):
        events.append(event)
        if event.get("stage") == "denoising" and event["step"] == 1:
            job.cancel.set()

    final = jobs.run_job(tiny_ti2v, job, emit)
    assert final["event"] == "error" and final["code"] == "cancelled" and final["job"] == "j-1"
    assert "denoising step 2 of 5" in final["message"]
    assert files_under(tmp_path / "cancelled") == []


def test_a_job_directory_under_a_file_is_output_unwritable(tiny_ti2v, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    final, events = run(tiny_ti2v, request(blocker / "out", width=64, height=64, frames=5, steps=1))
    assert final["event"] == "error" and final["code"] == "output_unwritable" and final["job"] == "j-1"
    assert final["message"] == f"cannot write the job directory {blocker / 'out'}: Not a directory (ENOTDIR)"
    assert events == []  # nothing was computed for a job that could not have been written


def test_other_failures_become_internal_errors(tiny_ti2v, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the loop broke")

    monkeypatch.setattr(jobs, "generate", broken)
    final, _ = run(tiny_ti2v, request(tmp_path / "broken"))
    assert final["event"] == "error" and final["code"] == "internal" and final["job"] == "j-1"
    assert final["message"] == "RuntimeError during setup: the loop broke"


def test_result_event_is_valid_protocol_json(default_job):
    _, final, events = default_job
    for event in events + [final]:
        assert protocol.encode_event(event).count(b"\n") == 1


def test_out_of_memory_becomes_its_own_error_code(tiny_ti2v, tmp_path, monkeypatch):
    def exhausted(*args, **kwargs):
        raise MemoryError("simulated")

    monkeypatch.setattr(jobs, "generate", exhausted)
    final, _ = run(tiny_ti2v, request(tmp_path / "oom"))
    assert final["event"] == "error" and final["code"] == "out_of_memory" and final["job"] == "j-1"
    assert "cpu ran out of memory during setup" in final["message"]

"""Frame interpolation: minterpolate through PyAV on synthetic motion, the blend fallback, the RIFE hook, and whole
tiny jobs with interpolate 2 and 4 (MP4 decoded back, PNGs, job.json, events)."""

import json
import os
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from reel_engine import interpolation, jobs
from reel_engine.pipeline import Cancelled
from reel_engine.protocol import GenerateRequest

SIZE = 64


def moving_square(n=9, step=3, start=12):
    """A 16x16 yellow square moving `step` pixels right per frame over a smooth gradient (clear of the borders,
    where minterpolate's 16-pixel blocks smear the edges of a 64x64 frame)."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    frames = np.zeros((n, SIZE, SIZE, 3), np.uint8)
    for i in range(n):
        frames[i, ..., 0] = xx * 4
        frames[i, ..., 1] = yy * 2
        frames[i, 24:40, start + step * i:start + 16 + step * i] = (255, 255, 0)
    return frames


def square_columns(frame):
    cols = np.flatnonzero((frame[24:40, :, 1] > 200).any(axis=0))
    return cols.min(), cols.max()


@pytest.mark.skipif(not interpolation.has_minterpolate(), reason="this PyAV's FFmpeg has no minterpolate")
@pytest.mark.parametrize("factor", [2, 4])
def test_minterpolate_moves_the_square_to_the_in_between_positions(factor):
    source = moving_square()
    out, method = interpolation.interpolate(source, 24, factor)
    assert method == interpolation.MINTERPOLATE_METHOD == "minterpolate (FFmpeg, mci/aobmc/bidir)"
    assert out.shape == (8 * factor + 1, SIZE, SIZE, 3) and out.dtype == np.uint8
    assert np.array_equal(out[::factor], source)  # every source frame kept exactly, first and last included
    for j in range(1, 8 * factor):  # every in-between frame, the last interval's included
        left = 12 + 3 * j / factor
        assert square_columns(out[j]) == pytest.approx((left, left + 15), abs=1), j


def test_blend_fallback_when_ffmpeg_lacks_minterpolate(monkeypatch):
    monkeypatch.setattr(interpolation, "has_minterpolate", lambda: False)
    source = moving_square(n=3)
    out, method = interpolation.interpolate(source, 16, 4)
    assert method == interpolation.BLEND_METHOD and "blend" in method
    assert out.shape[0] == 9 and np.array_equal(out[::4], source)
    expected = np.rint(0.75 * source[0].astype(np.float32) + 0.25 * source[1]).astype(np.uint8)
    assert np.array_equal(out[1], expected)


def test_factor_one_is_a_no_op_and_other_factors_are_refused():
    source = moving_square(n=2)
    out, method = interpolation.interpolate(source, 24, 1)
    assert out is source and method is None
    with pytest.raises(ValueError):
        interpolation.interpolate(source, 24, 3)


def test_cancel_stops_interpolation():
    with pytest.raises(Cancelled, match="interpolating"):
        interpolation.interpolate(moving_square(n=5), 24, 2, cancelled=lambda: True)


# ---------------------------------------------------------------------------------------------------------------
# Whole jobs on the tiny model: 64x64, 9 frames, 2 steps, the same seed, so every job decodes the same source frames.


def request(out_dir, **overrides) -> GenerateRequest:
    fields = dict(job="i-1", prompt="a red fox in snow", negative_prompt="blurry", width=SIZE, height=SIZE, frames=9,
                  steps=2, guidance=5.0, seed=11, out_dir=str(out_dir), png_frames=True)
    fields.update(overrides)
    return GenerateRequest(**fields)


def decode(path):
    with av.open(path) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        info = dict(width=stream.width, height=stream.height, rate=stream.average_rate,
                    last_time=frames[-1].time, duration=len(frames) / stream.average_rate)
        return info, np.stack([f.to_ndarray(format="rgb24") for f in frames])


def mad(a, b):
    return np.abs(a.astype(int) - b.astype(int)).mean()


def pngs(frames_dir):
    names = sorted(os.listdir(frames_dir))
    assert names == [f"{i:06d}.png" for i in range(1, len(names) + 1)]
    return np.stack([np.asarray(Image.open(os.path.join(frames_dir, name))) for name in names])


@pytest.fixture(scope="module")
def runs(tiny_ti2v, tmp_path_factory):
    results = {}
    for factor in (1, 2, 4):
        events = []
        req = request(tmp_path_factory.mktemp("interp") / f"k{factor}", interpolate=factor)
        final = jobs.run_job(tiny_ti2v, jobs.Job(req), events.append)
        assert final["event"] == "result", final
        results[factor] = (final, events)
    return results


@pytest.mark.parametrize("factor, count, fps", [(2, 17, 48), (4, 33, 96)])
def test_interpolated_video_frames_fps_size_and_duration(runs, factor, count, fps):
    final, _ = runs[factor]
    outputs = final["outputs"]
    assert (outputs["frame_count"], outputs["fps"], outputs["width"], outputs["height"]) == (count, fps, SIZE, SIZE)
    info, frames = decode(outputs["video"])
    assert frames.shape == (count, SIZE, SIZE, 3)
    assert (info["width"], info["height"], info["rate"]) == (SIZE, SIZE, fps)
    base_info, base_frames = decode(runs[1][0]["outputs"]["video"])
    assert base_frames.shape[0] == 9 and base_info["rate"] == 24
    assert info["last_time"] == pytest.approx(base_info["last_time"], abs=1e-3)  # 8/24 s = 16/48 s = 32/96 s
    assert abs(info["duration"] - base_info["duration"]) < Fraction(1, 24)
    # H.264 is lossy, and on the tiny model's noise (per-pixel colour, halved by 4:2:0) very much so: the decoded
    # first/last frames must reproduce the source frames about as well as the uninterpolated video does, and be
    # nearer the matching source frame than its neighbour.
    source = pngs(runs[1][0]["outputs"]["frames_dir"])
    for ours, base, src, neighbour in ((frames[0], base_frames[0], source[0], source[1]),
                                       (frames[-1], base_frames[-1], source[-1], source[-2])):
        assert mad(ours, src) <= mad(base, src) + 2
        assert mad(ours, base) < mad(ours, neighbour)


@pytest.mark.parametrize("factor", [2, 4])
def test_png_frames_are_the_interpolated_ones_with_the_source_frames_exact(runs, factor):
    source = pngs(runs[1][0]["outputs"]["frames_dir"])
    frames = pngs(runs[factor][0]["outputs"]["frames_dir"])
    assert source.shape == (9, SIZE, SIZE, 3) and frames.shape == (8 * factor + 1, SIZE, SIZE, 3)
    assert np.array_equal(frames[0], source[0]) and np.array_equal(frames[-1], source[-1])
    assert np.array_equal(frames[::factor], source)


@pytest.mark.parametrize("factor", [1, 2, 4])
def test_job_json_records_the_interpolation(runs, factor):
    final, _ = runs[factor]
    record = json.loads(open(final["outputs"]["metadata"], encoding="utf-8").read())
    expected = {"frames": 8 * factor + 1, "fps": 24 * factor, "source_frames": 9, "source_fps": 24,
                "interpolate": factor,
                "interpolation_method": None if factor == 1 else "minterpolate (FFmpeg, mci/aobmc/bidir)"}
    assert {k: record[k] for k in expected} == expected
    assert record["seconds"] == final["seconds"]


def test_interpolating_stage_events_and_seconds(runs):
    for factor in (2, 4):
        final, events = runs[factor]
        stages = [(e["stage"], e["step"], e["total"]) for e in events]
        assert stages[-4:] == [("interpolating", 0, 1), ("interpolating", 1, 1), ("encoding", 0, 1),
                               ("encoding", 1, 1)]
        assert list(final["seconds"]) == ["text_encoding", "denoising", "vae_decode", "interpolating", "encoding",
                                          "total"]
        assert final["seconds"]["interpolating"] > 0
    final, events = runs[1]
    assert "interpolating" not in final["seconds"] and all(e["stage"] != "interpolating" for e in events)


def test_rife_checkpoint_fails_the_job_clearly_before_generating(tiny_ti2v, tmp_path, monkeypatch):
    checkpoint = tmp_path / "flownet.pkl"
    checkpoint.write_bytes(b"not really weights")
    monkeypatch.setenv(interpolation.RIFE_ENV, str(checkpoint))
    events = []
    final = jobs.run_job(tiny_ti2v, jobs.Job(request(tmp_path / "rife", interpolate=2)), events.append)
    assert final["event"] == "error" and final["code"] == "model_error", final
    assert "RIFE checkpoint support needs" in final["message"] and str(checkpoint) in final["message"]
    assert events == [] and not (tmp_path / "rife").exists()
    monkeypatch.setenv(interpolation.RIFE_ENV, str(tmp_path / "missing.pkl"))
    final = jobs.run_job(tiny_ti2v, jobs.Job(request(tmp_path / "rife", interpolate=4)), events.append)
    assert final["code"] == "model_error" and "is not a file" in final["message"]

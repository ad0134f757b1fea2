"""RIFE interpolation (rife.py) with a random-weight Practical-RIFE v4.25 IFNet saved as upstream saves it
(`flownet.pkl`, keys prefixed `module.`): strict loading, the layer layout, interpolate = 2 and 4 directly and in a
whole job on the tiny model. No real weights are available here, so these tests check plumbing and shapes, not
picture quality."""

import json
import os

import av
import numpy as np
import pytest
import torch

from reel_engine import interpolation, jobs, rife
from reel_engine.protocol import GenerateRequest


@pytest.fixture(scope="module")
def random_state():
    torch.manual_seed(0)
    return rife.IFNet().state_dict()


def save(state, path, prefix="module."):
    torch.save({prefix + k: v for k, v in state.items()}, path)
    return str(path)


@pytest.fixture(scope="module")
def checkpoint(random_state, tmp_path_factory):
    return save(random_state, tmp_path_factory.mktemp("rife") / "flownet.pkl")


def moving_square(n=9, size=64, step=3, start=12):
    frames = np.full((n, size, size, 3), 30, dtype=np.uint8)
    for i in range(n):
        x = start + i * step
        frames[i, 20:36, x:x + 16] = (220, 60, 40)
    return frames


def test_layer_names_and_shapes_follow_upstream_ifnet_v4_25(random_state):
    shapes = {k: tuple(v.shape) for k, v in random_state.items()}
    # train_log/IFNet_HDv3.py: Head(cnn0..cnn3), IFBlock(in, c) = conv0[0..1][0] → convblock[0..7] → lastconv[0].
    assert shapes["encode.cnn0.weight"] == (16, 3, 3, 3)
    assert shapes["encode.cnn3.weight"] == (16, 16, 4, 4)  # ConvTranspose2d: (in, out, k, k)
    assert shapes["block0.conv0.0.0.weight"] == (96, 7 + 32, 3, 3)
    assert shapes["block0.conv0.1.0.weight"] == (192, 96, 3, 3)
    assert shapes["block0.convblock.7.conv.weight"] == (192, 192, 3, 3)
    assert shapes["block0.convblock.0.beta"] == (1, 192, 1, 1)
    assert shapes["block0.lastconv.0.weight"] == (192, 52, 4, 4)
    for i, c in enumerate((192, 128, 96, 64, 32)):
        assert shapes[f"block{i}.convblock.0.conv.weight"] == (c, c, 3, 3)
        if i:
            assert shapes[f"block{i}.conv0.0.0.weight"] == (c // 2, 8 + 4 + 8 + 32, 3, 3)
    assert "block5.conv0.0.0.weight" not in shapes and not any(k.startswith("teacher") for k in shapes)
    assert len(shapes) == 4 * 2 + 5 * (2 * 2 + 8 * 3 + 2)


def test_checkpoint_loads_strictly_and_wrong_ones_fail_clearly(checkpoint, random_state, tmp_path):
    net = rife.load(checkpoint)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in random_state.items())
    assert rife.load(save(random_state, tmp_path / "plain.pkl", prefix=""))  # without DataParallel's prefix too
    # upstream's training-only modules are tolerated
    with_teacher = dict(random_state, **{"teacher.conv0.0.0.weight": torch.zeros(1)})
    rife.load(save(with_teacher, tmp_path / "teacher.pkl"))

    missing = {k: v for k, v in random_state.items() if k != "block4.lastconv.0.bias"}
    path = save(missing, tmp_path / "missing.pkl")
    with pytest.raises(rife.CheckpointError, match="1 missing key.*block4.lastconv.0.bias") as e:
        rife.load(path)
    assert path in str(e.value) and "v4.25" in str(e.value)
    extra = dict(random_state, **{"block5.conv0.0.0.weight": torch.zeros(3)})
    with pytest.raises(rife.CheckpointError, match="1 unexpected key.*block5.conv0.0.0.weight"):
        rife.load(save(extra, tmp_path / "extra.pkl"))
    narrow = dict(random_state, **{"block0.convblock.0.beta": torch.ones(1, 64, 1, 1)})
    with pytest.raises(rife.CheckpointError, match="wrong shape.*block0.convblock.0.beta"):
        rife.load(save(narrow, tmp_path / "narrow.pkl"))
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"not really weights")
    with pytest.raises(rife.CheckpointError, match="not a readable PyTorch checkpoint"):
        rife.load(str(junk))


def test_interpolate_two_keeps_sources_and_adds_finite_middle_frames(checkpoint, monkeypatch):
    monkeypatch.setenv(interpolation.RIFE_ENV, checkpoint)
    source = moving_square()
    out, method = interpolation.interpolate(source, 24, 2)
    assert method == "rife:flownet.pkl (v4.25)"
    assert out.shape == (17, 64, 64, 3) and out.dtype == np.uint8
    assert np.array_equal(out[::2], source)
    # the network's in-between frames, computed directly: padded to 128x128, timestep 0.5, cropped back
    net = rife.load(checkpoint)
    def pad(frame):
        return torch.nn.functional.pad(torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255, (0, 64, 0, 64))

    with torch.inference_mode():
        mid = net(pad(source[3]), pad(source[4]), 0.5)
    assert mid.shape == (1, 3, 128, 128) and torch.isfinite(mid).all()
    expected = (mid[0, :, :64, :64].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.abs(out[7].astype(int) - expected.astype(int)).max() <= 1


def test_interpolate_four_uses_three_timesteps(checkpoint, monkeypatch):
    monkeypatch.setenv(interpolation.RIFE_ENV, checkpoint)
    source = moving_square(n=3, size=40)  # not a multiple of 32: padded and cropped back
    out, method = interpolation.interpolate(source, 24, 4)
    assert out.shape == (9, 40, 40, 3) and np.array_equal(out[::4], source)
    net = rife.load(checkpoint)
    x0, x1 = (torch.nn.functional.pad(torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255, (0, 88, 0, 88))
              for f in source[:2])
    with torch.inference_mode():
        for r, t in enumerate((0.25, 0.5, 0.75), start=1):
            mid = (net(x0, x1, t)[0, :, :40, :40].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
            assert np.abs(out[r].astype(int) - mid.astype(int)).max() <= 1


def test_a_wrong_checkpoint_fails_the_job_before_generating(tiny_ti2v, random_state, tmp_path, monkeypatch):
    path = save({k: v for k, v in random_state.items() if not k.startswith("block4.")}, tmp_path / "flownet.pkl")
    monkeypatch.setenv(interpolation.RIFE_ENV, path)
    req = GenerateRequest(job="r-0", prompt="a fox", negative_prompt="blurry", width=64, height=64, frames=9, steps=2,
                          guidance=5.0, seed=1, out_dir=str(tmp_path / "out"), interpolate=2)
    events = []
    final = jobs.run_job(tiny_ti2v, jobs.Job(req), events.append)
    assert final["event"] == "error" and final["code"] == "model_error", final
    assert path in final["message"] and "missing key" in final["message"] and "v4.25" in final["message"]
    assert events == [] and not (tmp_path / "out").exists()


def test_a_job_with_rife(tiny_ti2v, checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv(interpolation.RIFE_ENV, checkpoint)
    req = GenerateRequest(job="r-1", prompt="a red fox in snow", negative_prompt="blurry", width=64, height=64,
                          frames=9, steps=2, guidance=5.0, seed=7, out_dir=str(tmp_path / "r-1"), interpolate=2)
    final = jobs.run_job(tiny_ti2v, jobs.Job(req), lambda event: None)
    assert final["event"] == "result", final
    assert (final["outputs"]["frame_count"], final["outputs"]["fps"]) == (17, 48)
    with av.open(final["outputs"]["video"]) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        assert len(frames) == 17 and stream.average_rate == 48
    with open(final["outputs"]["metadata"]) as f:
        record = json.load(f)
    assert record["interpolation_method"] == "rife:flownet.pkl (v4.25)"
    assert (record["frames"], record["fps"], record["source_frames"]) == (17, 48, 9)
    assert os.path.isfile(checkpoint)

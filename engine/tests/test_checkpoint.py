"""Checkpoints: a job stopped mid-denoising and run again resumes from its checkpoint and produces exactly the frames of
an uninterrupted run (TI2V-5B with and without an image, the two-expert T2V-A14B and I2V-A14B); corrupt or mismatched
checkpoints are rejected. (A worker process killed after a checkpoint and the job resumed by another:
test_conformance.py.)"""

import json
import os

import numpy as np
import pytest
import torch
from conftest import ForwardCounter, write_image
from PIL import Image

from reel_engine import checkpoint, jobs, pipeline
from reel_engine.protocol import DebugHooks, GenerateRequest, ImageRef

SIZE = dict(width=64, height=64, frames=5)


def request(out_dir, **overrides) -> GenerateRequest:
    fields = dict(job="k-1", prompt="a red fox in snow", negative_prompt="blurry", guidance=5.0, seed=3, steps=4,
                  out_dir=str(out_dir), png_frames=True, **SIZE)
    fields.update(overrides)
    return GenerateRequest(**fields)


def run(model, req):
    events = []
    final = jobs.run_job(model, jobs.Job(req), events.append)
    return final, events


def interrupted(model, req, at_step):
    """Runs `req` until the simulated failure at denoising step `at_step` (after that step's checkpoint)."""
    final, events = run(model, GenerateRequest(**{**req.__dict__, "debug": DebugHooks(oom_at_step=at_step)}))
    assert final["event"] == "error" and final["code"] == "out_of_memory", final
    return events


def png_frames(out_dir) -> np.ndarray:
    folder = os.path.join(out_dir, "frames")
    return np.stack([np.asarray(Image.open(os.path.join(folder, n))) for n in sorted(os.listdir(folder))])


def header(out_dir) -> dict:
    with open(os.path.join(out_dir, checkpoint.CHECKPOINT_NAME), "rb") as f:
        return checkpoint.decode_checkpoint(f.read())[0]


def job_json(out_dir) -> dict:
    with open(os.path.join(out_dir, "job.json"), encoding="utf-8") as f:
        return json.load(f)


def denoising_steps(events):
    return [e["step"] for e in events if e["event"] == "progress" and e["stage"] == "denoising"]


@pytest.fixture(scope="module")
def reference_ti2v(tiny_ti2v, tmp_path_factory):
    """An uninterrupted 4-step run without checkpoints."""
    out = tmp_path_factory.mktemp("ref") / "ti2v"
    final, _ = run(tiny_ti2v, request(out))
    assert final["event"] == "result", final
    return png_frames(out)


@pytest.fixture(scope="module")
def reference_a14b(tiny_a14b, tmp_path_factory):
    """An uninterrupted 6-step A14B run: timesteps 999 983 960 923 | 857 707, so steps 1-4 use the high-noise
    expert and steps 5-6 the low-noise one (boundary 875)."""
    out = tmp_path_factory.mktemp("ref") / "a14b"
    final, _ = run(tiny_a14b, request(out, steps=6, guidance_2=3.0))
    assert final["event"] == "result", final
    return png_frames(out)


@pytest.fixture(scope="module")
def ti2v_checkpoint_bytes(tiny_ti2v, tmp_path_factory):
    """The checkpoint a TI2V job left after step 2 of 4."""
    out = tmp_path_factory.mktemp("ckpt") / "ti2v"
    interrupted(tiny_ti2v, request(out, checkpoint_every=1), at_step=2)
    with open(out / checkpoint.CHECKPOINT_NAME, "rb") as f:
        return f.read()


def test_uninterrupted_run_with_checkpoints_equals_one_without_and_leaves_none(tiny_ti2v, reference_ti2v, tmp_path):
    final, events = run(tiny_ti2v, request(tmp_path, checkpoint_every=1))
    assert final["event"] == "result", final
    assert np.array_equal(png_frames(tmp_path), reference_ti2v)
    assert sorted(os.listdir(tmp_path)) == ["frames", "job.json", "video.mp4"]
    assert not [e for e in events if e["event"] != "progress"]
    record = job_json(tmp_path)
    assert record["checkpoint_every"] == 1 and record["resumed_from_step"] is None


def test_ti2v_job_stopped_mid_denoising_resumes_to_identical_frames(tiny_ti2v, reference_ti2v, tmp_path):
    events = interrupted(tiny_ti2v, request(tmp_path, checkpoint_every=1), at_step=2)
    assert denoising_steps(events) == [1, 2]
    assert os.listdir(tmp_path) == [checkpoint.CHECKPOINT_NAME]
    saved = header(tmp_path)
    assert (saved["step"], saved["total"], saved["expert"]) == (2, 4, "transformer")
    assert saved["identity"]["seed"] == 3 and saved["identity"]["architecture"] == "ti2v-5b"
    assert "a red fox" not in json.dumps(saved)  # the prompt is only hashed

    final, events = run(tiny_ti2v, request(tmp_path, checkpoint_every=1))
    assert final["event"] == "result", final
    kinds = [(e["event"], e.get("stage"), e.get("step")) for e in events]
    assert kinds[:5] == [("progress", "text_encoding", 0), ("progress", "text_encoding", 1), ("resumed", None, 2),
                         ("progress", "denoising", 3), ("progress", "denoising", 4)]
    assert events[2] == {"event": "resumed", "job": "k-1", "step": 2, "total": 4}
    assert np.array_equal(png_frames(tmp_path), reference_ti2v)
    assert sorted(os.listdir(tmp_path)) == ["frames", "job.json", "video.mp4"]
    record = job_json(tmp_path)
    assert record["resumed_from_step"] == 2 and record["checkpoint_every"] == 1


@pytest.mark.parametrize("at_step, expert, forward_counts", [
    (2, "transformer", [4, 4]),  # the switch to the low-noise expert comes after the checkpoint
    (5, "transformer_2", [0, 2]),  # the switch came before it: the resumed run uses only the low-noise expert
])
def test_a14b_job_resumes_to_identical_frames_across_the_expert_switch(tiny_a14b, reference_a14b, tmp_path, at_step,
                                                                       expert, forward_counts):
    req = request(tmp_path, steps=6, guidance_2=3.0, checkpoint_every=1)
    interrupted(tiny_a14b, req, at_step)
    saved = header(tmp_path)
    assert (saved["step"], saved["expert"]) == (at_step, expert)
    assert (saved["identity"]["guidance"], saved["identity"]["guidance_2"]) == (5.0, 3.0)
    counter = ForwardCounter(tiny_a14b.pipe.transformer, tiny_a14b.pipe.transformer_2)
    try:
        final, events = run(tiny_a14b, req)
    finally:
        counter.remove()
    assert final["event"] == "result", final
    assert counter.counts == forward_counts  # a conditional and an unconditional pass per resumed step
    assert [e for e in events if e["event"] == "resumed"][0]["step"] == at_step
    assert denoising_steps(events) == list(range(at_step + 1, 7))
    assert np.array_equal(png_frames(tmp_path), reference_a14b)
    assert job_json(tmp_path)["resumed_from_step"] == at_step


def test_checkpoint_every_n_steps_resumes_from_the_last_multiple(tiny_ti2v, reference_ti2v, tmp_path):
    interrupted(tiny_ti2v, request(tmp_path, checkpoint_every=2), at_step=3)
    assert header(tmp_path)["step"] == 2
    # The retry may omit checkpoint_every: an existing checkpoint is resumed all the same.
    final, events = run(tiny_ti2v, request(tmp_path))
    assert final["event"] == "result", final
    assert denoising_steps(events) == [3, 4]
    assert np.array_equal(png_frames(tmp_path), reference_ti2v)
    assert job_json(tmp_path)["checkpoint_every"] is None
    assert not os.path.exists(tmp_path / checkpoint.CHECKPOINT_NAME)


def test_due_every_n_steps_never_after_the_last():
    def due(every, total):
        c = checkpoint.Checkpointer("/tmp", {}, every)
        return [s for s in range(1, total + 1) if c.due(s, total)]

    assert due(1, 4) == [1, 2, 3]
    assert due(2, 4) == [2]
    assert due(2, 5) == [2, 4]
    assert due(3, 3) == []
    assert due(0, 4) == []


def _truncate(data):
    return data[: len(data) // 2]


def _flip(offset):
    def flip(data):
        i = offset if offset >= 0 else len(data) + offset
        return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]
    return flip


@pytest.mark.parametrize("damage, fragment", [
    (_truncate, "corrupt: truncated"),
    (lambda data: data[:-1], "corrupt: truncated"),
    (lambda data: b"", "corrupt: truncated"),
    (_flip(-100), "corrupt: SHA-256 checksum mismatch"),  # in the tensors
    (_flip(40), "corrupt: SHA-256 checksum mismatch"),  # in the JSON header
    (_flip(-1), "corrupt: SHA-256 checksum mismatch"),  # in the checksum itself
    (_flip(0), "corrupt: not a Reel checkpoint"),
])
def test_corrupt_checkpoint_is_rejected_and_the_job_starts_over(tiny_ti2v, reference_ti2v, ti2v_checkpoint_bytes,
                                                                tmp_path, damage, fragment):
    (tmp_path / checkpoint.CHECKPOINT_NAME).write_bytes(damage(ti2v_checkpoint_bytes))
    final, events = run(tiny_ti2v, request(tmp_path, checkpoint_every=1))
    assert final["event"] == "result", final
    assert events[0]["event"] == "checkpoint_rejected" and events[0]["job"] == "k-1"
    assert events[0]["reason"].startswith(fragment), events[0]
    assert events[1]["stage"] == "text_encoding"  # reported before any work
    assert not [e for e in events if e["event"] == "resumed"]
    assert denoising_steps(events) == [1, 2, 3, 4]
    assert np.array_equal(png_frames(tmp_path), reference_ti2v)
    assert job_json(tmp_path)["resumed_from_step"] is None
    assert sorted(os.listdir(tmp_path)) == ["frames", "job.json", "video.mp4"]


@pytest.mark.parametrize("other, fragment", [
    (dict(seed=4), "seed is 4 in the checkpoint, 3 in the request"),
    (dict(prompt="a blue fox in snow"), "prompt or negative prompt differs"),
    (dict(negative_prompt=""), "prompt or negative prompt differs"),
    (dict(steps=5), "steps is 5 in the checkpoint, 4 in the request"),
    (dict(width=96), "width is 96 in the checkpoint, 64 in the request"),
    (dict(guidance=4.0), "guidance is 4.0 in the checkpoint, 5.0 in the request"),
])
def test_mismatched_checkpoint_is_rejected_and_the_job_starts_over(tiny_ti2v, reference_ti2v, tmp_path, other,
                                                                   fragment):
    interrupted(tiny_ti2v, request(tmp_path, checkpoint_every=1, **other), at_step=1)
    assert os.path.exists(tmp_path / checkpoint.CHECKPOINT_NAME)
    final, events = run(tiny_ti2v, request(tmp_path, checkpoint_every=1))
    assert final["event"] == "result", final
    assert events[0]["event"] == "checkpoint_rejected"
    assert events[0]["reason"] == "does not match the request: " + fragment
    assert denoising_steps(events) == [1, 2, 3, 4]
    assert np.array_equal(png_frames(tmp_path), reference_ti2v)


def test_checkpoint_of_the_other_architecture_is_rejected(tiny_a14b, ti2v_checkpoint_bytes, tmp_path):
    (tmp_path / checkpoint.CHECKPOINT_NAME).write_bytes(ti2v_checkpoint_bytes)
    final, events = run(tiny_a14b, request(tmp_path, steps=2))
    assert final["event"] == "result", final
    reason = events[0]["reason"]
    assert 'architecture is "ti2v-5b" in the checkpoint, "t2v-a14b" in the request' in reason
    assert 'model is "tiny" in the checkpoint, "tiny:t2v-a14b" in the request' in reason


def test_scheduler_state_round_trip_restores_every_attribute(tiny_ti2v):
    scheduler = type(tiny_ti2v.pipe.scheduler).from_config(tiny_ti2v.pipe.scheduler.config)
    scheduler.set_timesteps(4)
    scheduler.set_begin_index(0)
    sample = torch.randn(1, 2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    for t in scheduler.timesteps[:2]:
        sample = scheduler.step(torch.randn_like(sample), t, sample, return_dict=False)[0]
    data = checkpoint.encode_checkpoint({"x": 1}, {"scheduler": checkpoint.scheduler_state(scheduler)})
    _, body = checkpoint.decode_checkpoint(data)
    import io

    state = torch.load(io.BytesIO(body), weights_only=True)["scheduler"]
    fresh = type(scheduler).from_config(scheduler.config)
    fresh.set_timesteps(4)
    checkpoint.restore_scheduler(fresh, state, torch.device("cpu"))
    assert set(vars(fresh)) == set(vars(scheduler))
    for name, value in vars(scheduler).items():
        if name == "_internal_dict":
            continue
        got = getattr(fresh, name)
        if isinstance(value, list):
            assert len(got) == len(value) and all(torch.equal(a, b) for a, b in zip(got, value, strict=True)), name
        elif isinstance(value, torch.Tensor):
            assert torch.equal(got, value) and got.dtype == value.dtype, name
        else:
            assert got == value, name
    assert fresh.step_index == 2 and fresh.lower_order_nums == 2 and fresh.this_order == 2


def test_the_scheduler_history_matters(tiny_ti2v, tmp_path):
    """Resuming with the latents alone (no multistep history) gives other frames: exact equality above is a real
    test of the restored scheduler state, not of images too coarse to notice."""
    req = request(tmp_path, checkpoint_every=1)
    interrupted(tiny_ti2v, req, at_step=2)
    identity = checkpoint.request_identity(tiny_ti2v, req)
    shape = pipeline.latent_shape(tiny_ti2v, req.width, req.height, req.frames)

    def resume(drop_history):
        ckpt = checkpoint.open_for_job(str(tmp_path), identity, shape, None)
        assert ckpt.resume is not None
        if drop_history:
            state = ckpt.resume.scheduler_state
            state.update(model_outputs=[None, None], timestep_list=[None, None], lower_order_nums=0, last_sample=None)
        return pipeline.generate(tiny_ti2v, prompt=req.prompt, negative_prompt=req.negative_prompt, width=64,
                                 height=64, frames=5, steps=4, guidance=5.0, seed=3, output="float",
                                 checkpoint=ckpt).video

    uninterrupted = pipeline.generate(tiny_ti2v, prompt=req.prompt, negative_prompt=req.negative_prompt, width=64,
                                      height=64, frames=5, steps=4, guidance=5.0, seed=3, output="float").video
    assert np.array_equal(resume(False), uninterrupted)
    assert not np.array_equal(resume(True), uninterrupted)


# ---------------------------------------------------------------------------------------------------------------
# Jobs with images: the images' SHA-256 and the fit are part of the identity; a resumed job equals an uninterrupted
# one (the conditioning is computed again from the image)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """Three image files and their references: two first frames and a last one."""
    folder = tmp_path_factory.mktemp("pictures")
    refs = {name: write_image(folder / f"{name}.png", 96, 64, seed=i) for i, name in enumerate(("a", "b", "last"))}
    return {name: ImageRef(r["path"], r["sha256"]) for name, r in refs.items()}


def i2v_request(out_dir, pictures, **overrides) -> GenerateRequest:
    """A 4-step I2V-A14B job with a first and a last frame: timesteps 999 937 | 833 625 (flow_shift 5, boundary
    900), so steps 1-2 use the high-noise expert and steps 3-4 the low-noise one."""
    fields = dict(width=64, height=48, steps=4, guidance=4.0, guidance_2=3.0, image=pictures["a"],
                  last_image=pictures["last"], fit="cover")
    fields.update(overrides)
    return request(out_dir, **fields)


@pytest.fixture(scope="module")
def reference_i2v(tiny_i2v, pictures, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "i2v"
    final, events = run(tiny_i2v, i2v_request(out, pictures))
    assert final["event"] == "result", final
    assert [e["stage"] for e in events if e["event"] == "progress"][2:4] == ["image_encoding", "image_encoding"]
    record = job_json(out)
    assert record["image"] == {"sha256": pictures["a"].sha256, "width": 96, "height": 64, "fit": "cover"}
    assert record["last_image"]["sha256"] == pictures["last"].sha256 and record["guidance_2"] == 3.0
    return png_frames(out)


@pytest.mark.parametrize("at_step, expert, forward_counts", [
    (2, "transformer", [0, 4]),  # resumed right at the switch: only the low-noise expert is left
    (1, "transformer", [2, 4]),  # the switch comes in the resumed part
])
def test_i2v_job_resumes_to_identical_frames_across_the_expert_switch(tiny_i2v, pictures, reference_i2v, tmp_path,
                                                                      at_step, expert, forward_counts):
    req = i2v_request(tmp_path, pictures, checkpoint_every=1)
    interrupted(tiny_i2v, req, at_step)
    saved = header(tmp_path)
    assert (saved["step"], saved["expert"]) == (at_step, expert)
    identity = saved["identity"]
    assert (identity["image_sha256"], identity["last_image_sha256"], identity["fit"]) == (
        pictures["a"].sha256, pictures["last"].sha256, "cover")
    counter = ForwardCounter(tiny_i2v.pipe.transformer, tiny_i2v.pipe.transformer_2)
    try:
        final, events = run(tiny_i2v, req)
    finally:
        counter.remove()
    assert final["event"] == "result", final
    assert counter.counts == forward_counts
    kinds = [(e["event"], e.get("stage"), e.get("step")) for e in events]
    assert kinds[:6] == [("progress", "text_encoding", 0), ("progress", "text_encoding", 1),
                         ("progress", "image_encoding", 0), ("progress", "image_encoding", 1),
                         ("resumed", None, at_step), ("progress", "denoising", at_step + 1)]
    assert np.array_equal(png_frames(tmp_path), reference_i2v)
    assert job_json(tmp_path)["resumed_from_step"] == at_step


def test_ti2v_job_with_an_image_resumes_to_identical_frames(tiny_ti2v, pictures, tmp_path):
    req = request(tmp_path / "resumed", image=pictures["b"], fit="stretch", steps=3, checkpoint_every=1)
    interrupted(tiny_ti2v, req, at_step=2)
    assert header(tmp_path / "resumed")["identity"]["image_sha256"] == pictures["b"].sha256
    final, events = run(tiny_ti2v, req)
    assert final["event"] == "result", final
    assert [e["step"] for e in events if e["event"] == "resumed"] == [2]
    uninterrupted = request(tmp_path / "whole", image=pictures["b"], fit="stretch", steps=3)
    assert run(tiny_ti2v, uninterrupted)[0]["event"] == "result"
    assert np.array_equal(png_frames(tmp_path / "resumed"), png_frames(tmp_path / "whole"))
    assert job_json(tmp_path / "resumed")["image"]["fit"] == "stretch"


def test_a_checkpoint_of_another_image_is_rejected(tiny_i2v, pictures, tmp_path):
    interrupted(tiny_i2v, i2v_request(tmp_path, pictures, steps=2, checkpoint_every=1), at_step=1)
    final, events = run(tiny_i2v, i2v_request(tmp_path, pictures, steps=2, image=pictures["b"]))
    assert final["event"] == "result", final
    assert events[0] == {"event": "checkpoint_rejected", "job": "k-1", "reason": (
        f'does not match the request: image_sha256 is "{pictures["a"].sha256}" in the checkpoint, '
        f'"{pictures["b"].sha256}" in the request')}


def test_the_identity_holds_each_images_sha256_and_the_fit(tiny_ti2v, pictures, tmp_path):
    def identity(**fields):
        return checkpoint.request_identity(tiny_ti2v, request(tmp_path, **fields))

    plain = identity()
    assert (plain["image_sha256"], plain["last_image_sha256"], plain["fit"]) == (None, None, None)
    assert identity(fit="contain") == plain  # a fit without an image changes nothing
    covered = identity(image=pictures["a"])
    assert covered["image_sha256"] == pictures["a"].sha256 and covered["fit"] == "cover"
    assert checkpoint.identity_differences(covered, identity(image=pictures["a"], fit="contain")) == [
        'fit is "cover" in the checkpoint, "contain" in the request']


def test_a_bad_image_fails_the_job_before_anything_else(tiny_i2v, pictures, tmp_path):
    wrong = ImageRef(pictures["a"].path, "0" * 64)
    final, events = run(tiny_i2v, i2v_request(tmp_path / "out", pictures, image=wrong))
    assert final["event"] == "error" and final["code"] == "bad_request", final
    assert final["message"].startswith(f"image: the SHA-256 of {pictures['a'].path} is ")
    assert events == [] and not os.path.exists(tmp_path / "out")  # no event, no job directory

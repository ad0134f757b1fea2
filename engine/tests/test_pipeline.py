"""Reel's denoising loop against diffusers' own WanPipeline.__call__, plus determinism, cancel and progress."""

import numpy as np
import pytest
import torch
from conftest import ForwardCounter

from reel_engine import pipeline
from reel_engine.pipeline import Cancelled

PROMPT = "a red fox walks through snow, 一只红狐狸在雪地里"
NEGATIVE = "blurry, low quality"


def reference(model, width, height, frames, steps, guidance, seed, **extra):
    return model.pipe(prompt=PROMPT, negative_prompt=NEGATIVE, width=width, height=height, num_frames=frames,
                      num_inference_steps=steps, guidance_scale=guidance,
                      generator=torch.Generator("cpu").manual_seed(seed), output_type="np", **extra).frames[0]


def ours(model, width, height, frames, steps, guidance, seed, **extra):
    extra.setdefault("output", "float")
    return pipeline.generate(model, prompt=PROMPT, negative_prompt=NEGATIVE, width=width, height=height,
                             frames=frames, steps=steps, guidance=guidance, seed=seed, **extra)


def test_loop_equals_wanpipeline_ti2v(tiny_ti2v):
    expected = reference(tiny_ti2v, 96, 64, 9, 4, 5.0, 42)
    events = []
    got = ours(tiny_ti2v, 96, 64, 9, 4, 5.0, 42, progress=lambda *e: events.append(e))
    assert got.video.shape == (9, 64, 96, 3) == expected.shape
    np.testing.assert_allclose(got.video, expected, rtol=0, atol=1e-6)
    assert np.array_equal(got.video, expected)  # same ops in the same order: bit-identical on CPU
    assert events == [("text_encoding", 0, 1), ("text_encoding", 1, 1)] + [
        ("denoising", i, 4) for i in range(1, 5)] + [("vae_decode", 0, 1), ("vae_decode", 1, 1)]
    assert set(got.seconds) == {"text_encoding", "denoising", "vae_decode"}


def test_loop_equals_wanpipeline_a14b_with_both_experts(tiny_a14b):
    pipe = tiny_a14b.pipe
    counter = ForwardCounter(pipe.transformer, pipe.transformer_2)
    try:
        expected = reference(tiny_a14b, 64, 48, 5, 4, 4.0, 3, guidance_scale_2=3.0)
        reference_counts = list(counter.counts)
        counter.counts = [0, 0]
        got = ours(tiny_a14b, 64, 48, 5, 4, 4.0, 3, guidance_2=3.0)
    finally:
        counter.remove()
    # With flow_shift 12 and 4 steps the timesteps are 999, 973, 923, 800: three high-noise steps, one low-noise
    # step after the 875 boundary, each with a conditional and an unconditional pass.
    assert reference_counts == counter.counts == [6, 2]
    assert got.video.shape == (5, 48, 64, 3)
    np.testing.assert_allclose(got.video, expected, rtol=0, atol=1e-6)


def test_guidance_at_most_one_skips_the_unconditional_pass(tiny_ti2v):
    counter = ForwardCounter(tiny_ti2v.pipe.transformer)
    try:
        got = ours(tiny_ti2v, 64, 64, 5, 3, 1.0, 11)
    finally:
        counter.remove()
    assert counter.counts == [3]
    np.testing.assert_allclose(got.video, reference(tiny_ti2v, 64, 64, 5, 3, 1.0, 11), rtol=0, atol=1e-6)


def test_same_seed_same_frames_other_seed_other_frames(tiny_ti2v):
    a = ours(tiny_ti2v, 96, 64, 5, 2, 5.0, 1234, output="uint8").video
    b = ours(tiny_ti2v, 96, 64, 5, 2, 5.0, 1234, output="uint8").video
    c = ours(tiny_ti2v, 96, 64, 5, 2, 5.0, 1235, output="uint8").video
    assert a.dtype == np.uint8 and a.shape == (5, 64, 96, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    # The uint8 frames are WanPipeline's float frames rounded the way diffusers' numpy_to_pil rounds them.
    assert np.array_equal(a, pipeline.to_uint8(ours(tiny_ti2v, 96, 64, 5, 2, 5.0, 1234).video))


def test_cancel_stops_at_a_step_boundary(tiny_ti2v):
    steps_done = []

    def progress(stage, step, total):
        if stage == "denoising":
            steps_done.append(step)

    with pytest.raises(Cancelled) as info:
        ours(tiny_ti2v, 64, 64, 5, 6, 5.0, 1, progress=progress, cancelled=lambda: len(steps_done) >= 2)
    assert steps_done == [1, 2]
    assert (info.value.stage, info.value.step, info.value.total) == ("denoising", 3, 6)
    # The scheduler state of a cancelled job does not leak into the next one.
    again = ours(tiny_ti2v, 64, 64, 5, 2, 5.0, 1).video
    np.testing.assert_allclose(again, reference(tiny_ti2v, 64, 64, 5, 2, 5.0, 1), rtol=0, atol=1e-6)


def test_memory_saving_tiles_the_vae_for_that_request_only(tiny_ti2v):
    vae = tiny_ti2v.pipe.vae
    seen = []
    original = vae.tiled_decode

    def spy(*args, **kwargs):
        seen.append(True)
        return original(*args, **kwargs)

    vae.tiled_decode = spy
    try:
        got = ours(tiny_ti2v, 320, 64, 5, 1, 5.0, 5, memory_saving=True)
    finally:
        del vae.tiled_decode
    assert seen and not vae.use_tiling
    assert got.video.shape == (5, 64, 320, 3)

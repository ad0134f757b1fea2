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


# ---------------------------------------------------------------------------------------------------------------
# Image-to-video: Reel's loop against diffusers' own WanImageToVideoPipeline on the same tiny components


def picture(width, height, seed):
    """A smooth RGB picture of exactly width x height (the size a job's image is fitted to)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = [np.sin(x / width * rng.uniform(2, 6) + y / height * rng.uniform(2, 6) + rng.uniform(0, 6))
                for _ in range(3)]
    return Image.fromarray(np.rint(127.5 + 127.5 * np.stack(channels, axis=-1)).astype(np.uint8))


def i2v_pipeline(model):
    """diffusers' WanImageToVideoPipeline of the model's own components (no image encoder: Wan2.2 has none)."""
    from diffusers import WanImageToVideoPipeline

    pipe = model.pipe
    i2v = WanImageToVideoPipeline(tokenizer=pipe.tokenizer, text_encoder=pipe.text_encoder, vae=pipe.vae,
                                  scheduler=pipe.scheduler, image_processor=None, image_encoder=None,
                                  transformer=pipe.transformer, transformer_2=pipe.transformer_2,
                                  boundary_ratio=pipe.config.boundary_ratio,
                                  expand_timesteps=pipe.config.expand_timesteps)
    i2v.set_progress_bar_config(disable=True)
    return i2v


@pytest.fixture(autouse=True)
def _ftfy_for_diffusers_i2v(monkeypatch):
    """diffusers 0.42.1's pipeline_wan_i2v.py cleans prompts with `ftfy.fix_text` whether or not ftfy is installed
    (pipeline_wan.py guards the call with is_ftfy_available()), so without ftfy its __call__ raises NameError. Where
    ftfy is missing, the reference gets the identity in its place: what WanPipeline does without ftfy, what Reel's
    text encoding does for every model (textcache.py), and what ftfy.fix_text does to these well-formed prompts."""
    from diffusers.pipelines.wan import pipeline_wan_i2v

    if not hasattr(pipeline_wan_i2v, "ftfy"):
        monkeypatch.setattr(pipeline_wan_i2v, "ftfy", type("ftfy", (), {"fix_text": staticmethod(lambda t: t)}),
                            raising=False)


def i2v_reference(model, image, width, height, frames, steps, guidance, seed, **extra):
    return i2v_pipeline(model)(image=image, prompt=PROMPT, negative_prompt=NEGATIVE, width=width, height=height,
                               num_frames=frames, num_inference_steps=steps, guidance_scale=guidance,
                               generator=torch.Generator("cpu").manual_seed(seed), output_type="np",
                               **extra).frames[0]


def test_the_fitted_image_reaches_the_vae_unchanged(tiny_i2v):
    """Reel passes diffusers an image already at width x height, so VideoProcessor.preprocess's resize is a no-op:
    the tensor is the picture's own pixels, scaled to [-1, 1]."""
    image = picture(64, 48, 1)
    tensor = tiny_i2v.pipe.video_processor.preprocess(image, height=48, width=64)
    expected = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None] * 2 - 1
    assert tensor.shape == (1, 3, 48, 64)
    assert torch.equal(tensor, expected)


@pytest.mark.parametrize("with_last", [False, True], ids=["first-frame", "first-and-last-frame"])
def test_loop_equals_wanimagetovideopipeline_i2v_a14b(tiny_i2v, with_last):
    pipe = tiny_i2v.pipe
    image, last = picture(64, 48, 1), (picture(64, 48, 2) if with_last else None)
    extra = {"last_image": last} if with_last else {}
    counter = ForwardCounter(pipe.transformer, pipe.transformer_2)
    try:
        expected = i2v_reference(tiny_i2v, image, 64, 48, 5, 2, 4.0, 3, guidance_scale_2=3.0, **extra)
        reference_counts = list(counter.counts)
        counter.counts = [0, 0]
        events = []
        got = ours(tiny_i2v, 64, 48, 5, 2, 4.0, 3, guidance_2=3.0, image=image, last_image=last,
                   progress=lambda *e: events.append(e))
    finally:
        counter.remove()
    # flow_shift 5, 2 steps: timesteps 999 and 833, one on each side of the 900 boundary, each with a conditional
    # and an unconditional pass.
    assert reference_counts == counter.counts == [2, 2]
    assert got.video.shape == (5, 48, 64, 3) == expected.shape
    assert np.array_equal(got.video, expected)
    assert events[:4] == [("text_encoding", 0, 1), ("text_encoding", 1, 1), ("image_encoding", 0, 1),
                          ("image_encoding", 1, 1)]
    assert "image_encoding" in got.seconds


def test_the_last_frame_changes_the_video(tiny_i2v):
    image = picture(64, 48, 1)
    first_only = ours(tiny_i2v, 64, 48, 5, 1, 1.0, 3, image=image).video
    both = ours(tiny_i2v, 64, 48, 5, 1, 1.0, 3, image=image, last_image=picture(64, 48, 2)).video
    assert not np.array_equal(first_only, both)


def test_loop_equals_wanimagetovideopipeline_ti2v_with_an_image(tiny_ti2v):
    image = picture(64, 64, 4)
    counter = ForwardCounter(tiny_ti2v.pipe.transformer)
    try:
        expected = i2v_reference(tiny_ti2v, image, 64, 64, 5, 2, 5.0, 42)
        got = ours(tiny_ti2v, 64, 64, 5, 2, 5.0, 42, image=image)
    finally:
        counter.remove()
    assert counter.counts == [8]  # diffusers' run, then Reel's: 2 steps, each with two passes
    assert got.video.shape == (5, 64, 64, 3) == expected.shape
    assert np.array_equal(got.video, expected)
    # The image conditions the video: without it the same seed gives text-to-video, WanPipeline's output.
    text_only = ours(tiny_ti2v, 64, 64, 5, 2, 5.0, 42).video
    assert not np.array_equal(text_only, got.video)
    assert np.array_equal(text_only, reference(tiny_ti2v, 64, 64, 5, 2, 5.0, 42))


def test_images_a_model_does_not_take_are_refused(tiny_a14b, tiny_i2v, tiny_ti2v):
    with pytest.raises(ValueError, match="t2v-a14b takes no image"):
        ours(tiny_a14b, 64, 48, 5, 1, 1.0, 0, image=picture(64, 48, 0))
    with pytest.raises(ValueError, match="i2v-a14b needs an image"):
        ours(tiny_i2v, 64, 48, 5, 1, 1.0, 0)
    with pytest.raises(ValueError, match="ti2v-5b takes no last image"):
        ours(tiny_ti2v, 64, 64, 5, 1, 1.0, 0, image=picture(64, 64, 0), last_image=picture(64, 64, 1))

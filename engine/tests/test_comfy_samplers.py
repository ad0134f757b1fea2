"""ComfyUI's samplers as Reel runs them (a translated ComfyUI prompt's `sampler`): `flow_euler` at ComfyUI's
`simple` positions with the expert switch at a step (KSamplerAdvanced's split), and `flow_unipc` at another shift."""

import json

import numpy as np
import pytest
import torch
from conftest import generate_request
from test_loras import A14B_SIZE, NEGATIVE, PROMPT, expert_order

from reel_engine.catalog import A14B


def sampler(**fields):
    from reel_engine.protocol import SamplerSpec

    return SamplerSpec(**fields)


def test_flow_euler_switches_experts_at_the_step_not_at_the_boundary(tiny_a14b):
    from reel_engine import pipeline

    # ComfyUI's simple schedule for 4 steps is Reel's positions 1000, 750, 500, 250 at shift 8: timesteps 1000,
    # 960, 888.9, 727: three above the T2V boundary (875). Split at step 1 and at step 3, the experts follow the
    # split, not the boundary.
    size = dict(A14B_SIZE, guidance=1.0, guidance_2=1.0)
    got = {}
    for split in (1, 3):
        order, remove = expert_order(tiny_a14b)
        try:
            got[split] = pipeline.generate(
                tiny_a14b, prompt=PROMPT, negative_prompt=NEGATIVE, output="float",
                sampler=sampler(kind="flow_euler", shift=8.0, denoising_steps=(1000, 750, 500, 250),
                                switch_step=split), **size).video
        finally:
            remove()
        assert order == ["high"] * split + ["low"] * (4 - split)
    assert not np.array_equal(got[1], got[3])
    # Without a switch step: Reel's boundary rule.
    order, remove = expert_order(tiny_a14b)
    try:
        by_boundary = pipeline.generate(
            tiny_a14b, prompt=PROMPT, negative_prompt=NEGATIVE, output="float",
            sampler=sampler(kind="flow_euler", shift=8.0, denoising_steps=(1000, 750, 500, 250)), **size).video
    finally:
        remove()
    assert order == ["high", "high", "high", "low"]
    assert np.array_equal(by_boundary, got[3]), "the same schedule and split give the same frames"


def test_flow_euler_is_comfyuis_euler_step(tiny_a14b):
    from reel_engine.samplers import scheduler_for

    s = scheduler_for(tiny_a14b.pipe, sampler(kind="flow_euler", shift=8.0, denoising_steps=(1000, 667, 334)))
    s.set_timesteps(3, device="cpu")
    # comfy/model_sampling.py: sigma(t) = shift * t / (1 + (shift - 1) * t) at t = position / 1000.
    expected = [8 * p / (1 + 7 * p) for p in (1.0, 0.667, 0.334)]
    np.testing.assert_allclose(s.sigmas.numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(s.timesteps.numpy(), [1000 * e for e in expected], rtol=1e-6)
    x, v = torch.randn(1, 4, 2, 2), torch.randn(1, 4, 2, 2)
    (stepped,) = s.step(v, s.timesteps[0], x)
    # k-diffusion's sample_euler: x + (sigma_next - sigma) * d, d = (x - denoised) / sigma = v.
    torch.testing.assert_close(stepped, x + (s.sigmas[1] - s.sigmas[0]) * v, rtol=1e-6, atol=1e-6)


def test_flow_unipc_is_the_models_unipc_at_the_requests_shift(tiny_a14b):
    from reel_engine.samplers import scheduler_for

    own = scheduler_for(tiny_a14b.pipe, None)
    shifted = scheduler_for(tiny_a14b.pipe, sampler(kind="flow_unipc", shift=8.0, denoising_steps=()))
    assert type(own) is type(shifted) and shifted.config.flow_shift == 8.0
    own.set_timesteps(4, device="cpu")
    shifted.set_timesteps(4, device="cpu")
    assert not torch.equal(own.timesteps, shifted.timesteps)


@pytest.mark.parametrize("field, value, message", [
    ("switch_step", 4, "sampler.switch_step: expected an integer in 1 … 3"),
    ("kind", "dpmpp", "sampler.kind: must be one of step_distill, flow_euler, flow_unipc"),
])
def test_a_bad_sampler_is_refused_by_name(field, value, message):
    from reel_engine.protocol import Limits, RequestError, parse_request

    raw = generate_request("j", "/tmp/j", steps=4)
    raw["sampler"] = {"kind": "flow_euler", "shift": 8.0, "denoising_steps": [1000, 750, 500, 250], field: value}
    with pytest.raises(RequestError, match=message):
        parse_request(json.dumps(raw), Limits(16, 4, architecture=A14B))

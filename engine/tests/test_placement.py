"""The memory plan for a budget, from the real components' sizes (built on the meta device: no memory used)."""

import pytest

from reel_engine import catalog, placement
from reel_engine.placement import GIB, JobShape, plan_memory


@pytest.fixture(scope="module")
def ti2v(full_size_meta):
    return placement.component_sizes(full_size_meta(catalog.TI2V))


@pytest.fixture(scope="module")
def a14b(full_size_meta):
    return placement.component_sizes(full_size_meta(catalog.A14B))


TI2V_720P = JobShape(1280, 704, 121, spatial_stride=32, temporal_stride=4)
A14B_480P = JobShape(832, 480, 81, spatial_stride=16, temporal_stride=4)


def test_the_sizes_are_the_real_models(ti2v, a14b):
    # umT5-XXL's encoder is 5.7 B parameters, TI2V-5B's transformer 5.0 B, each A14B expert 14.3 B (bf16: 2 bytes).
    assert 11.0e9 < ti2v.text_encoder < 11.6e9
    assert 9.8e9 < ti2v.transformer < 10.2e9 and ti2v.width == 3072
    assert 28.0e9 < a14b.largest_transformer < 29.0e9 and a14b.transformer == 2 * a14b.largest_transformer
    assert TI2V_720P.tokens == 27_280 and A14B_480P.tokens == 32_760


@pytest.mark.parametrize("budget_gib, tier, text, tiling", [
    (None, "resident", "resident", False),  # no budget: everything on the GPU, whole-video VAE decode
    (140, "resident", "resident", False),   # an H200
    (80, "resident", "resident", False),    # an A100/H100 80 GB
    (24, "text_offload", "offload", True),  # an RTX 4090 / L4-class card: the encoder waits in host memory
    (22, "model_offload", "model_offload", True),  # each component on the GPU only for its own stage
])
def test_ti2v_720p_placement_by_budget(ti2v, budget_gib, tier, text, tiling):
    plan = plan_memory(ti2v, TI2V_720P, None if budget_gib is None else budget_gib * GIB)
    assert (plan.tier, plan.text_placement, plan.vae_tiling) == (tier, text, tiling)
    if budget_gib is not None:
        assert plan.needed_bytes <= budget_gib * GIB


def test_a_budget_too_small_names_the_smallest_that_fits(ti2v):
    with pytest.raises(placement.BudgetTooSmall) as e:
        plan_memory(ti2v, TI2V_720P, 8 * GIB)
    message = str(e.value)
    assert "8.0 GiB is too small" in message and "1280x704x121" in message and "--memory-budget" in message
    smallest = float(message.split("needs about ")[1].split(" GiB")[0])
    assert plan_memory(ti2v, TI2V_720P, int((smallest + 0.1) * GIB)).tier == "model_offload"


def test_a14b_needs_an_expert_at_a_time_on_smaller_cards(a14b):
    assert plan_memory(a14b, A14B_480P, 140 * GIB).tier == "resident"
    assert plan_memory(a14b, A14B_480P, 48 * GIB).tier == "model_offload"
    with pytest.raises(placement.BudgetTooSmall):
        plan_memory(a14b, A14B_480P, 24 * GIB)  # one 14 B expert alone is 28.6 GB in bf16


def test_memory_saving_always_offloads(ti2v):
    assert plan_memory(ti2v, TI2V_720P, None, memory_saving=True).tier == "model_offload"


def test_a_text_encoder_on_its_own_device_is_not_counted(ti2v):
    from dataclasses import replace

    split = replace(ti2v, text_encoder=0)
    assert plan_memory(split, TI2V_720P, 24 * GIB).tier == "text_offload"
    assert plan_memory(split, TI2V_720P, 36 * GIB).tier == "resident"
    assert plan_memory(ti2v, TI2V_720P, 36 * GIB).tier == "text_offload"

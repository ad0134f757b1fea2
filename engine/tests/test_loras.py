"""LoRAs: files in every key format read, classified and refused before anything is applied (loras.py); the slots
applied per job give diffusers' own `load_lora_weights` output bit for bit, the base output at scale 0 and after a
switch back, and a compiled model is not recompiled by a switch (lora_slots.py); the request fields (protocol.py);
the 4-step distilled sampler (samplers.py). LoRA files are written by the tests (lora_files.py)."""

import json

import pytest
import torch
from lora_files import (
    random_pairs,
    write_diffusers,
    write_musubi,
    write_original,
    write_tensors,
)

from reel_engine import loras
from reel_engine.catalog import A14B, I2V, TI2V
from reel_engine.model_configs import component_configs

TARGETS = {arch: loras.targets_from_config(component_configs(arch, True)["transformer"], arch)
           for arch in (TI2V, A14B, I2V)}
T2V = TARGETS[A14B]


def layout_of(info: dict) -> loras.Layout:
    with open(info["path"], "rb") as f:
        return loras.classify(loras.parse_header(f.read(), info["path"]))


def refused(info: dict, targets=T2V, max_rank=None) -> str:
    with pytest.raises(ValueError) as e:
        loras.fit(layout_of(info), targets, max_rank)
    return str(e.value)


def plan_of(info: dict) -> loras.LoRAPlan:
    with open(info["path"], "rb") as f:
        data = f.read()
    return loras.convert(loras.classify(loras.parse_header(data, info["path"])), data, info["sha256"])


# ---------------------------------------------------------------------------------------------------------------
# Reading and classifying files


def test_the_targets_computed_from_a_config_are_the_loaded_models(tiny_ti2v, tiny_a14b, tiny_i2v, full_size_meta):
    """The scripted worker checks LoRAs against targets computed from the config alone: they are the real ones."""
    for model in (tiny_ti2v, tiny_a14b, tiny_i2v):
        for transformer in (model.pipe.transformer, model.pipe.transformer_2):
            if transformer is not None:
                assert loras.targets_of(transformer, model.architecture) == TARGETS[model.architecture]
    for arch in (TI2V, A14B):
        real = loras.targets_of(full_size_meta(arch).transformer, arch)
        assert real == loras.targets_from_config(component_configs(arch, False)["transformer"], arch)
        assert (real.dim, real.blocks) == ((3072, 30) if arch == TI2V else (5120, 40))


@pytest.mark.parametrize("layout, expected", [
    ("diffusers", "diffusers"), ("kijai", "kijai"), ("comfy", "comfy"), ("model.diffusion_model", "kijai"),
    ("musubi", "musubi"), ("lightx2v", "lightx2v")])
def test_every_format_is_recognised_with_its_figures(tmp_path, layout, expected):
    pairs = random_pairs(T2V, 4, seed=1)
    path = tmp_path / "a.safetensors"
    if layout == "diffusers":
        write_diffusers(path, pairs)
    elif layout == "musubi":
        write_musubi(path, pairs)
    elif layout == "lightx2v":
        write_original(path, pairs, alpha="rank", deltas={"blocks.0.modulation.diff": torch.zeros(1, 6, 32),
                                                          "patch_embedding.diff": torch.zeros(32, 16, 1, 2, 2)})
    elif layout == "model.diffusion_model":
        write_original(path, pairs, prefix="model.diffusion_model.", alpha=2.0)
    else:
        write_original(path, pairs, style=layout, alpha=2.0)
    info = loras.inspect(str(path))
    assert info["format"] == expected
    assert (info["rank"], info["dim"], info["blocks"]) == (4, 32, 2)
    assert info["in_channels"] == (16 if layout == "lightx2v" else None)


@pytest.mark.parametrize("layout", ["kijai", "comfy", "musubi"])
def test_the_pairs_are_diffusers_own_conversion_bit_for_bit(tmp_path, layout):
    """Alpha 3 of rank 4 folds a factor 0.75 into A: Reel's plan is exactly what diffusers' lora_state_dict gives."""
    from diffusers.loaders.lora_pipeline import WanLoraLoaderMixin

    pairs = random_pairs(T2V, 4, seed=2)
    path = tmp_path / "a.safetensors"
    info = write_musubi(path, pairs, alpha=3.0) if layout == "musubi" else write_original(
        path, pairs, style=layout, alpha=3.0)
    expected = WanLoraLoaderMixin.lora_state_dict(str(path))
    plan = plan_of(info)
    assert len(expected) == 2 * len(plan.lowrank) == 2 * len(pairs)
    for module, (a, b, bias) in plan.lowrank.items():
        assert torch.equal(a, expected[f"transformer.{module}.lora_A.weight"])
        assert torch.equal(b, expected[f"transformer.{module}.lora_B.weight"])
        assert bias is None and plan.alphas[module] == 4
    a, _, _ = plan.lowrank["blocks.0.attn1.to_q"]
    assert torch.equal(a, pairs["blocks.0.attn1.to_q"][0] * 0.75)


def test_a_model_diffusion_model_prefix_gives_the_plan_of_diffusion_model(tmp_path):
    pairs = random_pairs(T2V, 4, seed=3)
    a = plan_of(write_original(tmp_path / "a.safetensors", pairs, alpha=2.0))
    b = plan_of(write_original(tmp_path / "b.safetensors", pairs, alpha=2.0, prefix="model.diffusion_model."))
    assert a.lowrank.keys() == b.lowrank.keys()
    assert all(torch.equal(x, y) for m in a.lowrank for x, y in zip(a.lowrank[m][:2], b.lowrank[m][:2], strict=True))


def test_full_deltas_are_mapped_with_the_single_file_rename_table(tmp_path):
    """What diffusers' converter drops is mapped by Reel: modulation -> scale_shift_table (head's first), the
    original norm3 (cross-attention) -> diffusers' norm2, norm_q/k -> attn1/attn2, head.head.diff -> proj_out, a
    diff_b without a pair -> the layer's bias, a diff_b with one -> lora_B's bias."""
    pairs = random_pairs(T2V, 4, seed=4, modules=["blocks.0.attn1.to_q", "blocks.1.ffn.net.2"], bias=True)
    deltas = {"blocks.0.modulation.diff": torch.randn(1, 6, 32), "head.modulation.diff": torch.randn(1, 2, 32),
              "blocks.1.norm3.diff": torch.randn(32), "blocks.1.norm3.diff_b": torch.randn(32),
              "blocks.0.self_attn.norm_q.diff": torch.randn(32), "blocks.1.cross_attn.norm_k.diff": torch.randn(32),
              "head.head.diff": torch.randn(64, 32), "head.head.diff_b": torch.randn(64),
              "blocks.0.ffn.0.diff_b": torch.randn(64), "patch_embedding.diff_b": torch.randn(32)}
    info = write_original(tmp_path / "x.safetensors", pairs, alpha="rank", deltas=deltas)
    layout = layout_of(info)
    loras.fit(layout, T2V)
    plan = plan_of(info)
    assert plan.format == "lightx2v"
    expected = {"blocks.0.scale_shift_table": "blocks.0.modulation.diff", "scale_shift_table": "head.modulation.diff",
                "blocks.1.norm2.weight": "blocks.1.norm3.diff", "blocks.1.norm2.bias": "blocks.1.norm3.diff_b",
                "blocks.0.attn1.norm_q.weight": "blocks.0.self_attn.norm_q.diff",
                "blocks.1.attn2.norm_k.weight": "blocks.1.cross_attn.norm_k.diff",
                "proj_out.weight": "head.head.diff", "proj_out.bias": "head.head.diff_b",
                "blocks.0.ffn.net.0.proj.bias": "blocks.0.ffn.0.diff_b",
                "patch_embedding.bias": "patch_embedding.diff_b"}
    assert set(plan.deltas) == set(expected)
    for param, original in expected.items():
        assert torch.equal(plan.deltas[param], deltas[original])
    assert set(plan.lowrank) == {"blocks.0.attn1.to_q", "blocks.1.ffn.net.2"}
    assert torch.equal(plan.lowrank["blocks.1.ffn.net.2"][2], pairs["blocks.1.ffn.net.2"][2])


def _file(tmp_path, tensors, name="x.safetensors", metadata=None) -> dict:
    return write_tensors(tmp_path / name, tensors, metadata)


@pytest.mark.parametrize("tensors, fragment", [
    ({"diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.zeros(4, 32),
      "diffusion_model.blocks.0.self_attn.q.lora_up.weight": torch.zeros(32, 4),
      "diffusion_model.blocks.0.self_attn.q.weird": torch.zeros(1),
      "diffusion_model.blocks.0.fancy.lora_down.weight": torch.zeros(4, 32)},
     "has keys Reel does not understand: diffusion_model.blocks.0.fancy.lora_down.weight, "
     "diffusion_model.blocks.0.self_attn.q.weird"),
    ({"unet.down.lora_down.weight": torch.zeros(1)}, "has keys of no known LoRA format"),
    ({"diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.zeros(4, 32),
      "transformer.blocks.0.attn1.to_q.lora_A.weight": torch.zeros(4, 32)}, "mixes key formats"),
    ({"diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.zeros(4, 32),
      "diffusion_model.blocks.0.self_attn.q.dora_scale": torch.zeros(32)}, "is a DoRA file"),
    ({"diffusion_model.blocks.0.self_attn.q.lokr_w1": torch.zeros(4, 4)}, "is a LoKr file"),
    ({"diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.zeros(4, 32)},
     "has incomplete low-rank pairs (a down/A matrix without its up/B matrix, or the reverse): "
     "diffusion_model.blocks.0.self_attn.q.lora_down.weight"),
    ({"diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.zeros(4, 32),
      "diffusion_model.blocks.0.self_attn.q.lora_up.weight": torch.zeros(32, 3)}, "shapes do not fit together"),
    ({"diffusion_model.blocks.0.self_attn.q.diff": torch.zeros(32, 32)}, "full-weight deltas (.diff) of linear"),
    ({"diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.zeros(4, 32),
      "diffusion_model.blocks.0.self_attn.q.lora_up.weight": torch.zeros(32, 4),
      "diffusion_model.blocks.0.self_attn.k.lora_A.weight": torch.zeros(4, 32),
      "diffusion_model.blocks.0.self_attn.k.lora_B.weight": torch.zeros(32, 4)}, "mixes lora_down/lora_up and"),
    ({"lora_unet_blocks_0_self_attn_q.lora_down.weight": torch.zeros(4, 32),
      "lora_unet_blocks_0_self_attn_q.lora_up.weight": torch.zeros(32, 4),
      "lora_unet_blocks_0_self_attn_q.alpha": torch.tensor(4.0)},
     "is a partial musubi file: diffusers' musubi converter needs every block's attention and feed-forward layers "
     "with their alpha; missing: lora_unet_blocks_0_self_attn_k.lora_down.weight"),
    ({"transformer.blocks.0.attn1.to_q.lora_A.weight": torch.zeros(4, 32),
      "transformer.blocks.0.attn1.to_q.lora_B.weight": torch.zeros(32, 4),
      "transformer.blocks.0.attn1.to_q.alpha": torch.tensor(4.0)}, "has diffusers keys Reel does not understand"),
])
def test_a_file_with_keys_reel_does_not_apply_is_refused_naming_them(tmp_path, tensors, fragment):
    with pytest.raises(ValueError) as e:
        layout_of(_file(tmp_path, tensors))
    assert fragment in str(e.value)


def test_at_most_ten_keys_are_named(tmp_path):
    tensors = {f"diffusion_model.blocks.{i}.odd.lora_down.weight": torch.zeros(1) for i in range(13)}
    with pytest.raises(ValueError) as e:
        layout_of(_file(tmp_path, tensors))
    # The file's order (safetensors sorts the names): blocks 0, 1, 10, 11, 12, 2 … 6 are named, 7, 8 and 9 counted.
    assert str(e.value).endswith("diffusion_model.blocks.6.odd.lora_down.weight and 3 more")


def test_a_lora_for_another_architecture_is_refused_naming_both(tmp_path):
    wide = loras.targets_from_config(dict(component_configs(A14B, True)["transformer"], attention_head_dim=24), A14B)
    message = refused(write_original(tmp_path / "x.safetensors", random_pairs(wide, 4, seed=5), alpha=4.0))
    assert message.startswith("is a LoRA for a model of dim 48 with 2 blocks; this t2v-a14b model has dim 32, 2 "
                              "blocks and 16 input channels: shapes that do not fit: ")
    assert "diffusion_model.blocks.0.self_attn.q.lora_down.weight (48 -> 48 features; blocks.0.attn1.to_q is 32 -> " \
           "32)" in message
    # A TI2V-5B LoRA's patch embedding (48 input channels) on T2V-A14B (16).
    ti2v = write_original(tmp_path / "y.safetensors", random_pairs(TARGETS[TI2V], 4, seed=5), alpha=4.0,
                          deltas={"patch_embedding.diff": torch.zeros(32, 48, 1, 2, 2)})
    assert "patch_embedding.weight is [32, 16, 1, 2, 2]" in refused(ti2v)
    loras.fit(layout_of(ti2v), TARGETS[TI2V])


def test_a_target_the_model_lacks_is_refused(tmp_path):
    """The original norm2 is diffusers' norm3, which has no weights; Wan2.1's image projections are not in Wan2.2."""
    pairs = random_pairs(T2V, 4, seed=6, modules=["blocks.0.attn1.to_q"])
    info = write_original(tmp_path / "x.safetensors", pairs, alpha=4.0,
                          deltas={"blocks.0.norm2.diff": torch.zeros(32),
                                  "blocks.1.cross_attn.k_img.lora_down.weight": torch.zeros(4, 32),
                                  "blocks.1.cross_attn.k_img.lora_up.weight": torch.zeros(32, 4)})
    assert refused(info) == ("targets layers this t2v-a14b model does not have: "
                             "diffusion_model.blocks.0.norm2.diff, "
                             "diffusion_model.blocks.1.cross_attn.k_img.lora_down.weight")


def test_a_rank_above_the_slots_is_refused_naming_the_flag(tmp_path):
    info = write_diffusers(tmp_path / "x.safetensors", random_pairs(T2V, 8, seed=7, modules=["blocks.1.ffn.net.2"]))
    assert refused(info, max_rank=4) == ("has rank 8 (transformer.blocks.1.ffn.net.2.lora_A.weight), above this "
                                         "worker's LoRA slots of rank 4: start the worker with --lora-max-rank 8 or "
                                         "more")
    loras.fit(layout_of(info), T2V, max_rank=8)


def test_diffusers_metadata_gives_the_alpha(tmp_path):
    pairs = random_pairs(T2V, 4, seed=8, modules=["blocks.0.attn1.to_q"])
    meta = {"lora_adapter_metadata": json.dumps({"transformer.r": 4, "transformer.lora_alpha": 8})}
    assert plan_of(write_diffusers(tmp_path / "x.safetensors", pairs, metadata=meta)).alphas == {
        "blocks.0.attn1.to_q": 8.0}
    bad = {"lora_adapter_metadata": json.dumps({"transformer.use_dora": True})}
    with pytest.raises(ValueError, match="use_dora"):
        layout_of(write_diffusers(tmp_path / "y.safetensors", pairs, metadata=bad))


def test_a_file_that_is_not_safetensors_is_refused(tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(ValueError, match="is not a safetensors file"):
        loras.inspect(str(path))

"""LoRAs: files in every key format read, classified and refused before anything is applied (loras.py); the slots
applied per job give diffusers' own `load_lora_weights` output bit for bit, the base output at scale 0 and after a
switch back, and a compiled model is not recompiled by a switch (lora_slots.py); the request fields (protocol.py);
the 4-step distilled sampler (samplers.py). LoRA files are written by the tests (lora_files.py)."""

import json
import os

import numpy as np
import pytest
import torch
from lora_files import (
    original_tensors,
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


# ---------------------------------------------------------------------------------------------------------------
# The slots on tiny models against diffusers' load_lora_weights


PROMPT, NEGATIVE = "a red fox walks through snow", "blurry"
A14B_SIZE = dict(width=64, height=48, frames=5, steps=4, guidance=4.0, guidance_2=3.0, seed=3)
TI2V_SIZE = dict(width=64, height=64, frames=5, steps=2, guidance=5.0, seed=5)
RANK = 4  # the slots' rank and the files': no zero padding, so the frames are diffusers' bit for bit


@pytest.fixture(scope="module")
def slotted_a14b(data_dir, libraries):
    """tiny:t2v-a14b with 2 LoRA slots of rank 4 on each expert (a model of its own: the session's stay bare)."""
    from reel_engine import lora_slots
    from reel_engine.models import load_model

    model = load_model("tiny:t2v-a14b", "cpu", data_dir)
    lora_slots.install(model, slots=2, max_rank=RANK)
    return model


@pytest.fixture(scope="module")
def slotted_ti2v(data_dir, libraries):
    from reel_engine import lora_slots
    from reel_engine.models import load_model

    model = load_model("tiny", "cpu", data_dir)
    lora_slots.install(model, slots=2, max_rank=RANK)
    return model


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """LoRA files of rank 4 for the tiny models, each from its own seeded pairs: `h`, `l`, `x` (T2V-A14B; `h` with
    an alpha of 2, folded into A by diffusers' converter), `t1`, `t2` (TI2V-5B), and `h` again in every layout."""
    folder = tmp_path_factory.mktemp("loras")
    pairs = {name: random_pairs(T2V, RANK, seed) for name, seed in (("h", 11), ("l", 12), ("x", 13))}
    out = {"h": write_original(folder / "h.safetensors", pairs["h"], alpha=2.0),
           "l": write_diffusers(folder / "l.safetensors", pairs["l"]),
           "x": write_original(folder / "x.safetensors", pairs["x"], style="comfy", alpha="rank"),
           "t1": write_original(folder / "t1.safetensors", random_pairs(TARGETS[TI2V], RANK, 14, bias=True),
                                alpha="rank"),
           "t2": write_diffusers(folder / "t2.safetensors", random_pairs(TARGETS[TI2V], RANK, 15))}
    same = random_pairs(T2V, RANK, 16)
    out["layouts"] = {
        "diffusers": write_diffusers(folder / "s-diffusers.safetensors", same),
        "kijai": write_original(folder / "s-kijai.safetensors", same, alpha="rank"),
        "comfy": write_original(folder / "s-comfy.safetensors", same, style="comfy"),
        "model.diffusion_model": write_original(folder / "s-prefixed.safetensors", same, alpha="rank",
                                                prefix="model.diffusion_model."),
        "musubi": write_musubi(folder / "s-musubi.safetensors", same)}
    return out


def lora_refs(entries) -> tuple:
    from reel_engine.protocol import LoRARef

    return tuple(LoRARef(name=f"lora{i}", path=info["path"], sha256=info["sha256"], scale=scale, expert=expert)
                 for i, (info, scale, expert) in enumerate(entries))


def reel(model, entries, size, **extra):
    """Reel's frames (float32) with `entries` [(file, scale, expert)] in the slots."""
    from types import SimpleNamespace

    from reel_engine import lora_slots, pipeline

    prepared = lora_slots.prepare(model, SimpleNamespace(loras=lora_refs(entries)))
    lora_slots.apply(model, prepared)
    return pipeline.generate(model, prompt=PROMPT, negative_prompt=NEGATIVE, output="float", **size, **extra).video


def diffusers(model, entries, size, after_load=None):
    """diffusers' own frames: WanPipeline.__call__ after load_lora_weights of each entry (load_into_transformer_2
    for the low-noise expert, both transformers for "both") and each transformer's set_adapters with the scales, in
    request order; the LoRAs unloaded again afterwards."""
    pipe = model.pipe
    per = {"high": [], "low": []}
    experts = ("high", "low") if pipe.transformer_2 is not None else ("high",)
    try:
        for i, (info, scale, expert) in enumerate(entries):
            for e in experts if expert == "both" else (expert,):
                pipe.load_lora_weights(info["path"], adapter_name=f"a{i}", load_into_transformer_2=e == "low")
                per[e].append((f"a{i}", scale))
        for e, transformer in (("high", pipe.transformer), ("low", pipe.transformer_2)):
            if per[e]:
                transformer.set_adapters([n for n, _ in per[e]], [s for _, s in per[e]])
        if after_load is not None:
            after_load(pipe)
        extra = {"guidance_scale_2": size["guidance_2"]} if "guidance_2" in size else {}
        return pipe(prompt=PROMPT, negative_prompt=NEGATIVE, width=size["width"], height=size["height"],
                    num_frames=size["frames"], num_inference_steps=size["steps"], guidance_scale=size["guidance"],
                    generator=torch.Generator("cpu").manual_seed(size["seed"]), output_type="np", **extra).frames[0]
    finally:
        pipe.unload_lora_weights()


@pytest.fixture(scope="module")
def base_a14b(tiny_a14b):
    """The bare model's frames, from diffusers' pipeline on the session's (slot-less) tiny:t2v-a14b."""
    return diffusers(tiny_a14b, [], A14B_SIZE)


@pytest.mark.parametrize("case", ["high", "low", "both", "one file on both", "two stacked on the high expert"])
def test_a14b_frames_equal_diffusers_load_lora_weights(slotted_a14b, tiny_a14b, files, base_a14b, case):
    h, lo, x = files["h"], files["l"], files["x"]
    entries = {"high": [(h, 0.8, "high")], "low": [(lo, 1.3, "low")], "both": [(h, 0.8, "high"), (lo, 1.3, "low")],
               "one file on both": [(x, 0.7, "both")],
               "two stacked on the high expert": [(h, 0.8, "high"), (x, -0.6, "high"), (lo, 1.3, "low")]}[case]
    got = reel(slotted_a14b, entries, A14B_SIZE)
    expected = diffusers(tiny_a14b, entries, A14B_SIZE)
    assert np.array_equal(got, expected)
    assert not np.array_equal(got, base_a14b)


def test_ti2v_frames_equal_diffusers_load_lora_weights_two_stacked(slotted_ti2v, tiny_ti2v, files):
    """TI2V-5B has one transformer: "both" puts a LoRA on it; `t1` carries diff_b (peft's lora_B bias)."""
    entries = [(files["t1"], 0.9, "both"), (files["t2"], 1.2, "both")]
    got = reel(slotted_ti2v, entries, TI2V_SIZE)
    assert np.array_equal(got, diffusers(tiny_ti2v, entries, TI2V_SIZE))
    assert not np.array_equal(got, diffusers(tiny_ti2v, [], TI2V_SIZE))


def test_the_same_pairs_in_every_layout_give_the_same_frames(slotted_a14b, tiny_a14b, files):
    frames = {name: reel(slotted_a14b, [(info, 1.0, "both")], A14B_SIZE) for name, info in files["layouts"].items()}
    first = frames["diffusers"]
    assert all(np.array_equal(first, f) for f in frames.values()), [n for n, f in frames.items()
                                                                      if not np.array_equal(first, f)]
    assert np.array_equal(first, diffusers(tiny_a14b, [(files["layouts"]["kijai"], 1.0, "both")], A14B_SIZE))


def test_scale_zero_and_no_loras_are_the_base_and_a_b_a_gives_a_again(slotted_a14b, files, base_a14b):
    none = reel(slotted_a14b, [], A14B_SIZE)
    assert np.array_equal(none, base_a14b)  # the empty slots add exactly nothing
    assert np.array_equal(reel(slotted_a14b, [(files["h"], 0.0, "high"), (files["l"], 0.0, "low")], A14B_SIZE),
                          base_a14b)
    a = [(files["h"], 0.8, "high"), (files["l"], 1.3, "low")]
    b = [(files["x"], 1.1, "both")]
    first = reel(slotted_a14b, a, A14B_SIZE)
    second = reel(slotted_a14b, b, A14B_SIZE)
    third = reel(slotted_a14b, a, A14B_SIZE)
    assert not np.array_equal(first, second)
    assert np.array_equal(first, third)
    assert np.array_equal(reel(slotted_a14b, [], A14B_SIZE), base_a14b)


def test_a_lightx2v_modulation_delta_is_applied_where_diffusers_drops_it(slotted_a14b, tiny_a14b, tmp_path,
                                                                          base_a14b):
    """diffusers' converter drops `blocks.N.modulation.diff` with an info log; Reel applies it: its frames are
    diffusers' with the pair loaded and `scale_shift_table + scale * diff` written by hand."""
    g = torch.Generator().manual_seed(21)
    diff, head = torch.randn(1, 6, 32, generator=g) * 0.5, torch.randn(1, 2, 32, generator=g) * 0.5
    pairs = random_pairs(T2V, RANK, 22, modules=["blocks.0.attn1.to_q", "blocks.1.ffn.net.2"])
    info = write_original(tmp_path / "lightx2v.safetensors", pairs, alpha="rank",
                          deltas={"blocks.1.modulation.diff": diff, "head.modulation.diff": head})
    assert loras.inspect(info["path"])["format"] == "lightx2v"
    scale = 0.7
    got = reel(slotted_a14b, [(info, scale, "high")], A14B_SIZE)
    dropped = diffusers(tiny_a14b, [(info, scale, "high")], A14B_SIZE)
    assert not np.array_equal(got, dropped) and not np.array_equal(got, base_a14b)

    def by_hand(pipe):
        t = pipe.transformer
        t.blocks[1].scale_shift_table.data = t.blocks[1].scale_shift_table.data + diff * scale
        t.scale_shift_table.data = t.scale_shift_table.data + head * scale

    pristine = (tiny_a14b.pipe.transformer.blocks[1].scale_shift_table.data.clone(),
                tiny_a14b.pipe.transformer.scale_shift_table.data.clone())
    try:
        assert np.array_equal(got, diffusers(tiny_a14b, [(info, scale, "high")], A14B_SIZE, after_load=by_hand))
    finally:
        tiny_a14b.pipe.transformer.blocks[1].scale_shift_table.data = pristine[0]
        tiny_a14b.pipe.transformer.scale_shift_table.data = pristine[1]
    assert np.array_equal(reel(slotted_a14b, [], A14B_SIZE), base_a14b)  # the pristine values are back exactly


def test_a_lower_rank_is_zero_padded_into_the_slots(slotted_a14b, tiny_a14b, tmp_path, base_a14b):
    """Rank 2 in slots of rank 4: the padded products run over two more (zero) terms, which changes how the CPU's
    matrix kernels sum them: the same function, not the same bits (measured here: at most 3.8e-6 on frames in
    [0, 1], 0.6% of the values differ; far below one 8-bit level, 1/255)."""
    info = write_original(tmp_path / "r2.safetensors", random_pairs(T2V, 2, 23), alpha=1.0)
    got = reel(slotted_a14b, [(info, 1.0, "both")], A14B_SIZE)
    expected = diffusers(tiny_a14b, [(info, 1.0, "both")], A14B_SIZE)
    assert float(np.abs(got - expected).max()) < 2e-5
    assert not np.array_equal(got, base_a14b)


# ---------------------------------------------------------------------------------------------------------------
# Jobs: the files checked at job start, refusals before anything is applied, job.json and the checkpoint identity


def job_request(out_dir, entries=(), **overrides):
    from reel_engine.protocol import GenerateRequest

    fields = dict(job="l-1", prompt=PROMPT, negative_prompt=NEGATIVE, out_dir=str(out_dir), loras=lora_refs(entries),
                  **A14B_SIZE)
    fields.update(overrides)
    return GenerateRequest(**fields)


def run_job(model, req):
    from reel_engine import jobs

    events = []
    return jobs.run_job(model, jobs.Job(req), events.append), events


def test_a_job_records_its_loras_and_the_switch_in_job_json(slotted_a14b, files, tmp_path):
    entries = [(files["h"], 0.8, "high"), (files["l"], 1.3, "low")]
    final, _ = run_job(slotted_a14b, job_request(tmp_path / "j", entries, recipe="lightning-4step"))
    assert final["event"] == "result", final
    assert list(final["seconds"])[:2] == ["lora_load", "lora_switch"] and final["seconds"]["lora_switch"] >= 0
    assert final["seconds"]["lora_load"] >= 0
    record = json.loads((tmp_path / "j" / "job.json").read_text())
    assert record["recipe"] == "lightning-4step"
    assert record["loras"] == [{"name": "lora0", "sha256": files["h"]["sha256"], "scale": 0.8, "expert": "high"},
                               {"name": "lora1", "sha256": files["l"]["sha256"], "scale": 1.3, "expert": "low"}]
    assert record["seconds"] == final["seconds"]


@pytest.mark.parametrize("problem", ["unknown key", "other architecture", "changed file", "missing file"])
def test_a_bad_lora_fails_the_job_before_anything_is_applied(slotted_a14b, files, tmp_path, base_a14b, problem):
    """The first LoRA is fine, the second is not: the job fails with bad_request naming the entry before its
    directory exists, and nothing of either reached the model (the next run without a switch is the base)."""
    from reel_engine import pipeline

    reel(slotted_a14b, [], A14B_SIZE)  # empty slots
    bad = tmp_path / "bad.safetensors"
    if problem == "unknown key":
        tensors = original_tensors(random_pairs(T2V, RANK, 31, modules=["blocks.1.attn2.to_v"]), alpha="rank")
        tensors["diffusion_model.blocks.1.cross_attn.v.lora_mid.weight"] = torch.zeros(1)
        tensors["diffusion_model.blocks.0.mystery"] = torch.zeros(1)
        info = write_tensors(bad, tensors)
        expected = (f"loras[1]: lora1 ({bad}) is a LoCon file, not a LoRA: "
                    f"diffusion_model.blocks.1.cross_attn.v.lora_mid.weight")
    elif problem == "other architecture":
        wide = loras.targets_from_config(dict(component_configs(A14B, True)["transformer"], num_attention_heads=4),
                                         A14B)
        info = write_diffusers(bad, random_pairs(wide, RANK, 32, modules=["blocks.0.attn1.to_k"]))
        expected = (f"loras[1]: lora1 ({bad}) is a LoRA for a model of dim 64 with 1 blocks; this t2v-a14b model has "
                    f"dim 32, 2 blocks and 16 input channels: shapes that do not fit: "
                    f"transformer.blocks.0.attn1.to_k.lora_A.weight (64 -> 64 features; blocks.0.attn1.to_k is 32 -> "
                    f"32)")
    elif problem == "changed file":
        info = dict(write_diffusers(bad, random_pairs(T2V, RANK, 33, modules=["blocks.0.attn1.to_k"])))
        actual, info["sha256"] = info["sha256"], "0" * 64
        expected = (f"loras[1]: the SHA-256 of {bad} is {actual}, not the request's {'0' * 64} (the file changed "
                    f"since submission)")
    else:
        info = {"path": str(bad), "sha256": "1" * 64}
        expected = f"loras[1]: cannot read {bad}: No such file or directory"
    out = tmp_path / "job"
    final, events = run_job(slotted_a14b, job_request(out, [(files["h"], 0.8, "high"), (info, 1.0, "low")]))
    assert final == {"event": "error", "job": "l-1", "code": "bad_request", "message": expected}
    assert events == [] and not out.exists()
    untouched = pipeline.generate(slotted_a14b, prompt=PROMPT, negative_prompt=NEGATIVE, output="float",
                                  **A14B_SIZE).video
    assert np.array_equal(untouched, base_a14b)


def test_a_checkpoint_of_other_loras_is_rejected(slotted_a14b, files, tmp_path):
    from reel_engine.protocol import DebugHooks

    out = tmp_path / "k"
    final, _ = run_job(slotted_a14b, job_request(out, [(files["h"], 0.8, "high")], checkpoint_every=1,
                                                 debug=DebugHooks(oom_at_step=2)))
    assert final["code"] == "out_of_memory"
    final, events = run_job(slotted_a14b, job_request(out, [(files["h"], 0.9, "high")], checkpoint_every=1))
    assert final["event"] == "result"
    sha = files["h"]["sha256"]
    assert events[0] == {"event": "checkpoint_rejected", "job": "l-1",
                         "reason": f'does not match the request: loras is [["{sha}", 0.8, "high"]] in the checkpoint, '
                                   f'[["{sha}", 0.9, "high"]] in the request'}


def test_a_worker_without_slots_refuses_loras(tiny_a14b, files, tmp_path):
    final, _ = run_job(tiny_a14b, job_request(tmp_path / "n", [(files["h"], 1.0, "high")]))
    assert (final["code"], final["message"]) == (
        "bad_request", "loras: this worker has no LoRA slots (it was started with --lora-slots 0)")


def test_the_start_makes_the_slots_and_ready_reports_them(data_dir, libraries):
    from reel_engine import cli, startup

    args = cli.parse_args(["--device", "cpu", "--model", "tiny", "--data-dir", data_dir, "--lora-slots", "3",
                           "--lora-max-rank", "8"])
    model, _ = startup.start(args)
    ready = startup.ready_fields(model)
    assert (ready["lora_slots"], ready["lora_max_rank"]) == (3, 8)
    layer = model.pipe.transformer.blocks[0].attn1.to_q
    assert list(layer.lora_A) == ["reel0", "reel1", "reel2"] and layer.lora_A["reel2"].weight.shape == (8, 32)
    assert all(isinstance(v, torch.Tensor) and float(v) == 0.0 for v in layer.scaling.values())
    off, _ = startup.start(cli.parse_args(["--device", "cpu", "--model", "tiny", "--data-dir", data_dir,
                                           "--lora-slots", "0"]))
    assert off.loras is None and (startup.ready_fields(off)["lora_slots"], off.lora_max_rank) == (0, 0)
    assert not any("lora" in name for name, _ in off.pipe.transformer.named_modules())


# ---------------------------------------------------------------------------------------------------------------
# The request fields


SHA = "ab" * 32


def parse(limits=None, **fields):
    from reel_engine.protocol import Limits, parse_request

    request = {"type": "generate", "job": "j-1", "prompt": "a fox", "negative_prompt": "", "width": 64,
               "height": 48, "frames": 5, "steps": 4, "guidance": 1.0, "seed": 1, "out_dir": "/tmp/out/j-1", **fields}
    return parse_request(json.dumps(request), limits or Limits(16, 4, architecture=A14B, lora_slots=2))


def test_loras_and_recipe_parse():
    from reel_engine.protocol import LoRARef

    req = parse(loras=[{"name": "lightning_high", "path": "/l/a.safetensors", "sha256": SHA.upper(), "scale": 1,
                        "expert": "high"},
                       {"name": "detail", "path": "/l/b.safetensors", "sha256": "cd" * 32}], recipe="lightning-4step")
    assert req.loras == (LoRARef("lightning_high", "/l/a.safetensors", SHA, 1.0, "high"),
                         LoRARef("detail", "/l/b.safetensors", "cd" * 32, 1.0, "both"))
    assert req.recipe == "lightning-4step"
    plain = parse(loras=None)
    assert plain.loras == () and plain.recipe is None


@pytest.mark.parametrize("fields, message", [
    ({"loras": {"name": "a"}}, "loras: expected an array, got an object"),
    ({"loras": ["a"]}, "loras[0]: expected an object, got a string"),
    ({"loras": [{"path": "/a", "sha256": SHA}]}, "loras[0].name: missing field"),
    ({"loras": [{"name": " ", "path": "/a", "sha256": SHA}]}, "loras[0].name: must not be empty"),
    ({"loras": [{"name": "a", "path": "a.safetensors", "sha256": SHA}]},
     'loras[0].path: must be an absolute path, got "a.safetensors"'),
    ({"loras": [{"name": "a", "path": "/a", "sha256": "abc"}]}, 'loras[0].sha256: must be 64 hexadecimal digits'),
    ({"loras": [{"name": "a", "path": "/a", "sha256": SHA, "scale": "1"}]},
     "loras[0].scale: expected a number, got a string"),
    ({"loras": [{"name": "a", "path": "/a", "sha256": SHA, "scale": 10.5}]}, "loras[0].scale: 10.5 is outside -10"),
    ({"loras": [{"name": "a", "path": "/a", "sha256": SHA, "expert": "middle"}]},
     'loras[0].expert: must be high, low or both, got "middle"'),
    ({"loras": [{"name": "a", "path": "/a", "sha256": SHA, "expert": "low"},
                {"name": "b", "path": "/b", "sha256": SHA}]},
     f"loras[1]: the LoRA of loras[0] (SHA-256 {SHA}) is already on the low-noise expert"),
    ({"loras": [{"name": n, "path": "/a", "sha256": c * 64, "expert": e} for n, c, e in
                (("a", "1", "both"), ("b", "2", "high"), ("c", "3", "high"))]},
     "loras: 3 LoRAs land on the high-noise expert, but this worker has 2 LoRA slots per expert (--lora-slots)"),
    ({"recipe": 4}, "recipe: expected a string, got a number"),
])
def test_bad_lora_fields_are_named(fields, message):
    from reel_engine.protocol import RequestError

    with pytest.raises(RequestError) as e:
        parse(**fields)
    assert message in e.value.message and e.value.job == "j-1"


def test_high_and_low_need_two_experts_and_slots_must_exist():
    from reel_engine.protocol import Limits, RequestError

    one = [{"name": "a", "path": "/a", "sha256": SHA, "expert": "high"}]
    with pytest.raises(RequestError, match=r'loras\[0\].expert: ti2v-5b models have one transformer: use "both"'):
        parse(Limits(16, 4, architecture=TI2V, lora_slots=2), loras=one)
    assert parse(Limits(16, 4, architecture=TI2V, lora_slots=2), loras=[dict(one[0], expert="both")]).loras
    with pytest.raises(RequestError, match=r"this worker has no LoRA slots \(it was started with --lora-slots 0\)"):
        parse(Limits(16, 4, architecture=A14B, lora_slots=0), loras=one)


# ---------------------------------------------------------------------------------------------------------------
# The scripted worker: the same fields, the same checks, the same job.json


def test_the_scripted_worker_checks_and_records_loras(start_worker, files, tmp_path):
    from conftest import SCRIPTED_WORKER, generate_request

    w = start_worker("--device", "cpu", "--model", "tiny:t2v-a14b", "--lora-max-rank", "4", module=SCRIPTED_WORKER)
    ready = w.ready()
    assert (ready["lora_slots"], ready["lora_max_rank"]) == (2, 4), w.log()
    entry = {"name": "h", "path": files["h"]["path"], "sha256": files["h"]["sha256"], "scale": 0.8, "expert": "high"}
    size = dict(width=64, height=48, frames=5)
    w.send(generate_request("s-1", str(tmp_path / "s-1"), loras=[entry], recipe="lightning-4step", **size))
    final, _ = w.wait_final("s-1")
    assert final["event"] == "result", final
    record = json.loads((tmp_path / "s-1" / "job.json").read_text())
    assert record["loras"] == [{"name": "h", "sha256": files["h"]["sha256"], "scale": 0.8, "expert": "high"}]
    assert record["recipe"] == "lightning-4step"
    assert record["seconds"]["lora_switch"] == 0.0 and record["seconds"]["lora_load"] == 0.0
    # Another scale, another video; a changed file and a file of another rank refused as by a real worker.
    w.send(generate_request("s-2", str(tmp_path / "s-2"), loras=[dict(entry, scale=0.9)], **size))
    assert w.wait_final("s-2")[0]["event"] == "result"
    from conftest import decode_video

    assert (decode_video(tmp_path / "s-1" / "video.mp4")[1] != decode_video(tmp_path / "s-2" / "video.mp4")[1]).any()
    w.send(generate_request("s-3", str(tmp_path / "s-3"), loras=[dict(entry, sha256="0" * 64)], **size))
    final, _ = w.wait_final("s-3")
    assert final["code"] == "bad_request" and "(the file changed since submission)" in final["message"]
    wide = write_diffusers(tmp_path / "r8.safetensors", random_pairs(T2V, 8, 41, modules=["blocks.0.ffn.net.2"]))
    w.send(generate_request("s-4", str(tmp_path / "s-4"), loras=[dict(entry, **wide)], **size))
    final, _ = w.wait_final("s-4")
    assert final["message"].startswith(f"loras[0]: h ({wide['path']}) has rank 8 (")
    assert "--lora-max-rank 8" in final["message"]
    w.send(generate_request("s-5", str(tmp_path / "s-5"), loras=[dict(entry, expert="middle")], **size))
    assert w.wait_final("s-5")[0]["message"] == 'loras[0].expert: must be high, low or both, got "middle"'


# ---------------------------------------------------------------------------------------------------------------
# The 4-step distilled sampler (LightX2V's Wan22StepDistillScheduler)


RECIPE = dict(kind="step_distill", shift=5.0, denoising_steps=(1000, 750, 500, 250))


def recipe_sampler():
    from reel_engine.protocol import SamplerSpec

    return SamplerSpec(**RECIPE)


def test_the_step_distill_timesteps_and_sigmas_are_lightx2vs():
    from reel_engine.samplers import StepDistillSampler

    sampler = StepDistillSampler(5.0, [1000, 750, 500, 250])
    sampler.set_timesteps(4, device="cpu")
    sig = torch.linspace(1, 0, 1001)[:-1]
    sig = 5.0 * sig / (1 + 4.0 * sig)
    assert torch.equal(sampler.sigmas, sig[[0, 250, 500, 750]])
    assert torch.equal(sampler.timesteps, (sig * 1000)[[0, 250, 500, 750]])
    assert sampler.timesteps.dtype == sampler.sigmas.dtype == torch.float32
    np.testing.assert_allclose(sampler.timesteps.numpy(), [1000, 937.5, 833.3333, 625], rtol=1e-6)
    np.testing.assert_allclose(sampler.sigmas.numpy(), [1, 0.9375, 0.833333, 0.625], rtol=1e-6)
    with pytest.raises(ValueError, match="4 denoising steps, not 8"):
        sampler.set_timesteps(8)


def lightx2v_loop(model, size, shift=5.0, steps=(1000, 750, 500, 250)):
    """A hand-written reference: LightX2V's schedule and step over diffusers' transformers, no guidance, then the
    Wan latent de-normalisation and decode as WanPipeline does them."""
    pipe = model.pipe
    sig = torch.linspace(1, 0, 1001)[:-1]
    sig = shift * sig / (1 + (shift - 1) * sig)
    index = [1000 - s for s in steps]
    timesteps, sig = (sig * 1000)[index], sig[index]
    x = pipe.prepare_latents(1, 16, size["height"], size["width"], size["frames"], torch.float32, "cpu",
                             torch.Generator("cpu").manual_seed(size["seed"]))
    with torch.no_grad():  # as WanPipeline.__call__ runs (the text encoder's CPU attention differs with autograd on)
        text, _ = pipe.encode_prompt(prompt=PROMPT, do_classifier_free_guidance=False, max_sequence_length=512,
                                     device="cpu")
        for i, t in enumerate(timesteps):
            expert = pipe.transformer if t >= pipe.config.boundary_ratio * 1000 else pipe.transformer_2
            v = expert(hidden_states=x, timestep=t.expand(1), encoder_hidden_states=text, return_dict=False)[0].float()
            x0 = x - sig[i].item() * v
            x = x0 + sig[i + 1].item() * v if i + 1 < len(timesteps) else x0
        vae = pipe.vae
        mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
        std = 1.0 / torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
        video = vae.decode(x / std + mean, return_dict=False)[0]
    return pipe.video_processor.postprocess_video(video, output_type="np")[0]


def expert_order(model):
    """Hooks recording which expert each forward ran on; returns (order list, remove)."""
    order = []
    handles = [t.register_forward_hook(lambda *_, name=name: order.append(name))
               for name, t in (("high", model.pipe.transformer), ("low", model.pipe.transformer_2))]
    return order, lambda: [h.remove() for h in handles]


def test_the_recipe_runs_two_high_and_two_low_steps_and_equals_the_reference_loop(tiny_a14b):
    from reel_engine import pipeline

    size = dict(A14B_SIZE, guidance=1.0, guidance_2=1.0)
    order, remove = expert_order(tiny_a14b)
    try:
        got = pipeline.generate(tiny_a14b, prompt=PROMPT, negative_prompt=NEGATIVE, output="float",
                                sampler=recipe_sampler(), **size).video
    finally:
        remove()
    assert order == ["high", "high", "low", "low"]  # guidance 1 on both experts: no negative pass
    assert np.array_equal(got, lightx2v_loop(tiny_a14b, size))
    assert not np.array_equal(got, pipeline.generate(tiny_a14b, prompt=PROMPT, negative_prompt=NEGATIVE,
                                                     output="float", **size).video)


def test_the_recipe_splits_i2v_a14b_two_and_two(tiny_i2v):
    from PIL import Image

    from reel_engine import pipeline

    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8))
    order, remove = expert_order(tiny_i2v)
    try:
        pipeline.generate(tiny_i2v, prompt=PROMPT, negative_prompt="", image=image, sampler=recipe_sampler(),
                          **dict(A14B_SIZE, guidance=1.0, guidance_2=1.0))
    finally:
        remove()
    assert tiny_i2v.pipe.config.boundary_ratio == 0.9 and order == ["high", "high", "low", "low"]


def test_the_lightning_recipe_with_its_loras_resumes_to_identical_frames(slotted_a14b, files, tmp_path):
    """The whole recipe (the sampler, guidance 1, a LoRA per expert) stopped after step 2 and resumed gives the
    frames of an uninterrupted run; job.json and the checkpoint identity record the sampler."""
    from PIL import Image

    from reel_engine.protocol import DebugHooks

    def frames(out):
        folder = out / "frames"
        return np.stack([np.asarray(Image.open(folder / n)) for n in sorted(os.listdir(folder))])

    entries = [(files["h"], 1.0, "high"), (files["l"], 1.0, "low")]
    recipe = dict(guidance=1.0, guidance_2=1.0, sampler=recipe_sampler(), recipe="lightning-4step", png_frames=True)
    whole = tmp_path / "whole"
    final, _ = run_job(slotted_a14b, job_request(whole, entries, **recipe))
    assert final["event"] == "result", final
    record = json.loads((whole / "job.json").read_text())
    assert record["sampler"] == {"kind": "step_distill", "shift": 5.0, "denoising_steps": [1000, 750, 500, 250]}
    assert (record["steps"], record["guidance"], record["guidance_2"]) == (4, 1.0, 1.0)

    out = tmp_path / "resumed"
    final, _ = run_job(slotted_a14b, job_request(out, entries, checkpoint_every=1, debug=DebugHooks(oom_at_step=2),
                                                 **recipe))
    assert final["code"] == "out_of_memory"
    reel(slotted_a14b, [(files["x"], 1.0, "both")], A14B_SIZE)  # another set in the slots between the two runs
    with open(out / "checkpoint.pt", "rb") as f:
        from reel_engine import checkpoint

        header = checkpoint.decode_checkpoint(f.read())[0]
    assert (header["step"], header["expert"]) == (2, "transformer")
    assert header["identity"]["sampler"] == record["sampler"] and header["identity"]["recipe"] == "lightning-4step"
    final, events = run_job(slotted_a14b, job_request(out, entries, checkpoint_every=1, **recipe))
    assert final["event"] == "result", final
    assert [e for e in events if e["event"] == "resumed"] == [{"event": "resumed", "job": "l-1", "step": 2,
                                                               "total": 4}]
    assert np.array_equal(frames(out), frames(whole))


@pytest.mark.parametrize("sampler, message", [
    ("fast", "sampler: expected an object, got a string"),
    ({"kind": "euler", "shift": 5, "denoising_steps": [1000]},
     'sampler.kind: must be one of step_distill, flow_euler, flow_unipc, got "euler"'),
    ({"kind": "step_distill", "denoising_steps": [1000, 750, 500, 250]}, "sampler.shift: missing field"),
    ({"kind": "step_distill", "shift": 0, "denoising_steps": [1000, 750, 500, 250]},
     "sampler.shift: must be above 0, got 0.0"),
    ({"kind": "step_distill", "shift": 5}, "sampler.denoising_steps: missing field"),
    ({"kind": "step_distill", "shift": 5, "denoising_steps": [1000, 750, 750, 250]},
     "sampler.denoising_steps[2]: 750 is not below 750 (the steps must strictly decrease)"),
    ({"kind": "step_distill", "shift": 5, "denoising_steps": [1001, 750, 500, 250]},
     "sampler.denoising_steps[0]: expected an integer in 1 … 1000, got 1001"),
    ({"kind": "step_distill", "shift": 5, "denoising_steps": [1000, 750.5, 500, 250]},
     "sampler.denoising_steps[1]: expected an integer in 1 … 1000, got 750.5"),
    ({"kind": "step_distill", "shift": 5, "denoising_steps": [1000, 500]},
     "sampler.denoising_steps: 2 entries, but steps is 4 (one entry per step)"),
])
def test_bad_sampler_fields_are_named(sampler, message):
    from reel_engine.protocol import RequestError

    with pytest.raises(RequestError) as e:
        parse(sampler=sampler)
    assert e.value.message == message


def test_the_sampler_parses():
    req = parse(sampler={"kind": "step_distill", "shift": 5, "denoising_steps": [1000, 750.0, 500, 250]})
    assert req.sampler == recipe_sampler() and parse().sampler is None


# ---------------------------------------------------------------------------------------------------------------
# Compilation


def test_a_switch_does_not_recompile_the_compiled_blocks(data_dir, libraries, files, tmp_path):
    """The slots are compiled in (compile_repeated_blocks, fullgraph); switching LoRAs, scales and a full delta then
    runs under torch.compiler's fail_on_recompile stance. Dynamo's guards, which decide recompilation, are the same
    for every backend; the test uses aot_eager because inductor's C++ compilation of the tiny blocks takes some 30 s
    on a 2-core machine (with inductor the same switches were checked by hand: no recompilation)."""
    from reel_engine import lora_slots, speed
    from reel_engine.models import load_model

    model = load_model("tiny:t2v-a14b", "cpu", data_dir)
    lora_slots.install(model, slots=2, max_rank=RANK)
    base = reel(model, [], A14B_SIZE)
    speed.compile_transformers(model, backend="aot_eager")
    delta = write_original(tmp_path / "m.safetensors", random_pairs(T2V, RANK, 51), alpha=2.0,
                           deltas={"blocks.0.modulation.diff": torch.randn(1, 6, 32) * 0.5})
    a = [(delta, 0.8, "high"), (files["l"], 1.3, "low")]
    first = reel(model, a, A14B_SIZE)  # compiles
    with torch.compiler.set_stance("fail_on_recompile"):
        other = reel(model, [(files["x"], 1.1, "both"), (files["h"], -0.4, "high")], A14B_SIZE)
        again = reel(model, a, A14B_SIZE)
        bare = reel(model, [], A14B_SIZE)
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert float(np.abs(bare - base).max()) < 1e-5  # compiled vs eager: the same function, reordered
    # The stance is on: a Python float in a scaling (what peft's set_adapters writes) would recompile.
    model.pipe.transformer.set_adapters(model.loras.names, [0.5, 0.0])
    with torch.compiler.set_stance("fail_on_recompile"), pytest.raises(Exception, match="(?i)recompil"):
        reel(model, [], A14B_SIZE)

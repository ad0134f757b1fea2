"""`comfyui:DIR` models: single files written in ComfyUI's layouts from the tiny diffusers models
(tests/comfy_writer.py), detected from their headers, loaded, and run against the diffusers directory they came from."""

import json
import os
import shutil

import numpy as np
import pytest
import torch
from comfy_writer import (
    quantize,
    spiece_model,
    spiece_pieces,
    text_encoder_file_state,
    transformer_to_original,
    vae_name_to_original,
    vae_to_original,
    write,
)

from reel_engine import cli, comfy_files, jobs, models, pipeline, scripted_model, startup
from reel_engine.catalog import ModelError, parse_model_name
from reel_engine.comfy_files import FileError
from reel_engine.model_configs import component_configs
from reel_engine.protocol import GenerateRequest

PROMPT = "A red fox walks through fresh snow at dawn"
NEGATIVE = "worst quality, low quality"
TI2V_NAMES = dict(unet="wan2.2_ti2v_5B_fp16.safetensors", vae="wan2.2_vae.safetensors")
A14B_NAMES = dict(unet_high="wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors",
                  unet_low="wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors", vae="wan_2.1_vae.safetensors")
TEXT = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"


def _linear(name, t):
    return name.endswith(".weight") and t.dim() == 2


def _text_linear(name, t):
    return _linear(name, t) and "relative_attention_bias" not in name and name != "shared.weight"


def _folder(tmp_path, model, *, dtype=None, fp8=False, prefix="model.diffusion_model.", text_fp8=False):
    """A ComfyUI models/ folder (under tmp_path/ComfyUI) from a loaded tiny model, with the templates' file names."""
    root = tmp_path / "ComfyUI" / "models"
    for sub in ("diffusion_models", "text_encoders", "vae", "loras"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    pipe, arch = model.pipe, model.architecture
    version = "wan2.2" if arch == "ti2v-5b" else "wan2.1"
    nrb = component_configs(arch, True)["vae"].get("num_res_blocks", 2)

    def unet(state, name):
        original = transformer_to_original(state)
        write(root / "diffusion_models" / name, quantize(original, quantized=_linear) if fp8 else original,
              prefix=prefix, dtype=dtype)

    if pipe.transformer_2 is None:
        unet(pipe.transformer.state_dict(), TI2V_NAMES["unet"])
        vae_name = TI2V_NAMES["vae"]
    else:
        names = {k: v.replace("_t2v_", "_i2v_") if arch == "i2v-a14b" else v for k, v in A14B_NAMES.items()}
        unet(pipe.transformer.state_dict(), names["unet_high"])
        unet(pipe.transformer_2.state_dict(), names["unet_low"])
        vae_name = A14B_NAMES["vae"]
    write(root / "vae" / vae_name, vae_to_original(pipe.vae.state_dict(), version, nrb))
    text = text_encoder_file_state(pipe.text_encoder.state_dict())
    if text_fp8:
        text = quantize(text, quantized=_text_linear)
    write(root / "text_encoders" / TEXT, text, dtype=dtype if not text_fp8 else None)
    return root


def _generate(model, steps=3):
    return pipeline.generate(model, prompt=PROMPT, negative_prompt=NEGATIVE, width=64, height=64, frames=5,
                             steps=steps, guidance=4.0, seed=7, output="float").video


@pytest.fixture(scope="module")
def spiece_tokenizer():
    return comfy_files.tokenizer_from_spiece(spiece_model())


def _reference(name, data_dir, tokenizer, round_to=None):
    """The tiny model loaded from its diffusers directory, with the SentencePiece tokenizer the comfy files carry
    (the tiny model's own tokenizer is a byte-level BPE, not SentencePiece) and optionally its weights rounded
    through `round_to` as the files store them (the transformers and the text encoder)."""
    ref = models.load_model(name, "cpu", data_dir)
    ref.pipe.tokenizer = tokenizer
    if round_to is not None:
        for module in (ref.pipe.transformer, ref.pipe.transformer_2, ref.pipe.text_encoder):  # the VAE file is fp32
            if module is not None:
                for p in module.parameters():
                    p.data = p.data.to(round_to).float()
    return ref


def test_the_embedded_sentencepiece_model_is_the_tokenizer(spiece_tokenizer):
    tok = spiece_tokenizer
    ids = tok("A red fox walks").input_ids
    assert tok.convert_ids_to_tokens(ids) == ["▁A", "▁red", "▁fox", "▁walks", "</s>"]
    assert ids[-1] == 1 and tok.pad_token_id == 0 and tok.unk_token_id == 2  # umT5's special ids
    assert len(tok) == len(spiece_pieces()) <= 2048  # fits the tiny encoder's embeddings
    assert max(tok("一只红狐狸在雪地里, emoji 🦊").input_ids) < len(tok)  # unknown characters become <unk>


def test_describe_reads_the_headers(tiny_ti2v, tiny_a14b, tmp_path):
    ti2v = _folder(tmp_path / "a", tiny_ti2v)
    a14b = _folder(tmp_path / "b", tiny_a14b, fp8=True, prefix="", text_fp8=True)
    d = comfy_files.describe(str(ti2v / "diffusion_models" / TI2V_NAMES["unet"]))
    assert {k: d[k] for k in ("kind", "architecture", "dtype", "fp8_scaled", "prefix", "tiny", "width",
                              "in_channels", "blocks")} == dict(
        kind="transformer", architecture="ti2v-5b", dtype="float32", fp8_scaled=False,
        prefix="model.diffusion_model.", tiny=True, width=32, in_channels=48, blocks=2)
    d = comfy_files.describe(str(a14b / "diffusion_models" / A14B_NAMES["unet_high"]))
    assert (d["architecture"], d["dtype"], d["fp8_scaled"], d["prefix"], d["in_channels"]) == (
        "t2v-a14b", "float8_e4m3fn", True, "", 16)
    d = comfy_files.describe(str(ti2v / "vae" / TI2V_NAMES["vae"]))
    assert (d["kind"], d["architecture"], d["z_dim"], d["for_architectures"]) == ("vae", "wan2.2", 48, ["ti2v-5b"])
    d = comfy_files.describe(str(a14b / "vae" / A14B_NAMES["vae"]))
    assert (d["kind"], d["architecture"], d["z_dim"]) == ("vae", "wan2.1", 16)
    d = comfy_files.describe(str(a14b / "text_encoders" / TEXT))
    assert (d["kind"], d["architecture"], d["tokenizer"], d["fp8_scaled"]) == ("text_encoder", "umt5-xxl", True, True)


def test_full_size_key_maps_agree_with_diffusers(full_size_meta):
    """The forward maps (comfy_files) invert the test's maps on every full-size key, and diffusers' own converters
    turn the test's original names back into diffusers' names: so the original names are the ones diffusers reads
    (the Wan2.2 VAE: diffusers has no single-file converter for it; its rules are convert_vae_22's)."""
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers, convert_wan_vae_to_diffusers

    for arch in ("ti2v-5b", "t2v-a14b", "i2v-a14b"):
        keys = list(full_size_meta(arch).transformer.state_dict())
        original = transformer_to_original(dict.fromkeys(keys, 0))
        assert [comfy_files.transformer_key(k) for k in original] == keys
        assert set(convert_wan_transformer_to_diffusers(dict(original))) == set(keys)
    for arch, version in (("t2v-a14b", "wan2.1"), ("ti2v-5b", "wan2.2")):
        keys = list(full_size_meta(arch).vae.state_dict())
        original = {vae_name_to_original(k, version, 2): 0 for k in keys}
        assert [comfy_files.vae_key(k, version, 2) for k in original] == keys
        if version == "wan2.1":
            assert set(convert_wan_vae_to_diffusers(original)) == set(keys)
        else:  # diffusers' single-file converter reads the nested layout wrong (WAN.md)
            assert set(convert_wan_vae_to_diffusers(original)) != set(keys)


def test_fp32_files_give_the_frames_of_the_diffusers_directory(tiny_ti2v, data_dir, tmp_path, spiece_tokenizer):
    root = _folder(tmp_path, tiny_ti2v)
    model = models.load_model(f"comfyui:{root.parent}", "cpu", data_dir)  # the folder that has models/
    assert model.architecture == "ti2v-5b" and not model.random_weights and model.path == str(root)
    assert [f["name"] for f in model.files] == [TI2V_NAMES["unet"], TEXT, TI2V_NAMES["vae"]]
    assert all(f["bytes"] == os.path.getsize(f["path"]) for f in model.files)
    ref = _reference("tiny", data_dir, spiece_tokenizer)
    for a, b in ((model.pipe.transformer, ref.pipe.transformer), (model.pipe.vae, ref.pipe.vae),
                 (model.pipe.text_encoder, ref.pipe.text_encoder)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert np.array_equal(_generate(model), _generate(ref))  # bit-identical frames


def test_fp16_files_equal_the_directory_rounded_to_fp16(tiny_ti2v, data_dir, tmp_path, spiece_tokenizer):
    root = _folder(tmp_path, tiny_ti2v, dtype=torch.float16, prefix="diffusion_model.")
    model = models.load_model(f"comfyui:{root}", "cpu", data_dir, files={"unet": TI2V_NAMES["unet"]})
    ref = _reference("tiny", data_dir, spiece_tokenizer, round_to=torch.float16)
    assert np.array_equal(_generate(model), _generate(ref))  # exact, up to the files' dtype


def test_fp8_scaled_files_within_the_bound_and_far_without_scales(tiny_a14b, data_dir, tmp_path,
                                                                    spiece_tokenizer):
    root = _folder(tmp_path / "scaled", tiny_a14b, fp8=True, text_fp8=True)
    model = models.load_model(f"comfyui:{root}", "cpu", data_dir)
    assert model.architecture == "t2v-a14b" and [f["fp8_scaled"] for f in model.files] == [True, True, True, False]
    ref = _reference("tiny:t2v-a14b", data_dir, spiece_tokenizer)
    expected, got = _generate(ref), _generate(model)
    error = float(np.abs(got - expected).max())
    # Bound: per-tensor fp8 e4m3 (3 mantissa bits, relative step 2^-4) on every linear weight of both experts and
    # the encoder; frames are in [0, 1].
    assert error < 0.05, error
    # The same fp8 values with their scales ignored (a file without scales is plain fp8, read at scale 1): far off.
    unscaled = tmp_path / "unscaled"
    shutil.copytree(root, unscaled)
    for name in (A14B_NAMES["unet_high"], A14B_NAMES["unet_low"]):
        from safetensors.torch import load_file, save_file

        path = unscaled / "diffusion_models" / name
        state = load_file(str(path))
        save_file({k: v for k, v in state.items() if not k.endswith((".scale_weight", "scaled_fp8"))}, str(path))
    wrong = models.load_model(f"comfyui:{unscaled}", "cpu", data_dir)
    off = np.nan_to_num(np.abs(_generate(wrong) - expected), nan=np.inf).max()  # NaN frames count as infinitely off
    assert off > 10 * error, off


def test_an_i2v_a14b_folder_loads_by_its_default_names(tiny_i2v, data_dir, tmp_path):
    root = _folder(tmp_path, tiny_i2v, dtype=torch.bfloat16, fp8=True)
    model = models.load_model(f"comfyui:{root}", "cpu", data_dir)
    assert model.architecture == "i2v-a14b" and type(model.pipe).__name__ == "WanImageToVideoPipeline"
    assert [f["name"] for f in model.files][:2] == ["wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors",
                                                    "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors"]
    assert model.pipe.config.boundary_ratio == tiny_i2v.pipe.config.boundary_ratio == 0.9
    assert model.pipe.transformer_2.config.in_channels == 36 and model.image == "required"


def test_newer_weight_scale_spelling(tiny_a14b, tmp_path):
    state = transformer_to_original(tiny_a14b.pipe.transformer.state_dict())
    path = write(tmp_path / "new.safetensors", quantize(state, "weight_scale", marker=False, quantized=_linear))
    loaded = comfy_files.load_transformer(path, "t2v-a14b", torch.float32)
    ref = tiny_a14b.pipe.transformer.state_dict()
    worst = max(float((v - ref[k]).abs().max() / ref[k].abs().max().clamp(min=1e-12))
                for k, v in loaded.state_dict().items())
    assert worst <= 2 ** -4  # within fp8 e4m3's relative step of each tensor's largest value


def test_bad_files_are_refused_naming_the_file(tiny_ti2v, tiny_a14b, data_dir, tmp_path):
    ti2v = _folder(tmp_path / "ti2v", tiny_ti2v)
    a14b = _folder(tmp_path / "a14b", tiny_a14b, fp8=True)
    unet = ti2v / "diffusion_models" / TI2V_NAMES["unet"]

    def refused(name, files=None, match=None):
        with pytest.raises(ModelError, match=match) as e:
            models.load_model(name, "cpu", data_dir, files=files)
        return str(e.value)

    # A Wan2.1 VAE for TI2V-5B.
    shutil.copy(a14b / "vae" / A14B_NAMES["vae"], ti2v / "vae")
    msg = refused(f"comfyui:{ti2v}", {"vae": A14B_NAMES["vae"]})
    assert A14B_NAMES["vae"] in msg and "expected the Wan2.2 VAE" in msg
    # The 5B unet as an A14B expert, and an A14B expert as --unet.
    msg = refused(f"comfyui:{a14b}", {"unet_high": str(unet), "unet_low": A14B_NAMES["unet_low"]})
    assert str(unet) in msg and "--unet-high" in msg and "expected a t2v-a14b or i2v-a14b expert" in msg
    msg = refused(f"comfyui:{a14b}", {"unet": A14B_NAMES["unet_high"]})
    assert A14B_NAMES["unet_high"] in msg and "--unet-high and --unet-low" in msg
    # A truncated file.
    cut = ti2v / "diffusion_models" / "cut.safetensors"
    data = unet.read_bytes()
    cut.write_bytes(data[: len(data) - 1000])
    msg = refused(f"comfyui:{ti2v}", {"unet": "cut.safetensors"})
    assert str(cut) in msg and "truncated" in msg
    # A missing file names the folder looked in and what is there.
    msg = refused(f"comfyui:{ti2v}", {"unet": "nope.safetensors"})
    assert "--unet nope.safetensors: not found in" in msg and TI2V_NAMES["unet"] in msg
    # Unknown keys.
    state = transformer_to_original(tiny_ti2v.pipe.transformer.state_dict())
    extra = write(ti2v / "diffusion_models" / "extra.safetensors", {**state, "blocks.0.lora_thing.weight":
                                                                    torch.zeros(2)})
    msg = refused(f"comfyui:{ti2v}", {"unet": "extra.safetensors"})
    assert extra in msg and "blocks.0.lora_thing.weight" in msg
    # A missing key.
    del state["head.head.bias"]
    short = write(ti2v / "diffusion_models" / "short.safetensors", state)
    msg = refused(f"comfyui:{ti2v}", {"unet": "short.safetensors"})
    assert short in msg and "missing proj_out.bias" in msg
    # An fp8-scaled file one of whose scales is gone: refused, naming the weight, not read at scale 1.
    from safetensors.torch import load_file, save_file

    path = a14b / "diffusion_models" / A14B_NAMES["unet_low"]
    quantized = load_file(str(path))
    del quantized["model.diffusion_model.blocks.1.ffn.0.scale_weight"]
    save_file(quantized, str(path))
    msg = refused(f"comfyui:{a14b}")
    assert str(path) in msg and "no scale" in msg and "blocks.1.ffn.0.weight" in msg
    # Block scales (another mixed-quant layout) are refused, not broadcast.
    blocky = load_file(str(a14b / "diffusion_models" / A14B_NAMES["unet_high"]))
    blocky["model.diffusion_model.blocks.0.ffn.2.scale_weight"] = torch.ones(32, 2)
    save_file(blocky, str(a14b / "diffusion_models" / "blocky.safetensors"))
    with pytest.raises(FileError, match=r"blocky.safetensors: quantized weights .*blocks.0.ffn.2.weight"):
        comfy_files.load_transformer(str(a14b / "diffusion_models" / "blocky.safetensors"), "t2v-a14b",
                                     torch.float32)
    # Not a ComfyUI folder; a folder with no default model.
    msg = refused(f"comfyui:{tmp_path / 'nothing'}")
    assert "does not exist" in msg
    empty = tmp_path / "empty" / "models" / "diffusion_models"
    empty.mkdir(parents=True)
    assert "choose the model with --unet" in refused(f"comfyui:{empty.parent}")
    # A text encoder without its SentencePiece model.
    bare = {k: v for k, v in text_encoder_file_state(tiny_ti2v.pipe.text_encoder.state_dict()).items()
            if k != "spiece_model"}
    write(ti2v / "text_encoders" / "bare.safetensors", bare)
    with pytest.raises(FileError, match="no embedded SentencePiece"):
        comfy_files.load_text_encoder(str(ti2v / "text_encoders" / "bare.safetensors"), torch.float32)


def test_the_worker_takes_the_flags_and_records_the_files(tiny_ti2v, data_dir, tmp_path):
    root = _folder(tmp_path, tiny_ti2v)
    argv = ["--device", "cpu", "--model", f"comfyui:{root}", "--unet", TI2V_NAMES["unet"], "--vae",
            str(root / "vae" / TI2V_NAMES["vae"]), "--text-encoder", TEXT, "--data-dir", data_dir, "--compile", "off",
            "--lora-slots", "1"]
    args = cli.parse_args(argv)
    assert parse_model_name(args.model).kind == "comfyui"
    model, group = startup.start(args)
    ready = startup.ready_fields(model)
    assert ready["architecture"] == "ti2v-5b" and ready["model_path"] == str(root) and not ready["random_weights"]
    assert [(f["role"], f["name"]) for f in ready["model_files"]] == [
        ("unet", TI2V_NAMES["unet"]), ("text_encoder", TEXT), ("vae", TI2V_NAMES["vae"])]
    assert model.lora_slots == 1
    # A job runs unchanged on it; job.json records the files.
    out = tmp_path / "job"
    req = GenerateRequest(job="c-1", prompt=PROMPT, negative_prompt="", width=64, height=64, frames=5, steps=2,
                          guidance=4.0, seed=1, out_dir=str(out))
    final = jobs.run_job(model, jobs.Job(req), lambda e: None)
    assert final["event"] == "result", final
    record = json.loads((out / "job.json").read_text())
    assert record["model"] == f"comfyui:{root}" and record["model_path"] == str(root)
    used = (root / "diffusion_models" / TI2V_NAMES["unet"], root / "text_encoders" / TEXT,
            root / "vae" / TI2V_NAMES["vae"])
    assert [(f["name"], f["bytes"]) for f in record["model_files"]] == [(p.name, p.stat().st_size) for p in used]
    # The scripted worker resolves the same files to the same architecture.
    scripted = scripted_model.load(args)
    assert (scripted.architecture, scripted.path) == (model.architecture, model.path)
    assert scripted.ready_fields()["model_files"] == ready["model_files"]
    with pytest.raises(SystemExit):
        cli.parse_args(["--device", "cpu", "--model", "tiny", "--unet", "x.safetensors"])


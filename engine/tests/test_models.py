"""The model catalog: tiny models (created once, reloaded from the cache), directory checks, full-size configs."""

import json
import os
import shutil

import pytest
import torch

from reel_engine import building, catalog, cli, devices, models, placement, scripted_model, startup, tiny_models
from reel_engine.catalog import ModelError


def test_tiny_model_is_created_once_then_reloaded(tmp_path):
    data_dir = str(tmp_path)
    first = models.load_model("tiny", "cpu", data_dir)
    assert first.created and first.path == os.path.join(data_dir, "models", "tiny-ti2v-5b")
    marker = os.path.join(first.path, tiny_models.TINY_MARKER)
    weights = os.path.join(first.path, "transformer", "diffusion_pytorch_model.safetensors")
    stamp = (os.stat(marker).st_mtime_ns, os.stat(weights).st_mtime_ns, os.stat(weights).st_ino)
    second = models.load_model("tiny:ti2v-5b", "cpu", data_dir)
    assert not second.created
    assert (os.stat(marker).st_mtime_ns, os.stat(weights).st_mtime_ns, os.stat(weights).st_ino) == stamp
    # Only the final directory remains: the temporary one was renamed into place.
    assert os.listdir(os.path.join(data_dir, "models")) == ["tiny-ti2v-5b"]
    # Same weights after the round trip through save_pretrained/from_pretrained.
    for a, b in zip(first.pipe.transformer.parameters(), second.pipe.transformer.parameters(), strict=True):
        assert torch.equal(a, b)


def test_racing_creators_leave_one_complete_copy(tmp_path, monkeypatch):
    real_rename = os.rename
    raced = []

    def rename(src, dst):
        if not raced and os.path.basename(src).startswith(".tiny-"):
            # Another worker finishes creating the same model just before this one renames its copy into place.
            raced.append(True)
            monkeypatch.setattr(os, "rename", real_rename)
            assert tiny_models.ensure_tiny(str(tmp_path), "t2v-a14b") == (dst, True)
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    path, created = tiny_models.ensure_tiny(str(tmp_path), "t2v-a14b")
    assert raced and not created
    assert os.listdir(tmp_path / "models") == ["tiny-t2v-a14b"]  # the loser's temporary copy is gone
    assert catalog.inspect_model_dir(path) == "t2v-a14b"


def test_tiny_model_metadata(tiny_ti2v, tiny_a14b):
    assert (tiny_ti2v.architecture, tiny_ti2v.fps, tiny_ti2v.spatial_stride, tiny_ti2v.temporal_stride) == (
        "ti2v-5b", 24, 32, 4)
    assert (tiny_a14b.architecture, tiny_a14b.fps, tiny_a14b.spatial_stride, tiny_a14b.temporal_stride) == (
        "t2v-a14b", 16, 16, 4)
    assert tiny_ti2v.random_weights and tiny_a14b.random_weights
    assert tiny_ti2v.defaults.to_json() == {"width": 256, "height": 256, "frames": 17, "steps": 4, "guidance": 5.0}
    assert tiny_ti2v.dtype == torch.float32 and tiny_ti2v.dtype_name == "float32"
    # The same classes and settings as the real models.
    ti2v, a14b = tiny_ti2v.pipe, tiny_a14b.pipe
    assert type(ti2v).__name__ == "WanPipeline" and ti2v.config.expand_timesteps and ti2v.transformer_2 is None
    assert ti2v.vae.config.z_dim == 48 and ti2v.vae.config.scale_factor_spatial == 16 and ti2v.vae.config.is_residual
    assert a14b.config.boundary_ratio == 0.875 and a14b.transformer_2 is not None
    assert a14b.vae.config.z_dim == 16 and a14b.vae.config.scale_factor_spatial == 8
    for pipe, shift in ((ti2v, 5.0), (a14b, 12.0)):
        cfg = pipe.scheduler.config
        assert type(pipe.scheduler).__name__ == "UniPCMultistepScheduler"
        assert (cfg.prediction_type, cfg.use_flow_sigmas, cfg.flow_shift) == ("flow_prediction", True, shift)
        assert type(pipe.text_encoder).__name__ == "UMT5EncoderModel"


def test_tiny_i2v_model_has_the_i2v_a14b_layout(tiny_i2v):
    """I2V-A14B as Wan-AI/Wan2.2-I2V-A14B-Diffusers has it: a WanImageToVideoPipeline with two experts of 36 input
    channels (noise, frame mask, image latent) and 16 output ones, the Wan2.1 VAE, boundary_ratio 0.9, no image
    encoder; its scheduler the official flow shift 5."""
    pipe = tiny_i2v.pipe
    assert (tiny_i2v.architecture, tiny_i2v.fps, tiny_i2v.spatial_stride, tiny_i2v.temporal_stride) == (
        "i2v-a14b", 16, 16, 4)
    assert (tiny_i2v.image, tiny_i2v.last_image) == ("required", True)
    assert type(pipe).__name__ == "WanImageToVideoPipeline"
    assert pipe.config.boundary_ratio == 0.9 and not pipe.config.expand_timesteps
    assert pipe.image_encoder is None and pipe.image_processor is None
    for expert in (pipe.transformer, pipe.transformer_2):
        assert (expert.config.in_channels, expert.config.out_channels, expert.config.image_dim) == (36, 16, None)
    assert pipe.vae.config.z_dim == 16 and pipe.vae.config.scale_factor_spatial == 8
    assert pipe.scheduler.config.flow_shift == 5.0
    assert tiny_i2v.defaults.to_json() == {"width": 256, "height": 256, "frames": 17, "steps": 4, "guidance": 5.0,
                                           "guidance_2": 5.0}


def test_an_i2v_a14b_directory_loads(tiny_i2v, tmp_path):
    """A diffusers directory in the Wan2.2-I2V-A14B-Diffusers layout (the tiny model's cache is one, written by
    save_pretrained) loads as I2V-A14B; a WanImageToVideoPipeline of Wan2.1's kind (one transformer, an image
    encoder) is refused."""
    path = _copy_tiny(tiny_i2v.path, tmp_path)
    with open(os.path.join(path, "model_index.json"), encoding="utf-8") as f:
        index = json.load(f)
    assert index["_class_name"] == "WanImageToVideoPipeline" and index["boundary_ratio"] == 0.9
    assert index["image_encoder"] == [None, None] and index["transformer_2"] == ["diffusers", "WanTransformer3DModel"]
    loaded = models.load_model(path, "cpu")
    assert (loaded.architecture, loaded.path, loaded.random_weights) == ("i2v-a14b", path, False)
    assert type(loaded.pipe).__name__ == "WanImageToVideoPipeline"
    assert loaded.defaults.to_json()["steps"] == 40 and loaded.defaults.guidance_2 == 3.5
    for a, b in zip(loaded.pipe.transformer_2.parameters(), tiny_i2v.pipe.transformer_2.parameters(), strict=True):
        assert torch.equal(a, b)

    shutil.rmtree(os.path.join(path, "transformer_2"))
    with pytest.raises(ModelError, match="'transformer_2'.*Wan-AI/Wan2.2-I2V-A14B-Diffusers"):
        catalog.inspect_model_dir(path)
    wan21 = {**index, "transformer_2": [None, None], "boundary_ratio": None,
             "image_encoder": ["transformers", "CLIPVisionModel"]}
    with open(os.path.join(path, "model_index.json"), "w", encoding="utf-8") as f:
        json.dump(wan21, f)
    with pytest.raises(ModelError, match="is a WanImageToVideoPipeline but not Wan2.2 I2V-A14B"):
        catalog.inspect_model_dir(path)


def test_local_tokenizer_handles_english_and_chinese(tiny_ti2v):
    tok = tiny_ti2v.pipe.tokenizer
    for text in ("a red fox in snow", "一只红狐狸在雪地里", "emoji 🦊 mixed 狐狸"):
        ids = tok(text).input_ids
        assert ids[-1] == tok.eos_token_id and tok.unk_token_id not in ids
        assert tok.decode(ids, skip_special_tokens=True) == text
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)


def _copy_tiny(src: str, dst) -> str:
    path = str(dst / "model")
    shutil.copytree(src, path)
    return path


@pytest.mark.parametrize("remove, fragment", [
    ("vae", "missing the 'vae' component"),
    ("text_encoder/config.json", "component 'text_encoder' is incomplete: text_encoder/config.json is missing"),
    ("transformer/diffusion_pytorch_model.safetensors", "component 'transformer' has no weights"),
    ("scheduler/scheduler_config.json", "scheduler/scheduler_config.json is missing"),
    ("tokenizer", "missing the 'tokenizer' component"),
])
def test_incomplete_ti2v_directory_names_the_component(tiny_ti2v, tmp_path, remove, fragment):
    path = _copy_tiny(tiny_ti2v.path, tmp_path)
    target = os.path.join(path, remove)
    shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)
    with pytest.raises(ModelError) as info:
        models.load_model(path, "cpu")
    assert fragment in str(info.value)
    assert "Wan-AI/Wan2.2-TI2V-5B-Diffusers" in str(info.value)


def test_incomplete_a14b_directory_names_the_component(tiny_a14b, tmp_path):
    path = _copy_tiny(tiny_a14b.path, tmp_path)
    shutil.rmtree(os.path.join(path, "transformer_2"))
    with pytest.raises(ModelError) as info:
        models.load_model(path, "cpu")
    assert "'transformer_2'" in str(info.value) and "Wan-AI/Wan2.2-T2V-A14B-Diffusers" in str(info.value)


def test_missing_shard_of_a_sharded_component(tiny_ti2v, tmp_path):
    path = _copy_tiny(tiny_ti2v.path, tmp_path)
    folder = os.path.join(path, "transformer")
    with open(os.path.join(folder, "diffusion_pytorch_model.safetensors.index.json"), "w") as f:
        f.write('{"weight_map": {"a": "diffusion_pytorch_model-00001-of-00002.safetensors",'
                ' "b": "diffusion_pytorch_model-00002-of-00002.safetensors"}}')
    with pytest.raises(ModelError) as info:
        catalog.inspect_model_dir(path)
    assert "2 of 2 weight shards are missing" in str(info.value)


def test_not_a_model_directory(tmp_path):
    with pytest.raises(ModelError) as info:
        models.load_model(str(tmp_path), "cpu")
    assert "model_index.json is missing" in str(info.value)
    for repo in ("Wan-AI/Wan2.2-TI2V-5B-Diffusers", "Wan-AI/Wan2.2-T2V-A14B-Diffusers",
                 "Wan-AI/Wan2.2-I2V-A14B-Diffusers"):
        assert repo in str(info.value)
    with pytest.raises(ModelError, match="does not exist"):
        models.load_model(str(tmp_path / "nope"), "cpu")


def test_unknown_names_and_devices():
    with pytest.raises(ModelError, match="random models are"):
        models.load_model("random:sdxl", "cpu")
    with pytest.raises(ModelError, match="tiny models are"):
        models.load_model("tiny:sdxl", "cpu")
    with pytest.raises(ModelError, match="expected cpu, cuda or cuda:N"):
        devices.resolve_device("tpu")


def test_full_size_configs_have_the_published_sizes(full_size_meta):
    # Built on the meta device: the real architectures' shapes without allocating any memory.
    ti2v, a14b = full_size_meta("ti2v-5b"), full_size_meta("t2v-a14b")

    def billions(module):
        return sum(p.numel() for p in module.parameters()) / 1e9

    assert 4.9 < billions(ti2v.transformer) < 5.1  # "5B"
    assert 14.1 < billions(a14b.transformer) < 14.4 and 14.1 < billions(a14b.transformer_2) < 14.4  # "A14B" x 2
    assert 5.6 < billions(ti2v.text_encoder) < 5.8  # umT5-XXL encoder
    assert ti2v.transformer.config.num_attention_heads == 24 and a14b.transformer.config.num_attention_heads == 40
    assert ti2v.vae.config.z_dim == 48 and len(ti2v.vae.config.latents_mean) == 48
    assert a14b.vae.config.z_dim == 16 and len(a14b.vae.config.latents_std) == 16
    assert ti2v.transformer.scale_shift_table.dtype == torch.float32  # kept in fp32 like from_pretrained does
    i2v = full_size_meta("i2v-a14b")
    assert type(i2v).__name__ == "WanImageToVideoPipeline" and i2v.config.boundary_ratio == 0.9
    assert 14.1 < billions(i2v.transformer) < 14.4 and 14.1 < billions(i2v.transformer_2) < 14.4
    assert i2v.transformer.config.in_channels == 36 and i2v.transformer.patch_embedding.in_channels == 36
    assert placement.component_sizes(i2v) == scripted_model.COMPONENT_SIZES[("i2v-a14b", False, "bfloat16")]
    assert ti2v.transformer.blocks[0].attn1.to_q.weight.dtype == torch.bfloat16


def test_direct_build_in_bf16_matches_the_float32_structure():
    # random:* models are built directly in the target dtype; the rope tables must not be affected by that.
    cpu = torch.device("cpu")
    bf16 = building.build_pipeline("ti2v-5b", tiny=True, device=cpu, dtype=torch.bfloat16)
    fp32 = building.build_pipeline("ti2v-5b", tiny=True, device=cpu, dtype=torch.float32)
    assert torch.equal(bf16.transformer.rope.freqs_cos, fp32.transformer.rope.freqs_cos)
    assert bf16.transformer.blocks[0].ffn.net[0].proj.weight.dtype == torch.bfloat16
    assert bf16.text_encoder.dtype == torch.bfloat16 and bf16.vae.dtype == torch.bfloat16


# The scripted worker (scripted_model.py) must describe a model name as loading it does.

READY_FIELDS_THAT_VARY = ("pid", "load_seconds", "free_memory_bytes")  # between any two processes or loads


@pytest.mark.parametrize("name, fixture", [("tiny", "tiny_ti2v"), ("tiny:t2v-a14b", "tiny_a14b"),
                                           ("tiny:i2v-a14b", "tiny_i2v")])
def test_the_scripted_workers_ready_fields_are_the_real_workers(request, data_dir, name, fixture):
    model = request.getfixturevalue(fixture)
    startup.prepare_for_speed(model)  # what a real worker does between loading and `ready`
    real = startup.ready_fields(model)
    # The shared models have no LoRA slots (lora_slots.install): neither has the scripted one here.
    args = cli.parse_args(["--device", "cpu", "--model", name, "--data-dir", data_dir, "--lora-slots", "0"])
    scripted = scripted_model.load(args).ready_fields()
    assert scripted.pop("scripted") is True
    for fields in (real, scripted):
        for key in READY_FIELDS_THAT_VARY:
            fields.pop(key)
    assert scripted == real


@pytest.mark.parametrize("fixture", ["tiny_ti2v", "tiny_a14b", "tiny_i2v"])
def test_the_catalogs_sizes_and_strides_are_the_loaded_models(request, fixture):
    model = request.getfixturevalue(fixture)
    sizes = scripted_model.COMPONENT_SIZES[(model.architecture, True, "float32")]
    assert sizes == placement.component_sizes(model.pipe)
    assert catalog.STRIDES[model.architecture] == (model.spatial_stride, model.temporal_stride)


# A real worker's start (startup.py).


def test_transformers_models_is_imported_from_the_structure_transformers_built():
    """The structure startup.import_transformers_models gives transformers.models is what it would build itself."""
    import transformers
    from transformers.utils import import_utils

    init_file, structure = startup.models_import_structure(transformers)
    assert init_file == transformers.models.__file__
    assert structure == import_utils.define_import_structure.__wrapped__(init_file)

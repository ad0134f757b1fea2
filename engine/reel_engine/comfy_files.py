"""Wan2.2 as ComfyUI keeps it: single .safetensors files (a transformer per expert, the VAE, the UMT5 text encoder),
detected from their headers and loaded into the same diffusers classes the rest of the engine drives.

- `read_header` / `describe` read only a file's header (no tensor data): what the file is (transformer, VAE, text
  encoder), its architecture (from `head.modulation`'s width, `patch_embedding`'s input channels and the block
  count, checked against model_configs.py's full-size and tiny configs), its dtype and whether it is fp8-scaled.
- Transformers are in the original Wan key names, optionally prefixed `model.diffusion_model.` or `diffusion_model.`;
  they are renamed to diffusers' names with loras.py's table of original Wan modules (the one LoRAs use). The model
  is built from model_configs.py's config of the detected architecture, never from diffusers' auto-detection (which
  takes TI2V-5B and I2V-A14B for Wan2.1 models), and loaded strictly.
- fp8-scaled files (ComfyUI's `X.scale_weight` + `scaled_fp8` marker, or the newer `X.weight_scale` + `X.comfy_quant`):
  every fp8 weight is multiplied by its scale in float32, then cast to the compute dtype. An fp8 weight whose scale
  is missing in a file that has scales, a scale without its weight, or any key not understood is an error naming
  the file and the keys: nothing is dropped silently (diffusers' own single-file loader warns and casts unscaled).
- VAEs: `wan2.2_vae.safetensors` (z 48, the nested Wan2.2 layout) through the key rules of diffusers'
  scripts/convert_wan_to_diffusers.py `convert_vae_22` (diffusers' single-file converter handles only the Wan2.1
  layout); `wan_2.1_vae.safetensors` (z 16) through the same rules as diffusers' `convert_wan_vae_to_diffusers`,
  except that its decoder grouping is derived from the config rather than hard-coded for num_res_blocks=2 (which
  breaks the tiny VAE); tests check that it agrees with diffusers' converter on the full-size key set.
- The UMT5 file: keys are transformers' own; `spiece_model` (the SentencePiece model as uint8 bytes) becomes the
  tokenizer, so nothing else is needed offline. The ModelProto is parsed here (no sentencepiece/protobuf
  dependency) into a `tokenizers` Unigram model the way transformers' T5 converter builds one.

Tensors are read through safetensors' memory map (`safe_open`), one at a time, converted on the way to the target
device; the model is created without weights (accelerate's init_empty_weights) and the converted tensors are
assigned, so no second full copy exists.
"""

from __future__ import annotations

import math
import os
import re
import struct
from collections import Counter
from dataclasses import dataclass

from . import loras
from .catalog import A14B, ARCHITECTURES, I2V, TI2V, ModelError
from .model_configs import component_configs

TRANSFORMER, VAE, TEXT_ENCODER, UNKNOWN = "transformer", "vae", "text_encoder", "unknown"
PREFIXES = ("model.diffusion_model.", "diffusion_model.")
SCALE_SUFFIXES = ("scale_weight", "weight_scale")  # old ComfyUI scaled_fp8, newer mixed-quant spelling
IGNORED_SUFFIXES = ("scale_input", "input_scale")  # activation scales: only for fp8 matmuls, unused here
QUANT_SUFFIX = "comfy_quant"
MARKERS = ("scaled_fp8",)
FP8 = ("F8_E4M3",)
MAX_HEADER_BYTES = 100 * 1024 * 1024
MAX_NAMED = 10
_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn",
           "F8_E5M2": "float8_e5m2", "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
           "BOOL": "bool"}


class FileError(ModelError):
    """A ComfyUI file that cannot be used: the message names the file and what was expected."""


def _named(keys) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:MAX_NAMED]) + (f" and {len(keys) - MAX_NAMED} more" if len(keys) > MAX_NAMED else "")


@dataclass
class Header:
    path: str
    size: int
    tensors: dict  # name -> (safetensors dtype, shape)
    metadata: dict


def read_header(path: str) -> Header:
    """The header of a safetensors file (parsed as loras.py parses a LoRA's), checked against the file's size (a
    truncated file is an error)."""
    if not os.path.isfile(path):
        raise FileError(f"{path} does not exist")
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise FileError(f"{path} is not a safetensors file ({size} bytes)")
        (length,) = struct.unpack("<Q", head)
        if length > MAX_HEADER_BYTES or 8 + length > size:
            raise FileError(f"{path} is truncated or not a safetensors file (a header of {length} bytes in a file "
                            f"of {size})")
        raw = head + f.read(length)
    try:
        parsed = loras.parse_header(raw, path)
    except ValueError as e:
        raise FileError(str(e)) from None
    if 8 + length + parsed.data_end > size:
        raise FileError(f"{path} is truncated: its header describes {8 + length + parsed.data_end} bytes, the file "
                        f"has {size} (download it again)")
    return Header(path=path, size=size, tensors=parsed.tensors, metadata=parsed.metadata)


# ---------------------------------------------------------------------------------------------------------------
# What a file is


def _prefix_of(names) -> str:
    """The prefix every key has, the `scaled_fp8` marker aside (whether a file prefixes it is not known)."""
    names = [n for n in names if n not in MARKERS]
    for prefix in PREFIXES:
        if names and all(n.startswith(prefix) for n in names):
            return prefix
    return ""


def _transformer_shapes() -> dict:
    """(width, in_channels, blocks) -> (architecture, tiny) for every config model_configs.py builds."""
    table = {}
    for arch in ARCHITECTURES:
        for tiny in (False, True):
            t = component_configs(arch, tiny)["transformer"]
            table[(t["num_attention_heads"] * t["attention_head_dim"], t["in_channels"], t["num_layers"])] = (arch,
                                                                                                             tiny)
    return table


def _vae_shapes() -> dict:
    """(z_dim, encoder base width) -> (version, tiny)."""
    table = {}
    for arch, version in ((TI2V, "wan2.2"), (A14B, "wan2.1")):
        for tiny in (False, True):
            v = component_configs(arch, tiny)["vae"]
            table[(v.get("z_dim", 16), v.get("base_dim", 96))] = (version, tiny)
    return table


def _text_shapes() -> dict:
    table = {}
    for tiny in (False, True):
        t = component_configs(TI2V, tiny)["text_encoder"]
        table[(t["d_model"], t["num_layers"])] = tiny
    return table


def _dtype(header: Header, names) -> str:
    # By elements: an fp8-scaled file is mostly fp8 weights beside many small fp32 scales and norms.
    counts = Counter()
    for n in names:
        dtype, shape = header.tensors[n]
        if dtype in ("F32", "F16", "BF16", *FP8):
            counts[dtype] += math.prod(shape)
    return _DTYPES.get(counts.most_common(1)[0][0], "unknown") if counts else "unknown"


def _fp8_scaled(names) -> bool:
    return any(n.rsplit(".", 1)[-1] in SCALE_SUFFIXES + MARKERS for n in names)


def describe(path: str) -> dict:
    """What a file is, from its header: {kind, architecture, dtype, fp8_scaled, prefix, tensors} plus, where they
    apply, `tiny`, `width`, `in_channels`, `blocks` (transformers), `vae` ("wan2.2"/"wan2.1") and `z_dim` (VAEs),
    `for_architectures` (VAEs: the architectures that use it; `architecture` is the VAE's version),
    `d_model`, `layers`, `tokenizer` (text encoders: `architecture` is "umt5-xxl"), `bytes` and `note` (why a
    Wan-like file is not usable)."""
    header = read_header(path)
    names = list(header.tensors)
    prefix = _prefix_of(names)
    bare = {n[len(prefix):]: n for n in names}
    out = dict(kind=UNKNOWN, architecture=None, dtype=_dtype(header, names), fp8_scaled=_fp8_scaled(names),
               prefix=prefix, tensors=len(names), bytes=header.size)
    if "head.modulation" in bare and "patch_embedding.weight" in bare:
        width = header.tensors[bare["head.modulation"]][1][-1]
        in_channels = header.tensors[bare["patch_embedding.weight"]][1][1]
        blocks = 1 + max((int(m[1]) for n in bare if (m := re.match(r"blocks\.(\d+)\.", n))), default=-1)
        out.update(kind=TRANSFORMER, width=width, in_channels=in_channels, blocks=blocks)
        found = _transformer_shapes().get((width, in_channels, blocks))
        if any(n.startswith("img_emb.") for n in bare):
            out["note"] = "a Wan2.1 image-to-video transformer (img_emb): Reel runs Wan2.2 only"
        elif found is None:
            out["note"] = (f"a Wan transformer of width {width}, {in_channels} input channels and {blocks} blocks: "
                           f"not Wan2.2 TI2V-5B (3072, 48, 30), T2V-A14B (5120, 16, 40) or I2V-A14B (5120, 36, 40)")
        else:
            out.update(architecture=found[0], tiny=found[1])
    elif "decoder.conv1.weight" in bare and "conv1.weight" in bare and "encoder.conv1.weight" in bare:
        z_dim = header.tensors[bare["conv1.weight"]][1][0] // 2
        base = header.tensors[bare["encoder.conv1.weight"]][1][0]
        nested = any(re.match(r"decoder\.upsamples\.\d+\.upsamples\.", n) for n in bare)
        out.update(kind=VAE, z_dim=z_dim, vae="wan2.2" if nested else "wan2.1")
        found = _vae_shapes().get((z_dim, base))
        if found is None or (found[0] == "wan2.2") != nested:
            out["note"] = f"a Wan VAE with {z_dim} latent channels and base width {base}: not the Wan2.2 or Wan2.1 VAE"
        else:
            out.update(architecture=found[0], for_architectures=[TI2V] if found[0] == "wan2.2" else [A14B, I2V],
                       tiny=found[1])
    elif "shared.weight" in bare and "encoder.block.0.layer.0.SelfAttention.q.weight" in bare:
        d_model = header.tensors[bare["shared.weight"]][1][1]
        layers = 1 + max(int(m[1]) for n in bare if (m := re.match(r"encoder\.block\.(\d+)\.", n)))
        out.update(kind=TEXT_ENCODER, d_model=d_model, layers=layers, tokenizer="spiece_model" in bare)
        tiny = _text_shapes().get((d_model, layers))
        if tiny is None:
            out["note"] = f"a T5-like encoder of width {d_model} and {layers} layers: not umT5-XXL (4096, 24)"
        else:
            out.update(architecture="umt5-xxl", tiny=tiny)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Key maps


def transformer_key(name: str) -> str | None:
    """The diffusers parameter name of an original Wan transformer parameter (prefix removed), None if unknown.
    Linear layers through loras.py's `_LINEAR`, other parameters through its `_PARAMS` (written for their `.diff`
    / `.diff_b` deltas: a weight is looked up as `.diff`, a bias as `.diff_b`)."""
    module, _, leaf = name.rpartition(".")
    if leaf in ("weight", "bias"):
        for pattern, target in loras._LINEAR:
            m = pattern.fullmatch(module)
            if m:
                return f"{target(m)}.{leaf}"
    as_delta = f"{module}.{'diff' if leaf == 'weight' else 'diff_b'}" if leaf in ("weight", "bias") else f"{name}.diff"
    for pattern, target in loras._PARAMS:
        m = pattern.fullmatch(as_delta)
        if m:
            return target(m)
    return None


_RESIDUAL = {"residual.0.gamma": "norm1.gamma", "residual.2.weight": "conv1.weight", "residual.2.bias": "conv1.bias",
             "residual.3.gamma": "norm2.gamma", "residual.6.weight": "conv2.weight", "residual.6.bias": "conv2.bias",
             "shortcut.weight": "conv_shortcut.weight", "shortcut.bias": "conv_shortcut.bias"}
_VAE_FIXED = {"conv1.weight": "quant_conv.weight", "conv1.bias": "quant_conv.bias",
              "conv2.weight": "post_quant_conv.weight", "conv2.bias": "post_quant_conv.bias"}
for _side in ("encoder", "decoder"):
    _VAE_FIXED.update({f"{_side}.conv1.weight": f"{_side}.conv_in.weight",
                       f"{_side}.conv1.bias": f"{_side}.conv_in.bias",
                       f"{_side}.head.0.gamma": f"{_side}.norm_out.gamma",
                       f"{_side}.head.2.weight": f"{_side}.conv_out.weight",
                       f"{_side}.head.2.bias": f"{_side}.conv_out.bias"})


def vae_key(name: str, version: str, num_res_blocks: int) -> str | None:
    """The diffusers name of an original Wan VAE parameter (version "wan2.2": nested blocks; "wan2.1": flat), None
    if unknown."""
    if name in _VAE_FIXED:
        return _VAE_FIXED[name]
    m = re.fullmatch(r"(encoder|decoder)\.middle\.(0|1|2)\.(.+)", name)
    if m:
        side, index, rest = m.groups()
        if index == "1":
            return f"{side}.mid_block.attentions.0.{rest}" if rest in (
                "norm.gamma", "to_qkv.weight", "to_qkv.bias", "proj.weight", "proj.bias") else None
        return f"{side}.mid_block.resnets.{int(index) // 2}.{_RESIDUAL[rest]}" if rest in _RESIDUAL else None
    if version == "wan2.2":
        m = re.fullmatch(r"(encoder\.downsamples|decoder\.upsamples)\.(\d+)\.(?:downsamples|upsamples)\.(\d+)\.(.+)",
                         name)
        if not m:
            return None
        where, block, inner, rest = m.groups()
        side, blocks, sampler = (("encoder", "down_blocks", "downsampler") if where.startswith("encoder")
                                 else ("decoder", "up_blocks", "upsampler"))
        if rest in _RESIDUAL:
            return f"{side}.{blocks}.{block}.resnets.{inner}.{_RESIDUAL[rest]}"
        if rest.startswith(("resample.", "time_conv.")):
            return f"{side}.{blocks}.{block}.{sampler}.{rest}"
        return None
    m = re.fullmatch(r"encoder\.downsamples\.(\d+)\.(.+)", name)
    if m:
        index, rest = m.groups()
        if rest in _RESIDUAL:
            return f"encoder.down_blocks.{index}.{_RESIDUAL[rest]}"
        return f"encoder.down_blocks.{index}.{rest}" if rest.startswith(("resample.", "time_conv.")) else None
    m = re.fullmatch(r"decoder\.upsamples\.(\d+)\.(.+)", name)
    if m:
        # Flat in the original: per up block num_res_blocks + 1 residual blocks, then a resample (none after the
        # last); diffusers groups them into up_blocks.I.resnets.J and up_blocks.I.upsamplers.0.
        index, rest = int(m[1]), m[2]
        per_block = num_res_blocks + 2
        block, inner = divmod(index, per_block)
        if inner == per_block - 1:
            return f"decoder.up_blocks.{block}.upsamplers.0.{rest}" if rest.startswith(
                ("resample.", "time_conv.")) else None
        return f"decoder.up_blocks.{block}.resnets.{inner}.{_RESIDUAL[rest]}" if rest in _RESIDUAL else None
    return None


# ---------------------------------------------------------------------------------------------------------------
# Loading


@dataclass
class Plan:
    """Which file key becomes which model parameter, and the scale (a file key) of each fp8 weight."""

    keys: dict  # model name -> file key
    scales: dict  # file key of a weight -> file key of its scale


def _plan(header: Header, prefix: str, rename, expected: dict, what: str) -> Plan:
    """Every key classified before anything is read: renamed, a scale of a weight, or ignored (markers, activation
    scales, quant descriptions); anything else is an error naming the file and keys. Then the renamed set must be
    exactly the model's, with its shapes."""
    keys, scales, unknown, orphans, bad_quant = {}, {}, [], [], []
    names = set(header.tensors)
    for key in names:
        name = key[len(prefix):] if key.startswith(prefix) else key
        base, _, leaf = name.rpartition(".")
        if name in MARKERS or (prefix and key in MARKERS) or leaf in IGNORED_SUFFIXES:
            continue
        if leaf == QUANT_SUFFIX:
            bad_quant.append(key) if header.tensors[key][0] != "U8" else None
            continue
        if leaf in SCALE_SUFFIXES:
            weight = f"{prefix}{base}.weight"
            if weight in names:
                scales[weight] = key
            else:
                orphans.append(key)
            continue
        target = rename(name)
        if target is None:
            unknown.append(key)
        else:
            keys[target] = key
    path = header.path
    if unknown:
        raise FileError(f"{path}: keys that are not {what} parameters: {_named(unknown)}")
    if orphans or bad_quant:
        raise FileError(f"{path}: scales without their weights: {_named(orphans + bad_quant)}")
    missing = set(expected) - set(keys)
    extra = set(keys) - set(expected)
    if missing or extra:
        detail = []
        if missing:
            detail.append(f"missing {_named(missing)}")
        if extra:
            detail.append(f"unexpected {_named(keys[k] for k in extra)}")
        raise FileError(f"{path} does not match the {what}: {'; '.join(detail)}")
    wrong = [f"{keys[k]} {header.tensors[keys[k]][1]} (expected {tuple(shape)})" for k, shape in expected.items()
             if tuple(header.tensors[keys[k]][1]) != tuple(shape)]
    if wrong:
        raise FileError(f"{path}: tensors of the wrong shape for the {what}: {_named(wrong)}")
    # Per-tensor scales of fp8 weights only: the mixed-quant format's other layouts (block-scaled mxfp8, nvfp4
    # packed in uint8) would be wrong multiplied this way.
    unsupported = [f"{w} ({header.tensors[w][0]}, scale {header.tensors[s][0]} {list(header.tensors[s][1])})"
                   for w, s in scales.items()
                   if header.tensors[w][0] not in FP8 or math.prod(header.tensors[s][1]) != 1]
    if unsupported:
        raise FileError(f"{path}: quantized weights Reel cannot read (only fp8 e4m3 with one scale per tensor): "
                        f"{_named(unsupported)}")
    fp8 = [k for k in keys.values() if header.tensors[k][0] in FP8]
    unscaled = [k for k in fp8 if k not in scales]
    if unscaled and (scales or any(n.rsplit(".", 1)[-1] in MARKERS for n in names)):
        raise FileError(f"{path} is fp8-scaled but these fp8 weights have no scale (their values would be wrong "
                        f"by the missing factor): {_named(unscaled)}")
    return Plan(keys=keys, scales=scales)


def _read(header: Header, plan: Plan, dtype_of, device: str) -> dict:
    """The model's state dict, read tensor by tensor through safetensors' memory map, each cast (fp8 weights
    multiplied by their scale in float32 first) straight to its dtype on `device`."""
    import torch
    from safetensors import safe_open

    state = {}
    with safe_open(header.path, framework="pt", device=device) as f:
        for target, key in plan.keys.items():
            t = f.get_tensor(key)
            dtype = dtype_of(target)
            if key in plan.scales:
                scale = f.get_tensor(plan.scales[key]).to(torch.float32)
                t = (t.to(torch.float32) * scale).to(dtype)
            elif t.dtype != dtype and t.is_floating_point():
                t = t.to(dtype)
            state[target] = t
    return state


def _empty(build):
    """A model built without parameter storage (buffers are built as usual: rope tables are not in the files)."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        return build()


def _on(model, device: str):
    """Buffers (the rope tables) were built on the CPU beside parameters read onto `device`: moved too."""
    return (model.to(device) if device != "cpu" else model).eval()


def _expected(model) -> dict:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _check(info: dict, path: str, kind: str, expected: str, role: str) -> None:
    if info["kind"] != kind:
        found = f"a {info['kind']}" if info["kind"] != UNKNOWN else "not a Wan transformer, VAE or umT5 encoder"
        raise FileError(f"{role} {path}: expected a {expected}, the file is {found}"
                        + (f" ({info['note']})" if info.get("note") else ""))
    if info.get("note"):
        raise FileError(f"{role} {path}: expected a {expected}, the file is {info['note']}")


def load_transformer(path: str, architecture: str, dtype, device: str = "cpu", role: str = "--unet",
                     tiny: bool | None = None):
    """A WanTransformer3DModel of `architecture` (model_configs.py's config) from an original-named single file."""
    import torch
    from diffusers import WanTransformer3DModel

    info = describe(path)
    _check(info, path, TRANSFORMER, f"{architecture} transformer", role)
    if info["architecture"] != architecture:
        raise FileError(f"{role} {path}: expected a {architecture} transformer, the file is a {info['architecture']} "
                        f"one (width {info['width']}, {info['in_channels']} input channels, {info['blocks']} blocks)")
    if tiny is not None and info["tiny"] != tiny:
        raise FileError(f"{role} {path}: a {'tiny' if info['tiny'] else 'full-size'} transformer among "
                        f"{'tiny' if tiny else 'full-size'} files")
    config = component_configs(architecture, info["tiny"])["transformer"]
    model = _empty(lambda: WanTransformer3DModel(**config))
    keep = set(getattr(model, "_keep_in_fp32_modules", None) or [])

    def dtype_of(name):
        return torch.float32 if keep & set(name.split(".")) else dtype

    header = read_header(path)
    plan = _plan(header, info["prefix"], transformer_key, _expected(model), f"{architecture} transformer")
    model.load_state_dict(_read(header, plan, dtype_of, device), strict=True, assign=True)
    return _on(model, device)


def load_vae(path: str, architecture: str, dtype, device: str = "cpu", tiny: bool | None = None):
    """An AutoencoderKLWan: the Wan2.2 VAE for TI2V-5B, the Wan2.1 VAE for the A14B models."""
    from diffusers import AutoencoderKLWan

    version = "wan2.2" if architecture == TI2V else "wan2.1"
    expected = f"{'Wan2.2' if version == 'wan2.2' else 'Wan2.1'} VAE (the one {architecture} uses: " \
               f"{'wan2.2_vae.safetensors' if version == 'wan2.2' else 'wan_2.1_vae.safetensors'})"
    info = describe(path)
    _check(info, path, VAE, expected, "--vae")
    if info["vae"] != version:
        raise FileError(f"--vae {path}: expected the {expected}, the file is the {info['vae'].capitalize()} VAE "
                        f"({info['z_dim']} latent channels)")
    if tiny is not None and info["tiny"] != tiny:
        raise FileError(f"--vae {path}: a {'tiny' if info['tiny'] else 'full-size'} VAE among "
                        f"{'tiny' if tiny else 'full-size'} files")
    config = component_configs(architecture, info["tiny"])["vae"]
    model = _empty(lambda: AutoencoderKLWan(**config))
    res = config.get("num_res_blocks", 2)
    header = read_header(path)
    plan = _plan(header, info["prefix"], lambda n: vae_key(n, version, res), _expected(model), expected)
    model.load_state_dict(_read(header, plan, lambda n: dtype, device), strict=True, assign=True)
    return _on(model, device)


def load_text_encoder(path: str, dtype, device: str = "cpu", tiny: bool | None = None):
    """(UMT5EncoderModel, tokenizer) from a ComfyUI umT5 file with its embedded SentencePiece model."""
    from safetensors import safe_open
    from transformers import UMT5Config, UMT5EncoderModel

    info = describe(path)
    _check(info, path, TEXT_ENCODER, "umT5-XXL text encoder", "--text-encoder")
    if tiny is not None and info["tiny"] != tiny:
        raise FileError(f"--text-encoder {path}: a {'tiny' if info['tiny'] else 'full-size'} encoder among "
                        f"{'tiny' if tiny else 'full-size'} files")
    if not info["tokenizer"]:
        raise FileError(f"--text-encoder {path} has no embedded SentencePiece model (spiece_model); Reel needs the "
                        f"tokenizer from the file (use umt5_xxl_fp16.safetensors or "
                        f"umt5_xxl_fp8_e4m3fn_scaled.safetensors from Comfy-Org/Wan_2.1_ComfyUI_repackaged)")
    header = read_header(path)
    cfg = dict(component_configs(TI2V, info["tiny"])["text_encoder"])
    cfg["vocab_size"] = header.tensors["shared.weight"][1][0]
    model = _empty(lambda: UMT5EncoderModel(UMT5Config(**cfg)))
    expected = {k: v for k, v in _expected(model).items() if k != "encoder.embed_tokens.weight"}  # tied to shared

    def rename(name):
        return name if name in expected else None

    plan_header = Header(path=header.path, size=header.size, metadata=header.metadata,
                         tensors={k: v for k, v in header.tensors.items() if k not in ("spiece_model",
                                                                                       "encoder.embed_tokens.weight")})
    plan = _plan(plan_header, "", rename, expected, "umT5 encoder")
    state = _read(header, plan, lambda n: dtype, device)
    model.load_state_dict(state, strict=False, assign=True)
    model.encoder.embed_tokens.weight = model.shared.weight
    model = _on(model, device)
    with safe_open(path, framework="pt") as f:
        spiece = f.get_tensor("spiece_model").numpy().tobytes()
    tokenizer = tokenizer_from_spiece(spiece, path)
    if len(tokenizer) > cfg["vocab_size"]:
        raise FileError(f"--text-encoder {path}: its tokenizer has {len(tokenizer)} tokens, the encoder "
                        f"{cfg['vocab_size']} embeddings")
    return model.eval(), tokenizer


# ---------------------------------------------------------------------------------------------------------------
# A ComfyUI models/ folder: which files make the model (torch-free: the scripted worker resolves the same way)

COMFYUI_PREFIX = "comfyui:"
SUBFOLDERS = {"unet": ("diffusion_models", "unet"), "text_encoder": ("text_encoders", "clip"), "vae": ("vae",)}
# The file names the official ComfyUI Wan2.2 templates load (Comfy-Org/Wan_2.2_ComfyUI_Repackaged and, for the
# text encoder, Comfy-Org/Wan_2.1_ComfyUI_repackaged).
DEFAULT_TEXT_ENCODER = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
DEFAULT_FILES = {
    TI2V: {"unet": "wan2.2_ti2v_5B_fp16.safetensors", "vae": "wan2.2_vae.safetensors"},
    A14B: {"unet_high": "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors",
           "unet_low": "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors", "vae": "wan_2.1_vae.safetensors"},
    I2V: {"unet_high": "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors",
          "unet_low": "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors", "vae": "wan_2.1_vae.safetensors"},
}
FLAGS = {"unet": "--unet", "unet_high": "--unet-high", "unet_low": "--unet-low", "text_encoder": "--text-encoder",
         "vae": "--vae"}


@dataclass
class Selection:
    """The files of a `comfyui:DIR` model: role (unet / unet_high / unet_low / text_encoder / vae) -> path, each
    file's describe(), the architecture (from the unet files) and whether the files are the tiny test ones."""

    root: str
    architecture: str
    tiny: bool
    paths: dict
    infos: dict

    def record(self) -> list[dict]:
        """What job.json and `ready` record: each file's role, name, size and what it was detected as."""
        return [{"role": role, "name": os.path.basename(path), "path": path, "bytes": self.infos[role]["bytes"],
                 "kind": self.infos[role]["kind"], "dtype": self.infos[role]["dtype"],
                 "fp8_scaled": self.infos[role]["fp8_scaled"]} for role, path in self.paths.items()]


def models_root(directory: str) -> str:
    """The ComfyUI models/ folder: DIR itself, or DIR/models."""
    directory = os.path.abspath(os.path.expanduser(directory))
    if not os.path.isdir(directory):
        raise FileError(f"comfyui:{directory}: the folder does not exist")
    for candidate in (directory, os.path.join(directory, "models")):
        if any(os.path.isdir(os.path.join(candidate, sub)) for sub in SUBFOLDERS["unet"]):
            return candidate
    raise FileError(f"comfyui:{directory} is not a ComfyUI models folder: it has no diffusion_models/ (or unet/) "
                    f"folder, nor a models/ folder that has one")


def _find(root: str, role: str, name: str) -> str:
    flag = FLAGS[role]
    kind = "unet" if role.startswith("unet") else role
    if os.path.isabs(name):
        if not os.path.isfile(name):
            raise FileError(f"{flag} {name} does not exist")
        return name
    folders = [os.path.join(root, sub) for sub in SUBFOLDERS[kind]]
    for folder in folders:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    present = sorted({f for folder in folders if os.path.isdir(folder) for f in os.listdir(folder)
                      if f.endswith(".safetensors")})
    raise FileError(f"{flag} {name}: not found in {' or '.join(folders)}"
                    + (f" (there: {', '.join(present[:MAX_NAMED])})" if present else " (no .safetensors files there)"))


def resolve(directory: str, files: dict | None = None) -> Selection:
    """The files of `comfyui:DIRECTORY` given the worker's flags (`files`: role -> file name or absolute path, None
    for the default), each checked from its header: the unet files decide the architecture, the VAE and text
    encoder must be the ones it uses. Raises FileError naming the file and what was expected."""
    root = models_root(directory)
    files = {k: v for k, v in (files or {}).items() if v}
    if files.get("unet") and (files.get("unet_high") or files.get("unet_low")):
        raise FileError("--unet is for one-expert models (TI2V-5B); --unet-high and --unet-low for A14B: give one "
                        "or the other")
    if files.get("unet_high") or files.get("unet_low"):
        if not (files.get("unet_high") and files.get("unet_low")):
            raise FileError("an A14B model needs both --unet-high and --unet-low")
        roles = ("unet_high", "unet_low")
    elif files.get("unet"):
        roles = ("unet",)
    else:
        complete = [arch for arch, names in DEFAULT_FILES.items()
                    if all(any(os.path.isfile(os.path.join(root, sub, names[r])) for sub in SUBFOLDERS["unet"])
                           for r in names if r.startswith("unet"))]
        if len(complete) != 1:
            wanted = "; ".join(f"{arch}: {', '.join(n for r, n in names.items() if r.startswith('unet'))}"
                               for arch, names in DEFAULT_FILES.items())
            found = "several of them" if complete else "none of them"
            raise FileError(f"comfyui:{root}: choose the model with --unet FILE (TI2V-5B) or --unet-high FILE "
                            f"--unet-low FILE (A14B); the default files are {wanted} and the folder has {found}")
        files.update({r: n for r, n in DEFAULT_FILES[complete[0]].items() if r.startswith("unet")})
        roles = tuple(r for r in DEFAULT_FILES[complete[0]] if r.startswith("unet"))
    paths, infos = {}, {}
    for role in roles:
        paths[role] = _find(root, role, files[role])
        infos[role] = info = describe(paths[role])
        _check(info, paths[role], TRANSFORMER, "Wan2.2 transformer", FLAGS[role])
        two = info["architecture"] in (A14B, I2V)
        if role == "unet" and two:
            raise FileError(f"--unet {paths[role]} is a {info['architecture']} expert: an A14B model takes its two "
                            f"experts as --unet-high and --unet-low")
        if role != "unet" and not two:
            raise FileError(f"{FLAGS[role]} {paths[role]}: expected a t2v-a14b or i2v-a14b expert, the file is a "
                            f"{info['architecture']} transformer (give it as --unet)")
    architecture = infos[roles[0]]["architecture"]
    tiny = infos[roles[0]]["tiny"]
    if len(roles) == 2 and (infos["unet_low"]["architecture"], infos["unet_low"]["tiny"]) != (architecture, tiny):
        raise FileError(f"--unet-low {paths['unet_low']}: expected a {architecture} expert like --unet-high, the "
                        f"file is a {infos['unet_low']['architecture']} one")
    defaults = DEFAULT_FILES[architecture]
    for role, default in (("text_encoder", DEFAULT_TEXT_ENCODER), ("vae", defaults["vae"])):
        paths[role] = _find(root, role, files.get(role) or default)
        infos[role] = info = describe(paths[role])
    _check(infos["text_encoder"], paths["text_encoder"], TEXT_ENCODER, "umT5-XXL text encoder", "--text-encoder")
    vae = "wan2.2" if architecture == TI2V else "wan2.1"
    expected = f"{'Wan2.2' if vae == 'wan2.2' else 'Wan2.1'} VAE ({defaults['vae']}), the one {architecture} uses"
    _check(infos["vae"], paths["vae"], VAE, expected, "--vae")
    if infos["vae"]["vae"] != vae:
        raise FileError(f"--vae {paths['vae']}: expected the {expected}; the file is the "
                        f"{infos['vae']['vae'].capitalize()} VAE ({infos['vae']['z_dim']} latent channels)")
    for role in ("text_encoder", "vae"):
        if infos[role]["tiny"] != tiny:
            raise FileError(f"{FLAGS[role]} {paths[role]}: a {'tiny' if infos[role]['tiny'] else 'full-size'} "
                            f"file with {'tiny' if tiny else 'full-size'} transformers")
    return Selection(root=root, architecture=architecture, tiny=tiny, paths=paths, infos=infos)


def load_pipeline(selection: Selection, dtype, device: str = "cpu"):
    """The WanPipeline (WanImageToVideoPipeline for I2V-A14B) of a resolved `comfyui:` model, every component built
    from model_configs.py's config of the architecture, the scheduler and pipeline settings too."""
    import diffusers
    from diffusers import UniPCMultistepScheduler

    arch, tiny, paths = selection.architecture, selection.tiny, selection.paths
    cfg = component_configs(arch, tiny)
    if "unet" in paths:
        transformer, transformer_2 = load_transformer(paths["unet"], arch, dtype, device, "--unet", tiny), None
    else:
        transformer = load_transformer(paths["unet_high"], arch, dtype, device, "--unet-high", tiny)
        transformer_2 = load_transformer(paths["unet_low"], arch, dtype, device, "--unet-low", tiny)
    text_encoder, tokenizer = load_text_encoder(paths["text_encoder"], dtype, device, tiny)
    vae = load_vae(paths["vae"], arch, dtype, device, tiny)
    extra = {}
    if cfg["pipeline_class"] == "WanImageToVideoPipeline":
        extra = dict(image_processor=None, image_encoder=None)  # Wan2.2-I2V-A14B has no CLIP image encoder
    pipeline_class = getattr(diffusers, cfg["pipeline_class"])
    return pipeline_class(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae,
                          scheduler=UniPCMultistepScheduler(**cfg["scheduler"]), transformer=transformer,
                          transformer_2=transformer_2, **extra, **cfg["pipeline"])


# ---------------------------------------------------------------------------------------------------------------
# The SentencePiece model (a protobuf ModelProto) without sentencepiece or protobuf


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def _fields(data: bytes):
    """(field number, wire type, value) of a protobuf message: ints for varints, bytes for length-delimited,
    raw bytes for fixed32/64."""
    i = 0
    while i < len(data):
        tag, i = _varint(data, i)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 2:
            length, i = _varint(data, i)
            value, i = data[i:i + length], i + length
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def parse_spiece(data: bytes) -> dict:
    """The parts of a SentencePiece ModelProto a tokenizer needs: pieces (piece, score, type), the trainer's model
    type, unk id and byte fallback, the normalizer's precompiled charsmap and add_dummy_prefix."""
    pieces, trainer, normalizer = [], {}, {}
    for number, _, value in _fields(data):
        if number == 1:
            piece = {"piece": "", "score": 0.0, "type": 1}
            for n, _, v in _fields(value):
                if n == 1:
                    piece["piece"] = v.decode("utf-8")
                elif n == 2:
                    piece["score"] = struct.unpack("<f", v)[0]
                elif n == 3:
                    piece["type"] = v
            pieces.append(piece)
        elif number == 2:
            trainer = {n: v for n, _, v in _fields(value)}
        elif number == 3:
            normalizer = {n: v for n, _, v in _fields(value)}
    return dict(pieces=pieces, model_type=trainer.get(3, 1), unk_id=trainer.get(40, 0),
                byte_fallback=bool(trainer.get(35, 0)), charsmap=normalizer.get(2, b""),
                add_dummy_prefix=bool(normalizer.get(3, 1)))


def tokenizer_from_spiece(data: bytes, where: str = "the SentencePiece model"):
    """A transformers fast tokenizer equivalent to the umT5 one (a Unigram model, Metaspace, an appended </s>),
    built as transformers' T5 converter builds it from the ModelProto."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    try:
        spm = parse_spiece(data)
    except (ValueError, IndexError, UnicodeDecodeError, struct.error) as e:
        raise FileError(f"{where}: its spiece_model is not a SentencePiece model ({e})") from None
    if spm["model_type"] != 1 or not spm["pieces"]:
        raise FileError(f"{where}: its spiece_model is not a SentencePiece unigram model (model type "
                        f"{spm['model_type']}, {len(spm['pieces'])} pieces)")
    vocab = [(p["piece"], p["score"]) for p in spm["pieces"]]
    tok = Tokenizer(models.Unigram(vocab, unk_id=spm["unk_id"], byte_fallback=spm["byte_fallback"]))
    steps = [normalizers.Precompiled(spm["charsmap"])] if spm["charsmap"] else []
    steps.append(normalizers.Replace(Regex(" {2,}"), " "))
    tok.normalizer = normalizers.Sequence(steps)
    scheme = "always" if spm["add_dummy_prefix"] else "never"
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=scheme)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme=scheme)
    pieces = [p["piece"] for p in spm["pieces"]]
    for needed in ("<pad>", "</s>", "<unk>"):
        if needed not in pieces:
            raise FileError(f"{where}: its SentencePiece model has no {needed} token")
    eos = pieces.index("</s>")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", eos)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   model_max_length=512, padding_side="right")


__all__ = ["DEFAULT_FILES", "DEFAULT_TEXT_ENCODER", "FileError", "Selection", "describe", "load_pipeline",
           "load_text_encoder", "load_transformer", "load_vae", "read_header", "resolve", "tokenizer_from_spiece",
           "transformer_key", "vae_key"]

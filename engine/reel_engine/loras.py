"""LoRA files for the Wan2.2 transformers: read, hashed, every key classified and checked against the model before
anything is converted, then converted into a `LoRAPlan` (lora_slots.py applies plans to a loaded model).

Torch-free at import: reading a file, its SHA-256, classifying its keys and checking them against the model's layers
(`check`, `inspect`) need only the safetensors header, so the scripted worker refuses the same files with the same
`bad_request` messages. Only `convert` imports torch (and diffusers).

Key formats (each file must use one; the format is named in `inspect` and in errors):

- `diffusers`: PEFT names under `transformer.`: `transformer.blocks.0.attn1.to_q.lora_A.weight`, `lora_B.weight`,
  `lora_B.bias`; a `lora_adapter_metadata` entry in the safetensors metadata may give `lora_alpha`.
- `kijai`: the original Wan names under `diffusion_model.` (or ComfyUI's `model.diffusion_model.`) with
  `lora_down.weight` / `lora_up.weight` and an optional `alpha` per layer.
- `comfy`: the same with `lora_A.weight` / `lora_B.weight`.
- `lightx2v`: kijai or comfy names plus full-weight deltas: `diff` and `diff_b` (`blocks.N.self_attn.q.diff_b`,
  `head.head.diff`), `blocks.N.modulation.diff`, `head.modulation.diff`, norm deltas (`blocks.N.norm3.diff`,
  `blocks.N.self_attn.norm_q.diff`) and `patch_embedding.diff`.
- `musubi`: musubi-tuner's `lora_unet_blocks_0_self_attn_q.lora_down.weight` / `lora_up.weight` / `alpha`, which
  diffusers' converter reads only with every block's attention and feed-forward layers present.

Conversion. The low-rank pairs of the blocks go through diffusers' own `WanLoraLoaderMixin.lora_state_dict` (the
function `load_lora_weights` calls), so their A and B, the alpha folding included, are diffusers' to the bit. Reel
first checks everything that converter would trip over or silently drop (a missing half of a pair, a LoRA without
blocks, a `model.diffusion_model.` prefix, a partial musubi file) and refuses such a file naming the keys. What the
converter drops or does not handle, Reel maps itself with the rename table of diffusers' single-file loader
(single_file_utils.py): `modulation` -> `scale_shift_table`, the original `norm3` -> diffusers' `norm2` (the
cross-attention norm; the original `norm2` would be diffusers' `norm3`, which has no weights), `norm_q`/`norm_k`
-> `attn1.norm_q`/`norm_k`, `head.head` -> `proj_out`. These full deltas are applied as `weight + scale * delta`.
A low-rank pair outside the blocks (text/time embeddings, time projection, `head.head`) is renamed by Reel; its alpha,
which diffusers' converter does not fold for these layers (it fails on such a file), is folded with the converter's own
arithmetic.

Refused, before anything is applied: keys of no known format, targets the loaded model lacks, shapes that do not fit
it (a LoRA for another architecture), DoRA (`dora_scale`, `lora_magnitude_vector`), LoKr/LoHa, a rank above the
worker's slots (`--lora-max-rank`), and full-weight `diff` of a linear layer other than `head.head` (applying one would
need a pristine copy of a weight as large as the layer; none of the published Wan2.2 LoRAs has one).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import struct
import threading
from dataclasses import dataclass, field

from .jobflow import JobFailure

FORMATS = ("diffusers", "kijai", "comfy", "lightx2v", "musubi")
EXPERTS = ("high", "low", "both")
MAX_HEADER_BYTES = 100 * 1024 * 1024
MAX_NAMED = 10  # keys named in one message

# The original Wan module names of the linear layers (kijai, ComfyUI, lightx2v files) and their diffusers names.
_PROJ = {"q": "to_q", "k": "to_k", "v": "to_v", "o": "to_out.0", "k_img": "add_k_proj", "v_img": "add_v_proj"}
_LINEAR = [
    (re.compile(r"blocks\.(\d+)\.self_attn\.(q|k|v|o)"), lambda m: f"blocks.{m[1]}.attn1.{_PROJ[m[2]]}"),
    (re.compile(r"blocks\.(\d+)\.cross_attn\.(q|k|v|o|k_img|v_img)"), lambda m: f"blocks.{m[1]}.attn2.{_PROJ[m[2]]}"),
    (re.compile(r"blocks\.(\d+)\.ffn\.(0|2)"),
     lambda m: f"blocks.{m[1]}.ffn.{'net.0.proj' if m[2] == '0' else 'net.2'}"),
    (re.compile(r"text_embedding\.(0|2)"),
     lambda m: f"condition_embedder.text_embedder.linear_{1 if m[1] == '0' else 2}"),
    (re.compile(r"time_embedding\.(0|2)"),
     lambda m: f"condition_embedder.time_embedder.linear_{1 if m[1] == '0' else 2}"),
    (re.compile(r"time_projection\.1"), lambda m: "condition_embedder.time_proj"),
    (re.compile(r"head\.head"), lambda m: "proj_out"),
    (re.compile(r"img_emb\.proj\.(1|3)"),
     lambda m: f"condition_embedder.image_embedder.ff.{'net.0.proj' if m[1] == '1' else 'net.2'}"),
]
_LINEAR_ROLES = {"lora_down.weight": "A", "lora_up.weight": "B", "lora_A.weight": "A", "lora_B.weight": "B",
                 "alpha": "alpha", "diff": "diff", "diff_b": "bias"}
_LINEAR_KEYS = [(re.compile(pattern.pattern + r"\.(" + "|".join(re.escape(s) for s in _LINEAR_ROLES) + ")"), target)
                for pattern, target in _LINEAR]
# Full deltas of parameters that are not linear layers: original name -> diffusers parameter.
_NORM_SWAP = {"1": "norm1", "2": "norm3", "3": "norm2"}  # single_file_utils' "hack to swap the layer names"
_PARAMS = [
    (re.compile(r"blocks\.(\d+)\.modulation\.diff"), lambda m: f"blocks.{m[1]}.scale_shift_table"),
    (re.compile(r"head\.modulation\.diff"), lambda m: "scale_shift_table"),
    (re.compile(r"blocks\.(\d+)\.norm(1|2|3)\.(diff|diff_b)"),
     lambda m: f"blocks.{m[1]}.{_NORM_SWAP[m[2]]}.{'weight' if m[3] == 'diff' else 'bias'}"),
    (re.compile(r"blocks\.(\d+)\.(self_attn|cross_attn)\.norm_(q|k)\.diff"),
     lambda m: f"blocks.{m[1]}.attn{1 if m[2] == 'self_attn' else 2}.norm_{m[3]}.weight"),
    (re.compile(r"blocks\.(\d+)\.cross_attn\.norm_k_img\.diff"), lambda m: f"blocks.{m[1]}.attn2.norm_added_k.weight"),
    (re.compile(r"patch_embedding\.(diff|diff_b)"),
     lambda m: f"patch_embedding.{'weight' if m[1] == 'diff' else 'bias'}"),
    (re.compile(r"img_emb\.proj\.(0|4)\.(diff|diff_b)"),
     lambda m: f"condition_embedder.image_embedder.norm{1 if m[1] == '0' else 2}."
               f"{'weight' if m[2] == 'diff' else 'bias'}"),
]
_MUSUBI = re.compile(r"lora_unet_blocks_(\d+)_(self_attn_(?:q|k|v|o)|cross_attn_(?:q|k|v|o|k_img|v_img)|ffn_(?:0|2))"
                     r"\.(lora_down\.weight|lora_up\.weight|alpha)")
_MUSUBI_LAYERS = ("self_attn_q", "self_attn_k", "self_attn_v", "self_attn_o", "cross_attn_q", "cross_attn_k",
                  "cross_attn_v", "cross_attn_o", "ffn_0", "ffn_2")
_DIFFUSERS = re.compile(r"transformer\.(.+)\.(lora_A\.weight|lora_B\.weight|lora_B\.bias)")
_DIFFUSERS_ROLES = {"lora_A.weight": "A", "lora_B.weight": "B", "lora_B.bias": "bias"}
_PREFIXES = (("model.diffusion_model.", "original"), ("diffusion_model.", "original"), ("lora_unet_", "musubi"),
             ("transformer.", "diffusers"))
_DORA = ("dora_scale", "lora_magnitude_vector")
_OTHER_ADAPTERS = {"lokr_": "LoKr", "hada_": "LoHa", "lora_mid": "LoCon", "oft_": "OFT"}


class LoRAError(JobFailure):
    """A LoRA of the request cannot be used: a `bad_request` whose message starts with the field (`loras[0]: …`)."""

    code = "bad_request"


def _named(keys, limit: int = MAX_NAMED) -> str:
    keys = list(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


# ---------------------------------------------------------------------------------------------------------------
# The model's side: which layers and parameters a LoRA may target


@dataclass(frozen=True)
class Targets:
    """What LoRAs may change in one transformer: its linear layers (name -> (out, in) features) and its parameters
    (name -> shape), with the figures messages use."""

    architecture: str
    linears: dict
    params: dict
    dim: int
    blocks: int
    in_channels: int

    def describe(self) -> str:
        return f"this {self.architecture} model has dim {self.dim}, {self.blocks} blocks and {self.in_channels} " \
               f"input channels"


def targets_of(transformer, architecture: str) -> Targets:
    """The Targets of a loaded diffusers WanTransformer3DModel (before any adapter is added to it)."""
    import torch

    linears = {name: (int(m.out_features), int(m.in_features)) for name, m in transformer.named_modules()
               if isinstance(m, torch.nn.Linear)}
    params = {name: tuple(int(s) for s in p.shape) for name, p in transformer.named_parameters()}
    return _targets(architecture, linears, params, dict(transformer.config))


def targets_from_config(config: dict, architecture: str) -> Targets:
    """The Targets of a WanTransformer3DModel with this config (model_configs.component_configs' `transformer`, or a
    model directory's transformer/config.json), computed without building it: the scripted worker checks LoRAs
    against these. Only Wan2.2's layouts (no image embedder, no added key/value projections) are covered;
    tests/test_loras.py checks them against the loaded models."""
    heads, head_dim = int(config["num_attention_heads"]), int(config["attention_head_dim"])
    dim = heads * head_dim
    ffn, text, freq = int(config["ffn_dim"]), int(config["text_dim"]), int(config["freq_dim"])
    in_channels, out_channels = int(config["in_channels"]), int(config["out_channels"])
    patch = tuple(int(p) for p in config["patch_size"])
    if config.get("image_dim") or config.get("added_kv_proj_dim"):
        raise ValueError("targets_from_config covers Wan2.2's transformers only (no image embedder)")
    linears = {"condition_embedder.time_embedder.linear_1": (dim, freq),
               "condition_embedder.time_embedder.linear_2": (dim, dim),
               "condition_embedder.time_proj": (6 * dim, dim),
               "condition_embedder.text_embedder.linear_1": (dim, text),
               "condition_embedder.text_embedder.linear_2": (dim, dim),
               "proj_out": (out_channels * math.prod(patch), dim)}
    params = {"scale_shift_table": (1, 2, dim), "patch_embedding.weight": (dim, in_channels, *patch),
              "patch_embedding.bias": (dim,)}
    for i in range(int(config["num_layers"])):
        b = f"blocks.{i}"
        for attn in ("attn1", "attn2"):
            for proj in ("to_q", "to_k", "to_v", "to_out.0"):
                linears[f"{b}.{attn}.{proj}"] = (dim, dim)
            params[f"{b}.{attn}.norm_q.weight"] = (dim,)
            params[f"{b}.{attn}.norm_k.weight"] = (dim,)
        linears[f"{b}.ffn.net.0.proj"] = (ffn, dim)
        linears[f"{b}.ffn.net.2"] = (dim, ffn)
        params[f"{b}.scale_shift_table"] = (1, 6, dim)
        if config.get("cross_attn_norm"):
            params[f"{b}.norm2.weight"] = (dim,)
            params[f"{b}.norm2.bias"] = (dim,)
    for name, (out, inp) in linears.items():
        params[f"{name}.weight"] = (out, inp)
        params[f"{name}.bias"] = (out,)
    return _targets(architecture, linears, params, config)


def _targets(architecture: str, linears: dict, params: dict, config: dict) -> Targets:
    dim = int(config["num_attention_heads"]) * int(config["attention_head_dim"])
    return Targets(architecture=architecture, linears=linears, params=params, dim=dim,
                   blocks=int(config["num_layers"]), in_channels=int(config["in_channels"]))


# ---------------------------------------------------------------------------------------------------------------
# Reading a file's header


@dataclass(frozen=True)
class Header:
    """A safetensors file's tensor names with their dtype and shape, and its metadata."""

    tensors: dict  # name -> (dtype, shape)
    metadata: dict
    data_end: int = 0  # the end of the last tensor's bytes, counted from after the header


def parse_header(data: bytes, where: str) -> Header:
    """The header of safetensors bytes; ValueError saying what is wrong with it."""
    if len(data) < 8:
        raise ValueError(f"{where} is not a safetensors file ({len(data)} bytes)")
    (length,) = struct.unpack("<Q", data[:8])
    if length > MAX_HEADER_BYTES or 8 + length > len(data):
        raise ValueError(f"{where} is not a safetensors file (a header of {length} bytes in a file of {len(data)})")
    try:
        header = json.loads(data[8:8 + length].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{where} is not a safetensors file (its header is not JSON: {e})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{where} is not a safetensors file (its header is not an object)")
    metadata = header.pop("__metadata__", None) or {}
    tensors, end = {}, 0
    for name, info in header.items():
        if (not isinstance(info, dict) or not isinstance(info.get("shape"), list) or "dtype" not in info
                or not isinstance(info.get("data_offsets"), list) or len(info["data_offsets"]) != 2):
            raise ValueError(f"{where} is not a safetensors file (entry {name!r} has no dtype, shape and offsets)")
        tensors[name] = (str(info["dtype"]), tuple(int(s) for s in info["shape"]))
        end = max(end, int(info["data_offsets"][1]))
    return Header(tensors=tensors, metadata=metadata if isinstance(metadata, dict) else {}, data_end=end)


# ---------------------------------------------------------------------------------------------------------------
# Classifying every key


@dataclass
class LowRank:
    """The file keys of one linear layer's low-rank pair (A: rank x in, B: out x rank), its optional alpha and
    `diff_b`."""

    module: str  # the diffusers module name
    original: str | None  # the original Wan name (kijai/comfy/lightx2v/musubi), None for a diffusers file
    a: str | None = None
    b: str | None = None
    alpha: str | None = None
    bias: str | None = None


@dataclass
class Layout:
    """Every key of a file, classified: low-rank pairs per diffusers module, full deltas per diffusers parameter."""

    format: str
    lowrank: dict = field(default_factory=dict)  # diffusers module -> LowRank (with a and b)
    deltas: dict = field(default_factory=dict)  # diffusers parameter -> file key
    prefix: str = ""
    lora_alpha: float | None = None  # a diffusers file's metadata lora_alpha (None: alpha == rank)
    shapes: dict = field(default_factory=dict)  # file key -> shape

    @property
    def rank(self) -> int:
        return max((self.shapes[lr.a][0] for lr in self.lowrank.values()), default=0)

    def blocks(self) -> int:
        """1 + the highest block index any key names (0 without blocks)."""
        found = [int(m[1]) for name in list(self.lowrank) + list(self.deltas)
                 if (m := re.match(r"blocks\.(\d+)\.", name))]
        return max(found) + 1 if found else 0

    def dim(self) -> int | None:
        """The model width this LoRA was made for, as its shapes give it (None if nothing shows it)."""
        for name, lr in self.lowrank.items():
            if re.fullmatch(r"blocks\.\d+\.attn[12]\.to_(q|k|v|out\.0)", name):
                return self.shapes[lr.a][1]
        for name, key in self.deltas.items():
            if name.endswith("scale_shift_table"):
                return self.shapes[key][-1]
        return None

    def in_channels(self) -> int | None:
        key = self.deltas.get("patch_embedding.weight")
        return self.shapes[key][1] if key is not None else None


def _refuse(message: str, keys) -> ValueError:
    return ValueError(f"{message}: {_named(keys)}")


def classify(header: Header) -> Layout:
    """The Layout of a file's header; ValueError naming the keys that are not understood (every key is classified
    before any is converted)."""
    names = list(header.tensors)
    if not names:
        raise ValueError("holds no tensors")
    shapes = {k: shape for k, (_, shape) in header.tensors.items()}
    dora = [k for k in names if any(d in k for d in _DORA)]
    if dora:
        raise _refuse("is a DoRA file, which Reel does not apply (diffusers drops its dora_scale silently)", dora)
    for marker, kind in _OTHER_ADAPTERS.items():
        found = [k for k in names if marker in k]
        if found:
            raise _refuse(f"is a {kind} file, not a LoRA", found)
    families: dict[str, list[str]] = {}
    unknown = []
    for k in names:
        prefix = next((p for p, _ in _PREFIXES if k.startswith(p)), None)
        if prefix is None:
            unknown.append(k)
        else:
            families.setdefault(prefix, []).append(k)
    if unknown:
        raise _refuse("has keys of no known LoRA format (expected diffusers transformer.…, kijai/ComfyUI "
                      "diffusion_model.… or model.diffusion_model.…, or musubi lora_unet_… names)", unknown)
    if len(families) > 1:
        counts = sorted(families.items(), key=lambda kv: -len(kv[1]))
        others = [k for _, keys in counts[1:] for k in keys]
        raise _refuse(f"mixes key formats ({', '.join(p for p, _ in counts)})", others)
    (prefix,) = families
    kind = dict(_PREFIXES)[prefix]
    if kind == "diffusers":
        layout = _classify_diffusers(names, shapes, header.metadata)
    elif kind == "musubi":
        layout = _classify_musubi(names, shapes)
    else:
        layout = _classify_original(names, shapes, prefix)
    layout.prefix, layout.shapes = prefix, shapes
    _check_pairs(layout)
    return layout


def _classify_original(names, shapes, prefix: str) -> Layout:
    lowrank: dict[str, LowRank] = {}
    deltas: dict[str, str] = {}
    diffs: dict[str, str] = {}  # module -> key of a full-weight diff of a linear layer
    unknown, suffixes = [], set()
    for key in names:
        name = key[len(prefix):]
        matched = False
        for pattern, target in _PARAMS:
            m = pattern.fullmatch(name)
            if m:
                deltas[target(m)] = key
                matched = True
                break
        if matched:
            continue
        for pattern, target in _LINEAR_KEYS:
            m = pattern.fullmatch(name)
            if m:
                module = target(m)
                suffix = m.groups()[-1]
                role = _LINEAR_ROLES[suffix]
                if role in ("A", "B"):
                    suffixes.add(suffix.split(".")[0])
                original = name[: -len(suffix) - 1]
                entry = lowrank.setdefault(module, LowRank(module=module, original=original))
                if role == "diff":
                    diffs[module] = key
                else:
                    setattr(entry, {"A": "a", "B": "b", "alpha": "alpha", "bias": "bias"}[role], key)
                matched = True
                break
        if not matched:
            unknown.append(key)
    if unknown:
        raise _refuse("has keys Reel does not understand", unknown)
    if {"lora_down", "lora_up"} & suffixes and {"lora_A", "lora_B"} & suffixes:
        mixed = [k for k in names if ".lora_A." in k or ".lora_B." in k]
        raise _refuse("mixes lora_down/lora_up and lora_A/lora_B names (diffusers' converter reads one kind per "
                      "file)", mixed)
    for module, key in diffs.items():
        if module != "proj_out":
            big = [k for m, k in diffs.items() if m != "proj_out"]
            raise _refuse("has full-weight deltas (.diff) of linear layers, which Reel applies only to head.head "
                          "(a pristine copy of each such layer would be needed)", big)
        deltas["proj_out.weight"] = key
        entry = lowrank["proj_out"]
        if entry.a is not None or entry.b is not None:
            raise _refuse("has both a low-rank pair and a full-weight delta for head.head", [key])
    for module, entry in list(lowrank.items()):
        if entry.a is None and entry.b is None:
            if entry.alpha is not None:
                raise _refuse("has an alpha without a low-rank pair", [entry.alpha])
            if entry.bias is not None:  # a diff_b without a pair (AccVideo-style): a full delta of the bias
                deltas[f"{module}.bias"] = entry.bias
            del lowrank[module]
    full = any(k.endswith((".diff", ".diff_b")) for k in names)
    fmt = "lightx2v" if full else ("comfy" if "lora_A" in suffixes else "kijai")
    return Layout(format=fmt, lowrank=lowrank, deltas=deltas)


def _classify_musubi(names, shapes) -> Layout:
    lowrank: dict[str, LowRank] = {}
    unknown = []
    for key in names:
        m = _MUSUBI.fullmatch(key)
        if m is None:
            unknown.append(key)
            continue
        block, layer, suffix = m[1], m[2], m[3]
        if layer.startswith("ffn_"):
            original = f"blocks.{block}.ffn.{layer[4:]}"
        else:
            part, proj = layer.split("_attn_")
            original = f"blocks.{block}.{part}_attn.{proj}"
        module = next(target(mm) for pattern, target in _LINEAR if (mm := pattern.fullmatch(original)))
        entry = lowrank.setdefault(module, LowRank(module=module, original=original))
        setattr(entry, {"lora_down.weight": "a", "lora_up.weight": "b", "alpha": "alpha"}[suffix], key)
    if unknown:
        raise _refuse("has musubi keys Reel does not understand (diffusers' musubi converter reads only the blocks' "
                      "attention and feed-forward layers)", unknown)
    blocks = sorted({int(_MUSUBI.fullmatch(k)[1]) for k in names})
    missing = []
    for i in range(max(blocks) + 1):
        for layer in _MUSUBI_LAYERS:
            for suffix in ("lora_down.weight", "lora_up.weight", "alpha"):
                key = f"lora_unet_blocks_{i}_{layer}.{suffix}"
                if key not in shapes:
                    missing.append(key)
    if missing:
        raise _refuse("is a partial musubi file: diffusers' musubi converter needs every block's attention and "
                      "feed-forward layers with their alpha; missing", missing)
    return Layout(format="musubi", lowrank=lowrank)


def _classify_diffusers(names, shapes, metadata: dict) -> Layout:
    lowrank: dict[str, LowRank] = {}
    unknown = []
    for key in names:
        m = _DIFFUSERS.fullmatch(key)
        if m is None:
            unknown.append(key)
            continue
        entry = lowrank.setdefault(m[1], LowRank(module=m[1], original=None))
        setattr(entry, {"A": "a", "B": "b", "bias": "bias"}[_DIFFUSERS_ROLES[m[2]]], key)
    if unknown:
        raise _refuse("has diffusers keys Reel does not understand (expected transformer.<layer>.lora_A.weight, "
                      "lora_B.weight or lora_B.bias)", unknown)
    lora_alpha = None
    raw = metadata.get("lora_adapter_metadata")
    if raw:
        try:
            config = json.loads(raw)
        except ValueError:
            raise ValueError("has lora_adapter_metadata that is not JSON") from None
        config = {k.removeprefix("transformer."): v for k, v in config.items()}
        for flag in ("use_dora", "use_rslora"):
            if config.get(flag):
                raise ValueError(f"has lora_adapter_metadata with {flag}, which Reel does not apply")
        for pattern in ("rank_pattern", "alpha_pattern"):
            if config.get(pattern):
                raise ValueError(f"has lora_adapter_metadata with a {pattern}, which Reel does not apply")
        if config.get("lora_alpha") is not None:
            lora_alpha = float(config["lora_alpha"])
            r = config.get("r")
            ranks = {shapes[e.a][0] for e in lowrank.values() if e.a is not None}
            if r is not None and ranks != {int(r)}:
                raise ValueError(f"has lora_adapter_metadata r {r} but layers of rank {sorted(ranks)}")
    return Layout(format="diffusers", lowrank=lowrank, lora_alpha=lora_alpha)


def _check_pairs(layout: Layout) -> None:
    """Every low-rank layer has both halves with shapes that agree (the check that keeps diffusers' converter from
    reading a stale tensor or raising KeyError half-way)."""
    half = []
    for entry in layout.lowrank.values():
        if (entry.a is None) != (entry.b is None):
            half.append(entry.a or entry.b)
        elif entry.a is None and entry.bias is not None and layout.format == "diffusers":
            half.append(entry.bias)
    if half:
        raise _refuse("has incomplete low-rank pairs (a down/A matrix without its up/B matrix, or the reverse)", half)
    bad = []
    for entry in layout.lowrank.values():
        a, b = layout.shapes[entry.a], layout.shapes[entry.b]
        if len(a) != 2 or len(b) != 2 or a[0] != b[1]:
            bad.append(f"{entry.a} {list(a)} / {entry.b} {list(b)}")
        elif entry.alpha is not None and math.prod(layout.shapes[entry.alpha]) != 1:
            bad.append(f"{entry.alpha} {list(layout.shapes[entry.alpha])}")
        elif entry.bias is not None and layout.shapes[entry.bias] != (b[0],):
            bad.append(f"{entry.bias} {list(layout.shapes[entry.bias])}")
    if bad:
        raise _refuse("has low-rank pairs whose shapes do not fit together", bad)


# ---------------------------------------------------------------------------------------------------------------
# Checking a layout against the model


def fit(layout: Layout, targets: Targets, max_rank: int | None = None) -> None:
    """Refuses (ValueError) a layout whose targets the model lacks or whose shapes do not fit it, or whose rank is
    above `max_rank`."""
    missing, wrong = [], []
    for module, entry in layout.lowrank.items():
        key = entry.a
        if module not in targets.linears:
            missing.append(key)
            continue
        out, inp = targets.linears[module]
        a, b = layout.shapes[entry.a], layout.shapes[entry.b]
        if a[1] != inp or b[0] != out:
            wrong.append(f"{entry.a} ({a[1]} -> {b[0]} features; {module} is {inp} -> {out})")
    for param, key in layout.deltas.items():
        if param not in targets.params:
            missing.append(key)
        elif tuple(layout.shapes[key]) != tuple(targets.params[param]):
            wrong.append(f"{key} {list(layout.shapes[key])} ({param} is {list(targets.params[param])})")
    missing.sort()
    wrong.sort()
    if wrong:
        dim, blocks = layout.dim(), layout.blocks()
        made = f"a model of dim {dim} with {blocks} blocks" if dim is not None else "another model"
        raise _refuse(f"is a LoRA for {made}; {targets.describe()}: shapes that do not fit", wrong)
    if missing:
        raise _refuse(f"targets layers this {targets.architecture} model does not have", missing)
    if max_rank is not None and layout.rank > max_rank:
        worst = max(layout.lowrank.values(), key=lambda e: layout.shapes[e.a][0])
        raise ValueError(f"has rank {layout.rank} ({worst.a}), above this worker's LoRA slots of rank {max_rank}: "
                         f"start the worker with --lora-max-rank {layout.rank} or more")


def inspect(path: str) -> dict:
    """A file's format and figures, for diagnostics: {format, rank, dim, blocks, in_channels, keys}. Raises
    ValueError for a file that is not a LoRA Reel can read."""
    with open(path, "rb") as f:
        head = f.read(8)
        length = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
        data = head + f.read(min(length, MAX_HEADER_BYTES))
    layout = classify(parse_header(data, path))
    return {"format": layout.format, "rank": layout.rank, "dim": layout.dim(), "blocks": layout.blocks(),
            "in_channels": layout.in_channels(), "keys": len(layout.shapes)}


# ---------------------------------------------------------------------------------------------------------------
# A request's LoRAs at job start: read, hashed, checked


@dataclass
class CheckedLoRA:
    """One `loras` entry of a request whose file was read, matched its SHA-256 and fits the model. `data` holds the
    file's bytes unless a converted plan of this SHA-256 is already cached (then None: nothing was read)."""

    index: int
    ref: object  # protocol.LoRARef
    layout: Layout | None
    data: bytes | None

    @property
    def field(self) -> str:
        return f"loras[{self.index}]"


_HASHES: dict = {}  # (path, size, mtime_ns, inode, device) -> sha256: a file is hashed again only when it changes
_HASHES_LOCK = threading.Lock()
_MAX_HASHES = 256


def _stat_key(path: str, st) -> tuple:
    return (path, st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


def check_request(refs, targets: dict, slots: int, max_rank: int | None, cached=lambda sha256: False
                  ) -> list[CheckedLoRA]:
    """Reads and checks every LoRA of a request (protocol.LoRARef, in request order) before anything is applied:
    each lands on experts the model has (`targets`: expert -> Targets, "high" and, for the A14B models, "low"), at
    most `slots` land on one expert, the file exists, its bytes have the request's SHA-256, every key is understood
    and fits the model's layers, its rank fits the slots. A file whose SHA-256 is already known for its (path, size,
    mtime, inode) and whose plan is `cached` is not read again. Raises LoRAError naming the entry (`loras[1]: …`)."""
    for expert in targets:
        count = sum(1 for r in refs if expert in landing(r.expert, targets))
        if count > slots:
            raise LoRAError(f"loras: {count} LoRAs land on the {expert}-noise expert, but this worker has {slots} "
                            f"LoRA slots per expert (--lora-slots)")
    for index, ref in enumerate(refs):
        missing = [e for e in landing(ref.expert, targets) if e not in targets]
        if missing:
            raise LoRAError(f"loras[{index}].expert: this model has one transformer: use \"both\", not "
                            f"\"{ref.expert}\"")
    checked = []
    for index, ref in enumerate(refs):
        where = f"loras[{index}]"
        try:
            st = os.stat(ref.path)
        except (OSError, ValueError) as e:
            raise LoRAError(f"{where}: cannot read {ref.path}: {getattr(e, 'strerror', None) or e}") from None
        with _HASHES_LOCK:
            known = _HASHES.get(_stat_key(ref.path, st))
        if known == ref.sha256 and cached(ref.sha256):
            checked.append(CheckedLoRA(index, ref, None, None))
            continue
        try:
            with open(ref.path, "rb") as f:
                data = f.read()
        except (OSError, ValueError) as e:
            raise LoRAError(f"{where}: cannot read {ref.path}: {getattr(e, 'strerror', None) or e}") from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != ref.sha256:
            raise LoRAError(f"{where}: the SHA-256 of {ref.path} is {digest}, not the request's {ref.sha256} "
                            f"(the file changed since submission)")
        with _HASHES_LOCK:
            if len(_HASHES) >= _MAX_HASHES:
                _HASHES.clear()
            _HASHES[_stat_key(ref.path, st)] = digest
        try:
            layout = classify(parse_header(data, ref.path))
            for expert in landing(ref.expert, targets):
                fit(layout, targets[expert], max_rank)
        except ValueError as e:
            raise LoRAError(f"{where}: {ref.name} ({ref.path}) {e}") from None
        checked.append(CheckedLoRA(index, ref, layout, data))
    return checked


def landing(expert: str, experts) -> tuple[str, ...]:
    """The experts a `loras` entry lands on: every one of `experts` for "both" (TI2V-5B's only one), else itself."""
    return tuple(experts) if expert == "both" else (expert,)


def record(refs) -> list[dict]:
    """job.json's `loras`: each entry's name, SHA-256, scale and expert, in request order."""
    return [{"name": r.name, "sha256": r.sha256, "scale": r.scale, "expert": r.expert} for r in refs or ()]


def identity(refs) -> list:
    """The checkpoint identity's `loras`: [sha256, scale, expert] per entry, in request order."""
    return [[r.sha256, float(r.scale), r.expert] for r in refs or ()]


# ---------------------------------------------------------------------------------------------------------------
# Conversion (torch)


@dataclass
class LoRAPlan:
    """A converted LoRA, in diffusers names and the file's dtype, on the host: per linear layer (A, B, bias or None)
    and the alpha its scaling uses, and full deltas per parameter."""

    sha256: str
    format: str
    lowrank: dict  # module -> (A, B, bias | None)
    alphas: dict  # module -> lora_alpha (scaling = scale * alpha / rank, as peft computes it)
    deltas: dict  # parameter -> tensor

    @property
    def rank(self) -> int:
        return max((a.shape[0] for a, _, _ in self.lowrank.values()), default=0)

    @property
    def nbytes(self) -> int:
        tensors = [t for pair in self.lowrank.values() for t in pair if t is not None] + list(self.deltas.values())
        return sum(t.numel() * t.element_size() for t in tensors)

    def pin(self) -> LoRAPlan:
        """The same plan in pinned host memory (faster, asynchronous copies to a GPU)."""
        self.lowrank = {m: tuple(t.pin_memory() if t is not None else None for t in v) for m, v in self.lowrank.items()}
        self.deltas = {p: t.pin_memory() for p, t in self.deltas.items()}
        return self


def alpha_scales(rank: int, alpha: float) -> tuple[float, float]:
    """(scale of A, scale of B) for folding alpha into a pair: diffusers' get_alpha_scales
    (_convert_non_diffusers_wan_lora_to_diffusers), so a pair Reel folds is folded as diffusers folds the blocks'."""
    scale_down, scale_up = alpha / rank, 1.0
    while scale_down * 2 < scale_up:
        scale_down *= 2
        scale_up /= 2
    return scale_down, scale_up


def convert(layout: Layout, data: bytes, sha256: str) -> LoRAPlan:
    """The LoRAPlan of a classified file's bytes (see the module docstring for what goes through diffusers)."""
    from safetensors.torch import load

    tensors = load(data)
    lowrank, alphas = {}, {}
    if layout.format == "diffusers":
        for module, e in layout.lowrank.items():
            a = tensors[e.a]
            lowrank[module] = (a, tensors[e.b], tensors[e.bias] if e.bias is not None else None)
            alphas[module] = layout.lora_alpha if layout.lora_alpha is not None else a.shape[0]
    else:
        via_diffusers = {m: e for m, e in layout.lowrank.items() if m.startswith("blocks.")}
        if via_diffusers:
            lowrank.update(_diffusers_convert(layout, tensors, via_diffusers))
        for module, e in layout.lowrank.items():
            if module in via_diffusers:
                continue
            a, b = tensors[e.a], tensors[e.b]
            if e.alpha is not None:
                scale_down, scale_up = alpha_scales(a.shape[0], tensors[e.alpha].item())
                a, b = a * scale_down, b * scale_up
            lowrank[module] = (a, b, tensors[e.bias] if e.bias is not None else None)
        alphas = {m: lowrank[m][0].shape[0] for m in lowrank}
    deltas = {param: tensors[key] for param, key in layout.deltas.items()}
    return LoRAPlan(sha256=sha256, format=layout.format, lowrank=lowrank, alphas=alphas, deltas=deltas)


def _diffusers_convert(layout: Layout, tensors: dict, modules: dict) -> dict:
    """The blocks' low-rank pairs through diffusers' WanLoraLoaderMixin.lora_state_dict."""
    from diffusers.loaders.lora_pipeline import WanLoraLoaderMixin

    if layout.format == "musubi":
        subset = {k: tensors[k] for e in modules.values() for k in (e.a, e.b, e.alpha) if k is not None}
    else:
        subset = {}
        for e in modules.values():
            for key in (e.a, e.b, e.alpha, e.bias):
                if key is not None:
                    subset["diffusion_model." + key[len(layout.prefix):]] = tensors[key]
    converted = WanLoraLoaderMixin.lora_state_dict(subset)
    out, expected = {}, set()
    for module, e in modules.items():
        a = converted.pop(f"transformer.{module}.lora_A.weight", None)
        b = converted.pop(f"transformer.{module}.lora_B.weight", None)
        bias = converted.pop(f"transformer.{module}.lora_B.bias", None)
        if a is None or b is None or (bias is None) != (e.bias is None):
            expected.add(module)
        out[module] = (a, b, bias)
    if converted or expected:  # diffusers' converter changed: refuse rather than apply something else
        raise ValueError(f"diffusers' converter gave unexpected keys: {_named(sorted(converted) + sorted(expected))}")
    return out

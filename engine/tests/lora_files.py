"""LoRA files for the tests, written in every key format Reel reads from one seeded set of low-rank pairs.

A `Pairs` holds, in diffusers names, one (A, B, bias or None) per linear layer; the writers rename them to each
layout with the inverse of the rename table diffusers' single-file loader uses (loras.py), so the same pairs written
as diffusers, kijai, ComfyUI or musubi keys are the same LoRA. With alpha equal to the rank, folding alpha is a
multiplication by 1.0, so every layout gives bit-identical tensors.
"""

from __future__ import annotations

import hashlib
import re

import torch
from safetensors.torch import save_file

from reel_engine import loras

_ORIGINAL = [
    (r"blocks\.(\d+)\.attn1\.(to_q|to_k|to_v|to_out\.0)", lambda m: f"blocks.{m[1]}.self_attn.{_PROJ[m[2]]}"),
    (r"blocks\.(\d+)\.attn2\.(to_q|to_k|to_v|to_out\.0)", lambda m: f"blocks.{m[1]}.cross_attn.{_PROJ[m[2]]}"),
    (r"blocks\.(\d+)\.ffn\.net\.0\.proj", lambda m: f"blocks.{m[1]}.ffn.0"),
    (r"blocks\.(\d+)\.ffn\.net\.2", lambda m: f"blocks.{m[1]}.ffn.2"),
    (r"condition_embedder\.text_embedder\.linear_(1|2)", lambda m: f"text_embedding.{0 if m[1] == '1' else 2}"),
    (r"condition_embedder\.time_embedder\.linear_(1|2)", lambda m: f"time_embedding.{0 if m[1] == '1' else 2}"),
    (r"condition_embedder\.time_proj", lambda m: "time_projection.1"),
    (r"proj_out", lambda m: "head.head"),
]
_PROJ = {"to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "o"}


def original_name(module: str) -> str:
    """The original Wan name of a diffusers linear layer (blocks.0.attn1.to_q -> blocks.0.self_attn.q)."""
    for pattern, name in _ORIGINAL:
        m = re.fullmatch(pattern, module)
        if m:
            return name(m)
    raise KeyError(module)


BLOCK_LINEARS = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_k",
                 "attn2.to_v", "attn2.to_out.0", "ffn.net.0.proj", "ffn.net.2")


class Pairs(dict):
    """module -> (A, B, bias or None), float32, seeded."""


def random_pairs(targets: loras.Targets, rank: int, seed: int, modules=None, bias: bool = False,
                 magnitude: float = 0.3) -> Pairs:
    """Seeded random pairs of `rank` for `modules` (default: every linear layer of every block)."""
    g = torch.Generator().manual_seed(seed)
    if modules is None:
        modules = [f"blocks.{i}.{layer}" for i in range(targets.blocks) for layer in BLOCK_LINEARS]
    pairs = Pairs()
    for module in modules:
        out, inp = targets.linears[module]
        a = torch.randn(rank, inp, generator=g) * magnitude
        b = torch.randn(out, rank, generator=g) * magnitude
        pairs[module] = (a, b, torch.randn(out, generator=g) * magnitude if bias else None)
    return pairs


def _save(tensors: dict, path, metadata: dict | None = None) -> dict:
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)
    with open(path, "rb") as f:
        return {"path": str(path), "sha256": hashlib.sha256(f.read()).hexdigest()}


def write_diffusers(path, pairs: Pairs, metadata: dict | None = None) -> dict:
    """transformer.blocks.0.attn1.to_q.lora_A.weight …; returns {"path", "sha256"}."""
    tensors = {}
    for module, (a, b, bias) in pairs.items():
        tensors[f"transformer.{module}.lora_A.weight"] = a
        tensors[f"transformer.{module}.lora_B.weight"] = b
        if bias is not None:
            tensors[f"transformer.{module}.lora_B.bias"] = bias
    return _save(tensors, path, metadata)


def original_tensors(pairs: Pairs, style: str = "kijai", prefix: str = "diffusion_model.", alpha=None,
                     deltas: dict | None = None) -> dict:
    """The pairs in original Wan names: kijai (lora_down/lora_up) or comfy (lora_A/lora_B), each with an `alpha`
    (a number, or None for none; the rank if "rank"), `diff_b` for a bias, plus `deltas` (original name -> tensor,
    e.g. {"blocks.0.modulation.diff": …})."""
    down, up = ("lora_down", "lora_up") if style == "kijai" else ("lora_A", "lora_B")
    tensors = {}
    for module, (a, b, bias) in pairs.items():
        name = prefix + original_name(module)
        tensors[f"{name}.{down}.weight"] = a
        tensors[f"{name}.{up}.weight"] = b
        if alpha is not None:
            tensors[f"{name}.alpha"] = torch.tensor(float(a.shape[0] if alpha == "rank" else alpha))
        if bias is not None:
            tensors[f"{name}.diff_b"] = bias
    for name, tensor in (deltas or {}).items():
        tensors[prefix + name] = tensor
    return tensors


def write_original(path, pairs: Pairs, **kwargs) -> dict:
    return _save(original_tensors(pairs, **kwargs), path)


def write_musubi(path, pairs: Pairs, alpha="rank") -> dict:
    """lora_unet_blocks_0_self_attn_q.lora_down.weight …: diffusers' musubi converter needs every block's ten
    layers, each with an alpha."""
    tensors = {}
    for module, (a, b, bias) in pairs.items():
        assert bias is None and module.startswith("blocks."), "musubi files hold the blocks' pairs only"
        name = "lora_unet_" + original_name(module).replace(".", "_")
        tensors[f"{name}.lora_down.weight"] = a
        tensors[f"{name}.lora_up.weight"] = b
        tensors[f"{name}.alpha"] = torch.tensor(float(a.shape[0] if alpha == "rank" else alpha))
    return _save(tensors, path)


def write_tensors(path, tensors: dict, metadata: dict | None = None) -> dict:
    return _save(tensors, path, metadata)

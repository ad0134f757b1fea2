"""Writing ComfyUI-layout single files from the tiny diffusers models, for tests/test_comfy_files.py: the diffusers ->
original Wan key maps (written independently of reel_engine/comfy_files.py's forward maps, so the round trip checks
one against the other), fp8 quantisation with per-tensor scales, and a SentencePiece ModelProto for the umT5 file."""

from __future__ import annotations

import math
import re
import struct
from collections import Counter

import torch
from safetensors.torch import save_file

from reel_engine import tokenizer as tiny_tokenizer

_TRANSFORMER = [
    (r"condition_embedder\.(time|text)_embedder\.linear_(1|2)\.(.+)",
     lambda m: f"{m[1]}_embedding.{0 if m[2] == '1' else 2}.{m[3]}"),
    (r"condition_embedder\.time_proj\.(.+)", lambda m: f"time_projection.1.{m[1]}"),
    (r"proj_out\.(.+)", lambda m: f"head.head.{m[1]}"),
    (r"scale_shift_table", lambda m: "head.modulation"),
    (r"patch_embedding\.(.+)", lambda m: f"patch_embedding.{m[1]}"),
    (r"blocks\.(\d+)\.attn(1|2)\.(to_q|to_k|to_v|to_out\.0|norm_q|norm_k)\.(.+)",
     lambda m: f"blocks.{m[1]}.{'self_attn' if m[2] == '1' else 'cross_attn'}."
               f"{dict(to_q='q', to_k='k', to_v='v', norm_q='norm_q', norm_k='norm_k').get(m[3], 'o')}.{m[4]}"),
    (r"blocks\.(\d+)\.ffn\.net\.(0\.proj|2)\.(.+)", lambda m: f"blocks.{m[1]}.ffn.{m[2][0]}.{m[3]}"),
    (r"blocks\.(\d+)\.norm2\.(.+)", lambda m: f"blocks.{m[1]}.norm3.{m[2]}"),
    (r"blocks\.(\d+)\.scale_shift_table", lambda m: f"blocks.{m[1]}.modulation"),
]


def _apply(table, name):
    for pattern, target in table:
        m = re.fullmatch(pattern, name)
        if m:
            return target(m)
    raise KeyError(name)


def transformer_to_original(state: dict) -> dict:
    return {_apply(_TRANSFORMER, k): v for k, v in state.items()}


_RESIDUAL = {"norm1.gamma": "residual.0.gamma", "conv1.weight": "residual.2.weight", "conv1.bias": "residual.2.bias",
             "norm2.gamma": "residual.3.gamma", "conv2.weight": "residual.6.weight", "conv2.bias": "residual.6.bias",
             "conv_shortcut.weight": "shortcut.weight", "conv_shortcut.bias": "shortcut.bias"}


def vae_name_to_original(name: str, version: str, num_res_blocks: int) -> str:
    fixed = {"quant_conv": "conv1", "post_quant_conv": "conv2"}
    m = re.fullmatch(r"(quant_conv|post_quant_conv)\.(.+)", name)
    if m:
        return f"{fixed[m[1]]}.{m[2]}"
    m = re.fullmatch(r"(encoder|decoder)\.(conv_in|conv_out|norm_out)\.(.+)", name)
    if m:
        return f"{m[1]}.{dict(conv_in='conv1', conv_out='head.2', norm_out='head.0')[m[2]]}.{m[3]}"
    m = re.fullmatch(r"(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d)\.(.+)", name)
    if m:
        if m[2] == "attentions":
            return f"{m[1]}.middle.1.{m[4]}"
        return f"{m[1]}.middle.{2 * int(m[3])}.{_RESIDUAL[m[4]]}"
    if version == "wan2.2":
        m = re.fullmatch(r"(encoder)\.down_blocks\.(\d+)\.(resnets\.(\d+)|downsampler)\.(.+)", name) or re.fullmatch(
            r"(decoder)\.up_blocks\.(\d+)\.(resnets\.(\d+)|upsampler)\.(.+)", name)
        side = m[1]
        outer = "downsamples" if side == "encoder" else "upsamples"
        if m[4] is not None:
            return f"{side}.{outer}.{m[2]}.{outer}.{m[4]}.{_RESIDUAL[m[5]]}"
        inner = num_res_blocks if side == "encoder" else num_res_blocks + 1
        return f"{side}.{outer}.{m[2]}.{outer}.{inner}.{m[5]}"
    m = re.fullmatch(r"encoder\.down_blocks\.(\d+)\.(.+)", name)
    if m:
        return f"encoder.downsamples.{m[1]}.{_RESIDUAL.get(m[2], m[2])}"
    per_block = num_res_blocks + 2
    m = re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", name)
    if m:
        return f"decoder.upsamples.{int(m[1]) * per_block + int(m[2])}.{_RESIDUAL[m[3]]}"
    m = re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.+)", name)
    return f"decoder.upsamples.{int(m[1]) * per_block + per_block - 1}.{m[2]}"


def vae_to_original(state: dict, version: str, num_res_blocks: int) -> dict:
    return {vae_name_to_original(k, version, num_res_blocks): v for k, v in state.items()}


def quantize(state: dict, scale_suffix: str = "scale_weight", marker: bool = True,
             quantized=lambda name, t: name.endswith(".weight") and t.dim() == 2) -> dict:
    """ComfyUI fp8-scaled: each 2-D weight as float8_e4m3fn with a per-tensor fp32 scale (amax / 448) beside it."""
    out = {}
    for name, t in state.items():
        if quantized(name, t):
            scale = (t.detach().abs().amax().float() / 448.0).clamp(min=1e-12)
            out[name] = (t.detach().float() / scale).to(torch.float8_e4m3fn)
            out[name[: -len("weight")] + scale_suffix] = scale.reshape(())
        else:
            out[name] = t
    if marker:
        out["scaled_fp8"] = torch.zeros(0, dtype=torch.float8_e4m3fn)
    return out


def write(path, state: dict, prefix: str = "", dtype=None) -> str:
    tensors = {}
    for k, v in state.items():
        v = v.detach().contiguous()
        if dtype is not None and v.is_floating_point() and v.dtype != torch.float8_e4m3fn:
            v = v.to(dtype)
        tensors[prefix + k if k != "scaled_fp8" else k] = v
    save_file(tensors, str(path))
    return str(path)


# -- a SentencePiece ModelProto, written by hand (no sentencepiece/protobuf here) --------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    if wire == 2:
        payload = _varint(len(payload)) + payload
    return _varint(number << 3 | wire) + payload


def spiece_pieces(limit: int = 2048) -> list[tuple[str, float, int]]:
    """A unigram vocabulary from the tiny tokenizer's corpus: <pad> 0, </s> 1, <unk> 2 (umT5's ids), every
    character, and "▁word" pieces by frequency, scored by log frequency."""
    text = tiny_tokenizer._CORPUS
    words = Counter("▁" + w for w in text.split())
    chars = Counter(c for c in text.replace(" ", "▁").replace("\n", "▁"))
    total = sum(words.values()) + sum(chars.values())
    pieces = [("<pad>", 0.0, 3), ("</s>", 0.0, 3), ("<unk>", 0.0, 2)]
    seen = {p[0] for p in pieces}
    for piece, n in words.most_common() + chars.most_common():
        if piece not in seen and len(pieces) < limit:
            seen.add(piece)
            pieces.append((piece, math.log(n / total) - (0 if piece.startswith("▁") and len(piece) > 2 else 5), 1))
    return pieces


def spiece_model(pieces=None) -> bytes:
    pieces = pieces or spiece_pieces()
    body = b"".join(_field(1, 2, _field(1, 2, p.encode()) + _field(2, 5, struct.pack("<f", s))
                           + _field(3, 0, _varint(t))) for p, s, t in pieces)
    trainer = _field(3, 0, _varint(1)) + _field(40, 0, _varint(2))  # unigram, unk id 2
    normalizer = _field(1, 2, b"identity") + _field(3, 0, _varint(1))  # add_dummy_prefix
    return body + _field(2, 2, trainer) + _field(3, 2, normalizer)


def text_encoder_file_state(state: dict, spiece: bytes | None = None) -> dict:
    out = {k: v for k, v in state.items() if k != "encoder.embed_tokens.weight"}
    out["spiece_model"] = torch.frombuffer(bytearray(spiece or spiece_model()), dtype=torch.uint8).clone()
    return out

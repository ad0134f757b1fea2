"""Placing a loaded model's components as the memory plan for its device and budget says (placement.py plans it):
on the GPU, in host memory until needed (the text encoder), or moved in for each stage (model CPU offload); VAE
tiling; the process's GPU memory capped at the budget; the text embedding cache set up for that placement."""

from __future__ import annotations

import logging
from dataclasses import replace

import torch

from . import placement
from .catalog import ModelError
from .textcache import TextEmbeddings

log = logging.getLogger("reel_engine.model_placement")


def place(model, memory_budget_gib: float | None) -> None:
    """Puts each component of `model` (a models.LoadedModel) where the memory plan says, caps the process's GPU
    memory at the budget, and sets up the text embedding cache."""
    pipe, device, text_device = model.pipe, model.device, model.text_device
    sizes = placement.component_sizes(pipe)
    if text_device is not None:
        sizes = replace(sizes, text_encoder=0)  # it lives elsewhere
    d = model.defaults
    shape = placement.JobShape(d.width, d.height, d.frames, model.spatial_stride, model.temporal_stride)
    budget = None
    if memory_budget_gib is not None:
        budget = int(memory_budget_gib * placement.GIB)
        if device.type == "cuda":
            total = torch.cuda.get_device_properties(device).total_memory
            if budget > total:
                raise ModelError(f"--memory-budget {memory_budget_gib:g} GiB is more than {device}'s "
                                 f"{total / placement.GIB:.1f} GiB")
    try:
        plan = placement.plan_memory(sizes, shape, budget if device.type == "cuda" else None,
                                     memory_saving=model.memory_saving)
    except placement.BudgetTooSmall as e:
        raise ModelError(str(e)) from None
    model.memory_plan = plan
    if plan.vae_tiling:
        # Tiles of 512 pixels (diffusers' default is 256): a quarter of the tiles, so less overlap recomputed, at
        # a peak that still fits the budgets that ask for tiling (placement.VAE_TILED_BYTES_PER_PIXEL).
        if device.type == "cuda" and not plan.model_offload:
            pipe.vae.enable_tiling(tile_sample_min_height=512, tile_sample_min_width=512,
                                   tile_sample_stride_height=448, tile_sample_stride_width=448)
        else:
            pipe.vae.enable_tiling()
    text_placement = "resident"
    if device.type == "cuda" and plan.model_offload:
        if getattr(pipe, "hf_device_map", None) is not None:
            pipe.reset_device_map()  # offload hooks and a device map exclude each other
        pipe.enable_model_cpu_offload(device=device)
        text_placement = "model_offload"
    else:
        if device.type == "cpu":
            pipe.to(device)
        if text_device is not None:
            pipe.text_encoder.to(text_device)
            text_placement = "device"
        elif device.type == "cuda" and plan.text_placement == "offload":
            text_placement = "offload"
    if device.type == "cuda":
        torch.cuda.empty_cache()
        if budget is not None:
            total = torch.cuda.get_device_properties(device).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, budget / total), device)
    transformer = pipe.transformer if pipe.transformer is not None else pipe.transformer_2
    model.text = TextEmbeddings(pipe, device, transformer.dtype, placement=text_placement,
                                encode_device=text_device or device)
    if text_placement == "offload":
        model.text.offload_to_host()
        torch.cuda.empty_cache()
    log.info("placement: %s, text encoder %s%s", plan.tier, text_placement,
             f" on {text_device}" if text_device is not None else "")

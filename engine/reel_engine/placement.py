"""Where a worker keeps each component, chosen to fit a memory budget.

`plan_memory` is a pure function of the components' sizes, the job size the worker expects (the model's default)
and the budget, so its choices are tested without a GPU (tests/test_placement.py). The tiers, fastest first:

1. `resident`: every component on the GPU, the VAE decoding the whole video at once.
2. `text_offload`: the text encoder in host memory, moved to the GPU only to encode a prompt that is not cached
   (textcache.py keeps embeddings, so that is rare); the VAE decodes in tiles.
3. `model_offload`: diffusers' model CPU offload (each component moves to the GPU for its stage) and VAE tiling:
   what `--memory-saving` always did.

The activation estimates are linear fits of peaks measured on an H200 with full-size random weights in bf16
(bench/RESULTS.md): a TI2V-5B transformer forward at 27,280 tokens peaked 8.7 GB above its weights; an untiled
Wan2.2 VAE decode of 121 frames at 1280x704 peaked at 21 GB; a tiled one stays near its tiles' share of that. They are
deliberately generous: a plan that does not fit would fail the job, one that fits loosely costs a little speed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

GIB = 1 << 30

# Bytes of activations per video token per unit of model width, at the forward's peak (8.7e9 / (27280 * 3072)),
# rounded up by a fifth.
FORWARD_BYTES_PER_TOKEN_WIDTH = 125.0
# Bytes per output pixel of one frame at the VAE decode's peak, untiled (21e9 / (1280 * 704 * 121)), and tiled in
# 512-pixel tiles (model_placement.py): a tile holds at most (512 * 512) / (1280 * 704) = 29% of a 720p frame's area.
VAE_BYTES_PER_PIXEL = 200.0
VAE_TILED_BYTES_PER_PIXEL = 60.0
# The text encoder's activations for 512 tokens, and the allocator's slack, per tier.
TEXT_ACTIVATION_BYTES = 1 * GIB
SLACK_BYTES = int(1.5 * GIB)


@dataclass(frozen=True)
class ComponentSizes:
    """Bytes of weights of each component; `transformer` counts both experts of A14B."""

    text_encoder: int
    transformer: int
    vae: int
    # The largest single transformer (one A14B expert); what model offload keeps on the GPU at once.
    largest_transformer: int
    width: int  # transformer model width (num_heads * head_dim)


@dataclass(frozen=True)
class JobShape:
    width: int
    height: int
    frames: int
    spatial_stride: int  # pixels per token side (VAE stride x patch)
    temporal_stride: int

    @property
    def tokens(self) -> int:
        latent_frames = (self.frames - 1) // self.temporal_stride + 1
        return latent_frames * (self.height // self.spatial_stride) * (self.width // self.spatial_stride)

    @property
    def pixels(self) -> int:
        return self.width * self.height * self.frames


@dataclass(frozen=True)
class MemoryPlan:
    tier: str  # resident | text_offload | model_offload
    text_placement: str  # resident | offload | (model offload moves it with the rest)
    vae_tiling: bool
    model_offload: bool
    needed_bytes: int  # the estimated peak of this tier
    budget_bytes: int | None

    def to_json(self) -> dict:
        return {"tier": self.tier, "text_encoder": self.text_placement, "vae_tiling": self.vae_tiling,
                "model_offload": self.model_offload, "estimated_peak_gib": round(self.needed_bytes / GIB, 1),
                "budget_gib": None if self.budget_bytes is None else round(self.budget_bytes / GIB, 1)}


class BudgetTooSmall(Exception):
    """No tier fits; the message says the smallest budget that would."""


def estimates(sizes: ComponentSizes, shape: JobShape) -> dict[str, int]:
    """Estimated peak bytes of each tier for one job of `shape`."""
    forward = int(FORWARD_BYTES_PER_TOKEN_WIDTH * shape.tokens * sizes.width)
    vae_full = int(VAE_BYTES_PER_PIXEL * shape.pixels)
    vae_tiled = int(VAE_TILED_BYTES_PER_PIXEL * shape.pixels)
    text = sizes.text_encoder + TEXT_ACTIVATION_BYTES
    resident = sizes.text_encoder + sizes.transformer + sizes.vae + max(forward, vae_full)
    text_offload = sizes.transformer + sizes.vae + max(forward, vae_tiled, text)
    model_offload = max(text, sizes.largest_transformer + forward, sizes.vae + vae_tiled)
    return {"resident": resident + SLACK_BYTES, "text_offload": text_offload + SLACK_BYTES,
            "model_offload": model_offload + SLACK_BYTES}


def plan_memory(sizes: ComponentSizes, shape: JobShape, budget_bytes: int | None,
                memory_saving: bool = False) -> MemoryPlan:
    """The fastest tier whose estimated peak fits `budget_bytes` (no budget: resident). `memory_saving` asks for
    model offload whatever the budget (the retry after an out-of-memory error)."""
    need = estimates(sizes, shape)
    if memory_saving:
        return MemoryPlan("model_offload", "model_offload", True, True, need["model_offload"], budget_bytes)
    if budget_bytes is None or need["resident"] <= budget_bytes:
        return MemoryPlan("resident", "resident", False, False, need["resident"], budget_bytes)
    if need["text_offload"] <= budget_bytes:
        return MemoryPlan("text_offload", "offload", True, False, need["text_offload"], budget_bytes)
    if need["model_offload"] <= budget_bytes:
        return MemoryPlan("model_offload", "model_offload", True, True, need["model_offload"], budget_bytes)
    raise BudgetTooSmall(
        f"a memory budget of {budget_bytes / GIB:.1f} GiB is too small for this model at "
        f"{shape.width}x{shape.height}x{shape.frames}: even with every component offloaded it needs about "
        f"{need['model_offload'] / GIB:.1f} GiB; raise --memory-budget or generate smaller videos")


def module_bytes(module) -> int:
    if module is None:
        return 0
    return sum(p.numel() * p.element_size() for p in module.parameters()) + sum(
        b.numel() * b.element_size() for b in module.buffers())


def component_sizes(pipe) -> ComponentSizes:
    transformers = [t for t in (pipe.transformer, getattr(pipe, "transformer_2", None)) if t is not None]
    config = transformers[0].config
    return ComponentSizes(
        text_encoder=module_bytes(pipe.text_encoder),
        transformer=sum(module_bytes(t) for t in transformers),
        vae=module_bytes(pipe.vae),
        largest_transformer=max(module_bytes(t) for t in transformers),
        width=int(config.num_attention_heads) * int(config.attention_head_dim),
    )


def host_memory() -> tuple[int, int]:
    """(available, total) bytes of host memory, from /proc/meminfo where there is one."""
    info = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                key, _, rest = line.partition(":")
                info[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    total = info.get("MemTotal") or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    free = info.get("MemAvailable", info.get("MemFree", 0))
    return int(free), int(total)

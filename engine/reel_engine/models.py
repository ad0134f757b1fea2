"""Loading the models of the catalog (catalog.py): real diffusers-format Wan2.2 directories, tiny cached models,
random full-size ones.

Every model ends up as a diffusers `WanPipeline` (a `WanImageToVideoPipeline` for I2V-A14B, as its directories'
model_index.json names it) whose components Reel's own loop (pipeline.py) drives:
- a directory (TI2V-5B, T2V-A14B or I2V-A14B in diffusers format) is checked, then loaded with its pipeline class's
  from_pretrained;
- `tiny` / `tiny:ti2v-5b` / `tiny:t2v-a14b` / `tiny:i2v-a14b` are small random-weight models of exactly the same
  classes and strides, created once under DATA_DIR/models and then loaded through the same directory-loading code;
- `random:ti2v-5b` / `random:t2v-a14b` / `random:i2v-a14b` are the full-size architectures with random weights, built
  directly on the target device in the target dtype (for GPU benchmarks; their output is noise).

dtype: bfloat16 on CUDA for every component, the Wan VAE included (the diffusers examples load the VAE in float32;
bf16 halves its memory and time and is what the Wan VAE's decoder tolerates well); float32 on CPU.

This module is the loading itself (`load_model`, `LoadedModel`); the components' configs are in model_configs.py,
building random weights in building.py, the tiny models' cache in tiny_models.py, the device in devices.py and
placing the components for the memory plan in model_placement.py.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import torch

# The catalog's names and those of the modules split out of this one (the configs, building, the tiny models'
# cache, devices, placing) are re-exported for code that imports them from here.
from .building import build_pipeline
from .catalog import (  # noqa: F401
    A14B,
    ARCHITECTURES,
    DEFAULTS,
    FPS,
    I2V,
    IMAGE,
    LAST_IMAGE,
    PIPELINE_CLASSES,
    REPOS,
    TI2V,
    TINY_DEFAULTS,
    TWO_EXPERTS,
    Defaults,
    ModelError,
    default_data_dir,
    inspect_model_dir,
    model_defaults,
    parse_model_name,
    tiny_dir,
)
from .devices import memory_info, resolve_device  # noqa: F401
from .model_configs import UMT5_TINY, UMT5_XXL, WAN22_LATENTS_MEAN, WAN22_LATENTS_STD, component_configs  # noqa: F401
from .model_placement import place
from .tiny_models import TINY_MARKER, TINY_RECIPE_VERSION, ensure_tiny  # noqa: F401

log = logging.getLogger("reel_engine.models")


@dataclass
class LoadedModel:
    """A loaded model and what the worker reports about it."""

    name: str
    architecture: str
    pipe: object  # diffusers.WanPipeline, or WanImageToVideoPipeline for I2V-A14B
    device: torch.device
    dtype: torch.dtype
    random_weights: bool
    defaults: Defaults
    path: str | None = None
    created: bool = False  # a tiny model that this load had to create
    memory_saving: bool = False
    load_seconds: float = 0.0
    text: object = None  # textcache.TextEmbeddings
    text_device: torch.device | None = None  # where the text encoder computes, when not on `device`
    memory_plan: object = None  # placement.MemoryPlan
    speed: dict = field(default_factory=dict)  # attention kernel, compilation, warm-up (speed.py)
    loras: object = None  # lora_slots.LoRASlots, or None without slots (lora_slots.install)
    files: list | None = None  # a comfyui: model's files (comfy_files.Selection.record), None otherwise

    @property
    def lora_slots(self) -> int:
        """LoRA slots per transformer (0: none)."""
        return self.loras.slots if self.loras is not None else 0

    @property
    def lora_max_rank(self) -> int:
        """The slots' rank (0 without slots)."""
        return self.loras.max_rank if self.loras is not None else 0

    @property
    def fps(self) -> int:
        return FPS[self.architecture]

    @property
    def image(self) -> str:
        """Whether a job gives a first-frame image: "none", "optional" or "required" (catalog.IMAGE)."""
        return IMAGE[self.architecture]

    @property
    def last_image(self) -> bool:
        """Whether a job may give a last-frame image too (catalog.LAST_IMAGE)."""
        return LAST_IMAGE[self.architecture]

    @property
    def spatial_stride(self) -> int:
        vae = self.pipe.vae.config.scale_factor_spatial
        transformer = self.pipe.transformer or self.pipe.transformer_2
        return int(vae * transformer.config.patch_size[1])

    @property
    def temporal_stride(self) -> int:
        return int(self.pipe.vae.config.scale_factor_temporal)

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")


def load_model(name: str, device: str | torch.device = "cpu", data_dir: str | None = None,
               memory_saving: bool = False, text_device: str | torch.device | None = None,
               memory_budget_gib: float | None = None, files: dict | None = None) -> LoadedModel:
    """Loads `name` (tiny, tiny:ARCH, random:ARCH, a directory path or comfyui:DIR) ready to generate on `device`.
    `files` chooses a comfyui: model's files (role -> FILE, comfy_files.resolve).

    `text_device` puts the text encoder on a device of its own (the split layout). `memory_budget_gib` caps the
    process's memory on a CUDA device and picks the fastest placement that fits it (placement.py)."""
    t0 = time.perf_counter()
    device = device if isinstance(device, torch.device) else resolve_device(device)
    if text_device is not None and not isinstance(text_device, torch.device):
        text_device = resolve_device(text_device)
    if text_device is not None and text_device == device:
        text_device = None
    if memory_budget_gib is not None and memory_budget_gib <= 0:
        raise ModelError(f"--memory-budget must be a positive number of GiB, not {memory_budget_gib}")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    data_dir = data_dir or default_data_dir()
    created = False
    path = None
    comfy = None
    if device.type == "cuda":
        torch.cuda.set_device(device)  # a worker owns one GPU; "cuda" below then means this one
    # Weights go straight from the safetensors files to the GPU, unless CPU offload will place them.
    device_map = "cuda" if device.type == "cuda" and not memory_saving else None
    named = parse_model_name(name)
    if named.kind == "tiny":
        architecture = named.architecture
        path, created = ensure_tiny(data_dir, architecture)
        pipe = _load_dir(path, dtype, device_map)
    elif named.kind == "random":
        architecture = named.architecture
        pipe = build_pipeline(architecture, tiny=False, device=device, dtype=dtype)
    elif named.kind == "comfyui":
        from . import comfy_files

        selection = comfy_files.resolve(named.path, files)
        architecture, path, comfy = selection.architecture, selection.root, selection
        pipe = comfy_files.load_pipeline(selection, dtype, str(device) if device_map else "cpu")
    else:
        path = named.path
        architecture = inspect_model_dir(path)
        pipe = _load_dir(path, dtype, device_map)
    kind = "tiny" if comfy is not None and comfy.tiny else named.kind
    random_weights, defaults = named.random_weights, model_defaults(kind, architecture)

    model = LoadedModel(name=name, architecture=architecture, pipe=pipe, device=device, dtype=dtype,
                        random_weights=random_weights, defaults=defaults, path=path, created=created,
                        memory_saving=memory_saving, text_device=text_device,
                        files=comfy.record() if comfy is not None else None)
    place(model, memory_budget_gib)
    pipe.set_progress_bar_config(disable=True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    model.load_seconds = time.perf_counter() - t0
    return model


def _load_dir(path: str, dtype: torch.dtype, device_map: str | None = None):
    """The one directory-loading path, shared by real models and the cached tiny ones: the pipeline class the
    directory's model_index.json names (WanPipeline, or WanImageToVideoPipeline for I2V-A14B)."""
    import diffusers

    architecture = inspect_model_dir(path)
    extra = {"device_map": device_map} if device_map else {}
    pipeline_class = getattr(diffusers, PIPELINE_CLASSES[architecture])
    pipe = pipeline_class.from_pretrained(path, dtype=dtype, local_files_only=True, **extra)
    for module in (pipe.text_encoder, pipe.transformer, pipe.transformer_2, pipe.vae):
        if module is not None:
            module.eval()
    return pipe

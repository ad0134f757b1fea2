"""Loading the models of the catalog (catalog.py): real diffusers-format Wan2.2 directories, tiny cached models,
random full-size ones.

Every model ends up as a diffusers `WanPipeline` whose components Reel's own loop (pipeline.py) drives:
- a directory (TI2V-5B or T2V-A14B in diffusers format) is checked, then loaded with WanPipeline.from_pretrained;
- `tiny` / `tiny:ti2v-5b` / `tiny:t2v-a14b` are small random-weight models of exactly the same classes and strides,
  created once under DATA_DIR/models and then loaded through the same directory-loading code;
- `random:ti2v-5b` / `random:t2v-a14b` are the full-size architectures with random weights, built directly on the
  target device in the target dtype (for GPU benchmarks; their output is noise).

dtype: bfloat16 on CUDA for every component, the Wan VAE included (the diffusers examples load the VAE in float32;
bf16 halves its memory and time and is what the Wan VAE's decoder tolerates well); float32 on CPU.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from .catalog import (  # noqa: F401 - the catalog's names are re-exported for code that imports them from here
    A14B,
    ARCHITECTURES,
    DEFAULTS,
    FPS,
    REPOS,
    TI2V,
    TINY_DEFAULTS,
    Defaults,
    ModelError,
    default_data_dir,
    inspect_model_dir,
    model_defaults,
    parse_model_name,
    tiny_dir,
)

log = logging.getLogger("reel_engine.models")

# Bump when the tiny recipe changes: a cached tiny model with another version is rebuilt.
TINY_RECIPE_VERSION = 1
TINY_MARKER = "reel-tiny.json"


@dataclass
class LoadedModel:
    """A loaded model and what the worker reports about it."""

    name: str
    architecture: str
    pipe: object  # diffusers.WanPipeline
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

    @property
    def fps(self) -> int:
        return FPS[self.architecture]

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


# ---------------------------------------------------------------------------------------------------------------
# Configs

# Wan2.2 VAE latent statistics, from Wan-AI/Wan2.2-TI2V-5B-Diffusers vae/config.json (as in diffusers'
# scripts/convert_wan_to_diffusers.py). The Wan2.1 VAE's 16 values are AutoencoderKLWan's defaults.
WAN22_LATENTS_MEAN = [
    -0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557, -0.1382, 0.0542, 0.2813, 0.0891,
    0.1570, -0.0098, 0.0375, -0.1825, -0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108, -0.2158, 0.2502,
    -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899, -0.2799, -0.1230, -0.0313, -0.1649, 0.0117, 0.0723,
    -0.2839, -0.2083, -0.0520, 0.3748, 0.0152, 0.1957, 0.1433, -0.2944, 0.3573, -0.0548, -0.1681, -0.0667,
]
WAN22_LATENTS_STD = [
    0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013, 0.8158, 1.0344, 0.5894, 1.0901,
    0.6885, 0.6165, 0.8454, 0.4978, 0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659,
    0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093, 0.5709, 0.6065, 0.6415, 0.4944,
    0.5726, 1.2042, 0.5458, 1.6887, 0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744,
]

# umT5-XXL encoder (google/umt5-xxl), the text encoder of every Wan2.2 model.
UMT5_XXL = dict(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                relative_attention_num_buckets=32, relative_attention_max_distance=128,
                feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6, dropout_rate=0.0)
UMT5_TINY = dict(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, relative_attention_num_buckets=32,
                 relative_attention_max_distance=128, feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6,
                 dropout_rate=0.0)

_COMMON_TRANSFORMER = dict(patch_size=[1, 2, 2], freq_dim=256, cross_attn_norm=True,
                           qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024)


def component_configs(architecture: str, tiny: bool) -> dict:
    """The configs of every component of one architecture, full size or tiny (same classes, same strides)."""
    if architecture == TI2V:
        if tiny:
            transformer = dict(_COMMON_TRANSFORMER, num_attention_heads=2, attention_head_dim=16, in_channels=48,
                               out_channels=48, text_dim=UMT5_TINY["d_model"], freq_dim=32, ffn_dim=64, num_layers=2)
        else:
            transformer = dict(_COMMON_TRANSFORMER, num_attention_heads=24, attention_head_dim=128, in_channels=48,
                               out_channels=48, text_dim=4096, ffn_dim=14336, num_layers=30)
        vae = dict(base_dim=160, decoder_base_dim=256, z_dim=48, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                   attn_scales=[], temperal_downsample=[False, True, True], dropout=0.0, is_residual=True,
                   in_channels=12, out_channels=12, patch_size=2, scale_factor_spatial=16, scale_factor_temporal=4,
                   latents_mean=WAN22_LATENTS_MEAN, latents_std=WAN22_LATENTS_STD)
        if tiny:
            # CPU conv3d with few channels takes PyTorch's slow path, so the decoder, which runs at full
            # resolution, is what costs time in a tiny model; its width is kept minimal.
            vae.update(base_dim=8, decoder_base_dim=4)
        # Wan2.2 TI2V-5B: sample_shift 5.0 in the official config and in the diffusers repo.
        scheduler_shift = 5.0
        pipeline = dict(boundary_ratio=None, expand_timesteps=True)
        experts = 1
    elif architecture == A14B:
        if tiny:
            transformer = dict(_COMMON_TRANSFORMER, num_attention_heads=2, attention_head_dim=16, in_channels=16,
                               out_channels=16, text_dim=UMT5_TINY["d_model"], freq_dim=32, ffn_dim=64, num_layers=2)
        else:
            transformer = dict(_COMMON_TRANSFORMER, num_attention_heads=40, attention_head_dim=128, in_channels=16,
                               out_channels=16, text_dim=4096, ffn_dim=13824, num_layers=40)
        # The Wan2.1 VAE: AutoencoderKLWan's default config (z_dim 16, base_dim 96, its 16 latent mean/std values).
        vae = dict(base_dim=4, num_res_blocks=1) if tiny else {}
        # The official Wan2.2 T2V-A14B config uses sample_shift 12.0; diffusers' conversion script writes 3.0 into
        # the -Diffusers repo's scheduler config. Reel's own A14B models follow the official value; a real
        # directory keeps whatever scheduler config it ships.
        scheduler_shift = 12.0
        pipeline = dict(boundary_ratio=0.875, expand_timesteps=False)
        experts = 2
    else:
        raise ModelError(f"unknown architecture {architecture!r}; expected one of {', '.join(ARCHITECTURES)}")
    scheduler = dict(prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000,
                     flow_shift=scheduler_shift)
    text_encoder = dict(UMT5_TINY if tiny else UMT5_XXL)
    return dict(transformer=transformer, vae=vae, scheduler=scheduler, text_encoder=text_encoder,
                pipeline=pipeline, experts=experts)


# ---------------------------------------------------------------------------------------------------------------
# Building components (tiny on CPU, random full-size on the target device)


@contextmanager
def _building(device: torch.device, dtype: torch.dtype):
    """Parameters are created directly on `device` in `dtype`: no float32 copy, no host-to-device transfer."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def _keep_fp32(model: torch.nn.Module) -> torch.nn.Module:
    """Casts the modules a diffusers model keeps in float32 back to float32, as from_pretrained does."""
    keep = getattr(model, "_keep_in_fp32_modules", None) or []
    for name, param in model.named_parameters():
        if param.is_floating_point() and any(k in name.split(".") for k in keep):
            param.data = param.data.float()
    return model


def build_pipeline(architecture: str, tiny: bool, device: torch.device, dtype: torch.dtype, seed: int = 0):
    """A WanPipeline with freshly initialised weights; deterministic on a given device for a given seed."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    from .tokenizer import build_tokenizer

    cfg = component_configs(architecture, tiny)
    tokenizer = build_tokenizer()
    te_cfg = dict(cfg["text_encoder"])
    if tiny:
        te_cfg["vocab_size"] = len(tokenizer)
    with _building(device, dtype):
        torch.manual_seed(seed)
        text_encoder = UMT5EncoderModel._from_config(UMT5Config(**te_cfg), dtype=dtype)
        torch.manual_seed(seed + 1)
        transformer = _keep_fp32(WanTransformer3DModel(**cfg["transformer"]))
        transformer_2 = None
        if cfg["experts"] == 2:
            torch.manual_seed(seed + 2)
            transformer_2 = _keep_fp32(WanTransformer3DModel(**cfg["transformer"]))
        torch.manual_seed(seed + 3)
        vae = AutoencoderKLWan(**cfg["vae"])
    for module in (text_encoder, transformer, transformer_2, vae):
        if module is not None:
            module.eval()
    scheduler = UniPCMultistepScheduler(**cfg["scheduler"])
    return WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=scheduler,
                       transformer=transformer, transformer_2=transformer_2, **cfg["pipeline"])


# ---------------------------------------------------------------------------------------------------------------
# Tiny models: created once, cached, loaded back like a real directory


def _tiny_is_complete(path: str) -> bool:
    try:
        with open(os.path.join(path, TINY_MARKER), encoding="utf-8") as f:
            return json.load(f).get("recipe") == TINY_RECIPE_VERSION
    except (OSError, ValueError):
        return False


def ensure_tiny(data_dir: str, architecture: str) -> tuple[str, bool]:
    """Returns (path, created). Creation writes into a temporary directory that is renamed into place, so two
    workers racing never see (or leave) a half-written model; the loser discards its copy."""
    final = tiny_dir(data_dir, architecture)
    if _tiny_is_complete(final):
        return final, False
    parent = os.path.dirname(final)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".tiny-{architecture}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    t0 = time.perf_counter()
    try:
        pipe = build_pipeline(architecture, tiny=True, device=torch.device("cpu"), dtype=torch.float32)
        pipe.save_pretrained(tmp, safe_serialization=True)
        with open(os.path.join(tmp, TINY_MARKER), "w", encoding="utf-8") as f:
            json.dump({"recipe": TINY_RECIPE_VERSION, "architecture": architecture,
                       "note": "random weights: Reel's tiny test model; its videos are noise"}, f)
        if os.path.exists(final) and not _tiny_is_complete(final):
            stale = f"{final}.stale-{uuid.uuid4().hex[:8]}"
            try:
                os.rename(final, stale)
                shutil.rmtree(stale, ignore_errors=True)
            except OSError:
                pass  # another worker moved it first
        try:
            os.rename(tmp, final)
        except OSError:
            if not _tiny_is_complete(final):
                raise
            return final, False  # another worker finished first; its copy is identical
        log.info("created tiny model %s in %.2fs", final, time.perf_counter() - t0)
        return final, True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------------
# Loading


def resolve_device(spec: str) -> torch.device:
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ModelError(f"device {spec}: CUDA is not available to this torch build or machine")
        device = torch.device(spec)
        index = device.index if device.index is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise ModelError(f"device {spec}: only {torch.cuda.device_count()} CUDA device(s) are visible")
        return torch.device("cuda", index)
    raise ModelError(f"device {spec!r}: expected cpu, cuda or cuda:N")


def load_model(name: str, device: str | torch.device = "cpu", data_dir: str | None = None,
               memory_saving: bool = False, text_device: str | torch.device | None = None,
               memory_budget_gib: float | None = None) -> LoadedModel:
    """Loads `name` (tiny, tiny:ARCH, random:ARCH or a directory path) ready to generate on `device`.

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
    else:
        path = named.path
        architecture = inspect_model_dir(path)
        pipe = _load_dir(path, dtype, device_map)
    random_weights, defaults = named.random_weights, model_defaults(named.kind, architecture)

    model = LoadedModel(name=name, architecture=architecture, pipe=pipe, device=device, dtype=dtype,
                        random_weights=random_weights, defaults=defaults, path=path, created=created,
                        memory_saving=memory_saving, text_device=text_device)
    _place(model, memory_budget_gib)
    pipe.set_progress_bar_config(disable=True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    model.load_seconds = time.perf_counter() - t0
    return model


def _place(model: LoadedModel, memory_budget_gib: float | None) -> None:
    """Puts each component where the memory plan says, caps the process's GPU memory at the budget, and sets up
    the text embedding cache."""
    from dataclasses import replace

    from . import placement
    from .textcache import TextEmbeddings

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


def _load_dir(path: str, dtype: torch.dtype, device_map: str | None = None):
    """The one directory-loading path, shared by real models and the cached tiny ones."""
    from diffusers import WanPipeline

    inspect_model_dir(path)
    extra = {"device_map": device_map} if device_map else {}
    pipe = WanPipeline.from_pretrained(path, dtype=dtype, local_files_only=True, **extra)
    for module in (pipe.text_encoder, pipe.transformer, pipe.transformer_2, pipe.vae):
        if module is not None:
            module.eval()
    return pipe


def memory_info(device: torch.device) -> tuple[int, int]:
    """(free, total) bytes of the device, host memory for cpu."""
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return int(free), int(total)
    from .placement import host_memory

    return host_memory()

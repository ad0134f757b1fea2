"""Making a loaded model fast before the worker says `ready`, without changing its math.

- Attention: the scaled-dot-product kernel is chosen by timing each one the GPU offers (cuDNN, flash, memory
  efficient) on the model's own attention shape at its default video size, and the winner is made PyTorch's first
  choice for the worker's life; the others stay as fallbacks for shapes it refuses. On an H200 cuDNN's kernel is
  about 1.7x FlashAttention-2's at Wan's shapes (../shared/PERF.md), which PyTorch does not pick by default.
- Regional compilation: each transformer's repeated block is compiled with torch.compile (diffusers'
  `compile_repeated_blocks`), then warmed up with forwards of the default video size, so the first job does not pay
  for compilation. Other sizes compile once more when they first appear.

Both are exact in the sense of ../shared/PERF.md: the same function, up to floating-point reordering.
"""

from __future__ import annotations

import functools
import logging
import time

import torch

from .approximate import APPROXIMATE, parse_approximate  # noqa: F401 - re-exported

log = logging.getLogger("reel_engine.speed")

_ATTENTION_CANDIDATES = ("cudnn", "flash", "efficient")
_KEEP_ALIVE: list = []  # the sdpa_kernel context entered for the worker's life


def _backend(name: str):
    from torch.nn.attention import SDPBackend

    return {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
            "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}[name]


def cuda_seconds(fn, repeats: int = 3, warmup: int = 2) -> float:
    """The median seconds of `repeats` calls of `fn` by CUDA events, after `warmup` calls."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / 1000)
    return sorted(samples)[len(samples) // 2]


def time_attention(device: torch.device, heads: int, head_dim: int, tokens: int, dtype=torch.bfloat16,
                   repeats: int = 3) -> dict[str, float]:
    """Seconds per self-attention call of each kernel that runs this shape; kernels that refuse it are left out."""
    from torch.nn.attention import sdpa_kernel

    q, k, v = (torch.randn(1, heads, tokens, head_dim, device=device, dtype=dtype) for _ in range(3))
    timings = {}
    for name in _ATTENTION_CANDIDATES:
        try:
            with sdpa_kernel([_backend(name)]):
                timings[name] = cuda_seconds(
                    functools.partial(torch.nn.functional.scaled_dot_product_attention, q, k, v), repeats=repeats)
        except RuntimeError as e:  # the kernel does not support this GPU, dtype or shape
            log.info("attention kernel %s is unavailable here: %s", name, str(e).splitlines()[0][:200])
    del q, k, v
    torch.cuda.empty_cache()
    return timings


def choose_attention(timings: dict[str, float]) -> list[str]:
    """The kernels in the order PyTorch should try them: fastest first, math last."""
    return sorted(timings, key=timings.get) + ["math"]


def use_attention_order(order: list[str]) -> None:
    """Makes `order` PyTorch's SDPA priority for the whole process, every thread included."""
    from torch.nn.attention import sdpa_kernel

    backends = [_backend(name) for name in order]
    try:
        context = sdpa_kernel(backends, set_priority=True)
    except TypeError:  # a torch without priorities: allow only these kernels
        context = sdpa_kernel(backends)
    context.__enter__()
    _KEEP_ALIVE.append(context)


def select_attention(model, tokens: int) -> dict:
    """Times the kernels on `model`'s shape and installs the fastest; returns what the ready event reports."""
    transformer = model.pipe.transformer or model.pipe.transformer_2
    heads = int(transformer.config.num_attention_heads)
    head_dim = int(transformer.config.attention_head_dim)
    timings = time_attention(model.device, heads, head_dim, min(tokens, 32_768))
    if not timings:
        return {"attention_backend": "default", "attention_seconds": {}}
    order = choose_attention(timings)
    use_attention_order(order)
    log.info("attention kernel: %s (%s)", order[0],
             ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in sorted(timings.items(), key=lambda kv: kv[1])))
    return {"attention_backend": order[0], "attention_seconds": {k: round(v, 5) for k, v in timings.items()}}


def compile_transformers(model, **options) -> None:
    """Regional compilation of every transformer (compiled lazily, on the first forward); `options` go to
    torch.compile (the tests pick a faster backend). The LoRA slots (lora_slots.py) exist by now and are compiled in."""
    for transformer in _transformers(model):
        transformer.compile_repeated_blocks(fullgraph=True, **options)


@torch.no_grad()
def warm_up(model, width: int, height: int, frames: int, passes: int = 2) -> float:
    """Runs `passes` transformer forwards of each expert at this video size (compiling them), on random inputs of
    the loop's shapes and dtypes; returns the seconds it took."""
    from .pipeline import latent_shape, timestep_input

    t0 = time.perf_counter()
    pipe = model.pipe
    device = model.device
    shape = latent_shape(model, width, height, frames)
    # The timestep built by the loop's own code (dtype included), so the compiled graph's guards hold.
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    scheduler.set_timesteps(2, device=device)
    timestep = timestep_input(pipe, scheduler.timesteps[0], torch.ones(shape, dtype=torch.float32, device=device), 1)
    for transformer in _transformers(model):
        # The transformer's input: the latents, with I2V-A14B's mask and image latent (36 channels in all).
        hidden = torch.randn((shape[0], int(transformer.config.in_channels), *shape[2:]), device=device,
                             dtype=transformer.dtype)
        text = torch.randn(1, 512, int(transformer.config.text_dim), device=device, dtype=transformer.dtype)
        for _ in range(passes):
            transformer(hidden_states=hidden, timestep=timestep, encoder_hidden_states=text, return_dict=False)
        del hidden, text
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
    return time.perf_counter() - t0


def _transformers(model):
    return [t for t in (model.pipe.transformer, model.pipe.transformer_2) if t is not None]


# ---------------------------------------------------------------------------------------------------------------
# Approximate speed-ups (approximate.py): off unless asked for, and recorded in every job.json they touch.


def apply_approximate(model, spec: str) -> dict:
    """Enables diffusers' First Block Cache on every transformer: a step whose first block's output barely changed
    since the last computed step reuses that step's residual instead of running the other blocks. It changes the
    output; how much depends on the threshold."""
    from diffusers.hooks import FirstBlockCacheConfig

    name, threshold = parse_approximate(spec)
    for transformer in _transformers(model):
        transformer.enable_cache(FirstBlockCacheConfig(threshold=threshold))
    log.warning("approximate speed-up on: %s (threshold %g); videos differ from exact runs", name, threshold)
    return {"name": name, "threshold": threshold}


@torch.no_grad()
def warm_up_vae(model, width: int, height: int, frames: int) -> float:
    """On CUDA, lets cuDNN time its convolution algorithms (`cudnn.benchmark`) and keeps the fastest for each of
    the VAE decoder's shapes, by decoding random latents of this video size once; returns the seconds it took.
    Another algorithm is the same convolution summed in another order: exact in the sense of ../shared/PERF.md."""
    pipe, device = model.pipe, model.device
    torch.backends.cudnn.benchmark = True
    t0 = time.perf_counter()
    from .pipeline import latent_shape

    vae = pipe.vae
    _, _, *latent = latent_shape(model, width, height, frames)
    z = torch.randn(1, int(vae.config.z_dim), *latent, device=device, dtype=vae.dtype)
    vae.decode(z, return_dict=False)
    del z
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    return time.perf_counter() - t0

"""Building a WanPipeline (a WanImageToVideoPipeline for I2V-A14B) with freshly initialised (random) weights from
model_configs.py: the tiny models on the CPU before they are cached (tiny_models.py), the full-size random models
directly on the target device in the target dtype (no float32 copy, no host-to-device transfer)."""

from __future__ import annotations

from contextlib import contextmanager

import torch

from .model_configs import component_configs


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
    """A WanPipeline (a WanImageToVideoPipeline for I2V-A14B) with freshly initialised weights; deterministic on a
    given device for a given seed."""
    import diffusers
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanTransformer3DModel
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
    pipeline_class = getattr(diffusers, cfg["pipeline_class"])
    extra = {}
    if cfg["pipeline_class"] == "WanImageToVideoPipeline":
        extra = dict(image_processor=None, image_encoder=None)  # Wan2.2-I2V-A14B has no CLIP image encoder
    return pipeline_class(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=scheduler,
                          transformer=transformer, transformer_2=transformer_2, **extra, **cfg["pipeline"])

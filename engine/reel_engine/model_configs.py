"""The configs of every component of each Wan2.2 architecture, full size and tiny: the same classes and strides,
the tiny ones small enough for a CPU. Torch-free: building.py builds models from them, and the scripted worker's
figures (scripted_model.py) are checked against them."""

from __future__ import annotations

from .catalog import A14B, ARCHITECTURES, I2V, PIPELINE_CLASSES, TI2V, ModelError

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
    elif architecture in (A14B, I2V):
        # I2V-A14B's experts take 36 channels, the 16 of the noise then a 4-channel frame mask and the 16-channel
        # latent of the conditioning video (diffusers' scripts/convert_wan_to_diffusers.py, "Wan2.2-I2V-14B-720p");
        # they have no image embedding (no CLIP image encoder, unlike Wan2.1's I2V).
        in_channels = 36 if architecture == I2V else 16
        if tiny:
            transformer = dict(_COMMON_TRANSFORMER, num_attention_heads=2, attention_head_dim=16,
                               in_channels=in_channels, out_channels=16, text_dim=UMT5_TINY["d_model"], freq_dim=32,
                               ffn_dim=64, num_layers=2)
        else:
            transformer = dict(_COMMON_TRANSFORMER, num_attention_heads=40, attention_head_dim=128,
                               in_channels=in_channels, out_channels=16, text_dim=4096, ffn_dim=13824, num_layers=40)
        # The Wan2.1 VAE: AutoencoderKLWan's default config (z_dim 16, base_dim 96, its 16 latent mean/std values).
        vae = dict(base_dim=4, num_res_blocks=1) if tiny else {}
        if architecture == A14B:
            # The official Wan2.2 T2V-A14B config uses sample_shift 12.0; diffusers' conversion script writes 3.0
            # into the -Diffusers repo's scheduler config. Reel's own A14B models follow the official value; a real
            # directory keeps whatever scheduler config it ships.
            scheduler_shift = 12.0
            pipeline = dict(boundary_ratio=0.875, expand_timesteps=False)
        else:
            # The official I2V-A14B config (wan/configs/wan_i2v_A14B.py): sample_shift 5.0, boundary 0.900. The
            # conversion script writes flow_shift 3.0 here too, and boundary_ratio 0.9 into model_index.json.
            scheduler_shift = 5.0
            pipeline = dict(boundary_ratio=0.9, expand_timesteps=False)
        experts = 2
    else:
        raise ModelError(f"unknown architecture {architecture!r}; expected one of {', '.join(ARCHITECTURES)}")
    scheduler = dict(prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000,
                     flow_shift=scheduler_shift)
    text_encoder = dict(UMT5_TINY if tiny else UMT5_XXL)
    return dict(transformer=transformer, vae=vae, scheduler=scheduler, text_encoder=text_encoder,
                pipeline=pipeline, experts=experts, pipeline_class=PIPELINE_CLASSES[architecture])

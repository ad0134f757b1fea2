"""The worker's command line, shared by the real worker and the scripted one (which takes the same flags)."""

from __future__ import annotations

import argparse


def parse_args(argv: list[str] | None, prog: str = "python -m reel_engine.worker",
               description: str | None = None) -> argparse.Namespace:
    """The worker's command line (the scripted worker's too: it takes the same flags)."""
    parser = argparse.ArgumentParser(prog=prog, description=description or __doc__.splitlines()[0])
    parser.add_argument("--device", required=True, help="cpu, cuda or cuda:N")
    parser.add_argument("--model", required=True,
                        help="tiny, tiny:t2v-a14b, tiny:i2v-a14b, random:ti2v-5b, random:t2v-a14b, random:i2v-a14b, "
                             "a diffusers Wan2.2 directory, or comfyui:DIR (a ComfyUI models/ folder)")
    parser.add_argument("--data-dir", default=None, help="where tiny models are cached (default $REEL_DATA_DIR, "
                                                          "else ~/.local/share/reel)")
    parser.add_argument("--memory-saving", action="store_true",
                        help="VAE tiling always, model CPU offload on CUDA")
    parser.add_argument("--text-device", default=None,
                        help="run the text encoder on this device instead of --device (the split layout)")
    parser.add_argument("--memory-budget", type=float, default=None, metavar="GIB",
                        help="cap this worker's GPU memory at GIB and place components to fit")
    parser.add_argument("--approximate", default=None, metavar="NAME[:THRESHOLD]",
                        help="an approximate speed-up that changes the output (off by default): first-block-cache")
    parser.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                        help="regional torch.compile of the transformer blocks, warmed up before ready "
                             "(auto: on CUDA only)")
    comfy = parser.add_argument_group(
        "comfyui:DIR models (comfy_files.py): FILE is a name in DIR's diffusion_models/, text_encoders/ or vae/ "
        "folder, or an absolute path; the architecture comes from the unet file(s)")
    comfy.add_argument("--unet", default=None, metavar="FILE",
                       help="the transformer of a one-expert model (default wan2.2_ti2v_5B_fp16.safetensors)")
    comfy.add_argument("--unet-high", default=None, metavar="FILE",
                       help="an A14B model's high-noise expert (default wan2.2_t2v_high_noise_14B_fp8_scaled"
                            ".safetensors, or the i2v one)")
    comfy.add_argument("--unet-low", default=None, metavar="FILE",
                       help="an A14B model's low-noise expert (default wan2.2_t2v_low_noise_14B_fp8_scaled"
                            ".safetensors, or the i2v one)")
    comfy.add_argument("--text-encoder", default=None, metavar="FILE",
                       help="the umT5 file, with its embedded tokenizer (default "
                            "umt5_xxl_fp8_e4m3fn_scaled.safetensors)")
    comfy.add_argument("--vae", default=None, metavar="FILE",
                       help="the VAE (default wan2.2_vae.safetensors for TI2V-5B, wan_2.1_vae.safetensors for A14B)")
    lora = parser.add_argument_group("LoRAs (lora_slots.py): adapter slots made at start, filled per job")
    lora.add_argument("--lora-slots", type=int, default=2, metavar="K",
                      help="LoRA slots per transformer, the most LoRAs one job may put on one expert (default 2: a "
                           "distill LoRA and one more; 0: no slots, no overhead, a job with LoRAs is refused)")
    lora.add_argument("--lora-max-rank", type=int, default=64, metavar="R",
                      help="the rank of each slot, the highest rank a job's LoRA may have (default 64)")
    lora.add_argument("--lora-cache-gib", type=float, default=8.0, metavar="GIB",
                      help="host memory for converted LoRAs kept between jobs (default 8)")
    group = parser.add_argument_group("parallel groups (distributed.py): one job over several workers")
    group.add_argument("--rank", type=int, default=None, help="this worker's rank in its group")
    group.add_argument("--world-size", type=int, default=None, help="how many workers the group has")
    group.add_argument("--dist-init", default=None, metavar="URL",
                       help="the group's torch.distributed rendezvous: file:///PATH or tcp://127.0.0.1:PORT")
    args = parser.parse_args(argv)
    given = [flag for flag, value in (("--unet", args.unet), ("--unet-high", args.unet_high),
                                      ("--unet-low", args.unet_low), ("--text-encoder", args.text_encoder),
                                      ("--vae", args.vae)) if value]
    if given and not args.model.startswith("comfyui:"):
        parser.error(f"{', '.join(given)} choose the files of a comfyui:DIR model, not of {args.model}")
    if not 0 <= args.lora_slots <= 16:
        parser.error(f"--lora-slots must be 0 … 16, not {args.lora_slots}")
    if not 1 <= args.lora_max_rank <= 1024:
        parser.error(f"--lora-max-rank must be 1 … 1024, not {args.lora_max_rank}")
    if not args.lora_cache_gib > 0:
        parser.error(f"--lora-cache-gib must be above 0, not {args.lora_cache_gib}")
    return args


def comfy_files(args) -> dict:
    """The comfyui: file flags as comfy_files.resolve takes them (role -> FILE or None)."""
    return {"unet": getattr(args, "unet", None), "unet_high": getattr(args, "unet_high", None),
            "unet_low": getattr(args, "unet_low", None), "text_encoder": getattr(args, "text_encoder", None),
            "vae": getattr(args, "vae", None)}

"""Reel's denoising loop over diffusers' Wan components.

This mirrors diffusers 0.42.1 `WanPipeline.__call__` step for step (prompt encoding with the pipeline's own
`encode_prompt`, `prepare_latents`, the scheduler's `set_timesteps`/`step`, TI2V's per-token timesteps, A14B's
boundary switch between `transformer` and `transformer_2`, classifier-free guidance, the Wan latent
de-normalisation and `VideoProcessor.postprocess_video`), and, for a job with an image, `WanImageToVideoPipeline.
__call__` likewise (its `prepare_latents`, the conditioning in each step, the first frame put back after the loop):

- TI2V-5B with an image (`expand_timesteps`): the image's latent replaces latent frame 0 in every step's input, the
  tokens of that frame get timestep 0, and after the loop frame 0 is the image's latent again. Without an image the
  job is text-to-video, as WanPipeline runs it.
- I2V-A14B: every step's input is the noisy latents concatenated channel-wise with a 4-channel frame mask (1 where a
  frame is given) and the 16-channel latent of the video [image, black frames…, last image if any], 36 channels in
  all; its own boundary (0.9) between the experts, `guidance_2` for the low-noise one.

Reel owns the loop only to get what `__call__` cannot give: cancellation at step boundaries, progress events,
per-stage timing and checkpoints (checkpoint.py: save the loop's state every N steps, resume from it).
tests/test_pipeline.py checks that the frames equal WanPipeline's and WanImageToVideoPipeline's own output;
tests/test_checkpoint.py that a resumed run's frames equal an uninterrupted run's.
"""

from __future__ import annotations

import gc
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .checkpoint import Checkpointer, restore_scheduler
from .jobflow import Cancelled
from .models import LoadedModel
from .samplers import scheduler_for

Progress = Callable[[str, int, int], None]


@dataclass
class Generation:
    """Decoded frames (frames, height, width, 3) and the seconds of each stage. The frames are uint8 (what the
    encoders need) or, with output="float", float32 in [0, 1] exactly as WanPipeline(output_type="np") returns."""

    video: np.ndarray
    seconds: dict
    text_cache: dict | None = None  # per text: "hit" (embedding reused) or "miss" (encoded for this job)


def to_uint8(video: np.ndarray) -> np.ndarray:
    """The same rounding as diffusers' numpy_to_pil."""
    return (np.clip(video, 0.0, 1.0) * 255).round().astype(np.uint8)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: torch.device) -> int:
    """Peak device memory since the last reset on CUDA; on CPU the process's peak resident set (ru_maxrss)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


class _StepReporter:
    """Reports finished denoising steps. On CUDA a step is reported once its GPU work has finished: the event
    synchronisation costs next to nothing because diffusers' UniPC step already waits for the GPU (it builds small
    tensors on the device with blocking host-to-device copies), so the loop has one host sync per step either way."""

    def __init__(self, device: torch.device, total: int, progress: Progress):
        self.cuda = device.type == "cuda"
        self.total, self.progress = total, progress

    def finished(self, step: int) -> None:
        if self.cuda:
            event = torch.cuda.Event()
            event.record()
            event.synchronize()
        self.progress("denoising", step, self.total)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _noop_progress(stage: str, step: int, total: int) -> None:
    pass


def latent_shape(model: LoadedModel, width: int, height: int, frames: int) -> tuple[int, ...]:
    """The shape of the latents the loop denoises for one video of this size, as `prepare_latents` draws them: the
    VAE's z_dim channels (WanImageToVideoPipeline's; WanPipeline's transformer in_channels is the same number)."""
    pipe = model.pipe
    return (1, int(pipe.vae.config.z_dim), (frames - 1) // int(pipe.vae_scale_factor_temporal) + 1,
            height // int(pipe.vae_scale_factor_spatial), width // int(pipe.vae_scale_factor_spatial))


@dataclass
class Conditioning:
    """What a job's image adds to every denoising step (WanImageToVideoPipeline.prepare_latents' second output)."""

    kind: str  # "first_frame" (TI2V-5B, expand_timesteps) or "concat" (I2V-A14B)
    condition: torch.Tensor  # first_frame: the image's latent (1, z, 1, h, w); concat: mask + video latent
    mask: torch.Tensor | None = None  # first_frame: 0 at latent frame 0, 1 elsewhere (1, 1, f, h, w)


def image_conditioning(pipe, image, last_image, width: int, height: int, frames: int,
                       device: torch.device) -> Conditioning:
    """The conditioning of `image` (and `last_image`), PIL images of exactly width x height, computed as diffusers
    0.42.1 `WanImageToVideoPipeline.__call__` and `prepare_latents` compute it for a batch of one: the pipeline's
    VideoProcessor.preprocess (its resize a no-op at this size), the VAE's encoding of [image] (TI2V-5B) or
    [image, zeros…, (last_image)] (I2V-A14B) with sample_mode "argmax" (the distribution's mode, no noise),
    normalised with the VAE's latents_mean/std, and the frame masks."""
    vae = pipe.vae
    dtype = torch.float32  # the dtype __call__ gives prepare_latents
    temporal = int(pipe.vae_scale_factor_temporal)
    latent_frames = (frames - 1) // temporal + 1
    latent_height = height // int(pipe.vae_scale_factor_spatial)
    latent_width = width // int(pipe.vae_scale_factor_spatial)

    first = pipe.video_processor.preprocess(image, height=height, width=width).to(device, dtype=torch.float32)
    last = None
    if last_image is not None:
        last = pipe.video_processor.preprocess(last_image, height=height, width=width).to(device, dtype=torch.float32)
    first = first.unsqueeze(2)  # (1, 3, 1, H, W)
    if pipe.config.expand_timesteps:
        video_condition = first
    elif last is None:
        video_condition = torch.cat([first, first.new_zeros(1, first.shape[1], frames - 1, height, width)], dim=2)
    else:
        video_condition = torch.cat(
            [first, first.new_zeros(1, first.shape[1], frames - 2, height, width), last.unsqueeze(2)], dim=2)
    video_condition = video_condition.to(device=_module_device(vae), dtype=vae.dtype)

    z_dim = vae.config.z_dim
    latents_mean = torch.tensor(vae.config.latents_mean).view(1, z_dim, 1, 1, 1).to(device, dtype)
    latents_std = 1.0 / torch.tensor(vae.config.latents_std).view(1, z_dim, 1, 1, 1).to(device, dtype)
    latent_condition = vae.encode(video_condition).latent_dist.mode()  # diffusers' retrieve_latents, "argmax"
    latent_condition = latent_condition.to(device=device, dtype=dtype)
    latent_condition = (latent_condition - latents_mean) * latents_std

    if pipe.config.expand_timesteps:
        mask = torch.ones(1, 1, latent_frames, latent_height, latent_width, dtype=dtype, device=device)
        mask[:, :, 0] = 0
        return Conditioning("first_frame", latent_condition, mask)

    # One mask value per pixel frame (1 for the given frames), the first repeated to fill its latent frame, then
    # folded into `temporal` channels per latent frame.
    frame_mask = torch.ones(1, 1, frames, latent_height, latent_width)
    if last is None:
        frame_mask[:, :, list(range(1, frames))] = 0
    else:
        frame_mask[:, :, list(range(1, frames - 1))] = 0
    first_frame_mask = torch.repeat_interleave(frame_mask[:, :, 0:1], dim=2, repeats=temporal)
    frame_mask = torch.concat([first_frame_mask, frame_mask[:, :, 1:, :]], dim=2)
    frame_mask = frame_mask.view(1, -1, temporal, latent_height, latent_width).transpose(1, 2)
    frame_mask = frame_mask.to(latent_condition.device)
    return Conditioning("concat", torch.concat([frame_mask, latent_condition], dim=1))


def timestep_input(pipe, t: torch.Tensor, mask: torch.Tensor, batch: int) -> torch.Tensor:
    """The transformer's timestep argument for scheduler timestep `t`, as WanPipeline builds it: TI2V gives every
    latent token its own timestep (`mask` is all ones for text-to-video), A14B one per video."""
    if pipe.config.expand_timesteps:
        transformer = pipe.transformer if pipe.transformer is not None else pipe.transformer_2
        _, p_h, p_w = transformer.config.patch_size
        return (mask[0][0][:, ::p_h, ::p_w] * t).flatten().unsqueeze(0).expand(batch, -1)
    return t.expand(batch)


@torch.no_grad()
def generate(
    model: LoadedModel,
    *,
    prompt: str,
    negative_prompt: str,
    width: int,
    height: int,
    frames: int,
    steps: int,
    guidance: float,
    seed: int,
    guidance_2: float | None = None,
    memory_saving: bool = False,
    progress: Progress = _noop_progress,
    cancelled: Callable[[], bool] = lambda: False,
    output: str = "uint8",
    checkpoint: Checkpointer | None = None,
    image=None,
    last_image=None,
    sampler=None,
) -> Generation:
    """Runs text encoding, image encoding (with `image`), denoising and VAE decoding for one video; raises Cancelled
    when `cancelled()`.

    `image` and `last_image` are PIL RGB images of exactly width x height (images.py fits them): the first frame
    (TI2V-5B, I2V-A14B) and the last one (I2V-A14B only). With `checkpoint`, the loop's state is saved every
    `checkpoint.every` steps, and when `checkpoint.resume` holds a verified checkpoint denoising continues after its
    step with its latents and scheduler state (the prompts and images are encoded again: embeddings and the
    conditioning are not saved). `sampler` (protocol.SamplerSpec) replaces the model's scheduler (samplers.py)."""
    if image is None and model.image == "required":
        raise ValueError(f"{model.architecture} needs an image")
    if image is not None and model.image == "none":
        raise ValueError(f"{model.architecture} takes no image")
    if last_image is not None and (image is None or not model.last_image):
        raise ValueError(f"{model.architecture} takes no last image" if not model.last_image else
                         "a last image needs an image too")
    pipe = model.pipe
    device = model.device
    seconds: dict[str, float] = {}
    use_tiling = memory_saving and not pipe.vae.use_tiling
    if use_tiling:
        pipe.vae.enable_tiling()
    failed = True
    try:
        # 1. Text encoding with the pipeline's own per-text method (prompt cleaning, padding to 512, trimming),
        # through the model's embedding cache: a text seen before (the shared negative prompt, a retried job, a
        # prompt a `prepare` request encoded ahead) is not encoded again.
        progress("text_encoding", 0, 1)
        t0 = time.perf_counter()
        do_cfg = guidance > 1.0
        transformer = pipe.transformer if pipe.transformer is not None else pipe.transformer_2
        transformer_dtype = transformer.dtype
        prompt_embeds, cached = model.text.get(prompt)
        text_cache = {"prompt": "hit" if cached else "miss"}
        negative_prompt_embeds = None
        if do_cfg:
            negative_prompt_embeds, cached = model.text.get(negative_prompt or "")
            text_cache["negative_prompt"] = "hit" if cached else "miss"
        _sync(device)
        seconds["text_encoding"] = time.perf_counter() - t0
        progress("text_encoding", 1, 1)
        if memory_saving:
            free_memory(device)

        # 1b. The image's conditioning (WanImageToVideoPipeline computes it right after the timesteps; nothing
        # between depends on it). Done again on resume: it is a deterministic function of the image.
        conditioning = None
        if image is not None:
            progress("image_encoding", 0, 1)
            t0 = time.perf_counter()
            conditioning = image_conditioning(pipe, image, last_image, width, height, frames, device)
            _sync(device)
            seconds["image_encoding"] = time.perf_counter() - t0
            progress("image_encoding", 1, 1)
            if memory_saving:
                free_memory(device)  # the encoder's activations at full resolution

        # 2. Timesteps on a private copy of the scheduler (or the request's sampler), so no state leaks between jobs
        # (or from a cancelled one).
        t0 = time.perf_counter()
        scheduler = scheduler_for(pipe, sampler)
        scheduler.set_timesteps(steps, device=device)
        timesteps = scheduler.timesteps

        # 3. Initial noise from a CPU generator: the same seed gives the same noise on every device. The loop draws
        # no random numbers after this, so a resumed job needs only the latents and the scheduler state.
        resume = checkpoint.resume if checkpoint is not None else None
        scheduler.set_begin_index(0)
        if resume is None:
            generator = torch.Generator(device="cpu").manual_seed(seed)
            if conditioning is None:
                latents = pipe.prepare_latents(
                    1, transformer.config.in_channels, height, width, frames, torch.float32, device, generator
                )
            else:
                # WanImageToVideoPipeline.prepare_latents draws the noise as WanPipeline's does, with z_dim channels.
                from diffusers.utils.torch_utils import randn_tensor

                latents = randn_tensor(latent_shape(model, width, height, frames), generator=generator, device=device,
                                       dtype=torch.float32)
            first_step = 0
        else:
            latents = resume.latents.to(device)
            restore_scheduler(scheduler, resume.scheduler_state, device)
            first_step = resume.step
        # TI2V's per-token timesteps: all ones for text-to-video, 0 at the image's latent frame with an image.
        if conditioning is not None and conditioning.kind == "first_frame":
            mask = conditioning.mask
        else:
            mask = torch.ones(latents.shape, dtype=torch.float32, device=device)

        boundary_ratio = pipe.config.boundary_ratio
        boundary_timestep = None
        if boundary_ratio is not None:
            boundary_timestep = boundary_ratio * scheduler.config.num_train_timesteps
        if boundary_timestep is not None and guidance_2 is None:
            guidance_2 = guidance
        # ComfyUI's KSamplerAdvanced pair switches experts at a step, not at a timestep.
        switch_step = getattr(sampler, "switch_step", None) if boundary_timestep is not None else None

        def expert_at(i: int) -> str:
            if switch_step is not None:
                return "transformer" if i < switch_step else "transformer_2"
            return _expert(timesteps[i], boundary_timestep)

        # 4. Denoising.
        reporter = _StepReporter(device, len(timesteps), progress)
        if resume is not None:
            if resume.expert != expert_at(first_step - 1):
                raise RuntimeError(f"checkpoint expert {resume.expert} does not match step {first_step}")
            if checkpoint.on_resumed is not None:
                checkpoint.on_resumed(first_step, len(timesteps))
        for i, t in enumerate(timesteps):
            if i < first_step:
                continue
            if cancelled():
                raise Cancelled("denoising", i + 1, len(timesteps))
            expert = expert_at(i)
            if expert == "transformer":
                current_model, current_guidance = pipe.transformer, guidance  # Wan2.2 high-noise expert / TI2V
            else:
                current_model, current_guidance = pipe.transformer_2, guidance_2  # Wan2.2 low-noise expert

            if conditioning is None:
                latent_model_input = latents.to(transformer_dtype)
            elif conditioning.kind == "first_frame":
                latent_model_input = ((1 - mask) * conditioning.condition + mask * latents).to(transformer_dtype)
            else:
                latent_model_input = torch.cat([latents, conditioning.condition], dim=1).to(transformer_dtype)
            timestep = timestep_input(pipe, t, mask, latents.shape[0])

            cache_kwargs = {"step_index": i, "sigma": float(scheduler.sigmas[i]),
                            "num_inference_steps": len(timesteps)}
            with current_model.cache_context("cond", **cache_kwargs):
                noise_pred = current_model(
                    hidden_states=latent_model_input,
                    timestep=timestep,
                    encoder_hidden_states=prompt_embeds,
                    attention_kwargs=None,
                    return_dict=False,
                )[0]
            if do_cfg:
                with current_model.cache_context("uncond", **cache_kwargs):
                    noise_uncond = current_model(
                        hidden_states=latent_model_input,
                        timestep=timestep,
                        encoder_hidden_states=negative_prompt_embeds,
                        attention_kwargs=None,
                        return_dict=False,
                    )[0]
                noise_pred = noise_uncond + current_guidance * (noise_pred - noise_uncond)

            latents = scheduler.step(noise_pred, t, latents, return_dict=False)[0]
            if checkpoint is not None and checkpoint.due(i + 1, len(timesteps)):
                checkpoint.save(i + 1, len(timesteps), latents, scheduler, expert)
            reporter.finished(i + 1)
        if checkpoint is not None:
            checkpoint.flush()  # the last checkpoint is on disk before the job goes on
        if conditioning is not None and conditioning.kind == "first_frame":
            latents = (1 - mask) * conditioning.condition + mask * latents  # the image is frame 0 again
        seconds["denoising"] = time.perf_counter() - t0
        del prompt_embeds, negative_prompt_embeds, mask, conditioning
        if memory_saving:
            free_memory(device)

        if cancelled():
            raise Cancelled("vae_decode")

        # 5. VAE decode with Wan's latent de-normalisation, then the pipeline's video post-processing.
        progress("vae_decode", 0, 1)
        t0 = time.perf_counter()
        vae = pipe.vae
        latents = latents.to(_module_device(vae), dtype=vae.dtype)
        z_dim = vae.config.z_dim
        latents_mean = torch.tensor(vae.config.latents_mean).view(1, z_dim, 1, 1, 1).to(latents.device, latents.dtype)
        latents_std = 1.0 / torch.tensor(vae.config.latents_std).view(1, z_dim, 1, 1, 1).to(
            latents.device, latents.dtype
        )
        latents = latents / latents_std + latents_mean
        video = vae.decode(latents, return_dict=False)[0]
        if output == "float":
            video = np.asarray(pipe.video_processor.postprocess_video(video, output_type="np")[0], dtype=np.float32)
        else:
            # The same values as the "np" output rounded like numpy_to_pil, but computed on the device: converting
            # a 720p video to uint8 with numpy on the host costs over a second.
            video = pipe.video_processor.postprocess_video(video, output_type="pt")[0]  # (frames, 3, H, W)
            video = (video.float() * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()
        pipe.maybe_free_model_hooks()
        seconds["vae_decode"] = time.perf_counter() - t0
        progress("vae_decode", 1, 1)
        failed = False
        return Generation(video=video, seconds=seconds, text_cache=text_cache)
    finally:
        if checkpoint is not None:
            checkpoint.flush()  # no write outlives the call, whatever ended it
        if failed:
            # A decode that failed half-way leaves its per-layer feature cache on the VAE; drop it now rather
            # than at the start of the next decode.
            pipe.vae.clear_cache()
        if use_tiling:
            pipe.vae.disable_tiling()
        if memory_saving:
            free_memory(device)


def _expert(t: torch.Tensor, boundary_timestep: float | None) -> str:
    """Which transformer denoises timestep t: `transformer` (TI2V's only one, A14B's high-noise expert) or
    `transformer_2` (A14B's low-noise expert, below the boundary)."""
    return "transformer" if boundary_timestep is None or t >= boundary_timestep else "transformer_2"


def _module_device(module: torch.nn.Module) -> torch.device:
    from diffusers.utils.torch_utils import get_module_execution_device

    return get_module_execution_device(module)

"""Samplers a request can choose instead of the model's own scheduler (`sampler` in a generate request).

`step_distill`: the schedule the Wan2.2 distilled LoRAs (Lightning, lightx2v) were trained for, as LightX2V computes
it: lightx2v/models/schedulers/wan/step_distill/scheduler.py, `Wan22StepDistillScheduler` (ModelTC/LightX2V at
21ef47a), with its configs configs/distill/wan22/wan_moe_{t2v,i2v}_distill_with_lora.json (sample_shift 5, cfg off,
boundary_step_index 2, denoising_step_list [1000, 750, 500, 250]):

- sigmas: `linspace(1, 0, 1001)[:-1]` in float32, shifted `shift * s / (1 + (shift - 1) * s)`; the model's timesteps
  are `sigma * 1000`; both are taken at the indices `1000 - step` of the list. For the recipe that gives the
  timesteps [1000, 937.5, 833.33, 625] and sigmas [1, 0.9375, 0.8333, 0.625]: the list names the unshifted
  positions, the model sees the shifted ones.
- a step: `x0 = x - sigma * v`, then `x = x0 + sigma_next * v` (the last step returns x0), in float32 with Python
  floats for the sigmas, LightX2V's own arithmetic (not diffusers' `x + (sigma_next - sigma) * v`, which rounds
  differently).

With Reel's expert rule (`t >= boundary_ratio * 1000`: 875 for T2V-A14B, 900 for I2V-A14B) the recipe's four steps
are two on the high-noise expert and two on the low-noise one, LightX2V's boundary_step_index 2.

The sampler has the interface pipeline.generate and checkpoint.py use of a diffusers scheduler (`set_timesteps`,
`timesteps`, `sigmas`, `step`, `set_begin_index`, `config.num_train_timesteps`, `_step_index`), and every attribute
is a tensor, a number or a list of numbers, so checkpoint.scheduler_state saves it and restore_scheduler puts it back.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch


class StepDistillSampler:
    """LightX2V's Wan22StepDistillScheduler for one job (see the module docstring)."""

    def __init__(self, shift: float, denoising_steps, num_train_timesteps: int = 1000):
        self.shift = float(shift)
        self.denoising_steps = [int(s) for s in denoising_steps]
        self.num_train_timesteps = int(num_train_timesteps)
        self.timesteps = None
        self.sigmas = None
        self._step_index = 0
        self._begin_index = 0

    @property
    def config(self) -> SimpleNamespace:
        return SimpleNamespace(num_train_timesteps=self.num_train_timesteps)

    def set_timesteps(self, steps: int, device=None) -> None:
        if steps != len(self.denoising_steps):
            raise ValueError(f"the sampler has {len(self.denoising_steps)} denoising steps, not {steps}")
        n = self.num_train_timesteps
        sigmas = torch.linspace(1.0, 0.0, n + 1, dtype=torch.float32)[:-1]
        sigmas = self.shift * sigmas / (1 + (self.shift - 1) * sigmas)
        timesteps = sigmas * n
        index = [n - s for s in self.denoising_steps]
        self.timesteps = timesteps[index].to(device)
        self.sigmas = sigmas[index]  # on the CPU, as LightX2V keeps them: .item() costs no device sync
        self._step_index = 0

    def set_begin_index(self, begin_index: int = 0) -> None:
        self._begin_index = int(begin_index)

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, return_dict: bool = False):
        i = self._step_index
        flow = model_output.to(torch.float32)
        x = sample.to(torch.float32) - self.sigmas[i].item() * flow
        if i < len(self.denoising_steps) - 1:
            x = x + self.sigmas[i + 1].item() * flow
        self._step_index = i + 1
        return (x.to(sample.dtype),)


def scheduler_for(pipe, sampler):
    """A private scheduler for one job: the request's sampler (protocol.SamplerSpec), or a copy of the model's own
    scheduler for None.

    `flow_euler` is ComfyUI's `euler` sampler on a flow model (comfy/k_diffusion/sampling.py `sample_euler` with
    `ModelSamplingDiscreteFlow`): sigmas `shift * p / (1 + (shift - 1) * p)` at the positions p the request lists
    (ComfyUI's `simple` schedule, computed by Reel's ComfySchedule), the model called at `sigma * 1000`, and
    `x += (sigma_next - sigma) * v`, which is StepDistillSampler's step. `flow_unipc` is the model's own UniPC at
    the request's shift."""
    if sampler is None:
        return type(pipe.scheduler).from_config(pipe.scheduler.config)
    if sampler.kind == "flow_unipc":
        return type(pipe.scheduler).from_config(pipe.scheduler.config, flow_shift=float(sampler.shift))
    if sampler.kind in ("step_distill", "flow_euler"):
        return StepDistillSampler(sampler.shift, sampler.denoising_steps,
                                  int(pipe.scheduler.config.num_train_timesteps))
    raise ValueError(f"unknown sampler {sampler.kind!r}")

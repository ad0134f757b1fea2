"""Per-job LoRAs on a loaded model: adapter slots made once at the worker's start, filled in place for each job.

At start (`install`, before compilation), every linear layer of each transformer (`transformer`, the A14B models'
high-noise expert, and `transformer_2`, the low-noise one) gets K peft LoRA adapters `reel0` … `reel{K-1}` of rank R
(`--lora-slots`, `--lora-max-rank`), with a bias on B (lora_bias, which carries `diff_b`), all zero and always active,
their scalings 0-dimensional tensors at 0. A job's LoRAs are then applied by copying each one's A and B into the next
free slot of the expert it lands on (A into the first rows, B into the first columns, the rest zero) and writing its
scale into the scaling tensors: nothing is added to or removed from the model and no Python number the compiled graph
depends on changes, so a compiled transformer is not recompiled. A slot the job does not use holds zeros, which add
exactly 0.0 (the base model's output is unchanged, bit for bit).

A scaling is `scale * lora_alpha / rank`, computed as peft's `set_scale` computes it, so with a slot rank equal to the
LoRA's the output is diffusers' `load_lora_weights` + `set_adapters` output exactly (tests/test_loras.py). A LoRA of
lower rank than the slots is zero-padded: the same function, but the matrix products run over more (zero) terms,
which may change the last bits. A LoRA of higher rank is refused (loras.fit) naming `--lora-max-rank`.

Full deltas (modulation, norms, `head.head`, `patch_embedding`, biases without a pair) are written into the
parameters themselves: the first time a parameter is touched its pristine value is kept, and every job sets it to
`pristine + sum(scale * delta)` computed in float32, the same way each time, so switching A -> B -> A gives A's
weights again bit for bit (subtracting a delta again would not, in bfloat16).

Converted LoRAs are kept on the host (pinned memory on CUDA), least recently used dropped first beyond
`--lora-cache-gib`; a file is read and hashed again only when its size, mtime or inode changed (loras.check_request).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections import OrderedDict

import torch

from . import loras
from .loras import LoRAError

log = logging.getLogger("reel_engine.lora_slots")

GIB = 1024**3
_DIRTY = object()  # a slot whose content is unknown (a failed switch): rewritten in full next time


def install(model, slots: int, max_rank: int, cache_gib: float = 8.0) -> None:
    """Gives `model` (models.LoadedModel) `slots` adapter slots of rank `max_rank` per transformer, or none (slots 0:
    no adapters, no overhead; a job with LoRAs is then refused)."""
    if slots < 0 or max_rank < 1 or not cache_gib > 0:
        raise ValueError(f"--lora-slots {slots}, --lora-max-rank {max_rank}, --lora-cache-gib {cache_gib}: expected "
                         f"slots >= 0, a rank >= 1 and a cache > 0 GiB")
    model.loras = LoRASlots(model, slots, max_rank, int(cache_gib * GIB)) if slots else None


def prepare(model, req) -> list | None:
    """The request's LoRAs read, checked and converted (cached plans reused), before the job touches anything;
    raises LoRAError. None when the model has no slots and the request no LoRAs."""
    refs = tuple(req.loras or ())
    slots = getattr(model, "loras", None)
    if slots is None:
        if refs:
            raise LoRAError("loras: this worker has no LoRA slots (it was started with --lora-slots 0)")
        return None
    return slots.prepare(refs)


def apply(model, prepared) -> float | None:
    """Puts a prepared set into the slots; returns the seconds the switch took (None without slots)."""
    slots = getattr(model, "loras", None)
    if slots is None:
        return None
    return slots.apply(prepared or [])


class LoRASlots:
    """The adapter slots of one loaded model, what they hold, the pristine copies and the host cache of plans."""

    def __init__(self, model, slots: int, max_rank: int, cache_bytes: int):
        from peft import LoraConfig
        from peft.tuners.lora import LoraLayer

        self.model = model
        self.slots, self.max_rank, self.cache_bytes = slots, max_rank, cache_bytes
        pipe = model.pipe
        transformers = {"high": pipe.transformer, "low": pipe.transformer_2}
        self.transformers = {e: t for e, t in transformers.items() if t is not None}
        self.names = [f"reel{j}" for j in range(slots)]
        self.targets: dict[str, loras.Targets] = {}
        self.layers: dict[str, dict] = {}  # expert -> module name -> peft LoraLayer
        self.params: dict[str, dict] = {}  # expert -> parameter name -> Parameter (for full deltas)
        t0 = time.perf_counter()
        for expert, transformer in self.transformers.items():
            targets = loras.targets_of(transformer, model.architecture)
            self.targets[expert] = targets
            self.params[expert] = dict(transformer.named_parameters())
            for name in self.names:
                config = LoraConfig(r=max_rank, lora_alpha=max_rank, lora_bias=True,
                                    target_modules=sorted(targets.linears), init_lora_weights=False)
                with warnings.catch_warnings():  # "multiple adapters in the model": K of them, on purpose
                    warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                    transformer.add_adapter(config, adapter_name=name)
            transformer.set_adapters(self.names, [0.0] * slots)
            layers = {module_name: module for module_name, module in transformer.named_modules()
                      if isinstance(module, LoraLayer) and module_name in targets.linears}
            if set(layers) != set(targets.linears):
                raise RuntimeError(f"peft wrapped {len(layers)} of {len(targets.linears)} linear layers")
            with torch.no_grad():
                for module in layers.values():
                    device = module.get_base_layer().weight.device
                    for name in self.names:
                        module.lora_A[name].weight.zero_()
                        module.lora_B[name].weight.zero_()
                        module.lora_B[name].bias.zero_()
                        # A tensor, not a Python float: a new value then changes no guard of a compiled graph.
                        module.scaling[name] = torch.zeros((), dtype=torch.float32, device=device)
            self.layers[expert] = layers
        # What each slot holds: (sha256, scale) or None (zeros), per expert; which modules hold nonzero weights.
        self.held = {e: [None] * slots for e in self.transformers}
        self.nonzero = {e: [set() for _ in range(slots)] for e in self.transformers}
        self.pristine: dict[str, dict] = {e: {} for e in self.transformers}
        self.modified: dict[str, set] = {e: set() for e in self.transformers}
        self.cache: OrderedDict[str, loras.LoRAPlan] = OrderedDict()
        self.install_seconds = time.perf_counter() - t0
        log.info("LoRA slots: %d of rank %d on %s in %.2fs", slots, max_rank, ", ".join(self.transformers),
                 self.install_seconds)

    @property
    def experts(self) -> tuple[str, ...]:
        return tuple(self.transformers)

    def landing(self, expert: str) -> tuple[str, ...]:
        """The experts a `loras` entry lands on: both transformers for "both" (the only one of TI2V-5B)."""
        return loras.landing(expert, self.experts)

    # -- a job's set -------------------------------------------------------------------------------------------

    def prepare(self, refs) -> list:
        """[(plan, ref)] in request order: each file checked (loras.check_request) and converted, or its cached
        plan; raises LoRAError."""
        checked = loras.check_request(refs, self.targets, self.slots, self.max_rank,
                                      cached=lambda sha: sha in self.cache)
        out = []
        for c in checked:
            plan = self.cache.get(c.ref.sha256)
            if plan is None:
                try:
                    plan = loras.convert(c.layout, c.data, c.ref.sha256)
                except ValueError as e:
                    raise LoRAError(f"{c.field}: {c.ref.name} ({c.ref.path}) {e}") from None
                except Exception as e:  # tensors the header promised but the file does not hold (safetensors)
                    raise LoRAError(f"{c.field}: {c.ref.name} ({c.ref.path}) cannot be read: "
                                    f"{type(e).__name__}: {e}") from None
                if self.model.device.type == "cuda":
                    plan.pin()
                self.cache[c.ref.sha256] = plan
            self.cache.move_to_end(c.ref.sha256)
            out.append((plan, c.ref))
        self._evict(keep={p.sha256 for p, _ in out})
        return out

    def _evict(self, keep: set) -> None:
        total = sum(p.nbytes for p in self.cache.values())
        for sha in list(self.cache):
            if total <= self.cache_bytes:
                break
            if sha not in keep:
                total -= self.cache.pop(sha).nbytes

    @torch.no_grad()
    def apply(self, prepared: list) -> float:
        """Fills the slots and full deltas for `prepared` ([(plan, ref)]); returns the seconds it took. A failure
        half-way leaves the slots marked unknown, so the next switch rewrites them in full."""
        t0 = time.perf_counter()
        try:
            for expert in self.transformers:
                wanted = [(plan, float(ref.scale)) for plan, ref in prepared if expert in self.landing(ref.expert)]
                for j in range(self.slots):
                    self._fill(expert, j, wanted[j] if j < len(wanted) else None)
                self._deltas(expert, wanted)
            if self.model.device.type == "cuda":
                torch.cuda.synchronize(self.model.device)
        except BaseException:
            for expert in self.transformers:
                self.held[expert] = [_DIRTY] * self.slots
                self.nonzero[expert] = [set(self.layers[expert]) for _ in range(self.slots)]
                self.modified[expert] = set(self.pristine[expert])
            raise
        return time.perf_counter() - t0

    def _fill(self, expert: str, j: int, want) -> None:
        name = self.names[j]
        key = (want[0].sha256, want[1]) if want is not None else None
        held = self.held[expert][j]
        if held == key:
            return
        plan = want[0] if want is not None else None
        same_weights = held is not None and held is not _DIRTY and key is not None and held[0] == key[0]
        nonzero = self.nonzero[expert][j]
        for module_name, module in self.layers[expert].items():
            scaling = module.scaling[name]
            if plan is not None and module_name in plan.lowrank:
                a, b, bias = plan.lowrank[module_name]
                r = a.shape[0]
                if not same_weights:
                    la, lb = module.lora_A[name].weight, module.lora_B[name].weight
                    la[:r].copy_(a, non_blocking=True)
                    la[r:].zero_()
                    lb[:, :r].copy_(b, non_blocking=True)
                    lb[:, r:].zero_()
                    if bias is not None:
                        module.lora_B[name].bias.copy_(bias, non_blocking=True)
                    else:
                        module.lora_B[name].bias.zero_()
                    nonzero.add(module_name)
                scaling.fill_(want[1] * plan.alphas[module_name] / r)  # peft's set_scale: scale * alpha / r
            else:
                if module_name in nonzero:
                    module.lora_A[name].weight.zero_()
                    module.lora_B[name].weight.zero_()
                    module.lora_B[name].bias.zero_()
                    nonzero.discard(module_name)
                scaling.fill_(0.0)
        self.held[expert][j] = key

    def _deltas(self, expert: str, wanted: list) -> None:
        touched = {p for plan, _ in wanted for p in plan.deltas}
        params, pristine = self.params[expert], self.pristine[expert]
        for name in sorted(touched | self.modified[expert]):
            param = params[name]
            if name not in pristine:
                pristine[name] = param.detach().clone()
            value = pristine[name].to(param.device, torch.float32)
            for plan, scale in wanted:
                delta = plan.deltas.get(name)
                if delta is not None:
                    value = value + delta.to(param.device, torch.float32) * scale
            param.copy_(value.to(param.dtype))
        self.modified[expert] = touched

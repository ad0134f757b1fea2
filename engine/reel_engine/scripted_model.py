"""The scripted worker's stand-in for a loaded model: everything a real worker reports about a model name in its
`ready` event (the catalog's defaults, frame rate and strides, the dtype of the device, the placement plan a real
worker would choose, what the speed options did), without weights. Torch-free.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace

from . import __version__, approximate, catalog, distributed, model_configs, placement
from .catalog import A14B, I2V, TI2V, TWO_EXPERTS, ModelError

# Bytes of weights of each component, as placement.component_sizes measures them on building.build_pipeline's
# pipelines built on the meta device: (architecture, tiny, dtype) -> sizes. tests/test_scripted_model.py checks the
# float32 tiny ones against the loaded tiny models, and every width against the model configs.
COMPONENT_SIZES = {
    (TI2V, True, "float32"): placement.ComponentSizes(249216, 327808, 2505568, 327808, 32),
    (A14B, True, "float32"): placement.ComponentSizes(249216, 589056, 717180, 294528, 32),
    (TI2V, True, "bfloat16"): placement.ComponentSizes(124608, 234816, 1252784, 234816, 32),
    (A14B, True, "bfloat16"): placement.ComponentSizes(124608, 436352, 358590, 218176, 32),
    (TI2V, False, "bfloat16"): placement.ComponentSizes(11361820672, 10022570368, 1409377336, 10022570368, 3072),
    (A14B, False, "bfloat16"): placement.ComponentSizes(11361820672, 57272799488, 253785062, 28636399744, 5120),
    (TI2V, False, "float32"): placement.ComponentSizes(22723641344, 20000199424, 2818754672, 20000199424, 3072),
    (A14B, False, "float32"): placement.ComponentSizes(22723641344, 114310029824, 507570124, 57155014912, 5120),
    # I2V-A14B: T2V-A14B's components, but each expert's patch embedding takes 36 channels instead of 16.
    (I2V, True, "float32"): placement.ComponentSizes(249216, 609536, 717180, 304768, 32),
    (I2V, True, "bfloat16"): placement.ComponentSizes(124608, 446592, 358590, 223296, 32),
    (I2V, False, "bfloat16"): placement.ComponentSizes(11361820672, 57274437888, 253785062, 28637218944, 5120),
    (I2V, False, "float32"): placement.ComponentSizes(22723641344, 114313306624, 507570124, 57156653312, 5120),
}
# The transformer's attention heads (model_configs.component_configs), which a parallel group's size must divide.
ATTENTION_HEADS = {(TI2V, True): 2, (A14B, True): 2, (I2V, True): 2, (TI2V, False): 24, (A14B, False): 40,
                   (I2V, False): 40}
# What a scripted CUDA device reports: no GPU is touched, so its memory is this many GiB.
GPU_MEMORY_ENV = "REEL_SCRIPTED_GPU_MEMORY_GIB"
DEFAULT_GPU_MEMORY_GIB = 80.0
# How many GPUs the scripted machine has: cuda:K with K at least this many fails the start as on a real machine
# without that GPU. Unset: every cuda:N is simulated.
GPUS_ENV = "REEL_SCRIPTED_GPUS"
# The kernel timings a scripted CUDA worker reports (a real one measures them; cuDNN wins on an H200).
ATTENTION_SECONDS = {"cudnn": 0.00052, "flash": 0.00089, "efficient": 0.00141}


class ScriptedTexts:
    """Which texts count as encoded, standing in for textcache.TextEmbeddings: `in`, `prepare` and `get` behave as
    there, so job.json's `text_embeddings` says `hit` or `miss` as a real worker's would."""

    def __init__(self, placement_name: str = "resident"):
        self.placement = placement_name
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def get(self, text: str) -> bool:
        """Whether `text` was already encoded; it is from now on."""
        with self._lock:
            cached = text in self._seen
            self._seen.add(text)
            return cached

    def prepare(self, texts: list[str]) -> None:
        for text in texts:
            self.get(text)

    def __contains__(self, text: str) -> bool:
        with self._lock:
            return text in self._seen


@dataclass
class ScriptedModel:
    """A model name resolved as a real worker would, with nothing loaded."""

    name: str
    architecture: str
    device: str  # "cpu" or "cuda:N"
    dtype_name: str
    random_weights: bool
    defaults: catalog.Defaults
    path: str | None
    tiny: bool
    memory_saving: bool = False
    text_device: str | None = None
    memory_plan: placement.MemoryPlan | None = None
    text: ScriptedTexts = field(default_factory=ScriptedTexts)
    speed: dict = field(default_factory=dict)
    group: distributed.Group | None = None
    total_memory_bytes: int = 0
    load_seconds: float = 0.0
    lora_slots: int = 0  # --lora-slots; a real worker's slots are made at start, these only counted
    lora_max_rank: int = 0  # the slots' rank (0 without slots)
    lora_config: dict | None = None  # the transformer's config, which LoRAs are checked against
    files: list | None = None  # a comfyui: model's files, as a real worker records them

    @property
    def lora_targets(self) -> dict:
        """expert -> loras.Targets of the transformer's config (loras.py is imported with the first LoRA job: it
        imports the job code, which the start does not need)."""
        from . import loras

        targets = loras.targets_from_config(self.lora_config, self.architecture)
        return {expert: targets for expert in (("high", "low") if self.architecture in TWO_EXPERTS else ("high",))}

    @property
    def fps(self) -> int:
        return catalog.FPS[self.architecture]

    @property
    def image(self) -> str:
        return catalog.IMAGE[self.architecture]

    @property
    def last_image(self) -> bool:
        return catalog.LAST_IMAGE[self.architecture]

    @property
    def spatial_stride(self) -> int:
        return catalog.STRIDES[self.architecture][0]

    @property
    def temporal_stride(self) -> int:
        return catalog.STRIDES[self.architecture][1]

    @property
    def sizes(self) -> placement.ComponentSizes:
        return COMPONENT_SIZES[(self.architecture, self.tiny, self.dtype_name)]

    def memory(self) -> tuple[int, int]:
        """(free, total) bytes as a real worker reports them after loading: host memory on the CPU; on a scripted
        GPU its configured size less the weights the plan keeps on it."""
        if self.device == "cpu":
            return placement.host_memory()
        sizes = self.sizes
        on_device = sizes.transformer + sizes.vae + (0 if self.text_device else sizes.text_encoder)
        if self.memory_plan is not None and self.memory_plan.model_offload:
            on_device = 0
        elif self.memory_plan is not None and self.memory_plan.text_placement == "offload":
            on_device -= sizes.text_encoder
        return max(0, self.total_memory_bytes - on_device), self.total_memory_bytes

    def ready_fields(self) -> dict:
        """The `ready` event's fields, the same as startup.ready_fields gives for a real model, plus `scripted`."""
        free, total = self.memory()
        fields = dict(
            device=self.device,
            model=self.name,
            architecture=self.architecture,
            dtype=self.dtype_name,
            free_memory_bytes=free,
            total_memory_bytes=total,
            fps=self.fps,
            spatial_stride=self.spatial_stride,
            temporal_stride=self.temporal_stride,
            image=self.image,
            last_image=self.last_image,
            engine_version=__version__,
            pid=os.getpid(),
            random_weights=self.random_weights,
            load_seconds=round(self.load_seconds, 3),
            defaults=self.defaults.to_json(),
            memory_saving=self.memory_saving,
            model_path=self.path,
            **({"model_files": self.files} if self.files is not None else {}),
            placement=self.memory_plan.to_json() | {"text_device": self.text_device or self.device,
                                                    "text_encoder": self.text.placement},
            speed=self.speed,
            lora_slots=self.lora_slots,
            lora_max_rank=self.lora_max_rank,
        )
        if self.group is not None:
            fields.update(self.group.ready_fields())
        fields["scripted"] = True
        return fields


def scripted_gpus() -> int | None:
    """REEL_SCRIPTED_GPUS, checked: how many GPUs the scripted machine has, None for as many as asked for."""
    raw = os.environ.get(GPUS_ENV)
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise ModelError(f"{GPUS_ENV}={raw!r}: expected a number of GPUs >= 0")
    return int(raw)


def parse_device(spec: str, what: str = "device") -> str:
    """`cpu`, `cuda` or `cuda:N` as a real worker names the device it resolved (`cuda` is `cuda:0`); a GPU the
    scripted machine lacks (REEL_SCRIPTED_GPUS) is refused with the message a real worker gives for it."""
    if spec == "cpu":
        return "cpu"
    index = spec.removeprefix("cuda:")
    if spec == "cuda":
        index = "0"
    elif not (spec.startswith("cuda:") and index.isdigit()):
        raise ModelError(f"{what} {spec!r}: expected cpu, cuda or cuda:N")
    gpus = scripted_gpus()
    if gpus == 0:
        raise ModelError(f"{what} {spec}: CUDA is not available to this torch build or machine")
    if gpus is not None and int(index) >= gpus:
        raise ModelError(f"{what} {spec}: only {gpus} CUDA device(s) are visible")
    return f"cuda:{int(index)}"


def load(args) -> ScriptedModel:
    """The ScriptedModel for the worker's command-line arguments (cli.parse_args); raises ModelError (or
    distributed.GroupError, ValueError) for what a real worker would refuse at start."""
    t0 = time.perf_counter()
    device = parse_device(args.device)
    text_device = parse_device(args.text_device, "text device") if args.text_device is not None else None
    if text_device == device:
        text_device = None
    if args.memory_budget is not None and args.memory_budget <= 0:
        raise ModelError(f"--memory-budget must be a positive number of GiB, not {args.memory_budget}")
    cuda = device.startswith("cuda")
    named = catalog.parse_model_name(args.model)
    kind, files = named.kind, None
    data_dir = args.data_dir or catalog.default_data_dir()
    if named.kind == "tiny":
        architecture, path = named.architecture, catalog.tiny_dir(data_dir, named.architecture)
    elif named.kind == "random":
        architecture, path = named.architecture, None
    elif named.kind == "comfyui":  # the same files resolved from their headers as a real worker's
        from . import comfy_files
        from .cli import comfy_files as comfy_flags

        selection = comfy_files.resolve(named.path, comfy_flags(args))
        architecture, path = selection.architecture, selection.root
        kind = "tiny" if selection.tiny else kind
        files = selection.record()
    else:
        architecture, path = catalog.inspect_model_dir(named.path), named.path
    model = ScriptedModel(
        name=args.model, architecture=architecture, device=device, dtype_name="bfloat16" if cuda else "float32",
        random_weights=named.random_weights, defaults=catalog.model_defaults(kind, architecture), path=path,
        tiny=kind == "tiny", memory_saving=args.memory_saving, text_device=text_device, files=files)
    model.total_memory_bytes = int(float(os.environ.get(GPU_MEMORY_ENV, DEFAULT_GPU_MEMORY_GIB)) * placement.GIB)
    _plan(model, args.memory_budget)
    _speed(model, args.compile, args.approximate)
    _loras(model, args)
    model.group = _group(model, args)
    model.text.prepare([""])  # as a real worker encodes the empty negative prompt before `ready`
    model.load_seconds = time.perf_counter() - t0
    return model


def _plan(model: ScriptedModel, memory_budget_gib: float | None) -> None:
    """The placement a real worker chooses (model_placement.place): placement.plan_memory on the model's sizes."""
    cuda = model.device != "cpu"
    sizes = model.sizes
    if model.text_device is not None:
        sizes = replace(sizes, text_encoder=0)  # it lives elsewhere
    d = model.defaults
    shape = placement.JobShape(d.width, d.height, d.frames, model.spatial_stride, model.temporal_stride)
    budget = None
    if memory_budget_gib is not None:
        budget = int(memory_budget_gib * placement.GIB)
        if cuda and budget > model.total_memory_bytes:
            raise ModelError(f"--memory-budget {memory_budget_gib:g} GiB is more than {model.device}'s "
                             f"{model.total_memory_bytes / placement.GIB:.1f} GiB")
    try:
        plan = placement.plan_memory(sizes, shape, budget if cuda else None, memory_saving=model.memory_saving)
    except placement.BudgetTooSmall as e:
        raise ModelError(str(e)) from None
    model.memory_plan = plan
    text_placement = "resident"
    if cuda and plan.model_offload:
        text_placement = "model_offload"
    elif model.text_device is not None:
        text_placement = "device"
    elif cuda and plan.text_placement == "offload":
        text_placement = "offload"
    model.text = ScriptedTexts(text_placement)


def _loras(model: ScriptedModel, args) -> None:
    """The LoRA slots a real worker makes (lora_slots.install), counted, and the layers its LoRAs are checked
    against: loras.targets_from_config on the transformer's config (a directory's own transformer/config.json)."""
    model.lora_slots = args.lora_slots
    model.lora_max_rank = args.lora_max_rank if args.lora_slots else 0
    if not args.lora_slots:
        return
    import os

    directory_config = os.path.join(model.path, "transformer", "config.json") if model.path is not None else None
    if directory_config is not None and not model.tiny and os.path.isfile(directory_config):  # not comfyui: files
        import json

        with open(directory_config, encoding="utf-8") as f:
            config = json.load(f)
    else:
        config = model_configs.component_configs(model.architecture, model.tiny)["transformer"]
    model.lora_config = config


def _speed(model: ScriptedModel, compile_mode: str, approximate_spec: str | None) -> None:
    """What startup.prepare_for_speed records: the attention kernel and VAE warm-up on CUDA, compilation, the
    approximate speed-up (parsed, and refused, as there)."""
    cuda = model.device != "cpu"
    if cuda:
        model.speed.update(attention_backend=min(ATTENTION_SECONDS, key=ATTENTION_SECONDS.get),
                           attention_seconds=dict(ATTENTION_SECONDS))
        if not model.memory_plan.model_offload:
            model.speed["vae_warm_up_seconds"] = 0.0
    compile_on = compile_mode == "on" or (compile_mode == "auto" and cuda)
    if approximate_spec:
        name, threshold = approximate.parse_approximate(approximate_spec)
        model.speed["approximate"] = {"name": name, "threshold": threshold}
        compile_on = False
    model.speed["compiled"] = compile_on
    if compile_on:
        model.speed["warm_up_seconds"] = 0.0


def _group(model: ScriptedModel, args) -> distributed.Group | None:
    """A parallel group's rank, checked as a real rank checks it (the flags, and that the group's size divides the
    attention heads); no rendezvous takes place: each scripted rank runs on its own."""
    if args.world_size is None and args.rank is None and args.dist_init is None:
        return None
    distributed.check_arguments(args.rank, args.world_size, args.dist_init)
    distributed.check_heads(ATTENTION_HEADS[(model.architecture, model.tiny)], args.world_size)
    cuda = model.device != "cpu"
    method = "none"
    if cuda:
        method = os.environ.get("REEL_CONTEXT_PARALLEL", "ulysses")
        if method not in ("ulysses", "ring"):
            raise distributed.GroupError(f"REEL_CONTEXT_PARALLEL must be ulysses or ring, not {method!r}")
    return distributed.Group(rank=args.rank, world_size=args.world_size, backend="nccl" if cuda else "gloo",
                             device=model.device, scratch=tempfile.mkdtemp(prefix=f"reel-rank{args.rank}-"),
                             sharded=cuda, method=method, staggered=args.model.startswith("tiny"))

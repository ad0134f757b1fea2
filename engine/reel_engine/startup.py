"""A real worker's start-up, between its command line and its `ready` event: the libraries configured, the parallel
group joined, the model loaded and placed (models.py), the speed options applied, and the `ready` fields; a failure
becomes the start's one `error` event."""

from __future__ import annotations

import gc
import importlib
import logging
import os
import sys
import time
from contextlib import contextmanager

from . import __version__

log = logging.getLogger("reel_engine.startup")


def start(args) -> tuple:
    """(model, group) for the worker's parsed command line (cli.parse_args); group is None for a worker of its own.
    Raises whatever makes the start fail (load_error turns it into the error event's code and message)."""
    group = None
    with collector_paused():
        configure_libraries()
        if args.world_size is not None or args.rank is not None or args.dist_init is not None:
            from . import distributed  # every rank joins before loading, so a missing rank fails fast

            group = distributed.join(args.rank, args.world_size, args.dist_init, args.device, args.model)
        import_model_classes()
    from .cli import comfy_files
    from .models import load_model

    model = load_model(args.model, args.device, args.data_dir, memory_saving=args.memory_saving,
                       text_device=args.text_device, memory_budget_gib=args.memory_budget, files=comfy_files(args))
    # The adapter slots before the parallel group's hooks (its output gather hooks proj_out, which must then be the
    # layer with its LoRA) and before compilation, which then compiles them in.
    from .lora_slots import install

    install(model, args.lora_slots, args.lora_max_rank, args.lora_cache_gib)
    if group is not None:  # before compilation: the compiled blocks must see the sharded attention
        distributed.attach(model, group)
    prepare_for_speed(model, args.compile, args.approximate)
    return model, group


@contextmanager
def collector_paused():
    """Runs the start up to the model load (the libraries' imports, and joining a parallel group) without the cyclic
    garbage collector, then freezes what it made.

    Importing torch, transformers and diffusers creates some 700,000 objects (modules, classes, functions) that live as
    long as the process. With the collector on, the imports trigger a thousand collections, the later ones walking
    that whole growing heap (over a second of a tiny worker's start); and every full collection afterwards (each
    failed job's clean-up, memory-saving jobs) would walk it again (0.3 to 0.7 s on the CPU). gc.freeze moves them to
    the permanent generation, which collections skip; the cycles among the imports' garbage (some 10 MB) are then
    never freed. The model is loaded after this, with the collector on as before, so no garbage of the load itself
    is kept."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def configure_libraries() -> None:
    """Sets the libraries' environment, imports them (import_libraries) and sets their logging."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models are local paths; never wait on the network
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import_libraries()
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_warning()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_warning()
    transformers.utils.logging.disable_progress_bar()


def import_libraries() -> None:
    """Imports torch, diffusers and transformers, transformers.models included (import_transformers_models)."""
    import diffusers  # noqa: F401 - and torch
    import transformers

    import_transformers_models(transformers)


def import_model_classes() -> None:
    """Imports the rest of what loading a model needs: diffusers' WanPipeline and WanImageToVideoPipeline with their
    components' classes and loaders, and models.py. The worker's start runs this and configure_libraries with the
    collector paused (collector_paused), after joining its parallel group if it has one."""
    from diffusers import WanImageToVideoPipeline, WanPipeline  # noqa: F401

    from . import models  # noqa: F401


def import_transformers_models(transformers) -> None:
    """Imports transformers.models without scanning its folder a second time.

    `import transformers` builds its lazy import structure by reading every file under transformers/models (some 560
    model folders, 3,000 files); importing transformers.models, which any model class needs, builds the same
    structure again from the same files (half a second of CPU): the cache both builds go through keeps 128 folders,
    so none of the first build's is left for the second. transformers.models is imported here with the structure
    the first build left (models_import_structure). Where transformers' code is not as expected this imports it as
    usual."""
    if "transformers.models" in sys.modules:
        return
    try:
        from transformers.utils import import_utils

        define = import_utils.define_import_structure
        init_file, structure = models_import_structure(transformers)
    except Exception:  # another transformers: nothing to reuse
        log.debug("transformers' import structure not reused", exc_info=True)
        importlib.import_module("transformers.models")
        return

    def define_import_structure(module_path, prefix=None):
        if prefix is None and str(module_path) == init_file:
            return structure
        return define(module_path, prefix)

    import_utils.define_import_structure = define_import_structure
    try:
        importlib.import_module("transformers.models")
    finally:
        import_utils.define_import_structure = define


def models_import_structure(transformers) -> tuple[str, dict]:
    """(the path of transformers/models/__init__.py, the import structure transformers.models is built from): the
    structure `import transformers` built of the models folder (define_import_structure caches it), whose module
    names are those of transformers.models prefixed with `models.`, without the prefix."""
    from pathlib import Path

    from transformers.utils import import_utils

    folder = Path(transformers.__file__).parent / "models"
    prefixed = import_utils.define_import_structure(folder, prefix="models")  # the call transformers/__init__ makes
    structure = {}
    for backends, modules in prefixed.items():
        # transformers/__init__.py adds its own top-level modules to this dict: those have no prefix.
        unprefixed = {name.removeprefix("models."): set(objects) for name, objects in modules.items()
                      if name.startswith("models.")}
        if unprefixed:
            structure[backends] = unprefixed
    return str(folder / "__init__.py"), structure


def prepare_for_speed(model, compile_mode: str = "auto", approximate: str | None = None) -> None:
    """On CUDA: picks the fastest attention kernel; compiles the transformer blocks and warms them up at the
    model's default size (compile "on" does it on the CPU too). Records what it did in `model.speed`."""
    from . import speed
    from .placement import JobShape

    d = model.defaults
    tokens = JobShape(d.width, d.height, d.frames, model.spatial_stride, model.temporal_stride).tokens
    if model.device.type == "cuda":
        model.speed.update(speed.select_attention(model, tokens))
        if not (model.memory_plan is not None and model.memory_plan.model_offload):
            model.speed["vae_warm_up_seconds"] = round(speed.warm_up_vae(model, d.width, d.height, d.frames), 2)
    compile_on = compile_mode == "on" or (compile_mode == "auto" and model.device.type == "cuda")
    if approximate:
        model.speed["approximate"] = speed.apply_approximate(model, approximate)
        compile_on = False  # the cache's hooks decide per step which blocks run: not one graph to compile
    model.speed["compiled"] = compile_on
    if compile_on:
        t0 = time.perf_counter()
        speed.compile_transformers(model)
        speed.warm_up(model, d.width, d.height, d.frames)
        model.speed["warm_up_seconds"] = round(time.perf_counter() - t0, 2)
        log.info("transformer blocks compiled and warmed up at %dx%dx%d in %.1fs", d.width, d.height, d.frames,
                 model.speed["warm_up_seconds"])
    # The negative prompt jobs share unless a style or the user sets one (empty) is encoded once, now.
    model.text.prepare([""])


def ready_fields(model) -> dict:
    """The `ready` event's fields for a loaded model (without a group's)."""
    from .devices import memory_info

    free, total = memory_info(model.device)
    return dict(
        device=str(model.device),
        model=model.name,
        architecture=model.architecture,
        dtype=model.dtype_name,
        free_memory_bytes=free,
        total_memory_bytes=total,
        fps=model.fps,
        spatial_stride=model.spatial_stride,
        temporal_stride=model.temporal_stride,
        image=model.image,
        last_image=model.last_image,
        engine_version=__version__,
        pid=os.getpid(),
        random_weights=model.random_weights,
        load_seconds=round(model.load_seconds, 3),
        defaults=model.defaults.to_json(),
        memory_saving=model.memory_saving,
        model_path=model.path,
        **({"model_files": model.files} if model.files is not None else {}),
        placement=model.memory_plan.to_json() | {"text_device": str(model.text_device or model.device),
                                                 "text_encoder": model.text.placement},
        speed=model.speed,
        lora_slots=model.lora_slots,
        lora_max_rank=model.lora_max_rank,
    )


def load_error(e: Exception) -> tuple[str, str]:
    """(code, message) of the `error` event for what made the start fail."""
    try:
        import torch

        oom = isinstance(e, (MemoryError, torch.cuda.OutOfMemoryError))
    except Exception:  # torch itself may be what failed to import
        oom = isinstance(e, MemoryError)
    if oom:
        return "out_of_memory", f"out of memory while loading the model: {e}"
    if type(e).__name__ == "ModelError":
        return "model_error", str(e)
    return "model_error", f"{type(e).__name__}: {e}"

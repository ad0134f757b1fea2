"""job.json: what was generated, how, with what software, and how long each stage took. Written atomically."""

from __future__ import annotations

import json
import os
import platform
from importlib import metadata as importlib_metadata

from . import __version__

METADATA_NAME = "job.json"
RANDOM_WEIGHTS_NOTE = "random-weight model: this video is noise, useful only for testing and timing"


def software_versions() -> dict:
    versions = {"engine": __version__, "python": platform.python_version()}
    for key, dist in (("torch", "torch"), ("diffusers", "diffusers"), ("transformers", "transformers"), ("av", "av")):
        try:
            versions[key] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            versions[key] = None
    return versions


def job_record(request, model, fps: int, frame_count: int, seconds: dict, peak_memory_bytes: int,
               source_fps: int | None = None, source_frames: int | None = None,
               interpolation_method: str | None = None, resumed_from_step: int | None = None,
               text_cache: dict | None = None, images: dict | None = None) -> dict:
    """The contents of job.json for a finished generate request on a loaded model. `frames` and `fps` are the
    delivered video's; `source_frames` and `source_fps` the generated ones (the same unless interpolated).
    `images` holds the request's images as images.load_request_images gives them: job.json records each one's
    SHA-256, source size (after EXIF orientation) and fit, or null."""
    from . import loras
    from .catalog import TWO_EXPERTS
    from .images import records

    record = {
        "job": request.job,
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "seed": request.seed,
        "width": request.width,
        "height": request.height,
        "frames": frame_count,
        "fps": fps,
        "source_frames": source_frames if source_frames is not None else frame_count,
        "source_fps": source_fps if source_fps is not None else fps,
        "interpolate": request.interpolate,
        "interpolation_method": interpolation_method,
        "steps": request.steps,
        "guidance": request.guidance,
    }
    if model.architecture in TWO_EXPERTS:
        record["guidance_2"] = request.guidance_2 if request.guidance_2 is not None else request.guidance
    record.update(records(images))
    record.update({
        "recipe": getattr(request, "recipe", None),
        # The LoRAs the job ran with (name, SHA-256, scale, expert), in request order.
        "loras": loras.record(getattr(request, "loras", ())),
        # The request's sampler (samplers.py), null for the model's own scheduler.
        "sampler": request.sampler.to_json() if getattr(request, "sampler", None) is not None else None,
    })
    record.update({
        "model": model.name,
        "model_path": model.path,
        **({"model_files": model.files} if getattr(model, "files", None) is not None else {}),
        "architecture": model.architecture,
        "random_weights": model.random_weights,
    })
    if model.random_weights:
        record["note"] = RANDOM_WEIGHTS_NOTE
    record.update({
        "device": str(model.device),
        "dtype": model.dtype_name,
        "memory_saving": bool(request.memory_saving or model.memory_saving),
        "checkpoint_every": request.checkpoint_every,
        "resumed_from_step": resumed_from_step,
        # Whether each text's embedding was reused (hit) or encoded for this job (miss).
        "text_embeddings": text_cache,
        # How the worker ran the model: exact speed-ups (attention kernel, compilation), where each component
        # lived, and approximate ones (none unless asked for).
        "execution": execution_record(model),
        "seconds": seconds,
        "peak_memory_bytes": peak_memory_bytes,
        "versions": software_versions(),
        "metadata": request.metadata if request.metadata is not None else {},
    })
    return record


def execution_record(model) -> dict:
    plan = getattr(model, "memory_plan", None)
    text = getattr(model, "text", None)
    speed = dict(getattr(model, "speed", None) or {})
    return {
        "attention_backend": speed.get("attention_backend", "default"),
        "compiled": bool(speed.get("compiled", False)),
        "placement": plan.to_json() if plan is not None else None,
        "text_encoder": getattr(text, "placement", None),
        "text_device": str(getattr(model, "text_device", None) or model.device),
        "approximate": speed.get("approximate"),
    }


def write_job_json(record: dict, out_dir: str) -> str:
    final = os.path.join(out_dir, METADATA_NAME)
    tmp = os.path.join(out_dir, f".{METADATA_NAME}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False, indent=2)
            f.write("\n")
        os.replace(tmp, final)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass  # never there, or its directory is gone: the error that stopped the write propagates
        raise
    return final

"""The worker protocol (version 1): typed requests parsed from stdin lines, and event constructors for stdout.

Pure Python on purpose: no torch, no I/O. See docs/worker-protocol.md for the contract this module implements.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from typing import Any

from . import PROTOCOL_VERSION

MAX_SEED = 2**63 - 1
MAX_STEPS = 1000  # the Wan schedulers have 1000 training timesteps
MAX_FPS = 240
CRASH_STAGES = ("text_encoding", "vae_decode", "interpolating", "encoding")
INTERPOLATE_FACTORS = (1, 2, 4)
FITS = ("cover", "contain", "stretch")  # images.py fits an image to the video's size as these say
SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
LORA_EXPERTS = ("high", "low", "both")  # the A14B models' high- and low-noise experts, or every transformer
MAX_LORA_SCALE = 10.0
SAMPLER_KINDS = ("step_distill", "flow_euler", "flow_unipc")
MAX_TIMESTEP = 1000  # the Wan models' num_train_timesteps: a step_distill denoising step is in [1, 1000]


class RequestError(Exception):
    """A request line that cannot be served; becomes an `error` event with code `bad_request`."""

    def __init__(self, message: str, job: str | None = None):
        super().__init__(message)
        self.message = message
        self.job = job


@dataclass(frozen=True)
class Limits:
    """What the loaded model accepts: sizes must be multiples of the strides; with `architecture`, images only where
    the catalog says the architecture takes them (catalog.IMAGE and LAST_IMAGE)."""

    spatial_stride: int
    temporal_stride: int = 4
    allow_faults: bool = False
    architecture: str | None = None  # None: any image is accepted (no model to check it against)
    lora_slots: int | None = None  # LoRA slots per expert (--lora-slots); None: not checked here


@dataclass(frozen=True)
class ImageRef:
    """An image file of a request (`image`, `last_image`): where it is and the SHA-256 its bytes must have. The
    job reads and checks it (images.py), not the parser."""

    path: str
    sha256: str  # 64 lowercase hex digits


@dataclass(frozen=True)
class LoRARef:
    """A LoRA of a request (`loras`): its file, the SHA-256 the file's bytes must have, the scale and the expert it
    lands on ("high", "low" or "both"). The job reads and checks the file (loras.py), not the parser."""

    name: str
    path: str
    sha256: str  # 64 lowercase hex digits
    scale: float = 1.0
    expert: str = "both"


@dataclass(frozen=True)
class SamplerSpec:
    """A request's `sampler`: a denoising schedule other than the model's own scheduler (samplers.py)."""

    kind: str  # "step_distill", "flow_euler" or "flow_unipc"
    shift: float
    denoising_steps: tuple[int, ...]  # empty for flow_unipc
    switch_step: int | None = None  # the first step of the low-noise expert, when by step (A14B)

    def to_json(self) -> dict:
        out = {"kind": self.kind, "shift": self.shift, "denoising_steps": list(self.denoising_steps)}
        if self.switch_step is not None:
            out["switch_step"] = self.switch_step
        return out


@dataclass(frozen=True)
class DebugHooks:
    """Test-only fault injection (only accepted when REEL_ENGINE_ALLOW_FAULTS=1)."""

    step_delay: float = 0.0
    encode_delay: float = 0.0
    crash_at_step: int | None = None
    crash_in: str | None = None
    hang_at_step: int | None = None
    oom_at_step: int | None = None
    # Honoured by the scripted worker only (scripted_jobs.py); the real worker accepts and ignores them.
    malformed_output: bool = False
    exit_at_step: int | None = None
    result_without_files: bool = False


@dataclass(frozen=True)
class GenerateRequest:
    job: str
    prompt: str
    negative_prompt: str
    width: int
    height: int
    frames: int
    steps: int
    guidance: float
    seed: int
    out_dir: str
    guidance_2: float | None = None
    png_frames: bool = False
    fps: int | None = None
    metadata: dict | None = None
    memory_saving: bool = False
    interpolate: int = 1
    checkpoint_every: int | None = None  # None: no checkpoints (absent, null or 0 in the request)
    debug: DebugHooks | None = None
    image: ImageRef | None = None  # the first frame (image-to-video)
    last_image: ImageRef | None = None  # the last frame (first-last-frame to video)
    fit: str = "cover"  # how an image is fitted to width x height: one of FITS
    loras: tuple[LoRARef, ...] = ()
    sampler: SamplerSpec | None = None  # None: the model's own scheduler
    recipe: str | None = None  # recorded only: the server resolved it into the fields above


@dataclass(frozen=True)
class CancelRequest:
    job: str


@dataclass(frozen=True)
class PingRequest:
    pass


@dataclass(frozen=True)
class ShutdownRequest:
    pass


@dataclass(frozen=True)
class PrepareRequest:
    """Encode these texts now, so a later generate that uses them skips text encoding. No reply."""

    prompt: str
    negative_prompt: str | None = None


Request = GenerateRequest | CancelRequest | PingRequest | ShutdownRequest | PrepareRequest


# ---------------------------------------------------------------------------------------------------------------
# Parsing


def parse_request(line: str | bytes, limits: Limits) -> Request:
    """Parses one stdin line into a typed request, or raises RequestError naming what is wrong."""
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError("request line is not valid UTF-8") from None
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, RecursionError) as e:
        raise RequestError(f"request line is not valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise RequestError(f"request must be a JSON object, got {_json_type(obj)}")
    job = obj.get("job") if isinstance(obj.get("job"), str) and obj.get("job") else None
    kind = obj.get("type")
    if "type" not in obj:
        raise RequestError("type: missing field", job)
    if kind == "generate":
        return _parse_generate(obj, limits, job)
    if kind == "cancel":
        return CancelRequest(job=_job_id(obj, job))
    if kind == "ping":
        return PingRequest()
    if kind == "shutdown":
        return ShutdownRequest()
    if kind == "prepare":
        f = _Fields(obj, job)
        prompt = f.string("prompt")
        if not prompt.strip():
            raise RequestError("prompt: must not be empty", job)
        return PrepareRequest(prompt=prompt, negative_prompt=f.string("negative_prompt", required=False))
    raise RequestError(
        f"type: unknown request type {json.dumps(kind, ensure_ascii=False)} "
        "(expected generate, prepare, cancel, ping or shutdown)",
        job,
    )


def _parse_generate(obj: dict, limits: Limits, job: str | None) -> GenerateRequest:
    f = _Fields(obj, job)
    job_id = _job_id(obj, job)
    prompt = f.string("prompt")
    if not prompt.strip():
        raise RequestError("prompt: must not be empty", job)
    negative_prompt = f.string("negative_prompt")
    width = f.integer("width", minimum=limits.spatial_stride)
    height = f.integer("height", minimum=limits.spatial_stride)
    for name, value in (("width", width), ("height", height)):
        if value % limits.spatial_stride:
            raise RequestError(
                f"{name}: {value} is not a multiple of this model's spatial stride {limits.spatial_stride}",
                job,
            )
    frames = f.integer("frames", minimum=1)
    if frames % limits.temporal_stride != 1:
        n = limits.temporal_stride
        raise RequestError(f"frames: {frames} is not of the form {n}n+1 (for example {frames // n * n + 1})", job)
    steps = f.integer("steps", minimum=1, maximum=MAX_STEPS)
    guidance = f.number("guidance")
    seed = f.integer("seed", minimum=0, maximum=MAX_SEED)
    out_dir = f.string("out_dir")
    if not out_dir or not os.path.isabs(out_dir):
        raise RequestError(f"out_dir: must be an absolute path, got {json.dumps(out_dir, ensure_ascii=False)}", job)
    guidance_2 = f.number("guidance_2", required=False)
    png_frames = f.boolean("png_frames", required=False, default=False)
    fps = f.integer("fps", required=False, minimum=1, maximum=MAX_FPS)
    metadata = f.object("metadata", required=False)
    memory_saving = f.boolean("memory_saving", required=False, default=False)
    interpolate = f.integer("interpolate", required=False)
    if interpolate is None:
        interpolate = 1
    elif interpolate not in INTERPOLATE_FACTORS:
        raise RequestError(f"interpolate: must be 1, 2 or 4, got {interpolate}", job)
    checkpoint_every = f.integer("checkpoint_every", required=False, minimum=0, maximum=MAX_STEPS) or None
    image = _parse_image(obj, "image", job)
    last_image = _parse_image(obj, "last_image", job)
    fit = f.string("fit", required=False)
    if fit is None:
        fit = FITS[0]
    elif fit not in FITS:
        raise RequestError(f"fit: must be cover, contain or stretch, got {json.dumps(fit, ensure_ascii=False)}", job)
    _check_images(limits, image, last_image, frames, job)
    loras = _parse_loras(obj, limits, job)
    sampler = _parse_sampler(obj, steps, job)
    recipe = f.string("recipe", required=False)
    debug = None
    if obj.get("debug") is not None:
        if not limits.allow_faults:
            raise RequestError("debug: fault injection is disabled (the worker needs REEL_ENGINE_ALLOW_FAULTS=1)", job)
        debug = _parse_debug(f.object("debug"), job)
    return GenerateRequest(
        job=job_id,
        prompt=prompt,
        negative_prompt=negative_prompt,
        width=width,
        height=height,
        frames=frames,
        steps=steps,
        guidance=guidance,
        seed=seed,
        out_dir=os.path.normpath(out_dir),
        guidance_2=guidance_2,
        png_frames=png_frames,
        fps=fps,
        metadata=metadata,
        memory_saving=memory_saving,
        interpolate=interpolate,
        checkpoint_every=checkpoint_every,
        debug=debug,
        image=image,
        last_image=last_image,
        fit=fit,
        loras=loras,
        sampler=sampler,
        recipe=recipe,
    )


def _parse_image(obj: dict, name: str, job: str | None) -> ImageRef | None:
    """`image` or `last_image`: null or absent, or {"path": "/absolute/path", "sha256": "<64 hex digits>"}."""
    value = _Fields(obj, job).object(name, required=False)
    if value is None:
        return None
    f = _Fields(value, job, prefix=f"{name}.")
    path = f.string("path")
    if not path or not os.path.isabs(path):
        raise RequestError(f"{name}.path: must be an absolute path, got {json.dumps(path, ensure_ascii=False)}", job)
    sha256 = f.string("sha256")
    if not SHA256_HEX.fullmatch(sha256):
        raise RequestError(f"{name}.sha256: must be 64 hexadecimal digits, got "
                           f"{json.dumps(sha256, ensure_ascii=False)}", job)
    return ImageRef(path=os.path.normpath(path), sha256=sha256.lower())


def _check_images(limits: Limits, image: ImageRef | None, last_image: ImageRef | None, frames: int,
                  job: str | None) -> None:
    """Refuses images the model does not take, a missing image it needs, and a last frame it cannot place."""
    if limits.architecture is not None:
        from .catalog import image_refusal  # torch-free: the catalog's JSON

        for name, value in (("image", image), ("last_image", last_image)):
            refusal = image_refusal(name, limits.architecture, value is not None)
            if refusal is not None:
                raise RequestError(refusal, job)
    if last_image is not None and image is None:
        raise RequestError("last_image: needs an image too (the first frame)", job)
    if last_image is not None and frames < 2:
        raise RequestError(f"last_image: a video with a last frame needs more than 1 frame, got frames {frames}", job)


def _parse_loras(obj: dict, limits: Limits, job: str | None) -> tuple[LoRARef, ...]:
    """`loras`: null, absent or a list of {"name", "path", "sha256", "scale" (default 1), "expert" (default both)}.
    "high" and "low" only on a two-expert model; at most `limits.lora_slots` land on one expert; one LoRA (SHA-256)
    at most once on an expert."""
    value = obj.get("loras")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise RequestError(f"loras: expected an array, got {_json_type(value)}", job)
    refs = []
    for i, item in enumerate(value):
        where = f"loras[{i}]"
        if not isinstance(item, dict):
            raise RequestError(f"{where}: expected an object, got {_json_type(item)}", job)
        f = _Fields(item, job, prefix=f"{where}.")
        name = f.string("name")
        if not name.strip():
            raise RequestError(f"{where}.name: must not be empty", job)
        path = f.string("path")
        if not path or not os.path.isabs(path):
            raise RequestError(f"{where}.path: must be an absolute path, got {json.dumps(path, ensure_ascii=False)}",
                               job)
        sha256 = f.string("sha256")
        if not SHA256_HEX.fullmatch(sha256):
            raise RequestError(f"{where}.sha256: must be 64 hexadecimal digits, got "
                               f"{json.dumps(sha256, ensure_ascii=False)}", job)
        scale = f.number("scale", required=False)
        scale = 1.0 if scale is None else scale
        if abs(scale) > MAX_LORA_SCALE:
            raise RequestError(f"{where}.scale: {scale} is outside -{MAX_LORA_SCALE:g} … {MAX_LORA_SCALE:g}", job)
        expert = f.string("expert", required=False) or "both"
        if expert not in LORA_EXPERTS:
            raise RequestError(f"{where}.expert: must be high, low or both, got "
                               f"{json.dumps(expert, ensure_ascii=False)}", job)
        refs.append(LoRARef(name=name, path=os.path.normpath(path), sha256=sha256.lower(), scale=scale,
                            expert=expert))
    _check_loras(limits, refs, job)
    return tuple(refs)


def _check_loras(limits: Limits, refs: list[LoRARef], job: str | None) -> None:
    if not refs:
        return
    experts = ("high", "low")
    if limits.architecture is not None:
        from .catalog import TWO_EXPERTS  # torch-free: the catalog's JSON

        if limits.architecture not in TWO_EXPERTS:
            experts = ("high",)
            for i, ref in enumerate(refs):
                if ref.expert != "both":
                    raise RequestError(f"loras[{i}].expert: {limits.architecture} models have one transformer: use "
                                       f"\"both\", not \"{ref.expert}\" (high and low name the A14B models' experts)",
                                       job)
    if limits.lora_slots == 0:
        raise RequestError("loras: this worker has no LoRA slots (it was started with --lora-slots 0)", job)
    nouns = {"high": "the high-noise expert", "low": "the low-noise expert"} if len(experts) == 2 else {
        "high": "the transformer"}
    for expert in experts:
        landing = [i for i, ref in enumerate(refs) if ref.expert in (expert, "both")]
        if limits.lora_slots is not None and len(landing) > limits.lora_slots:
            raise RequestError(f"loras: {len(landing)} LoRAs land on {nouns[expert]}, but this worker has "
                               f"{limits.lora_slots} LoRA slots per expert (--lora-slots)", job)
        seen: dict[str, int] = {}
        for i in landing:
            first = seen.setdefault(refs[i].sha256, i)
            if first != i:
                raise RequestError(f"loras[{i}]: the LoRA of loras[{first}] (SHA-256 {refs[i].sha256}) is already on "
                                   f"{nouns[expert]}", job)


def _parse_sampler(obj: dict, steps: int, job: str | None) -> SamplerSpec | None:
    """`sampler`: null, absent or {"kind": "step_distill" | "flow_euler", "shift": number > 0, "denoising_steps":
    [strictly decreasing integers in 1 … 1000], one per step, "switch_step": optional integer in 1 … steps-1}, or
    {"kind": "flow_unipc", "shift", "denoising_steps": [], "switch_step"}."""
    value = _Fields(obj, job).object("sampler", required=False)
    if value is None:
        return None
    f = _Fields(value, job, prefix="sampler.")
    kind = f.string("kind")
    if kind not in SAMPLER_KINDS:
        raise RequestError(f"sampler.kind: must be one of {', '.join(SAMPLER_KINDS)}, got "
                           f"{json.dumps(kind, ensure_ascii=False)}", job)
    shift = f.number("shift")
    if not shift > 0:
        raise RequestError(f"sampler.shift: must be above 0, got {shift}", job)
    switch_step = value.get("switch_step")
    if switch_step is not None and (isinstance(switch_step, bool) or not isinstance(switch_step, int)
                                    or not 1 <= switch_step < steps):
        raise RequestError(f"sampler.switch_step: expected an integer in 1 … {steps - 1}, got "
                           f"{json.dumps(switch_step)}", job)
    if kind == "flow_unipc":
        if value.get("denoising_steps") not in (None, []):
            raise RequestError("sampler.denoising_steps: flow_unipc takes the model's own timesteps; give []", job)
        return SamplerSpec(kind=kind, shift=shift, denoising_steps=(), switch_step=switch_step)
    listed = value.get("denoising_steps")
    if not isinstance(listed, list) or not listed:
        state = "missing field" if "denoising_steps" not in value else "expected a non-empty array of integers"
        raise RequestError(f"sampler.denoising_steps: {state}", job)
    denoising = []
    for i, t in enumerate(listed):
        if isinstance(t, float) and t.is_integer():
            t = int(t)
        if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= MAX_TIMESTEP:
            raise RequestError(f"sampler.denoising_steps[{i}]: expected an integer in 1 … {MAX_TIMESTEP}, got "
                               f"{json.dumps(t)}", job)
        if denoising and t >= denoising[-1]:
            raise RequestError(f"sampler.denoising_steps[{i}]: {t} is not below {denoising[-1]} (the steps must "
                               f"strictly decrease)", job)
        denoising.append(t)
    if len(denoising) != steps:
        raise RequestError(f"sampler.denoising_steps: {len(denoising)} entries, but steps is {steps} (one entry "
                           f"per step)", job)
    return SamplerSpec(kind=kind, shift=shift, denoising_steps=tuple(denoising), switch_step=switch_step)


def _parse_debug(obj: dict, job: str | None) -> DebugHooks:
    f = _Fields(obj, job, prefix="debug.")
    step_delay = f.number("step_delay", required=False, minimum=0.0)
    encode_delay = f.number("encode_delay", required=False, minimum=0.0)
    crash_in = f.string("crash_in", required=False)
    if crash_in is not None and crash_in not in CRASH_STAGES:
        raise RequestError(f"debug.crash_in: must be one of {', '.join(CRASH_STAGES)}", job)
    return DebugHooks(
        step_delay=step_delay or 0.0,
        encode_delay=encode_delay or 0.0,
        crash_at_step=f.integer("crash_at_step", required=False, minimum=1),
        crash_in=crash_in,
        hang_at_step=f.integer("hang_at_step", required=False, minimum=1),
        oom_at_step=f.integer("oom_at_step", required=False, minimum=1),
        malformed_output=f.boolean("malformed_output", required=False, default=False),
        exit_at_step=f.integer("exit_at_step", required=False, minimum=1),
        result_without_files=f.boolean("result_without_files", required=False, default=False),
    )


def _job_id(obj: dict, job: str | None) -> str:
    if "job" not in obj or obj["job"] is None:
        raise RequestError("job: missing field", None)
    if job is None:
        raise RequestError("job: must be a non-empty string", None)
    return job


class _Fields:
    """Typed field access that raises RequestError naming the field. A null optional field counts as absent."""

    def __init__(self, obj: dict, job: str | None, prefix: str = ""):
        self.obj, self.job, self.prefix = obj, job, prefix

    def _get(self, name: str, required: bool) -> Any:
        value = self.obj.get(name)
        if value is None and required:
            state = "missing field" if name not in self.obj else "must not be null"
            raise RequestError(f"{self.prefix}{name}: {state}", self.job)
        return value

    def _fail(self, name: str, expected: str, value: Any) -> RequestError:
        return RequestError(f"{self.prefix}{name}: expected {expected}, got {_json_type(value)}", self.job)

    def string(self, name: str, required: bool = True) -> Any:
        value = self._get(name, required)
        if value is not None and not isinstance(value, str):
            raise self._fail(name, "a string", value)
        return value

    def boolean(self, name: str, required: bool = True, default: bool = False) -> bool:
        value = self._get(name, required)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._fail(name, "true or false", value)
        return value

    def integer(self, name: str, required: bool = True, minimum: int | None = None, maximum: int | None = None):
        value = self._get(name, required)
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(name, "an integer", value)
        if minimum is not None and value < minimum:
            raise RequestError(f"{self.prefix}{name}: {value} is below the minimum {minimum}", self.job)
        if maximum is not None and value > maximum:
            raise RequestError(f"{self.prefix}{name}: {value} is above the maximum {maximum}", self.job)
        return value

    def number(self, name: str, required: bool = True, minimum: float | None = None):
        value = self._get(name, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._fail(name, "a number", value)
        value = float(value)
        if not math.isfinite(value):
            raise RequestError(f"{self.prefix}{name}: must be finite", self.job)
        if minimum is not None and value < minimum:
            raise RequestError(f"{self.prefix}{name}: {value} is below the minimum {minimum}", self.job)
        return value

    def object(self, name: str, required: bool = True):
        value = self._get(name, required)
        if value is not None and not isinstance(value, dict):
            raise self._fail(name, "an object", value)
        return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


# ---------------------------------------------------------------------------------------------------------------
# Events


def encode_event(event: dict) -> bytes:
    """One event as one UTF-8 line. NaN/inf are not JSON, so they are refused rather than written."""
    return (json.dumps(event, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")


def ready_event(**fields: Any) -> dict:
    return {"event": "ready", "protocol": PROTOCOL_VERSION, **fields}


def progress_event(job: str, stage: str, step: int, total: int) -> dict:
    return {"event": "progress", "job": job, "stage": stage, "step": step, "total": total}


def result_event(job: str, outputs: dict, seconds: dict, peak_memory_bytes: int) -> dict:
    return {"event": "result", "job": job, "outputs": outputs, "seconds": seconds,
            "peak_memory_bytes": peak_memory_bytes}


def resumed_event(job: str, step: int, total: int) -> dict:
    return {"event": "resumed", "job": job, "step": step, "total": total}


def checkpoint_rejected_event(job: str, reason: str) -> dict:
    return {"event": "checkpoint_rejected", "job": job, "reason": reason}


def error_event(job: str | None, code: str, message: str) -> dict:
    return {"event": "error", "job": job, "code": code, "message": message}


def pong_event() -> dict:
    return {"event": "pong"}

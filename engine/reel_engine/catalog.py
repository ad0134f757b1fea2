"""The model catalog without torch: which model names exist, their architectures, recommended request values,
frame rates and strides, size presets, which architectures take a first (and a last) frame image, where tiny models
are cached, and the check that a directory is a complete diffusers-format Wan2.2 model. models.py loads what this
describes; the scripted worker (scripted_worker.py) reports it without loading anything, so both workers describe a
model name the same way.

The values come from catalog.json beside this file, the one source that Reel's Swift side is generated from too
(scripts/embed-catalog.py writes Sources/ReelCore/ModelCatalog.generated.swift).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources

TI2V = "ti2v-5b"
A14B = "t2v-a14b"
I2V = "i2v-a14b"
IMAGE_MODES = ("none", "optional", "required")


def _read_catalog() -> dict:
    data = json.loads(resources.files(__package__).joinpath("catalog.json").read_text(encoding="utf-8"))
    names = tuple(a["name"] for a in data["architectures"])
    if names != (TI2V, A14B, I2V):  # the code below (and models.py) branches on these names
        raise RuntimeError(f"catalog.json lists the architectures {names}, expected {(TI2V, A14B, I2V)}")
    for a in data["architectures"]:
        if a.get("image") not in IMAGE_MODES or not isinstance(a.get("last_image"), bool):
            raise RuntimeError(f"catalog.json: architecture {a['name']} needs image (one of {', '.join(IMAGE_MODES)}) "
                               f"and last_image (true or false)")
    return data


CATALOG = _read_catalog()
_ARCH = {a["name"]: a for a in CATALOG["architectures"]}
ARCHITECTURES = tuple(_ARCH)
REPOS = {name: a["repo"] for name, a in _ARCH.items()}
FPS = {name: a["fps"] for name, a in _ARCH.items()}
# (spatial, temporal) pixels per latent token: the VAE's scale factors times the transformer's patch size (1, 2, 2).
# The tiny models have the same strides as the full-size ones (tests/test_models.py checks both against this).
STRIDES = {name: (a["spatial_stride"], a["temporal_stride"]) for name, a in _ARCH.items()}
# Named sizes per architecture, as (name, width, height): `720p` instead of `1280x704`.
PRESETS = {name: tuple((p["name"], p["width"], p["height"]) for p in a["presets"]) for name, a in _ARCH.items()}
# Whether a job gives a first-frame image: "none" (text-to-video only), "optional" or "required"; and whether it may
# also give a last frame (first-last-frame to video).
IMAGE = {name: a["image"] for name, a in _ARCH.items()}
LAST_IMAGE = {name: a["last_image"] for name, a in _ARCH.items()}
# The diffusers pipeline class of each architecture's directories (model_index.json's `_class_name`).
PIPELINE_CLASSES = {TI2V: "WanPipeline", A14B: "WanPipeline", I2V: "WanImageToVideoPipeline"}
# The two-expert (A14B) architectures: a low-noise expert with a guidance of its own (`guidance_2`).
TWO_EXPERTS = tuple(name for name, a in _ARCH.items() if a["defaults"].get("guidance_2") is not None)
MODEL_NAMES = tuple(m["name"] for m in CATALOG["models"])  # the built-in ones; any other name is a directory
TINY_NAMES = {m["name"]: m["architecture"] for m in CATALOG["models"] if m["kind"] == "tiny"}
RANDOM_NAMES = {m["name"]: m["architecture"] for m in CATALOG["models"] if m["kind"] == "random"}


def _listed(kind: str) -> str:
    """The models of a kind for a message, an alias beside the name it stands for: `tiny (= tiny:ti2v-5b), … and …`."""
    models = [m for m in CATALOG["models"] if m["kind"] == kind]
    aliases = {m["alias_of"]: m["name"] for m in models if m.get("alias_of")}
    named = [f"{aliases[m['name']]} (= {m['name']})" if m["name"] in aliases else m["name"]
             for m in models if not m.get("alias_of")]
    return ", ".join(named[:-1]) + " and " + named[-1] if len(named) > 1 else "".join(named)


class ModelError(Exception):
    """The model cannot be loaded; the message says what is missing and what to do."""


@dataclass(frozen=True)
class Defaults:
    """The request values a client should use when the user gives none."""

    width: int
    height: int
    frames: int
    steps: int
    guidance: float
    guidance_2: float | None = None

    @classmethod
    def from_json(cls, d: dict) -> Defaults:
        return cls(d["width"], d["height"], d["frames"], d["steps"], float(d["guidance"]),
                   float(d["guidance_2"]) if d.get("guidance_2") is not None else None)

    def to_json(self) -> dict:
        d = {"width": self.width, "height": self.height, "frames": self.frames, "steps": self.steps,
             "guidance": self.guidance}
        if self.guidance_2 is not None:
            d["guidance_2"] = self.guidance_2
        return d


DEFAULTS = {name: Defaults.from_json(a["defaults"]) for name, a in _ARCH.items()}
TINY_DEFAULTS = {name: Defaults.from_json(a["tiny_defaults"]) for name, a in _ARCH.items()}


@dataclass(frozen=True)
class ModelName:
    """What a `--model` value names: a tiny cached model, a full-size random one, or a directory."""

    kind: str  # "tiny" | "random" | "directory" | "comfyui" (a ComfyUI models/ folder, comfy_files.py)
    architecture: str | None  # None for a directory until it is inspected
    path: str | None = None  # the directory's absolute path

    @property
    def random_weights(self) -> bool:
        return self.kind in ("tiny", "random")


def parse_model_name(name: str) -> ModelName:
    """Classifies a `--model` value; raises ModelError for an unknown tiny or random model."""
    if name in TINY_NAMES:
        return ModelName("tiny", TINY_NAMES[name])
    if name in RANDOM_NAMES:
        return ModelName("random", RANDOM_NAMES[name])
    if name.startswith("random:"):
        raise ModelError(f"unknown model {name!r}; random models are {_listed('random')}")
    if name.startswith("tiny:"):
        raise ModelError(f"unknown model {name!r}; tiny models are {_listed('tiny')}")
    if name.startswith("comfyui:"):
        folder = name[len("comfyui:"):]
        if not folder:
            raise ModelError("comfyui: needs a folder: comfyui:DIR, DIR a ComfyUI models/ folder or one that has it")
        return ModelName("comfyui", None, os.path.abspath(os.path.expanduser(folder)))
    return ModelName("directory", None, os.path.abspath(os.path.expanduser(name)))


def models_of(architectures) -> str:
    """The built-in models of some architectures for a message: `tiny:ti2v-5b, random:ti2v-5b`."""
    return ", ".join(m["name"] for m in CATALOG["models"]
                     if m["architecture"] in architectures and not m.get("alias_of"))


def image_refusal(field: str, architecture: str, given: bool) -> str | None:
    """Why a request that gives (`given`) or leaves out `field` (`image` or `last_image`) cannot run on this
    architecture, or None if it can. The message names the field and the architectures, built-in models and
    repositories that take it:
    `image: t2v-a14b models take no image; ti2v-5b and i2v-a14b models take one (tiny:ti2v-5b, …)`."""
    if field == "image":
        mode = IMAGE[architecture]
        if not given:
            needed = f"image: missing field: {architecture} models need a first-frame image"
            return needed if mode == "required" else None
        if mode != "none":
            return None
        takers, what = [name for name in ARCHITECTURES if IMAGE[name] != "none"], "image"
    else:
        if not given or LAST_IMAGE[architecture]:
            return None
        takers, what = [name for name in ARCHITECTURES if LAST_IMAGE[name]], "last frame image"
    repos = " or ".join(REPOS[t] for t in takers)
    return (f"{field}: {architecture} models take no {what}; {' and '.join(takers)} models take one "
            f"({models_of(takers)}, or a {repos} directory)")


def model_defaults(kind: str, architecture: str) -> Defaults:
    return TINY_DEFAULTS[architecture] if kind == "tiny" else DEFAULTS[architecture]


def default_data_dir() -> str:
    return os.environ.get("REEL_DATA_DIR") or os.path.join(os.path.expanduser("~"), ".local", "share", "reel")


def tiny_dir(data_dir: str, architecture: str) -> str:
    return os.path.join(data_dir, "models", f"tiny-{architecture}")


# ---------------------------------------------------------------------------------------------------------------
# Directories


def _weights_present(folder: str, component: str, repo_hint: str) -> None:
    """Raises ModelError unless `folder` holds a config and complete weights (every shard of a sharded index)."""
    names = set(os.listdir(folder))
    if "config.json" not in names:
        raise ModelError(f"component '{component}' is incomplete: {component}/config.json is missing. {repo_hint}")
    indexes = [n for n in names if n.endswith(".index.json")]
    for index in indexes:
        try:
            with open(os.path.join(folder, index), encoding="utf-8") as f:
                shards = sorted(set(json.load(f).get("weight_map", {}).values()))
        except (OSError, ValueError) as e:
            raise ModelError(f"component '{component}': cannot read {component}/{index} ({e}). {repo_hint}") from None
        missing = [s for s in shards if s not in names]
        if missing:
            raise ModelError(f"component '{component}' is incomplete: {len(missing)} of {len(shards)} weight "
                             f"shards are missing (first: {component}/{missing[0]}). {repo_hint}")
    if not any(n.endswith((".safetensors", ".bin")) for n in names):
        raise ModelError(f"component '{component}' has no weights (no .safetensors or .bin file in {component}/). "
                         f"{repo_hint}")


def inspect_model_dir(path: str) -> str:
    """Checks that `path` is a complete diffusers-format Wan2.2 directory; returns its architecture."""
    any_hint = (f"Download {REPOS[TI2V]}, {REPOS[A14B]} or {REPOS[I2V]} (for example `hf download {REPOS[TI2V]} "
                f"--local-dir DIR`).")
    if not os.path.isdir(path):
        raise ModelError(f"model directory {path} does not exist. {any_hint}")
    index_path = os.path.join(path, "model_index.json")
    if not os.path.isfile(index_path):
        raise ModelError(f"{path} is not a diffusers model directory: model_index.json is missing. {any_hint}")
    try:
        with open(index_path, encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read {index_path}: {e}. {any_hint}") from None
    class_name = index.get("_class_name")
    if class_name not in PIPELINE_CLASSES.values():
        raise ModelError(f"{path} holds a {class_name!r}, not a WanPipeline or WanImageToVideoPipeline; Reel runs "
                         f"Wan2.2 TI2V-5B, T2V-A14B and I2V-A14B. {any_hint}")

    def present(name: str) -> bool:
        entry = index.get(name)
        return isinstance(entry, list) and len(entry) == 2 and entry[0] is not None

    two_experts = present("transformer_2") or index.get("boundary_ratio") is not None
    if class_name == PIPELINE_CLASSES[I2V]:
        # Wan2.1's I2V and FLF2V models are WanImageToVideoPipelines too, with one transformer and a CLIP image
        # encoder; Wan2.2-I2V-A14B has two experts and no image encoder.
        if not two_experts or present("image_encoder"):
            raise ModelError(f"{path} is a WanImageToVideoPipeline but not Wan2.2 I2V-A14B (transformer_2 + "
                             f"boundary_ratio, no image_encoder); Reel runs only that one. {any_hint}")
        architecture = I2V
    elif two_experts:
        architecture = A14B
    elif index.get("expand_timesteps"):
        architecture = TI2V
    else:
        raise ModelError(f"{path} is a Wan pipeline but neither Wan2.2 TI2V-5B (expand_timesteps) nor T2V-A14B "
                         f"(transformer_2 + boundary_ratio); Reel runs only those. {any_hint}")
    repo = REPOS[architecture]
    hint = f"Download {repo} again (for example `hf download {repo} --local-dir {path}`)."
    required = ["tokenizer", "text_encoder", "vae", "scheduler", "transformer"]
    if architecture in TWO_EXPERTS:
        required.append("transformer_2")
    for component in required:
        folder = os.path.join(path, component)
        if not present(component):
            raise ModelError(f"model_index.json of {path} lists no '{component}' component. {hint}")
        if not os.path.isdir(folder):
            raise ModelError(f"model directory {path} is missing the '{component}' component ({component}/). {hint}")
        if component == "scheduler":
            if not os.path.isfile(os.path.join(folder, "scheduler_config.json")):
                raise ModelError(f"component 'scheduler' is incomplete: scheduler/scheduler_config.json is "
                                 f"missing. {hint}")
        elif component == "tokenizer":
            files = set(os.listdir(folder))
            if not files & {"tokenizer.json", "spiece.model", "tokenizer_config.json"}:
                raise ModelError(f"component 'tokenizer' is incomplete: no tokenizer.json, spiece.model or "
                                 f"tokenizer_config.json in tokenizer/. {hint}")
        else:
            _weights_present(folder, component, hint)
    return architecture

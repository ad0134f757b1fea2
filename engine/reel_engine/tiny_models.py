"""The tiny models' cache: created once under DATA_DIR/models (built with random weights, saved with
save_pretrained into a temporary directory renamed into place), then loaded back like a real directory."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid

import torch

from .building import build_pipeline
from .catalog import tiny_dir

log = logging.getLogger("reel_engine.tiny_models")

# Bump when the tiny recipe changes: a cached tiny model with another version is rebuilt.
TINY_RECIPE_VERSION = 1
TINY_MARKER = "reel-tiny.json"


def _tiny_is_complete(path: str) -> bool:
    try:
        with open(os.path.join(path, TINY_MARKER), encoding="utf-8") as f:
            return json.load(f).get("recipe") == TINY_RECIPE_VERSION
    except (OSError, ValueError):
        return False


def ensure_tiny(data_dir: str, architecture: str) -> tuple[str, bool]:
    """Returns (path, created). Creation writes into a temporary directory that is renamed into place, so two
    workers racing never see (or leave) a half-written model; the loser discards its copy."""
    final = tiny_dir(data_dir, architecture)
    if _tiny_is_complete(final):
        return final, False
    parent = os.path.dirname(final)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".tiny-{architecture}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    t0 = time.perf_counter()
    try:
        pipe = build_pipeline(architecture, tiny=True, device=torch.device("cpu"), dtype=torch.float32)
        pipe.save_pretrained(tmp, safe_serialization=True)
        with open(os.path.join(tmp, TINY_MARKER), "w", encoding="utf-8") as f:
            json.dump({"recipe": TINY_RECIPE_VERSION, "architecture": architecture,
                       "note": "random weights: Reel's tiny test model; its videos are noise"}, f)
        if os.path.exists(final) and not _tiny_is_complete(final):
            stale = f"{final}.stale-{uuid.uuid4().hex[:8]}"
            try:
                os.rename(final, stale)
                shutil.rmtree(stale, ignore_errors=True)
            except OSError:
                pass  # another worker moved it first
        try:
            os.rename(tmp, final)
        except OSError:
            if not _tiny_is_complete(final):
                raise
            return final, False  # another worker finished first; its copy is identical
        log.info("created tiny model %s in %.2fs", final, time.perf_counter() - t0)
        return final, True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

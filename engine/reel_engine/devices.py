"""The worker's devices: a `--device` value resolved to a torch device that exists, and a device's free and total
memory (host memory for the CPU)."""

from __future__ import annotations

import torch

from .catalog import ModelError


def resolve_device(spec: str) -> torch.device:
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ModelError(f"device {spec}: CUDA is not available to this torch build or machine")
        device = torch.device(spec)
        index = device.index if device.index is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise ModelError(f"device {spec}: only {torch.cuda.device_count()} CUDA device(s) are visible")
        return torch.device("cuda", index)
    raise ModelError(f"device {spec!r}: expected cpu, cuda or cuda:N")


def memory_info(device: torch.device) -> tuple[int, int]:
    """(free, total) bytes of the device, host memory for cpu."""
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return int(free), int(total)
    from .placement import host_memory

    return host_memory()

"""The approximate speed-ups a worker can be started with (`--approximate NAME[:THRESHOLD]`): their names, default
thresholds and the parsing of the flag. Torch-free, so both workers check the flag the same way before anything
loads; speed.py applies them."""

from __future__ import annotations

APPROXIMATE = {"first-block-cache": 0.05}  # name -> default threshold


def parse_approximate(spec: str) -> tuple[str, float]:
    """`first-block-cache` or `first-block-cache:0.08` -> (name, threshold); ValueError naming what is wrong."""
    name, _, value = spec.partition(":")
    if name not in APPROXIMATE:
        raise ValueError(f"--approximate {spec!r}: unknown; the approximate speed-ups are {', '.join(APPROXIMATE)}")
    try:
        threshold = float(value) if value else APPROXIMATE[name]
    except ValueError:
        raise ValueError(f"--approximate {spec!r}: {value!r} is not a number") from None
    if not 0 < threshold < 1:
        raise ValueError(f"--approximate {spec!r}: the threshold must be between 0 and 1, got {threshold}")
    return name, threshold

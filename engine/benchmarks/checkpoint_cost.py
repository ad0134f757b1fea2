"""What checkpointing costs the denoising loop, and whether a resumed run is exact on this device.

    python engine/benchmarks/checkpoint_cost.py --model random:ti2v-5b --device cuda \
        --width 1280 --height 704 --frames 121 --steps 6

Runs the loop (no VAE decode) alternately without checkpoints and with checkpoint_every=1, and prints the median
time per denoising step of each, the time each save spends on the loop's thread (the device-to-host copies) and on
the writer thread (serialise, SHA-256, write, fsync, rename), and the file size. With --exact it also decodes a small
video twice, once uninterrupted and once resumed from a step-2 checkpoint, and compares the frames.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np

from reel_engine import checkpoint, pipeline
from reel_engine.models import load_model

PROMPT, NEGATIVE = "a red fox walks through snow", "blurry"


def loop_only(model, size, steps, ckpt):
    """Per-step seconds of one run of the denoising loop (steps 2..N), stopped before the VAE decode."""
    stamps = []

    def progress(stage, step, total):
        if stage == "denoising" or (stage == "text_encoding" and step == 1):
            stamps.append(time.perf_counter())

    try:
        pipeline.generate(model, prompt=PROMPT, negative_prompt=NEGATIVE, steps=steps, guidance=5.0, seed=1,
                          progress=progress, cancelled=lambda: len(stamps) == steps + 1, checkpoint=ckpt, **size)
    except pipeline.Cancelled:
        pass
    return [b - a for a, b in zip(stamps[1:], stamps[2:], strict=False)]


def identity(model, size, steps):
    return checkpoint.identity(model, prompt=PROMPT, negative_prompt=NEGATIVE, steps=steps, guidance=5.0,
                               guidance_2=None, seed=1, **size)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="tiny")
    p.add_argument("--device", default="cpu")
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--exact", action="store_true", help="also check a resumed run's frames (small size, 4 steps)")
    p.add_argument("--dir", default=None, help="where to write checkpoints (default: a temporary directory)")
    args = p.parse_args()

    t0 = time.perf_counter()
    model = load_model(args.model, args.device)
    print(f"{args.model} on {model.device} ({model.dtype_name}) loaded in {time.perf_counter() - t0:.1f}s",
          flush=True)
    out = args.dir or tempfile.mkdtemp(prefix="reel-ckpt-bench-")
    size = dict(width=args.width, height=args.height, frames=args.frames)
    loop_only(model, size, 2, None)  # warm-up
    plain, saving, snap, write, nbytes = [], [], [], [], 0
    for _ in range(args.rounds):
        plain += loop_only(model, size, args.steps, None)
        ckpt = checkpoint.Checkpointer(out, identity(model, size, args.steps), every=1)
        saving += loop_only(model, size, args.steps, ckpt)
        snap.append(ckpt.snapshot_seconds / ckpt.saves)
        write.append(ckpt.write_seconds / ckpt.saves)
        nbytes = os.path.getsize(ckpt.path)
        ckpt.discard()
    a, b = statistics.median(plain), statistics.median(saving)
    print(f"{args.width}x{args.height}x{args.frames}, {args.steps} steps x {args.rounds} rounds: "
          f"median step {a:.3f}s without checkpoints, {b:.3f}s with checkpoint_every=1 ({100 * (b - a) / a:+.1f}%); "
          f"per save {1000 * statistics.median(snap):.1f} ms on the loop thread, "
          f"{1000 * statistics.median(write):.0f} ms on the writer thread; file {nbytes / 1e6:.1f} MB", flush=True)
    print(f"  steps without: {[round(s, 3) for s in plain]}\n  steps with:    {[round(s, 3) for s in saving]}")

    if args.exact:
        small = dict(width=256, height=256, frames=17)

        def run(ckpt=None, stop_after=None):
            done = []

            def progress(stage, step, total):
                if stage == "denoising":
                    done.append(step)

            stop = (lambda: bool(done) and done[-1] == stop_after) if stop_after else (lambda: False)
            return pipeline.generate(model, prompt=PROMPT, negative_prompt=NEGATIVE, steps=4, guidance=5.0, seed=1,
                                     progress=progress, cancelled=stop, checkpoint=ckpt, output="float", **small)

        reference = run().video
        ident = identity(model, small, 4)
        shape = pipeline.latent_shape(model, **small)
        try:
            run(checkpoint.Checkpointer(out, ident, every=1), stop_after=2)
        except pipeline.Cancelled:
            pass
        ckpt = checkpoint.open_for_job(out, ident, shape, None)
        assert ckpt.resume is not None and ckpt.resume.step == 2
        resumed = run(ckpt).video
        ckpt.discard()
        same = np.array_equal(resumed, reference)
        print(f"exactness on {model.device}: resumed-from-step-2 frames {'EQUAL' if same else 'DIFFER'} "
              f"(max abs diff {np.abs(resumed - reference).max():.3g})", flush=True)


if __name__ == "__main__":
    main()

"""Image-to-video on one GPU: seconds per stage and peak memory of jobs sent straight to one engine worker.

    python bench/image_to_video.py --model random:ti2v-5b --size 1280x704 --frames 121 --steps 8 \
        --cases text,image --out bench-out
    python bench/image_to_video.py --model random:i2v-a14b --size 1280x720 --frames 81 --steps 4 \
        --cases image,first-last --out bench-out

One worker (`python -m reel_engine.worker`, so the engine alone, no `reel`) runs the cases one after another with
the same prompt, seed and steps: `text` (no image), `image` (a first frame) and `first-last` (a first and a last
frame, I2V-A14B only). The pictures are 1920x1080 PNGs this script draws (smooth colour fields with a few shapes),
fitted with `cover`. Each case's seconds per stage are the engine's own, from its `result` event (CUDA synchronised
at stage boundaries); peak memory is the event's `peak_memory_bytes`. Writes OUT/i2v-MODEL.json and prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

import numpy as np


def picture(path: str, seed: int) -> dict:
    """A 1920x1080 PNG of smooth colour and a few discs, and its request field."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:1080, 0:1920].astype(np.float32)
    channels = [127 + 100 * np.sin(x / rng.uniform(150, 400) + rng.uniform(0, 6)) * np.cos(y / rng.uniform(150, 400))
                for _ in range(3)]
    image = Image.fromarray(np.stack(channels, axis=-1).clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        cx, cy, r = rng.integers(200, 1700), rng.integers(150, 900), rng.integers(40, 160)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    image.save(path)
    with open(path, "rb") as f:
        return {"path": os.path.abspath(path), "sha256": hashlib.sha256(f.read()).hexdigest()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random:ti2v-5b")
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--size", default="1280x704")
    parser.add_argument("--frames", type=int, default=121)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--guidance", type=float, default=5.0)
    parser.add_argument("--cases", default="text,image")
    parser.add_argument("--out", default="bench-out")
    parser.add_argument("--jobs-dir", default="/tmp/i2v-jobs", help="where the videos go (only job.json is copied to --out)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    os.makedirs(args.out, exist_ok=True)
    first = picture(os.path.join(args.out, "first.png"), 1)
    last = picture(os.path.join(args.out, "last.png"), 2)
    cases = args.cases.split(",")

    started = time.perf_counter()
    worker = subprocess.Popen(
        [sys.executable, "-m", "reel_engine.worker", "--model", args.model, "--device", args.device,
         "--data-dir", os.path.join(args.jobs_dir, "data")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    ready = None
    results = {}
    pending = list(cases)

    def send(case: str) -> None:
        request = {
            "type": "generate", "job": case, "prompt": "a ceramic lamp turning slowly on a wooden table, soft light",
            "negative_prompt": "blurry, low quality", "width": width, "height": height, "frames": args.frames,
            "steps": args.steps, "guidance": args.guidance, "seed": 7,
            "out_dir": os.path.abspath(os.path.join(args.jobs_dir, args.model.replace(":", "-"), case)),
        }
        if case in ("image", "first-last"):
            request["image"], request["fit"] = first, "cover"
        if case == "first-last":
            request["last_image"] = last
        worker.stdin.write((json.dumps(request) + "\n").encode())
        worker.stdin.flush()

    for line in worker.stdout:
        event = json.loads(line)
        kind = event.get("event")
        if kind == "ready":
            ready = {"seconds_to_ready": round(time.perf_counter() - started, 2), "load_seconds": event.get("load_seconds"),
                     "dtype": event.get("dtype"), "device": event.get("device")}
            print(f"ready after {ready['seconds_to_ready']} s", file=sys.stderr, flush=True)
            send(pending.pop(0))
        elif kind == "progress" and event.get("stage") != "denoising":
            print(f"{time.perf_counter() - started:7.1f}s {event['job']} {event['stage']} {event['step']}/{event['total']}",
                  file=sys.stderr, flush=True)
        elif kind in ("result", "error"):
            if event.get("job") is None:
                print(json.dumps(event), file=sys.stderr)
                break
            results[event["job"]] = event
            if kind == "result":
                with open(event["outputs"]["metadata"]) as f:
                    job = json.load(f)
                with open(os.path.join(args.out, f"{args.model.replace(':', '-')}-{event['job']}-job.json"), "w") as f:
                    json.dump(job, f, indent=2)
            print(json.dumps(event)[:400], file=sys.stderr, flush=True)
            if pending:
                send(pending.pop(0))
            else:
                worker.stdin.close()
                break
    worker.wait(timeout=120)

    import torch  # for the record only: the versions the worker ran with
    report = {"model": args.model, "size": args.size, "frames": args.frames, "steps": args.steps,
              "guidance": args.guidance, "seed": 7, "ready": ready,
              "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu", "torch": torch.__version__,
              "cases": {}}
    for case in cases:
        event = results.get(case, {})
        if event.get("event") != "result":
            report["cases"][case] = {"error": event}
            continue
        report["cases"][case] = {"seconds": event["seconds"], "peak_memory_bytes": event.get("peak_memory_bytes"),
                                 "frames": event["outputs"]["frame_count"],
                                 "size": f"{event['outputs']['width']}x{event['outputs']['height']}"}
    name = args.model.replace(":", "-")
    with open(os.path.join(args.out, f"i2v-{name}.json"), "w") as f:
        json.dump(report, f, indent=2)
    print("| model | case | size × frames | steps | text enc. | image enc. | denoising | s/step | VAE decode | "
          "H.264 | total | peak GPU memory |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for case, row in report["cases"].items():
        if "error" in row:
            print(f"| `{args.model}` | {case} | error: {json.dumps(row['error'])[:200]} |")
            continue
        s = row["seconds"]
        print(f"| `{args.model}` | {case} | {row['size']} × {row['frames']} | {args.steps} | "
              f"{s.get('text_encoding', 0):.2f} s | {s.get('image_encoding', 0):.2f} s | {s['denoising']:.2f} s | "
              f"{s['denoising'] / args.steps:.2f} s | {s['vae_decode']:.2f} s | {s['encoding']:.2f} s | "
              f"{s['total']:.2f} s | {(row['peak_memory_bytes'] or 0) / 1e9:.1f} GB |")
    return 0 if all("error" not in row for row in report["cases"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())

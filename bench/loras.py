"""LoRAs on one GPU: seconds per video of the 4-step recipe with a random LoRA pair, what a LoRA switch costs, and
what the adapter slots cost a job that uses none.

    python bench/loras.py --model random:t2v-a14b --label t2v --cases lightning,switches --out bench-out
    python bench/loras.py --model random:t2v-a14b --label slots --cases base --compare-slots 0,2 --out bench-out
    python bench/loras.py --model random:i2v-a14b --label i2v --cases lightning --out bench-out

The LoRA files are written here first, in the kohya layout the lightx2v files have (`diffusion_model.blocks.N.…
.lora_down/.lora_up/.alpha` on every attention and feed-forward layer of every block, bfloat16, seeded normal
values), one for each expert at `--rank` (64, the rank of the lightx2v 4-step LoRAs) and a style LoRA at half that.
Every job is sent straight to one engine worker (`python -m reel_engine.worker`, the engine alone), with the same
prompt, seed and size per case:

- `lightning`: the pair (high@high, low@low) with the recipe's values: 4 steps, guidance 1, the step-distill sampler
  (shift 5, [1000, 750, 500, 250]), at `--size` × `--frames`;
- `base`: the same without LoRAs (the slots hold zeros);
- `switches`: five small jobs (`--switch-size`, 5 frames, 1 step) whose `seconds.lora_switch` is what each switch
  took: to the empty set, to the pair (converted plans in the worker's host cache), to pair + style (the style file
  read, hashed and converted), back to the pair (cached), and the pair again (already in the slots).

With `--compare-slots A,B`, the cases run on a worker with `--lora-slots A`, then on one with `--lora-slots B` (one
after the other, same GPU), and the report gives B's denoising seconds over A's. Seconds are the engine's own, from
its `result` event; peak memory is the event's `peak_memory_bytes`. Writes OUT/loras-LABEL.json and prints a
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

PROMPT = "a lighthouse on a cliff at dusk, waves breaking below, slow aerial orbit"
NEGATIVE = "blurry, low quality"
SEED = 11


def write_lora(path: str, dim: int, ffn: int, blocks: int, rank: int, seed: int) -> dict:
    """A kohya-layout LoRA of every attention and feed-forward layer, bfloat16, and its request fields."""
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    layers = {f"{attn}.{x}": (dim, dim) for attn in ("self_attn", "cross_attn") for x in "qkvo"}
    layers.update({"ffn.0": (ffn, dim), "ffn.2": (dim, ffn)})
    for block in range(blocks):
        for layer, (out_features, in_features) in layers.items():
            name = f"diffusion_model.blocks.{block}.{layer}"
            down = torch.randn(rank, in_features, generator=generator) / in_features ** 0.5
            up = torch.randn(out_features, rank, generator=generator) * 1e-3
            tensors[name + ".lora_down.weight"] = down.to(torch.bfloat16)
            tensors[name + ".lora_up.weight"] = up.to(torch.bfloat16)
            tensors[name + ".alpha"] = torch.tensor(float(rank))
    save_file(tensors, path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            digest.update(chunk)
    return {"name": os.path.basename(path).removesuffix(".safetensors"), "path": os.path.abspath(path),
            "sha256": digest.hexdigest(), "bytes": os.path.getsize(path)}


def shape_of(model: str) -> tuple[int, int, int]:
    """The transformer's width, feed-forward width and blocks, from the engine's catalog."""
    with open(os.path.join(os.path.dirname(__file__), "..", "engine", "reel_engine", "catalog.json")) as f:
        catalog = json.load(f)
    kind, _, architecture = model.partition(":")
    entry = next(a for a in catalog["architectures"] if a["name"] == architecture)
    shape = entry["tiny_transformer" if kind == "tiny" else "transformer"]
    return shape["dim"], shape["ffn_dim"], shape["blocks"]


def run_worker(args, slots: int, jobs: list[dict]) -> tuple[dict, dict]:
    """Starts a worker with `slots` adapter slots, runs `jobs` one after another; its ready fields and results."""
    started = time.perf_counter()
    worker = subprocess.Popen(
        [sys.executable, "-m", "reel_engine.worker", "--model", args.model, "--device", args.device,
         "--data-dir", os.path.join(args.jobs_dir, "data"), "--lora-slots", str(slots),
         "--lora-max-rank", str(args.rank)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    ready, results, pending = None, {}, list(jobs)

    def send() -> None:
        worker.stdin.write((json.dumps(pending.pop(0)) + "\n").encode())
        worker.stdin.flush()

    for line in worker.stdout:
        event = json.loads(line)
        kind = event.get("event")
        if kind == "ready":
            ready = {"seconds_to_ready": round(time.perf_counter() - started, 2),
                     "lora_slots": event.get("lora_slots"), "lora_max_rank": event.get("lora_max_rank"),
                     "device": event.get("device"), "dtype": event.get("dtype")}
            print(f"slots {slots}: ready after {ready['seconds_to_ready']} s", file=sys.stderr, flush=True)
            send()
        elif kind in ("result", "error"):
            if event.get("job") is None:
                print(json.dumps(event), file=sys.stderr)
                break
            results[event["job"]] = event
            print(json.dumps(event)[:300], file=sys.stderr, flush=True)
            if pending:
                send()
            else:
                worker.stdin.close()
                break
    worker.wait(timeout=180)
    return ready or {}, results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random:t2v-a14b")
    parser.add_argument("--label", default="t2v")
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--switch-size", default="480x272")
    parser.add_argument("--rank", type=int, default=64)
    parser.add_argument("--cases", default="lightning,switches")
    parser.add_argument("--compare-slots", default="", help="A,B: run the cases with --lora-slots A, then B")
    parser.add_argument("--out", default="bench-out")
    parser.add_argument("--jobs-dir", default="/tmp/lora-jobs")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.jobs_dir, exist_ok=True)
    dim, ffn, blocks = shape_of(args.model)
    t0 = time.perf_counter()
    library = os.path.join(args.jobs_dir, "loras")
    os.makedirs(library, exist_ok=True)
    high = write_lora(os.path.join(library, "lightning_high.safetensors"), dim, ffn, blocks, args.rank, 1)
    low = write_lora(os.path.join(library, "lightning_low.safetensors"), dim, ffn, blocks, args.rank, 2)
    style = write_lora(os.path.join(library, "style.safetensors"), dim, ffn, blocks, max(1, args.rank // 2), 3)
    print(f"wrote the LoRA files in {time.perf_counter() - t0:.1f} s ({high['bytes'] / 1e9:.2f} GB each)",
          file=sys.stderr, flush=True)

    image = None
    if "i2v" in args.model:
        sys.path.insert(0, os.path.dirname(__file__))
        from image_to_video import picture
        image = picture(os.path.join(args.out, "first.png"), 1)

    def lora(entry: dict, expert: str, scale: float = 1.0) -> dict:
        return {"name": entry["name"], "path": entry["path"], "sha256": entry["sha256"], "scale": scale,
                "expert": expert}

    pair = [lora(high, "high"), lora(low, "low")]
    recipe = {"steps": 4, "guidance": 1.0, "guidance_2": 1.0,
              "sampler": {"kind": "step_distill", "shift": 5.0, "denoising_steps": [1000, 750, 500, 250]}}

    def job(name: str, size: str, frames: int, loras: list, **extra) -> dict:
        width, height = (int(v) for v in size.split("x"))
        request = {"type": "generate", "job": name, "prompt": PROMPT, "negative_prompt": NEGATIVE, "width": width,
                   "height": height, "frames": frames, "seed": SEED, "loras": loras,
                   "out_dir": os.path.abspath(os.path.join(args.jobs_dir, args.label, name)), **recipe, **extra}
        if image:
            request["image"], request["fit"] = image, "cover"
        return request

    jobs = []
    for case in args.cases.split(","):
        if case == "lightning":
            jobs.append(job("lightning", args.size, args.frames, pair, recipe="lightning-4step"))
        elif case == "base":
            jobs.append(job("base", args.size, args.frames, []))
        elif case == "switches":
            small = dict(steps=1, sampler={"kind": "step_distill", "shift": 5.0, "denoising_steps": [1000]})
            jobs += [job("switch-empty", args.switch_size, 5, [], **small),
                     job("switch-pair", args.switch_size, 5, pair, **small),
                     job("switch-style", args.switch_size, 5, pair + [lora(style, "both", 0.8)], **small),
                     job("switch-pair-again", args.switch_size, 5, pair, **small),
                     job("switch-same", args.switch_size, 5, pair, **small)]
        else:
            raise SystemExit(f"unknown case {case!r}")

    import torch  # for the record only

    runs = {}
    slot_counts = [int(v) for v in args.compare_slots.split(",")] if args.compare_slots else [2]
    for slots in slot_counts:
        usable = [j for j in jobs if slots > 0 or not j["loras"]]
        ready, results = run_worker(args, slots, json.loads(json.dumps(usable)))
        runs[str(slots)] = {"ready": ready, "cases": {
            name: ({"seconds": e["seconds"], "peak_memory_bytes": e.get("peak_memory_bytes"),
                    "frames": e["outputs"]["frame_count"], "size": f"{e['outputs']['width']}x{e['outputs']['height']}"}
                   if e.get("event") == "result" else {"error": e})
            for name, e in results.items()}}
    report = {"model": args.model, "label": args.label, "size": args.size, "frames": args.frames, "rank": args.rank,
              "seed": SEED, "lora_bytes": high["bytes"], "gpu": torch.cuda.get_device_name(0)
              if torch.cuda.is_available() else "cpu", "torch": torch.__version__, "runs": runs}
    if len(slot_counts) == 2:
        a, b = (runs[str(s)]["cases"] for s in slot_counts)
        report["ratios"] = {name: round(b[name]["seconds"]["denoising"] / a[name]["seconds"]["denoising"], 4)
                            for name in a if name in b and "seconds" in a[name] and "seconds" in b[name]}
    with open(os.path.join(args.out, f"loras-{args.label}.json"), "w") as f:
        json.dump(report, f, indent=2)

    print("| model | slots | case | size × frames | steps | LoRA load | LoRA switch | text enc. | denoising | s/step | "
          "VAE decode | total | peak GPU memory |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    failed = False
    for slots, run in runs.items():
        for name, row in run["cases"].items():
            if "error" in row:
                failed = True
                print(f"| `{args.model}` | {slots} | {name} | error: {json.dumps(row['error'])[:200]} |")
                continue
            s = row["seconds"]
            steps = 1 if name.startswith("switch") else 4
            print(f"| `{args.model}` | {slots} | {name} | {row['size']} × {row['frames']} | {steps} | "
                  f"{s.get('lora_load', 0):.3f} s | {s.get('lora_switch', 0):.3f} s | {s.get('text_encoding', 0):.2f} s | {s['denoising']:.2f} s | "
                  f"{s['denoising'] / steps:.2f} s | {s['vae_decode']:.2f} s | {s['total']:.2f} s | "
                  f"{(row['peak_memory_bytes'] or 0) / 1e9:.1f} GB |")
    for name, ratio in report.get("ratios", {}).items():
        print(f"\n{name}: denoising with {slot_counts[1]} slots / {slot_counts[0]} slots = {ratio}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

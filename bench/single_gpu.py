"""Reel against the plain diffusers loop on one CUDA GPU: same jobs, same seeds, same weights, one after the other.

    python bench/single_gpu.py --steps 50 --videos 2 --out bench-out [--parts ceilings,baseline,reel,budget]

Parts (each writes PART.json into --out; `report` turns them into a Markdown section):
- ceilings: bf16 GEMM and attention throughput measured now, on this GPU, and the FLOP floor of one TI2V-5B
  forward at the job size computed from them (the formula of ../shared/PERF.md).
- baseline: what a diffusers user writes. `WanPipeline` loaded once (here the full-size TI2V-5B with Reel's seeded
  random weights, bf16, built by reel_engine.models.build_pipeline because no real weights can be downloaded),
  called per prompt with a CPU generator seeded per job, then the frames written as H.264 with PyAV at Reel's
  settings (libx264, crf 18, preset medium, yuv420p). Nothing else: no compilation, the default attention kernel,
  the negative prompt encoded again for every video, encoding on the loop's thread.
- reel: `reel serve` with one worker on the GPU, the same jobs submitted at once through the REST API, waited for
  through it; per-stage seconds and the timeline come from each job's job.json.
- budget: the same through `reel serve --memory-budget GIB`.
- two-replicas (not in the default set): the same through `reel serve --devices cuda:0,cuda:0`, two workers sharing
  one GPU, against `reel` to show whether one job already saturates the GPU.

The math is the same in both: the same weights, dtypes (bf16 everywhere, the VAE included), scheduler, seeds and
number of forwards; Reel's speed-ups are exact ones (kernel choice, compilation, caching, overlap).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "engine"))

WIDTH, HEIGHT, FRAMES, FPS = 1280, 704, 121, 24
GUIDANCE = 5.0
NEGATIVE = "blurry, low quality, distorted"
PROMPTS = [
    "A red fox trotting through fresh snow at dawn, soft golden light",
    "A paper boat drifting down a rain-soaked city street, reflections of neon signs",
    "An old lighthouse on a cliff during a storm, waves crashing below",
    "A hummingbird hovering over a bright orange flower, slow motion",
]
# TI2V-5B: width 3072, FFN 14336, 30 layers, 512 text tokens (../shared/PERF.md).
D, F, LAYERS, TEXT_TOKENS = 3072, 14336, 30, 512


def jobs(n: int) -> list[dict]:
    return [{"prompt": PROMPTS[i % len(PROMPTS)], "seed": 1000 + i} for i in range(n)]


def tokens() -> int:
    return ((FRAMES - 1) // 4 + 1) * (HEIGHT // 32) * (WIDTH // 32)


def forward_flops(length: int) -> tuple[float, float]:
    """(linear, attention) FLOPs of one TI2V-5B forward over `length` video tokens."""
    linear = LAYERS * (2 * length * (4 * D * D + 2 * D * D + 2 * D * F) + 2 * TEXT_TOKENS * 2 * D * D)
    attention = LAYERS * (4 * length * length * D + 4 * length * TEXT_TOKENS * D)
    return linear, attention


def environment() -> dict:
    import torch

    info = {"date": time.strftime("%Y-%m-%d"), "python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.version.cuda}
    for name in ("diffusers", "transformers", "av"):
        try:
            info[name] = __import__(name).__version__
        except ImportError:
            info[name] = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = props.name
        info["gpu_memory_gib"] = round(props.total_memory / (1 << 30), 1)
    return info


# ---------------------------------------------------------------------------------------------------------------
# ceilings


def cuda_time(fn, repeats: int = 5, warmup: int = 2) -> float:
    from reel_engine.speed import cuda_seconds

    return cuda_seconds(fn, repeats=repeats, warmup=warmup)


def part_ceilings(args) -> dict:
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    gemm = 2 * n**3 / cuda_time(lambda: a @ b)
    del a, b
    length = tokens()
    q, k, v = (torch.randn(1, 24, length, 128, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    attention = {}
    for name, backend in (("cudnn", SDPBackend.CUDNN_ATTENTION), ("flash", SDPBackend.FLASH_ATTENTION),
                          ("efficient", SDPBackend.EFFICIENT_ATTENTION)):
        try:
            with sdpa_kernel([backend]):
                seconds = cuda_time(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v))
            attention[name] = 4 * length * length * 128 * 24 / seconds
        except RuntimeError as e:
            attention[name] = None
            print(f"attention {name}: unavailable ({str(e).splitlines()[0][:120]})", file=sys.stderr)
    best = max(x for x in attention.values() if x)
    linear, attn = forward_flops(length)
    floor = linear / gemm + attn / best
    return {"gemm_tflops": gemm / 1e12, "attention_tflops": {k: (x / 1e12 if x else None) for k, x in attention.items()},
            "tokens": length, "linear_pflop": linear / 1e15, "attention_pflop": attn / 1e15,
            "floor_seconds_per_forward": floor}


def part_forward(args) -> dict:
    """Seconds per TI2V-5B transformer forward at the job size, one change at a time: eager with PyTorch's default
    attention kernel (what the plain loop runs), eager with the kernel Reel picks, and compiled with it."""
    import torch

    from reel_engine import models, speed

    model = models.load_model("random:ti2v-5b", "cuda:0")
    transformer = model.pipe.transformer
    latent_frames = (FRAMES - 1) // 4 + 1
    hidden = torch.randn(1, 48, latent_frames, HEIGHT // 16, WIDTH // 16, device="cuda", dtype=torch.bfloat16)
    text = torch.randn(1, 512, 4096, device="cuda", dtype=torch.bfloat16)
    timestep = torch.full((1, tokens()), 999.0, device="cuda")

    def forward():
        with torch.no_grad():
            transformer(hidden_states=hidden, timestep=timestep, encoder_hidden_states=text, return_dict=False)

    result = {"eager_default_attention": cuda_time(forward, repeats=3)}
    chosen = speed.select_attention(model, tokens())
    result["attention_backend"] = chosen["attention_backend"]
    result["eager_chosen_attention"] = cuda_time(forward, repeats=3)
    t0 = time.perf_counter()
    speed.compile_transformers(model)
    forward()
    result["compile_seconds"] = time.perf_counter() - t0
    result["compiled_chosen_attention"] = cuda_time(forward, repeats=3)
    result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / (1 << 30)
    del hidden, text
    # The VAE decode of one video, with cuDNN's default convolution algorithms and with the ones it times.
    vae = model.pipe.vae
    z = torch.randn(1, 48, latent_frames, HEIGHT // 16, WIDTH // 16, device="cuda", dtype=vae.dtype)

    def decode():
        with torch.no_grad():
            vae.decode(z, return_dict=False)

    torch.backends.cudnn.benchmark = False
    result["vae_decode_default"] = cuda_time(decode, repeats=1, warmup=1)
    speed.warm_up_vae(model, WIDTH, HEIGHT, FRAMES)
    result["vae_decode_benchmarked"] = cuda_time(decode, repeats=1, warmup=0)
    del model, transformer, vae, z
    torch.cuda.empty_cache()
    return result


# ---------------------------------------------------------------------------------------------------------------
# baseline


def write_mp4(frames, path: str, fps: int) -> None:
    from fractions import Fraction

    import av

    with av.open(path, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps, 1))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "18", "preset": "medium"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def part_baseline(args) -> dict:
    import numpy as np
    import torch

    from reel_engine import models

    t0 = time.perf_counter()
    pipe = models.build_pipeline(models.TI2V, tiny=False, device=torch.device("cuda"), dtype=torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    torch.cuda.synchronize()
    load = time.perf_counter() - t0
    out = os.path.join(args.out, "baseline-videos")
    os.makedirs(out, exist_ok=True)
    torch.cuda.reset_peak_memory_stats()
    per_video = []
    started = time.perf_counter()
    for i, job in enumerate(jobs(args.videos)):
        v0 = time.perf_counter()
        frames = pipe(prompt=job["prompt"], negative_prompt=NEGATIVE, height=HEIGHT, width=WIDTH, num_frames=FRAMES,
                      num_inference_steps=args.steps, guidance_scale=GUIDANCE, output_type="np",
                      generator=torch.Generator("cpu").manual_seed(job["seed"])).frames[0]
        frames = (np.clip(frames, 0, 1) * 255).round().astype(np.uint8)
        v1 = time.perf_counter()
        write_mp4(frames, os.path.join(out, f"video-{i}.mp4"), FPS)
        v2 = time.perf_counter()
        per_video.append({"generate": v1 - v0, "encode": v2 - v1, "total": v2 - v0})
        print(f"baseline video {i}: {v2 - v0:.1f} s (generate {v1 - v0:.1f}, encode {v2 - v1:.1f})", file=sys.stderr)
    wall = time.perf_counter() - started
    return {"load_seconds": load, "wall_seconds": wall, "videos": args.videos, "steps": args.steps,
            "videos_per_hour": 3600 * args.videos / wall, "per_video": per_video,
            "peak_memory_gib": torch.cuda.max_memory_allocated() / (1 << 30),
            # The GPU waits while the loop encodes the MP4 on the CPU.
            "gpu_idle_between_jobs_seconds": sum(v["encode"] for v in per_video[:-1]) / max(1, len(per_video) - 1)}


# ---------------------------------------------------------------------------------------------------------------
# reel serve


def http(method: str, url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def part_reel(args, budget_gib: float | None = None, videos: int | None = None, devices: str | None = None,
              name: str = "reel") -> dict:
    videos = videos or args.videos
    port = 8700 + {"reel": 0, "budget": 1, "two-replicas": 2}.get(name, 3)
    base = f"http://127.0.0.1:{port}"
    data_dir = os.path.join(args.out, f"{name}-data")
    command = [args.reel, "serve", "--model", args.model, "--devices", devices or args.devices, "--port", str(port),
               "--data-dir", data_dir, "--startup-timeout", "1200", "--stall-timeout", "900"]
    if budget_gib:
        command += ["--memory-budget", str(budget_gib)]
    log = open(os.path.join(args.out, f"{name}-serve.log"), "w")
    t0 = time.perf_counter()
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        ready_at = None
        while time.perf_counter() - t0 < 1200:
            if server.poll() is not None:
                raise RuntimeError(f"reel serve exited with {server.returncode}; see its log")
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=5) as response:
                    if response.status == 200:
                        ready_at = time.perf_counter()
                        break
            except Exception:
                pass
            try:  # a worker that failed to start will not become ready: stop waiting
                for worker in http("GET", base + "/v1/workers").get("data", []):
                    if worker.get("last_error"):
                        raise RuntimeError(f"worker {worker.get('slot')}: {worker['last_error']}")
            except (OSError, ValueError):
                pass
            time.sleep(1)
        if ready_at is None:
            raise RuntimeError("reel serve never became ready")
        workers = http("GET", base + "/v1/workers")
        started = time.perf_counter()
        ids = []
        for job in jobs(videos):
            spec = {"prompt": job["prompt"], "negative_prompt": NEGATIVE, "size": f"{WIDTH}x{HEIGHT}",
                    "frames": FRAMES, "steps": args.steps, "guidance": GUIDANCE, "seed": job["seed"]}
            ids.append(http("POST", base + "/v1/jobs", spec)["id"])
        finished = {}
        while len(finished) < len(ids):
            for job_id in ids:
                if job_id in finished:
                    continue
                job = http("GET", f"{base}/v1/jobs/{job_id}")
                if job["state"] in ("succeeded", "failed", "cancelled"):
                    finished[job_id] = (time.perf_counter(), job)
            time.sleep(0.5)
        wall = max(t for t, _ in finished.values()) - started
        records = []
        for job_id in ids:
            _, job = finished[job_id]
            if job["state"] != "succeeded":
                raise RuntimeError(f"job {job_id} {job['state']}: {job.get('error')}")
            # job.json in the job's directory under the server's data directory, on this same machine.
            with open(os.path.join(data_dir, "outputs", job_id, "job.json"), encoding="utf-8") as f:
                records.append(json.load(f))
        records.sort(key=lambda r: r["timeline"]["started"])
        # The device's idle time between one worker's jobs; with several workers their jobs overlap instead.
        idle = [] if name == "two-replicas" else [
            b["timeline"]["started"] - a["timeline"]["device_done"] for a, b in zip(records, records[1:])]
        return {"startup_seconds": ready_at - t0, "wall_seconds": wall, "videos": videos, "steps": args.steps,
                "videos_per_hour": 3600 * videos / wall, "budget_gib": budget_gib,
                "per_video": [r["seconds"] for r in records], "execution": records[0]["execution"],
                "text_embeddings": [r["text_embeddings"] for r in records],
                "peak_memory_gib": max(r["peak_memory_bytes"] for r in records) / (1 << 30),
                "gpu_idle_between_jobs_seconds": sum(idle) / len(idle) if idle else None, "workers": workers}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


# ---------------------------------------------------------------------------------------------------------------
# report


def seconds_per_forward(run: dict) -> float:
    """A served run's mean denoising seconds per transformer forward (two per step: classifier-free guidance)."""
    denoising = [v["denoising"] for v in run["per_video"]]
    return sum(denoising) / len(denoising) / (2 * run["steps"])


def report(out: str) -> str:
    def load(name):
        path = os.path.join(out, f"{name}.json")
        return json.load(open(path)) if os.path.exists(path) else None

    env, ceilings, forward, baseline, reel, budget, two = (
        load(n) for n in ("environment", "ceilings", "forward", "baseline", "reel", "budget", "two-replicas"))
    title = "Reel against a plain diffusers loop" if baseline else "Reel layouts"
    lines = [f"## {title} on one GPU ({env['date']})", "",
             f"`bench/single_gpu.py`: {env.get('gpu')} ({env.get('gpu_memory_gib')} GiB), torch {env['torch']} "
             f"(CUDA {env['cuda']}), diffusers {env['diffusers']}, transformers {env['transformers']}, PyAV "
             f"{env['av']}. `random:ti2v-5b` (full-size random weights, bf16), {WIDTH}x{HEIGHT}, {FRAMES} frames, "
             f"CFG {GUIDANCE}, the same prompts and seeds in every run.", ""]
    budget_label = f"reel serve --memory-budget {budget['budget_gib']:g}" if budget else ""
    rows = [("plain diffusers loop", baseline), ("reel serve", reel), (budget_label, budget),
            ("reel serve, two replicas on one GPU", two)]
    lines += ["| run | steps | videos | videos/hour | s/video | s per forward | GPU idle between jobs | peak memory |",
              "|---|---|---|---|---|---|---|---|"]
    for name, run in rows:
        if run is None:
            continue
        per_forward = None if run is baseline else seconds_per_forward(run)
        idle = run.get("gpu_idle_between_jobs_seconds")
        lines.append(f"| {name} | {run['steps']} | {run['videos']} | {run['videos_per_hour']:.1f} | "
                     f"{run['wall_seconds'] / run['videos']:.1f} | "
                     f"{'' if per_forward is None else f'{per_forward:.3f} s'} | "
                     f"{'' if idle is None else f'{idle:.2f} s'} | {run['peak_memory_gib']:.1f} GiB |")
    lines.append("")
    if baseline and reel:
        lines.append(f"Reel / plain loop, videos per hour: **{reel['videos_per_hour'] / baseline['videos_per_hour']:.2f}x**.")
    if budget and reel:
        lines.append(f"Under a {budget['budget_gib']:g} GiB budget: {budget['videos_per_hour'] / reel['videos_per_hour']:.2f}x "
                     f"the unconstrained Reel's videos per hour ({budget['execution']['placement']['tier']}).")
    if two and reel:
        lines.append(f"Two replicas sharing one GPU: {two['videos_per_hour'] / reel['videos_per_hour']:.2f}x one "
                     f"worker's videos per hour.")
    if ceilings:
        lines += ["", f"Ceilings measured in this run: bf16 GEMM {ceilings['gemm_tflops']:.0f} TFLOP/s; attention "
                  + ", ".join(f"{k} {v:.0f}" for k, v in ceilings['attention_tflops'].items() if v)
                  + f" TFLOP/s at {ceilings['tokens']} tokens. Floor of one forward: "
                  f"{ceilings['floor_seconds_per_forward']:.3f} s."]
        if reel:
            per_forward = seconds_per_forward(reel)
            lines.append(f"Reel's denoising per forward (scheduler step included): {per_forward:.3f} s = "
                         f"{per_forward / ceilings['floor_seconds_per_forward']:.2f}x the floor.")
    if forward and ceilings:
        floor = ceilings["floor_seconds_per_forward"]
        lines += ["", "One transformer forward at the job size (CUDA events, median of 3):", "",
                  "| forward | seconds | x floor |", "|---|---|---|"]
        for key, label in (("eager_default_attention", "eager, PyTorch's default attention kernel"),
                           ("eager_chosen_attention", f"eager, {forward['attention_backend']} attention (Reel's pick)"),
                           ("compiled_chosen_attention", f"regional compile + {forward['attention_backend']}")):
            lines.append(f"| {label} | {forward[key]:.3f} | {forward[key] / floor:.2f} |")
        lines.append(f"| floor (GEMM and attention ceilings of this run) | {floor:.3f} | 1.00 |")
        lines.append("")
        lines.append(f"VAE decode of one video: {forward['vae_decode_default']:.2f} s with cuDNN's default convolution "
                     f"algorithms, {forward['vae_decode_benchmarked']:.2f} s with the ones `cudnn.benchmark` picks.")
        lines.append("")
    for name, run in rows[1:]:
        if run:
            stages = {k: sum(v.get(k, 0) for v in run["per_video"]) / len(run["per_video"])
                      for k in ("text_encoding", "denoising", "vae_decode", "encoding", "total")}
            lines.append(f"{name}, seconds per stage (mean): " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items())
                         + f"; execution: {json.dumps(run['execution'])}" + (f"; startup to ready {run['startup_seconds']:.0f} s." if run.get("startup_seconds") else "."))
    if baseline:
        g = [v["generate"] for v in baseline["per_video"]]
        e = [v["encode"] for v in baseline["per_video"]]
        lines.append(f"plain loop, seconds per video (mean): pipeline call {sum(g) / len(g):.2f}, MP4 encode "
                     f"{sum(e) / len(e):.2f}; load {baseline['load_seconds']:.0f} s.")
    return "\n".join(lines) + "\n"


def main() -> int:
    global WIDTH, HEIGHT, FRAMES
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--parts", default="ceilings,forward,baseline,reel,budget")
    parser.add_argument("--budget-gib", type=float, default=24)
    parser.add_argument("--budget-videos", type=int, default=None, help="videos of the budget part (default --videos)")
    parser.add_argument("--reel", default=os.environ.get("REEL", "reel"), help="the reel binary")
    parser.add_argument("--out", default="bench-out")
    parser.add_argument("--model", default="random:ti2v-5b", help="for `reel`; tiny with --devices cpu and "
                        "--size 256x256 --frames 17 checks the harness on a machine without a GPU")
    parser.add_argument("--devices", default="cuda:0")
    parser.add_argument("--size", default=f"{WIDTH}x{HEIGHT}")
    parser.add_argument("--frames", type=int, default=FRAMES)
    parser.add_argument("--report", action="store_true", help="only print the Markdown of the results in --out")
    parser.add_argument("--write-results", action="store_true", help="also append the report to bench/RESULTS.md")
    args = parser.parse_args()
    WIDTH, HEIGHT = (int(x) for x in args.size.split("x"))
    FRAMES = args.frames
    if not args.report:
        run_parts(args)
    text = report(args.out)
    print(text)
    if args.write_results:
        with open(os.path.join(HERE, "RESULTS.md"), "a", encoding="utf-8") as f:
            f.write("\n" + text)
    return 0


def run_parts(args) -> None:
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "environment.json"), "w") as f:
        json.dump(environment(), f, indent=1)
    for part in args.parts.split(","):
        t0 = time.perf_counter()
        if part == "ceilings":
            result = part_ceilings(args)
        elif part == "forward":
            result = part_forward(args)
        elif part == "baseline":
            result = part_baseline(args)
        elif part == "reel":
            result = part_reel(args)
        elif part == "budget":
            result = part_reel(args, budget_gib=args.budget_gib, videos=args.budget_videos, name="budget")
        elif part == "two-replicas":
            # Two workers sharing the first GPU: does one job leave it idle enough for a second to gain?
            gpu = args.devices.split(",")[0]
            result = part_reel(args, devices=f"{gpu},{gpu}", name="two-replicas")
        else:
            raise SystemExit(f"unknown part {part!r}")
        with open(os.path.join(args.out, f"{part}.json"), "w") as f:
            json.dump(result, f, indent=1)
        print(f"{part}: done in {time.perf_counter() - t0:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

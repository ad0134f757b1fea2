"""Peak host memory while comfy_files loads a single-file transformer: writes a random-weight file of the full-size (or
tiny) architecture in ComfyUI's layout (original Wan names, `model.diffusion_model.` prefix; fp16, bf16 or
fp8-scaled), streamed tensor by tensor so the writer never holds the model, then loads it in a fresh process while a
thread samples /proc/self/status: peak RssAnon (real copies) and RssFile (pages of the memory-mapped file), and
VmHWM.

    python benchmarks/comfy_load_memory.py --arch ti2v-5b --file-dtype fp16 --dtype bf16 --dir /tmp/comfy-bench
    python benchmarks/comfy_load_memory.py --arch t2v-a14b --file-dtype fp8 --dtype bf16 --device cuda

Measured 2026-12-01 on the 2-core CPU box (23 GiB), TI2V-5B fp16 file (9.31 GiB) loaded as bf16 on the CPU: 34.3 s;
private memory (RssAnon) grew by 9.34 GiB = 1.003x the file, i.e. the model's weights (9.33 GiB) and nothing more;
the memory-mapped file's pages peaked at 8.81 GiB (RssFile: shared page cache, reclaimable), so VmHWM, which counts
both, reached 17.9 GiB (1.93x the file). Loading onto a GPU (`--device cuda`) leaves only the mapped pages on the
host.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32", "fp8": "float8_e4m3fn"}
ST = {"float16": "F16", "bfloat16": "BF16", "float32": "F32", "float8_e4m3fn": "F8_E4M3"}


def _status() -> dict:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) * 1024
    return out


def write_file(path: str, arch: str, file_dtype: str, tiny: bool) -> int:
    """Streams a random-weight transformer file: the header first (from the model's shapes on the meta device),
    then each tensor's bytes."""
    import torch
    from diffusers import WanTransformer3DModel

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
    from comfy_writer import transformer_to_original

    from reel_engine.model_configs import component_configs

    with torch.device("meta"):
        model = WanTransformer3DModel(**component_configs(arch, tiny)["transformer"])
    shapes = {k: tuple(v.shape) for k, v in transformer_to_original(model.state_dict()).items()}
    fp8 = file_dtype == "fp8"
    entries, offset = [], 0
    for name, shape in shapes.items():
        quantized = fp8 and name.endswith(".weight") and len(shape) == 2
        dtype = "float8_e4m3fn" if quantized else ("float32" if fp8 else DTYPES[file_dtype])
        n = 1
        for s in shape:
            n *= s
        size = n * torch.empty((), dtype=getattr(torch, dtype)).element_size()
        entries.append(("model.diffusion_model." + name, dtype, shape, offset, size))
        offset += size
        if quantized:
            entries.append(("model.diffusion_model." + name[: -len("weight")] + "scale_weight", "float32", (), offset,
                            4))
            offset += 4
    if fp8:
        entries.append(("scaled_fp8", "float8_e4m3fn", (0,), offset, 0))
    header = {name: {"dtype": ST[dtype], "shape": list(shape), "data_offsets": [start, start + size]}
              for name, dtype, shape, start, size in entries}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    g = torch.Generator().manual_seed(0)
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
        for name, dtype, shape, _, size in entries:
            if size == 0:
                continue
            if name.endswith("scale_weight"):
                t = torch.tensor(0.02 / 448 * 4, dtype=torch.float32)
            elif dtype == "float8_e4m3fn":
                t = (torch.randn(shape, generator=g) * 100).clamp(-448, 448).to(torch.float8_e4m3fn)
            else:
                t = (torch.randn(shape, generator=g) * 0.02).to(getattr(torch, dtype))
            f.write(t.contiguous().view(torch.uint8).numpy().tobytes() if t.dim() else t.numpy().tobytes())
    return os.path.getsize(path)


def load(path: str, arch: str, dtype: str, device: str) -> dict:
    import accelerate  # noqa: F401 - the imports before the baseline: only the load itself is measured
    import safetensors.torch  # noqa: F401
    import torch
    from diffusers import WanTransformer3DModel  # noqa: F401

    from reel_engine import comfy_files

    peaks = {"RssAnon": 0, "RssFile": 0}
    done = threading.Event()

    def sample():
        while not done.is_set():
            s = _status()
            for k in peaks:
                peaks[k] = max(peaks[k], s.get(k, 0))
            time.sleep(0.02)

    base = _status()
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    model = comfy_files.load_transformer(path, arch, getattr(torch, dtype), device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    done.set()
    thread.join()
    end = _status()
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    out = dict(seconds=round(seconds, 2), file_bytes=os.path.getsize(path), model_bytes=params,
               base_rss=base["VmRSS"], peak_anon=peaks["RssAnon"], peak_file_mapped=peaks["RssFile"],
               vm_hwm=end["VmHWM"], anon_growth=peaks["RssAnon"] - base["RssAnon"])
    if device.startswith("cuda"):
        out["gpu_peak_bytes"] = torch.cuda.max_memory_allocated()
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="ti2v-5b")
    p.add_argument("--file-dtype", default="fp16", choices=sorted(DTYPES))
    p.add_argument("--dtype", default="bf16", choices=("bf16", "fp16", "fp32"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--dir", default="/tmp/comfy-bench")
    p.add_argument("--load-only", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.load_only:
        print(json.dumps(load(args.load_only, args.arch, DTYPES[args.dtype], args.device)))
        return
    os.makedirs(args.dir, exist_ok=True)
    path = os.path.join(args.dir, f"{args.arch}{'-tiny' if args.tiny else ''}-{args.file_dtype}.safetensors")
    t0 = time.perf_counter()
    if not os.path.exists(path):
        write_file(path, args.arch, args.file_dtype, args.tiny)
    written = time.perf_counter() - t0
    result = subprocess.run([sys.executable, __file__, "--arch", args.arch, "--dtype", args.dtype, "--device",
                             args.device, "--load-only", path], capture_output=True, text=True, check=True)
    out = json.loads(result.stdout.strip().splitlines()[-1])
    out.update(arch=args.arch, file_dtype=args.file_dtype, dtype=args.dtype, device=args.device,
               write_seconds=round(written, 1))
    gib = {k: round(v / 2**30, 3) for k, v in out.items() if k.endswith(("bytes", "anon", "mapped", "rss", "hwm",
                                                                          "growth"))}
    print(json.dumps(out))
    print(json.dumps({"GiB": gib, "anon_growth_over_file": round(out["anon_growth"] / out["file_bytes"], 3)}))


if __name__ == "__main__":
    main()

"""Runs one generate job on an engine worker directly (no `reel`), printing its events; for checking engine options
on a GPU host: python bench/worker_job.py [--steps N] [--size WxH] [--frames N] -- WORKER_ARGS…"""

import argparse
import json
import subprocess
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=4)
parser.add_argument("--size", default="1280x704")
parser.add_argument("--frames", type=int, default=121)
parser.add_argument("--out", default="/tmp/worker-job")
parser.add_argument("--jobs", type=int, default=1)
parser.add_argument("worker", nargs=argparse.REMAINDER)
args = parser.parse_args()
width, height = (int(x) for x in args.size.split("x"))
worker_args = args.worker[1:] if args.worker[:1] == ["--"] else args.worker
proc = subprocess.Popen([sys.executable, "-m", "reel_engine.worker", *worker_args], stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE)
t0 = time.perf_counter()
for line in proc.stdout:
    event = json.loads(line)
    if event["event"] == "progress" and event["stage"] == "denoising" and event["step"] not in (1, event["total"]):
        continue
    print(f"{time.perf_counter() - t0:7.1f}s {json.dumps(event)[:600]}", flush=True)
    if event["event"] == "ready" or (event["event"] in ("result", "error") and event.get("job")):
        done = event["event"] != "ready"
        if event["event"] == "error" and event.get("job") is None:
            break
        index = int(event["job"][1:]) + 1 if done else 0
        if index >= args.jobs:
            proc.stdin.write(b'{"type":"shutdown"}\n')
            proc.stdin.flush()
            continue
        request = {"type": "generate", "job": f"j{index}", "prompt": f"a red fox in snow, take {index}",
                   "negative_prompt": "", "width": width, "height": height, "frames": args.frames,
                   "steps": args.steps, "guidance": 5.0, "seed": index, "out_dir": f"{args.out}/j{index}"}
        proc.stdin.write((json.dumps(request) + "\n").encode())
        proc.stdin.flush()
sys.exit(proc.wait())

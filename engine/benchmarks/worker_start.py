"""How long a real worker takes to start (to its `ready` event) and to exit once its stdin closes.

    python engine/benchmarks/worker_start.py --runs 7 [--model tiny] [--device cpu] [ENGINE_DIR ...]

Starts `python -m reel_engine.worker` --runs times and prints, per engine directory, the medians of: the wall time
from the process's start to its `ready` line, the CPU time (user + system) the process used in all, and the wall
time from closing its stdin to its exit. Several engine directories (each the worker's working directory and
PYTHONPATH; default: the one beside this script) are run alternately, so that a machine whose load changes affects
them alike; on a machine shared with other work, the CPU time is the steadier figure. The data directory
(--data-dir, default a temporary one) gets the tiny models before the first timed start, so the starts measure
loading them, not creating them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def start_once(engine_dir: str, args) -> tuple[float, float, float]:
    """(seconds to ready, CPU seconds of the whole process, seconds from stdin closed to exit)."""
    engine_dir = os.path.abspath(engine_dir)
    env = dict(os.environ, PYTHONPATH=engine_dir)
    env.setdefault("OMP_NUM_THREADS", "1")
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "reel_engine.worker", "--device", args.device, "--model",
                             args.model, "--data-dir", args.data_dir],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                            cwd=engine_dir)  # `-m` puts the working directory first on sys.path
    line = proc.stdout.readline()
    t1 = time.monotonic()
    event = json.loads(line) if line else {}
    if event.get("event") != "ready":
        proc.kill()
        raise SystemExit(f"{engine_dir}: the worker did not start: {line!r}")
    proc.stdin.close()
    _, _, usage = os.wait4(proc.pid, 0)
    t2 = time.monotonic()
    return t1 - t0, usage.ru_utime + usage.ru_stime, t2 - t1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("engine_dirs", nargs="*", default=[HERE], metavar="ENGINE_DIR")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        args.data_dir = args.data_dir or tmp
        start_once(args.engine_dirs[0], args)  # creates the tiny model if needed; not timed
        results: dict[str, list] = {d: [] for d in args.engine_dirs}
        for i in range(args.runs):
            for d in args.engine_dirs:
                results[d].append(start_once(d, args))
                ready, cpu, exit_ = results[d][-1]
                print(f"run {i + 1}: {d}: ready {ready:.2f} s, CPU {cpu:.2f} s, exit {exit_:.3f} s", flush=True)
    for d, runs in results.items():
        ready, cpu, exit_ = (statistics.median(r[k] for r in runs) for k in range(3))
        print(f"{d}: median of {len(runs)}: to ready {ready:.2f} s, CPU {cpu:.2f} s, stdin closed to exit "
              f"{exit_:.3f} s")


if __name__ == "__main__":
    main()

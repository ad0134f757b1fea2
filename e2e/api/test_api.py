#!/usr/bin/env python3
"""The REST API fuzzed against its own contract: schemathesis runs docs/openapi.json against a live `reel serve`.

    python3 e2e/api/test_api.py [--reel .build/debug/reel] [--python .venv/bin/python] [--examples 12]

Two runs, each against its own server: without API keys, and with two keys (as the first one). Each run
generates requests from the document, both valid ones and ones that break it (wrong types, missing fields,
values out of range), for every operation but the endless `GET /v1/events` stream, and checks every answer: no
5xx, no dropped connection, the status, content type, headers and body as the document says. At the end the
server process started for the run (nothing restarts it) must still be running and answering /healthz.

The server runs the tiny model with the scripted worker (REEL_ENGINE_MODULE=reel_engine.scripted_worker: torch-
free, a job takes no time) and small limits, so the jobs the fuzzer queues finish at once.
"""
import argparse
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
KEYS = ["reel-e2e-key-alpha-0123456789", "reel-e2e-key-bravo-0123456789"]
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
    "response_schema_conformance"
)
LIMITS = ["--max-frames", "9", "--max-pixels", "16384", "--max-steps", "4", "--max-batch-rows", "20",
          "--max-body-bytes", "65536", "--max-batch-bytes", "262144", "--request-timeout", "10"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthz(base):
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=5) as response:
            return response.status
    except (OSError, urllib.error.URLError):
        return None


def start_server(args, data_dir, keys):
    port = free_port()
    env = dict(os.environ, REEL_PYTHON=str(args.python), REEL_ENGINE=str(ROOT / "engine"),
               REEL_ENGINE_MODULE="reel_engine.scripted_worker", OMP_NUM_THREADS="1")
    env.pop("REEL_API_KEYS", None)
    if keys:
        env["REEL_API_KEYS"] = ",".join(keys)
    log = open(data_dir / "server.log", "wb")  # noqa: SIM115 (the server writes to it as long as it runs)
    process = subprocess.Popen(
        [str(args.reel), "serve", "--port", str(port), "--data-dir", str(data_dir), "--devices", "cpu",
         "--model", "tiny", "--log-level", "warning"] + LIMITS,
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while healthz(base) != 200:
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("reel serve did not start:\n" + (data_dir / "server.log").read_text()[-3000:])
        time.sleep(0.1)
    return process, base


def run_schemathesis(args, base, key, report):
    command = [
        str(args.schemathesis), "run", str(ROOT / "docs" / "openapi.json"), "--url", base,
        "--checks", CHECKS, "--max-examples", str(args.examples), "--seed", str(args.seed),
        "--phases", "examples,coverage,fuzzing,stateful", "--mode", "all", "--workers", "2",
        "--exclude-path", "/v1/events", "--request-timeout", "20", "--no-shrink",
        "--suppress-health-check", "all", "--generation-database", "none",
        "--report", "junit", "--report-junit-path", str(report), "--no-color",
    ]
    if key:
        command += ["--header", f"Authorization: Bearer {key}"]
    started = time.monotonic()
    result = subprocess.run(command, check=False, cwd=report.parent, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    return result, elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reel", default=ROOT / ".build" / "debug" / "reel", type=pathlib.Path)
    parser.add_argument("--python", default=pathlib.Path(sys.executable), type=pathlib.Path)
    parser.add_argument("--schemathesis", default=pathlib.Path(sys.executable).parent / "schemathesis",
                        type=pathlib.Path)
    parser.add_argument("--examples", type=int, default=50, help="at most this many test cases per operation")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--artifacts", default=ROOT / "test-artifacts" / "api", type=pathlib.Path)
    args = parser.parse_args()
    # Absolute (not resolved: a venv's python is a link that must stay one) since schemathesis runs elsewhere.
    args.reel, args.python, args.schemathesis = (path.absolute() for path in (args.reel, args.python, args.schemathesis))
    args.artifacts.mkdir(parents=True, exist_ok=True)

    failed = False
    for name, keys in [("without keys", []), ("with keys", KEYS)]:
        data_dir = pathlib.Path(tempfile.mkdtemp(prefix="reel-api-"))
        process, base = start_server(args, data_dir, keys)
        try:
            report = args.artifacts / f"schemathesis-{'keys' if keys else 'open'}.xml"
            result, elapsed = run_schemathesis(args, base, keys[0] if keys else None, report)
            summary = [line for line in result.stdout.splitlines() if line.strip()][-12:]
            alive = process.poll() is None and healthz(base) == 200
            print(f"== {name}: schemathesis exited {result.returncode} after {elapsed:.0f} s; "
                  f"server {f'pid {process.pid} still running and answering' if alive else 'GONE'}")
            print("\n".join("   " + line for line in summary))
            (args.artifacts / f"schemathesis-{'keys' if keys else 'open'}.log").write_text(result.stdout + result.stderr)
            if result.returncode != 0 or not alive:
                failed = True
                print(result.stdout[-6000:])
                print(result.stderr[-2000:], file=sys.stderr)
                print((data_dir / "server.log").read_text()[-3000:], file=sys.stderr)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

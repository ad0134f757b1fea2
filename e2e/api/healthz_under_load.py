#!/usr/bin/env python3
"""GET /healthz latency while 16 clients send worst-case requests at the limits, against a real `reel serve`.

    python3 e2e/api/healthz_under_load.py --reel .build/debug/reel [--seconds 30] [--clients 16] [--max-ms 100]

The server runs with its default limits (1 MiB bodies, 16 MiB batches of up to 10,000 rows, 4,000-character
prompts) and no worker (REEL_PYTHON=/bin/false: this is about the HTTP side). Each client loops over requests
that cost the most the limits allow: a 900 KB style name, a prompt of 4,000 characters each carrying 30 combining
marks, a 1 MiB multipart form, a 16 MiB CSV batch of 10,000 rows with unknown 64-character styles (so each row asks
for suggestions), a 16 MiB JSON batch, a JSON key of a run of combining marks, and a chunked body with a bad chunk.
Meanwhile a prober asks /healthz on a new connection every 50 ms. Prints the latencies; exits 1 when the slowest
is over --max-ms or any answer was a 5xx or a dropped connection.
"""
import argparse
import http.client
import json
import os
import pathlib
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

STYLE_CHARS = "abcdefghijklmnopqrstuvwxyz"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worst_cases():
    """(method, path, content type, body) of each worst-case request."""
    rnd = random.Random(16)
    long_style = json.dumps({"prompt": "a fox", "style": "x" * 900_000}).encode()
    marks = json.dumps({"prompt": ("a" + "\u0316" * 30) * 4000}).encode()
    key_bomb = ('{"a' + "\\u0316\\u0301" * 40_000 + '": 1, "prompt": "x"}').encode()
    boundary = "reel-load-boundary"
    multipart = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\n"
                 + "a fox " * 170_000 + f"\r\n--{boundary}--\r\n").encode()[: 1 << 20]
    rows = []
    for _ in range(10_000):
        style = "".join(rnd.choice(STYLE_CHARS) for _ in range(64))
        rows.append(f"\"{'a red fox in the snow ' * 60}\",{style},64x64")
    csv = ("prompt,style,size\n" + "\n".join(rows) + "\n").encode()[: 16 << 20]
    jobs = [{"prompt": "a fox " * 250, "style": "".join(rnd.choice(STYLE_CHARS) for _ in range(64))}
            for _ in range(10_000)]
    json_batch = json.dumps({"jobs": jobs}).encode()
    return [
        ("POST", "/v1/jobs", "application/json", long_style),
        ("POST", "/v1/jobs", "application/json", marks),
        ("POST", "/v1/jobs", "application/json", key_bomb),
        ("POST", "/v1/videos", f"multipart/form-data; boundary={boundary}", multipart),
        ("POST", "/v1/batches", "text/csv", csv),
        ("POST", "/v1/batches", "application/json", json_batch),
        ("CHUNKED", "/v1/jobs", "application/json", b""),
    ]


class Results:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies = []
        self.statuses = {}
        self.failures = []
        # Set when the measurement ends: what clients see once the server is stopped is not counted.
        self.closed = False

    def status(self, what, code):
        with self.lock:
            if not self.closed:
                self.statuses[(what, code)] = self.statuses.get((what, code), 0) + 1

    def fail(self, message):
        with self.lock:
            if not self.closed:
                self.failures.append(message)


def send(port, method, path, content_type, body, timeout=120):
    if method == "CHUNKED":
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
                      "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n".encode())
            data = s.recv(65536)
            return int(data.split(b" ")[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": content_type})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def client(port, cases, stop, results, index):
    order = list(range(len(cases)))
    random.Random(index).shuffle(order)
    i = 0
    while not stop.is_set():
        method, path, content_type, body = cases[order[i % len(order)]]
        i += 1
        what = f"{path} {content_type.split(';')[0]} {len(body)} B"
        try:
            code = send(port, method, path, content_type, body)
            results.status(what, code)
            if code >= 500:
                results.fail(f"{what}: {code}")
        except TimeoutError:
            # Heavy requests queue behind each other on the server's request threads; a client that gives up
            # waiting is not a server failure (a reset or refused connection is).
            results.status(what, "gave up waiting")
        except (OSError, http.client.HTTPException, ValueError, IndexError) as error:
            results.fail(f"{what}: {error!r}")


def prober(port, stop, results):
    while not stop.is_set():
        started = time.monotonic()
        try:
            code = send(port, "GET", "/healthz", "text/plain", None, timeout=10)
            elapsed = (time.monotonic() - started) * 1000
            with results.lock:
                if not results.closed:
                    results.latencies.append(elapsed)
            if code != 200:
                results.fail(f"/healthz: {code}")
        except (OSError, http.client.HTTPException) as error:
            results.fail(f"/healthz: {error!r}")
        time.sleep(0.05)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reel", default=".build/debug/reel")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-ms", type=float, default=100)
    args = parser.parse_args()

    cases = worst_cases()
    data_dir = pathlib.Path(tempfile.mkdtemp(prefix="reel-load-"))
    port = free_port()
    env = dict(os.environ, REEL_PYTHON="/bin/false")
    log = open(data_dir / "server.log", "wb")  # noqa: SIM115 (the server writes to it as long as it runs)
    server = subprocess.Popen(
        [args.reel, "serve", "--port", str(port), "--data-dir", str(data_dir), "--devices", "cpu", "--model", "tiny",
         "--log-level", "error"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if send(port, "GET", "/healthz", "text/plain", None, timeout=2) == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                sys.exit("reel serve did not start:\n" + (data_dir / "server.log").read_text()[-2000:])
            time.sleep(0.1)
        results = Results()
        stop = threading.Event()
        threads = [threading.Thread(target=client, args=(port, cases, stop, results, i), daemon=True)
                   for i in range(args.clients)]
        threads.append(threading.Thread(target=prober, args=(port, stop, results), daemon=True))
        for thread in threads:
            thread.start()
        time.sleep(args.seconds)
        stop.set()
        with results.lock:
            results.closed = True
        threads[-1].join(timeout=30)
        alive = server.poll() is None
    finally:
        # Heavy requests still queued would hold a graceful shutdown up for minutes: give it 10 s, then kill.
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()

    latencies = sorted(results.latencies)
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    print(f"{len(latencies)} health checks under {args.clients} clients for {args.seconds:g} s: "
          f"median {statistics.median(latencies):.1f} ms, p99 {p(0.99):.1f} ms, max {latencies[-1]:.1f} ms")
    for (what, code), count in sorted(results.statuses.items(), key=str):
        print(f"  {count:5d} x {code} {what}")
    for failure in results.failures[:20]:
        print("  FAILED:", failure)
    ok = alive and not results.failures and latencies[-1] <= args.max_ms
    print("server still running" if alive else "SERVER EXITED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

"""Soak test of the service: thousands of mixed requests on loopback, statuses, latency and worker memory.

Starts ``nasseg serve MODEL`` (defaults: tile 1024, 25 Mpx per request, body timeout 10 s,
timeout 60 s, 32 requests in flight) and sends ``--requests`` requests from ``--clients`` threads,
each drawn from a fixed, seeded mix:

- ``good``: a 256x256 frame to /inspect (most of the traffic);
- ``batch``: 4 frames to /inspect_batch;
- ``line_scan``: an 8192x3000 1-bit PNG (72 KB) to /inspect, tiled by the server;
- ``bad``: garbage bytes, a truncated PNG, a wrong content type, an unknown path, a GET on /inspect;
- ``over_budget``: 16 flat 2048x2048 PNGs (67 Mpx in a 30 KB request) to /inspect_batch;

and, beside them, ``stalled`` clients: sockets that send headers and 5 body bytes and stop (a few at
a time, all run long). Every few seconds the RSS of the worker processes is sampled.

Writes ``benchmarks/results/serve_soak.json``: counts of statuses per kind, 5xx by kind, p50/p99
per kind, the line-scan frame's latency, ``/metrics`` size before and after, and worker memory over
time with its growth after warm-up (one request of every shape, sent before the count starts).
Partial results are written every 500 requests.

    python benchmarks/serve_soak.py [--model unet-small-synth-defects] [--requests 5000] [--clients 8]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import platform
import socket
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from serve_load import BOUNDARY, frame_png, free_port, multipart, start_server, stop_server  # noqa: E402

from nasseg.serving.resolve import resolve_onnx  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "serve_soak.json"
MIX = {"good": 0.80, "batch": 0.07, "bad": 0.10, "over_budget": 0.02, "line_scan": 0.01}


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def line_scan_png() -> bytes:
    """8192x3000, 1 bit per pixel, sparse dots: 72 KB that decode to 24.6 Mpx."""
    dots = np.random.default_rng(0).random((3000, 8192)) > 0.999
    buffer = io.BytesIO()
    Image.fromarray(dots).convert("1").save(buffer, "PNG")
    return buffer.getvalue()


def multipart_many(field: str, files: list[bytes]) -> bytes:
    parts = b"".join(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="{i}.png"\r\n'
                     f"Content-Type: image/png\r\n\r\n".encode() + data + b"\r\n"
                     for i, data in enumerate(files))  # fmt: skip
    return parts + f"--{BOUNDARY}--\r\n".encode()


def requests_of_kind() -> dict[str, list[tuple[str, str, bytes, str]]]:
    """(method, path, body, content type) choices per kind."""
    form = f"multipart/form-data; boundary={BOUNDARY}"
    good = [frame_png(256, 256, seed) for seed in range(4)]
    png = good[0]
    flat = _png(np.full((2048, 2048), 90, np.uint8))
    return {
        "good": [("POST", "/inspect", multipart("image", "f.png", data), form) for data in good],
        "batch": [("POST", "/inspect_batch", multipart_many("images", good), form)],
        "line_scan": [("POST", "/inspect", multipart("image", "line.png", line_scan_png()), form)],
        "bad": [
            ("POST", "/inspect", multipart("image", "x.png", np.random.default_rng(1).bytes(5000)), form),
            ("POST", "/inspect", multipart("image", "t.png", png[: len(png) // 2]), form),
            ("POST", "/inspect", png, "image/png"),
            ("GET", "/no/such/endpoint", b"", ""),
            ("GET", "/inspect", b"", ""),
        ],
        "over_budget": [("POST", "/inspect_batch", multipart_many("images", [flat] * 16), form)],
    }


class Tally:
    """Statuses and latencies per kind, thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statuses: dict[str, Counter] = defaultdict(Counter)
        self.latency_ms: dict[str, list[float]] = defaultdict(list)
        self.errors: Counter = Counter()
        self.done = 0

    def add(self, kind: str, status: int, ms: float, body: bytes) -> None:
        with self.lock:
            self.statuses[kind][status] += 1
            self.latency_ms[kind].append(ms)
            self.done += 1
            if status >= 500:
                self.errors[f"{kind} {status}: {body[:160].decode('utf-8', 'replace')}"] += 1
            elif status >= 400 and not body.lstrip().startswith(b"{"):
                self.errors[f"{kind} {status}: non-JSON body"] += 1

    def summary(self) -> dict:
        with self.lock:
            kinds = {}
            for kind, statuses in sorted(self.statuses.items()):
                times = np.array(self.latency_ms[kind])
                kinds[kind] = {"requests": int(sum(statuses.values())),
                               "statuses": {str(k): v for k, v in sorted(statuses.items())},
                               "p50_ms": round(float(np.percentile(times, 50)), 1),
                               "p99_ms": round(float(np.percentile(times, 99)), 1),
                               "max_ms": round(float(times.max()), 1)}  # fmt: skip
            fivexx = {k: v for k, v in self.errors.items() if " 5" in k.split(":")[0]}
            return {"requests": self.done, "kinds": kinds, "5xx": fivexx,
                    "5xx_total": sum(fivexx.values()),
                    "5xx_not_503": sum(v for k, v in fivexx.items() if " 503:" not in k),
                    "other_errors": {k: v for k, v in self.errors.items() if k not in fivexx}}  # fmt: skip


def send(port: int, method: str, path: str, body: bytes, content_type: str, timeout: float = 90) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": content_type} if content_type else {}
        connection.request(method, path, body=body or None, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    except OSError as exc:
        return 599, f"client: {exc}".encode()
    finally:
        connection.close()


def stalled_client(port: int, stop: threading.Event, tally: Tally) -> None:
    """Open a socket, send headers and 5 body bytes, and wait for the server's answer."""
    while not stop.is_set():
        start = time.perf_counter()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
                sock.sendall(b"POST /inspect HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                             b"boundary=abc\r\nContent-Length: 100000\r\n\r\n--abc")  # fmt: skip
                answer = _read_response(sock)
            status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 598
            body = answer.split(b"\r\n\r\n", 1)[-1]
        except OSError as exc:
            status, body = 599, str(exc).encode()
        tally.add("stalled", status, (time.perf_counter() - start) * 1000, body)


def _read_response(sock: socket.socket) -> bytes:
    """Headers and the Content-Length body of one HTTP response (or what came before the close)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)  # fmt: skip
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def worker_rss_mib(pid: int) -> float:
    """RSS of the server's processes other than the launcher (the workers and BentoML's supervisor)."""
    total = 0
    for process in psutil.Process(pid).children(recursive=True):
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return round(total / 2**20, 1)


def line_scan_phases(port: int, pid: int, choices: dict) -> dict:
    """The red-team's cases alone, before the mix: one 8192x3000 frame on an idle server, then three at
    once while a client sends normal frames; latency, statuses and the workers' peak RSS."""
    request, good = choices["line_scan"][0], choices["good"][0]
    return {name: _line_scan_case(port, pid, request, good, at_once)
            for name, at_once in (("one_frame", 1), ("three_at_once", 3))}  # fmt: skip


def _line_scan_case(port: int, pid: int, request: tuple, good: tuple, at_once: int) -> dict:
    peak, stop, normal, answers = [worker_rss_mib(pid)], threading.Event(), [], []
    idle = peak[0]

    def watch() -> None:
        while not stop.is_set():
            peak.append(worker_rss_mib(pid))
            stop.wait(0.1)

    def normal_client() -> None:
        while not stop.is_set():
            start = time.perf_counter()
            status, _ = send(port, *good)
            normal.append((status, (time.perf_counter() - start) * 1000))

    def one() -> None:
        start = time.perf_counter()
        status, _ = send(port, *request, timeout=300)
        answers.append((status, (time.perf_counter() - start) * 1000))

    helpers = [threading.Thread(target=watch, daemon=True), threading.Thread(target=normal_client, daemon=True)]
    workers = [threading.Thread(target=one) for _ in range(at_once)]
    for thread in helpers + workers:
        thread.start()
    for thread in workers:
        thread.join()
    stop.set()
    for thread in helpers:
        thread.join()
    time.sleep(1.0)
    normal_ms = [ms for status, ms in normal if status == 200]
    return {"statuses": sorted(status for status, _ in answers),
            "seconds": sorted(round(ms / 1000, 2) for _, ms in answers),
            "worker_rss_mib_idle_before": idle, "worker_rss_mib_peak": max(peak),
            "worker_rss_mib_after": worker_rss_mib(pid),
            "normal_requests_meanwhile": len(normal), "normal_200": len(normal_ms),
            "normal_p50_ms": round(float(np.median(normal_ms)), 1) if normal_ms else None}  # fmt: skip


def metrics_bytes(port: int) -> int:
    status, body = send(port, "GET", "/metrics", b"", "")
    return len(body) if status == 200 else -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="unet-small-synth-defects", help="a zoo name with trained weights")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--stalled", type=int, default=4, help="stalled connections held at any time")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="nasseg-soak-"))
    onnx = resolve_onnx(args.model, cache_dir=home / "onnx")
    port = free_port()
    log = home / "server.log"
    process = start_server(onnx, home, port, args.threads, log)
    choices = requests_of_kind()
    kinds = list(MIX)
    rng = np.random.default_rng(0)
    plan = rng.choice(len(kinds), size=args.requests, p=[MIX[k] for k in kinds])
    tally, stop, memory = Tally(), threading.Event(), []
    for kind_choices in choices.values():  # warm-up: every request shape once (arena sizes, caches), not counted
        for method, path, body, content_type in kind_choices:
            send(port, method, path, body, content_type)
    line_scan = line_scan_phases(port, process.pid, choices)
    print(json.dumps(line_scan, indent=2), flush=True)
    metrics_before = metrics_bytes(port)
    started = time.perf_counter()
    next_index = iter(range(args.requests))
    index_lock = threading.Lock()

    def client() -> None:
        while True:
            with index_lock:
                i = next(next_index, None)
            if i is None:
                return
            kind = kinds[plan[i]]
            method, path, body, content_type = choices[kind][i % len(choices[kind])]
            start = time.perf_counter()
            status, answer = send(port, method, path, body, content_type)
            tally.add(kind, status, (time.perf_counter() - start) * 1000, answer)

    def sample_memory() -> None:
        while not stop.is_set():
            memory.append({"t_s": round(time.perf_counter() - started, 1), "done": tally.done,
                           "worker_rss_mib": worker_rss_mib(process.pid)})  # fmt: skip
            if tally.done and tally.done % 500 < args.clients:
                write(args, tally, memory, metrics_before, None, started, partial=True)
            stop.wait(2.0)

    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    threads += [threading.Thread(target=stalled_client, args=(port, stop, tally), daemon=True)
                for _ in range(args.stalled)]  # fmt: skip
    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    for thread in threads:
        thread.start()
    for thread in threads[: args.clients]:
        thread.join()
    stop.set()
    metrics_after = metrics_bytes(port)
    memory.append({"t_s": round(time.perf_counter() - started, 1), "done": tally.done,
                   "worker_rss_mib": worker_rss_mib(process.pid)})  # fmt: skip
    code = stop_server(process)
    result = write(args, tally, memory, metrics_before, metrics_after, started, partial=False)
    result["server_exit_code"] = code
    result["line_scan_phases"] = line_scan
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("requests", "5xx_total", "5xx_not_503", "memory", "metrics_bytes")},
                     indent=2))  # fmt: skip


def write(args: argparse.Namespace, tally: Tally, memory: list[dict], metrics_before: int,
          metrics_after: int | None, started: float, partial: bool) -> dict:  # fmt: skip
    summary = tally.summary()
    rss = [m["worker_rss_mib"] for m in memory]
    warm = rss[0] if rss else None  # sampled after the warm-up requests
    result = {
        "benchmark": "serve_soak",
        "partial": partial,
        "model": args.model,
        "clients": args.clients,
        "stalled_connections": args.stalled,
        "mix": MIX,
        "seconds": round(time.perf_counter() - started, 1),
        **summary,
        "metrics_bytes": {"before": metrics_before, "after": metrics_after},
        "memory": {"worker_rss_mib_after_warmup": warm, "worker_rss_mib_max": max(rss) if rss else None,
                   "worker_rss_mib_last": rss[-1] if rss else None,
                   "growth_after_warmup_mib": round(rss[-1] - warm, 1) if rss and warm is not None else None},
        "memory_series": memory,
        "machine": {"cpus": psutil.cpu_count(), "platform": platform.platform()},
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.out.with_suffix(".tmp")
    temporary.write_text(json.dumps(result, indent=2) + "\n")
    temporary.replace(args.out)
    return result


if __name__ == "__main__":
    main()

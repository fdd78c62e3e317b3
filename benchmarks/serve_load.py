"""Load on the BentoML service: served throughput and latency against raw ONNX Runtime, same run.

1. exports ``--model`` (into a temporary NASSEG_HOME) and starts ``nasseg serve`` on 127.0.0.1 (a
   free port, ``--threads`` ONNX Runtime threads);
2. sends ``--requests`` POSTs of one PNG frame to ``--endpoint`` at each concurrency of
   ``--concurrency`` (keep-alive ``http.client`` connections, one per client thread; a level stops at
   its request count or after ``--level-seconds``), and before the first and after every level
   measures raw ONNX Runtime throughput of the same deploy graph on the pre-decoded frame (batch 1,
   the same threads and session settings), so that each level is compared with the machine as it
   was around it;
3. records the server's CPU time per request and RSS (all its processes) after every level, and the
   client's own CPU time per request (it shares the cores).

Writes ``benchmarks/results/serve_load.json``: per level throughput, p50/p90/p99 latency, errors,
``served_over_raw`` (against one session on all threads, frame after frame: aim >= 0.85 at
concurrency 8), ``served_over_raw_side_by_side_at_8`` (against 1-thread sessions run side by side,
one per thread: the machine's ceiling), ``p99_over_p50`` (aim <= 3), RSS growth. Client
and server share the machine's cores, so the figures are noisy on a small, busy box.

    python benchmarks/serve_load.py [--model unet-small-synth-defects] [--size 512 512] [--requests 500]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

from nasseg.serving.resolve import resolve_onnx
from nasseg.serving.runtime import OnnxSegmenter, default_threads

RESULTS = Path(__file__).parent / "results" / "serve_load.json"
BOUNDARY = "nasseg-load-boundary"


def frame_png(height: int, width: int, seed: int = 0) -> bytes:
    """A seeded textured frame with a dark blob, as PNG."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    picture = 120 + 50 * np.sin(x / 9.0)[..., None] * np.cos(y / 6.0)[..., None] * np.ones(3)
    picture[(y - height // 3) ** 2 + (x - width // 2) ** 2 < (min(height, width) // 6) ** 2] = 25
    buffer = io.BytesIO()
    Image.fromarray(np.clip(picture + rng.normal(0, 6, picture.shape), 0, 255).astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def multipart(field_name: str, filename: str, data: bytes) -> bytes:
    head = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field_name}"; filename="{filename}"\r\n'
            "Content-Type: image/png\r\n\r\n").encode()  # fmt: skip
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def raw_ort(onnx: Path, frame: np.ndarray, threads: int, seconds: float, max_runs: int, spin: bool) -> dict:
    """Images/s of the deploy graph alone, batch 1, sequential (``spin``: idle threads busy-wait)."""
    segmenter = OnnxSegmenter(onnx, device="cpu", threads=threads, spin=spin)
    batch = frame[None]
    for _ in range(3):
        segmenter.predict_frames(batch)
    runs, start, cpu = 0, time.perf_counter(), time.process_time()
    while runs < max_runs and time.perf_counter() - start < seconds:
        segmenter.predict_frames(batch)
        runs += 1
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"runs": runs, "seconds": round(elapsed, 2), "images_per_s": round(runs / elapsed, 2),
            "ms_per_image": round(1000 * elapsed / runs, 2),
            "cpu_ms_per_image": round(1000 * cpu / runs, 2)}  # fmt: skip


def raw_side_by_side(onnx: Path, frame: np.ndarray, threads: int, seconds: float) -> dict:
    """Images/s of ``threads`` 1-thread sessions run side by side, one caller each: the most this
    machine's cores get out of the graph (what the service's narrow sessions do under load)."""
    sessions = [OnnxSegmenter(onnx, device="cpu", threads=1, spin=False) for _ in range(threads)]
    batch, counts = frame[None], [0] * threads
    for session in sessions:
        session.predict_frames(batch)
    stop = time.perf_counter() + seconds

    def call(index: int) -> None:
        while time.perf_counter() < stop:
            sessions[index].predict_frames(batch)
            counts[index] += 1

    callers = [threading.Thread(target=call, args=(i,)) for i in range(threads)]
    start = time.perf_counter()
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    elapsed = time.perf_counter() - start
    return {"sessions": threads, "runs": sum(counts), "seconds": round(elapsed, 2),
            "images_per_s": round(sum(counts) / elapsed, 2)}  # fmt: skip


@dataclass
class Level:
    """One concurrency level's outcome."""

    concurrency: int
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    seconds: float = 0.0

    def summary(self) -> dict:
        lat = np.asarray(self.latencies_ms) if self.latencies_ms else np.asarray([np.nan])
        p50, p90, p99 = (float(np.percentile(lat, q)) for q in (50, 90, 99))
        done = len(self.latencies_ms)
        return {"concurrency": self.concurrency, "requests": done, "errors": self.errors, "statuses": self.statuses,
                "seconds": round(self.seconds, 2), "requests_per_s": round(done / self.seconds, 2),
                "p50_ms": round(p50, 1), "p90_ms": round(p90, 1), "p99_ms": round(p99, 1),
                "p99_over_p50": round(p99 / p50, 2)}  # fmt: skip


def run_level(port: int, path: str, body: bytes, concurrency: int, requests: int, seconds: float) -> Level:
    """``requests`` POSTs from ``concurrency`` threads (stops early at ``seconds``)."""
    level, lock = Level(concurrency), threading.Lock()
    remaining = [requests]
    deadline = time.perf_counter() + seconds
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}", "Content-Length": str(len(body))}

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                if remaining[0] <= 0 or time.perf_counter() > deadline:
                    break
                remaining[0] -= 1
            start = time.perf_counter()
            try:
                connection.request("POST", path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                status = str(response.status)
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                status = type(exc).__name__
            elapsed = (time.perf_counter() - start) * 1000
            with lock:
                level.statuses[status] = level.statuses.get(status, 0) + 1
                if status == "200":
                    level.latencies_ms.append(elapsed)
                else:
                    level.errors += 1
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    level.seconds = time.perf_counter() - start
    return level


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_processes(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def server_rss_mib(pid: int) -> float:
    """RSS of the server: the bentoml process and all its children."""
    total = 0
    for process in _server_processes(pid):
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return round(total / 2**20, 1)


def server_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the server's processes have used so far."""
    total = 0.0
    for process in _server_processes(pid):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def start_server(onnx: Path, home: Path, port: int, threads: int, workers: int, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-c", "from nasseg.cli import main; main()", "serve", str(onnx), "--host", "127.0.0.1",
               "--port", str(port), "--threads", str(threads), "--workers", str(workers),
               "--max-concurrency", "64"]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
                                   env={**os.environ, "NASSEG_HOME": str(home)})  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/readyz")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            pass
        time.sleep(0.5)
    stop_server(process)
    raise SystemExit(f"server not ready in 300 s:\n{log.read_text()[-2000:]}")


def stop_server(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="unet-small-synth-defects", help="zoo name, genotype .json or .onnx")
    parser.add_argument("--size", type=int, nargs=2, default=(512, 512), metavar=("H", "W"))
    parser.add_argument("--endpoint", default="/inspect", choices=("/inspect", "/segment"))
    parser.add_argument("--threads", type=int, default=default_threads(), help="ONNX Runtime threads (both sides)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server worker processes, --threads ONNX Runtime threads each; raw ORT is one "
        "session at workers x threads (the machine's cores), so the ratio is against the best",
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=(1, 4, 8, 16))
    parser.add_argument("--requests", type=int, default=500, help="requests per concurrency level")
    parser.add_argument("--level-seconds", type=float, default=240.0, help="time cap per level")
    parser.add_argument("--raw-seconds", type=float, default=10.0, help="time cap of each raw ORT measurement")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="nasseg-serve-load-") as tmp:
        home = Path(tmp)
        onnx = resolve_onnx(args.model, cache_dir=home / "onnx")
        png = frame_png(*args.size)
        frame = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        load_before = os.getloadavg()

        def raw(spin: bool = False) -> dict:
            return raw_ort(onnx, frame, args.threads * args.workers, args.raw_seconds, 2000, spin)

        raw_spinning = raw(spin=True)  # ONNX Runtime's default session, for reference
        cores = args.threads * args.workers
        side_by_side = raw_side_by_side(onnx, frame, cores, args.raw_seconds)
        port = free_port()
        process = start_server(onnx, home, port, args.threads, args.workers, home / "server.log")
        body = multipart("image", "frame.png", png)
        try:
            run_level(port, args.endpoint, body, 2, 20, 60)  # warm-up: connections, first requests
            rss_start = server_rss_mib(process.pid)
            raws, levels = [raw()], []
            for concurrency in args.concurrency:  # raw ORT between levels: the ratio follows the machine's drift
                cpu, client_cpu = server_cpu_s(process.pid), time.process_time()
                level = run_level(port, args.endpoint, body, concurrency, args.requests, args.level_seconds).summary()
                level["server_cpu_ms_per_request"] = round(
                    1000 * (server_cpu_s(process.pid) - cpu) / level["requests"], 2
                )
                # the client's own CPU shares the cores with the server: what served/raw cannot win back
                client_ms = 1000 * (time.process_time() - client_cpu) / level["requests"]
                level["client_cpu_ms_per_request"] = round(client_ms, 2)
                level["server_rss_mib"] = server_rss_mib(process.pid)
                raws.append(raw())
                raw_rate = (raws[-2]["images_per_s"] + raws[-1]["images_per_s"]) / 2
                raw_cpu = (raws[-2]["cpu_ms_per_image"] + raws[-1]["cpu_ms_per_image"]) / 2
                level["raw_ort_images_per_s"] = round(raw_rate, 2)
                level["served_over_raw"] = round(level["requests_per_s"] / raw_rate, 3)
                level["raw_cpu_over_served_cpu"] = round(raw_cpu / level["server_cpu_ms_per_request"], 3)
                levels.append(level)
                print(json.dumps(level), flush=True)
        finally:
            exit_code = stop_server(process)
        load_after = os.getloadavg()
        side_by_side_after = raw_side_by_side(onnx, frame, cores, args.raw_seconds)

    at8 = next((lv for lv in levels if lv["concurrency"] == 8), levels[-1])
    ceiling = (side_by_side["images_per_s"] + side_by_side_after["images_per_s"]) / 2
    steady = [lv for lv in levels if lv["concurrency"] > 1]
    result = {
        "model": args.model, "endpoint": args.endpoint, "image_size": list(args.size), "threads": args.threads,
        "workers": args.workers, "requests_total": sum(lv["requests"] for lv in levels),
        "errors_total": sum(lv["errors"] for lv in levels),
        "served_over_raw_at_8": at8["served_over_raw"], "p99_over_p50_at_8": at8["p99_over_p50"],
        "raw_cpu_over_served_cpu_at_8": at8["raw_cpu_over_served_cpu"],
        "worst_p99_over_p50_under_load": max(lv["p99_over_p50"] for lv in steady) if steady else None,
        "server_rss_mib_after_warm_up": rss_start,
        "server_rss_mib_after_levels": [lv["server_rss_mib"] for lv in levels],
        "server_rss_growth_mib": round(levels[-1]["server_rss_mib"] - rss_start, 1),
        "server_exit_code_after_sigterm": exit_code,
        "served_over_raw_side_by_side_at_8": round(at8["requests_per_s"] / ceiling, 3),
        "levels": levels, "raw_ort_no_spin": raws, "raw_ort_spinning": raw_spinning,
        "raw_ort_side_by_side": [side_by_side, side_by_side_after],
        "machine": {"cpus": os.cpu_count(), "affinity": default_threads(), "platform": platform.platform(),
                    "python": platform.python_version(), "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in load_after]},
        "note": "client and server share the machine's cores (loopback); other work on the machine moves the figures. "
                "Raw ONNX Runtime (the server's session settings: no spinning) is measured between levels, and each "
                "level's ratio uses the two raw figures around it.",
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("levels", "machine", "raw_ort_no_spin")}, indent=2))


if __name__ == "__main__":
    main()

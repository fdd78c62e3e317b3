"""Concurrent decompression bombs against ``nasseg serve``: worker peak RSS, statuses, liveness -> ``serve_bombs.json``.

Issue 28: ``--concurrency`` (32, the default ``--max-concurrency``) clients each send one small
16-bit RGBA PNG that decodes to ``--side``^2 pixels (5000^2 = 25 Mpx, the default ``--max-pixels``)
to ``/inspect`` at once. The service reads each header, reserves its large-frame slot and only then
decodes, so one such frame is in memory at a time; the others wait up to a third of the timeout
and get 503. Sampled every 20 ms: the RSS of the server's processes (the worker and BentoML's
supervisor). Recorded: statuses, whether every answer is JSON (or the PNG mask of /segment), peak
and idle RSS, and whether ``/readyz`` still answers afterwards. Goal: peak under 2.5 GB.

    python benchmarks/serve_bombs.py [--model unet-small-synth-defects] [--concurrency 32] [--side 5000]
"""

from __future__ import annotations

import argparse
import json
import platform
import struct
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from serve_load import BOUNDARY, free_port, multipart, server_rss_mib, start_server, stop_server  # noqa: E402
from serve_soak import send  # noqa: E402

from nasseg.serving.resolve import resolve_onnx  # noqa: E402
from nasseg.zoo.io import atomic_write_text  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "serve_bombs.json"
GOAL_MIB = 2.5 * 1024


def bomb_png(side: int) -> bytes:
    """A flat 16-bit RGBA PNG of ``side`` x ``side`` (written by hand: Pillow writes no 16-bit RGBA):
    a few hundred KB that decode to side^2 pixels of 8 bytes each."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = b"\x00" + b"\x03\xe8" * 4 * side  # filter 0, then RGBA samples of 1000
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 16, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def run(args: argparse.Namespace) -> dict:
    home = Path(tempfile.mkdtemp(prefix="nasseg-bombs-"))
    onnx = resolve_onnx(args.model, cache_dir=home / "onnx")
    port = free_port()
    process = start_server(onnx, home, port, args.threads, home / "server.log")
    try:
        idle = server_rss_mib(process.pid)
        body = multipart("image", "bomb.png", bomb_png(args.side))
        form = f"multipart/form-data; boundary={BOUNDARY}"
        peak, stop = [idle], threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak.append(server_rss_mib(process.pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        start = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            answers = list(pool.map(lambda _: send(port, "POST", "/inspect", body, form, timeout=180),
                                    range(args.concurrency)))  # fmt: skip
        seconds = time.perf_counter() - start
        stop.set()
        sampler.join()
        alive, _ = send(port, "GET", "/readyz", b"", "")
        statuses = Counter(status for status, _ in answers)
        json_answers = sum(1 for _, text in answers if _is_json(text))
    finally:
        code = stop_server(process)
    report = {
        "benchmark": "serve_bombs", "model": args.model, "concurrency": args.concurrency,
        "frame": f"{args.side}x{args.side} 16-bit RGBA PNG, {len(body)} bytes in the request",
        "statuses": {str(k): v for k, v in sorted(statuses.items())}, "json_answers": json_answers,
        "all_json": json_answers == len(answers), "readyz_after": alive, "server_exit_code": code,
        "idle_rss_mib": idle, "peak_rss_mib": max(peak), "goal_mib": GOAL_MIB,
        "under_goal": max(peak) < GOAL_MIB, "seconds": round(seconds, 1),
        "system": {"machine": platform.machine(), "python": platform.python_version()},
    }  # fmt: skip
    atomic_write_text(Path(args.out), json.dumps(report, indent=1, sort_keys=True) + "\n")
    return report


def _is_json(text: bytes) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="unet-small-synth-defects")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--side", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS))
    report = run(parser.parse_args())
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

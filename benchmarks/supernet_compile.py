"""Does ``torch.compile`` pay for the fixed-graph supernets? -> ``search_speed.json["supernet_compile"]``.

Issue 29 item 4. NAS-ASDet's and IAC's supernets keep one graph for a whole stage (NAS-ASDet
recompiles after each pruning, IAC once), so unlike a GA candidate they could amortise a compile.
For each supernet at the CPU search-quality scale (64 px, batch 8, the nets of
``search_speed.py``), in one process: eager training steps per second, ``torch.compile``'d steps
per second (inductor, default mode), the compile time (the first compiled step, less one eager
step), and the steps a stage needs before compiling pays (compile seconds / seconds saved per
step). A search-quality stage has 20-40 weight steps per epoch and 4-10 epochs per stage.

    python benchmarks/supernet_compile.py [--steps 10] [--threads 2] [--limit 900]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from search_speed import BATCH, RESULTS, SIZE, candidates  # noqa: E402

from nasseg.zoo.io import atomic_write_bytes  # noqa: E402
from nasseg.zoo.training.losses import total_loss  # noqa: E402
from nasseg.zoo.versions import library_versions  # noqa: E402

SUPERNETS = ("nas-asdet (supernet, 11 ops)", "iac (supernet on unet-small)")


def step_seconds(model: torch.nn.Module, steps: int) -> tuple[float, float]:
    """(seconds of the first step, mean seconds of the ``steps`` after it) of Adam training."""
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], 1e-3)
    x = torch.randn(BATCH, 3, SIZE, SIZE)
    y = (torch.rand(BATCH, SIZE, SIZE) > 0.9).long()
    model.train()
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        total_loss(model(x), y, "bce_dice").backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return times[0], sum(times[1:]) / steps


def one(name: str, mode: str, steps: int) -> dict[str, float]:
    """One net in one mode, in this process: the first step's and the mean step's seconds."""
    torch.manual_seed(0)
    model = candidates()[name]()
    first, mean = step_seconds(torch.compile(model) if mode == "compiled" else model, steps)
    return {"first_step_s": first, "step_s": mean}


def measure(name: str, steps: int, threads: int, limit: float) -> dict[str, Any]:
    """Eager, then compiled, each in a fresh process (the compiled one stopped after ``limit`` s)."""
    times = {}
    for mode in ("eager", "compiled"):
        command = [sys.executable, __file__, "--one", name, "--mode", mode, "--steps", str(steps),
                   "--threads", str(threads)]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=limit, check=True)
            times[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        except subprocess.TimeoutExpired:
            times[mode] = None
    eager = times["eager"]["step_s"]
    row: dict[str, Any] = {"net": name, "eager_step_s": round(eager, 4), "limit_s": limit}
    if times["compiled"] is None:
        return {**row, "compiled": f"compile + {steps + 1} steps did not finish in {limit:g} s"}
    compiled = times["compiled"]["step_s"]
    compile_seconds = times["compiled"]["first_step_s"] - eager
    saved = eager - compiled
    return {**row, "compiled_step_s": round(compiled, 4), "speedup": round(eager / compiled, 3),
            "compile_s": round(compile_seconds, 1),
            "steps_to_pay_off": round(compile_seconds / saved) if saved > 0 else None}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=float, default=900.0, help="seconds a compiled run may take")
    parser.add_argument("--nets", nargs="+", default=list(SUPERNETS), choices=list(SUPERNETS))
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="eager", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(one(args.one, args.mode, args.steps)))
        return
    rows = []
    for name in args.nets:
        rows.append(measure(name, args.steps, args.threads, args.limit))
        print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    report = json.loads(out.read_text()) if out.is_file() else {}
    report["supernet_compile"] = {"rows": rows, "threads": args.threads, "steps": args.steps, "image_size": SIZE,
                                  "batch_size": BATCH, "load_average": os.getloadavg(),
                                  "library_versions": library_versions()}  # fmt: skip
    atomic_write_bytes(out, (json.dumps(report, indent=1) + "\n").encode())


if __name__ == "__main__":
    main()

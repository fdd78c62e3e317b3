"""Search throughput by executor: candidate-steps per minute of the GA and RENAS -> ``search_speed.json``.

Issue 29 item 4. Each row runs the real ``nasseg search`` command on the same data and candidates
(the GA's first generation of ``--candidates`` U-Nets, RENAS' initial population of as many cells;
each trained ``--steps`` steps at 64 px, batch 4) with one executor:

- ``in-process-1t`` / ``in-process-2t``: ``--workers 1``, one process, torch at 1 or 2 threads;
- ``pool-2x1t``: ``--workers 2`` (two one-thread worker processes);
- ``auto``: no ``--workers``, the default (:class:`nasseg.searchers.executors.AutoExecutor`: a batch
  in one one-thread worker per core, a lone candidate in the main process at 2 threads);
- ``ray-2x1t``: ``--ray local --workers 2`` (two one-thread Ray tasks).

The figure is candidates x steps / wall minutes of the whole command (start-up, spawning and the
final best-net measurement included: what a user waits for). Run it on an idle machine; the
rows of one run are interleaved by round so a change of load hurts their ratios less.

    python benchmarks/search_throughput.py [--candidates 8] [--steps 100] [--rounds 2]
    python benchmarks/search_throughput.py --searchers unet-ga --candidates 32 --key executors_32  # steady state
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "search_speed.json"
MODES = {
    "in-process-1t": (["--workers", "1"], 1),
    "in-process-2t": (["--workers", "1"], 2),
    "pool-2x1t": (["--workers", "2"], 1),
    "auto": ([], 2),
    "ray-2x1t": (["--ray", "local", "--workers", "2"], 1),
}


def search_command(searcher: str, data: Path, out: Path, candidates: int, steps: int, size: int) -> list[str]:
    """The ``nasseg search`` command that trains ``candidates`` candidates of ``steps`` steps each."""
    common = ["--data", str(data), "--image-size", str(size), "--max-images", "64", "--max-val-images", "20",
              "--min-steps", str(steps), "--max-steps", str(steps), "--out", str(out), "--json"]  # fmt: skip
    if searcher == "unet-ga":
        return ["nasseg", "search", "unet-ga", *common, "--widths", "8,16,32,64", "--layers", "5", "-K",
                str(candidates), "-T", "0"]  # fmt: skip
    return ["nasseg", "search", "renas", *common, "-P", str(candidates), "-E", "0", "--final-epochs", "0",
            "--filters", "12"]  # fmt: skip


def time_one(searcher: str, mode: str, data: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run one search in ``mode`` and return its wall time and candidate-steps per minute."""
    options, threads = MODES[mode]
    out = Path(tempfile.mkdtemp(prefix=f"{searcher}-{mode}-", dir=work))  # this run's own folder, removed below
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    env.pop("NASSEG_SEARCH_WORKERS", None)  # every mode says its workers, or takes the default
    start = time.perf_counter()
    done = subprocess.run([*search_command(searcher, data, out, args.candidates, args.steps, args.size), *options],
                          capture_output=True, text=True, env=env, timeout=3600)  # fmt: skip
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{searcher} {mode} failed: {done.stderr.strip().splitlines()[-1:]}")
    trained = len((out / "history.jsonl").read_text().splitlines())
    shutil.rmtree(out)
    return {"searcher": searcher, "mode": mode, "candidates": trained, "steps": args.steps,
            "seconds": round(seconds, 1), "candidate_steps_per_minute": round(trained * args.steps / seconds * 60, 1)}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per searcher and mode: the median rate over rounds, and the ratio to one process at 2 threads."""
    summary: dict[str, Any] = {}
    for searcher in sorted({r["searcher"] for r in rows}):
        rates = {}
        for mode in MODES:
            values = sorted(r["candidate_steps_per_minute"] for r in rows
                            if r["searcher"] == searcher and r["mode"] == mode)  # fmt: skip
            if values:
                rates[mode] = values[len(values) // 2]
        base = rates.get("in-process-2t")
        summary[searcher] = {mode: {"candidate_steps_per_minute": rate,
                                    "vs_in_process_2t": round(rate / base, 2) if base else None}
                             for mode, rate in rates.items()}  # fmt: skip
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--searchers", nargs="+", default=["unet-ga", "renas"], choices=["unet-ga", "renas"])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--work", default=str(ROOT / "work" / "search_throughput"))
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--key", default="executors", help="the results file's key for this run's figures")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT.parent))
    from nasseg.zoo.data.synthetic import make_dataset
    from nasseg.zoo.io import atomic_write_bytes
    from nasseg.zoo.versions import library_versions

    work = Path(args.work)
    data = work / "data"
    if not (data / "dataset.json").is_file() and not (data / "train").is_dir():
        make_dataset("synth-defects", data, n=120, size=args.size, seed=0, difficulty="medium")
    rows = []
    for round_ in range(args.rounds):
        for searcher in args.searchers:
            for mode in args.modes:
                row = {**time_one(searcher, mode, data, work, args), "round": round_}
                print(json.dumps(row), flush=True)
                rows.append(row)
    out = Path(args.out)
    report = json.loads(out.read_text()) if out.is_file() else {}
    earlier = report.get(args.key)  # the last run's figures stay beside this one's (ratios within a run)
    report[args.key] = {"benchmark": "search_throughput", "rows": rows, "summary": summarise(rows),
                           "settings": {"candidates": args.candidates, "steps": args.steps, "size": args.size},
                           **({"earlier": {k: v for k, v in earlier.items() if k != "earlier"}} if earlier else {}),
                           "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
                           "date": time.strftime("%Y-%m-%d"), "library_versions": library_versions()}  # fmt: skip
    atomic_write_bytes(out, (json.dumps(report, indent=1) + "\n").encode())
    print(json.dumps(report[args.key]["summary"], indent=1))


if __name__ == "__main__":
    main()

"""How long the ``nasseg`` CLI takes to answer: ``--help``, ``list``, ``validate``, ``serve --help``.

Each command runs ``--repeats`` times as a fresh process (as a user types it); the median and the
spread of the wall time go to ``benchmarks/results/cli_startup.json``, with the heavy modules
(torch, onnx, onnxruntime, bentoml) each command imported. Light commands import none of them
(commands load lazily, ``nasseg/cli/__init__.py``); a busy machine makes every figure larger.

    python benchmarks/cli_startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "cli_startup.json"
GENOTYPE = Path(__file__).resolve().parents[1] / "genotypes" / "unet-small.json"
COMMANDS = {"help": ["--help"], "list": ["list"], "validate": ["validate", str(GENOTYPE)],
            "serve_help": ["serve", "--help"], "version": ["--version"]}  # fmt: skip
PROBE = ("import sys\nfrom nasseg.cli import main\nsys.argv = ['nasseg', *{args!r}]\n"
         "try:\n    main()\nexcept SystemExit:\n    pass\n"
         "heavy = [m for m in ('torch', 'onnx', 'onnxruntime', 'bentoml') if m in sys.modules]\n"
         "print('HEAVY', heavy, file=sys.stderr)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = {}
    for name, argv in COMMANDS.items():
        times, heavy = [], ""
        for _ in range(args.repeats):
            start = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", PROBE.format(args=argv)], capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            heavy = next((line for line in out.stderr.splitlines() if line.startswith("HEAVY")), "HEAVY ?")
        rows[name] = {"argv": argv, "median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3),
                      "max_s": round(max(times), 3), "heavy_imports": heavy.removeprefix("HEAVY ")}  # fmt: skip
        print(name, rows[name], flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"benchmark": "cli_startup", "repeats": args.repeats, "commands": rows,
                                   "machine": {"platform": platform.platform(), "python": sys.version.split()[0]}},
                                  indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()

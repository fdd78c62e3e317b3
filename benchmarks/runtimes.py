"""Every shipped entry on every runtime, idle and with a busy core -> ``benchmarks/results/runtimes.json``.

Issue 30. For each shipped zoo entry with weights, :func:`serving.runtime_table.runtime_table` on
the zoo data the entry was trained on (test split: 120 images no search saw; 256x256 frames for the
timing, 2 threads, runtimes timed in interleaved rounds), once on an idle machine and once with a
CPU-bound process on the other core (``--conditions``). Rows:
``{"model", "runtime", "condition", "p50_ms", "p99_ms", "images_per_s", "iou", "iou_change",
"mask_agreement", "size_mb", "status"}``, plus per model and condition the runtime ``--pick`` would
choose (fastest within 0.005 IoU of PyTorch fp32), and the CPU flags. Resumable: a finished
(model, condition) is kept in the results file; a later run adds only the runtimes it lacks
(the pick is then over every row; a new run's rows are timed against its own interleaved rounds).

    python benchmarks/runtimes.py [--models NAME ...] [--conditions idle busy-core] [--repeats 30]
                                  [--runtimes onnx-fp32 onnx-int8 --redo]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nasseg.serving.runtime_table import RUNTIME_CHOICES, cpu_flags, pick, runtime_table  # noqa: E402
from nasseg.zoo.io import atomic_write_text  # noqa: E402
from nasseg.zoo.registry import list_models  # noqa: E402
from nasseg.zoo.versions import library_versions  # noqa: E402

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "runtimes.json"
TOLERANCE = 0.005


def shipped_with_weights() -> list[str]:
    from nasseg import zoo
    from nasseg.zoo.weight_files import find_weights

    names = []
    for name in list_models():
        genotype = zoo.get_genotype(name)
        if genotype.weights is None or "test_iou" not in genotype.provenance.metrics:
            continue
        try:
            find_weights(genotype)
        except zoo.WeightsError:
            continue
        names.append(name)
    return names


def data_for(name: str) -> Path:
    """The zoo data set ``name`` was trained on (made by ``zoo_entries``' recipe where missing)."""
    from leaderboard import zoo_data

    from nasseg import zoo

    dataset = (zoo.get_genotype(name).provenance.dataset or "synth-defects").split(" ", 1)[0]
    return zoo_data(dataset)


def run(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out)
    report = json.loads(out.read_text()) if out.is_file() else {"rows": [], "done": [], "picks": {}}
    for name in args.models or shipped_with_weights():
        for condition in args.conditions:
            key = f"{name}/{condition}"
            if args.redo:  # measure these runtimes again, together, in one run's interleaved rounds
                report["rows"] = [r for r in report["rows"] if not (r["model"] == name and r["condition"] == condition
                                                                   and r["runtime"] in args.runtimes)]  # fmt: skip
            have = {r["runtime"] for r in report["rows"] if r["model"] == name and r["condition"] == condition}
            missing = [r for r in args.runtimes if r not in have]
            if not missing:  # a (model, condition) gains only the runtimes it lacks (torch-compile later, say)
                continue
            print(f"[{time.strftime('%H:%M:%S')}] {key}: {', '.join(missing)} ...", flush=True)
            data = data_for(name)  # int8 is calibrated on its train split, as `nasseg export --int8 --calib` is
            result = runtime_table(name, data, missing, threads=2, size=(256, 256), repeats=args.repeats,
                                   busy=condition == "busy-core", calib_dir=data)  # fmt: skip
            for row in result["rows"]:
                if row["runtime"] in have:
                    continue
                report["rows"].append({"model": name, "condition": condition, **{k: row.get(k) for k in (
                    "runtime", "status", "p50_ms", "p99_ms", "images_per_s", "iou", "dice", "iou_change",
                    "mask_agreement", "size_mb", "compile_s")}})  # fmt: skip
            rows = [r for r in report["rows"] if r["model"] == name and r["condition"] == condition]
            chosen = pick({"rows": rows}, TOLERANCE)
            report["picks"][key] = chosen["runtime"] if chosen else None
            if key not in report["done"]:
                report["done"].append(key)
            report.update(benchmark="runtimes", tolerance=TOLERANCE, cpu_flags=cpu_flags(), threads=2,
                          size=[256, 256], library_versions=library_versions(),
                          timing="deploy graphs, batch 1 p50/p99 and batch 8 images/s, interleaved rounds")  # fmt: skip
            atomic_write_text(out, json.dumps(report, indent=1, sort_keys=True) + "\n")
            print(f"[{time.strftime('%H:%M:%S')}] {key}: pick {report['picks'][key]}", flush=True)
    return report


def markdown_table(report: dict[str, Any]) -> str:
    """Per model and condition: each runtime's p50 ms (IoU change), the pick, its speed-up over ORT fp32."""
    runtimes = [r for r in RUNTIME_CHOICES if any(row["runtime"] == r for row in report["rows"])]
    lines = ["| model | condition | " + " | ".join(runtimes) + " | pick (within 0.005 IoU) | pick / onnx-fp32 |",
             "|---|---|" + "---|" * len(runtimes) + "---|---|"]  # fmt: skip
    for key in report["done"]:
        model, condition = key.rsplit("/", 1)
        rows = {r["runtime"]: r for r in report["rows"] if r["model"] == model and r["condition"] == condition}
        cells = []
        for runtime in runtimes:
            row = rows.get(runtime)
            if row is None or row.get("status") != "ok":
                cells.append("-")
                continue
            cells.append(f"{row['p50_ms']:.1f} ({row['iou_change']:+.3f})")
        chosen = report["picks"].get(key)
        base = rows.get("onnx-fp32", {}).get("p50_ms")
        speed = f"{rows[chosen]['p50_ms'] / base:.2f}x" if chosen and base else "-"
        lines.append(f"| `{model}` | {condition} | " + " | ".join(cells) + f" | {chosen or '-'} | {speed} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--conditions", nargs="+", choices=("idle", "busy-core"), default=["idle", "busy-core"])
    parser.add_argument("--runtimes", nargs="+", choices=RUNTIME_CHOICES, default=list(RUNTIME_CHOICES))
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--redo", action="store_true", help="replace the --runtimes rows already in --out")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--markdown", action="store_true", help="print the README table of --out and stop")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown_table(json.loads(Path(args.out).read_text())))
        return
    run(args)


if __name__ == "__main__":
    main()

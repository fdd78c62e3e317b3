"""The zoo leaderboard: shipped searched entries against hand-designed baselines -> ``leaderboard.json`` + plot.

For every entry and baseline of ``benchmarks/results/zoo_entries.json`` (all trained by the one
zoo recipe, see ``benchmarks/zoo_entries.py``) it records, in one run on this machine:

- test IoU and Dice (on the zoo data's test split; with ``--data DIR`` on that folder instead),
- params, and MACs at 256x256 (the shipped net on a 1 x C x 256 x 256 input),
- ONNX Runtime fp32 and int8 p50 latency at batch 1, 256x256, on 1 and 2 threads (the raw graph,
  :func:`serving.bench.bench_model`; int8 calibrated on the data's train split),
- the int8 IoU change (:func:`serving.quantize.compare_int8` on the test split),
- the weight file size (shipped entries; the others' file as it would be).

Resumable: each model's row is written into the results file as it finishes; ``--fresh`` starts
over. ``--table`` prints the README table, ``--plot`` redraws ``leaderboard.png`` (IoU against
MACs, and against fp32 latency), both from the results file.

    python benchmarks/leaderboard.py [--models NAME ...] [--data DIR] [--repeats 20]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

import zoo
from serving.bench import bench_model
from serving.quantize import compare_int8
from zoo.data.folder import open_folder
from zoo.data.synthetic import make_dataset
from zoo.io import atomic_write_bytes
from zoo.training.trainer import evaluate
from zoo.versions import library_versions

ROOT = Path(__file__).resolve().parent
ENTRIES = ROOT / "results" / "zoo_entries.json"
RESULTS = ROOT / "results" / "leaderboard.json"
PLOT = ROOT / "results" / "leaderboard.png"
ZOO_WORK = ROOT / "work" / "zoo-cpu"
SIZE = (256, 256)
GENOTYPES = ROOT.parent / "genotypes"


def zoo_data(name: str, entries: dict[str, Any]) -> Path:
    """The zoo data set ``name`` (regenerated from its recipe where the work folder lacks it)."""
    path = ZOO_WORK / "data" / name
    if not (path / "dataset.json").is_file():
        extra = {"difficulty": "medium"} if name == "synth-defects" else {}
        make_dataset(name, path, n=800, size=64, seed=1, **extra)
    return path


def model_spec(name: str, row: dict[str, Any]) -> Path:
    """The genotype file of an entry or baseline (shipped ones in ``genotypes/``, others in the work folder)."""
    shipped = GENOTYPES / f"{name}.json"
    return shipped if shipped.is_file() else ZOO_WORK / "baselines" / f"{name}.json"


def measure(name: str, row: dict[str, Any], data: Path, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    spec = model_spec(name, row)
    model = zoo.create_model(spec, pretrained=True).eval()
    folder = open_folder(data)
    test = evaluate(model, folder, "test")
    bench = bench_model(model, sizes=[SIZE], threads=(1, 2), runtimes=("onnx-fp32", "onnx-int8"), warmup=3,
                        repeats=args.repeats, throughput_batch=2, calib_dir=data, work_dir=work / name)  # fmt: skip
    latency = {f"{r['runtime']}@{r['threads']}t": r["batch1"]["p50_ms"] for r in bench["rows"]}
    comparison = compare_int8(bench["paths"]["onnx-fp32"], bench["paths"]["onnx-int8"], data, threads=2, repeats=5)
    weights = zoo.resolve_genotype(spec).weights
    file_bytes = (spec.parent / weights.file).stat().st_size if weights else None
    kind = "searched" if "searcher" in row else "baseline"
    return {"name": name, "kind": kind, "searcher": row.get("searcher"), "data": row["data"],
            "shipped": spec.parent == GENOTYPES, "test_iou": test["iou"], "test_dice": test["dice"],
            "params": row["params"], "macs_256": bench["macs"]["256x256"], "p50_ms": latency,
            "int8_iou_delta": comparison.iou_delta, "int8_mask_agreement": comparison.mask_agreement,
            "file_bytes": file_bytes, "weights_dtype": "float16" if file_bytes and file_bytes < 3 * row["params"]
            else "float32", "train_size": row.get("train_size", 64)}  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    entries = json.loads(ENTRIES.read_text())
    rows_in = {**entries["entries"], **entries["baselines"]}
    names = args.models or [n for n in rows_in if model_spec(n, rows_in[n]).is_file()]
    out = Path(args.out)
    report = json.loads(out.read_text()) if out.is_file() and not args.fresh else {}
    report.setdefault("rows", {})
    torch.set_num_threads(2)
    work = ROOT / "work" / "leaderboard"
    for name in names:
        if name in report["rows"]:
            continue
        row = rows_in[name]
        data = Path(args.data) if args.data else zoo_data(row["data"], rows_in)
        print(f"[{time.strftime('%H:%M:%S')}] {name} ...", flush=True)
        report["rows"][name] = measure(name, row, data, args, work)
        report.update(benchmark="leaderboard", size=list(SIZE), library_versions=library_versions(),
                      system=bench_system(), recipe=entries.get("recipe"))  # fmt: skip
        report["goal"] = goal(report["rows"])
        atomic_write_bytes(out, (json.dumps(report, indent=1, sort_keys=True) + "\n").encode())
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {json.dumps(report['rows'][name])}", flush=True)
    return report


def bench_system() -> dict[str, Any]:
    from serving.bench import system_info

    return system_info("cpu")


def goal(rows: dict[str, Any], reference: str = "unet-small") -> dict[str, Any]:
    """Where the project's goal stands per data set: a searched net with IoU >= the hand-designed
    U-Net's at <= 1/5 of its MACs."""
    out = {}
    for data in sorted({r["data"] for r in rows.values()}):
        ref = rows.get(f"{reference}-{data}")
        if ref is None:
            continue
        searched = [r for r in rows.values() if r["data"] == data and r["kind"] == "searched"]
        meeting = [
            r["name"] for r in searched if r["test_iou"] >= ref["test_iou"] and r["macs_256"] * 5 <= ref["macs_256"]
        ]
        best = max(searched, key=lambda r: r["test_iou"], default=None)
        out[data] = {"reference": ref["name"], "reference_iou": ref["test_iou"], "reference_macs": ref["macs_256"],
                     "meeting_goal": meeting, "best_searched": best and best["name"],
                     "best_searched_iou": best and best["test_iou"],
                     "best_searched_macs_ratio": best and best["macs_256"] / ref["macs_256"],
                     "searched_at_or_above_reference": [r["name"] for r in searched
                                                        if r["test_iou"] >= ref["test_iou"]]}  # fmt: skip
    return out


def markdown_table(report: dict[str, Any]) -> str:
    lines = ["| model | kind | data | test IoU | Dice | params | MACs @256 | ORT fp32 p50 1t / 2t "
             "| ORT int8 p50 1t / 2t "
             "| int8 IoU change | weights |", "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    rows = sorted(report["rows"].values(), key=lambda r: (r["data"], -r["test_iou"]))
    for r in rows:
        p = r["p50_ms"]
        size = f"{r['file_bytes'] / 1e6:.1f} MB{' fp16' if r['weights_dtype'] == 'float16' else ''}"
        shipped = size if r["shipped"] else f"not shipped ({size})"
        lines.append(
            f"| `{r['name']}` | {r['searcher'] or 'hand-designed'} | {r['data']} | {r['test_iou']:.3f} | "
            f"{r['test_dice']:.3f} | {r['params'] / 1e6:.2f} M | {r['macs_256'] / 1e9:.2f} G | "
            f"{p['onnx-fp32@1t']:.1f} / {p['onnx-fp32@2t']:.1f} ms | "
            f"{p['onnx-int8@1t']:.1f} / {p['onnx-int8@2t']:.1f} ms"
            f" | {r['int8_iou_delta']:+.3f} | {shipped} |"
        )
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    """IoU against MACs and against ORT fp32 latency (2 threads), per data set; the Pareto front joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    datas = sorted({r["data"] for r in report["rows"].values()})
    fig, axes = plt.subplots(len(datas), 2, figsize=(11, 4.2 * len(datas)), squeeze=False)
    for i, data in enumerate(datas):
        rows = [r for r in report["rows"].values() if r["data"] == data]
        for j, (key, label) in enumerate(
            (("macs", "GMACs at 256x256 (log)"), ("ms", "ORT fp32 p50, 2 threads, ms (log)"))
        ):
            ax = axes[i][j]
            xs = [r["macs_256"] / 1e9 if key == "macs" else r["p50_ms"]["onnx-fp32@2t"] for r in rows]
            for r, x in zip(rows, xs, strict=True):
                ax.scatter(x, r["test_iou"], marker="o" if r["kind"] == "searched" else "s",
                           color="tab:blue" if r["kind"] == "searched" else "tab:gray")  # fmt: skip
                ax.annotate(r["name"].replace(f"-{data}", ""), (x, r["test_iou"]), fontsize=7,
                            xytext=(3, 3), textcoords="offset points")  # fmt: skip
            front, best = [], -1.0
            for x, r in sorted(zip(xs, rows, strict=True), key=lambda t: t[0]):
                if r["test_iou"] > best:
                    front.append((x, r["test_iou"]))
                    best = r["test_iou"]
            ax.plot(*zip(*front, strict=True), color="tab:blue", alpha=0.4, linestyle="--")
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.set_xlabel(label)
            ax.set_ylabel("test IoU")
            ax.set_title(f"{data}: searched (circles) vs hand-designed (squares)", fontsize=9)
            ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None, help="entry / baseline names (default: all)")
    parser.add_argument("--data", default=None, help="score on this dataset folder instead of the zoo data")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--fresh", action="store_true", help="measure every model again")
    parser.add_argument("--table", action="store_true", help="print the README table of --out and stop")
    parser.add_argument("--plot", action="store_true", help="redraw the plot from --out and stop")
    args = parser.parse_args(argv)
    if args.table or args.plot:
        report = json.loads(Path(args.out).read_text())
        if args.plot:
            plot(report, PLOT)
        if args.table:
            print(markdown_table(report))
        return
    report = run(args)
    plot(report, PLOT)
    print(markdown_table(report), file=sys.stderr)


if __name__ == "__main__":
    main()

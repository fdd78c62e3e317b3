"""Latency of the smp baseline and one net of each family: ONNX Runtime fp32 / int8 vs PyTorch eager.

For each model: train it briefly on the bundled ``synth-defects`` set (so that the int8 IoU delta
means something; the 2-core defaults leave some nets barely trained, which the JSON flags with an
``iou_note``: ``--epochs 25 --steps 14 --crop 128 --n 160`` on a GPU trains them properly), then
:func:`serving.bench.bench_model` at 1 x C x 256 x 256 (C = the net's input channels; the
AutoSegNet example is a 1-channel net) on 1 and 2 threads, int8 calibrated on the
set's train split, and :func:`serving.quantize.compare_int8` on its test split. Writes
``benchmarks/results/latency.json``: per model the full benchmark plus the figures of the issue
at 2 threads, 256 x 256: ONNX Runtime fp32 latency / PyTorch eager latency (aim <= 0.8),
achieved GFLOP/s / fp32 matmul GFLOP/s of the same run, int8 / fp32 latency and the int8 IoU
delta. The results file is rewritten after every model. About 15 minutes on an idle 2-core
machine (three times that where other work shares the cores); ``--quick`` (fewer epochs and
repeats, 2 threads only) a few; ``--models`` picks some.

    python benchmarks/latency.py [--quick] [--models smp-unet-resnet18,unet-small] [--epochs 4]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from nasseg import zoo
from nasseg.serving.bench import BENCH_CALIB_COUNT, bench_model, parse_list, parse_threads
from nasseg.serving.quantize import compare_int8
from nasseg.zoo.data.folder import open_folder
from nasseg.zoo.data.synthetic import make_dataset
from nasseg.zoo.training.trainer import TrainConfig, Trainer, evaluate

RESULTS = Path(__file__).parent / "results" / "latency.json"
#: The smp baseline and one net of each family (cellnet, unet, autosegnet, iac-unet).
MODELS = ("smp-unet-resnet18", "nas-asdet-darts-v2", "unet-small", "autosegnet-paper-example",
          "iac-resnet18-darts-v2")  # fmt: skip
SIZE = (256, 256)
FIGURES_THREADS = 2
MIN_USEFUL_IOU = 0.05


def headline(bench: dict[str, Any], threads: int = FIGURES_THREADS) -> dict[str, Any]:
    """The issue's figures at ``threads`` threads and the first size."""
    rows = {r["runtime"]: r for r in bench["rows"] if r["threads"] == threads and (r["height"], r["width"]) == SIZE}
    matmul = bench["matmul_gflops_per_s"][str(threads)]
    out: dict[str, Any] = {"threads": threads, "size": list(SIZE), "matmul_gflops_per_s": matmul}
    for runtime, row in rows.items():
        out[runtime] = {"p50_ms": row["batch1"]["p50_ms"], "p90_ms": row["batch1"]["p90_ms"],
                        "images_per_s_batch8": row["throughput"]["images_per_s"], "gflops_per_s": row["gflops_per_s"],
                        "gflops_over_matmul": row.get("matmul_fraction")}  # fmt: skip
    if "onnx-fp32" in rows and "torch" in rows:
        out["ort_fp32_over_eager"] = round(rows["onnx-fp32"]["batch1"]["p50_ms"] / rows["torch"]["batch1"]["p50_ms"], 3)
        out["meets_0_8_aim"] = out["ort_fp32_over_eager"] <= 0.8
    if "onnx-int8" in rows and "onnx-fp32" in rows:
        out["int8_over_fp32"] = round(rows["onnx-int8"]["batch1"]["p50_ms"] / rows["onnx-fp32"]["batch1"]["p50_ms"], 3)
    return out


def run_model(name: str, data_root: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Train ``name`` briefly, benchmark it, and score fp32 against int8 on the test split."""
    data = open_folder(data_root, seed=args.seed)
    genotype = zoo.get_genotype(name)
    torch.manual_seed(args.seed)
    model = zoo.create_model(genotype)
    config = TrainConfig(epochs=args.epochs, batch_size=8, crop=(args.crop, args.crop), lr=args.lr, seed=args.seed,
                         restart_epochs=args.epochs, max_steps_per_epoch=args.steps,
                         device=args.train_device)  # fmt: skip
    print(f"[{name}] training {args.epochs} epochs at {args.crop} px ...", flush=True)
    trainer = Trainer(model, data, config, work / name / "train")
    trained = trainer.fit()
    model = model.cpu()  # trained on a GPU where there is one; benchmarked on the CPU
    test = evaluate(model, data, "test")
    print(f"[{name}] trained in {trained.seconds:.0f} s, test IoU {test['iou']:.4f}; benchmarking ...", flush=True)
    bench = bench_model(model, sizes=[SIZE], threads=args.threads, warmup=args.warmup, repeats=args.repeats,
                        throughput_batch=8, calib_dir=data_root, work_dir=work / name / "onnx",
                        progress=lambda m: print(f"[{name}]   {m}", flush=True))  # fmt: skip
    comparison = compare_int8(bench["paths"]["onnx-fp32"], bench["paths"]["onnx-int8"], data, threads=FIGURES_THREADS,
                              repeats=10)  # fmt: skip
    figures = headline(bench)
    fp32_iou, int8_iou = comparison.fp32_metrics["iou"], comparison.int8_metrics["iou"]
    figures.update(iou_fp32=round(fp32_iou, 4), iou_int8=round(int8_iou, 4), iou_delta=round(comparison.iou_delta, 4),
                   mask_agreement=round(comparison.mask_agreement, 5), in_channels=bench["in_channels"],
                   gmacs=round(bench["macs"][f"{SIZE[0]}x{SIZE[1]}"] / 1e9, 3))  # fmt: skip
    if fp32_iou < MIN_USEFUL_IOU:
        figures["iou_note"] = (f"fp32 IoU {fp32_iou:.3f} < {MIN_USEFUL_IOU}: the net is barely trained, so the IoU "
                               "delta says little (see mask_agreement); train longer (--epochs, --steps, --crop 128, "
                               "a GPU)")  # fmt: skip
    print(f"[{name}] {json.dumps(figures)}", flush=True)
    training = {"epochs": args.epochs, "crop": args.crop, "steps": len(trained.history) * trainer.steps_per_epoch(),
                "best_epoch": trained.best_epoch, "seconds": round(trained.seconds, 1),
                "pytorch_test_iou": round(test["iou"], 4)}  # fmt: skip
    bench.pop("paths", None)
    return {"model": name, "family": genotype.family, "figures": figures, "training": training,
            "int8_comparison": comparison.to_dict(), "bench": bench}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated registered names")
    parser.add_argument("--quick", action="store_true", help="2 epochs, 8 repeats, 2 threads only")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8, help="optimiser steps per epoch at most")
    parser.add_argument("--crop", type=int, default=64, help="training crop (a multiple of every divisor: 32)")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--n", type=int, default=100, help="synth-defects samples (70/15/15)")
    parser.add_argument("--data-size", type=int, default=128)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--train-threads", type=int, default=FIGURES_THREADS, help="torch threads for training")
    parser.add_argument("--train-device", default="auto", help="auto (CUDA where there is a GPU), cpu or cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.repeats, args.threads, args.n = 2, 8, "2", 60
    args.threads = parse_threads(args.threads)
    if FIGURES_THREADS not in args.threads:
        sys.exit(f"--threads must include {FIGURES_THREADS} (the issue's figures are at {FIGURES_THREADS} threads)")
    torch.set_num_threads(args.train_threads)  # the benchmark sets its own thread counts, row by row
    start = time.perf_counter()
    output: dict[str, Any] = {
        "what": "ONNX Runtime fp32/int8 vs PyTorch eager, raw graph (float NCHW in, logits out), batch 1 at "
        f"1xCx{SIZE[0]}x{SIZE[1]}; figures at {FIGURES_THREADS} threads",
        "data": {"set": "synth-defects", "n": args.n, "size": args.data_size, "seed": args.seed, "split": "70/15/15"},
        "training": {"epochs": args.epochs, "max_steps_per_epoch": args.steps, "crop": args.crop, "batch_size": 8,
                     "threads": args.train_threads, "device": args.train_device,
                     "optimizer": "adam", "lr": args.lr, "note": "brief; at the 2-core defaults too short for a useful "
                     "IoU (each model's iou_note says so): --epochs 25 --steps 14 --crop 128 --n 160 on a GPU"},
        "int8": f"QDQ, per-channel int8 weights, calibrated on {BENCH_CALIB_COUNT} train images (mirror-padded to "
        f"{SIZE[0]}x{SIZE[1]}); IoU on the test split at the images' own size",
        "models": [],
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="nasseg-latency-") as tmp:
        data_root = make_dataset("synth-defects", Path(tmp) / "data", n=args.n, size=args.data_size, seed=args.seed)
        for name in parse_list(args.models, "models"):
            output["models"].append(run_model(name, data_root, Path(tmp), args))
            output["seconds"] = round(time.perf_counter() - start, 1)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(output, indent=2) + "\n")
    print(f"wrote {args.out} ({output['seconds']:.0f} s)")
    for entry in output["models"]:
        f = entry["figures"]
        print(f"{entry['model']:28s} ORT/eager {f.get('ort_fp32_over_eager')}  fp32 GFLOP/s / matmul "
              f"{f['onnx-fp32']['gflops_over_matmul']}  int8/fp32 {f.get('int8_over_fp32')}  "
              f"IoU {f['iou_fp32']} -> {f['iou_int8']} ({f['iou_delta']:+})")  # fmt: skip


if __name__ == "__main__":
    main()

"""Baseline table: three reference nets trained on ``synth-defects`` at 128x128 with one budget.

Models: smp ``Unet`` with a resnet18 encoder (``smp-unet-resnet18``), the pix2pix U-Net
(``unet-pix2pix-256`` cut to its first 7 levels = pix2pix ``unet_128``, so that 128x128 inputs
reach a 1x1 bottleneck; segmentation logits instead of tanh) and the plain U-Net base of the IAC
family (``iac-base-unet-small``, widths 8..128; the classic 64..1024 ``iac-base-unet`` costs about
14 GMACs per 128x128 image, some 30 s per training step on 2 cores, so it is only run when asked
with ``--models iac-base-unet``). Same data, seed, epochs, batch size, optimiser
(Adam, lr 1e-3, cosine) for all. Writes ``benchmarks/results/baselines.json`` with test IoU, F1,
pixel accuracy, parameters, MACs (at 128x128) and wall time. Slow (tens of minutes on 2 cores);
not part of the test suite.

    python benchmarks/baselines.py [--epochs 15] [--n 160]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

import torch

from nasseg import zoo
from nasseg.zoo.data.folder import open_folder
from nasseg.zoo.data.synthetic import make_dataset
from nasseg.zoo.training.trainer import TrainConfig, Trainer, evaluate

RESULTS = Path(__file__).parent / "results" / "baselines.json"
SIZE = 128


def baseline_genotypes() -> dict[str, zoo.Genotype]:
    pix2pix = zoo.get_genotype("unet-pix2pix-256")
    unet_128 = zoo.apply_overrides(
        pix2pix,
        {
            "channels": pix2pix.arch.channels[:7],
            "skips": pix2pix.arch.skips[:6],
            "kind": "segmentation",
            "num_classes": 1,
        },  # fmt: skip
    ).replace(name="unet-pix2pix-128")
    return {
        "smp-unet-resnet18": zoo.get_genotype("smp-unet-resnet18"),
        "unet-pix2pix-128": unet_128,
        "iac-base-unet-small": zoo.get_genotype("iac-base-unet-small"),
        "iac-base-unet": zoo.get_genotype("iac-base-unet"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--n", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="*", default=["smp-unet-resnet18", "unet-pix2pix-128", "iac-base-unet-small"])
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = open_folder(make_dataset("synth-defects", Path(tmp) / "data", n=args.n, size=SIZE, seed=args.seed))
        for name, genotype in baseline_genotypes().items():
            if name not in args.models:
                continue
            genotype = zoo.apply_overrides(genotype, {"input_size": [SIZE, SIZE]})
            torch.manual_seed(args.seed)
            model = zoo.build_model(genotype)
            report = zoo.profile(model, (1, 3, SIZE, SIZE))
            config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, crop=(SIZE, SIZE), lr=1e-3,
                                 seed=args.seed, restart_epochs=args.epochs)  # fmt: skip
            result = Trainer(model, data, config, Path(tmp) / name).fit()
            test = evaluate(model, data, "test")
            rows.append({"model": name, "arch_hash": genotype.arch_hash, "params": report.params_total,
                         "gmacs_128": round(report.macs / 1e9, 3), "test_iou": round(test["iou"], 4),
                         "test_f1": round(test["f1"], 4), "test_pixel_accuracy": round(test["pixel_accuracy"], 5),
                         "best_val_epoch": result.best_epoch, "train_seconds": round(result.seconds, 1)})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    output = {"data": {"set": "synth-defects", "n": args.n, "size": SIZE, "seed": args.seed,
                       "split": "70/15/15"},
              "budget": {"epochs": args.epochs, "batch_size": args.batch_size, "optimizer": "adam", "lr": 1e-3,
                         "scheduler": "cosine (one period)", "loss": "bce_dice"},
              "machine": {"platform": platform.platform(), "threads": 2, "torch": torch.__version__,
                          "load_average_at_end": list(os.getloadavg())},
              "models": rows}  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(output, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()

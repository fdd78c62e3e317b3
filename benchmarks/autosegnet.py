"""AutoSegNet search benchmark on ``synth-membranes`` (the paper's EM case) and ``synth-defects``.

Per data set (generated at the search size and at the transfer size, same seed):

1. Search at ``--size`` (64: the paper's search size) with the LSTM controller and, with the same
   seed and budget, with a uniformly random controller (ENAS' comparison): mean sampled reward
   (validation IoU of sampled children on the shared weights) per epoch.
2. Train from scratch, with one budget (Adam lr 1e-3, cosine, ``--train-epochs``): the derived net
   of the LSTM search, the derived net of the uniform search, ``--random-archs`` random
   architectures of the space, and the base U-Net ``unet-small``; test IoU at the search size.
3. Table 1 transfer: the LSTM-derived genotype trained and evaluated at ``--transfer-size`` (its
   depth recomputed from the size), against ``unet-small`` at that size with the same budget.

Writes ``benchmarks/results/autosegnet.json`` with the scale. Slow; not part of the test suite.

    python benchmarks/autosegnet.py [--epochs 6] [--train-epochs 8] [--n 60] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from nasseg import zoo
from nasseg.searchers import Budget, Searcher
from nasseg.searchers.autosegnet import AutoSegNetConfig, AutoSegNetSpace, AutoSegNetStrategy
from nasseg.zoo.data.folder import open_folder
from nasseg.zoo.data.synthetic import make_dataset
from nasseg.zoo.training.trainer import TrainConfig, Trainer, evaluate

RESULTS = Path(__file__).parent / "results" / "autosegnet.json"


def train_and_test(genotype: zoo.Genotype, data: Path, size: int, args: argparse.Namespace, workdir: Path
                   ) -> dict[str, Any]:  # fmt: skip
    """Train ``genotype`` at ``size`` from scratch with the shared budget; test-split IoU."""
    genotype = zoo.apply_overrides(genotype, {"input_size": [size, size]})
    folder = open_folder(data)
    torch.manual_seed(args.seed)
    model = zoo.build_model(genotype)
    config = TrainConfig(epochs=args.train_epochs, batch_size=args.batch_size, crop=(size, size), lr=1e-3,
                         seed=args.seed, restart_epochs=args.train_epochs, device=args.device)  # fmt: skip
    start = time.perf_counter()
    result = Trainer(model, folder, config, workdir).fit()
    test = evaluate(model, folder, "test", model_device(model))
    params = sum(p.numel() for p in model.parameters())
    return {"test_iou": round(test["iou"], 4), "test_f1": round(test["f1"], 4), "best_val_iou":
            round(float(result.best_metrics.get("iou", 0.0)), 4), "params": params,
            "depth": getattr(model, "num_down", None), "arch_hash": genotype.arch_hash,
            "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def search(data: Path, controller: str, args: argparse.Namespace, run: Path) -> tuple[AutoSegNetStrategy, Any]:
    space = AutoSegNetSpace((args.size, args.size), stem_channels=args.stem_channels,
                            genotype_name=f"autosegnet-{data.name}-{controller}")  # fmt: skip
    config = AutoSegNetConfig(image_size=(args.size, args.size), batch_size=args.batch_size,
                              controller=controller, controller_steps=args.controller_steps,
                              derive_samples=args.derive_samples, epochs_max=args.epochs, lr=args.lr,
                              controller_lr=args.controller_lr, loss=args.search_loss, device=args.device)  # fmt: skip
    strategy = AutoSegNetStrategy(data, space, config, seed=args.seed)
    result = Searcher(strategy, None, Budget(steps=args.epochs), run, seed=args.seed, dataset=str(data)).run()
    return strategy, result


def bench_dataset(name: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    small = make_dataset(name, tmp / f"{name}-{args.size}", n=args.n, size=args.size, seed=args.seed)
    large = make_dataset(name, tmp / f"{name}-{args.transfer_size}", n=args.n, size=args.transfer_size,
                         seed=args.seed)  # fmt: skip
    row: dict[str, Any] = {"data": name}
    searches = {}
    for controller in ("lstm", "uniform"):
        start = time.perf_counter()
        strategy, result = search(small, controller, args, tmp / f"run-{name}-{controller}")
        searches[controller] = (strategy, result)
        row[f"search_{controller}"] = {
            "mean_sampled_reward_per_epoch": [round(c["mean_reward"], 4) for c in strategy.curves],
            "entropy_per_epoch": [round(c["entropy"], 3) for c in strategy.curves],
            "shared_loss_per_epoch": [round(c["shared_loss"], 4) for c in strategy.curves],
            "derived_val_iou_shared_weights": round(result.best.metrics["iou"], 4),
            "seconds": round(time.perf_counter() - start, 1),
            "genotype": result.genotype.to_dict()["arch"],
        }
        print(name, controller, json.dumps(row[f"search_{controller}"]["mean_sampled_reward_per_epoch"]), flush=True)
    trained: dict[str, Any] = {}
    trained["autosegnet_lstm"] = train_and_test(searches["lstm"][1].genotype, small, args.size, args, tmp / "t1")
    trained["autosegnet_uniform"] = train_and_test(searches["uniform"][1].genotype, small, args.size, args,
                                                   tmp / "t2")  # fmt: skip
    space = searches["lstm"][0].space
    rng = random.Random(args.seed + 1)
    randoms = [
        train_and_test(space.sample(rng), small, args.size, args, tmp / f"r{i}") for i in range(args.random_archs)
    ]
    trained["random_archs"] = {"runs": randoms,
                               "mean_test_iou": round(sum(r["test_iou"] for r in randoms) / max(len(randoms), 1), 4),
                               "max_test_iou": max((r["test_iou"] for r in randoms), default=None)}  # fmt: skip
    trained["unet_small"] = train_and_test(zoo.get_genotype("unet-small"), small, args.size, args, tmp / "u1")
    row[f"trained_at_{args.size}"] = trained
    print(name, "trained", json.dumps({k: v.get("test_iou", v.get("mean_test_iou")) for k, v in trained.items()}),
          flush=True)  # fmt: skip
    transfer = {
        "autosegnet_lstm": train_and_test(searches["lstm"][1].genotype, large, args.transfer_size, args, tmp / "t3"),
        "unet_small": train_and_test(zoo.get_genotype("unet-small"), large, args.transfer_size, args, tmp / "u2"),
    }
    row[f"trained_at_{args.transfer_size}"] = transfer
    print(name, "transfer", json.dumps({k: v["test_iou"] for k, v in transfer.items()}), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="*", default=["synth-membranes", "synth-defects"])
    parser.add_argument("--n", type=int, default=60, help="images per data set (70/15/15 split)")
    parser.add_argument("--size", type=int, default=64, help="search (and first training) size")
    parser.add_argument("--transfer-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=6, help="search epochs (shared weights + controller)")
    parser.add_argument("--controller-steps", type=int, default=10)
    parser.add_argument("--derive-samples", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.5, help="shared-weight SGD lr (paper: 0.5)")
    parser.add_argument("--controller-lr", type=float, default=5e-4)
    parser.add_argument("--search-loss", default=None, help="shared-weight loss (default: the paper's bce / ce)")
    parser.add_argument("--stem-channels", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--train-epochs", type=int, default=8, help="training budget of every final net")
    parser.add_argument("--random-archs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            rows.append(bench_dataset(name, args, Path(tmp)))
    output = {
        "scale": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "notes": "mean sampled reward = validation IoU of children sampled from the controller on the shared "
                 "weights (batch statistics); final nets trained from scratch, Adam lr 1e-3 cosine, bce_dice, "
                 "same epochs for all; IoU = foreground IoU on the test split",
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "device": args.device,
                    "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                    "threads": args.threads, "load_average_at_end": list(os.getloadavg())},
        "seconds": round(time.perf_counter() - start, 1),
        "results": rows,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(output, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

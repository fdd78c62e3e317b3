"""Benchmark of the differentiable searchers (NAS-ASDet, IAC) -> ``benchmarks/results/differentiable.json``.

1. IAC supernet, partial channels K=4 vs full mixed ops K=1 at the same batch: training-step time
   and activation memory = bytes of the distinct tensors autograd saves for backward (counted with
   ``torch.autograd.graph.saved_tensors_hooks``; what a training step must hold, device-independent),
   plus the process peak RSS growth (``resource``) as a cross-check.
2. Quality at equal retraining budget: NAS-ASDet's derived net vs a random genotype of its space on
   ``synth-defects``; IAC's implant (stage III) vs its base and vs a random cell of its space on
   ``synth-defects`` and ``synth-membranes``; search wall time of each searcher.

Run small: ``python benchmarks/differentiable.py --n 24 --size 64 --epochs 3`` (the scale is
written into the JSON). Uses one thread (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

from nasseg import zoo
from nasseg.searchers import Budget, Searcher
from nasseg.searchers.differentiable import random_cell
from nasseg.searchers.iac import IacConfig, IacStrategy, IacSupernet
from nasseg.searchers.nas_asdet import NasAsdetConfig, NasAsdetStrategy, supernet_genotype
from nasseg.zoo.data.folder import open_folder
from nasseg.zoo.data.synthetic import make_dataset
from nasseg.zoo.ops import DARTS_OPS, NAS_ASDET_OPS
from nasseg.zoo.training.trainer import TrainConfig, Trainer, evaluate


def supernet_memory(partial: int, batch: int, size: int, channels: int, steps: int = 3) -> dict[str, float]:
    """Training-step time and saved-activation bytes of the IAC supernet at one K."""
    base_genotype = zoo.resolve_genotype("iac-base-unet-small").replace(
        task={"kind": "segmentation", "num_classes": 1, "in_channels": 3, "input_size": [size, size]}
    )
    torch.manual_seed(0)
    config = IacConfig(cell_channels=channels, partial_channels=partial, image_size=(size, size))
    supernet = IacSupernet(zoo.build_model(base_genotype), base_genotype, config)
    x, y = torch.randn(batch, 3, size, size), torch.rand(batch, 1, size, size)
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for step in range(steps + 1):
        saved.clear()
        start = time.perf_counter()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(supernet(x), y)
        loss.backward()
        if step:  # the first step warms up allocators / kernels
            times.append(time.perf_counter() - start)
    rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    return {"K": partial, "step_seconds": sum(times) / len(times), "saved_activation_mib": sum(saved.values()) / 2**20,
            "peak_rss_growth_mib": rss}  # fmt: skip


def retrain(genotype: zoo.Genotype, data: Path, epochs: int, size: int, workdir: Path, pretrained: bool = False,
            freeze_base: bool = False, loss: str | None = None) -> dict[str, float]:  # fmt: skip
    """Train a genotype with the zoo trainer at the benchmark budget; val IoU/Dice."""
    torch.manual_seed(0)
    model = zoo.create_model(genotype, pretrained=pretrained)
    config = TrainConfig(epochs=epochs, batch_size=4, crop=(size, size), optimizer="adam", lr=1e-3, scheduler="none",
                         loss=loss, device="cpu", freeze_base=freeze_base)  # fmt: skip
    Trainer(model, open_folder(data), config, workdir).fit()
    metrics = evaluate(model, open_folder(data), "val", "cpu")
    return {"iou": round(float(metrics["iou"]), 4), "dice": round(float(metrics["dice"]), 4)}


def bench_nas_asdet(data: Path, root: Path, args: argparse.Namespace) -> dict:
    config = NasAsdetConfig(epochs_per_stage=args.stage_epochs, warmup_epochs=args.stage_warmup, batch_size=4,
                            image_size=(args.size, args.size), init_channels=8, stem_multiplier=1,
                            max_steps_per_epoch=args.max_steps)  # fmt: skip
    start = time.perf_counter()
    result = Searcher(NasAsdetStrategy(data, config, seed=0), None, Budget(steps=config.total_epochs),
                      root / "nas-asdet", seed=0, dataset=str(data)).run()  # fmt: skip
    seconds = time.perf_counter() - start
    derived = zoo.Genotype.from_json(root / "nas-asdet" / "best.json")
    rng = random.Random(1)
    rand = supernet_genotype(derived.task.model_dump(), config, random_cell(NAS_ASDET_OPS, rng, True),
                             random_cell(NAS_ASDET_OPS, rng, True), name="nas-asdet-random")  # fmt: skip
    return {"search_seconds": round(seconds, 1), "epochs": config.total_epochs,
            "derived": retrain(derived, data, args.epochs, args.size, root / "t-derived"),
            "random": retrain(rand, data, args.epochs, args.size, root / "t-random"),
            "skip_connects": result.best.extra["skip_connects"]}  # fmt: skip


def bench_iac(data: Path, root: Path, args: argparse.Namespace, name: str) -> dict:
    config = IacConfig(base="iac-base-unet-small", base_epochs=args.epochs, warmup_epochs=args.iac_warmup,
                       search_epochs=args.iac_search, cell_epochs=args.epochs, batch_size=4,
                       image_size=(args.size, args.size), cell_channels=8, max_steps_per_epoch=args.max_steps,
                       record_epochs=())  # fmt: skip
    run = root / f"iac-{name}"
    start = time.perf_counter()
    result = Searcher(IacStrategy(data, config, seed=0), None, Budget(steps=config.total_steps), run, seed=0,
                      dataset=str(data)).run()  # fmt: skip
    total = time.perf_counter() - start
    stage_seconds = {r.key: r.seconds for r in result.history}
    base, implant = result.history[0], result.history[-1]
    rng = random.Random(2)
    random_implant = zoo.Genotype.from_json(run / "implant.json").replace(weights=None)
    random_implant = random_implant.replace(arch={**random_implant.arch.model_dump(),
                                                  "cell": random_cell(DARTS_OPS, rng, False).model_dump()})  # fmt: skip
    path = run / "random-implant.json"
    random_implant.to_json(path)
    random_metrics = retrain(path, data, args.epochs, args.size, run / "t-random", pretrained=True, freeze_base=True,
                             loss="dice")  # fmt: skip
    stage1 = stage_seconds["base"]
    return {"total_seconds": round(total, 1), "stage1_seconds": round(stage1, 1),
            "stage2_3_seconds": round(total - stage1, 1),
            "base": {k: round(base.metrics[k], 4) for k in ("iou", "dice")},
            "implant": {k: round(implant.metrics[k], 4) for k in ("iou", "dice")},
            "random_cell_implant": random_metrics, "skip_connects": implant.extra["skip_connects"]["cell"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24, help="images per synthetic dataset")
    parser.add_argument("--size", type=int, default=64, help="image side")
    parser.add_argument("--epochs", type=int, default=3, help="retraining / stage I / stage III epochs")
    parser.add_argument("--stage-epochs", type=int, default=2, help="NAS-ASDet epochs per stage")
    parser.add_argument("--stage-warmup", type=int, default=1, help="NAS-ASDet warm-up epochs per stage")
    parser.add_argument("--iac-warmup", type=int, default=1)
    parser.add_argument("--iac-search", type=int, default=3)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--memory-size", type=int, default=64)
    parser.add_argument("--memory-batch", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "differentiable.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    report: dict = {"scale": vars(args) | {"out": str(args.out)}, "threads": 1,
                    "memory_measure": "bytes of distinct storages saved for backward (saved_tensors_hooks), "
                                      "plus peak RSS growth from resource.getrusage"}  # fmt: skip
    rows = [supernet_memory(k, args.memory_batch, args.memory_size, 16) for k in (1, 4)]
    report["iac_supernet_partial_channels"] = {
        "batch": args.memory_batch, "size": args.memory_size, "cell_channels": 16, "rows": rows,
        "memory_ratio_k4_vs_k1": round(rows[1]["saved_activation_mib"] / rows[0]["saved_activation_mib"], 3),
        "time_ratio_k4_vs_k1": round(rows[1]["step_seconds"] / rows[0]["step_seconds"], 3),
    }  # fmt: skip
    print(json.dumps(report["iac_supernet_partial_channels"], indent=1), file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = {name: make_dataset(name, root / name, n=args.n, size=args.size, seed=0)
                for name in ("synth-defects", "synth-membranes")}  # fmt: skip
        report["nas_asdet_synth_defects"] = bench_nas_asdet(data["synth-defects"], root, args)
        print(json.dumps(report["nas_asdet_synth_defects"]), file=sys.stderr)
        for name, folder in data.items():
            report[f"iac_{name.replace('-', '_')}"] = bench_iac(folder, root, args, name)
            print(json.dumps(report[f"iac_{name.replace('-', '_')}"]), file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()

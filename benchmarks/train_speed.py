"""Training throughput (images per second) of zoo nets with the zoo trainer, on CPU or CUDA.

For each model: the bundled ``synth-defects`` set at ``--image-size``, ``--warmup`` optimiser
steps untimed, then ``--steps`` timed steps of the real trainer (the loader included, AMP on
CUDA as ``nasseg train`` uses it). Writes ``benchmarks/results/train_speed_<device>.json`` with
images/s, seconds per step, MACs per image and the achieved training GFLOP/s (counted as
3 x forward FLOPs: forward, and backward for inputs and weights).

    python benchmarks/train_speed.py --device cuda --models smp-unet-resnet18,nas-asdet-darts-v2
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from nasseg import zoo
from nasseg.zoo.data.folder import open_folder
from nasseg.zoo.data.synthetic import make_dataset
from nasseg.zoo.training.trainer import TrainConfig, Trainer
from nasseg.zoo.versions import all_library_versions

RESULTS = Path(__file__).parent / "results"
MODELS = "smp-unet-resnet18,unet-small,nas-asdet-darts-v2,autosegnet-paper-example,iac-resnet18-darts-v2"


def measure(
    name: str, data: Path, device: str, size: int, batch_size: int, warmup: int, steps: int, workers: int = 0
) -> dict:
    """Time ``steps`` trainer steps of model ``name`` after ``warmup`` untimed ones."""
    folder = open_folder(data)
    genotype = zoo.apply_overrides(zoo.get_genotype(name), {"num_classes": 1, "input_size": [size, size]})
    torch.manual_seed(0)
    model = zoo.create_model(genotype)
    config = TrainConfig(epochs=1, batch_size=batch_size, crop=(size, size), device=device, scheduler="none",
                         max_steps_per_epoch=warmup + steps, num_workers=workers)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(model, folder, config, tmp)
        times: list[float] = []

        def on_step(event: dict) -> None:
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter())

        trainer.on_step = on_step
        start = time.perf_counter()
        trainer.train_epoch()
    stamps = [start, *times]
    timed = stamps[warmup:]
    seconds = (timed[-1] - timed[0]) / max(len(timed) - 1, 1)
    macs = zoo.profile(zoo.create_model(genotype), input_size=(1, genotype.task.in_channels, size, size)).macs
    return {"model": name, "image_size": size, "batch_size": batch_size, "steps_timed": len(timed) - 1,
            "seconds_per_step": round(seconds, 5), "images_per_s": round(batch_size / seconds, 1),
            "macs_per_image": macs,
            "train_tflops_per_s": round(3 * 2 * macs * batch_size / seconds / 1e12, 3)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", default=MODELS)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--n", type=int, default=200, help="images in the generated data set")
    parser.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = make_dataset("synth-defects", Path(tmp) / "data", n=args.n, size=args.image_size, seed=0)
        for name in args.models.split(","):
            row = measure(
                name, data, args.device, args.image_size, args.batch_size, args.warmup, args.steps, args.workers
            )
            print(json.dumps(row), flush=True)
            rows.append(row)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    result = {"device": args.device, "device_name": device_name, "threads": torch.get_num_threads(),
              "loader_workers": args.workers,
              "amp": "bfloat16 autocast on CUDA (the trainer's default), none on CPU",
              "versions": all_library_versions() | {"torch_runtime": torch.__version__}, "rows": rows}  # fmt: skip
    out = args.out or RESULTS / f"train_speed_{args.device.split(':')[0]}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

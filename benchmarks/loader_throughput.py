"""Does data loading starve the trainer? Loader images/s against training images/s on CPU.

Makes ``synth-defects`` (``--n`` samples at ``--size``), then measures
1. the loader alone: images/s of the training DataLoader (decode cache warm, seeded augmentation,
   random crops), for 0 and 2 worker processes;
2. training: images/s of forward + backward + Adam steps of a small net (``--model``) at the same
   batch size and crop.
Writes ``benchmarks/results/loader_throughput.json``; the loader should be several times faster.

    python benchmarks/loader_throughput.py [--model unet-small] [--batch-size 8] [--crop 128]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from nasseg import zoo
from nasseg.zoo.data.augment import Augment
from nasseg.zoo.data.dataset import SegmentationDataset
from nasseg.zoo.data.folder import open_folder
from nasseg.zoo.data.synthetic import make_dataset
from nasseg.zoo.training.losses import total_loss

RESULTS = Path(__file__).parent / "results" / "loader_throughput.json"


def loader_rate(dataset: SegmentationDataset, batch_size: int, workers: int, batches: int) -> float:
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True,
                                         num_workers=workers, persistent_workers=workers > 0)  # fmt: skip
    seen, start = 0, None
    while seen < batches:
        for _batch in loader:
            if start is None:  # the first batch pays for worker start-up
                start = time.perf_counter()
                continue
            seen += 1
            if seen >= batches:
                break
    return batches * batch_size / (time.perf_counter() - start)


def training_rate(model: torch.nn.Module, dataset: SegmentationDataset, batch_size: int, steps: int) -> float:
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    batch = [dataset[i] for i in range(batch_size)]
    images, masks = torch.stack([b[0] for b in batch]), torch.stack([b[1] for b in batch])
    model.train()
    for step in range(steps + 2):
        if step == 2:
            start = time.perf_counter()
        loss = total_loss(model(images), masks, "bce_dice")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="unet-small")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = make_dataset("synth-defects", Path(tmp) / "data", n=args.n, size=args.size, seed=0)
        folder = open_folder(root)
        dataset = SegmentationDataset(folder.splits["train"], 2, 3, Augment(crop=(args.crop, args.crop)))
        for i in range(len(dataset)):
            dataset.load(i)  # warm the decode cache, as every epoch after the first sees it
        rates = {f"loader_images_per_s_workers_{w}": loader_rate(dataset, args.batch_size, w, args.batches)
                 for w in (0, 2)}  # fmt: skip
        model = zoo.create_model(args.model, input_size=[args.crop, args.crop])
        train = training_rate(model, dataset, args.batch_size, args.steps)
    result = {
        "model": args.model, "batch_size": args.batch_size, "crop": args.crop, "image_size": args.size,
        "threads": args.threads, **{k: round(v, 1) for k, v in rates.items()},
        "training_images_per_s": round(train, 1),
        "loader_to_training_ratio_workers_0": round(rates["loader_images_per_s_workers_0"] / train, 1),
    }  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

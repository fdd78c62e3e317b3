"""What a search can afford: training speed of one candidate of each searcher -> ``search_speed.json``.

For a candidate (or the supernet) of each searcher at the CPU search-quality scale (64 px, batch 8):
training images/s, the achieved GFLOP/s (3 x forward FLOPs per image: forward, and backward for
inputs and weights; FLOPs = 2 x MACs) against a 1024 x 1024 fp32 matmul timed in the same run, at
1 and 2 threads, in contiguous and channels_last memory formats; and the cost of the passes around
training: a validation pass one image at a time against batched (``zoo.training.evaluate`` now
batches), and the MAC count (``searchers.evaluators.measure``) against one training step.

    python benchmarks/search_speed.py [--steps 6] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasseg import zoo
from nasseg.zoo.io import atomic_write_bytes
from nasseg.zoo.training.losses import total_loss
from nasseg.zoo.versions import library_versions

RESULTS = Path(__file__).parent / "results" / "search_speed.json"
SIZE, BATCH = 64, 8
TASK = {"kind": "segmentation", "num_classes": 1, "in_channels": 3, "input_size": [SIZE, SIZE]}


def matmul_gflops(repeats: int = 10) -> float:
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    for _ in range(2):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * 1024**3 * repeats / (time.perf_counter() - start) / 1e9


def candidates() -> dict[str, Callable[[], nn.Module]]:
    """A fresh net per searcher: its candidate, or its supernet / shared net where it trains one."""
    from nasseg.searchers.autosegnet import AutoSegNetSpace
    from nasseg.searchers.autosegnet.shared import SharedAutoSegNet
    from nasseg.searchers.iac import IacConfig, IacSupernet
    from nasseg.searchers.nas_asdet import NasAsdetConfig, NasAsdetSupernet, supernet_genotype
    from nasseg.searchers.renas import RenasSpace
    from nasseg.searchers.unet_ga import UNetSpace

    def ga() -> nn.Module:
        return zoo.build_model(UNetSpace(widths=(8, 16, 32, 64), layers=5, task=TASK).genotype(
            [16, 32, 32, 64, 64], [True, True, True, True]))  # fmt: skip

    def renas() -> nn.Module:
        return zoo.build_model(RenasSpace(TASK, blocks=5, init_channels=12, aspp_channels=32).sample(random.Random(0)))

    def asdet() -> nn.Module:
        config = NasAsdetConfig(image_size=(SIZE, SIZE), init_channels=8, epochs_per_stage=4, warmup_epochs=1)
        active = {k: [list(range(11)) for _ in range(14)] for k in ("normal", "reduce")}
        return NasAsdetSupernet(supernet_genotype(TASK, config), active)

    def iac() -> nn.Module:
        base = zoo.resolve_genotype("iac-base-unet-small").replace(task=TASK)
        return IacSupernet(zoo.build_model(base), base, IacConfig(cell_channels=8, image_size=(SIZE, SIZE)))

    def autosegnet() -> nn.Module:
        space = AutoSegNetSpace((SIZE, SIZE), 3, 1)
        shared = SharedAutoSegNet(space)
        rng = random.Random(0)
        actions = [rng.randrange(d.choices) for d in space.decisions]

        class Child(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.shared = shared

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.shared(x, space.arch(actions))

        return Child()

    return {"unet-ga (candidate)": ga, "renas (candidate)": renas, "nas-asdet (supernet, 11 ops)": asdet,
            "iac (supernet on unet-small)": iac, "autosegnet (shared net, one child)": autosegnet}  # fmt: skip


def train_rate(model: nn.Module, steps: int, channels_last: bool) -> float:
    """Training images/s over ``steps`` Adam steps on random batches (2 untimed first)."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, 1e-3)
    x = torch.randn(BATCH, 3, SIZE, SIZE)
    y = (torch.rand(BATCH, SIZE, SIZE) > 0.9).long()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    model.train()
    for i in range(steps + 2):
        if i == 2:
            start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        total_loss(model(x), y, "bce_dice").backward()
        optimizer.step()
    return BATCH * steps / (time.perf_counter() - start)


def forward_macs(model: nn.Module) -> int:
    return int(zoo.profile(model, input_size=(1, 3, SIZE, SIZE)).macs)


def eval_passes(data: Path) -> dict[str, Any]:
    """A GA candidate scored on 40 validation images: one at a time (before) against batched (now)."""
    from nasseg.searchers.unet_ga import UNetSpace
    from nasseg.zoo.data.folder import open_folder
    from nasseg.zoo.training.trainer import evaluate

    folder = open_folder(data)
    model = zoo.build_model(UNetSpace(widths=(8, 16, 32, 64), layers=5, task=TASK).genotype(
        [16, 32, 32, 64, 64], [True, True, True, True]))  # fmt: skip
    out = {}
    for name, batch in (("one_image_at_a_time", 1), ("batched_16", 16)):
        start = time.perf_counter()
        metrics = evaluate(model, folder, "val", loss="bce_dice", batch_size=batch)
        out[f"{name}_seconds"] = round(time.perf_counter() - start, 3)
        out[f"{name}_loss"] = metrics["loss"]
    out["speedup"] = round(out["one_image_at_a_time_seconds"] / out["batched_16_seconds"], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    rows = []
    for name, make in candidates().items():
        torch.manual_seed(0)
        macs = forward_macs(make())
        for threads in args.threads:
            torch.set_num_threads(threads)
            matmul = matmul_gflops()
            for channels_last in (False, True):
                torch.manual_seed(0)
                rate = train_rate(make(), args.steps, channels_last)
                gflops = 3 * 2 * macs * rate / 1e9
                rows.append({"net": name, "threads": threads, "channels_last": channels_last,
                             "train_images_per_s": round(rate, 1), "forward_macs_per_image": macs,
                             "train_gflops_per_s": round(gflops, 2), "matmul_gflops_per_s": round(matmul, 1),
                             "fraction_of_matmul": round(gflops / matmul, 4)})  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
    torch.set_num_threads(max(args.threads))
    from nasseg.searchers.evaluators import measure
    from nasseg.searchers.unet_ga import UNetSpace
    from nasseg.zoo.data.synthetic import make_dataset

    genotype = UNetSpace(widths=(8, 16, 32, 64), layers=5, task=TASK).genotype([16, 32, 32, 64, 64], [True] * 4)
    start = time.perf_counter()
    measure(genotype, (SIZE, SIZE))
    measure_seconds = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        data = make_dataset("synth-defects", Path(tmp) / "d", n=270, size=SIZE, seed=0, difficulty="medium")
        evaluation = eval_passes(data)
    report = {"benchmark": "search_speed", "image_size": SIZE, "batch_size": BATCH, "rows": rows,
              "evaluation_pass": evaluation, "measure_macs_seconds": round(measure_seconds, 3),
              "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "load_average": os.getloadavg(), "library_versions": library_versions(),
              "note": "timed while other benchmarks shared the cores: ratios within one run hold better than "
                      "absolute rates"}  # fmt: skip
    atomic_write_bytes(Path(args.out), (json.dumps(report, indent=1) + "\n").encode())
    print(json.dumps({"evaluation_pass": evaluation, "measure_macs_seconds": report["measure_macs_seconds"]}))


if __name__ == "__main__":
    main()

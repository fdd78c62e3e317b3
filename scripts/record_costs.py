"""Record every shipped model's parameters and MACs in ``genotypes/costs.json``, which ``nasseg list``
reads without importing torch (segmentation nets at 256x256, the line's frame; other tasks at their
input size). A test checks the file against the models; rerun this after adding or changing one."""

from __future__ import annotations

import json
from pathlib import Path

from nasseg import zoo
from nasseg.zoo.io import atomic_write_text
from nasseg.zoo.registry import shipped_names

OUT = Path(__file__).resolve().parents[1] / "genotypes" / "costs.json"
SEGMENTATION_SIZE = (256, 256)


def cost_of(name: str) -> dict[str, object]:
    """Parameters (the net as deployed: auxiliary heads apart) and MACs of the shipped model ``name``."""
    genotype = zoo.get_genotype(name)
    size = SEGMENTATION_SIZE if genotype.task.kind != "classification" else tuple(genotype.task.input_size)
    size = tuple(max(s, zoo.input_divisor(genotype)) for s in size)
    report = zoo.profile(zoo.create_model(name), (1, genotype.task.in_channels, *size))
    return {"params": int(report.params_total - report.params_auxiliary),
            "params_auxiliary": int(report.params_auxiliary), "macs": int(report.macs), "macs_size": list(size)}


def main() -> None:
    costs = {name: cost_of(name) for name in sorted(shipped_names())}
    atomic_write_text(OUT, json.dumps(costs, indent=1, sort_keys=True) + "\n")
    print(f"recorded {len(costs)} models in {OUT}")


if __name__ == "__main__":
    main()

"""Genotypes of the data and training release: a small U-Net that trains in minutes on a CPU (the demo)."""

from __future__ import annotations

from nasseg.zoo.genotype import Genotype


def genotypes() -> list[Genotype]:
    return [
        Genotype.from_dict(
            {
                "name": "unet-small",
                "family": "unet",
                "task": {"kind": "segmentation", "in_channels": 3, "num_classes": 1, "input_size": [128, 128]},
                "arch": {"channels": [16, 32, 64, 128], "skips": [True, True, True], "norm": "batch", "dropout": 0.0},
                "provenance": {
                    "source": "a pix2pix-style U-Net with 4 levels of 16-128 channels, small enough to train on a CPU "
                    "in minutes (the trainer tests use it)"
                },
            }
        )
    ]

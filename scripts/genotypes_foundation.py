"""Genotypes of the foundation release: published DARTS / PC-DARTS cells, pix2pix unet_256, smp baselines.

The DARTS-format texts are the published ones (DARTS ``cnn/genotypes.py`` DARTS_V2; PC-DARTS
``genotypes.py`` PC_DARTS_cifar); both are built at the published CIFAR-10 setting C=36, 20 layers.
"""

from __future__ import annotations

from nasseg.zoo.genotype import Genotype

DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)
PC_DARTS_CIFAR = (
    "Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 0), ('dil_conv_3x3', 1), "
    "('sep_conv_5x5', 0), ('sep_conv_3x3', 1), ('avg_pool_3x3', 0), ('dil_conv_3x3', 1)], normal_concat=range(2, 6), "
    "reduce=[('sep_conv_5x5', 1), ('max_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_5x5', 2), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 3), ('sep_conv_3x3', 1), ('sep_conv_3x3', 2)], reduce_concat=range(2, 6))"
)
CIFAR_TASK = {"kind": "classification", "in_channels": 3, "num_classes": 10, "input_size": [32, 32]}
SEG_TASK = {"kind": "segmentation", "in_channels": 3, "num_classes": 1, "input_size": [256, 256]}


def darts_cifar(text: str, name: str, searcher: str, source: str) -> Genotype:
    """A published DARTS-format cell at the published CIFAR-10 setting (C=36, 20 layers, auxiliary head)."""
    genotype = Genotype.from_darts(
        text, name=name, task=CIFAR_TASK, init_channels=36, layers=20, head={"type": "classifier", "auxiliary": True}
    )
    return genotype.replace(provenance={"searcher": searcher, "dataset": "cifar10", "source": source})


def genotypes() -> list[Genotype]:
    out = [
        darts_cifar(
            DARTS_V2, "darts-v2-cifar", "darts", "Liu et al., DARTS (ICLR 2019), cnn/genotypes.py DARTS_V2; 3.3M params"
        ),
        darts_cifar(
            PC_DARTS_CIFAR,
            "pc-darts-cifar",
            "pc-darts",
            "Xu et al., PC-DARTS (ICLR 2020), genotypes.py PC_DARTS_cifar; 3.6M params",
        ),
        Genotype.from_dict(
            {
                "name": "unet-pix2pix-256",
                "family": "unet",
                "task": {"kind": "translation", "in_channels": 3, "num_classes": 3, "input_size": [256, 256]},
                "arch": {
                    "channels": [64, 128, 256, 512, 512, 512, 512, 512],
                    "skips": [True] * 7,
                    "norm": "batch",
                    "dropout": 0.5,
                    "dropout_layers": 3,
                },
                "provenance": {
                    "source": "Isola et al., pix2pix (CVPR 2017), unet_256 generator (ngf=64, batch norm, "
                    "dropout); the 'original' of the U-Net translator GA, seed 002"
                },
            }
        ),
    ]
    for arch in ("Unet", "FPN"):
        for encoder in ("resnet18", "resnet34", "mobilenet_v2", "efficientnet-b0"):
            name = f"smp-{arch.lower()}-{encoder}"
            out.append(
                Genotype.from_dict(
                    {
                        "name": name,
                        "family": "smp",
                        "task": SEG_TASK,
                        "arch": {"arch": arch, "encoder": encoder},
                        "provenance": {
                            "source": f"segmentation-models-pytorch {arch} with a {encoder} encoder (baseline)"
                        },
                    }
                )
            )
    return out

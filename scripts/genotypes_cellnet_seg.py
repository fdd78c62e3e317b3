"""Segmentation cell nets: NAS-ASDet's fusion net and RENAS' DeepLabv3, with stand-in cells.

Neither paper's searched cells are in the text (they are figures only), so both genotypes carry
stand-in cells until searched ones exist; ``provenance.source`` says so.

- ``nas-asdet-darts-v2``: NAS-ASDet's network level (seed 003, 3.2.2) with the published DARTS_V2
  cells, both with the eq. 3 residual. "the network consists of 4 normal cells and 4 reduction
  cells" (4.1.5), alternating normal, reduction, ... (eq. 4), behind a stride-2 stem (eq. 10).
  The paper gives no width: ``init_channels`` 16 is our choice; ``stem_multiplier`` 3 is DARTS'.
- ``renas-deeplabv3``: DeepLabv3 on a RENAS cell stack (seed 001, 5.4) at output stride 16, with
  a RENAS-style cell of #B=5 blocks over RENAS_OPS (one cell type, reduce=None: "We use only one
  cell type and reduce the feature map size using cells with stride 2", section 3.3) and RENAS'
  search setting #F=24, #N=2 (section 4.3) on DARTS' ImageNet stem (stride 8, "a deeper stem").
"""

from __future__ import annotations

from genotypes_foundation import DARTS_V2, SEG_TASK

from nasseg.zoo.genotype import Genotype

#: A RENAS-style cell: five blocks, each two (op, input) pairs added; the output concatenates the
#: blocks no other block consumes ("loose": nodes 3, 5 and 6), as NASNet/RENAS cells do.
RENAS_STAND_IN_CELL = {
    "nodes": [
        [["sep_conv_3x3", 1], ["sep_conv_5x5", 0]],
        [["sep_conv_3x3", 0], ["avg_pool_3x3", 1]],
        [["sep_conv_7x7", 1], ["skip_connect", 2]],
        [["max_pool_3x3", 0], ["sep_conv_3x3", 1]],
        [["avg_pool_3x3", 1], ["sep_conv_5x5", 4]],
    ],
    "concat": "loose",
}


def nas_asdet_darts_v2() -> Genotype:
    """NAS-ASDet's 4 + 4 cell fusion net with DARTS_V2 cells (residual on) as a stand-in."""
    imported = Genotype.from_darts(DARTS_V2, name="nas-asdet-darts-v2", task=SEG_TASK)
    arch = {
        "normal": imported.arch.normal.model_copy(update={"residual": True}).model_dump(mode="json"),
        "reduce": imported.arch.reduce.model_copy(update={"residual": True}).model_dump(mode="json"),
        "init_channels": 16,
        "layers": 8,
        "reduction_layers": [1, 3, 5, 7],
        "stem": "stride2",
        "stem_multiplier": 3,
        "head": {"type": "fusion", "levels": 5, "deep_supervision": True},
    }
    return imported.replace(
        arch=arch,
        provenance={
            "searcher": "nas-asdet",
            "source": "STAND-IN: NAS-ASDet network level (Wang et al., seed 003, section 3.2.2; 4 normal + "
            "4 reduction cells, 4.1.5) with the DARTS_V2 cells (Liu et al., DARTS, cnn/genotypes.py) plus the "
            "eq. 3 residual, until searched NAS-ASDet cells exist; init_channels 16 is not from the paper",
        },
    )


def renas_deeplabv3() -> Genotype:
    """DeepLabv3 (ASPP, output stride 16) on a RENAS-style single-cell stack as a stand-in."""
    return Genotype.from_dict(
        {
            "name": "renas-deeplabv3",
            "family": "cellnet",
            "task": SEG_TASK,
            "arch": {
                "normal": RENAS_STAND_IN_CELL,
                "init_channels": 24,
                "layers": 8,
                "stem": "imagenet",
                "head": {"type": "aspp", "output_stride": 16, "rates": [6, 12, 18], "channels": 256},
            },
            "provenance": {
                "searcher": "renas",
                "source": "STAND-IN: DeepLabv3 with ASPP at output stride 16 on a RENAS cell stack (Chen et al., "
                "RENAS, seed 001, section 5.4); the cell is a hand-written RENAS-style cell of 5 blocks over "
                "RENAS_OPS, not RENASNet (whose cell is given only as a figure); #F=24, #N=2 as the RENAS search",
            },
        }
    )


def genotypes() -> list[Genotype]:
    return [nas_asdet_darts_v2(), renas_deeplabv3()]

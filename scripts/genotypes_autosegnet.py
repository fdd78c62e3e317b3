"""Genotypes of the ``autosegnet`` family: the example network of the AutoSegNet paper (seed 000).

Only the text of the paper survives in our copy (figures missing), so the cells are read from
the figures' extracted labels and captions; every guess is stated in ``provenance.source``.
"""

from __future__ import annotations

from nasseg.zoo.genotype import Genotype

# Fig. 2 (downsampling layer, three cells, all reading h[t-1] and h[t]): blocks 1-2 = identity,
# conv_5x5 (cell 1); blocks 4-5 = conv_5x5, conv_5x5 (cell 2); blocks 7-8 = conv_5x5, identity
# (cell 3); block 10 = concat of the three cells.
DOWN = {
    "nodes": [
        [["skip_connect", 0], ["sep_conv_5x5", 1]],
        [["sep_conv_5x5", 0], ["sep_conv_5x5", 1]],
        [["sep_conv_5x5", 0], ["skip_connect", 1]],
    ],
    "concat": "loose",
}
# Fig. 3 (bridge): only "the first cell of the layer is part of the input of the second cell"
# survives; Fig. 6's legend says the bridge "includes conv 5x5, identity".
BRIDGE = {
    "nodes": [
        [["sep_conv_5x5", 1], ["skip_connect", 0]],
        [["sep_conv_5x5", 2], ["skip_connect", 1]],
        [["sep_conv_5x5", 0], ["skip_connect", 1]],
    ],
    "concat": "loose",
}
# Fig. 4 (upsampling): all cells read h[t-1] and h[t]; Fig. 6's legend says it "includes conv 3x3,
# conv 3x3, identity": Fig. 2's wiring with 3x3 convs.
UP = {
    "nodes": [
        [["skip_connect", 0], ["sep_conv_3x3", 1]],
        [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]],
        [["sep_conv_3x3", 0], ["skip_connect", 1]],
    ],
    "concat": "loose",
}

SOURCE = (
    "AutoSegNet (seed 000; IEEE Access vol. 8, 2020), the example network of Figs. 2-4 and 6 (ISBI 2012 EM "
    "segmentation, 512x512x1 in, 512x512x1 out; the paper reports 41.93M parameters for its 512x512 medical net, "
    "a count this genotype does not reproduce). Depth (4 downsampling layers, 1 HDC layer, bridge, 4 upsampling "
    "layers = Fig. 6's 10 layers) and widths (stem 32, doubling per level, bridge 512) come from Fig. 6's shapes. "
    "Assumed (figures missing from our copy): 'conv' = the search space's depthwise-separable conv; which of "
    "h[t-1]/h[t] each op reads (first op h[t-1], second h[t]); the bridge and upsampling cells beyond Fig. 6's "
    "legend (bridge: 'conv 5x5, identity' per cell, cell 2 reading cell 1 as Fig. 3's text says; up: Fig. 2's "
    "wiring with conv 3x3); Fig. 2 has conv_5x5 where Fig. 6's legend says conv 3x3 for the downsampling layer "
    "(Fig. 2 is used); long skips on at all four levels (Fig. 6 draws searched long skips, how many is not in "
    "the text)."
)


def genotypes() -> list[Genotype]:
    return [
        Genotype.from_dict(
            {
                "name": "autosegnet-paper-example",
                "family": "autosegnet",
                "task": {"kind": "segmentation", "in_channels": 1, "num_classes": 1, "input_size": [512, 512]},
                "arch": {
                    "down": DOWN,
                    "bridge": BRIDGE,
                    "up": UP,
                    "long_skips": [True, True, True, True],
                    "stem_channels": 32,
                    "min_size": 16,
                    "min_ratio": 1 / 32,
                },
                "provenance": {"searcher": "autosegnet", "dataset": "isbi2012-em", "source": SOURCE},
            }
        )
    ]

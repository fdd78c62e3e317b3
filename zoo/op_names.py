"""The names of the op table (``zoo.ops.OPS``), importable without torch: the genotype contract
validates op names with them, and reading a genotype should not cost a torch import."""

from __future__ import annotations

OP_NAMES: tuple[str, ...] = (
    "none",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "sep_conv_7x7",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "max_pool_3x3",
    "avg_pool_3x3",
    "hdc_3x3",
    "channel_att",
    "spatial_att",
)

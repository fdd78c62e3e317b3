"""Genotype pictures: every registered model plots; odd cells (twin edges, deep chains, none ops) too."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.figure import Figure

from nasseg import zoo
from nasseg.zoo.genotype import Cell
from nasseg.zoo.plot import plot_cell, plot_genotype

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", zoo.list_models())
def test_every_registered_model_plots(name: str, tmp_path: Path) -> None:
    path = plot_genotype(zoo.get_genotype(name), tmp_path / "sub" / f"{name}.png")
    assert path == tmp_path / "sub" / f"{name}.png"
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000


@pytest.mark.parametrize(
    "cell",
    [
        # twin edges from one input, a none op, a four-step chain, loose output
        Cell(
            nodes=[
                [("sep_conv_3x3", 0), ("max_pool_3x3", 0)],
                [("none", 2), ("skip_connect", 1)],
                [("hdc_3x3", 3), ("channel_att", 0)],
                [("spatial_att", 4), ("dil_conv_5x5", 1)],
            ]
        ),  # fmt: skip
        # one node, residual
        Cell(nodes=[[("sep_conv_5x5", 1)]], concat=[2], residual=True),
        # every node reads every earlier one
        Cell(
            nodes=[
                [("skip_connect", 0), ("skip_connect", 1)],
                [("avg_pool_3x3", 2), ("sep_conv_7x7", 1)],
                [("dil_conv_3x3", 3), ("sep_conv_3x3", 2), ("skip_connect", 0)],
            ],
            concat=[2, 3, 4],
        ),  # fmt: skip
    ],
)
def test_plot_cell_draws_odd_cells(cell: Cell, tmp_path: Path) -> None:
    fig = Figure(figsize=(8, 4))
    ax = fig.subplots()
    assert plot_cell(cell, ax, "odd", inputs=("a", "b"), output="out") is ax
    labels = [text.get_text() for text in ax.texts]
    for edges in cell.nodes:
        for op, _ in edges:
            assert op in labels
    assert {"a", "b", "out"} <= set(labels) and ax.get_title(loc="left") == "odd"
    fig.savefig(tmp_path / "cell.png")
    assert (tmp_path / "cell.png").read_bytes().startswith(PNG_MAGIC)


def test_title_defaults_to_name_family_and_hash(tmp_path: Path) -> None:
    genotype = zoo.get_genotype("unet-small")
    plot_genotype(genotype, tmp_path / "a.png")
    plot_genotype(genotype, tmp_path / "b.png", title="another title")
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "b.png").read_bytes()

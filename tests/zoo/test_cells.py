"""The final-net cell and its supernet twin: shapes, residual, partial channels, derivation."""

from __future__ import annotations

import pytest
import torch

from nasseg.zoo.cells import Cell, DagCell
from nasseg.zoo.genotype import Cell as CellGenotype
from nasseg.zoo.ops import DARTS_OPS, NAS_ASDET_OPS
from nasseg.zoo.supernet import ArchitectureWeights, MixedCell, MixedOp, derive_cell, full_dag_edges

NORMAL = CellGenotype(
    nodes=[
        [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)],
        [("skip_connect", 0), ("dil_conv_3x3", 2)],
        [("channel_att", 3), ("max_pool_3x3", 1)],
    ],
    concat=[2, 3, 4],
)


def test_both_cells_share_one_implementation() -> None:
    assert issubclass(Cell, DagCell) and issubclass(MixedCell, DagCell)
    assert Cell.forward is DagCell.forward and MixedCell.forward is DagCell.forward


@pytest.mark.parametrize(("reduction", "reduction_prev"), [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("residual", [False, True])
def test_cell_shapes(reduction: bool, reduction_prev: bool, residual: bool) -> None:
    genotype = NORMAL.model_copy(update={"residual": residual})
    cell = Cell(genotype, C_pp=12, C_p=10, C=8, reduction=reduction, reduction_prev=reduction_prev)
    size = 15
    s0 = torch.randn(2, 12, size * (2 if reduction_prev else 1), size * (2 if reduction_prev else 1))
    s1 = torch.randn(2, 10, size, size)
    out = cell(s0, s1)
    expected = (size + 1) // 2 if reduction else size
    assert out.shape == (2, 8 * 3, expected, expected)
    assert (cell.residual is not None) == residual
    out.mean().backward()


def test_loose_concat_uses_unconsumed_nodes() -> None:
    loose = NORMAL.model_copy(update={"concat": "loose"})
    assert loose.output_nodes() == [4]
    assert Cell(loose, 8, 8, 4, False, False).multiplier == 1


@pytest.mark.parametrize("reduction", [False, True])
@pytest.mark.parametrize("partial", [1, 4])
def test_mixed_cell_shapes_and_gradients(reduction: bool, partial: int) -> None:
    steps = 3
    cell = MixedCell(steps, 16, 16, 8, reduction, False, DARTS_OPS, partial_channels=partial)
    arch = ArchitectureWeights(["normal"], steps, len(DARTS_OPS), edge_normalisation=True)
    s = torch.randn(2, 16, 9, 9)
    out = cell(s, s, weights=arch.op_weights("normal"), edge_weights=arch.edge_weights("normal"))
    assert out.shape == (2, 8 * steps, 5 if reduction else 9, 5 if reduction else 9)
    out.square().mean().backward()
    assert isinstance(arch.alphas["normal"], torch.nn.Parameter)
    assert arch.alphas["normal"].grad.abs().sum() > 0 and arch.betas["normal"].grad.abs().sum() > 0
    assert cell.num_edges == full_dag_edges(steps) == 9


def test_edge_weights_normalise_per_node() -> None:
    arch = ArchitectureWeights(["normal"], 4, 8, edge_normalisation=True)
    weights = arch.edge_weights("normal")
    assert weights.shape == (14,)
    sums = [weights[0:2].sum(), weights[2:5].sum(), weights[5:9].sum(), weights[9:14].sum()]
    assert torch.allclose(torch.stack(sums), torch.ones(4))
    ones = ArchitectureWeights(["cell"], 4, 8, init_scale=None)
    assert torch.equal(ones.alphas["cell"].detach(), torch.ones(14, 8))


def test_one_hot_mixed_cell_equals_final_cell() -> None:
    """A supernet with one-hot alphas and the chosen edges only computes exactly the final cell."""
    torch.manual_seed(0)
    genotype = CellGenotype(
        nodes=[[("sep_conv_3x3", 0), ("dil_conv_3x3", 1)], [("sep_conv_5x5", 2), ("skip_connect", 0)]],
        concat=[2, 3],
    )
    ops = ["sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "skip_connect"]
    mixed = MixedCell(2, 8, 8, 8, False, False, ops, affine=True).eval()
    final = Cell(genotype, 8, 8, 8, False, False).eval()
    weights = torch.zeros(5, len(ops))
    edge_weights = torch.zeros(5)
    state = {k: v for k, v in mixed.state_dict().items() if k.startswith("preprocess")}
    offsets = [0, 2]
    for node, edges in enumerate(genotype.nodes):
        for index, (op, source) in enumerate(edges):
            flat = offsets[node] + source
            weights[flat, ops.index(op)] = 1.0
            edge_weights[flat] = 1.0
            prefix = f"edges.{node}.{source}.ops.{ops.index(op)}."
            for key, value in mixed.state_dict().items():
                if key.startswith(prefix):
                    state[f"edges.{node}.{index}." + key[len(prefix) :]] = value
    final.load_state_dict(state)
    s0, s1 = torch.randn(1, 8, 10, 10), torch.randn(1, 8, 10, 10)
    torch.testing.assert_close(mixed(s0, s1, weights=weights, edge_weights=edge_weights), final(s0, s1))


def test_per_edge_op_subsets_for_progressive_pruning() -> None:
    keep = {(0, 0): ["sep_conv_3x3", "channel_att"], (0, 1): ["spatial_att"]}
    cell = MixedCell(1, 8, 8, 8, False, False, lambda node, source: keep[(node, source)])
    assert cell.edge_op_names() == [("sep_conv_3x3", "channel_att"), ("spatial_att",)]
    out = cell(
        torch.randn(1, 8, 6, 6),
        torch.randn(1, 8, 6, 6),
        weights=[torch.tensor([0.5, 0.5]), torch.tensor([1.0])],
    )
    assert out.shape == (1, 8, 6, 6)


def test_derive_cell_follows_darts() -> None:
    ops = list(NAS_ASDET_OPS)
    weights = torch.zeros(full_dag_edges(2), len(ops))
    weights[:, ops.index("none")] = 10.0  # "none" never wins
    weights[0, ops.index("sep_conv_3x3")] = 3.0  # node 2 <- 0
    weights[1, ops.index("channel_att")] = 2.0  # node 2 <- 1
    weights[2, ops.index("dil_conv_5x5")] = 1.0  # node 3 <- 0 (weakest of node 3)
    weights[3, ops.index("spatial_att")] = 4.0  # node 3 <- 1
    weights[4, ops.index("skip_connect")] = 5.0  # node 3 <- 2
    cell = derive_cell(weights, ops, steps=2, k=2, residual=True)
    assert cell.nodes == [
        [("sep_conv_3x3", 0), ("channel_att", 1)],
        [("skip_connect", 2), ("spatial_att", 1)],
    ]
    assert cell.concat == [2, 3] and cell.residual
    # edge weights (PC-DARTS beta) re-rank edges
    scaled = derive_cell(weights, ops, steps=2, edge_weights=[1, 1, 100, 1, 1])
    assert ("dil_conv_5x5", 0) in scaled.nodes[1]
    Cell(cell, 8, 8, 8, False, False)  # a derived cell builds


def test_mixed_op_rejects_uneven_partial_channels() -> None:
    with pytest.raises(ValueError, match="cannot be split"):
        MixedOp(10, 1, DARTS_OPS, partial_channels=4)

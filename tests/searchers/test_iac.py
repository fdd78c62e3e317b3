"""IAC search: tan-rescaled capped edge normalisation, partial channels, frozen base, CLI, resume, export."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from nasseg import zoo
from nasseg.cli import app
from nasseg.searchers import Budget, Searcher
from nasseg.searchers.base import SearchError
from nasseg.searchers.differentiable import derive_capped, perturbation_scores
from nasseg.searchers.iac import IacConfig, IacStrategy, IacSupernet, cosine_power_lr
from nasseg.zoo.ops import DARTS_OPS
from nasseg.zoo.supernet import ArchitectureWeights, MixedOp, tan_capped_softmax

runner = CliRunner()
TINY = dict(base="iac-base-unet-small", base_epochs=1, warmup_epochs=1, search_epochs=1, cell_epochs=1, batch_size=2,
            image_size=(32, 32), cell_channels=4, max_steps_per_epoch=1, max_val_images=2,
            record_epochs=(1,))  # fmt: skip


@pytest.fixture(autouse=True)
def one_thread():
    """The test machine is shared: one intra-op thread is much faster than contended ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _reference(beta: np.ndarray) -> np.ndarray:
    """Eqs. 6-10 written out with numpy."""
    t = np.tan(beta)
    psi = np.exp(t - t.max()) / np.exp(t - t.max()).sum()  # eq. 6
    if psi.max() <= 0.5:  # eq. 7
        return psi
    top = int(psi.argmax())
    s_rest = psi.sum() - psi[top]  # eq. 9
    out = 0.5 * psi / s_rest  # eq. 10
    out[top] = 0.5  # eq. 8
    return out


@pytest.mark.parametrize("beta", [[1.0, 1.0], [1.0, 1.0, 1.0], [0.1, 0.2, 0.3, 0.4], [1.5, 0.1, 0.2],
                                  [1.2, 1.1, -0.3, 0.0, 0.5], [-1.0, 1.4]])  # fmt: skip
def test_tan_rescaled_edge_normalisation_and_cap(beta: list[float]) -> None:
    got = tan_capped_softmax(torch.tensor(beta, dtype=torch.float64)).numpy()
    assert got == pytest.approx(_reference(np.array(beta)), abs=1e-9)
    assert got.sum() == pytest.approx(1.0) and got.max() <= 0.5 + 1e-9


def test_architecture_weights_tan_mode_per_node() -> None:
    arch = ArchitectureWeights(["cell"], 4, 8, edge_normalisation=True, init_scale=None, edge_norm="tan")
    assert torch.equal(arch.alphas["cell"], torch.ones(14, 8)) and torch.equal(arch.betas["cell"], torch.ones(14))
    with torch.no_grad():
        arch.betas["cell"].copy_(torch.linspace(-1.2, 1.4, 14))
    weights = arch.edge_weights("cell")
    start = 0
    for node in range(4):
        part = arch.betas["cell"][start : start + node + 2].detach().double().numpy()
        assert weights[start : start + node + 2].detach().double().numpy() == pytest.approx(_reference(part), abs=1e-6)
        start += node + 2
    weights.sum().backward()  # differentiable
    assert arch.betas["cell"].grad is not None


def test_cosine_power_schedule() -> None:
    assert cosine_power_lr(0.01, 0, 10) == pytest.approx(0.01)
    lrs = [cosine_power_lr(0.01, e, 10) for e in range(10)]
    assert all(a > b for a, b in zip(lrs, lrs[1:], strict=False))
    assert cosine_power_lr(0.01, 5, 10, power=1.0) == pytest.approx(0.005)


def test_partial_channels_use_a_quarter_of_the_channels() -> None:
    base_genotype = zoo.resolve_genotype("iac-base-unet-small").replace(
        task={"kind": "segmentation", "num_classes": 1, "in_channels": 3, "input_size": [32, 32]}
    )
    base = zoo.build_model(base_genotype)
    supernet = IacSupernet(base, base_genotype, IacConfig(cell_channels=8, partial_channels=4, image_size=(32, 32)))
    mixed = [m for m in supernet.modules() if isinstance(m, MixedOp)]
    assert len(mixed) == 14 * len(base.skip_channels) and all(m.op_names == DARTS_OPS for m in mixed)
    seen: list[int] = []
    hooks = [op.register_forward_pre_hook(lambda _, args: seen.append(args[0].shape[1])) for m in mixed for op in m.ops]
    out = supernet(torch.randn(2, 3, 32, 32))
    for hook in hooks:
        hook.remove()
    assert out.shape == (2, 1, 32, 32)
    assert seen and set(seen) == {2}  # 8 cell channels / K=4 through every candidate op


def _run(data: Path, out: Path, steps: int, resume: bool = False, **changes) -> tuple[IacStrategy, object]:
    strategy = IacStrategy(data, IacConfig(**{**TINY, **changes}), seed=4)
    result = Searcher(strategy, None, Budget(steps=steps), out, seed=4, dataset=str(data)).run(resume=resume)
    return strategy, result


def test_stages_warmup_and_frozen_base(tiny_defects: Path, tmp_path: Path) -> None:
    # the paper's replace implant: a residual one's zero-initialised align gives alpha no gradient at step 1
    strategy, result = _run(tiny_defects, tmp_path / "run", steps=4, implant="replace")
    assert [r.key for r in result.history] == ["base", "e001", "e002", "implant"]
    assert [r.extra.get("arch_updates") for r in result.history[1:3]] == [False, True]
    # warm-up: alpha and beta still at ones (uniform op weights); after it they have moved
    first, second = strategy.alpha_history
    assert np.allclose(first["weights"]["cell"], 1 / 8) and np.allclose(first["edges"]["cell"][:2], 0.5)
    assert not np.allclose(second["weights"]["cell"], 1 / 8)
    # stage II: the base inside the supernet is bit-identical to the stage I weights (BN statistics included)
    stage_one = load_file(tmp_path / "run" / "base.safetensors")
    for name, tensor in strategy.supernet.implant.base.state_dict().items():
        assert torch.equal(tensor.cpu(), stage_one[name]), name
    # stage III: the trained implant's base too; its cells were trained
    implant = load_file(tmp_path / "run" / "implant.safetensors")
    for name, tensor in stage_one.items():
        assert torch.equal(implant[f"base.{name}"], tensor), name
    assert any(k.startswith("cells.") for k in implant)
    best = zoo.Genotype.from_json(tmp_path / "run" / "best.json")
    assert best.family == "iac-unet" and best.arch.cell is not None and best.weights is not None
    assert result.history[-1].extra["base"]["iou"] == result.history[0].metrics["iou"]
    model = zoo.create_model(tmp_path / "run" / "best.json", pretrained=True)  # a plain zoo implant, trained weights
    assert torch.equal(model.state_dict()["base.head.weight"], stage_one["head.weight"])


def test_cli_end_to_end_and_export(tiny_defects: Path, tmp_path: Path) -> None:
    args = ["search", "iac", "--data", str(tiny_defects), "--base", "iac-base-unet-small", "--image-size", "32",
            "--base-epochs", "1", "--warmup-epochs", "0", "--search-epochs", "1", "--cell-epochs", "1",
            "--batch-size", "2", "--cell-channels", "4", "--max-steps", "1", "--max-val-images", "2",
            "--record-epochs", "1", "--max-skip", "1", "--seed", "2", "--out", str(tmp_path / "run")]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "vs base" in result.output
    lines = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert [line["key"] for line in lines] == ["base", "e001", "implant"]
    assert lines[1]["extra"]["skip_connects"]["cell"] <= 1
    assert (tmp_path / "run" / "genotypes" / "epoch-001.json").is_file()
    assert (tmp_path / "run" / "plots" / "alphas-cell.png").is_file()
    exported = runner.invoke(app, ["export", str(tmp_path / "run" / "best.json"), "--out", str(tmp_path / "m.onnx"),
                                   "--check", "--json"])  # fmt: skip
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.output[exported.output.index("{") :])["check"]["passed"]
    # stage II from the trained base of that run
    again = runner.invoke(app, [*args[:-2], "--out", str(tmp_path / "from2"), "--from-stage", "2",
                                "--base-weights", str(tmp_path / "run" / "base.safetensors"), "--json"])  # fmt: skip
    assert again.exit_code == 0, again.output
    first = [json.loads(line) for line in (tmp_path / "from2" / "history.jsonl").read_text().splitlines()][0]
    assert first["extra"]["how"].startswith("loaded") and first["metrics"] == lines[0]["metrics"]


@pytest.mark.slow
def test_resume_after_interruption_same_genotype(tiny_defects: Path, tmp_path: Path) -> None:
    changes = dict(search_epochs=2)
    _, full = _run(tiny_defects, tmp_path / "full", steps=5, **changes)
    _run(tiny_defects, tmp_path / "part", steps=2, **changes)  # stage I + the warm-up epoch, then "killed"
    _, resumed = _run(tiny_defects, tmp_path / "part", steps=5, resume=True, **changes)
    assert [r.key for r in resumed.history] == [r.key for r in full.history]
    assert [r.genotype.arch_hash for r in resumed.history] == [r.genotype.arch_hash for r in full.history]
    assert [r.metrics["iou"] for r in resumed.history] == pytest.approx([r.metrics["iou"] for r in full.history])


def test_perturbation_scores_measure_the_loss_rise_of_each_op_and_edge() -> None:
    names = [("none", "skip_connect", "sep_conv_3x3")] * 2
    op_mask, edge_mask = torch.ones(2, 3), torch.ones(2)
    useful = torch.tensor([[0.0, 0.1, 2.0], [0.0, 0.5, 0.3]])  # what each op adds to a "loss" when taken out

    def loss() -> float:
        return float(((1 - op_mask) * useful).sum() + 3.0 * (1 - edge_mask[1]))

    ops, edges = perturbation_scores(loss, op_mask, edge_mask, names)
    assert ops[0][0] == -math.inf and ops[0][1:] == pytest.approx([0.1, 2.0])
    assert ops[1][1:] == pytest.approx([0.5, 0.3])
    assert edges == pytest.approx([0.0, 3.0])
    assert torch.equal(op_mask, torch.ones(2, 3)) and torch.equal(edge_mask, torch.ones(2))  # masks restored
    # one node over the two edges: the op whose removal hurts most, the edges ranked by edge_rank
    cell = derive_capped(ops, names, 1, edge_rank=[5.0, 1.0])
    assert cell.nodes == [[("sep_conv_3x3", 0), ("skip_connect", 1)]]
    assert derive_capped(ops, names, 1, edge_rank=[1.0, 5.0]).nodes == [[("skip_connect", 1), ("sep_conv_3x3", 0)]]


def test_perturbation_selection_picks_the_last_epochs_cell_by_loss_rise(tiny_defects: Path, tmp_path: Path) -> None:
    strategy, result = _run(tiny_defects, tmp_path / "run", steps=4, selection="perturbation", implant="replace",
                            perturbation_batches=1)  # fmt: skip
    last = result.history[2]
    assert last.extra["selection"] == "perturbation" and "alpha_cell" in last.extra
    op_scores, edge_scores = last.extra["op_scores"], last.extra["edge_scores"]
    assert len(op_scores) == 14 and len(edge_scores) == 14
    # the derived cell is what the recorded scores give, and stage III trained exactly that cell
    names = [DARTS_OPS] * 14
    rows = [[-math.inf if v is None else v for v in row] for row in op_scores]
    expected = derive_capped(rows, names, 4, edge_rank=edge_scores)
    assert last.genotype.arch.cell == expected
    implant = next(r for r in result.history if r.key == "implant")
    assert implant.genotype.arch.cell == expected
    assert strategy.supernet.masks is None  # scoring left the supernet as it was
    with pytest.raises(SearchError, match="perturbation"):
        IacConfig(**{**TINY, "selection": "perturbation", "select_epoch": 1})


def test_search_align_random_makes_stage_two_cells_matter_and_stage_three_starts_at_the_base() -> None:
    base_genotype = zoo.resolve_genotype("iac-base-unet-small").replace(
        task={"kind": "segmentation", "num_classes": 1, "in_channels": 3, "input_size": [32, 32]}
    )
    aligns = {}
    for mode in ("zero", "random"):
        torch.manual_seed(0)
        base = zoo.build_model(base_genotype)
        config = IacConfig(cell_channels=8, partial_channels=4, image_size=(32, 32), search_align=mode)
        supernet = IacSupernet(base, base_genotype, config)
        aligns[mode] = [float(c.align.weight.abs().sum()) for c in supernet.implant.cells.values()]
    assert all(v == 0 for v in aligns["zero"]) and all(v > 0 for v in aligns["random"])
    with pytest.raises(SearchError, match="search-align"):
        IacConfig(search_align="ones")

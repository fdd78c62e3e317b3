"""NAS-ASDet search: op pruning 7-4-2-1, warm-up, skip cap, end-to-end CLI, resume, train and export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from nasseg import zoo
from nasseg.cli import app
from nasseg.searchers import Budget, Searcher
from nasseg.searchers.differentiable import count_skips, derive_capped
from nasseg.searchers.nas_asdet import KINDS, NasAsdetConfig, NasAsdetStrategy
from nasseg.zoo.data.folder import open_folder
from nasseg.zoo.ops import NAS_ASDET_OPS
from nasseg.zoo.supernet import MixedOp
from nasseg.zoo.training.trainer import TrainConfig, Trainer

runner = CliRunner()
TINY = dict(batch_size=2, image_size=(32, 32), init_channels=4, stem_multiplier=1, max_steps_per_epoch=1,
            max_val_images=2, perturbation_batches=1)  # fmt: skip


@pytest.fixture(autouse=True)
def one_thread():
    """The test machine is shared: one intra-op thread is much faster than contended ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _mixed_ops(strategy: NasAsdetStrategy, kind: str) -> list[list[MixedOp]]:
    """Every cell of ``kind``: its mixed ops in flat edge order."""
    cells = [c for c in strategy.supernet.cells() if ("reduce" if c.reduction else "normal") == kind]
    return [[op for node in cell.edges for op in node] for cell in cells]


def test_progressive_pruning_keeps_top_7_4_2_by_alpha(tiny_defects: Path) -> None:
    strategy = NasAsdetStrategy(tiny_defects, NasAsdetConfig(epochs_per_stage=1, warmup_epochs=0, **TINY))
    strategy._setup()
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for kind in KINDS:
            strategy.supernet.arch.alphas[kind].copy_(torch.randn(14, 11, generator=generator))
    alphas = {k: strategy.supernet.arch.alphas[k].detach().clone() for k in KINDS}
    for keep in (7, 4, 2):
        strategy.supernet.prune(keep)
        for kind in KINDS:
            for edge, active in enumerate(strategy.supernet.active[kind]):
                expected = sorted(torch.topk(alphas[kind][edge], keep).indices.tolist())
                assert active == expected
            for cell in _mixed_ops(strategy, kind):
                for edge, op in enumerate(cell):
                    assert len(op.ops) == keep
                    assert list(op.op_names) == [NAS_ASDET_OPS[i] for i in strategy.supernet.active[kind][edge]]
    # the pruned supernet still runs, with weights of 2 ops per edge
    out = strategy.supernet(torch.randn(2, 3, 32, 32))
    assert len(out) == 6 and out[0].shape == (2, 1, 32, 32)  # main + 5 deep-supervision branches (eq. 16)


def test_warmup_epochs_leave_arch_weights_then_they_move(tiny_defects: Path, tmp_path: Path) -> None:
    config = NasAsdetConfig(epochs_per_stage=2, warmup_epochs=1, **TINY)
    strategy = NasAsdetStrategy(tiny_defects, config, seed=1)
    snapshots = []

    def on_step(report) -> None:
        snapshots.append({k: strategy.supernet.arch.alphas[k].detach().clone() for k in KINDS})

    initial: dict[str, torch.Tensor] = {}
    original_setup = strategy._setup

    def setup(*args, **kwargs):
        original_setup(*args, **kwargs)
        initial.update({k: strategy.supernet.arch.alphas[k].detach().clone() for k in KINDS})

    strategy._setup = setup
    result = Searcher(strategy, None, Budget(steps=2), tmp_path / "run", seed=1).run(on_step=on_step)
    assert [r.extra["arch_updates"] for r in result.history] == [False, True]
    for kind in KINDS:
        assert torch.equal(snapshots[0][kind], initial[kind])  # warm-up: weights only
        assert not torch.equal(snapshots[1][kind], initial[kind])  # then the architecture moves


def test_skip_cap_is_honoured() -> None:
    names = [list(NAS_ASDET_OPS)] * 14
    weights = torch.full((14, 11), 0.05)
    weights[:, NAS_ASDET_OPS.index("skip_connect")] = 0.5  # skip dominates every edge (collapse)
    weights[:, NAS_ASDET_OPS.index("sep_conv_3x3")] = 0.2
    free = derive_capped(weights, names, 4, residual=True)
    assert count_skips(free) == 8
    for cap in (0, 1, 2):
        capped = derive_capped(weights, names, 4, max_skip=cap, residual=True)
        assert count_skips(capped) == cap
        assert all(len(edges) == 2 for edges in capped.nodes)


ARGS = ["search", "nas-asdet", "--data", "DATA", "--image-size", "32", "--epochs-per-stage", "1",
            "--warmup-epochs", "0", "--batch-size", "2", "--init-channels", "4", "--stem-multiplier", "1",
        "--max-steps", "1", "--max-val-images", "2", "--max-skip", "2", "--seed", "3", "--perturbation-batches", "1",
        "--json"]  # fmt: skip


def _cli_run(data: Path, out: Path) -> list[dict]:
    args = [a if a != "DATA" else str(data) for a in ARGS]
    full = runner.invoke(app, [*args, "--out", str(out)])
    assert full.exit_code == 0, full.output
    lines = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [line["extra"]["ops_per_edge"] for line in lines] == [11, 7, 4, 2]
    assert all(max(line["extra"]["skip_connects"].values()) <= 2 for line in lines)
    assert (out / "plots" / "alphas-normal.png").is_file()
    best = zoo.Genotype.from_json(out / "best.json")
    assert best.family == "cellnet" and best.arch.head.type == "fusion" and best.arch.normal.residual
    assert best.arch_hash == lines[-1]["arch_hash"]
    return lines


@pytest.mark.slow
def test_resume_after_interruption_same_genotype(tiny_defects: Path, tmp_path: Path) -> None:
    """A run interrupted after 2 epochs and resumed ends with the same genotype as the CLI run."""
    lines = _cli_run(tiny_defects, tmp_path / "full")
    config = NasAsdetConfig(epochs_per_stage=1, warmup_epochs=0, max_skip=2, **TINY)
    part = tmp_path / "part"
    Searcher(NasAsdetStrategy(tiny_defects, config, seed=3), None, Budget(steps=2), part, seed=3,
             dataset=str(tiny_defects)).run()  # fmt: skip
    resumed = Searcher(NasAsdetStrategy(tiny_defects, config, seed=3), None, Budget(steps=4), part, seed=3,
                       dataset=str(tiny_defects)).run(resume=True)  # fmt: skip
    assert resumed.steps == 4
    assert resumed.genotype.arch_hash == lines[-1]["arch_hash"]
    assert [r.metrics["iou"] for r in resumed.history] == pytest.approx([line["metrics"]["iou"] for line in lines])


def test_cli_end_to_end_train_export(tiny_defects: Path, tmp_path: Path) -> None:
    """4 stages x 1 epoch through the CLI; the derived net trains and exports to ONNX (checked against ORT)."""
    _cli_run(tiny_defects, tmp_path / "full")

    model = zoo.create_model(tmp_path / "full" / "best.json")
    trained = Trainer(model, open_folder(tiny_defects), TrainConfig(epochs=1, batch_size=2, crop=(32, 32),
                      max_steps_per_epoch=1, device="cpu"), tmp_path / "train").fit()  # fmt: skip
    assert trained.history and trained.history[0]["loss"] > 0
    exported = runner.invoke(app, ["export", str(tmp_path / "full" / "best.json"), "--out", str(tmp_path / "m.onnx"),
                                   "--check", "--json", "--allow-random-weights"])  # fmt: skip
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.output[exported.output.index("{") :])["check"]["passed"]


def test_perturbation_selection_derives_the_last_cells_from_loss_rises(tiny_defects: Path, tmp_path: Path) -> None:
    config = NasAsdetConfig(keep=(2, 1), epochs_per_stage=1, warmup_epochs=0, selection="perturbation", **TINY)
    strategy = NasAsdetStrategy(tiny_defects, config, seed=3)
    result = Searcher(strategy, None, Budget(steps=2), tmp_path / "run", seed=3, dataset=str(tiny_defects)).run()
    assert all("selection" not in r.extra for r in result.history[:-1])  # only the last epoch's cells
    last = result.history[-1]
    assert last.extra["selection"] == "perturbation" and set(last.extra["alpha_cells"]) == set(KINDS)
    for kind in KINDS:
        scores = last.extra["perturbation"][kind]
        names = [[NAS_ASDET_OPS[i] for i in ops] for ops in strategy.supernet.active[kind]]
        assert [len(row) for row in scores["op_scores"]] == [len(n) for n in names] == [2] * 14
        rows = [[-float("inf") if v is None else v for v in row] for row in scores["op_scores"]]
        expected = derive_capped(rows, names, 4, residual=True, edge_rank=scores["edge_scores"])
        assert result.genotype.cells()[kind] == expected  # the answer is the perturbation-derived pair
    assert strategy.supernet.masks is None
    # the masks act: an edge's mask zeroes every op weight of that edge, and nothing else
    masks = {k: (torch.ones(14, 2), torch.ones(14)) for k in KINDS}
    masks["normal"][1][3] = 0.0
    strategy.supernet.masks = masks
    masked = strategy.supernet.masked_weights("normal")
    strategy.supernet.masks = None
    plain = strategy.supernet.op_weights("normal")
    assert torch.all(masked[3] == 0) and torch.equal(masked[:3], plain[:3]) and torch.equal(masked[4:], plain[4:])

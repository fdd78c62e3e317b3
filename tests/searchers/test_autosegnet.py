"""AutoSegNet search: controller, REINFORCE, shared weights, stop rule, CLI, resume, train/export."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from nasseg import zoo
from nasseg.cli import app
from nasseg.searchers import Budget, Searcher
from nasseg.searchers.autosegnet import (
    AutoSegNetConfig,
    AutoSegNetSpace,
    AutoSegNetStrategy,
    LSTMController,
    Reinforce,
    SharedAutoSegNet,
    UniformController,
)
from nasseg.searchers.configs import AutoSegNetSearchConfig
from nasseg.searchers.configs.autosegnet import PAPER_OPS
from nasseg.searchers.run_dir import RunDirectory
from nasseg.zoo.families.autosegnet import autosegnet_depth
from nasseg.zoo.ops import AUTOSEGNET_OPS
from nasseg.zoo.supernet import MixedOp

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_space(**kwargs) -> AutoSegNetSpace:
    """32-px space with one downsampling level (min size 8) and 4-channel stem."""
    return AutoSegNetSpace((32, 32), stem_channels=4, min_size=8, **kwargs)


def tiny_config(**kwargs) -> AutoSegNetConfig:
    defaults = dict(image_size=(32, 32), batch_size=2, max_images=4, max_val_images=2, max_steps_per_epoch=2,
                    controller_steps=3, derive_samples=2, epochs_max=3, rerank_steps=2)  # fmt: skip
    return AutoSegNetConfig(**{**defaults, **kwargs})


@pytest.mark.parametrize(("size", "min_size", "cells", "ops"), [(32, 8, 3, 2), (64, 16, 3, 2), (256, 16, 2, 3)])
def test_controller_samples_valid_genotypes_at_builder_depth(size, min_size, cells, ops) -> None:
    space = AutoSegNetSpace((size, size), stem_channels=4, min_size=min_size, cells_per_layer=cells, ops_per_cell=ops)
    depth = autosegnet_depth(size, min_size)[0]
    assert space.depth == depth and sum(d.kind == "skip" for d in space.decisions) == depth
    kinds = [d.layer for d in space.decisions if d.kind == "op"]
    assert kinds == ["down"] * cells * ops + ["bridge"] * cells * ops + ["up"] * cells * ops  # paper's order
    torch.manual_seed(0)
    controller = LSTMController(space)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        sample = controller.sample(generator)
        genotype = space.genotype(sample.actions)
        assert space.actions(genotype) == sample.actions
        assert len(genotype.arch.long_skips) == depth
        for layer in ("down", "bridge", "up"):
            nodes = getattr(genotype.arch, layer).nodes
            assert len(nodes) == cells and all(len(edges) == ops for edges in nodes)
            assert all(op in AUTOSEGNET_OPS and 0 <= src < k + 2 for k, edges in enumerate(nodes) for op, src in edges)
        assert sample.log_prob.item() < 0 and sample.entropy.item() > 0
    model = zoo.build_model(genotype)
    assert model.num_down == depth
    if size <= 64:
        assert model(torch.randn(2, 3, size, size)).shape == (2, 1, size, size)


def test_decisions_are_conditioned_on_earlier_ones() -> None:
    space = tiny_space()
    torch.manual_seed(0)
    controller = LSTMController(space)
    with torch.no_grad():  # ENAS' +-0.1 initialisation forgets within a few decisions; a trained one need not
        for parameter in controller.parameters():
            parameter.mul_(10)
    actions = space.sample_actions(random.Random(0))
    changed = list(actions)
    changed[1] = (changed[1] + 1) % len(space.ops)  # the first op of the first downsampling cell
    before, after = controller.distributions(actions), controller.distributions(changed)
    for index in range(2):  # the decision and those before it see the same history
        assert torch.equal(before[index], after[index])
    for index in (2, len(space.decisions) // 2, len(space.decisions) - 1):  # later ones (bridge ops, skip bit) change
        assert (before[index] - after[index]).abs().max() > 1e-3
    uniform = UniformController(space)
    assert all(
        torch.equal(a, b) for a, b in zip(uniform.distributions(actions), uniform.distributions(changed), strict=True)
    )


def test_reinforce_raises_the_probability_of_a_rewarded_choice() -> None:
    space = tiny_space()
    torch.manual_seed(0)
    controller = LSTMController(space)
    reinforce = Reinforce(controller, lr=0.01)
    target = space.ops.index("sep_conv_5x5")
    op_decisions = [i for i, d in enumerate(space.decisions) if d.kind == "op"]
    reference = [0] * len(space.decisions)

    def probability() -> float:
        dists = controller.distributions(reference)
        return sum(dists[i][target].item() for i in op_decisions) / len(op_decisions)

    start = probability()
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        sample = controller.sample(generator)
        reinforce.update(sample, sum(sample.actions[i] == target for i in op_decisions) / len(op_decisions))
    assert start == pytest.approx(0.25, abs=0.05)
    assert probability() > 0.5


def test_shared_weights_are_shared_and_a_child_uses_its_subset() -> None:
    space = tiny_space()
    shared = SharedAutoSegNet(space)
    rng = random.Random(3)
    a_actions = space.sample_actions(rng)
    b_actions = list(a_actions)
    b_actions[3] = (b_actions[3] + 1) % len(space.ops)  # second op of the first down cell differs
    a, b = space.arch(a_actions), space.arch(b_actions)
    used_a, used_b = shared.modules_used(a), shared.modules_used(b)
    common = set(used_a) & set(used_b)
    assert common and set(used_a) != set(used_b)
    for key in common:
        assert used_a[key] is used_b[key]
        assert all(p is q for p, q in zip(used_a[key].parameters(), used_b[key].parameters(), strict=True))
    shared(torch.randn(2, 3, 32, 32), a).mean().backward()
    used = {id(p) for module in used_a.values() for p in module.parameters()}
    banks = [m for m in shared.modules() if isinstance(m, MixedOp)]
    assert len(banks) == 3 * 2 * (2 + 3 + 4)  # layers x slots x inputs of the three cells
    for p in (p for bank in banks for p in bank.ops.parameters()):
        assert (p.grad is not None) == (id(p) in used)
    # The child computes exactly its final net with the shared weights (weights inherited)
    genotype = space.genotype(a_actions)
    model = zoo.build_model(genotype)
    model.load_state_dict(shared.child_state_dict(genotype))
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(model(x), shared(x, genotype), atol=1e-6)


def test_stop_rule(tiny_defects: Path, tmp_path: Path) -> None:
    space = tiny_space()
    strategy = AutoSegNetStrategy(tiny_defects, space, tiny_config(target_iou=0.0), seed=0)
    assert not strategy.done()
    result = Searcher(strategy, None, Budget(steps=5), tmp_path / "run", seed=0, dataset=str(tiny_defects)).run()
    assert result.steps == 1 and strategy.stop_reason().startswith("target IoU")
    strategy.config.target_iou, strategy.config.target_loss = None, 1e-9
    assert strategy.stop_reason() is None
    strategy.curves[-1]["shared_loss"] = 0.0
    assert strategy.stop_reason().startswith("target loss")
    strategy.config.target_loss, strategy.epoch = None, 3
    assert strategy.stop_reason() == "max epochs (3)"


class Interrupt(KeyboardInterrupt):
    """Stands in for a kill in the middle of a step."""


class KilledStrategy(AutoSegNetStrategy):
    """Dies in the controller phase of step ``die_at`` (after the shared weights have trained)."""

    die_at = 2

    def _train_controller(self):
        if self.epoch == self.die_at:
            raise Interrupt
        return super()._train_controller()


def _searcher(cls, data: Path, out: Path) -> Searcher:
    strategy = cls(data, tiny_space(), tiny_config(), seed=5)
    return Searcher(strategy, None, Budget(steps=3), out, seed=5, dataset=str(data))


def test_resume_after_a_kill_ends_with_the_same_best_genotype(tiny_defects: Path, tmp_path: Path) -> None:
    whole = _searcher(AutoSegNetStrategy, tiny_defects, tmp_path / "whole").run()
    with pytest.raises(Interrupt):
        _searcher(KilledStrategy, tiny_defects, tmp_path / "killed").run()
    assert RunDirectory(tmp_path / "killed").load_checkpoint()["step"] == 2
    resumed = _searcher(AutoSegNetStrategy, tiny_defects, tmp_path / "killed").run(resume=True)
    assert resumed.steps == whole.steps == 3
    assert [r.genotype.arch_hash for r in resumed.history] == [r.genotype.arch_hash for r in whole.history]
    assert [r.metrics.get("mean_reward", r.metrics["iou"]) for r in resumed.history] == pytest.approx(
        [r.metrics.get("mean_reward", r.metrics["iou"]) for r in whole.history]
    )
    assert resumed.genotype.arch_hash == whole.genotype.arch_hash
    keys = [r.key for r in RunDirectory(tmp_path / "killed").history()]
    assert keys == [r.key for r in whole.history] and keys[:3] == ["e001", "e002", "e003"]


def test_the_answer_is_the_best_of_the_top_children_trained_alone(tiny_defects: Path, tmp_path: Path) -> None:
    """Two stages (issue 29): the last derivation's best distinct children by one-shot reward are each
    trained alone, and the best of them on val (IoU x latency factor) is the answer."""
    strategy = AutoSegNetStrategy(tiny_defects, tiny_space(), tiny_config(epochs_max=2, derive_samples=4,
                                                                          rerank_top=3), seed=1)  # fmt: skip
    result = Searcher(strategy, None, Budget(steps=2), tmp_path / "run", seed=1, dataset=str(tiny_defects)).run()
    reranked = [r for r in result.history if r.key.startswith("rerank-")]
    hashes = {strategy.space.genotype(a).arch_hash for a, _ in strategy.derived}
    assert 1 <= len(reranked) == min(3, len(hashes)) and all(r.key.startswith("rerank-e002-") for r in reranked)
    assert len({r.genotype.arch_hash for r in reranked}) == len(reranked)  # distinct children
    best_reward = max(reward for _, reward in strategy.derived)
    top = [a for a, reward in strategy.derived if reward == best_reward][0]
    assert reranked[0].genotype.arch_hash == strategy.space.genotype(top).arch_hash  # ranked by one-shot reward
    assert result.best.key == max(reranked, key=lambda r: r.metrics["iou"]).key
    assert zoo.Genotype.from_json(tmp_path / "run" / "best.json").arch_hash == result.best.genotype.arch_hash
    assert all(r.metrics["iou"] >= 0 and "loss" in r.metrics for r in reranked)  # stand-alone scores
    paper = AutoSegNetStrategy(tiny_defects, tiny_space(), tiny_config(epochs_max=2, rerank_top=0), seed=1)
    result = Searcher(paper, None, Budget(steps=2), tmp_path / "paper", seed=1, dataset=str(tiny_defects)).run()
    assert [r.key for r in result.history] == ["e001", "e002"] and result.best.key == "e002"


def test_cli_op_set_and_fixed_long_skips(tiny_defects: Path, tmp_path: Path) -> None:
    """``--ops`` narrows the op set the controller chooses from; ``--long-skips all`` keeps every
    level's long skip and takes the skip bits out of the decisions."""
    runner = CliRunner()
    common = ["--data", str(tiny_defects), "--image-size", "64", "--min-size", "8", "--stem-channels", "4",
              "--controller-steps", "2", "--derive-samples", "2", "--batch-size", "2", "--max-images", "4",
              "--max-val-images", "2", "--max-steps", "2", "--epochs-max", "2", "--warmup-epochs", "1",
              "--rerank-top", "0"]  # fmt: skip
    result = runner.invoke(app, ["search", "autosegnet", *common, "--ops", "sep_conv_3x3,hdc_3x3", "--long-skips",
                                 "all", "--out", str(tmp_path / "run")])  # fmt: skip
    assert result.exit_code == 0, result.output
    run_config = json.loads((tmp_path / "run" / "run.json").read_text())["config"]
    assert run_config["ops"] == ["sep_conv_3x3", "hdc_3x3"] and run_config["long_skips"] == "all"
    for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines():
        arch = json.loads(line)["genotype"]["arch"]
        edges = [op for layer in ("down", "bridge", "up") for node in arch[layer]["nodes"] for op, _ in node]
        assert set(edges) <= {"sep_conv_3x3", "hdc_3x3"} and all(arch["long_skips"])
    space = AutoSegNetSearchConfig(data=tiny_defects, image_size=64, min_size=8, long_skips="all").space(1)
    assert space.depth == 2 and not [d for d in space.decisions if d.kind == "skip"]
    searched = AutoSegNetSearchConfig(data=tiny_defects, image_size=64, min_size=8).space(1)
    assert len(searched.decisions) == len(space.decisions) + 2
    bad = runner.invoke(app, ["search", "autosegnet", *common, "--ops", "sep_conv_3x3,conv_7x7",
                              "--out", str(tmp_path / "bad")])  # fmt: skip
    assert bad.exit_code == 2 and "--ops" in bad.output and "conv_7x7" in bad.output
    assert not (tmp_path / "bad").exists()


def test_cli_search_then_train_export_and_size_transfer(tiny_defects: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    run = tmp_path / "run"
    common = ["--data", str(tiny_defects), "--image-size", "32", "--min-size", "8", "--stem-channels", "4",
              "--controller-steps", "2", "--derive-samples", "2", "--batch-size", "2", "--max-images", "4",
              "--max-val-images", "2", "--max-steps", "2", "--rerank-steps", "2", "--json"]  # fmt: skip

    def search(*extra: str) -> dict:
        result = runner.invoke(app, ["search", "autosegnet", *common, *extra])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout[result.stdout.index("{") :])

    plan = runner.invoke(app, ["search", "autosegnet", *common[:-1], "--epochs-max", "2", "--rerank-top", "2",
                               "--out", str(tmp_path / "plan")])  # fmt: skip
    assert plan.exit_code == 0, plan.output
    said = " ".join(plan.output.split())
    assert "then the best 2 derived children trained alone, 2 steps each" in said
    assert "val IoU of the best child trained alone" in said
    summary = search("--epochs-max", "2", "--out", str(run))
    assert summary["steps"] == 2 and 3 <= summary["evaluations"] <= 4 and summary["failed"] == 0  # 2 epochs + rerank
    assert (run / "plots" / "controller.png").stat().st_size > 1000
    record = json.loads((run / "history.jsonl").read_text().splitlines()[1])
    assert {"mean_reward", "entropy", "shared_loss", "iou"} <= set(record["metrics"])
    best = zoo.Genotype.from_json(run / "best.json")
    assert best.family == "autosegnet" and best.provenance.searcher == "autosegnet"
    assert zoo.create_model(run / "best.json").num_down == 1
    # the same cells at a larger size: deeper net, other arch hash (the size is part of it)
    bigger = zoo.create_model(run / "best.json", input_size=[128, 128])
    assert bigger.num_down == autosegnet_depth(128, 8)[0] == 3
    assert bigger.genotype.arch.down == best.arch.down and bigger.genotype.arch_hash != best.arch_hash
    # a finished run continues under a larger --epochs-max
    assert search("--epochs-max", "3", "--resume", str(run))["steps"] == 3
    trained = runner.invoke(app, ["train", str(run / "best.json"), "--data", str(tiny_defects), "--epochs", "1",
                                  "--crop", "32", "32", "--batch-size", "2", "--max-steps-per-epoch", "1",
                                  "--device", "cpu", "--out", str(tmp_path / "train"), "--json"])  # fmt: skip
    assert trained.exit_code == 0, trained.output
    onnx = tmp_path / "x.onnx"
    exported = runner.invoke(
        app, ["export", str(run / "best.json"), "--out", str(onnx), "--check", "--allow-random-weights"]
    )
    assert exported.exit_code == 0, exported.output
    assert onnx.stat().st_size > 1000


def test_the_configs_paper_ops_are_the_op_tables() -> None:
    assert PAPER_OPS == AUTOSEGNET_OPS

"""RENAS (seed 001): space, mutation controller, REINFORCE, inheritance, tournament, CLI, resume, ablations."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from nasseg import zoo
from nasseg.cli import app
from nasseg.searchers import Budget, EvalResult, Fidelity, Searcher
from nasseg.searchers.base import Proposal
from nasseg.searchers.evaluators import search_task
from nasseg.searchers.renas import (
    PARTS,
    ControllerTrainer,
    Mutation,
    MutationController,
    RenasEvaluator,
    RenasSpace,
    RenasStrategy,
    reward_of,
)
from nasseg.searchers.renas.evolution import new_edges
from nasseg.searchers.renas.inheritance import edge_prefixes
from nasseg.searchers.renas.plan import TrainingPlan
from nasseg.searchers.run_dir import RunDirectory

FIDELITY = Fidelity(epochs=1, image_size=(32, 32), batch_size=2, max_images=4, max_val_images=2, max_steps_per_epoch=2)
SEG_TASK = {"kind": "segmentation", "num_classes": 1, "in_channels": 3, "input_size": [32, 32]}
CLS_TASK = {"kind": "classification", "num_classes": 2, "in_channels": 3, "input_size": [32, 32]}
runner = CliRunner()


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny nets: one torch thread is several times faster than two on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_space(task: dict = SEG_TASK) -> RenasSpace:
    """B = 5 as the paper; one cell per stage and narrow widths so that a candidate trains in a second."""
    return RenasSpace(task, blocks=5, cells=1, init_channels=8, aspp_channels=16)


def test_space_genotypes_build_for_both_heads() -> None:
    rng = random.Random(0)
    for task, shape in ((SEG_TASK, (2, 1, 32, 32)), (CLS_TASK, (2, 2))):
        space = tiny_space(task)
        genotype = space.sample(rng)
        arch = genotype.arch
        assert genotype.family == "cellnet" and arch.reduce is None and arch.layers == 5
        assert [len(edges) for edges in arch.normal.nodes] == [2] * 5
        assert all(op in space.ops for edges in arch.normal.nodes for op, _ in edges)
        assert arch.head.type == ("aspp" if task is SEG_TASK else "classifier")
        model = zoo.build_model(genotype)
        assert tuple(model.eval()(torch.randn(2, 3, 32, 32)).shape) == shape
        assert space.genotype(space.cell(genotype)).arch_hash == genotype.arch_hash
    paper = RenasSpace(SEG_TASK)  # B=5, N=2, F=24: the shipped example genotype is a cell of this space
    example = zoo.get_genotype("renas-deeplabv3")
    assert paper.genotype(paper.cell(example)).arch.normal == example.arch.normal
    assert paper.layers == example.arch.layers and paper.init_channels == example.arch.init_channels


def test_controller_distributions_and_logit_shaping() -> None:
    space = tiny_space()
    controller = MutationController(space.blocks, space.ops)
    assert controller.embedding.embedding_dim == 100 and controller.encoder.hidden_size == 100
    assert controller.encoder.bidirectional
    stds = [p.std().item() for p in controller.parameters() if p.numel() > 100]
    assert all(0.005 < s < 0.02 for s in stds)  # N(0, 0.01)
    cell = space.sample_cell(random.Random(1))
    assert controller.tokens(cell).shape == (5 * space.blocks,)
    mutations, decisions = controller.sample(cell, torch.Generator().manual_seed(0))
    assert [m.block for m in mutations] == list(range(space.blocks))
    for b, (m, d) in enumerate(zip(mutations, decisions, strict=True)):
        assert d.part_probs.shape == (4,) and d.part_probs.sum().item() == pytest.approx(1.0, abs=1e-6)
        expected = space.num_inputs(b) if m.part in ("i1", "i2") else len(space.ops)
        assert d.value_probs.shape == (expected,) and d.value_probs.sum().item() == pytest.approx(1.0, abs=1e-6)
    raw = torch.tensor([-100.0, -5.0, 0.0, 5.0, 100.0])
    assert torch.allclose(controller.shape_logits(raw), 2.5 * torch.tanh(raw / 5.0))
    with torch.no_grad():  # huge weights: the tanh constant still bounds every logit by 2.5
        for p in controller.parameters():
            p.mul_(1000)
    _, decisions = controller.sample(cell, torch.Generator().manual_seed(0))
    for d in decisions:
        for probs in (d.part_probs, d.value_probs):
            assert (probs.max() / probs.min()).item() <= math.exp(5.0) * 1.001


def test_reinforce_moves_the_policy_towards_rewarded_and_away_from_punished_actions() -> None:
    space = tiny_space()
    cell = space.sample_cell(random.Random(2))
    assert reward_of(0.5) == pytest.approx(1.0) and reward_of(0.0) == 0.0 and math.isfinite(reward_of(1.0))
    for fitness, baseline, direction in ((0.8, None, 1), (0.1, 50.0, -1)):
        torch.manual_seed(0)
        controller = MutationController(space.blocks, space.ops)
        trainer = ControllerTrainer(controller)
        trainer.baseline = baseline
        mutations, _ = controller.sample(cell, torch.Generator().manual_seed(3))
        before = controller.log_prob(cell, mutations)[0].item()
        weights = [p.detach().clone() for p in controller.parameters()]
        trainer.update([(cell, mutations, fitness)])
        after = controller.log_prob(cell, mutations)[0].item()
        assert any(not torch.equal(w, p) for w, p in zip(weights, controller.parameters(), strict=True))
        assert (after - before) * direction > 0, (fitness, before, after)


def test_mutations_are_valid_and_change_only_the_chosen_part(tmp_path: Path) -> None:
    space = tiny_space()
    for mode in ("controller", "random"):
        strategy = RenasStrategy(space, population=4, mutation=mode, seed=3)
        strategy.run = RunDirectory(tmp_path / "run")  # a Searcher's step sets it: the parents' weights are there
        for i in range(10):
            parent_cell = space.sample_cell(random.Random(i))
            parent = {"key": f"p{i}", "cell": [list(b) for b in parent_cell], "fitness": 0.5}
            proposal = strategy.make_child(f"c{i}", parent)
            child = space.cell(proposal.genotype)  # a valid genotype of the space
            mutations = [Mutation.from_list(m) for m in proposal.extra["mutations"]]
            assert [m.block for m in mutations] == list(range(space.blocks))  # one action per block (Alg. 2)
            for m, old, new in zip(mutations, parent_cell, child, strict=True):
                part = PARTS.index(m.part)
                assert new[part] == m.value and m.value in space.choices(m.block, m.part)
                assert [v for k, v in enumerate(new) if k != part] == [v for k, v in enumerate(old) if k != part]
            assert proposal.extra["new_edges"] == new_edges(parent_cell, mutations)
            assert proposal.parent == f"p{i}" and proposal.extra["inherit"] and proposal.extra["epochs"] == 1
            assert proposal.extra["parent_weights"] == str(tmp_path / "run" / "candidates" / f"p{i}" / "weights.pt")


def _parent_on_disk(space: RenasSpace, run: Path) -> tuple[tuple, dict[str, torch.Tensor]]:
    cell = ((1, 0, "sep_conv_3x3", "max_pool_3x3"), (2, 1, "sep_conv_5x5", "skip_connect"),
            (0, 3, "sep_conv_3x3", "avg_pool_3x3"), (4, 1, "sep_conv_7x7", "sep_conv_3x3"),
            (5, 2, "skip_connect", "sep_conv_5x5"))  # fmt: skip
    torch.manual_seed(5)
    parent = zoo.build_model(space.genotype(cell))
    with torch.no_grad():
        for p in parent.parameters():
            p.add_(torch.randn_like(p))  # "trained": unlike any fresh initialisation
    state = {k: v.clone() for k, v in parent.state_dict().items()}
    (run / "candidates" / "par").mkdir(parents=True)
    torch.save(state, run / "candidates" / "par" / "weights.pt")
    return cell, state


def test_inheritance_copies_unchanged_parameters_and_trains_new_ones_at_10x(tiny_defects: Path, tmp_path: Path):
    space = tiny_space(search_task(tiny_defects, (32, 32)))
    cell, parent_state = _parent_on_disk(space, tmp_path)
    # o1 of block 0 becomes a new op; i2 of block 3 is rewired (its op keeps its weights)
    mutations = [Mutation(0, "o1", "sep_conv_5x5"), Mutation(3, "i2", 0)]
    child_cell = space.mutate(cell, mutations)
    fresh_edges = new_edges(cell, mutations)
    assert fresh_edges == [[0, 0]]
    plan = TrainingPlan("child", mode="controller", new_edges=tuple(map(tuple, fresh_edges)), epochs=1,
                        parent_weights=str(RunDirectory(tmp_path).candidate_weights("par")))  # fmt: skip
    proposal = Proposal("kid", space.genotype(child_cell), parent="par", extra=plan.to_extra())
    evaluator = RenasEvaluator(tiny_defects, FIDELITY)
    model = evaluator.build(proposal, 11, tmp_path / "candidates" / "kid")
    new, counts = evaluator.inherit_parent(model, proposal)
    state = model.state_dict()
    fresh = tuple(edge_prefixes(model, fresh_edges))
    assert len(fresh) == len(model.stack.cells)  # the mutated op is new in every cell of the stack
    copied = [k for k, v in state.items() if k in parent_state and v.shape == parent_state[k].shape
              and not k.startswith(fresh)]  # fmt: skip
    assert len(copied) > 0.8 * len(state)
    for key in copied:
        assert torch.equal(state[key], parent_state[key]), key
    assert any(k.startswith(fresh) for k in new)
    for name in new:
        assert not torch.equal(state[name], parent_state.get(name, torch.empty(0))), name
    rewired = "stack.cells.0.edges.3.1."
    assert any(k.startswith(rewired) for k in copied) and not any(k.startswith(rewired) for k in new)
    groups = evaluator.optimizer(model, new).param_groups
    by_name = {g["name"]: g for g in groups}
    assert by_name["inherited"]["lr"] == pytest.approx(1e-3) and by_name["new"]["lr"] == pytest.approx(1e-2)
    new_ids = {id(p) for n, p in model.named_parameters() if n in set(new)}
    assert {id(p) for p in by_name["new"]["params"]} == new_ids
    result = evaluator.evaluate(proposal, 11, tmp_path / "candidates" / "kid")  # fine-tune one pass, score, keep
    total = sum(p.numel() for p in model.parameters())
    assert result.extra["inherited_params"] + result.extra["new_params"] == total
    assert counts == {k: result.extra[k] for k in ("inherited_params", "new_params")}
    assert result.extra["new_params"] > 0 and (tmp_path / "candidates" / "kid" / "weights.pt").is_file()
    # without inheritance the same child is a random initialisation at the base rate
    scratch = evaluator.build(Proposal("s", proposal.genotype), 11, tmp_path / "candidates" / "s")
    assert evaluator.inherit_parent(scratch, Proposal("s", proposal.genotype)) == (None, {})
    assert len(evaluator.optimizer(scratch).param_groups) == 1
    assert not torch.equal(scratch.state_dict()[copied[-1]], parent_state[copied[-1]])


def test_tournament_removes_the_worst_and_picks_the_best() -> None:
    space = tiny_space()
    strategy = RenasStrategy(space, population=5, sample_size=5, seed=0)
    cells = [[list(b) for b in space.sample_cell(random.Random(i))] for i in range(5)]
    strategy.population = [
        {"key": f"k{i}", "cell": cells[i], "fitness": f} for i, f in enumerate([0.3, 0.9, 0.1, 0.5, 0.7])
    ]
    best = strategy.tournament()
    assert best["key"] == "k1" and "k2" not in [ind["key"] for ind in strategy.population]
    assert strategy.dead == ["k2"] and len(strategy.population) == 4
    small = RenasStrategy(space, population=5, sample_size=2, seed=1)
    for _ in range(3):
        small.population = [{"key": f"k{i}", "cell": cells[i], "fitness": float(i)} for i in range(5)]
        parent = small.tournament()
        removed = small.dead[-1]
        assert parent["fitness"] > int(removed[1:]) and removed not in [ind["key"] for ind in small.population]


def test_cli_end_to_end_builds_the_best_through_the_zoo(tiny_defects: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["search", "renas", "--data", str(tiny_defects), "-P", "3", "-E", "2",
                                 "--image-size", "32", "--batch-size", "2", "--max-images", "4",
                                 "--max-val-images", "2", "--max-steps", "2", "--filters", "8", "--cells", "1",
                                 "--aspp-channels", "16", "--final-epochs", "1", "--out", str(out),
                                 "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    history = RunDirectory(out).history()
    kinds = [r.extra["kind"] for r in history]
    assert kinds == ["init"] * 3 + ["child"] * 2 + ["final"] * 3 and all(r.ok for r in history)
    assert all(r.extra["inherit"] and r.extra["new_params"] >= 0 for r in history if r.extra["kind"] == "child")
    assert summary["best"]["key"].startswith("final-")
    model = zoo.create_model(out / "best.json")
    assert model.genotype.arch_hash == summary["best"]["arch_hash"]
    assert model.genotype.provenance.searcher == "renas"
    assert (out / "plots" / "population.png").stat().st_size > 1000
    state = RunDirectory(out).load_checkpoint()["strategy"]
    assert state["final_done"] and len(state["curve"]) == 3 and len(state["controller_log"]) == 2
    alive = {ind["key"] for ind in state["population"]}
    weights = {p.parent.name for p in (out / "candidates").glob("*/weights.pt")}
    assert alive <= weights  # the population's weights stay on disk (resume, inheritance)
    bad = runner.invoke(app, ["search", "renas", "--data", str(tiny_defects), "--mutation", "greedy",
                              "--image-size", "32", "--out", str(tmp_path / "bad")])  # fmt: skip
    assert bad.exit_code == 2 and "--mutation: Input should be 'controller', 'random' or 'sample'" in bad.output
    bad = runner.invoke(app, ["search", "renas", "--data", str(tiny_defects), "--fitness", "loss",
                              "--image-size", "32", "--out", str(tmp_path / "bad")])  # fmt: skip
    assert bad.exit_code == 2 and "not a segmentation metric" in bad.output


class Interrupting(RenasEvaluator):
    """Dies (not as a candidate failure) at its ``after``-th evaluation, like a killed process."""

    def __init__(self, *args, after: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.after, self.calls = after, 0

    def evaluate(self, proposal: Proposal, seed: int, workdir: Path) -> EvalResult:
        self.calls += 1
        if self.calls == self.after:
            raise KeyboardInterrupt
        return super().evaluate(proposal, seed, workdir)


def _searcher(data: Path, out: Path, evaluator: RenasEvaluator, mutation: str = "controller", task=None,
              steps: int = 2, children: int = 2, population: int = 4) -> Searcher:  # fmt: skip
    space = tiny_space(task or search_task(data, (32, 32)))
    strategy = RenasStrategy(space, population=population, sample_size=2, steps=steps, mutation=mutation,
                             children=children, final=False, seed=4)  # fmt: skip
    return Searcher(strategy, evaluator, Budget(steps=steps + 1), out, seed=4, dataset=str(data))


def test_resume_after_a_kill_ends_with_the_same_best(tiny_defects: Path, tmp_path: Path) -> None:
    whole = _searcher(tiny_defects, tmp_path / "whole", Interrupting(tiny_defects, FIDELITY, after=10**6)).run()
    killed = Interrupting(tiny_defects, FIDELITY, after=6)  # dies at the second child of step 1
    with pytest.raises(KeyboardInterrupt):
        _searcher(tiny_defects, tmp_path / "killed", killed).run()
    assert len(RunDirectory(tmp_path / "killed").history()) == 5
    again = Interrupting(tiny_defects, FIDELITY, after=10**6)
    resumed = _searcher(tiny_defects, tmp_path / "killed", again).run(resume=True)
    assert again.calls == 3  # the finished child of step 1 came from the history
    assert [r.key for r in resumed.history] == [r.key for r in whole.history]
    assert [r.genotype.arch_hash for r in resumed.history] == [r.genotype.arch_hash for r in whole.history]
    assert [r.fitness for r in resumed.history] == pytest.approx([r.fitness for r in whole.history])
    assert resumed.genotype.arch_hash == whole.genotype.arch_hash


@pytest.mark.parametrize(("mutation", "task"), [("random", None), ("sample", None), ("controller", CLS_TASK)])
def test_ablation_modes_and_the_classification_proxy_run(tiny_defects: Path, tmp_path: Path, mutation, task) -> None:
    kind = "classification" if task else "segmentation"
    evaluator = RenasEvaluator(tiny_defects, FIDELITY, task=kind)
    result = _searcher(tiny_defects, tmp_path / "run", evaluator, mutation, task, steps=1, children=1,
                       population=3).run()  # fmt: skip
    assert [r.key for r in result.history] == ["s000-00", "s000-01", "s000-02", "s001-00"]
    assert all(r.ok for r in result.history), [r.error for r in result.history]
    child = result.history[-1]
    if mutation == "sample":
        assert child.parent is None and not child.extra.get("inherit") and "new_params" not in child.extra
    else:
        assert child.parent is not None and child.extra["inherit"] and child.extra["inherited_params"] > 0
    if task:
        assert set(child.metrics) == {"balanced_accuracy", "accuracy", "loss"}
        assert child.fitness == child.metrics["balanced_accuracy"]
    else:
        assert child.fitness == child.metrics["iou"] and 0 < child.metrics["soft_dice"] < 1


def test_a_training_plan_travels_as_json_and_comes_back_the_same(tmp_path: Path) -> None:
    plans = [TrainingPlan("init"), TrainingPlan("child", mode="sample"), TrainingPlan("final", of="s003-00"),
             TrainingPlan("child", mode="controller", mutations=((0, "o1", "sep_conv_5x5"),), new_edges=((0, 0),),
                          parent_weights=str(tmp_path / "candidates" / "p" / "weights.pt"), epochs=1)]  # fmt: skip
    for plan in plans:
        extra = json.loads(json.dumps(plan.to_extra()))
        assert TrainingPlan.of_proposal(Proposal("k", tiny_space().genotype(tiny_space().sample_cell(random.Random(0))),
                                                 extra=extra)) == plan  # fmt: skip
    assert plans[3].to_extra()["inherit"] and plans[2].to_extra() == {"kind": "final", "final": True, "of": "s003-00"}

"""Successive halving after a search: rungs, epochs, the pick, resume, and the GA end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nasseg import zoo
from nasseg.cli import app
from nasseg.searchers.base import EvalResult, Proposal, SearchError
from nasseg.searchers.halving import Ranked, SuccessiveHalving, proposal_epochs
from nasseg.searchers.unet_ga import UNetGAStrategy, UNetSpace
from nasseg.searchers.unet_ga.strategy import UNetRandomStrategy

runner = CliRunner()
SEG_TASK = {"kind": "segmentation", "in_channels": 3, "num_classes": 1, "input_size": [32, 32]}
TINY = ["--image-size", "32", "--widths", "4,8,16", "--layers", "3", "--max-images", "4", "--max-val-images", "2",
        "--max-steps", "2", "--min-steps", "2", "--batch-size", "2", "--dropout", "0",
        "--elite-evaluations", "1"]  # fmt: skip


def _space() -> UNetSpace:
    return UNetSpace(widths=(4, 8, 16, 32), layers=4, task=dict(SEG_TASK))


def _scores(strategy, step: int) -> list[EvalResult]:
    """Scores without training: a short training favours narrow nets, a long one wide nets."""
    results = []
    for proposal in strategy.ask(step):
        width = sum(proposal.genotype.arch.channels)
        epochs = proposal_epochs(proposal, 1)
        loss = 0.5 + 0.002 * width - 0.0015 * width * math.log(epochs + 1, 2)
        result = EvalResult(proposal.key, proposal.genotype, step, metrics={"loss": loss}, macs=0, extra=proposal.extra)
        result.fitness = strategy.fitness(result)
        results.append(result)
    return results


def _run(strategy, stop_after: int | None = None) -> list[EvalResult]:
    history: list[EvalResult] = []
    step = 0
    while not strategy.done() and (stop_after is None or step < stop_after):
        results = _scores(strategy, step)
        strategy.tell(step, results)
        history.extend(results)
        step += 1
    return history


def test_rungs_keep_the_best_third_train_longer_and_pick_from_the_last() -> None:
    halving = SuccessiveHalving(rungs=2, rate=3, epochs=2)
    halving.start([Ranked(f"c{i}", {}, fitness) for i, fitness in enumerate([0.1, 0.5, 0.0, 0.3, 0.9, 0.2, 0.4])])
    assert [r.code for r in halving.ladder[0]] == ["c4", "c1", "c6", "c3", "c5", "c0"]  # a failed one never rises
    assert [r.code for r in halving.promoted()] == ["c4", "c1"]  # ceil(6 / 3)
    assert not halving.done()


def test_the_ga_promotes_its_best_and_answers_with_the_longer_trained_pick() -> None:
    strategy = UNetGAStrategy(_space(), population=6, generations=2, gamma=0.0, seed=3, elite_evaluations=1,
                              halving=SuccessiveHalving(rungs=2, rate=3, epochs=1))  # fmt: skip
    history = _run(strategy)
    ranked = len(strategy.cache)
    rung1 = [r for r in history if r.extra.get("rung") == 1]
    rung2 = [r for r in history if r.extra.get("rung") == 2]
    assert len(rung1) == math.ceil(ranked / 3) and len(rung2) == math.ceil(len(rung1) / 3)
    assert {r.extra["epochs"] for r in rung1} == {3} and {r.extra["epochs"] for r in rung2} == {9}
    assert [r.key for r in rung1][0] == "h1-00" and strategy.done()
    # the rung-1 entrants are the GA's best third; the pick is the best of the last rung
    best_ga = sorted(strategy.cache, key=lambda code: -strategy.cache[code]["fitness"])[: len(rung1)]
    assert [r.extra["code"] for r in rung1] == best_ga
    pick = strategy.best(history)
    assert pick.extra["rung"] == 2 and pick.fitness == max(r.fitness for r in rung2)
    without = UNetGAStrategy(_space(), population=6, generations=2, gamma=0.0, seed=3, elite_evaluations=1)
    plain = _run(without)
    assert [r.key for r in plain] == [r.key for r in history if "rung" not in r.extra]  # the GA itself unchanged
    assert sum(without.best(plain).genotype.arch.channels) <= sum(pick.genotype.arch.channels)


def test_halving_resumes_from_the_state_between_rungs() -> None:
    def make():
        return UNetGAStrategy(_space(), population=6, generations=1, gamma=0.0, seed=5, elite_evaluations=1,
                              halving=SuccessiveHalving(rungs=2, rate=2, epochs=1))  # fmt: skip

    whole = make()
    whole_history = _run(whole)
    first = make()
    first_history = _run(first, stop_after=3)  # P_0, P_1, rung 1
    assert any(r.extra.get("rung") == 1 for r in first_history) and not first.done()
    second = make()
    second.load_state_dict(json.loads(json.dumps(first.state_dict())))
    rest = []
    step = 3
    while not second.done():
        results = _scores(second, step)
        second.tell(step, results)
        rest.extend(results)
        step += 1
    assert [r.key for r in first_history + rest] == [r.key for r in whole_history]
    assert second.best(first_history + rest).genotype.arch_hash == whole.best(whole_history).genotype.arch_hash


def test_random_sampling_gets_the_same_promotions() -> None:
    strategy = UNetRandomStrategy(_space(), per_step=4, seed=1, gamma=0.0, total=8,
                                  halving=SuccessiveHalving(rungs=1, rate=3, epochs=1))  # fmt: skip
    history = _run(strategy)
    promoted = [r for r in history if r.extra.get("rung") == 1]
    assert len(promoted) == math.ceil(len(strategy.scored) / 3) and strategy.done()
    assert strategy.best(history).extra["rung"] == 1
    with pytest.raises(SearchError, match="needs a number of samples"):
        UNetRandomStrategy(_space(), total=None, halving=SuccessiveHalving(1))


def test_a_bad_epochs_override_is_refused() -> None:
    genotype = _space().sample(__import__("random").Random(0))
    assert proposal_epochs(Proposal("a", genotype), 2) == 2
    assert proposal_epochs(Proposal("a", genotype, extra={"epochs": 9}), 2) == 9
    with pytest.raises(SearchError, match="candidate b: epochs 0"):
        proposal_epochs(Proposal("b", genotype, extra={"epochs": 0}), 2)


def test_ga_search_with_halving_end_to_end(tmp_path: Path) -> None:
    from nasseg.zoo.data.synthetic import make_dataset

    data = make_dataset("synth-defects", tmp_path / "data", n=12, size=32, seed=0)
    out = tmp_path / "run"
    result = runner.invoke(app, ["search", "unet-ga", "--data", str(data), *TINY, "-K", "4", "-T", "1",
                                 "--halving", "1", "--out", str(out), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    promoted = [line for line in lines if line["extra"].get("rung") == 1]
    ranked = len({line["extra"]["code"] for line in lines if "rung" not in line["extra"]})
    assert len(promoted) == math.ceil(ranked / 3) and all(line["extra"]["epochs"] == 3 for line in promoted)
    best = zoo.Genotype.from_json(out / "best.json")
    winner = max((line for line in promoted if line["status"] == "ok"), key=lambda line: line["fitness"])
    assert best.arch_hash == zoo.Genotype.from_dict(winner["genotype"]).arch_hash
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["halving"] == 1 and run["strategy"]["halving"] == {"rungs": 1, "rate": 3, "epochs": 1}

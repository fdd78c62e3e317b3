"""Latency objectives in the five searchers: recorded, penalised, measured at the end."""

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
from nasseg.searchers.autosegnet import AutoSegNetConfig, AutoSegNetSpace, AutoSegNetStrategy
from nasseg.searchers.base import EvalResult, SearchError
from nasseg.searchers.latency import ExpectedLatency, LatencyObjective, fixed_ms
from nasseg.searchers.nas_asdet import NasAsdetConfig, NasAsdetStrategy
from nasseg.searchers.renas import RenasSpace, RenasStrategy

pytestmark = pytest.mark.usefixtures("one_thread")
runner = CliRunner()
LATENCY = ["--latency-size", "32x32", "--latency-weight", "1.0"]


def _history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]


def test_ga_records_penalises_and_measures_latency(tiny_defects: Path, tiny_latency_table: Path,
                                                   tmp_path: Path) -> None:  # fmt: skip
    common = ["search", "unet-ga", "--data", str(tiny_defects), "--image-size", "32", "--widths", "4,8", "--layers",
              "3", "-K", "3", "-T", "1", "--max-steps", "1", "--max-val-images", "2",
              "--elite-evaluations", "1"]  # fmt: skip
    plain = runner.invoke(app, [*common, "--out", str(tmp_path / "plain")])
    assert plain.exit_code == 0, plain.output
    timed = runner.invoke(app, [*common, "--out", str(tmp_path / "timed"), "--latency-table", str(tiny_latency_table),
                                "--latency-target", "0.001", *LATENCY])  # fmt: skip
    assert timed.exit_code == 0, timed.output
    assert "measured" in timed.output
    before = {r["key"]: r for r in _history(tmp_path / "plain")}
    lines = _history(tmp_path / "timed")
    for line in lines:  # same seeds, same metrics: the fitness is the plain one times the factor
        latency = line["extra"]["latency"]
        assert latency["predicted_ms"] > 0.001 and 0 < latency["factor"] < 1 and latency["target_ms"] == 0.001
        assert line["fitness"] == pytest.approx(before[line["key"]]["fitness"] * latency["factor"])
    best = zoo.Genotype.from_json(tmp_path / "timed" / "best.json")
    assert best.provenance.latency["measured_ms"] > 0 and best.provenance.latency["predicted_ms"] > 0
    assert (tmp_path / "timed" / "plots" / "iou_vs_latency.png").is_file()
    assert not (tmp_path / "plain" / "plots" / "iou_vs_latency.png").exists()
    run = json.loads((tmp_path / "timed" / "run.json").read_text())
    assert run["latency"]["target_ms"] == 0.001 and run["latency"]["size"] == [32, 32]


def test_latency_options_fail_in_one_line(tiny_defects: Path, tmp_path: Path) -> None:
    base = ["search", "unet-ga", "--data", str(tiny_defects), "--image-size", "32", "--out", str(tmp_path / "r")]
    result = runner.invoke(app, [*base, "--latency-target", "10"])
    assert result.exit_code == 2 and "--latency-target needs --latency-table" in result.output
    result = runner.invoke(app, [*base, "--latency-table", str(tmp_path / "none.json")])
    assert result.exit_code == 2 and "--latency-table" in result.output and "no such latency table" in result.output
    assert not (tmp_path / "r" / "history.jsonl").exists()


def test_renas_fitness_and_autosegnet_reward_carry_the_factor(tiny_defects: Path, tiny_latency_table: Path,
                                                              tmp_path: Path) -> None:  # fmt: skip
    objective = LatencyObjective.from_options(tiny_latency_table, 0.001, 1.0, (32, 32))
    task = {"kind": "segmentation", "in_channels": 3, "num_classes": 1, "input_size": [32, 32]}
    space = RenasSpace(task, blocks=2, cells=1, init_channels=8, aspp_channels=16)
    strategy = RenasStrategy(space, population=2, steps=1)
    genotype = space.sample(random.Random(0))
    result = EvalResult("k", genotype, metrics={"iou": 0.5}, extra={"latency": objective.record(genotype)})
    assert strategy.fitness(result) == pytest.approx(0.5 * result.extra["latency"]["factor"])
    assert strategy.fitness(result) < 0.5

    space = AutoSegNetSpace((32, 32), stem_channels=4, min_size=8)
    config = AutoSegNetConfig(image_size=(32, 32), batch_size=2, max_images=4, max_val_images=2, max_steps_per_epoch=1,
                              controller_steps=1, derive_samples=1, epochs_max=1)  # fmt: skip
    auto = AutoSegNetStrategy(tiny_defects, space, config, seed=0)
    Searcher(auto, None, Budget(steps=1), tmp_path / "auto", seed=0, dataset=str(tiny_defects)).run()
    actions = space.sample_actions(random.Random(1))
    plain = auto.score(actions)
    auto.latency = objective
    scored = auto.score(actions)
    factor = objective.factor(scored["latency_ms"])
    assert factor < 1 and scored["reward"] == pytest.approx(plain["reward"] * factor)


def test_expected_latency_is_differentiable_in_alpha(tiny_defects: Path, tiny_latency_table: Path) -> None:
    objective = LatencyObjective.from_options(tiny_latency_table, 0.001, 1.0, (64, 64))
    config = NasAsdetConfig(epochs_per_stage=1, warmup_epochs=0, batch_size=2, image_size=(32, 32), init_channels=4,
                            stem_multiplier=1, max_steps_per_epoch=1, max_val_images=2)  # fmt: skip
    strategy = NasAsdetStrategy(tiny_defects, config)
    strategy._setup()
    fixed = fixed_ms(objective, strategy.derive())
    expected = ExpectedLatency(objective, fixed).attach(strategy.supernet)
    strategy.supernet(torch.randn(2, 3, 32, 32))
    total = expected.take()
    assert total is not None and float(total.detach()) > fixed > 0 and expected.take() is None
    objective.loss(total).backward()
    grads = [p.grad for p in strategy.arch_parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    expected.detach()
    strategy.supernet(torch.randn(2, 3, 32, 32))
    assert expected.take() is None  # detached: nothing collected


@pytest.fixture(scope="module")
def steady_latency_table(tiny_latency_table: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny table with every unit's time replaced by a fixed cost of its kind (the order this CPU
    measures: a separable conv 8x a pool) plus its MACs at 1 GMAC/ms, so a test's predictions (and
    the gradients a differentiable search takes) do not move with the machine's load."""
    table = json.loads(tiny_latency_table.read_text())
    per_call = {"SepConv": 0.016, "DilConv": 0.009, "Pool": 0.002, "Identity": 0.0}
    for unit in table["units"].values():
        unit["ms"] = round(per_call.get(unit["kind"], 0.01) + unit["macs"] / 1e9, 6)
    path = tmp_path_factory.mktemp("steady") / "table.json"
    path.write_text(json.dumps(table))
    return path


def _differentiable_pick(strategy: str, data: Path, table: Path, out: Path, target: str | None) -> zoo.Genotype:
    """A tiny NAS-ASDet or IAC search (each with its default selection), with ``target`` or
    without one; its ``best.json``. The weight (200) makes the latency term outweigh what one
    training step a stage leaves of the task loss: at weight 5 whether the tight pick came out
    faster depended on the CPU's rounding (it did on one machine, not on another)."""
    latency = ["--latency-table", str(table), "--latency-size", "32x32"]
    if target is not None:
        latency += ["--latency-target", target, "--latency-weight", "200"]
    sizes = ["--image-size", "32", "--batch-size", "2", "--max-steps", "1", "--max-val-images", "2"]
    if strategy == "nas-asdet":
        options = ["--epochs-per-stage", "1", "--warmup-epochs", "0", "--init-channels", "4", "--stem-multiplier", "1",
                   "--keep", "2,1", "--perturbation-batches", "1"]
    else:
        options = ["--base", "iac-base-unet-small", "--base-epochs", "1", "--warmup-epochs", "0", "--search-epochs",
                   "4", "--cell-epochs", "1", "--cell-channels", "4", "--record-epochs", "1"]  # fmt: skip
    result = runner.invoke(app, ["search", strategy, "--data", str(data), *sizes, *options, "--out", str(out),
                                 *latency])  # fmt: skip
    assert result.exit_code == 0, result.output
    return zoo.Genotype.from_json(out / "best.json")


@pytest.mark.parametrize("strategy", ["nas-asdet", "iac"])
def test_a_tight_target_changes_what_the_differentiable_searches_derive(strategy: str, tiny_defects: Path,
                                                                        steady_latency_table: Path,
                                                                        tmp_path: Path) -> None:  # fmt: skip
    """NAS-ASDet and IAC add the expected latency to the architecture loss: the same search (same
    seed) under a tight target derives a faster cell than without one, and records the term."""
    objective = LatencyObjective.from_options(steady_latency_table, None, 1.0, (32, 32))
    free = _differentiable_pick(strategy, tiny_defects, steady_latency_table, tmp_path / "free", None)
    tight = _differentiable_pick(strategy, tiny_defects, steady_latency_table, tmp_path / "tight", "0.001")
    assert objective.predict_ms(tight) < 0.9 * objective.predict_ms(free)
    lines = {line["key"]: line for line in _history(tmp_path / "tight")}
    assert all(line["extra"]["latency"]["predicted_ms"] > 0 for line in lines.values() if "latency" in line["extra"])
    assert any(line["extra"].get("expected_latency_ms", 0) > 0 for line in lines.values())
    if strategy == "iac":
        assert lines["implant"]["extra"]["latency"]["predicted_ms"] > 0
    assert tight.provenance.latency["measured_ms"] > 0


def test_objective_checks_its_numbers(tiny_latency_table: Path) -> None:
    with pytest.raises(SearchError, match="latency-target"):
        LatencyObjective.from_options(tiny_latency_table, -1.0)
    with pytest.raises(SearchError, match="latency-weight"):
        LatencyObjective.from_options(tiny_latency_table, 1.0, weight=-0.5)
    recorder = LatencyObjective.from_options(tiny_latency_table, None)
    assert recorder.factor(1e9) == 1.0 and float(recorder.loss(torch.tensor(1e9))) == 0.0


def test_a_tight_target_changes_what_the_ga_breeds_and_picks() -> None:
    """One objective (issue 29): the GA's selection, elite and best() rank by the fitness with the
    latency factor, so a target that makes wide nets slow moves the answer to a narrow one."""
    from nasseg.searchers.unet_ga import UNetGAStrategy, UNetSpace
    from nasseg.zoo.latency import latency_factor

    task = {"kind": "segmentation", "in_channels": 3, "num_classes": 1, "input_size": [32, 32]}

    def run(target_ms: float | None) -> tuple[EvalResult, list[int]]:
        strategy = UNetGAStrategy(UNetSpace(widths=(4, 8, 16, 32), layers=3, task=task), population=6,
                                  generations=2, seed=3, elite_evaluations=1, metric="iou")  # fmt: skip
        history: list[EvalResult] = []
        for step in range(3):
            results = []
            for proposal in strategy.ask(step):
                width = sum(proposal.genotype.arch.channels)  # wider nets: better IoU, slower
                ms = width / 10.0
                extra = dict(proposal.extra)
                if target_ms is not None:
                    extra["latency"] = {"predicted_ms": ms, "factor": latency_factor(ms, target_ms, 3.0)}
                result = EvalResult(proposal.key, proposal.genotype, step, metrics={"iou": width / (width + 20)},
                                    macs=0, extra=extra)  # fmt: skip
                result.fitness = strategy.fitness(result)
                results.append(result)
            strategy.tell(step, results)
            history += results
        parents = [sum(m["c1"]) for m in strategy.final_population()]
        return strategy.best(history), parents, history

    free, free_parents, _ = run(None)
    tight, tight_parents, history = run(1.5)
    assert sum(tight.genotype.arch.channels) < sum(free.genotype.arch.channels)
    assert sum(tight_parents) < sum(free_parents)  # the population itself moved, not just the answer
    assert tight.fitness == pytest.approx(max(r.fitness for r in history))  # reported = the number ranked by
    assert tight.fitness == pytest.approx(1 / (1 - tight.metrics["iou"]) * tight.extra["latency"]["factor"])


def test_a_tight_target_changes_what_renas_picks(tiny_latency_table: Path) -> None:
    """RENAS answers with the best retrained individual by the fitness its tournament reads, the
    latency factor included: a tight target moves the answer from the accurate slow cell to the fast one."""
    task = {"kind": "segmentation", "in_channels": 3, "num_classes": 1, "input_size": [32, 32]}
    space = RenasSpace(task, blocks=2, cells=1, init_channels=8, aspp_channels=16)
    rng = random.Random(1)
    objective = LatencyObjective.from_options(tiny_latency_table, None, 1.0, (32, 32))
    genotypes = sorted({g.arch_hash: g for g in (space.sample(rng) for _ in range(12))}.values(),
                       key=objective.predict_ms)  # fmt: skip
    fast, slow = genotypes[0], genotypes[-1]
    assert objective.predict_ms(fast) < objective.predict_ms(slow)

    def answer(target_ms: float | None) -> str:
        chosen = LatencyObjective.from_options(tiny_latency_table, target_ms, 3.0, (32, 32))
        strategy = RenasStrategy(space, population=2, steps=1)
        results = []
        for key, genotype, iou in (("f0", slow, 0.60), ("f1", fast, 0.55)):
            result = EvalResult(key, genotype, metrics={"iou": iou},
                                extra={"kind": "final", "latency": chosen.record(genotype)})  # fmt: skip
            result.fitness = strategy.fitness(result)
            results.append(result)
        return strategy.best(results).genotype.arch_hash

    assert answer(None) == slow.arch_hash
    assert answer(objective.predict_ms(fast) * 1.01) == fast.arch_hash


def test_a_tight_target_changes_what_autosegnet_derives(tiny_defects: Path, tiny_latency_table: Path,
                                                        tmp_path: Path) -> None:  # fmt: skip
    """AutoSegNet keeps the sampled child with the best reward, the latency factor included: under a
    tight target (weight 5) the same samples give the fastest child, without one the best scorer."""
    space = AutoSegNetSpace((32, 32), stem_channels=4, min_size=8)
    config = AutoSegNetConfig(image_size=(32, 32), batch_size=2, max_images=4, max_val_images=2, max_steps_per_epoch=1,
                              controller_steps=1, derive_samples=6, epochs_max=1)  # fmt: skip
    auto = AutoSegNetStrategy(tiny_defects, space, config, seed=0)
    Searcher(auto, None, Budget(steps=1), tmp_path / "auto", seed=0, dataset=str(tiny_defects)).run()
    state = auto.generator.get_state()
    samples = [auto.controller.sample(auto.generator).actions for _ in range(6)]
    objective = LatencyObjective.from_options(tiny_latency_table, 1e-4, 5.0, (32, 32))
    times = {tuple(a): objective.predict_ms(space.genotype(a)) for a in samples}
    auto.latency = None
    auto.generator.set_state(state)
    free, _, _ = auto.derive(6)
    auto.latency = objective
    auto.generator.set_state(state)
    tight, _, _ = auto.derive(6)
    assert times[tuple(tight)] == min(times.values())
    assert times[tuple(tight)] < times[tuple(free)]  # the untargeted pick was a slower child


def test_perturbation_selection_scores_the_objective_with_its_latency_term(tiny_defects: Path,
                                                                         steady_latency_table: Path) -> None:
    """With a target, a perturbation score is the rise of loss + latency term: taking an op out
    can only lower the expected latency, so every score is at most the plain loss's score, and
    strictly lower where the op costs time (one objective for selection, issue 29)."""
    config = NasAsdetConfig(epochs_per_stage=1, warmup_epochs=0, batch_size=2, image_size=(32, 32), init_channels=4,
                            stem_multiplier=1, max_steps_per_epoch=1, max_val_images=2,
                            perturbation_batches=1)  # fmt: skip
    strategy = NasAsdetStrategy(tiny_defects, config)
    strategy._setup()
    strategy.supernet.prune(config.keep[-2])  # where the search scores: the ops the last stage kept
    strategy.latency = None
    plain = strategy.perturbation_cells()[1]["normal"]["op_scores"]
    strategy.latency = LatencyObjective.from_options(steady_latency_table, 0.001, 5.0, (32, 32))
    cells, scores = strategy.perturbation_cells()
    timed = scores["normal"]["op_scores"]
    pairs = [(t, p) for t_row, p_row in zip(timed, plain, strict=True) for t, p in zip(t_row, p_row, strict=True)
             if t is not None]  # fmt: skip
    assert all(t <= p + 1e-6 for t, p in pairs) and sum(t < p - 1e-4 for t, p in pairs) > len(pairs) // 2
    assert strategy.supernet.masks is None and set(cells) == {"normal", "reduce"}

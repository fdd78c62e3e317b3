"""The search frame: run directory, history, best.json, plots, resume, failed candidates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nasseg import zoo
from nasseg.searchers import Budget, EvalResult, Fidelity, RandomStrategy, Searcher, SearchError, SegmentationEvaluator
from nasseg.searchers.base import Proposal
from nasseg.searchers.plots import pareto_front
from nasseg.searchers.run_dir import RunDirectory
from nasseg.zoo.genotype import Genotype

FIDELITY = Fidelity(epochs=1, image_size=(32, 32), batch_size=2, max_images=4, max_val_images=2, max_steps_per_epoch=2)


class Interrupt(Exception):
    """Stands in for a kill in the middle of a step."""


class InterruptingEvaluator(SegmentationEvaluator):
    """Fails hard (not as a candidate failure) at its ``after``-th evaluation, like a killed process."""

    def __init__(self, *args, after: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.after, self.calls = after, 0

    def evaluate(self, proposal: Proposal, seed: int, workdir: Path) -> EvalResult:
        self.calls += 1
        if self.calls == self.after:
            raise KeyboardInterrupt  # not an Exception: the executor does not swallow it
        return super().evaluate(proposal, seed, workdir)


class BrokenEvaluator(SegmentationEvaluator):
    def evaluate(self, proposal: Proposal, seed: int, workdir: Path) -> EvalResult:
        if proposal.key.endswith("-01"):
            raise RuntimeError("CUDA out of memory (simulated)\nsecond line")
        return super().evaluate(proposal, seed, workdir)


def _search(space, data: Path, out: Path, evaluator=None, steps: int = 2) -> Searcher:
    evaluator = evaluator or SegmentationEvaluator(data, FIDELITY)
    return Searcher(RandomStrategy(space, per_step=3, seed=1), evaluator, Budget(steps=steps), out, seed=7,
                    dataset=str(data))  # fmt: skip


def test_run_directory_and_best_genotype(tiny_space, tiny_defects: Path, tmp_path: Path) -> None:
    result = _search(tiny_space, tiny_defects, tmp_path / "run").run()
    run = RunDirectory(tmp_path / "run")
    lines = run.history_path.read_text().splitlines()
    assert len(lines) == 6 == len(result.history)
    record = json.loads(lines[0])
    assert {"key", "arch_hash", "fitness", "metrics", "macs", "params", "seconds", "status", "step"} <= set(record)
    assert record["macs"] > 0 and 0 <= record["metrics"]["iou"] <= 1 and record["metrics"]["loss"] > 0
    assert result.best.fitness == max(r.fitness for r in result.history)
    model = zoo.create_model(run.best_path)  # best.json builds through the zoo
    assert model.genotype.arch_hash == result.best.genotype.arch_hash
    provenance = model.genotype.provenance
    assert provenance.searcher == "random" and provenance.seed == 7 and provenance.search_seconds > 0
    assert provenance.metrics["search_fitness"] == pytest.approx(result.best.fitness)
    assert "torch" in provenance.library_versions
    assert (run.plots_dir / "fitness.png").stat().st_size > 1000
    assert (run.plots_dir / "iou_vs_macs.png").stat().st_size > 1000
    assert run.load_checkpoint()["step"] == 2
    for record in result.history:  # every candidate's folder holds its genotype with its metrics
        candidate = Genotype.from_json(run.path / "candidates" / record.key / "genotype.json")
        assert candidate.arch_hash == record.genotype.arch_hash
        assert candidate.provenance.metrics == pytest.approx(record.metrics)


def test_resume_after_a_kill_loses_nothing_and_ends_the_same(tiny_space, tiny_defects: Path, tmp_path: Path) -> None:
    whole = _search(tiny_space, tiny_defects, tmp_path / "whole", steps=2).run()
    killed = InterruptingEvaluator(tiny_defects, FIDELITY, after=5)  # dies in the middle of step 2
    with pytest.raises(KeyboardInterrupt):
        _search(tiny_space, tiny_defects, tmp_path / "killed", evaluator=killed).run()
    finished_before = RunDirectory(tmp_path / "killed").history()
    assert len(finished_before) == 4  # 3 of step 1, 1 of step 2
    resumed_evaluator = InterruptingEvaluator(tiny_defects, FIDELITY, after=10**6)
    resumed = _search(tiny_space, tiny_defects, tmp_path / "killed", evaluator=resumed_evaluator).run(resume=True)
    assert resumed_evaluator.calls == 2  # the finished candidate of step 2 came from the history
    assert [r.key for r in resumed.history] == [r.key for r in whole.history]
    assert [r.fitness for r in resumed.history] == pytest.approx([r.fitness for r in whole.history])
    assert resumed.genotype.arch_hash == whole.genotype.arch_hash
    assert len(RunDirectory(tmp_path / "killed").history()) == 6  # no duplicate lines


def test_failed_candidate_is_recorded_and_search_goes_on(tiny_space, tiny_defects: Path, tmp_path: Path) -> None:
    result = _search(tiny_space, tiny_defects, tmp_path / "run", evaluator=BrokenEvaluator(tiny_defects, FIDELITY),
                     steps=1).run()  # fmt: skip
    failed = [r for r in result.history if not r.ok]
    assert [r.key for r in failed] == ["s000-01"]
    assert failed[0].error == "RuntimeError: CUDA out of memory (simulated)"
    assert result.best is not None and result.best.ok


def test_refuses_to_overwrite_or_resume_nothing(tiny_space, tiny_defects: Path, tmp_path: Path) -> None:
    _search(tiny_space, tiny_defects, tmp_path / "run", steps=1).run()
    with pytest.raises(SearchError, match="already holds a search"):
        _search(tiny_space, tiny_defects, tmp_path / "run", steps=1).run()
    with pytest.raises(SearchError, match="nothing to resume"):
        _search(tiny_space, tiny_defects, tmp_path / "empty", steps=1).run(resume=True)
    other_seed = _search(tiny_space, tiny_defects, tmp_path / "run", steps=2)
    other_seed.seed = 8
    with pytest.raises(SearchError, match="started with seed 7"):
        other_seed.run(resume=True)


def test_torn_history_line_is_dropped(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path)
    genotype = zoo.get_genotype("unet-small")
    run.append(EvalResult("a", genotype, metrics={"iou": 0.5}, fitness=0.5))
    with open(run.history_path, "a") as handle:
        handle.write('{"key": "b", "genot')
    assert [r.key for r in run.history()] == ["a"]
    run.truncate_torn_line()
    assert run.history_path.read_text().count("\n") == 1


@pytest.mark.parametrize("kwargs", [{}, {"steps": 0}, {"seconds": -1}])
def test_budget_errors(kwargs) -> None:
    with pytest.raises(SearchError, match="budget"):
        Budget(**kwargs)


def test_pareto_front() -> None:
    assert pareto_front([(1, 0.5), (2, 0.4), (2, 0.7), (3, 0.6), (4, 0.9)]) == [(1, 0.5), (2, 0.7), (4, 0.9)]


def test_ray_executor_runs_candidates_as_tasks(tiny_space, tiny_defects: Path, tmp_path: Path) -> None:
    from nasseg.searchers.executors import RayExecutor

    searcher = _search(tiny_space, tiny_defects, tmp_path / "ray", evaluator=BrokenEvaluator(tiny_defects, FIDELITY),
                       steps=1)  # fmt: skip
    searcher.executor = RayExecutor(workers=2)
    result = searcher.run()
    assert sorted(r.key for r in result.history if r.ok) == ["s000-00", "s000-02"]  # in the order they finished
    assert [r.error for r in result.history if not r.ok] == ["RuntimeError: CUDA out of memory (simulated)"]
    inprocess = _search(tiny_space, tiny_defects, tmp_path / "local", steps=1).run()
    assert {r.key: r.genotype.arch_hash for r in result.history} == {
        r.key: r.genotype.arch_hash for r in inprocess.history
    }


def test_the_run_directory_names_its_layout(tmp_path: Path) -> None:
    from nasseg.searchers import RunDirectory

    run = RunDirectory(tmp_path / "run")
    assert run.candidate_weights("c0001") == tmp_path / "run" / "candidates" / "c0001" / "weights.pt"
    assert run.artifact("base.json") == tmp_path / "run" / "base.json"
    assert run.stage_dir("stage1") == tmp_path / "run" / "stage1"
    snapshot = run.snapshot("genotypes", "epoch-001.json")
    assert snapshot.parent.is_dir() and snapshot == tmp_path / "run" / "genotypes" / "epoch-001.json"
    assert run.plot("fitness.png").parent.is_dir() and run.candidates_dir == tmp_path / "run" / "candidates"

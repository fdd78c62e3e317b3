"""The U-Net GA (seed 002): space, operators, fitness, resume, both tasks end to end, Ray."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from nasseg import zoo
from nasseg.cli import app
from nasseg.searchers.base import EvalResult, SearchError
from nasseg.searchers.evaluators import measure
from nasseg.searchers.unet_ga import UNetFitness, UNetGAStrategy, UNetSpace, code_key
from nasseg.searchers.unet_ga.operators import crossover, flip_bit, mutate, mutate_width, roulette
from nasseg.zoo.data.synthetic import make_dataset

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
WIDTHS = (4, 8, 16, 32)
SEG_TASK = {"kind": "segmentation", "in_channels": 3, "num_classes": 1, "input_size": [32, 32]}
# A tiny, fast search: 3 levels of widths {4, 8}, 2-image batches, 2 optimiser steps per candidate.
TINY = ["--image-size", "32", "--widths", "4,8", "--layers", "3", "--max-images", "4", "--max-val-images", "2",
        "--max-steps", "2", "--batch-size", "2", "--dropout", "0"]  # fmt: skip


def _space(**kwargs) -> UNetSpace:
    return UNetSpace(widths=WIDTHS, layers=4, task=dict(SEG_TASK), **kwargs)


def _fake_results(strategy: UNetGAStrategy, step: int) -> list[EvalResult]:
    """Score the asked candidates without training: loss falls with the total width (a known optimum)."""
    results = []
    for proposal in strategy.ask(step):
        loss = 10.0 / sum(proposal.genotype.arch.channels) + 0.01 * sum(not s for s in proposal.genotype.arch.skips)
        result = EvalResult(proposal.key, proposal.genotype, step, metrics={"loss": loss}, macs=0, extra=proposal.extra)
        result.fitness = strategy.fitness(result)
        results.append(result)
    return results


# -- space ---------------------------------------------------------------------------------------


def test_pix2pix_unet_is_a_point_of_the_paper_space() -> None:
    original = zoo.get_genotype("unet-pix2pix-256")
    space = UNetSpace()  # S1 = {64, 128, 256, 512}, L = 8, translation at 256 x 256
    assert space.size == 4**8 * 2**7 == 8_388_608
    assert space.contains(original)
    c1, c2 = space.encode(original)
    assert c1 == [64, 128, 256, 512, 512, 512, 512, 512] and c2 == [True] * 7
    assert space.genotype(c1, c2).arch_hash == original.arch_hash
    assert not UNetSpace(widths=(64, 128, 256)).contains(original)  # 512 not in S1
    with pytest.raises(SearchError, match="multiple of 256"):
        UNetSpace(task={**SEG_TASK, "input_size": [64, 64]})


def test_sampled_genotypes_are_valid_and_build() -> None:
    space, rng = _space(), random.Random(0)
    for _ in range(6):
        genotype = space.sample(rng)
        assert space.contains(genotype)
        model = zoo.build_model(genotype)
        assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 1, 32, 32)


# -- operators -----------------------------------------------------------------------------------


def test_roulette_picks_proportional_to_fitness_and_never_failed_ones() -> None:
    rng = random.Random(0)
    fitnesses = [1.0, 2.0, 0.0, 3.0, float("-inf"), 4.0]
    draws = Counter(roulette(rng, fitnesses) for _ in range(40_000))
    assert draws[2] == 0 and draws[4] == 0
    for index, expected in ((0, 0.1), (1, 0.2), (3, 0.3), (5, 0.4)):
        assert abs(draws[index] / 40_000 - expected) < 0.01
    assert roulette(rng, [0.0, float("-inf")]) is None


def test_crossover_and_mutation_keep_genotypes_valid() -> None:
    space, rng = _space(), random.Random(1)
    for _ in range(200):
        a, b = space.sample_codes(rng), space.sample_codes(rng)
        one, two = crossover(rng, a, b)
        for child in (one, two):
            space.check_codes(*child)
            assert space.contains(space.genotype(*child))
        for code in (0, 1):  # each position keeps its two parents' values between the two children
            for i in range(len(a[code])):
                assert sorted(map(int, (one[code][i], two[code][i]))) == sorted(map(int, (a[code][i], b[code][i])))
        child = mutate(rng, a, space.widths)
        space.check_codes(*child)
        assert sum(x != y for x, y in zip(child[0], a[0], strict=True)) == 1
        assert sum(x != y for x, y in zip(child[1], a[1], strict=True)) == 1


def test_mutation_draws_a_width_from_the_other_values_of_s1() -> None:
    rng = random.Random(2)
    new_values = Counter()
    for _ in range(3000):
        child = mutate_width(rng, [8, 8, 8], WIDTHS)
        (changed,) = [w for w in child if w != 8]
        new_values[changed] += 1
    assert set(new_values) == {4, 16, 32}  # never the current value, every other one
    assert min(new_values.values()) > 850
    assert flip_bit(random.Random(0), [True]) == [False]


def test_elitism_keeps_the_best_and_best_fitness_never_drops() -> None:
    strategy = UNetGAStrategy(_space(), population=6, generations=8, gamma=0.0, seed=3)
    best_per_generation = []
    for step in range(9):
        strategy.tell(step, _fake_results(strategy, step))
        fitnesses = [m["fitness"] for m in strategy.final_population()]
        best_per_generation.append(max(fitnesses))
        if step:
            assert len(fitnesses) == 6
    assert best_per_generation == sorted(best_per_generation)
    assert best_per_generation[-1] > best_per_generation[0]  # the GA climbs towards wide nets
    assert strategy.done()
    # the elite is the first child of the next generation
    elite = max(strategy.final_population(), key=lambda m: m["fitness"])
    assert strategy.breed()[0] == (elite["c1"], elite["c2"])


def test_offspring_follow_selection_crossover_mutation_probabilities() -> None:
    """With only selection (s1 = 1) every child is a copy of a parent; with only mutation none is."""
    for probabilities, copies in (((1.0, 0.0, 0.0), True), ((0.0, 0.0, 1.0), False)):
        strategy = UNetGAStrategy(_space(), population=8, generations=1, probabilities=probabilities, seed=0)
        strategy.tell(0, _fake_results(strategy, 0))
        parents = {code_key(m["c1"], m["c2"]) for m in strategy.final_population()}
        children = [code_key(*c) for c in strategy.breed()[1:]]
        assert all((child in parents) == copies for child in children)


def test_state_dict_round_trip_continues_identically() -> None:
    first = UNetGAStrategy(_space(), population=5, generations=5, seed=4)
    for step in range(2):
        first.tell(step, _fake_results(first, step))
    state = json.loads(json.dumps(first.state_dict()))  # JSON-friendly, RNG included
    second = UNetGAStrategy(_space(), population=5, generations=5, seed=99)
    second.load_state_dict(state)
    assert [(p.key, p.genotype.arch_hash) for p in first.ask(2)] == [
        (p.key, p.genotype.arch_hash) for p in second.ask(2)
    ]


def test_fitness_is_the_reciprocal_of_loss_plus_gamma_gflops() -> None:
    genotype = _space().sample(random.Random(0))
    macs, _ = measure(genotype, (32, 32))
    assert measure(genotype, (64, 64))[0] == 4 * macs  # MACs scale with the area: flops_size is exact
    result = EvalResult("k", genotype, metrics={"loss": 0.5}, macs=macs)
    assert UNetFitness(gamma=0.1)(result) == pytest.approx(1 / (0.5 + 0.1 * 2 * macs / 1e9))
    assert UNetFitness(gamma=0.1, flops_size=(64, 64))(result) == pytest.approx(1 / (0.5 + 0.1 * 8 * macs / 1e9))
    assert UNetFitness()(EvalResult("k", genotype, status="failed")) == 0.0


# -- end to end ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def defects(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 synthetic defect images of 32 px with their defect-free pairs."""
    return make_dataset("synth-defects", tmp_path_factory.mktemp("ga") / "data", n=16, size=32, seed=0, pairs=True)


@pytest.fixture(scope="module")
def segmentation_run(defects: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ga") / "seg"
    result = runner.invoke(app, ["search", "unet-ga", "--data", str(defects), *TINY, "-K", "3", "-T", "1",
                                 "--gamma", "0.1", "--seed", "1", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_segmentation_search_writes_a_buildable_best_genotype(segmentation_run: Path) -> None:
    lines = [json.loads(line) for line in (segmentation_run / "history.jsonl").read_text().splitlines()]
    assert 3 <= len(lines) <= 6 and {line["step"] for line in lines} <= {0, 1}
    for line in lines:
        expected = 1 / (1 - line["metrics"]["iou"] + 0.1 * 2 * line["macs"] / 1e9)  # the default fitness: IoU
        assert line["fitness"] == pytest.approx(expected)
    by_arch: dict[str, list[float]] = {}
    for line in lines:  # the elite is re-scored (default elite_evaluations=3): its fitness is the mean
        by_arch.setdefault(line["arch_hash"], []).append(line["fitness"])
    model = zoo.create_model(segmentation_run / "best.json")
    genotype = model.genotype
    assert genotype.family == "unet" and genotype.task.kind == "segmentation"
    assert genotype.provenance.searcher == "unet-ga"
    means = {arch: sum(f) / len(f) for arch, f in by_arch.items()}
    assert genotype.provenance.metrics["search_fitness"] == pytest.approx(max(means.values()))
    assert genotype.arch_hash == max(means, key=means.get)
    assert (segmentation_run / "plots" / "fitness.png").is_file()
    estimate = json.loads((segmentation_run / "run.json").read_text())["estimate"]  # written after the first step
    assert estimate["steps"] == 2 and estimate["total_minutes"] >= 0 and "widths [4, 8]" in estimate["plan"]


def test_searched_best_trains_and_exports(segmentation_run: Path, defects: Path, tmp_path: Path) -> None:
    best = str(segmentation_run / "best.json")
    train = ["train", best, "--data", str(defects), "--epochs", "1", "--batch-size", "2", "--crop", "32", "32"]
    trained = runner.invoke(app, [*train, "--device", "cpu", "--out", str(tmp_path / "train")])
    assert trained.exit_code == 0, trained.output
    assert len(list((tmp_path / "train").glob("*.safetensors"))) == 1
    exported = runner.invoke(
        app, ["export", best, "--out", str(tmp_path / "best.onnx"), "--check", "--allow-random-weights"]
    )
    assert exported.exit_code == 0, exported.output
    assert (tmp_path / "best.onnx").stat().st_size > 1000


def test_translation_search_end_to_end(defects: Path, tmp_path: Path) -> None:
    out = tmp_path / "translation"
    result = runner.invoke(app, ["search", "unet-ga", "--data", str(defects), "--task", "translation", *TINY,
                                 "--disc-width", "8", "-K", "2", "-T", "1", "--out", str(out), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    metrics = summary["best"]["metrics"]
    assert metrics["loss"] == pytest.approx(metrics["l_gan"] + 100 * metrics["l1"])
    assert metrics["l_gan"] > 0 and 0 < metrics["l1"] < 2
    model = zoo.create_model(out / "best.json")
    assert model.genotype.task.kind == "translation"
    image = model.eval()(torch.zeros(1, 3, 32, 32))
    assert image.shape == (1, 3, 32, 32) and image.abs().max() <= 1  # tanh output
    exported = runner.invoke(app, ["export", str(out / "best.json"), "--graph", "raw", "--out",
                                   str(tmp_path / "t.onnx"), "--check", "--allow-random-weights"])  # fmt: skip
    assert exported.exit_code == 0, exported.output


def test_random_baseline_uses_the_same_space_and_evaluation_count(defects: Path, tmp_path: Path) -> None:
    out = tmp_path / "random"
    result = runner.invoke(app, ["search", "unet-ga", "--data", str(defects), *TINY, "-K", "2", "-T", "1",
                                 "--random", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = (out / "history.jsonl").read_text().splitlines()
    assert len(lines) == 2 + 1 * (2 - 1 + 1)  # K + T (K - 1 + 1 elite re-scoring): the GA's evaluations at most
    assert json.loads((out / "run.json").read_text())["strategy"]["name"] == "unet-ga-random"


def test_bad_options_are_one_line_errors(defects: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["search", "unet-ga", "--data", str(defects), "--image-size", "32", "--layers", "6"])
    assert result.exit_code == 2 and "multiple of 64" in result.output
    result = runner.invoke(app, ["search", "unet-ga", "--data", str(tmp_path), "--task", "translation"])
    assert result.exit_code == 2 and "no translation pairs" in result.output


def test_sigkill_and_resume_ends_with_the_uninterrupted_best(defects: Path, tmp_path: Path) -> None:
    args = ["search", "unet-ga", "--data", str(defects), *TINY, "--widths", "4,8,16", "-K", "4", "-T", "2",
            "--seed", "5"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = tmp_path / "killed"
    code = "import torch; torch.set_num_threads(1); from nasseg.cli import main; main()"
    process = subprocess.Popen([sys.executable, "-c", code, *args, "--out", str(killed)], env=env, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    history = killed / "history.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if history.is_file() and len(history.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the search ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = len(history.read_text().splitlines())
    assert 2 <= finished < 4 + 2 * 3

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        resumed = runner.invoke(app, [*args, "--resume", str(killed), "--json"])
        assert resumed.exit_code == 0, resumed.output
        whole = runner.invoke(app, [*args, "--out", str(tmp_path / "whole"), "--json"])
        assert whole.exit_code == 0, whole.output
    finally:
        torch.set_num_threads(threads)
    resumed_lines = [json.loads(line) for line in history.read_text().splitlines()]
    whole_lines = [json.loads(line) for line in (tmp_path / "whole" / "history.jsonl").read_text().splitlines()]
    assert [line["key"] for line in resumed_lines] == [line["key"] for line in whole_lines]  # nothing lost or redone
    best_resumed = zoo.Genotype.from_json(killed / "best.json")
    best_whole = zoo.Genotype.from_json(tmp_path / "whole" / "best.json")
    assert best_resumed.arch_hash == best_whole.arch_hash


def test_two_worker_processes_give_the_in_process_search(defects: Path, tmp_path: Path) -> None:
    """``--workers 2``: candidates in two one-thread processes, the same candidates and scores as in
    this process (each candidate's seed comes from the run seed and its key)."""
    runs = {}
    for name, extra in (("one", []), ("pool", ["--workers", "2"])):
        result = runner.invoke(app, ["search", "unet-ga", "--data", str(defects), *TINY, "-K", "4", "-T", "1",
                                     "--out", str(tmp_path / name), "--json", *extra])  # fmt: skip
        assert result.exit_code == 0, result.output
        lines = [json.loads(line) for line in (tmp_path / name / "history.jsonl").read_text().splitlines()]
        runs[name] = sorted(lines, key=lambda r: r["key"])  # the pool records candidates as they finish
    assert json.loads((tmp_path / "pool" / "run.json").read_text())["executor"] == {
        "executor": "pool", "workers": 2, "threads": 1}
    assert [(r["key"], r["status"]) for r in runs["pool"]] == [(r["key"], r["status"]) for r in runs["one"]]
    assert [r["metrics"]["iou"] for r in runs["pool"]] == pytest.approx([r["metrics"]["iou"] for r in runs["one"]],
                                                                        abs=1e-4)  # fmt: skip


@pytest.mark.slow
def test_ray_with_two_workers_end_to_end(defects: Path, tmp_path: Path) -> None:
    out = tmp_path / "ray"
    result = runner.invoke(app, ["search", "unet-ga", "--data", str(defects), *TINY, "-K", "4", "-T", "1",
                                 "--workers", "2", "--ray", "local", "--out", str(out), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    assert run["executor"] == {"executor": "ray", "workers": 2, "address": None}
    lines = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert len(lines) >= 4 and all(line["status"] == "ok" for line in lines)
    zoo.create_model(out / "best.json")


def test_the_default_executor_runs_batches_in_one_thread_workers_and_gives_the_same_search(
    defects: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --workers a CPU search takes the auto executor (one one-thread worker per core for a
    batch of candidates): same candidates and scores as --workers 1; NASSEG_SEARCH_WORKERS sets it."""
    import os

    from nasseg.searchers.executors import MAX_DEFAULT_WORKERS, default_workers

    monkeypatch.delenv("NASSEG_SEARCH_WORKERS", raising=False)
    cores = len(os.sched_getaffinity(0))
    assert default_workers("cpu") == min(cores, MAX_DEFAULT_WORKERS) and default_workers("cuda:0") == 1
    runs = {}
    for name, extra in (("one", ["--workers", "1"]), ("auto", [])):
        result = runner.invoke(app, ["search", "unet-ga", "--data", str(defects), *TINY, "-K", "4", "-T", "1",
                                     "--out", str(tmp_path / name), "--json", *extra])  # fmt: skip
        assert result.exit_code == 0, result.output
        lines = [json.loads(line) for line in (tmp_path / name / "history.jsonl").read_text().splitlines()]
        runs[name] = sorted(lines, key=lambda r: r["key"])
    executor = json.loads((tmp_path / "auto" / "run.json").read_text())["executor"]
    assert executor == ({"executor": "auto", "workers": min(cores, MAX_DEFAULT_WORKERS), "threads": 1} if cores > 1
                        else {"executor": "in-process"})  # fmt: skip
    assert json.loads((tmp_path / "one" / "run.json").read_text())["executor"] == {"executor": "in-process"}
    assert [(r["key"], r["status"]) for r in runs["auto"]] == [(r["key"], r["status"]) for r in runs["one"]]
    assert [r["metrics"]["iou"] for r in runs["auto"]] == pytest.approx([r["metrics"]["iou"] for r in runs["one"]],
                                                                        abs=1e-4)  # fmt: skip
    monkeypatch.setenv("NASSEG_SEARCH_WORKERS", "3")
    assert default_workers("cpu") == 3
    monkeypatch.setenv("NASSEG_SEARCH_WORKERS", "many")
    bad = runner.invoke(app, ["search", "unet-ga", "--data", str(defects), *TINY, "--out", str(tmp_path / "bad")])
    assert bad.exit_code != 0 and "NASSEG_SEARCH_WORKERS='many' is not a whole number" in bad.output


def test_auto_executor_sends_a_lone_candidate_to_this_process(defects: Path, tmp_path: Path) -> None:
    from nasseg.searchers.executors import AutoExecutor, Job

    calls = []

    class Recording:
        def __init__(self, name: str) -> None:
            self.name = name

        def map(self, evaluator, jobs, on_result=None):  # noqa: ANN001, ANN201
            calls.append((self.name, len(jobs)))
            return []

        def shutdown(self) -> None:
            calls.append((self.name, "shutdown"))

    executor = AutoExecutor(2)
    executor.pool, executor.here = Recording("pool"), Recording("here")
    job = Job(proposal=None, seed=0, workdir=tmp_path)  # type: ignore[arg-type]
    executor.map(None, [job])  # type: ignore[arg-type]
    executor.map(None, [job, job, job])  # type: ignore[arg-type]
    executor.shutdown()
    assert calls == [("here", 1), ("pool", 3), ("pool", "shutdown")]


def test_decoder_dropout_is_pix2pix_noise_for_translation_and_off_for_segmentation(tmp_path: Path) -> None:
    from nasseg.searchers.configs import UNetGAConfig

    task = dict(SEG_TASK)
    segmentation = UNetGAConfig(data=str(tmp_path), widths=WIDTHS, layers=4, image_size=64)
    translation = segmentation.model_copy(update={"task": "translation"})
    assert segmentation.space(task).dropout == 0.0 and translation.space(task).dropout == 0.5
    chosen = segmentation.model_copy(update={"dropout": 0.3})
    assert chosen.space(task).dropout == 0.3
    assert chosen.space(task).sample(random.Random(0)).arch.dropout == 0.3

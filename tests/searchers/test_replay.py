"""A search is data: run.json holds its config, and `nasseg search --config RUN/run.json` replays it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nasseg.cli import app
from nasseg.searchers.configs import CONFIGS, UNetGAConfig, load_config

runner = CliRunner()

TINY = {
    "unet-ga": ["--image-size", "32", "--widths", "4,8", "--layers", "3", "--max-images", "4", "--max-val-images",
                "2", "--max-steps", "2", "--min-steps", "2", "--batch-size", "2", "--dropout", "0", "-K", "3", "-T",
                "1", "--elite-evaluations", "1", "--seed", "1"],
    "renas": ["--image-size", "32", "-P", "3", "-E", "1", "--batch-size", "2", "--max-images", "4",
              "--max-val-images", "2", "--max-steps", "2", "--min-steps", "2", "--filters", "8", "--cells", "1",
              "--aspp-channels", "16", "--final-epochs", "0", "--bn-recalibration", "0", "--seed", "2"],
    "autosegnet": ["--image-size", "32", "--min-size", "8", "--stem-channels", "4", "--controller-steps", "2",
                   "--derive-samples", "2", "--batch-size", "2", "--max-images", "4", "--max-val-images", "2",
                   "--max-steps", "2", "--rerank-steps", "2", "--rerank-top", "2", "--epochs-max", "2",
                   "--warmup-epochs", "1", "--min-steps", "1", "--seed", "3"],
    "nas-asdet": ["--image-size", "32", "--epochs-per-stage", "1", "--warmup-epochs", "0", "--batch-size", "2",
                  "--init-channels", "4", "--stem-multiplier", "1", "--max-steps", "1", "--max-val-images", "2",
                  "--max-skip", "2", "--keep", "2,1", "--max-images", "4", "--min-steps", "1", "--seed", "3"],
    "iac": ["--image-size", "32", "--base-epochs", "1", "--warmup-epochs", "0", "--search-epochs", "1",
            "--cell-epochs", "1", "--batch-size", "2", "--cell-channels", "4", "--max-steps", "1",
            "--max-val-images", "2", "--record-epochs", "1", "--max-skip", "1", "--max-images", "4", "--min-steps", "1",
            "--seed", "2"],
}  # fmt: skip


def _history(run: Path) -> list[tuple[str, str]]:
    lines = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    return [(line["key"], line["genotype"]["name"] if line.get("genotype") else "") for line in lines]


#: searches that take 10-40 s twice even at 32 px (nas-asdet's supernet has 11 ops on every edge):
#: replayed in the slow run; the default run replays the others (the replay is the shared
#: ``Searcher``'s, and every searcher's config round trip is tested below)
SLOW_REPLAYS = {"nas-asdet", "iac", "renas", "autosegnet"}


def _best_hash(run: Path) -> str:
    from nasseg import zoo

    return zoo.Genotype.from_json(run / "best.json").arch_hash


@pytest.mark.parametrize(
    "strategy",
    [pytest.param(name, marks=pytest.mark.slow) if name in SLOW_REPLAYS else name for name in sorted(TINY)],
)
def test_a_search_replays_from_its_run_json(strategy: str, tiny_defects: Path, tmp_path: Path) -> None:
    first, again = tmp_path / "first", tmp_path / "again"
    result = runner.invoke(app, ["search", strategy, "--data", str(tiny_defects), *TINY[strategy], "--out", str(first)])
    assert result.exit_code == 0, result.output
    run_json = json.loads((first / "run.json").read_text())
    assert run_json["config"]["searcher"] == strategy and set(run_json["versions"]) >= {"nasseg", "torch"}
    assert run_json["config"]["data"] == str(tiny_defects.absolute())

    replay = runner.invoke(app, ["search", "--config", str(first / "run.json"), "--out", str(again)])
    assert replay.exit_code == 0, replay.output
    assert json.loads((again / "run.json").read_text())["config"] == run_json["config"]
    assert _history(again) == _history(first)  # the same candidates in the same order
    assert _best_hash(again) == _best_hash(first)


def test_print_config_is_the_config_the_options_make_and_replays(tiny_defects: Path, tmp_path: Path) -> None:
    printed = runner.invoke(app, ["search", "unet-ga", "--data", str(tiny_defects), *TINY["unet-ga"],
                                  "--latency-size", "128x128", "--print-config"])  # fmt: skip
    assert printed.exit_code == 0, printed.output
    config = json.loads(printed.stdout)
    assert config["searcher"] == "unet-ga" and config["widths"] == [4, 8] and config["population"] == 3
    assert config["latency"]["size"] == "128x128" and config["seed"] == 1
    path = tmp_path / "ga.json"
    path.write_text(printed.stdout)
    loaded = load_config(path)
    assert isinstance(loaded, UNetGAConfig) and loaded.widths == (4, 8)
    built = loaded.build()
    assert built.budget.steps == 2 and built.strategy.population_size == 3


def test_every_searcher_has_a_config_that_round_trips(tiny_defects: Path) -> None:
    for name, model in CONFIGS.items():
        config = model(data=tiny_defects)
        assert config.searcher == name
        assert model.model_validate_json(config.model_dump_json()) == config


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", "cannot read a search config"),
        ('{"searcher": "grid", "data": "."}', "'searcher' must be one of"),
        ('{"searcher": "unet-ga", "data": ".", "population": 1}', "population: Input should be greater than"),
        ('{"searcher": "unet-ga", "data": ".", "populaton": 4}', "populaton: Extra inputs are not permitted"),
        ('{"strategy": {"name": "unet-ga"}}', "written before run.json recorded configs"),
    ],
)
def test_a_bad_config_is_one_line_and_exit_2(content: str, words: str, tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text(content)
    result = runner.invoke(app, ["search", "--config", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and words in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_bad_options_name_the_option(tiny_defects: Path) -> None:
    result = runner.invoke(app, ["search", "unet-ga", "--data", str(tiny_defects), "--widths", "4,x", "--print-config"])
    assert result.exit_code == 2 and "--widths" in result.output and "comma-separated integers" in result.output
    result = runner.invoke(app, ["search", "--out", "x", "unet-ga", "--data", str(tiny_defects)])
    assert result.exit_code == 2 and "for replaying a run" in result.output

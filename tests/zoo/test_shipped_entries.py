"""Shipped zoo entries: weights load offline and score what their genotypes record, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from nasseg import zoo
from nasseg.cli import app
from nasseg.zoo.data.folder import open_folder
from nasseg.zoo.data.synthetic import make_dataset
from nasseg.zoo.training.trainer import evaluate

runner = CliRunner()
SHIPPED = [name for name in zoo.list_models() if zoo.get_genotype(name).weights is not None]
SEARCHED = [name for name in SHIPPED if zoo.get_genotype(name).provenance.searcher is not None]
GENERATOR_SEED = 2  # the zoo trained on seed 1; the searches saw seed 0
TOLERANCE = 0.03


def test_the_zoo_ships_a_searched_entry_per_searcher_within_the_size_limits() -> None:
    searchers = {zoo.get_genotype(name).provenance.searcher for name in SEARCHED}
    assert searchers == {"unet-ga", "renas", "nas-asdet", "iac", "autosegnet"}
    sizes = [zoo.weights.find_weights(zoo.get_genotype(name)).stat().st_size for name in SHIPPED]
    assert max(sizes) <= 5 * 2**20 and sum(sizes) <= 30 * 2**20
    for name in SEARCHED:
        provenance = zoo.get_genotype(name).provenance
        assert provenance.search_settings and provenance.train_recipe and provenance.device
        assert provenance.search_seconds and {"test_iou", "test_dice"} <= set(provenance.metrics)


@pytest.fixture(scope="module")
def fresh_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fresh")
    return {"synth-defects": make_dataset("synth-defects", root / "d", n=200, size=64, seed=GENERATOR_SEED,
                                          difficulty="medium"),
            "synth-membranes": make_dataset("synth-membranes", root / "m", n=200, size=64,
                                            seed=GENERATOR_SEED)}  # fmt: skip


@pytest.mark.parametrize("name", SHIPPED)
def test_pretrained_entry_scores_its_recorded_iou_on_fresh_data(name: str, fresh_data: dict[str, Path]) -> None:
    torch.set_num_threads(1)
    model = zoo.create_model(name, pretrained=True)
    provenance = model.genotype.provenance
    data = next(folder for key, folder in fresh_data.items() if provenance.dataset.startswith(key))
    metrics = evaluate(model, open_folder(data), "train")  # 140 images of a generator seed it never saw
    assert abs(metrics["iou"] - provenance.metrics["test_iou"]) <= TOLERANCE, (metrics["iou"], provenance.metrics)


def test_shipped_entry_predicts_and_exports_from_the_cli(tmp_path: Path, fresh_data: dict[str, Path]) -> None:
    name = "ga-unet-synth-defects"
    images = fresh_data["synth-defects"] / "test" / "images"
    result = runner.invoke(app, ["predict", name, str(images), "--out", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "p").glob("*_mask.png"))) == len(list(images.iterdir()))
    result = runner.invoke(app, ["export", name, "--out", str(tmp_path / "m.onnx"), "--check", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["check"]["passed"] and summary["weights"] == "trained weights"
    from nasseg.serving.export import read_metadata

    assert read_metadata(tmp_path / "m.onnx").weights == "trained"


def test_list_shows_the_shipped_weights() -> None:
    result = runner.invoke(app, ["list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert all(rows[name]["weights"] is True for name in SHIPPED) and rows["unet-small"]["weights"] is False
    assert (
        rows["asdet-synth-defects"]["test_iou"]
        == zoo.get_genotype("asdet-synth-defects").provenance.metrics["test_iou"]
    )


def test_every_recorded_data_command_runs() -> None:
    """A shipped entry's provenance names the command that makes its data; that command must exist
    (its --help form runs), so a user can remake the data it was scored on."""
    import re
    import shlex

    commands = {}
    for name in zoo.list_models():
        dataset = zoo.get_genotype(name).provenance.dataset or ""
        found = re.search(r"\((nasseg [^)]*)\)", dataset)
        if found:
            commands[name] = found.group(1)
    assert len(commands) >= 8, commands
    for name, command in commands.items():
        args = shlex.split(command)[1:]
        assert args[:2] == ["data", "make"], (name, command)
        result = CliRunner().invoke(app, [*args, "--help"])
        assert result.exit_code == 0, (name, command, result.output)

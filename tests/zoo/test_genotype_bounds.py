"""Hostile or mistyped genotypes: every one a one-line GenotypeError or BuildError in under a second."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from nasseg import zoo
from nasseg.cli import app
from nasseg.zoo.budget import check_build_size
from nasseg.zoo.errors import BuildError, GenotypeError, InputSizeError
from nasseg.zoo.genotype import Genotype
from nasseg.zoo.registry import get_genotype

runner = CliRunner()


def _cellnet(**arch: object) -> dict:
    data = copy.deepcopy(get_genotype("renas-synth-defects").to_dict())
    data.pop("weights", None)
    data["arch"].update(arch)
    return data


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda d: d["arch"].update(layers=10**9), "arch.layers"),
        (lambda d: d["arch"].update(init_channels=10**9), "arch.init_channels"),
        (lambda d: d["task"].update(num_classes=10**9), "task.num_classes"),
        (lambda d: d["task"].update(in_channels=True), "task.in_channels"),
        (lambda d: d["arch"]["normal"]["nodes"][0][0].__setitem__(1, False), "boolean"),
        (lambda d: d.update(weights={"file": "../../../../etc/passwd", "arch_hash": "0" * 16}), "not a plain file"),
        (lambda d: d.update(weights={"file": "/etc/passwd", "arch_hash": "0" * 16}), "not a plain file"),
    ],
)
def test_out_of_bounds_fields_are_refused_on_load(change, says: str) -> None:
    data = _cellnet()
    change(data)
    with pytest.raises(GenotypeError, match=says) as info:
        Genotype.from_dict(data, source="g.json")
    assert "\n" not in str(info.value)  # how fast: benchmarks/genotype_bounds.py


def test_deep_nesting_is_one_line_not_a_recursion_error(tmp_path: Path) -> None:
    path = tmp_path / "nested.json"
    path.write_text("{" + '"a":{' * 100_000 + "}" * 100_001)
    with pytest.raises(GenotypeError, match="nested deeper than"):
        Genotype.from_json(path)
    data = _cellnet()
    inner: dict = {}
    data["provenance"]["search_settings"] = inner
    for _ in range(100):
        inner["a"] = {}
        inner = inner["a"]
    with pytest.raises(GenotypeError, match="nested deeper than"):
        Genotype.from_dict(data)


def test_widths_within_bounds_that_multiply_past_the_cap_are_a_build_error_before_allocation() -> None:
    genotype = Genotype.from_dict(_cellnet(init_channels=8192))
    with pytest.raises(BuildError, match="parameters .* more than the cap"):
        zoo.build_model(genotype)  # on the meta device: nothing allocated
    assert check_build_size(genotype, max_params=10**12) > 10**9  # the override lifts the cap (meta: no memory)


def test_the_cap_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    genotype = get_genotype("unet-small")
    monkeypatch.setenv("NASSEG_MAX_PARAMS", "1000")
    with pytest.raises(BuildError, match="cap of 0.0 M"):
        zoo.create_model(genotype)
    assert zoo.create_model(genotype, max_params=10**9) is not None


def test_validate_builds_on_meta_and_exits_1_for_an_unbuildable_encoder(tmp_path: Path) -> None:
    data = copy.deepcopy(get_genotype("smp-unet-resnet18").to_dict())
    data.pop("weights", None)
    data["arch"]["encoder"] = "resnet9999"
    bad, good = tmp_path / "bad.json", tmp_path / "good.json"
    bad.write_text(json.dumps(data))
    good.write_text(json.dumps(_cellnet()))
    result = runner.invoke(app, ["validate", str(good), str(bad)])
    assert result.exit_code == 1, result.output
    assert "buildable" in result.output and "not buildable" in result.output and "resnet9999" in result.output


def test_validate_refuses_a_huge_genotype_quickly(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(_cellnet(layers=10**9)))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and "arch.layers" in result.output


def test_an_input_below_the_divisor_is_an_input_size_error_naming_the_smallest_size() -> None:
    model = zoo.create_model("unet-small")
    side = model.divisor // 2
    with pytest.raises(InputSizeError, match=f"at least {model.divisor}x{model.divisor}"):
        model(torch.zeros(1, 3, side, side))

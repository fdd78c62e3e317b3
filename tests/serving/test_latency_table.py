"""Latency tables timed on ONNX Runtime, and `nasseg latency table | predict`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nasseg import zoo
from nasseg.cli import app
from nasseg.serving.latency_table import build_table, measure_genotype_ms
from nasseg.zoo.latency import LatencyTable, trace_genotype

runner = CliRunner()


def test_table_times_every_unit_of_the_traced_nets(tiny_latency_table: Path) -> None:
    data = json.loads(tiny_latency_table.read_text())
    keys = {c.key for name in ("unet-small", "nas-asdet-darts-v2")
            for c in trace_genotype(zoo.resolve_genotype(name), (32, 32))}  # fmt: skip
    assert set(data["units"]) == keys and not data["not_timed"]
    assert all(row["ms"] >= 0 for row in data["units"].values())
    assert sum(row["ms"] for row in data["units"].values()) > 0 and data["call_overhead_ms"] > 0
    prediction = LatencyTable(data).predict(zoo.resolve_genotype("unet-small"), (32, 32))
    assert prediction.estimated == 0 and prediction.predicted_ms > data["call_overhead_ms"]


def test_int8_table_and_a_measured_net() -> None:
    genotype = zoo.resolve_genotype("unet-small")
    calls = trace_genotype(genotype, (32, 32), keep_modules=True)[:3]
    data = build_table(calls, runtime="onnx-int8", threads=1, repeats=3)
    assert data["runtime"] == "onnx-int8" and len(data["units"]) == 3
    assert measure_genotype_ms(genotype, (32, 32), threads=1, repeats=3) > 0
    with pytest.raises(ValueError, match="runtime"):
        build_table(calls, runtime="tensorrt")


def test_cli_table_then_predict(tmp_path: Path) -> None:
    out = tmp_path / "table.json"
    result = runner.invoke(app, ["latency", "table", "--out", str(out), "--spaces", "iac", "--samples", "1",
                                 "--size", "32x32", "--threads", "1", "--repeats", "3",
                                 "--models", "unet-small"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "timed" in result.output and out.is_file()
    data = json.loads(out.read_text())
    assert data["size"] == [32, 32] and data["sources"]["spaces"] == ["iac"]
    result = runner.invoke(app, ["latency", "predict", "unet-small", "--table", str(out), "--measure"])
    assert result.exit_code == 0, result.output
    prediction = json.loads(result.stdout)
    assert prediction["estimated"] == 0 and prediction["predicted_ms"] > 0 and prediction["measured_ms"] > 0
    assert prediction["size"] == [32, 32]


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["latency", "predict", "unet-small", "--table", str(tmp_path / "none.json")])
    assert result.exit_code == 2 and "no such latency table" in result.output
    result = runner.invoke(app, ["latency", "table", "--out", str(tmp_path / "t.json"), "--runtime", "tflite"])
    assert result.exit_code == 2 and "--runtime" in result.output
    result = runner.invoke(app, ["latency", "table", "--out", str(tmp_path / "t.json"), "--spaces", "darts"])
    assert result.exit_code == 2 and "unknown search space" in result.output
    assert not (tmp_path / "t.json").exists()


def test_cli_table_covers_a_searchs_own_space_and_extends_a_table(tmp_path: Path) -> None:
    """`--config` times the space a search explores (its widths and levels, not the defaults), so
    its candidates are looked up, not estimated; `--extend` keeps a table's units and times the rest."""
    from nasseg.searchers.configs import UNetGAConfig
    from nasseg.searchers.space_samples import config_samples, sample_genotypes

    config = UNetGAConfig(data=str(tmp_path), widths=(4, 8), layers=3, image_size=32)
    settings = tmp_path / "search.json"
    settings.write_text(config.model_dump_json())
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    common = ["--size", "32x32", "--threads", "1", "--repeats", "3", "--samples", "3", "--calibrate", "0"]
    result = runner.invoke(app, ["latency", "table", "--out", str(first), "--config", str(settings), *common])
    assert result.exit_code == 0, result.output
    data = json.loads(first.read_text())
    assert data["sources"]["spaces"] == [] and data["sources"]["configs"][0]["widths"] == [4, 8]
    table = LatencyTable(data)
    candidate = config_samples(config, 6, seed=9)[-1]  # another draw of the same space
    assert all(width in (4, 8) for width in candidate.arch.channels)
    assert table.predict(candidate, (32, 32)).estimated_share < 0.5
    default = sample_genotypes("unet-ga", 1, (32, 32))[0]  # widths 64-512: not this search's space
    assert table.predict(default, (32, 32)).estimated_share > 0.5
    result = runner.invoke(app, ["latency", "table", "--out", str(second), "--extend", str(first), "--spaces",
                                 "unet-ga", *common])  # fmt: skip
    assert result.exit_code == 0, result.output
    extended = json.loads(second.read_text())
    assert {k: v for k, v in extended["units"].items() if k in data["units"]} == data["units"]
    assert len(extended["units"]) > len(data["units"]) and "new units" in result.output
    assert extended["sources"]["extends"][0]["configs"] == data["sources"]["configs"]
    assert LatencyTable(extended).predict(default, (32, 32)).estimated_share < 0.5
    result = runner.invoke(app, ["latency", "table", "--out", str(second), "--extend", str(first), "--size",
                                 "64x64", "--threads", "1"])  # fmt: skip
    assert result.exit_code == 2 and "give the same options" in result.output and "\n" not in result.output.strip()
    assert json.loads(second.read_text()) == extended  # a refused run writes nothing


def test_an_extended_tables_calibration_counts_every_net_it_was_calibrated_on() -> None:
    from nasseg.cli.latency import merged_calibration

    kept = {"unet": {"scale": 1.0, "nets": 3, "ratios": [0.9, 1.0, 1.1]}, "cellnet": {"scale": 1.2, "nets": 1,
                                                                                   "ratios": [1.2]}}  # fmt: skip
    merged = merged_calibration(kept, {"unet": {"scale": 0.5, "nets": 2, "ratios": [0.4, 0.6]}})
    assert merged["unet"] == {"scale": 0.9, "nets": 5, "ratios": [0.9, 1.0, 1.1, 0.4, 0.6]}
    assert merged["cellnet"] == kept["cellnet"]

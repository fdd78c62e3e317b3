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

"""Static int8 quantisation (QDQ, per-channel) and the fp32-vs-int8 report, on real ORT sessions.

One deploy graph of ``unet-small`` is exported per module and quantised once; calibration and
scoring use a small bundled synth-defects folder.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

from nasseg import zoo
from nasseg.cli import app
from nasseg.serving import OnnxSegmenter, export, read_metadata
from nasseg.serving.quantize import (
    FolderCalibrationReader,
    QuantizeError,
    calibration_files,
    calibration_size,
    compare_int8,
    fit_to_size,
    int8_path,
    quantize,
    read_quantization,
)
from nasseg.zoo.data.synthetic import make_dataset

runner = CliRunner()


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("int8")


@pytest.fixture(scope="module")
def data(work: Path) -> Path:
    return make_dataset("synth-defects", work / "data", n=20, size=48, seed=0)


@pytest.fixture(scope="module")
def fp32_file(work: Path) -> Path:
    torch.manual_seed(0)
    return export(zoo.create_model("unet-small").eval(), work / "unet-small.onnx").path


@pytest.fixture(scope="module")
def int8_file(fp32_file: Path, data: Path) -> Path:
    return quantize(fp32_file, calib_dir=data, count=6, size=32, select="all").path


def test_int8_file_keeps_the_contract_and_is_smaller(fp32_file: Path, int8_file: Path) -> None:
    assert int8_file == int8_path(fp32_file) == fp32_file.with_name("unet-small.int8.onnx")
    fp32_meta, int8_meta = read_metadata(fp32_file), read_metadata(int8_file)
    assert dataclasses.asdict(int8_meta) == dataclasses.asdict(fp32_meta)
    record = read_quantization(int8_file)
    assert record["dtype"] == "int8" and record["format"] == "QDQ" and record["per_channel"] is True
    assert record["calibration"]["count"] == 6 and record["calibration"]["size"] == [32, 32]
    assert read_quantization(fp32_file) is None
    assert int8_file.stat().st_size < 0.5 * fp32_file.stat().st_size
    proto = onnx.load(str(int8_file))
    ops = {node.op_type for node in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Sigmoid"} <= ops
    weights = {init.name: init for init in proto.graph.initializer}
    per_channel = [n for n in proto.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in weights
                   and weights[n.input[0]].data_type == onnx.TensorProto.INT8
                   and len(weights[n.input[1]].dims) == 1 and weights[n.input[1]].dims[0] > 1]  # fmt: skip
    assert per_channel, "no per-channel int8 weights"


def test_int8_deploy_graph_serves_like_fp32(fp32_file: Path, int8_file: Path) -> None:
    frames = np.random.default_rng(0).integers(0, 256, (2, 37, 29, 3), dtype=np.uint8)
    fp32 = OnnxSegmenter(fp32_file, device="cpu", threads=1).predict_frames(frames)
    int8 = OnnxSegmenter(int8_file, device="cpu", threads=1).predict_frames(frames)
    assert int8[0].shape == (2, 37, 29) and int8[0].dtype == np.uint8
    assert np.abs(int8[1] - fp32[1]).mean() < 0.05  # probabilities stay float and close


def test_compare_reports_iou_sizes_latency_and_verdict(fp32_file: Path, int8_file: Path, data: Path) -> None:
    report = compare_int8(fp32_file, int8_file, data, threads=1, warmup=1, repeats=4)
    assert report.images == 3 and report.split == "test"
    for metrics in (report.fp32_metrics, report.int8_metrics):
        assert 0.0 <= metrics["iou"] <= 1.0 and 0.0 <= metrics["pixel_accuracy"] <= 1.0
    assert report.mask_agreement > 0.9
    assert report.iou_delta == pytest.approx(report.int8_metrics["iou"] - report.fp32_metrics["iou"])
    for latency in (report.fp32_latency, report.int8_latency):
        assert 0 < latency["min_ms"] <= latency["p50_ms"] <= latency["p90_ms"] <= latency["p99_ms"]
    assert report.int8_bytes < report.fp32_bytes
    verdict = report.verdict()
    assert ("SLOWER" in verdict) == (report.latency_ratio > 1) and "on this CPU" in verdict
    as_dict = json.loads(json.dumps(report.to_dict()))
    assert as_dict["int8_slower"] == (report.latency_ratio > 1) and as_dict["bytes"]["int8"] == report.int8_bytes
    assert any("IoU" in line for line in report.lines()) and report.lines()[-1].strip() == verdict


def test_calibration_inputs_follow_the_graph(fp32_file: Path, data: Path) -> None:
    meta = read_metadata(fp32_file)
    files = calibration_files(data, count=5)
    assert len(files) == 5 and all("/train/images/" in str(f) for f in files)
    frames = FolderCalibrationReader(files, meta, "frames", (40, 24))
    batches = list(iter(frames.get_next, None))
    assert len(batches) == 5 and batches[0]["frames"].shape == (1, 40, 24, 3) and batches[0]["frames"].dtype == np.uint8
    frames.rewind()
    assert frames.get_next() is not None
    raw = dataclasses.replace(meta, graph="raw")
    assert calibration_size(raw, (40, 24)) == (48, 32) and calibration_size(meta, (40, 24)) == (40, 24)
    assert calibration_size(meta, None) == (128, 128)  # the genotype's input size, at most 256 a side
    x = FolderCalibrationReader(files, raw, "input", (48, 32)).get_next()["input"]
    assert x.shape == (1, 3, 48, 32) and x.dtype == np.float32 and x.min() < 0 < x.max()  # normalised
    image = np.arange(5 * 7 * 1, dtype=np.float32).reshape(5, 7, 1)
    assert fit_to_size(image, (9, 3)).shape == (9, 3, 1) and fit_to_size(image, (5, 7))[2, 3, 0] == image[2, 3, 0]


def test_bundled_calibration_without_a_folder(fp32_file: Path, tmp_path: Path) -> None:
    result = quantize(fp32_file, tmp_path / "bundled.onnx", count=3, size=32, select="all")
    assert "bundled synth-defects" in result.quantization["calibration"]["source"]
    assert result.quantization["calibration"]["count"] == 3 and result.metadata.graph == "deploy"


def test_errors_are_one_line(fp32_file: Path, int8_file: Path, data: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "images-only").mkdir()
    zoo.data.images.write_png(tmp_path / "images-only" / "a.png", np.zeros((8, 8), np.uint8))
    cases = [
        (lambda: quantize(fp32_file, calib_dir=tmp_path / "missing"), "no such folder"),
        (lambda: quantize(fp32_file, calib_dir=tmp_path / "empty"), "no images"),
        (lambda: quantize(fp32_file, calib_dir=data, count=0), "count must be >= 1"),
        (lambda: quantize(fp32_file, calib_dir=data, method="magic"), "method must be one of"),
        (lambda: quantize(fp32_file, fp32_file, calib_dir=data), "would overwrite"),
        (lambda: quantize(fp32_file, calib_dir=data, select="some"), "selection must be one of auto, all"),
        (lambda: compare_int8(fp32_file, int8_file, tmp_path / "images-only"), "needs a dataset folder with masks"),
    ]
    for call, message in cases:
        with pytest.raises(QuantizeError, match=message) as info:
            call()
        assert "\n" not in str(info.value)
    assert calibration_files(tmp_path / "images-only", 4) == [tmp_path / "images-only" / "a.png"]


def test_cli_export_int8_prints_the_report(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.onnx"
    args = [
        "export",
        "unet-small",
        "--out",
        str(out),
        "--int8",
        "--calib",
        str(data),
        "--calib-count",
        "4",
        "--json",
        "--allow-random-weights",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["int8"]["path"] == str(tmp_path / "cli.int8.onnx") and (tmp_path / "cli.int8.onnx").is_file()
    comparison = summary["int8"]["comparison"]
    assert {"fp32", "int8", "iou_delta", "bytes", "latency", "verdict"} <= set(comparison)
    assert summary["int8"]["quantization"]["calibration"]["count"] == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--int8"], "--int8 needs --calib DIR"),
        (["--calib", "{data}"], "--calib is only used with --int8"),
        (["--int8", "--calib", "{tmp}/nowhere"], "no such folder"),
        (["--int8", "--calib", "{data}", "--calib-count", "0"], "--calib-count must be >= 1"),
        (["--int8", "--calib", "{data}", "--int8-nodes", "most"], "--int8-nodes must be one of auto, all"),
    ],
)
def test_cli_int8_bad_arguments_exit_2(args: list[str], message: str, data: Path, tmp_path: Path) -> None:
    args = ["export", "unet-small", "--out", str(tmp_path / "x.onnx"), "--allow-random-weights"] + [
        a.format(data=data, tmp=tmp_path) for a in args
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.onnx").exists()


def test_auto_selection_quantises_only_what_it_measured_faster(fp32_file: Path, data: Path, tmp_path: Path) -> None:
    result = quantize(fp32_file, tmp_path / "auto.onnx", calib_dir=data, count=4, size=32, threads=1)
    selection = result.quantization["selection"]
    assert selection["mode"] == "auto" and selection["timed_at"] == [32, 32]
    groups = {row["group"]: row for row in selection["groups"]}
    assert {"conv-dense", "conv-dense-narrow"} <= set(groups) and all(row["fp32_ms"] > 0 for row in groups.values())
    assert set(selection["chosen_groups"]) <= {name for name, row in groups.items() if row["gains"]}
    ops = {node.op_type for node in onnx.load(str(result.path)).graph.node}
    assert ("QuantizeLinear" in ops) == (selection["quantized_nodes"] > 0)
    assert (result.quantization["dtype"] == "int8") == (selection["quantized_nodes"] > 0)
    assert result.quantization["per_channel"] is (selection["quantized_nodes"] > 0)
    if not selection["quantized_nodes"]:
        assert "kept float" in result.quantization["note"]
    else:
        assert selection["int8_p50_ms"] <= selection["fp32_p50_ms"]
    assert read_metadata(result.path).arch_hash == read_metadata(fp32_file).arch_hash

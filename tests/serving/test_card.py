"""Model cards: the cheap card of an ONNX file, the card folder, and ``nasseg report --card``.

One tiny net (unet-small) is exported once per module; the other tests reuse the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import torch
from typer.testing import CliRunner

from nasseg import zoo
from nasseg.cli import app
from nasseg.serving import ExportError, export
from nasseg.serving.card import CardError, build_card, card_from_onnx, check_bench, model_figures
from nasseg.zoo.profiling import CONVENTION

runner = CliRunner()
CARD_FILES = ("card.md", "card.json", "cells.png")

CARD_KEYS = {
    "name", "family", "arch_hash", "class_names", "threshold", "input_size", "params", "macs", "flops",
    "macs_convention", "activation_bytes", "file_bytes", "graph", "provenance", "nasseg_version", "quantization",
}  # fmt: skip


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = zoo.create_model("unet-small")
    path = tmp_path_factory.mktemp("card") / "unet-small.onnx"
    return export(model, path, class_names=["good", "scratch"], threshold=0.4).path


def test_card_from_onnx(onnx_file: Path) -> None:
    card = card_from_onnx(onnx_file)
    assert CARD_KEYS <= set(card)
    json.dumps(card)  # JSON-ready
    genotype = zoo.get_genotype("unet-small")
    reference = zoo.profile(zoo.build_model(genotype), (1, 3, 128, 128))
    assert (card["name"], card["family"], card["arch_hash"]) == ("unet-small", "unet", genotype.arch_hash)
    assert card["class_names"] == ["good", "scratch"] and card["threshold"] == 0.4 and card["graph"] == "deploy"
    assert card["input_size"] == [128, 128] and card["file_bytes"] == onnx_file.stat().st_size
    assert (card["params"], card["macs"], card["flops"]) == (reference.params_total, reference.macs, reference.flops)
    assert card["activation_bytes"] == reference.peak_activation_bytes
    assert card["macs_convention"] == reference.convention and card["quantization"] is None
    assert card["nasseg_version"] == zoo.__version__ and card["accuracy"] is None
    assert any("INFERENCE_PRECISION_HINT" in note and "bf16" in note for note in card["runtime_notes"])
    assert card["provenance"]["metrics"] == {} and "skips" in card["summary"]["facts"]


@pytest.mark.parametrize("name", ["smp-unet-resnet18", "iac-base-unet-small", "nas-asdet-darts-v2"])
def test_model_figures_match_profile(name: str) -> None:
    """The meta-device figures are zoo.profile's, peak activations included (at 64x64: cheap)."""
    genotype = zoo.apply_overrides(zoo.get_genotype(name), {"input_size": [64, 64]})
    reference = zoo.profile(zoo.build_model(genotype), (1, genotype.task.in_channels, *genotype.task.input_size))
    figures = model_figures(genotype)
    assert figures["params"] == reference.params_total and figures["macs"] == reference.macs
    assert figures["elementwise_ops"] == reference.elementwise_ops
    assert figures["activation_bytes"] == reference.peak_activation_bytes


def test_card_from_onnx_reads_quantization(onnx_file: Path, tmp_path: Path) -> None:
    proto = onnx.load(str(onnx_file))
    proto.metadata_props.add(key="nasseg.quantization", value=json.dumps({"dtype": "int8", "format": "QDQ"}))
    onnx.save_model(proto, str(tmp_path / "q.onnx"))
    assert card_from_onnx(tmp_path / "q.onnx")["quantization"] == {"dtype": "int8", "format": "QDQ"}


def test_card_from_onnx_refuses_other_files(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no such ONNX file"):
        card_from_onnx(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not onnx")
    with pytest.raises(ExportError, match="junk.onnx"):
        card_from_onnx(junk)


def _row(runtime: str, threads: int, p50: float) -> dict:
    return {"runtime": runtime, "threads": threads, "height": 128, "width": 128, "provider": "CPUExecutionProvider",
            "batch1": {"p50_ms": p50, "p90_ms": p50 * 1.2, "p99_ms": p50 * 1.5, "mean_ms": p50 * 1.1},
            "throughput": {"batch": 8, "images_per_s": 8000 / (p50 * 7)}, "gflops_per_s": 0.14 / p50 * 1e3}  # fmt: skip


def hand_made_bench(arch_hash: str) -> dict:
    """A result in the shape of serving.bench.bench_model's."""
    return {"model": "unet-small", "arch_hash": arch_hash, "macs": {"128x128": 72351744}, "convention": "...",
            "rows": [_row("onnx-fp32", 1, 12.5), _row("onnx-int8", 1, 9.25), _row("torch", 1, 30.0),
                     _row("onnx-fp32", 2, 7.75)],
            "files": {"onnx-fp32": 1_575_806, "onnx-int8": 422_787}, "peak_rss_mib": 512.5,
            "matmul_gflops_per_s": {"1": 9.0, "2": 17.5}, "repeats": 10, "warmup": 2, "graph": "raw",
            "system": {"cpu": "Test CPU @ 1 GHz", "cores": 2, "torch": "2.x", "onnxruntime": "1.x"},
            "notes": ["int8 is 1.35x faster than fp32 at 1 thread, 128x128 on this CPU (p50 batch 1)."]}  # fmt: skip


def test_build_card_with_bench(onnx_file: Path, tmp_path: Path) -> None:
    genotype = zoo.get_genotype("unet-small")
    result = build_card("unet-small", tmp_path / "card", bench=hand_made_bench(genotype.arch_hash), onnx_path=onnx_file)
    assert (result.markdown, result.json, result.picture) == tuple(tmp_path / "card" / n for n in CARD_FILES)
    assert result.picture.read_bytes().startswith(b"\x89PNG") and result.onnx == onnx_file
    card = json.loads(result.json.read_text())
    assert card == result.card and CARD_KEYS <= set(card)
    assert card["files"] == {"onnx-fp32": onnx_file.stat().st_size, "onnx-int8": 422_787, "weights": None}
    assert len(card["latency"]) == 4 and card["bench"]["system"]["cpu"] == "Test CPU @ 1 GHz"
    assert card["class_names"] == ["good", "scratch"] and card["picture"] == "cells.png"
    md = result.markdown.read_text()
    assert "| runtime | threads | input | p50 | p90 | p99 | mean |" in md
    assert "| onnx-int8 | 1 | 128x128 | 9.25 | 11.10 | 13.88 | 10.18 |" in md
    assert "Fastest batch-1 setting: **onnx-fp32, 2 thread(s)**, p50 7.75 ms" in md
    assert CONVENTION in md and "FLOPs = 2 x MACs" in md and "![genotype of unet-small](cells.png)" in md
    assert "72,351,744" in md and "0.40 MiB (422,787 bytes)" in md and "Test CPU @ 1 GHz" in md
    assert "not trained / no accuracy recorded" in md and "- int8 is 1.35x faster" in md


def test_build_card_accuracy_size_and_onnx_name(onnx_file: Path, tmp_path: Path) -> None:
    genotype = zoo.get_genotype("unet-small")
    trained = genotype.replace(provenance={"dataset": "synth-defects", "metrics": {"iou": 0.8125, "dice": 0.875}})
    card = build_card(trained, tmp_path / "a", onnx_path=onnx_file, size=(64, 96)).card
    assert card["accuracy"] == {"iou": 0.8125, "dice": 0.875} and card["input_size"] == [64, 96]
    assert card["macs"] == zoo.profile(zoo.build_model(genotype), (1, 3, 64, 96)).macs
    md = (tmp_path / "a" / "card.md").read_text()
    assert "iou 0.8125" in md and "dataset: synth-defects" in md and "not trained" not in md
    assert "No latency measured" in md and card["latency"] == [] and card["files"]["onnx-int8"] is None
    from_onnx = build_card(onnx_file, tmp_path / "b").card  # an exported file names its own genotype
    assert from_onnx["arch_hash"] == genotype.arch_hash and from_onnx["file"] == onnx_file.name
    assert not (tmp_path / "b" / "unet-small.onnx").exists()


def test_build_card_refuses_mismatches(onnx_file: Path, tmp_path: Path) -> None:
    with pytest.raises(CardError, match=r"bench: the benchmark is of arch 0123456789abcdef"):
        build_card("unet-small", tmp_path, bench=hand_made_bench("0123456789abcdef"), onnx_path=onnx_file)
    with pytest.raises(CardError, match=r"rows\[0\] lacks batch1"):
        check_bench({"rows": [{"runtime": "torch", "threads": 1, "height": 8, "width": 8}]})
    with pytest.raises(CardError, match="is of arch .* not of 'unet-pix2pix-256'"):
        build_card("unet-pix2pix-256", tmp_path, onnx_path=onnx_file)
    with pytest.raises(zoo.InputSizeError, match="multiples of 16; got 100x100"):
        build_card("unet-small", tmp_path, onnx_path=onnx_file, size=(100, 100))


def test_cli_report_card_no_bench(tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", "unet-small", "--card", str(tmp_path / "card"), "--no-bench"])
    assert result.exit_code == 0, result.output
    for name in (*CARD_FILES, "unet-small.onnx"):
        assert (tmp_path / "card" / name).is_file() and name in result.output
    card = json.loads((tmp_path / "card" / "card.json").read_text())
    assert card["graph"] == "deploy" and card["latency"] == [] and card["file_bytes"] > 0
    assert card_from_onnx(tmp_path / "card" / "unet-small.onnx")["macs"] == card["macs"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "bad.json: line 1 column 2: invalid JSON"),
        ('{"rows": 3}', "bad.json: not a benchmark result (no 'rows' list"),
        ('{"rows": [], "arch_hash": "0123456789abcdef"}', "bad.json: the benchmark is of arch 0123456789abcdef"),
    ],
)
def test_cli_bad_bench_file_exits_2_with_one_line(content: str, message: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    result = runner.invoke(app, ["report", "unet-small", "--card", str(tmp_path / "c"), "--bench", str(bad)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output
    assert not (tmp_path / "c").exists()


def test_cli_card_option_errors(tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", "unet-small", "--no-bench"])
    assert result.exit_code == 2 and "--bench and --no-bench go with --card DIR" in result.output
    result = runner.invoke(app, ["report", "unet-small", "--card", str(tmp_path), "--no-bench", "--bench", "x.json"])
    assert result.exit_code == 2 and "exclude each other" in result.output


@pytest.mark.slow
def test_card_end_to_end_through_bench(tmp_path: Path) -> None:
    """The real benchmark (ONNX Runtime fp32 and int8, PyTorch) on the tiny net, then the card."""
    result = runner.invoke(app, ["report", "unet-small", "--card", str(tmp_path), "--size", "64", "64"])
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "card.json").read_text())
    assert {(r["runtime"], r["threads"]) for r in card["latency"]} == {
        (runtime, threads) for runtime in ("onnx-fp32", "onnx-int8", "torch") for threads in (1, 2)
    }
    assert card["files"]["onnx-int8"] > 0 and card["input_size"] == [64, 64]
    assert "| onnx-int8 | 1 | 64x64 |" in (tmp_path / "card.md").read_text()

"""The latency benchmark: structure and sanity of its JSON, argument errors, the ``nasseg bench`` CLI.

One tiny benchmark (``unet-small`` at 32x32, 1 and 2 threads, a few repeats, real ORT sessions)
is run per module; nothing here asserts a timing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nasseg import zoo
from nasseg.cli import app
from nasseg.serving.bench import BenchError, bench_model, parse_threads
from nasseg.serving.quantize import compare_int8, read_quantization
from nasseg.zoo.data.synthetic import make_dataset
from nasseg.zoo.profiling import CONVENTION
from nasseg.zoo.sizing import SizeError, parse_size

runner = CliRunner()
RUNTIMES = ("onnx-fp32", "onnx-int8", "torch")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench")


@pytest.fixture(scope="module")
def result(work: Path) -> dict:
    messages: list[str] = []
    out = bench_model("unet-small", sizes=[(32, 32)], threads=(1, 2), warmup=1, repeats=4, throughput_batch=2,
                      work_dir=work, progress=messages.append)  # fmt: skip
    out["_messages"] = messages
    return out


def _float_weight_bytes(fp32_graph: Path, group_names: list[str]) -> int:
    """Bytes of the float weights feeding the nodes of the named int8 node groups of ``fp32_graph``."""
    import onnx
    from onnx import numpy_helper

    from nasseg.serving.int8_select import node_groups
    from nasseg.serving.quantize import quantisable_ops

    model = onnx.load(str(fp32_graph))
    weights = {t.name: t for t in model.graph.initializer}
    nodes = {n.name: n for n in model.graph.node}
    chosen = [g for g in node_groups(model, quantisable_ops()) if g.name in group_names]
    return sum(numpy_helper.to_array(weights[name]).nbytes for g in chosen for node in g.nodes
               for name in nodes[node].input[1:2] if name in weights)  # fmt: skip


def test_result_structure(result: dict) -> None:
    json.dumps(result)  # JSON-ready
    assert result["model"] == "unet-small" and result["arch_hash"] == zoo.get_genotype("unet-small").arch_hash
    assert result["convention"] == CONVENTION and result["graph"] == "raw"
    assert result["macs"] == {"32x32": zoo.profile(zoo.create_model("unet-small"), (1, 3, 32, 32)).macs}
    assert {(r["runtime"], r["threads"]) for r in result["rows"]} == {(r, t) for r in RUNTIMES for t in (1, 2)}
    assert set(result["matmul_gflops_per_s"]) == {"1", "2"} and all(
        v > 0 for v in result["matmul_gflops_per_s"].values()
    )
    record = read_quantization(result["paths"]["onnx-int8"])
    assert record["selection"]["mode"] == "auto"  # only groups that gained here
    quantised = record["selection"]["quantized_nodes"] > 0
    assert record["per_channel"] is quantised and (record["format"] == "QDQ") is quantised
    # the chosen groups' weights are stored in int8, a quarter of their float bytes (plus per-channel
    # scales and Q/DQ nodes); which groups gain is timed, so a light group alone shrinks the file little
    chosen = _float_weight_bytes(Path(result["paths"]["onnx-fp32"]), record["selection"]["chosen_groups"])
    assert (chosen > 0) is quantised
    fp32_bytes = result["files"]["onnx-fp32"]
    assert result["files"]["onnx-int8"] <= fp32_bytes - 0.6 * chosen + 0.05 * fp32_bytes
    assert result["peak_rss_mib"] > 0 and result["_messages"]
    system = result["system"]
    assert system["cpu"] and system["cores"] >= 1
    assert {"python", "torch", "onnxruntime", "onnx", "nasseg"} <= set(system)


def test_rows_are_sane(result: dict) -> None:
    for row in result["rows"]:
        b1 = row["batch1"]
        assert 0 < b1["p50_ms"] <= b1["p90_ms"] <= b1["p99_ms"] and b1["mean_ms"] > 0 and b1["repeats"] == 4
        assert row["throughput"]["batch"] == 2 and row["throughput"]["images_per_s"] > 0
        flops = 2 * result["macs"]["32x32"]
        assert row["gflops_per_s"] == pytest.approx(flops / (b1["p50_ms"] / 1e3) / 1e9, rel=1e-3, abs=1e-3)
        assert row["matmul_fraction"] > 0 and (row["height"], row["width"]) == (32, 32)
        if row["runtime"] == "torch":
            assert row["provider"].startswith("torch eager")
        else:
            assert row["provider"] == "CPUExecutionProvider" and row["vs_torch_p50"] > 0
        assert ("int8_over_fp32_p50" in row) == (row["runtime"] == "onnx-int8")


def test_notes_say_where_int8_was_calibrated_and_if_it_is_slower(result: dict) -> None:
    notes = result["notes"]
    assert any("bundled synth-defects" in n for n in notes)
    for row in result["rows"]:
        if row["runtime"] == "onnx-int8":
            slower = row["int8_over_fp32_p50"] > 1
            word = "slower" if slower else "faster"
            assert any(n.startswith("int8 is") and word in n and f"at {row['threads']} thread" in n for n in notes)
    assert "bundled synth-defects" in result["int8"]["calibration"]["source"]


def test_int8_of_the_raw_graph_scores_on_a_test_split(result: dict, work: Path) -> None:
    data = make_dataset("synth-defects", work / "data", n=12, size=32, seed=1)
    report = compare_int8(result["paths"]["onnx-fp32"], result["paths"]["onnx-int8"], data, threads=1, repeats=2)
    assert report.images == 2 and 0 <= report.int8_metrics["iou"] <= 1 and report.mask_agreement > 0.8
    assert report.latency_size == (32, 32)  # raw graphs are timed on the image padded to the divisor


def test_parsers() -> None:
    assert parse_size("256x192") == (256, 192) and parse_size("64") == (64, 64)
    assert parse_threads("1, 2") == [1, 2]
    for bad in ("abc", "0x5", "3x4x5", "x"):
        with pytest.raises(SizeError, match="size must be"):
            parse_size(bad)
    for bad in ("0", "a", "1,,2", "-1"):
        with pytest.raises(BenchError, match="threads|thread counts"):
            parse_threads(bad)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"runtimes": ("onnx-fp32", "tvm")}, BenchError, "unknown runtime 'tvm'"),
        ({"threads": (0,)}, BenchError, "thread counts must be integers >= 1"),
        ({"sizes": ((40, 40),)}, zoo.InputSizeError, "positive multiples of 16"),
        ({"device": "tpu"}, BenchError, "device must be one of"),
        ({"weights": "best"}, BenchError, "weights must be one of"),
        ({"repeats": 0}, BenchError, "repeats >= 1"),
    ],
)
def test_bad_arguments_raise_one_line_errors(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message) as info:
        bench_model("unet-small", **kwargs)
    assert "\n" not in str(info.value)


def test_cli_bench_prints_a_table_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = ["bench", "unet-small", "--size", "32x32", "--size", "16x48", "--threads", "1", "--runtimes", "torch",
            "--repeats", "2", "--warmup", "0", "--batch", "2", "--json-out", str(out)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "torch" in result.stdout and "p50 ms" in result.stdout and f"wrote {out}" in result.stdout
    data = json.loads(out.read_text())
    assert [(r["runtime"], r["height"], r["width"]) for r in data["rows"]] == [("torch", 32, 32), ("torch", 16, 48)]
    assert data["files"] == {} and "onnx-int8" not in json.dumps(data["rows"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "abc"], "size must be HEIGHTxWIDTH"),
        (["--threads", "0"], "thread counts must be integers >= 1"),
        (["--threads", "two"], "threads must be comma-separated integers"),
        (["--runtimes", "onnx-fp32,tvm"], "unknown runtime 'tvm'"),
        (["--size", "40x40"], "positive multiples of 16"),
        (["--device", "tpu"], "device must be one of"),
    ],
)
def test_cli_bad_arguments_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["bench", "unet-small", *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output

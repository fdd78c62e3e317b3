"""OpenVINO beside ONNX Runtime (issue 30): the IR keeps the deploy contract, predict and serve run it
behind the one segmenter, masks agree with ONNX Runtime fp32, and telemetry stays off."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nasseg import zoo
from nasseg.cli import app
from nasseg.serving.export import export, read_metadata
from nasseg.serving.runtime import OnnxSegmenter, RuntimeSetupError

runner = CliRunner()
TRAINED = "unet-small-synth-defects"
GENOTYPES = Path(zoo.__file__).resolve().parent.parent / "genotypes"


@pytest.fixture(scope="module")
def genotype_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained shipped entry (masks of random weights sit at p = 0.5, where any rounding flips them)."""
    folder = tmp_path_factory.mktemp("ov")
    zoo.get_genotype(TRAINED).to_json(folder / "ov-tiny.json")
    (folder / f"{TRAINED}.safetensors").write_bytes((GENOTYPES / f"{TRAINED}.safetensors").read_bytes())
    return folder / "ov-tiny.json"


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    from nasseg.zoo.data.images import read_image
    from nasseg.zoo.data.synthetic import make_dataset

    data = make_dataset("synth-defects", tmp_path_factory.mktemp("frames") / "d", n=6, size=64, seed=3,
                        difficulty="medium")  # fmt: skip
    images = [read_image(p) for p in sorted((data / "train" / "images").glob("*.png"))[:3]]
    return np.stack([np.dstack([i] * 3) if i.ndim == 2 else i[..., :3] for i in images]).astype(np.uint8)


@pytest.fixture(scope="module")
def exports(genotype_file: Path) -> dict[str, Path]:
    """The deploy graph as ONNX, and as an f32 IR made by the CLI."""
    folder = genotype_file.parent
    onnx_file = folder / "ov-tiny.onnx"
    export(zoo.create_model(genotype_file, pretrained=True), onnx_file)
    result = runner.invoke(app, ["export", str(genotype_file), "--format", "openvino", "--out",
                                 str(folder / "ov-tiny.xml"), "--allow-random-weights", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["precision"] == "f32"
    return {"onnx": onnx_file, "xml": folder / "ov-tiny.xml"}


def test_the_ir_keeps_the_deploy_contract(exports: dict[str, Path]) -> None:
    assert exports["xml"].with_suffix(".bin").is_file()
    meta, onnx_meta = read_metadata(exports["xml"]), read_metadata(exports["onnx"])
    assert meta.graph == "deploy" and meta.arch_hash == onnx_meta.arch_hash
    assert meta.class_names == onnx_meta.class_names == ["background", "defect"]
    assert sys.modules.get("openvino_telemetry", "absent") is None  # the converter used its telemetry stub
    segmenter = OnnxSegmenter(exports["xml"], "cpu", 1, runtime="openvino")
    assert segmenter.session.input_names and segmenter.session.provider == "OpenVINO CPU (f32)"


def test_openvino_masks_agree_with_onnx_runtime_tiled_and_batched(exports: dict[str, Path], frames: np.ndarray) -> None:
    ort_side = OnnxSegmenter(exports["onnx"], "cpu", 1)
    ov_side = OnnxSegmenter(exports["xml"], "cpu", 1, runtime="openvino")
    (mask_a, prob_a), (mask_b, prob_b) = ort_side.predict_frames(frames), ov_side.predict_frames(frames)
    assert mask_a.any() and (mask_a == mask_b).mean() >= 0.999 and np.abs(prob_a - prob_b).max() < 1e-3
    line = np.tile(frames[0], (5, 11, 1))  # 320 x 704: runs in tiles of 128
    tiled_a, _ = ort_side.predict_frame(line, tile=128)
    tiled_b, _ = ov_side.predict_frame(line, tile=128)
    assert (tiled_a == tiled_b).mean() >= 0.999


def test_predict_runs_the_ir_and_bad_runtime_options_are_one_line(exports: dict[str, Path], genotype_file: Path,
                                                                  tmp_path: Path) -> None:  # fmt: skip
    from PIL import Image

    image = tmp_path / "frame.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(image)
    result = runner.invoke(app, ["predict", str(genotype_file), str(image), "--onnx", str(exports["xml"]),
                                 "--runtime", "openvino", "--out", str(tmp_path / "out"),
                                 "--allow-random-weights"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert list((tmp_path / "out").rglob("*.png"))
    result = runner.invoke(app, ["predict", str(genotype_file), str(image), "--onnx", str(exports["xml"]),
                                 "--out", str(tmp_path / "o2"), "--allow-random-weights"])  # fmt: skip
    assert result.exit_code == 2 and "--runtime openvino" in result.output
    with pytest.raises(RuntimeSetupError, match="int8 IR"):
        OnnxSegmenter(exports["xml"], "cpu", 1, runtime="openvino", precision="int8")
    result = runner.invoke(app, ["export", str(genotype_file), "--precision", "bf16", "--allow-random-weights"])
    assert result.exit_code == 2 and "--format openvino" in result.output


def test_an_int8_ir_is_calibrated_and_runs(exports: dict[str, Path], genotype_file: Path, tmp_path: Path) -> None:
    from nasseg.zoo.data.synthetic import make_dataset

    data = make_dataset("synth-defects", tmp_path / "calib", n=8, size=64, seed=0)
    out = tmp_path / "ov-tiny-int8.xml"
    result = runner.invoke(app, ["export", str(genotype_file), "--format", "openvino", "--precision", "int8",
                                 "--calib", str(data), "--calib-count", "4", "--out", str(out),
                                 "--allow-random-weights"])  # fmt: skip
    assert result.exit_code == 0, result.output
    segmenter = OnnxSegmenter(out, "cpu", 1, runtime="openvino")
    assert segmenter.session.provider == "OpenVINO CPU (int8)"
    assert segmenter.predict_frames(np.zeros((1, 64, 64, 3), np.uint8))[0].shape == (1, 64, 64)


def test_serve_runs_the_ir_and_its_masks_agree_with_onnx_runtime(exports: dict[str, Path], frames: np.ndarray,
                                                                 tmp_path: Path) -> None:  # fmt: skip
    import io

    import httpx
    from PIL import Image
    from test_service import start_server

    server = start_server(exports["xml"], tmp_path, "--runtime", "openvino", "--threads", "1", "--device", "cpu")
    try:
        reference = OnnxSegmenter(exports["onnx"], "cpu", 1)
        with httpx.Client(base_url=server.url, timeout=60) as client:
            assert TRAINED in client.get("/model").text
            for frame in frames:
                buffer = io.BytesIO()
                Image.fromarray(frame).save(buffer, "PNG")
                answer = client.post("/segment", files={"image": ("f.png", buffer.getvalue(), "image/png")})
                assert answer.status_code == 200, answer.text
                served = np.asarray(Image.open(io.BytesIO(answer.content))) > 0
                local = reference.predict_frames(frame[None])[0][0] > 0
                assert (served == local).mean() >= 0.999
            report = client.post("/inspect", files={"image": ("f.png", buffer.getvalue(), "image/png")}).json()
            assert report["model"] == TRAINED and all(d["class_name"] == "defect" for d in report["defects"])
    finally:
        assert server.stop() == 0, server.log_text()[-3000:]


def test_the_runtime_table_scores_times_and_picks(tmp_path: Path) -> None:
    from nasseg.zoo.data.synthetic import make_dataset

    data = make_dataset("synth-defects", tmp_path / "data", n=10, size=64, seed=4, difficulty="medium")
    out = tmp_path / "table.json"
    runtimes = "onnx-fp32,openvino-f32,onnx-int8"
    result = runner.invoke(app, ["bench", TRAINED, "--data", str(data), "--runtimes", runtimes,
                                 "--size", "64x64", "--threads", "1", "--repeats", "3", "--pick", "0.5",
                                 "--json-out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    table = json.loads(out.read_text())
    rows = {row["runtime"]: row for row in table["rows"]}
    assert set(rows) == {"torch", "onnx-fp32", "openvino-f32", "onnx-int8"}
    assert all(row["status"] == "ok" and row["p50_ms"] > 0 and 0 < row["iou"] <= 1 for row in rows.values())
    assert abs(rows["onnx-fp32"]["iou_change"]) < 1e-3 and rows["openvino-f32"]["mask_agreement"] >= 0.999
    assert table["pick"]["runtime"] in rows and set(table["cpu_flags"]) >= {"avx2", "avx512", "vnni", "bf16", "amx"}
    bad = runner.invoke(app, ["bench", TRAINED, "--data", str(data), "--runtimes", "tensorrt"])
    assert bad.exit_code == 2 and "choose from" in bad.output

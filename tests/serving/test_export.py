"""ONNX export, the PyTorch/ONNX Runtime check, sessions and the ``nasseg export`` command.

Exports are slow (torch.export), so each graph is exported once per module and shared.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

from nasseg import zoo
from nasseg.cli import app
from nasseg.serving import (
    CheckError,
    ExportError,
    OnnxSegmenter,
    RuntimeSetupError,
    check,
    export,
    open_session,
    providers_for,
    read_metadata,
)
from nasseg.serving.export import pad_in_graph
from nasseg.serving.runtime import MAX_SHAPES, free_dimensions
from nasseg.zoo.data.dataset import MEAN, STD
from nasseg.zoo.inference import predict_array

runner = CliRunner()


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def unet_small() -> torch.nn.Module:
    torch.manual_seed(0)
    return zoo.create_model("unet-small").eval()


@pytest.fixture(scope="module")
def deploy_file(unet_small: torch.nn.Module, out_dir: Path) -> Path:
    return export(unet_small, out_dir / "unet-small.onnx", class_names=["good", "scratch"], threshold=0.4).path


@pytest.fixture(scope="module")
def raw_file(unet_small: torch.nn.Module, out_dir: Path) -> Path:
    return export(unet_small, out_dir / "unet-small-raw.onnx", graph="raw").path


@pytest.mark.parametrize("size", [(1, 1), (3, 40), (7, 17), (16, 16), (17, 33), (40, 9), (50, 77)])
def test_pad_in_graph_matches_zoo_padding(size: tuple[int, int]) -> None:
    x = torch.randn(2, 3, *size)
    expected, _ = zoo.pad_to_multiple(x, 16)
    assert torch.equal(pad_in_graph(x, 16), expected)


def test_deploy_graph_contract(deploy_file: Path, unet_small: torch.nn.Module) -> None:
    proto = onnx.load(str(deploy_file))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version >= 18
    (frames,), outputs = proto.graph.input, proto.graph.output
    assert frames.name == "frames" and frames.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = frames.type.tensor_type.shape.dim
    assert [bool(d.dim_param) for d in dims] == [True, True, True, False] and dims[3].dim_value == 3
    assert [o.name for o in outputs] == ["probabilities", "mask"]
    meta = read_metadata(deploy_file)
    assert meta.graph == "deploy" and meta.dynamic_hw
    assert meta.genotype == unet_small.genotype and meta.arch_hash == unet_small.genotype.arch_hash
    assert meta.class_names == ["good", "scratch"] and meta.threshold == 0.4
    assert (meta.mean, meta.std, meta.divisor, meta.nasseg_version) == (MEAN, STD, 16, zoo.__version__)


def test_check_passes_at_odd_sizes_and_batch_3(deploy_file: Path, unet_small: torch.nn.Module) -> None:
    report = check(deploy_file, unet_small, sizes=[(32, 48), (23, 29), (5, 70)])
    report.raise_for_failure()
    assert {(c.batch, c.source) for c in report.cases} >= {(1, "random"), (3, "random"), (3, "images")}
    assert any(c.height % 16 for c in report.cases if c.source == "images")
    assert report.max_abs_diff < 1e-5 and report.mask_agreement == 1.0


def test_segmenter_gives_the_pytorch_masks(deploy_file: Path, unet_small: torch.nn.Module) -> None:
    segmenter = OnnxSegmenter(deploy_file, device="cpu", threads=1)
    assert segmenter.session.provider == "CPUExecutionProvider" and segmenter.session.threads == 1
    frames = np.random.default_rng(1).integers(0, 256, (3, 37, 21, 3), dtype=np.uint8)
    masks, probability = segmenter.predict_frames(frames)
    assert masks.shape == probability.shape == (3, 37, 21) and masks.dtype == np.uint8
    for frame, mask, prob in zip(frames, masks, probability, strict=True):
        ref_mask, ref_prob = predict_array(unet_small, frame.astype(np.float32) / 255.0, threshold=0.4)
        assert np.array_equal(mask, ref_mask) and np.abs(prob - ref_prob).max() < 1e-5


def test_raw_graph(raw_file: Path, unet_small: torch.nn.Module) -> None:
    meta = read_metadata(raw_file)
    assert meta.graph == "raw" and meta.dynamic_hw and meta.class_names == ["background", "foreground"]
    session = open_session(raw_file, device="cpu")
    assert session.input_names == ["input"] and session.output_names == ["logits"]
    x = np.random.default_rng(2).standard_normal((3, 3, 48, 32)).astype(np.float32)
    with torch.no_grad():
        expected = unet_small(torch.from_numpy(x)).numpy()
    assert np.abs(session.run(x)[0] - expected).max() < 1e-4
    check(raw_file, unet_small, sizes=[(16, 32)]).raise_for_failure()


@pytest.mark.parametrize("name", ["iac-base-unet-small"])
def test_other_family_exports_and_checks(name: str, out_dir: Path) -> None:
    model = zoo.create_model(name).eval()
    result = export(model, out_dir / f"{name}.onnx")
    assert result.metadata.dynamic_hw
    report = check(result.path, model, sizes=[(2 * model.divisor, model.divisor + 5)])
    report.raise_for_failure()


def test_check_fails_on_another_net(deploy_file: Path) -> None:
    other = zoo.create_model("unet-small").eval()  # same arch, other random weights
    report = check(deploy_file, other, sizes=[(16, 16)], batches=(1,), images=False)
    assert not report.passed
    with pytest.raises(CheckError, match="check FAILED"):
        report.raise_for_failure()
    with pytest.raises(CheckError, match="exported from arch"):
        check(deploy_file, zoo.create_model("iac-base-unet-small"))


def test_bad_requests_raise_export_errors(unet_small: torch.nn.Module, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="graph must be one of"):
        export(unet_small, tmp_path / "x.onnx", graph="fast")
    with pytest.raises(ExportError, match="opset must be >= 18"):
        export(unet_small, tmp_path / "x.onnx", opset=13)
    with pytest.raises(ExportError, match="needs 2 distinct class names"):
        export(unet_small, tmp_path / "x.onnx", class_names=["a", "b", "c"])
    with pytest.raises(ExportError, match="classification net: the deploy graph is for segmentation"):
        export("darts-v2-cifar", tmp_path / "x.onnx")
    with pytest.raises(ExportError, match="not an ONNX file"):
        (tmp_path / "junk.onnx").write_text("junk")
        read_metadata(tmp_path / "junk.onnx")
    with pytest.raises(RuntimeSetupError, match="no such ONNX file"):
        open_session(tmp_path / "missing.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_providers_without_a_gpu() -> None:
    assert providers_for("cpu") == ["CPUExecutionProvider"]
    assert providers_for("auto")[-1] == "CPUExecutionProvider"
    with pytest.raises(RuntimeSetupError, match="device must be one of"):
        providers_for("tpu")


def test_cli_export_check_and_predict(tmp_path: Path, deploy_file: Path) -> None:
    out = tmp_path / "cli.onnx"
    result = runner.invoke(app, ["export", "unet-small", "--out", str(out), "--check", "--json",
                                 "--allow-random-weights"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["check"]["passed"] and summary["dynamic_hw"] and "random weights" in summary["weights"]
    image = np.random.default_rng(3).integers(0, 256, (45, 61, 3), dtype=np.uint8)
    zoo.data.images.write_png(tmp_path / "img.png", image)
    result = runner.invoke(app, ["predict", "unet-small", str(tmp_path / "img.png"), "--onnx", str(out),
                                 "--out", str(tmp_path / "pred"), "--allow-random-weights"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert zoo.data.images.read_image(tmp_path / "pred" / "img_mask.png").shape == (45, 61)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "unet-small", "--out", "{tmp}/a.onnx", "--graph", "fast"], "--graph must be one of"),
        (["export", "no-such-model", "--out", "{tmp}/a.onnx"], "no-such-model"),
        (
            ["export", "unet-small", "--out", "{tmp}/a.onnx", "--classes", "a,b,c", "--allow-random-weights"],
            "distinct class names",
        ),
        (["export", "pc-darts-cifar", "--out", "{tmp}/a.onnx", "--allow-random-weights"], "export it with graph 'raw'"),
        (
            ["predict", "iac-base-unet-small", "{tmp}/x.png", "--onnx", "{deploy}", "--allow-random-weights"],
            "but iac-base-unet-small is arch",
        ),
        (["export", "unet-small", "--out", "{tmp}/a.onnx"], "has no trained weights"),
        (["predict", "unet-small", "{tmp}/x.png"], "has no trained weights"),
        (["predict", "unet-small", "{tmp}/x.png", "--onnx", "{deploy}"], "with random weights"),
        (["serve", "unet-small", "--dry-run"], "has no trained weights"),
        (["serve", "{deploy}", "--dry-run"], "with random weights"),
    ],
)
def test_cli_bad_input_exits_2(args: list[str], message: str, tmp_path: Path, deploy_file: Path) -> None:
    zoo.data.images.write_png(tmp_path / "x.png", np.zeros((8, 8), np.uint8))
    args = [a.format(tmp=tmp_path, deploy=deploy_file) for a in args]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output


def test_segmenter_opens_a_session_per_frame_shape(deploy_file: Path) -> None:
    segmenter = OnnxSegmenter(deploy_file, device="cpu", threads=1)
    rng = np.random.default_rng(3)
    frames = {shape: rng.integers(0, 256, (1, *shape, 3), dtype=np.uint8)
              for shape in ((32, 32), (48, 40), (40, 48), (64, 32), (32, 64), (56, 56))}  # fmt: skip
    for frame in frames.values():
        masks, probabilities = segmenter.predict_frames(frame)
        free_masks, free_probabilities = segmenter.session.run(frame)[::-1]
        assert np.array_equal(masks, free_masks) and np.allclose(probabilities, free_probabilities[:, 0], atol=1e-5)
    fixed = segmenter._by_shape
    assert len(fixed) == MAX_SHAPES and all(s.session.get_inputs()[0].shape == list(k) for k, s in fixed.items())
    assert segmenter.session_for((1, 56, 56, 3)) is segmenter.session  # past the cap: the shape-free session


def test_free_dimensions_fix_names_and_refuse_conflicts() -> None:
    assert free_dimensions([["batch", 3, "8*h", "8*w"]], [(2, 3, 64, 48)]) == {"batch": 2, "8*h": 64, "8*w": 48}
    with pytest.raises(RuntimeSetupError, match="fixes a dimension at 3"):
        free_dimensions([["batch", 3, "h", "w"]], [(1, 4, 8, 8)])
    with pytest.raises(RuntimeSetupError, match="cannot be both"):
        free_dimensions([["n", "n"]], [(1, 2)])
    with pytest.raises(RuntimeSetupError, match="rank 4"):
        free_dimensions([["batch", 3, "h", "w"]], [(1, 3, 8)])


def test_the_segmenter_alone_decides_what_is_tiled(deploy_file: Path) -> None:
    segmenter = OnnxSegmenter(deploy_file, device="cpu", threads=1)
    divisor = segmenter.metadata.divisor
    tile = 3 * divisor + divisor // 2  # not a multiple: rounded down to 3 divisors
    assert not segmenter.tiles(3 * divisor, 3 * divisor, tile) and segmenter.tiles(3 * divisor + 1, 8, tile)
    assert not segmenter.tiles(10_000, 10_000, None)
    frame = np.random.default_rng(5).integers(0, 256, (3 * divisor + 1, 2 * divisor, 3), dtype=np.uint8)
    calls: list[tuple[int, ...]] = []
    run = segmenter.predict_frames
    segmenter.predict_frames = lambda frames, threshold=None: calls.append(frames.shape) or run(frames, threshold)
    mask, _ = segmenter.predict_frame(frame, tile=tile)
    assert mask.shape == frame.shape[:2] and all(shape[1] <= 3 * divisor for shape in calls) and len(calls) > 1

"""Crafted inputs (issue 28): files from others are data, and no command loses a user's files.

Each test holds one line of the README's "Security" table: a checkpoint whose pickle runs a
command, a foreign weights file, ``register --name ../x``, a symlinked weights file, an import over
a user's folder, symlinks and FIFOs in a download, a kill during a write, strict genotype JSON and
a TIFF with a DOUBLE offset. (The one-port check and the bombs are in tests/serving/test_service.py.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from nasseg import zoo
from nasseg.cli import app
from nasseg.zoo.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from nasseg.zoo.data.synthetic import make_dataset
from nasseg.zoo.io import atomic_write_bytes, stale_temps

runner = CliRunner()
TINY_UNET = {"channels": [4, 8], "skips": [True], "dropout": 0.0, "input_size": [32, 32]}


class RunsACommand:
    """What an attacker pickles: unpickling it calls ``os.system`` (here: touch a marker file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return os.system, (f"touch {self.marker}",)


def crafted_checkpoint(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": 1, "payload": RunsACommand(marker)}, path)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset("synth-defects", tmp_path_factory.mktemp("data") / "defects", n=8, size=32, seed=0)


@pytest.fixture
def trained_run(tmp_path: Path, data: Path) -> Path:
    """A finished ``nasseg train`` run folder of a tiny U-Net (genotype + weights)."""
    genotype = zoo.apply_overrides(zoo.get_genotype("unet-small"), TINY_UNET).replace(name="tiny-net")
    genotype.to_json(tmp_path / "tiny-net.json")
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", str(tmp_path / "tiny-net.json"), "--data", str(data), "--out", str(run),
                                 "--epochs", "1", "--batch-size", "2", "--crop", "32", "32"])  # fmt: skip
    assert result.exit_code == 0, result.output
    return run


# -- checkpoints carry no code ----------------------------------------------------------------------


def test_a_crafted_training_checkpoint_runs_nothing(tmp_path: Path, data: Path) -> None:
    genotype = zoo.apply_overrides(zoo.get_genotype("unet-small"), TINY_UNET).replace(name="tiny-net")
    genotype.to_json(tmp_path / "tiny-net.json")
    run, marker = tmp_path / "run", tmp_path / "pwned"
    crafted_checkpoint(run / "checkpoint.pt", marker)
    result = runner.invoke(app, ["train", str(tmp_path / "tiny-net.json"), "--data", str(data), "--out", str(run),
                                 "--epochs", "2", "--batch-size", "2", "--crop", "32", "32", "--resume"])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert not marker.exists()
    line = result.output.strip().splitlines()[-1]
    assert f"{run / 'checkpoint.pt'} is not a nasseg checkpoint" in line and "Traceback" not in result.output


def test_a_crafted_search_checkpoint_runs_nothing(tmp_path: Path, data: Path) -> None:
    args = ["search", "unet-ga", "--data", str(data), "--image-size", "32", "--widths", "4,8", "--layers", "3",
            "--max-images", "4", "--max-val-images", "2", "--max-steps", "1", "--batch-size", "2", "--dropout", "0",
            "-K", "2", "-T", "1", "--seed", "0"]  # fmt: skip
    run, marker = tmp_path / "search", tmp_path / "pwned"
    assert runner.invoke(app, [*args, "--out", str(run)]).exit_code == 0
    crafted_checkpoint(run / "checkpoint.pt", marker)
    result = runner.invoke(app, [*args, "--resume", str(run)])
    assert result.exit_code == 2 and not marker.exists(), result.output
    assert "is not a nasseg checkpoint" in result.output and "Traceback" not in result.output


def test_a_foreign_but_harmless_file_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    torch.save({"weight": torch.zeros(2)}, path)  # a state dict, not a nasseg checkpoint
    with pytest.raises(CheckpointError, match="is not a nasseg train checkpoint"):
        load_checkpoint(path, "train", required=("model", "optimizer"))
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(CheckpointError, match="is not a nasseg checkpoint"):
        load_checkpoint(path, "train")
    save_checkpoint(path, "search", {"strategy": {}})
    with pytest.raises(CheckpointError, match="not a nasseg train checkpoint .it is a 'search' one"):
        load_checkpoint(path, "train")
    assert load_checkpoint(path, "search") == {"strategy": {}}


# -- register checks before it writes ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["../escaped", "/tmp/absolute-model", "a/b", ".hidden", "x" * 200])
def test_register_refuses_a_name_with_folders_and_writes_nothing(trained_run: Path, tmp_path: Path,
                                                                 name: str) -> None:  # fmt: skip
    home = Path(os.environ["NASSEG_HOME"])
    before = sorted(home.rglob("*"))
    result = runner.invoke(app, ["register", str(trained_run), "--name", name])
    assert result.exit_code == 2 and "plain name" in result.output, result.output
    assert sorted(home.rglob("*")) == before
    assert not (tmp_path / "escaped.safetensors").exists() and not Path("/tmp/absolute-model.safetensors").exists()


def test_register_refuses_a_symlinked_or_mismatched_weights_file(trained_run: Path, tmp_path: Path) -> None:
    weights = trained_run / "tiny-net.safetensors"
    real = tmp_path / "elsewhere.safetensors"
    weights.rename(real)
    weights.symlink_to(real)
    result = runner.invoke(app, ["register", str(trained_run), "--name", "mine"])
    assert result.exit_code == 2 and "not a regular file" in result.output, result.output
    weights.unlink()
    other = zoo.apply_overrides(zoo.get_genotype("unet-small"), {**TINY_UNET, "channels": [4, 4]})
    zoo.save_weights(zoo.build_model(other), other, weights)  # another net's weights under this name
    result = runner.invoke(app, ["register", str(trained_run), "--name", "mine"])
    assert result.exit_code == 2 and "records architecture" in result.output, result.output
    assert not (Path(os.environ["NASSEG_HOME"]) / "genotypes" / "mine.safetensors").exists()


# -- importers own only what they made ---------------------------------------------------------------


def _crackforest(root: Path, count: int = 3) -> Path:
    """A CrackForest-like download (image/*.jpg and groundTruth/*.mat)."""
    import numpy as np
    from PIL import Image
    from scipy.io import savemat

    (root / "image").mkdir(parents=True)
    (root / "groundTruth").mkdir()
    for i in range(count):
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(root / "image" / f"{i:03d}.jpg")
        segmentation = np.ones((16, 16), np.uint8)
        segmentation[4:8, 4:8] = 2
        savemat(root / "groundTruth" / f"{i:03d}.mat", {"groundTruth": {"Segmentation": segmentation}})
    return root


def _import(src: Path, out: Path, *extra: str):
    return runner.invoke(app, ["data", "import", "crackforest", str(src), "--out", str(out), *extra])


def test_overwrite_never_deletes_a_folder_no_import_wrote(tmp_path: Path) -> None:
    src = _crackforest(tmp_path / "download")
    mine = tmp_path / "my-files"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    result = _import(src, mine, "--overwrite")
    assert result.exit_code == 2 and "not a folder that nasseg data import wrote" in result.output
    assert (mine / "thesis.txt").read_text() == "years of work"
    for out, words in ((src, "the source"), (tmp_path, "the source"), (Path("."), "working directory")):
        result = _import(src, out, "--overwrite")
        assert result.exit_code == 2 and words in result.output, (out, result.output)
    assert sorted(p.name for p in (src / "image").iterdir()) == ["000.jpg", "001.jpg", "002.jpg"]
    link = tmp_path / "linked-out"
    link.symlink_to(mine)
    result = _import(src, link)
    assert result.exit_code == 2 and "a symlink" in result.output and "Traceback" not in result.output


def test_an_earlier_import_is_replaced_and_a_user_staging_lookalike_kept(tmp_path: Path) -> None:
    src = _crackforest(tmp_path / "download")
    out = tmp_path / "imported"
    lookalike = tmp_path / "imported.importing"
    lookalike.mkdir()
    (lookalike / "keep.txt").write_text("mine")
    assert _import(src, out).exit_code == 0
    assert _import(src, out).exit_code == 2  # not empty, no --overwrite
    result = _import(src, out, "--overwrite")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "dataset.json").read_text())["importer"].startswith("nasseg ")
    assert (lookalike / "keep.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".imported.")]  # no staging left


def test_symlinks_leaving_the_source_are_refused_and_fifos_skipped(tmp_path: Path) -> None:
    src = _crackforest(tmp_path / "download")
    secret = tmp_path / "secret.jpg"
    (src / "image" / "000.jpg").rename(secret)
    (src / "image" / "000.jpg").symlink_to(secret)
    result = _import(src, tmp_path / "out")
    assert result.exit_code == 2 and "a symlink leaving the source" in result.output, result.output
    assert not (tmp_path / "out").exists()
    (src / "image" / "000.jpg").unlink()
    os.mkfifo(src / "image" / "009.jpg")  # a FIFO named like an image would block a read forever
    os.mkfifo(src / "groundTruth" / "009.mat")
    start = time.monotonic()
    result = _import(src, tmp_path / "out")
    assert time.monotonic() - start < 60
    assert result.exit_code == 0, result.output
    assert "009.jpg: not a regular file (fifo); skipped" in result.output
    assert sorted(p.name for p in (tmp_path / "out").rglob("images/*.png")) == ["001.png", "002.png"]


# -- writes that cannot lose data ------------------------------------------------------------------

WRITER = """
import sys, time
from pathlib import Path
from nasseg.zoo.io import atomic_output
with atomic_output(Path(sys.argv[1])) as tmp:
    tmp.write_bytes(b"half of a new ")
    print("writing", flush=True)
    time.sleep(60)
    tmp.write_bytes(b"half of a new file")
"""


def test_a_write_killed_midway_leaves_the_old_file_and_the_next_write_clears_its_temp(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    target.write_bytes(b"the previous good export")
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "writing"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert target.read_bytes() == b"the previous good export"
    assert len(stale_temps(target)) == 1  # what the killed write left
    mine = tmp_path / f".{target.name}.{os.getppid()}.x.tmp"  # a live process's temp: not ours to delete
    mine.write_bytes(b"")
    atomic_write_bytes(target, b"the next export")
    assert target.read_bytes() == b"the next export" and not stale_temps(target) and mine.exists()


def test_an_export_that_fails_midway_keeps_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnx

    from nasseg.serving.export import export

    model = zoo.create_model("unet-small", **TINY_UNET)
    path = tmp_path / "net.onnx"
    export(model, path)
    good = path.read_bytes()
    original = onnx.save_model

    def dies_midway(proto, target, *args, **kwargs):  # noqa: ANN001, ANN202
        Path(target).write_bytes(proto.SerializeToString()[:1000])
        raise KeyboardInterrupt  # as a Ctrl-C mid-write

    monkeypatch.setattr(onnx, "save_model", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        export(model, path)
    monkeypatch.setattr(onnx, "save_model", original)
    assert path.read_bytes() == good and not list(tmp_path.glob(".net.onnx.*"))


# -- strict genotypes and decoding ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('"seed": null', '"seed": Infinity'), "Infinity is not a JSON number"),
        (lambda t: t.replace('"metrics": {}', '"metrics": {"iou": NaN}'), "NaN is not a JSON number"),
        (lambda t: t.replace('"seed": null', '"seed": ' + "9" * 5000), "(5000 digits) is beyond 2**53"),
        (lambda t: t.replace('"seed": null', f'"seed": {2**53 + 1}'), "is beyond 2**53"),
        (lambda t: t.replace('"family": "unet"', '"family": "unet", "family": "unet"'), "'family' appears twice"),
        (lambda t: t.replace('"name": "unet-small"', '"name": "' + "n" * 5000 + '"'), "at most 128 characters"),
    ],
)
def test_strict_genotype_json_is_one_line(tmp_path: Path, edit, message: str) -> None:  # noqa: ANN001
    text = json.dumps(zoo.get_genotype("unet-small").model_dump(mode="json"))
    path = tmp_path / "g.json"
    path.write_text(edit(text))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_a_tiff_with_a_double_strip_offset_is_a_400_line() -> None:
    import struct

    from nasseg.serving.decode import DecodeError, decode_frame

    entries = [(256, 3, 4), (257, 3, 4), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 12, None), (278, 3, 4),
               (279, 3, 16)]  # fmt: skip
    double_at = 8 + 2 + 12 * len(entries) + 4
    data = b"II*\x00" + struct.pack("<IH", 8, len(entries))
    for tag, kind, value in entries:
        data += struct.pack("<HHII", tag, kind, 1, double_at) if kind == 12 else struct.pack("<HHIHH", tag, kind, 1,
                                                                                              value, 0)  # fmt: skip
    data += struct.pack("<Id", 0, float(double_at + 8)) + bytes(16)
    with pytest.raises(DecodeError) as info:
        decode_frame(data, 3)
    assert info.value.status == 400 and "corrupt TIFF" in str(info.value)

"""Importers: a small fixture in each download's exact layout, imported, then checked pixel by pixel;
malformed fixtures give one problem per file and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat
from typer.testing import CliRunner

from nasseg.cli import app
from nasseg.zoo.data.folder import DatasetError, open_folder
from nasseg.zoo.data.images import read_image
from nasseg.zoo.data.importers import import_dataset

runner = CliRunner()
RNG = np.random.default_rng(0)


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _jpg(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, quality=95)


def _image(h: int = 32, w: int = 40, channels: int = 0) -> np.ndarray:
    shape = (h, w, channels) if channels else (h, w)
    return RNG.integers(0, 255, shape, dtype=np.uint8)


def _blob(h: int = 32, w: int = 40, y: int = 5, x: int = 7) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    mask[y : y + 6, x : x + 9] = 255
    return mask


def _imported(out: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """stem -> (image, mask) of every sample of an imported folder."""
    found = {}
    for split in ("train", "val", "test"):
        for path in sorted((out / split / "images").glob("*.png")):
            found[path.stem] = (read_image(path), read_image(out / split / "masks" / path.name))
    return found


def test_mvtec_good_images_get_empty_masks_and_defects_their_ground_truth(tmp_path: Path) -> None:
    src = tmp_path / "bottle"
    good, broken, contaminated = _image(channels=3), _image(channels=3), _image(channels=3)
    _png(src / "train" / "good" / "000.png", good)
    _png(src / "test" / "good" / "000.png", good)
    _png(src / "test" / "broken_large" / "000.png", broken)
    _png(src / "ground_truth" / "broken_large" / "000_mask.png", _blob())
    _png(src / "test" / "contamination" / "000.png", contaminated)
    _png(src / "ground_truth" / "contamination" / "000_mask.png", _blob(y=20, x=20))
    out = import_dataset("mvtec", src, tmp_path / "out", classes="per-defect")
    samples = _imported(out)
    assert set(samples) == {"train-good-000", "test-good-000", "test-broken_large-000", "test-contamination-000"}
    assert np.array_equal(samples["train-good-000"][0], good) and not samples["train-good-000"][1].any()
    assert np.array_equal(samples["test-broken_large-000"][1], (_blob() > 0).astype(np.uint8) * 1)
    assert np.array_equal(samples["test-contamination-000"][1], (_blob(y=20, x=20) > 0).astype(np.uint8) * 2)
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["classes"] == ["background", "broken_large", "contamination"]
    assert meta["source"]["format"] == "mvtec" and "MVTec" in meta["split"]
    assert (out / "test" / "images" / "test-broken_large-000.png").is_file()  # MVTec's own split kept
    binary = import_dataset("mvtec", src, tmp_path / "binary")
    assert np.array_equal(read_image(binary / "test" / "masks" / "test-contamination-000.png"), _blob(y=20, x=20))


def test_dagm_labels_become_masks_and_unlabelled_images_empty_ones(tmp_path: Path) -> None:
    src = tmp_path / "DAGM"
    defect, clean, test_image = _image(), _image(), _image()
    _png(src / "Class1" / "Train" / "0001.PNG", defect)
    _png(src / "Class1" / "Train" / "Label" / "0001_label.PNG", _blob())
    _png(src / "Class1" / "Train" / "0002.PNG", clean)
    _png(src / "Class1" / "Test" / "0003.PNG", test_image)
    out = import_dataset("dagm", src, tmp_path / "out")
    assert np.array_equal(read_image(out / "train" / "masks" / "Class1-0001.png"), _blob())
    assert not read_image(out / "train" / "masks" / "Class1-0002.png").any()
    assert np.array_equal(read_image(out / "test" / "images" / "Class1-0003.png"), test_image)
    open_folder(out)  # the checked folder format


def test_kolektor2_gt_masks(tmp_path: Path) -> None:
    src = tmp_path / "ksdd2"
    gt = np.zeros((32, 40), np.uint8)
    gt[3:9, 4:12] = 1  # KSDD2 masks need not be 0/255
    for part in ("train", "test"):
        _png(src / part / "10000.png", _image(channels=3))
        _png(src / part / "10000_GT.png", gt)
    out = import_dataset("kolektor2", src, tmp_path / "out")
    assert np.array_equal(read_image(out / "train" / "masks" / "10000.png"), gt * 255)


def test_magnetic_tile_per_defect_classes_and_a_seeded_split(tmp_path: Path) -> None:
    src = tmp_path / "mt"
    for kind in ("MT_Blowhole", "MT_Crack", "MT_Free"):
        for i in range(4):
            _jpg(src / kind / "Imgs" / f"exp{i}_num_{i}.jpg", _image())
            _png(
                src / kind / "Imgs" / f"exp{i}_num_{i}.png",
                _blob() if kind != "MT_Free" else np.zeros((32, 40), np.uint8),
            )
    out = import_dataset("magnetic-tile", src, tmp_path / "out", classes="per-defect", seed=3)
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["classes"] == ["background", "blowhole", "crack"] and sum(meta["counts"].values()) == 12
    assert meta["counts"] == {"train": 8, "val": 2, "test": 2}
    samples = _imported(out)
    assert np.array_equal(samples["crack-exp0_num_0"][1], (_blob() > 0).astype(np.uint8) * 2)
    assert not samples["free-exp1_num_1"][1].any()
    again = import_dataset("magnetic-tile", src, tmp_path / "again", classes="per-defect", seed=3)
    assert sorted(p.name for p in (again / "test" / "images").iterdir()) == sorted(
        p.name for p in (out / "test" / "images").iterdir()
    )  # the same seed, the same split


def test_neu_seg_class_indices(tmp_path: Path) -> None:
    src = tmp_path / "NEU_Seg"
    mask = np.zeros((32, 40), np.uint8)
    mask[2:8, 2:8], mask[10:20, 10:12], mask[25:30, 30:38] = 1, 2, 3
    for part in ("training", "test"):
        _jpg(src / "images" / part / "000201.jpg", _image())
        _png(src / "annotations" / part / "000201.png", mask)
    out = import_dataset("neu-seg", src, tmp_path / "out")
    assert np.array_equal(read_image(out / "test" / "masks" / "000201.png"), mask)
    assert json.loads((out / "dataset.json").read_text())["classes"] == ["background", "inclusion", "patches",
                                                                          "scratches"]  # fmt: skip


def _tiff_stack(path: Path, pages: list[np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pages[0]).save(path, save_all=True, append_images=[Image.fromarray(p) for p in pages[1:]])


def test_isbi_em_tiff_stacks_become_slices_with_membranes_as_foreground(tmp_path: Path) -> None:
    src = tmp_path / "isbi"
    volume = [_image(24, 24) for _ in range(7)]
    labels = [np.where(RNG.random((24, 24)) > 0.3, 255, 0).astype(np.uint8) for _ in range(7)]
    _tiff_stack(src / "train-volume.tif", volume)
    _tiff_stack(src / "train-labels.tif", labels)
    out = import_dataset("isbi-em", src, tmp_path / "out")
    samples = _imported(out)
    assert len(samples) == 7
    for i in range(7):
        image, mask = samples[f"slice-{i:03d}"]
        assert np.array_equal(image, volume[i]) and np.array_equal(mask, np.where(labels[i] == 0, 255, 0))


def test_crackforest_mat_ground_truth(tmp_path: Path) -> None:
    src = tmp_path / "CFD"
    segmentation = np.ones((32, 40), np.uint8)
    segmentation[10:12, 3:30] = 2
    for i in range(1, 5):
        _jpg(src / "image" / f"{i:03d}.jpg", _image(channels=3))
        (src / "groundTruth").mkdir(parents=True, exist_ok=True)
        savemat(src / "groundTruth" / f"{i:03d}.mat",
                {"groundTruth": np.array([[(segmentation, segmentation == 2)]],
                                         dtype=[("Segmentation", "O"), ("Boundaries", "O")])})  # fmt: skip
    out = import_dataset("crackforest", src, tmp_path / "out")
    for _, mask in _imported(out).values():
        assert np.array_equal(mask, np.where(segmentation == 2, 255, 0))
    assert json.loads((out / "dataset.json").read_text())["classes"] == ["background", "crack"]


def test_malformed_downloads_list_every_problem_and_write_nothing(tmp_path: Path) -> None:
    src = tmp_path / "bottle"
    _png(src / "train" / "good" / "000.png", _image())
    _png(src / "test" / "broken" / "000.png", _image())  # no mask
    _png(src / "test" / "crack" / "001.png", _image())
    _png(src / "ground_truth" / "crack" / "001_mask.png", _blob(20, 20))  # wrong size
    with pytest.raises(DatasetError) as info:
        import_dataset("mvtec", src, tmp_path / "out")
    problems = info.value.problems
    assert len(problems) == 2 and any("no mask" in p for p in problems) and any("mask is 20x20" in p for p in problems)
    assert not (tmp_path / "out").exists()
    truncated = tmp_path / "isbi"
    _tiff_stack(truncated / "train-volume.tif", [_image(24, 24) for _ in range(3)])
    _tiff_stack(truncated / "train-labels.tif", [_image(24, 24) for _ in range(3)])
    data = (truncated / "train-labels.tif").read_bytes()
    (truncated / "train-labels.tif").write_bytes(data[: len(data) // 3])
    result = runner.invoke(app, ["data", "import", "isbi-em", str(truncated), "--out", str(tmp_path / "o2")])
    assert result.exit_code == 2 and "cannot be read" in result.output, result.output


def test_the_cli_imports_and_the_folder_trains(tmp_path: Path) -> None:
    src = tmp_path / "ksdd2"
    for part in ("train", "test"):
        for i in range(3):
            _png(src / part / f"1000{i}.png", _image(32, 32, 3))
            _png(src / part / f"1000{i}_GT.png", _blob(32, 32))
    out = tmp_path / "imported"
    result = runner.invoke(app, ["data", "import", "kolektor2", str(src), "--out", str(out)])
    assert result.exit_code == 0, result.output
    again = runner.invoke(app, ["data", "import", "kolektor2", str(src), "--out", str(out)])
    assert again.exit_code == 2 and "--overwrite" in again.output
    result = runner.invoke(app, ["train", "unet-small", "--data", str(out), "--out", str(tmp_path / "run"), "--epochs",
                                 "1", "--batch-size", "2", "--crop", "32", "32"])  # fmt: skip
    assert result.exit_code == 0, result.output

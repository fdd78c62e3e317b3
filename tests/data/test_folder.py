"""The folder dataset format: discovery, seeded splits, and every problem reported at once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nasseg.zoo.data.folder import DatasetError, mask_to_index, open_folder, open_paired_folder
from nasseg.zoo.data.images import read_image, to_channels, to_float, write_png
from nasseg.zoo.data.synthetic import make_dataset


def write_sample(root: Path, split: str, stem: str, image: np.ndarray, mask: np.ndarray, ext: str = ".png") -> None:
    (root / split / "images").mkdir(parents=True, exist_ok=True)
    (root / split / "masks").mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(root / split / "images" / f"{stem}{ext}")
    Image.fromarray(mask).save(root / split / "masks" / f"{stem}.png")


def test_formats_and_bit_depths(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    mask = (rng.random((20, 30)) > 0.8).astype(np.uint8) * 255
    write_sample(tmp_path, "train", "gray8", rng.integers(0, 255, (20, 30), dtype=np.uint8), mask, ".bmp")
    write_sample(tmp_path, "train", "rgb", rng.integers(0, 255, (20, 30, 3), dtype=np.uint8), mask, ".jpg")
    write_sample(tmp_path, "train", "gray16", rng.integers(0, 65535, (20, 30), dtype=np.uint16), mask // 255, ".tif")
    write_sample(tmp_path, "train", "rgba", rng.integers(0, 255, (20, 30, 4), dtype=np.uint8), mask, ".png")
    write_sample(tmp_path, "train", "extra", rng.integers(0, 255, (20, 30), dtype=np.uint8), mask, ".png")
    folder = open_folder(tmp_path, seed=3)
    assert folder.classes == ["background", "foreground"] and folder.model_classes == 1
    assert len(folder.splits["train"]) == 4 and len(folder.splits["val"]) == 1
    assert folder.splits["test"] == folder.splits["val"] and "seeded" in folder.split_origin["val"]
    assert open_folder(tmp_path, seed=3).splits == folder.splits  # the split is seeded
    gray16 = read_image(tmp_path / "train" / "images" / "gray16.tif")
    assert gray16.dtype == np.uint16 and to_float(gray16).max() <= 1.0
    assert to_channels(to_float(gray16), 3).shape == (20, 30, 3)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    good = np.zeros((16, 16), np.uint8)
    write_sample(tmp_path, "train", "ok", good, good)
    write_sample(tmp_path, "train", "size", good, np.zeros((8, 16), np.uint8))
    write_sample(tmp_path, "train", "values", good, np.full((16, 16), 7, np.uint8))
    write_sample(tmp_path, "val", "nomask", good, good)
    (tmp_path / "val" / "masks" / "nomask.png").unlink()
    (tmp_path / "train" / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    write_png(tmp_path / "train" / "masks" / "broken.png", good)
    write_png(tmp_path / "test" / "masks" / "orphan.png", good)
    with pytest.raises(DatasetError) as info:
        open_folder(tmp_path)
    problems = "\n".join(info.value.problems)
    assert len(info.value.problems) == 5
    for expected in (
        "size.png: mask is 16x8 but its image is 16x16",
        "values.png: mask values [7] outside",
        "nomask.png: no mask",
        "broken.png: not a readable image",
        "orphan.png: mask without an image",
    ):
        assert expected in problems, expected


def test_classes_from_dataset_json(tmp_path: Path) -> None:
    (tmp_path / "dataset.json").write_text(json.dumps({"classes": ["bg", "scratch", "stain"]}))
    write_sample(tmp_path, "train", "a", np.zeros((8, 8), np.uint8), np.full((8, 8), 2, np.uint8))
    write_sample(tmp_path, "train", "b", np.zeros((8, 8), np.uint8), np.ones((8, 8), np.uint8))
    folder = open_folder(tmp_path)
    assert folder.num_classes == 3 and folder.model_classes == 3
    (tmp_path / "dataset.json").write_text("{broken")
    with pytest.raises(DatasetError, match="not valid JSON"):
        open_folder(tmp_path)


def test_mask_conventions() -> None:
    assert mask_to_index(np.array([[0, 255]], np.uint8), 2).tolist() == [[0, 1]]
    assert mask_to_index(np.array([[0, 1]], np.uint8), 2).tolist() == [[0, 1]]
    assert mask_to_index(np.array([[0, 3]], np.uint8), 4).tolist() == [[0, 3]]
    with pytest.raises(ValueError, match="mixes 0/255"):
        mask_to_index(np.array([[0, 1, 255]], np.uint8), 2)
    with pytest.raises(ValueError, match="colour"):
        mask_to_index(np.dstack([np.zeros((2, 2)), np.ones((2, 2)), np.zeros((2, 2))]).astype(np.uint8), 2)


def test_missing_folder_and_empty_train(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such dataset folder"):
        open_folder(tmp_path / "nope")
    with pytest.raises(DatasetError, match="no training images"):
        open_folder(tmp_path)


def test_bundled_sets_are_deterministic_and_valid(tmp_path: Path) -> None:
    make_dataset("synth-defects", tmp_path / "a", n=8, size=48, seed=5, pairs=True)
    make_dataset("synth-defects", tmp_path / "b", n=8, size=48, seed=5)
    make_dataset("synth-membranes", tmp_path / "m", n=5, size=48, seed=1)
    a, b = open_folder(tmp_path / "a"), open_folder(tmp_path / "b")
    for sa, sb in zip(a.splits["train"], b.splits["train"], strict=True):
        assert np.array_equal(read_image(sa.image), read_image(sb.image))
    masks = [read_image(s.mask) for split in a.splits.values() for s in split]
    fractions = [float((m > 0).mean()) for m in masks]
    assert max(fractions) < 0.15 and any(f > 0 for f in fractions)  # a few percent of defect pixels
    pairs = open_paired_folder(tmp_path / "a" / "pairs")
    assert len(pairs) == 8
    membranes = open_folder(tmp_path / "m")
    assert membranes.classes == ["cell", "membrane"]
    assert 0.05 < float((read_image(membranes.splits["train"][0].mask) > 0).mean()) < 0.5


def test_paired_folder_problems(tmp_path: Path) -> None:
    write_png(tmp_path / "A" / "x.png", np.zeros((8, 8), np.uint8))
    write_png(tmp_path / "B" / "x.png", np.zeros((4, 8), np.uint8))
    write_png(tmp_path / "A" / "lonely.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(DatasetError) as info:
        open_paired_folder(tmp_path)
    assert len(info.value.problems) == 2


def test_missing_masks_folder_is_one_line_and_jpeg_masks_say_why(tmp_path: Path) -> None:
    make_dataset("synth-defects", tmp_path / "d", n=20, size=32, seed=0)
    import shutil

    shutil.rmtree(tmp_path / "d" / "val" / "masks")
    with pytest.raises(DatasetError) as info:
        open_folder(tmp_path / "d")
    lines = [p for p in info.value.problems if "val" in p]
    assert len(lines) == 1 and "no masks folder" in lines[0]
    make_dataset("synth-defects", tmp_path / "j", n=20, size=32, seed=0)
    mask_png = next((tmp_path / "j" / "train" / "masks").glob("*.png"))
    mask = np.zeros((32, 32), np.uint8)
    mask[8:20, 8:20] = 255
    Image.fromarray(mask).save(mask_png.with_suffix(".jpg"), quality=60)  # JPEG rings around the square
    mask_png.unlink()
    with pytest.raises(DatasetError) as info:
        open_folder(tmp_path / "j")
    assert any("JPEG compression changes mask values" in p for p in info.value.problems)

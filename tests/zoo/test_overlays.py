"""Pictures worth opening: upscaled, prediction against truth in two colours, the IoU on them, a sheet."""

from __future__ import annotations

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from nasseg.cli import app
from nasseg.zoo.data.synthetic import make_dataset
from nasseg.zoo.overlays import compare_picture, contact_sheet, frame_iou


def test_compare_picture_paints_prediction_and_truth_apart_and_upscales() -> None:
    image = np.zeros((32, 32, 3), np.float32)
    mask, truth = np.zeros((32, 32), np.uint8), np.zeros((32, 32), np.uint8)
    mask[20:24, 0:8], truth[20:24, 8:16], mask[28:32, 20:24], truth[28:32, 20:24] = 1, 1, 1, 1
    picture = compare_picture(image, mask, truth, label="f")
    assert picture.shape == (256, 256, 3)  # 32 px upscaled 8x, nearest
    red, green, yellow = picture[22 * 8, 4 * 8], picture[22 * 8, 12 * 8], picture[30 * 8, 22 * 8]
    assert red[0] > 100 > red[1] and green[1] > 100 > green[0] and yellow[0] > 100 and yellow[1] > 100
    assert frame_iou(mask, truth) == 16 / 80
    assert picture[2:14, 2:60].max() > 200  # the label and IoU are written on it (white on black)
    sheet = contact_sheet([picture, picture, picture], columns=2)
    assert sheet.shape == (2 * 256 + 3 * 4, 2 * 256 + 3 * 4, 3)


def test_predict_on_a_dataset_folder_writes_truth_overlays_and_a_sheet(tmp_path) -> None:  # noqa: ANN001
    data = make_dataset("synth-defects", tmp_path / "d", n=12, size=64, seed=2, difficulty="medium")
    out = tmp_path / "pred"
    result = CliRunner().invoke(app, ["predict", "unet-small-synth-defects", str(data / "test" / "images"), "--out",
                                      str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "mean frame IoU" in result.output and (out / "sheet.png").is_file()
    overlay = next(out.glob("*_overlay.png"))
    assert min(Image.open(overlay).size) >= 256

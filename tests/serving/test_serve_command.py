"""``nasseg serve`` as a command: the BentoML command line it makes, its one-line refusals, its
settings, and a zoo name served from a fresh NASSEG_HOME (the module server is in test_service.py)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from PIL import Image
from serve_server import start_server
from typer.testing import CliRunner
from upload_images import encode, rgb

from nasseg import zoo
from nasseg.cli import app
from nasseg.serving.resolve import resolve_onnx

runner = CliRunner()


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny U-Net's deploy export (random weights)."""
    home = tmp_path_factory.mktemp("serve_command")
    genotype = zoo.apply_overrides(zoo.resolve_genotype("unet-small"), {"channels": [8, 16, 32], "skips": [True, True],
                                   "dropout_layers": 1, "input_size": [64, 64]}).replace(name="serve-tiny")  # fmt: skip
    path = home / "serve-tiny.json"
    genotype.to_json(path)
    return resolve_onnx(path, cache_dir=home / "onnx")


def test_serve_dry_run_prints_the_bentoml_command(onnx_file: Path) -> None:
    result = runner.invoke(app, ["serve", str(onnx_file), "--port", "3999", "--workers", "2", "--threads", "1",
                                 "--streams", "3", "--max-body-mb", "5", "--dry-run",
                                 "--allow-random-weights"])  # fmt: skip
    assert result.exit_code == 0, result.output
    line = result.stdout.strip().splitlines()[-1]
    assert "-m nasseg.serving.launch serve nasseg.serving.service:Segmenter" in line and "--port 3999" in line
    assert f"NASSEG_SERVE_MODEL={onnx_file}" in line and "NASSEG_SERVE_WORKERS=2" in line
    assert "NASSEG_SERVE_MAX_BODY_MB=5.0" in line and "NASSEG_SERVE_STREAMS=3" in line
    assert "--host 127.0.0.1" in line  # this machine only, unless --host says otherwise


@pytest.mark.parametrize(("spec", "words"), [("missing.onnx", "no such ONNX file"), ("no-such-model", "unknown model")])
def test_serve_refuses_bad_models_in_one_line(spec: str, words: str) -> None:
    result = runner.invoke(app, ["serve", spec, "--dry-run"])
    assert result.exit_code == 2 and words in result.output


def test_settings_from_environment_and_arguments() -> None:
    from nasseg.serving.settings import SettingsError, load_settings

    settings = load_settings({"threads": "3"}, {"NASSEG_SERVE_MODEL": "m.onnx", "NASSEG_SERVE_THREADS": "2"})
    assert (settings.model, settings.threads, settings.max_body_bytes) == ("m.onnx", 3, 20 * 2**20)
    with pytest.raises(SettingsError, match="max_pixels"):
        load_settings({}, {"NASSEG_SERVE_MAX_PIXELS": "lots"})
    assert json.loads(json.dumps(settings.model_dump()))["model"] == "m.onnx"


# -- a zoo name on a fresh NASSEG_HOME: exported, cached, served (what the README shows) ----------------


@pytest.mark.slow
def test_serve_zoo_name_on_a_fresh_home(tmp_path: Path) -> None:
    server = start_server("unet-small-synth-defects", tmp_path, "--threads", "1")  # device auto: CUDA if a GPU
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            response = client.post("/inspect", files={"image": ("frame.png", encode(Image.fromarray(rgb(96, 128))))})
            assert response.status_code == 200, response.text
            assert response.json()["model"] == "unet-small-synth-defects"
            assert client.get("/model").json()["name"] == "unet-small-synth-defects"
    finally:
        assert server.stop() == 0, server.log_text()[-3000:]
    assert len(list((tmp_path / "onnx").glob("unet-small-synth-defects-*.onnx"))) == 1
    assert not list((tmp_path / "onnx").glob("*-random.onnx"))

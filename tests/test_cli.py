"""The ``nasseg`` command line, through the real entry point and through typer's runner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nasseg import zoo
from nasseg.cli import app
from nasseg.serving.export import read_metadata

runner = CliRunner()


def nasseg(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    code = "from nasseg.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, env=env)


def test_list_shows_registered_models() -> None:
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0
    for name in ("darts-v2-cifar", "pc-darts-cifar", "unet-pix2pix-256", "smp-unet-resnet34"):
        assert name in result.output
    rows = json.loads(runner.invoke(app, ["list", "smp-*", "--json"]).output)
    assert rows and all(row["family"] == "smp" for row in rows)


def test_help_shows_flags_without_a_type() -> None:
    for args in (["--help"], ["train", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and "--debug" in result.output or "--resume" in result.output
        assert "<bool>" not in result.output


def test_list_fits_an_80_column_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from nasseg.cli import console

    monkeypatch.setattr(console, "width", 80)
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in result.output
    row = next(line for line in lines if line.startswith("iac-unet-small-synth-defects "))
    assert row.split() == ["iac-unet-small-synth-defects", "iac-unet", "synth-defects", "0.757", "0.97", "yes"]
    monkeypatch.setattr(console, "width", 200)
    wide = runner.invoke(app, ["list", "--wide"])
    assert wide.exit_code == 0 and "params" in wide.output and "searcher" in wide.output


def test_report_prints_parameters_and_macs() -> None:
    result = runner.invoke(app, ["report", "darts-v2-cifar", "--input-size", "32", "32"])
    assert result.exit_code == 0, result.output
    assert "3,825,768" in result.output and "MACs" in result.output and "FLOPs = 2 x MACs" in result.output
    data = json.loads(runner.invoke(app, ["report", "smp-unet-resnet18", "--input-size", "64", "64", "--json"]).output)
    assert data["model"] == "smp-unet-resnet18" and data["flops"] == 2 * data["macs"] > 0
    assert data["input_size"] == [1, 3, 64, 64] and data["peak_activation_bytes"] > 0


def test_info_and_validate(tmp_path: Path) -> None:
    result = runner.invoke(app, ["info", "pc-darts-cifar"])
    assert result.exit_code == 0 and "Genotype(normal=" in result.output
    assert "3,634,678 (the net as deployed) + 476,426 in the auxiliary head" in result.output
    text = runner.invoke(app, ["info", "unet-pix2pix-256", "--json"]).output
    path = tmp_path / "u.json"
    path.write_text(text)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0 and "ok" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["info", "darts-v3-cifar"], "error: unknown model 'darts-v3-cifar'; did you mean darts-v2-cifar"),
        (["report", "unet-pix2pix-256", "--input-size", "100", "100"], "multiples of 256; got 100x100"),
        (["report", "darts-v2-cifar", "--input-size", "32"], "requires 2 arguments"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output.replace("\n", " ") or message in (result.stderr or "")
    assert "Traceback" not in result.output


def test_malformed_genotype_file_real_entry_point(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    data = json.loads((Path(__file__).parents[1] / "genotypes" / "darts-v2-cifar.json").read_text())
    data["arch"]["normal"]["nodes"][0][0][0] = "sep_conv_9x9"
    bad.write_text(json.dumps(data))
    result = nasseg("validate", str(bad))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.json" in lines[0] and "unknown op 'sep_conv_9x9'" in lines[0]
    assert "Traceback" not in result.stderr
    debug = nasseg("--debug", "validate", str(bad))
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("nasseg ")


def test_valid_genotype_that_cannot_be_built(tmp_path: Path) -> None:
    data = {"name": "odd", "family": "smp", "task": {"kind": "segmentation"},
            "arch": {"arch": "Unet", "encoder": "resnet999"}}  # fmt: skip
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(data))
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1 and "not buildable" in result.output.replace("\n", " ")  # valid, but unbuildable


def test_data_train_evaluate_predict_and_demo(tmp_path: Path) -> None:
    """The training commands end to end at toy size (the real demo is `nasseg demo`)."""
    data = tmp_path / "data"
    result = runner.invoke(app, ["data", "make", "synth-membranes", "--out", str(data), "--n", "6", "--size", "32"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["data", "check", str(data)]).exit_code == 0
    run = tmp_path / "run"
    args = ["train", "unet-small", "--data", str(data), "--out", str(run), "--epochs", "2", "--batch-size", "2",
            "--crop", "32", "32", "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{") :])
    trained = zoo.Genotype.from_json(run / "unet-small.json")
    assert trained.weights.arch_hash == trained.arch_hash and "test_iou" in trained.provenance.metrics
    assert summary["test"]["iou"] == pytest.approx(trained.provenance.metrics["test_iou"])
    assert not (run / "checkpoint.pt").exists() and not (run / "best_state.pt").exists()  # resume files go
    assert "warning" not in result.output
    classes = json.loads((data / "dataset.json").read_text())["classes"]
    assert trained.task.class_names == classes  # dataset.json's names travel to exports, /inspect and cards
    result = runner.invoke(app, ["export", str(run / "unet-small.json"), "--out", str(tmp_path / "m.onnx")])
    assert result.exit_code == 0, result.output
    assert read_metadata(tmp_path / "m.onnx").class_names == classes
    result = runner.invoke(app, ["evaluate", str(run / "unet-small.json"), "--data", str(data), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["iou"] == pytest.approx(summary["test"]["iou"])
    images = data / "test" / "images"
    result = runner.invoke(app, ["predict", str(run / "unet-small.json"), str(images), "--out", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "p").glob("*_overlay.png"))) == len(list(images.iterdir()))
    demo = runner.invoke(app, ["demo", "--train", "--out", str(tmp_path / "demo"), "--model", "unet-small", "--n",
                               "10", "--size", "32", "--epochs", "1"])  # fmt: skip
    assert demo.exit_code == 0, demo.output
    assert (tmp_path / "demo" / "run" / "metrics.json").is_file() and any((tmp_path / "demo" / "overlays").iterdir())


def test_demo_inspects_exports_and_serves_with_a_shipped_model(tmp_path: Path) -> None:
    demo = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--frames", "4", "--requests", "2"])
    assert demo.exit_code == 0, demo.output
    assert len(list((tmp_path / "demo" / "overlays").glob("*_overlay.png"))) == 4
    assert "check passed" in demo.output and demo.output.count("/inspect frame-") == 2
    assert (tmp_path / "demo" / "iac-unet-small-synth-defects.onnx").is_file()


def test_a_crop_larger_than_the_images_is_warned_and_keep_checkpoint_keeps_them(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert (
        runner.invoke(app, ["data", "make", "synth-defects", "--out", str(data), "--n", "6", "--size", "32"]).exit_code
        == 0
    )
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "unet-small", "--data", str(data), "--out", str(run), "--epochs", "1",
                                 "--batch-size", "2", "--crop", "64", "64", "--keep-checkpoint"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "--crop 64 64 is larger than the training images (32x32" in " ".join(result.output.split())
    assert (run / "checkpoint.pt").is_file()


def test_without_crop_training_follows_images_smaller_than_the_default(tmp_path: Path) -> None:
    data = tmp_path / "data"
    made = runner.invoke(app, ["data", "make", "synth-defects", "--out", str(data), "--n", "6", "--size", "32"])
    assert made.exit_code == 0, made.output
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "unet-small", "--data", str(data), "--out", str(run), "--epochs", "1",
                                 "--batch-size", "2"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "training on 32x32 crops" in result.output and "warning" not in result.output
    assert json.loads((run / "unet-small.json").read_text())["task"]["input_size"] == [32, 32]


def test_training_commands_reject_bad_input(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "unet-small", "--data", str(tmp_path / "none")])
    assert result.exit_code == 2 and "no such dataset folder" in result.output.replace("\n", " ")
    result = runner.invoke(app, ["evaluate", "unet-small", "--data", str(tmp_path)])
    assert result.exit_code == 2
    result = runner.invoke(app, ["data", "make", "synth-nothing", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "unknown data set" in result.output
    data = tmp_path / "d"
    assert (
        runner.invoke(app, ["data", "make", "synth-defects", "--out", str(data), "--n", "6", "--size", "32"]).exit_code
        == 0
    )
    for device, words in (("gpu", "no device name"), ("cuda:7", "cuda:7")):
        result = runner.invoke(app, ["train", "unet-small", "--data", str(data), "--out", str(tmp_path / "r"),
                                     "--crop", "32", "32", "--device", device])  # fmt: skip
        assert result.exit_code == 2 and words in result.output and "Traceback" not in result.output, result.output
    assert not (tmp_path / "r").exists()  # a failed command leaves no run folder behind


def test_the_lazy_command_table_matches_the_commands() -> None:
    """`nasseg --help` shows COMMANDS without importing the commands; the lines must be theirs."""
    import importlib

    import typer.main

    from nasseg.cli import COMMANDS

    for module in {module for module, _ in COMMANDS.values()}:
        importlib.import_module(f"nasseg.cli.{module}")
    group = typer.main.get_command(app)
    assert set(group.commands) == set(COMMANDS)
    for name, (module, text) in COMMANDS.items():
        command = group.commands[name]
        real = " ".join((command.help or "").split("\n\n")[0].split())
        assert real == text, (name, real)
        assert command.callback is None or command.callback.__module__ == f"nasseg.cli.{module}"


def test_help_and_list_import_no_torch() -> None:
    """The light commands stay light (their speed is measured in benchmarks/cli_startup.py)."""
    code = ("import sys; from nasseg.cli import main; sys.argv = ['nasseg', '{}']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'onnx', 'onnxruntime', 'bentoml') if m in sys.modules]\n"
            "print('HEAVY', heavy)")  # fmt: skip
    for command in ("--help", "list"):
        out = subprocess.run([sys.executable, "-c", code.format(command)], capture_output=True, text=True, timeout=120)
        assert "HEAVY []" in out.stdout, (command, out.stdout[-500:], out.stderr[-2000:])

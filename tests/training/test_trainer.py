"""The trainer: it learns, checkpoints every epoch, and a resumed run equals an uninterrupted one."""

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

from nasseg import zoo
from nasseg.zoo.data.folder import open_folder
from nasseg.zoo.data.synthetic import make_dataset
from nasseg.zoo.training.trainer import TrainConfig, Trainer

TINY = {"channels": [8, 16], "skips": [True], "dropout": 0.0, "input_size": [32, 32]}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset("synth-membranes", tmp_path_factory.mktemp("data") / "membranes", n=10, size=32, seed=0)


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return zoo.create_model("unet-small", **TINY)


def config(epochs: int) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=2, crop=(32, 32), lr=1e-2, seed=1)


def test_training_lowers_the_loss_and_writes_a_checkpoint(dataset: Path, tmp_path: Path) -> None:
    trainer = Trainer(tiny_model(), open_folder(dataset), config(4), tmp_path)
    result = trainer.fit()
    losses = [record["loss"] for record in result.history]
    assert losses[-1] < losses[0]
    assert (tmp_path / "checkpoint.pt").is_file() and len((tmp_path / "history.jsonl").read_text().splitlines()) == 4
    assert 1 <= result.best_epoch <= 4 and 0 <= result.best_metrics["iou"] <= 1


def test_resume_equals_uninterrupted_run(dataset: Path, tmp_path: Path) -> None:
    straight = Trainer(tiny_model(), open_folder(dataset), config(3), tmp_path / "a")
    straight.fit()
    first = Trainer(tiny_model(), open_folder(dataset), config(1), tmp_path / "b")
    first.fit()
    resumed = Trainer(tiny_model(), open_folder(dataset), config(3), tmp_path / "b")
    resumed.fit(resume=True)
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in straight.history]
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_mismatched_classes_and_crop_are_refused(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(zoo.NassegError, match="create it with num_classes=1"):
        Trainer(zoo.create_model("unet-small", num_classes=3, **TINY), open_folder(dataset), config(1), tmp_path)
    with pytest.raises(zoo.NassegError, match="not a multiple of the model's input divisor 4"):
        Trainer(tiny_model(), open_folder(dataset), TrainConfig(crop=(30, 30)), tmp_path)
    with pytest.raises(zoo.NassegError, match="is a classification net"):
        Trainer(zoo.create_model("darts-v2-cifar", num_classes=1), open_folder(dataset), config(1), tmp_path)
    with pytest.raises(zoo.NassegError, match="nothing to resume"):
        Trainer(tiny_model(), open_folder(dataset), config(1), tmp_path / "empty").fit(resume=True)


def nasseg(*args: str) -> list[str]:
    return [sys.executable, "-c", "from nasseg.cli import main; main()", *args]


def test_kill_9_during_training_then_resume_loses_nothing(dataset: Path, tmp_path: Path) -> None:
    """SIGKILL the real CLI mid-run; --resume finishes with the same weights as an uninterrupted run."""
    genotype = zoo.apply_overrides(zoo.get_genotype("unet-small"), TINY)
    genotype.to_json(tmp_path / "unet-small.json")
    common = ["--data", str(dataset), "--epochs", "4", "--batch-size", "2", "--crop", "32", "32", "--seed", "1"]
    whole = subprocess.run(nasseg("train", str(tmp_path / "unet-small.json"), "--out", str(tmp_path / "whole"),
                                  *common), capture_output=True, text=True, timeout=300)  # fmt: skip
    assert whole.returncode == 0, whole.stderr
    run = tmp_path / "killed"
    process = subprocess.Popen(nasseg("train", str(tmp_path / "unet-small.json"), "--out", str(run), *common),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 120
    while not (run / "history.jsonl").is_file() or len((run / "history.jsonl").read_text().splitlines()) < 1:
        assert time.time() < deadline and process.poll() is None, "training ended before it could be killed"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    again = subprocess.run(nasseg("train", str(tmp_path / "unet-small.json"), "--out", str(run), *common),
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert again.returncode == 2 and "--resume" in again.stderr  # refuses to overwrite the killed run
    resumed = subprocess.run(nasseg("train", str(tmp_path / "unet-small.json"), "--out", str(run), "--resume",
                                    *common), capture_output=True, text=True, timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    a = zoo.create_model(tmp_path / "whole" / "unet-small.json", pretrained=True).state_dict()
    b = zoo.create_model(run / "unet-small.json", pretrained=True).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_early_stopping(dataset: Path, tmp_path: Path) -> None:
    cfg = config(30)
    cfg.patience, cfg.lr = 1, 0.0  # nothing can improve after the first epoch
    result = Trainer(tiny_model(), open_folder(dataset), cfg, tmp_path).fit()
    assert result.stopped_early and len(result.history) == 2 and result.best_epoch == 1


def test_frozen_base_mode_trains_only_the_cells(dataset: Path, tmp_path: Path) -> None:
    base = zoo.get_genotype("iac-base-unet-small")
    tiny = {"encoder": "unet", "decoder_channels": [8, 4]}
    base = zoo.apply_overrides(base, {"base": tiny, "input_size": [32, 32]}).replace(name="tiny-base")
    base.to_json(tmp_path / "tiny-base.json")
    implant = zoo.Genotype.from_dict({
        "name": "tiny-implant", "family": "iac-unet", "task": base.task.model_dump(),
        "arch": {"base": {"model": str(tmp_path / "tiny-base.json"), "arch_hash": base.arch_hash},
                 "cell": zoo.get_genotype("iac-resnet18-darts-v2").arch.cell.model_dump(), "cell_channels": 4},
    })  # fmt: skip
    torch.manual_seed(0)
    model = zoo.create_model(implant)
    before = {k: v.clone() for k, v in model.base.state_dict().items()}
    cfg = config(1)
    cfg.freeze_base = True
    Trainer(model, open_folder(dataset), cfg, tmp_path / "run").fit()
    assert all(torch.equal(before[k], v) for k, v in model.base.state_dict().items())
    assert any(p.requires_grad for p in model.parameters())
    with pytest.raises(zoo.NassegError, match="no frozen-base mode"):
        Trainer(tiny_model(), open_folder(dataset), cfg, tmp_path / "other")


def test_batched_evaluation_equals_one_image_at_a_time(dataset: Path) -> None:
    from nasseg.zoo.training.trainer import evaluate

    model = tiny_model()
    folder = open_folder(dataset)
    one = evaluate(model, folder, "train", loss="bce_dice", batch_size=1)
    batched = evaluate(model, folder, "train", loss="bce_dice", batch_size=4)
    assert batched["iou"] == pytest.approx(one["iou"]) and batched["loss"] == pytest.approx(one["loss"], rel=1e-5)


def test_channels_last_training_matches_the_contiguous_run(dataset: Path, tmp_path: Path) -> None:
    runs = []
    for channels_last in (False, True):
        settings = TrainConfig(epochs=1, batch_size=2, crop=(32, 32), lr=1e-2, seed=1, channels_last=channels_last)
        trainer = Trainer(tiny_model(), open_folder(dataset), settings, tmp_path / str(channels_last))
        runs.append(trainer.train_epoch())
    assert runs[1] == pytest.approx(runs[0], rel=1e-3)


def test_history_follows_the_checkpoint_after_a_kill_between_them(dataset: Path, tmp_path: Path) -> None:
    """A kill after the checkpoint but before history.jsonl leaves it one epoch behind; resume
    rewrites it from the checkpoint: every epoch once, in order (no duplicates, none missing)."""
    Trainer(tiny_model(), open_folder(dataset), config(2), tmp_path).fit()
    lines = (tmp_path / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    (tmp_path / "history.jsonl").write_text(lines[0] + "\n")  # the kill: epoch 2 checkpointed, not yet logged
    Trainer(tiny_model(), open_folder(dataset), config(3), tmp_path).fit(resume=True)
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]


def test_ctrl_c_during_training_says_how_to_resume(dataset: Path, tmp_path: Path) -> None:
    genotype = zoo.apply_overrides(zoo.get_genotype("unet-small"), TINY)
    genotype.to_json(tmp_path / "unet-small.json")
    run = tmp_path / "run"
    process = subprocess.Popen(nasseg("train", str(tmp_path / "unet-small.json"), "--out", str(run), "--data",
                                      str(dataset), "--epochs", "100000", "--batch-size", "2", "--crop", "32", "32"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 120
    while not (run / "history.jsonl").is_file():
        assert time.time() < deadline and process.poll() is None, "training ended before it could be interrupted"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "interrupted:" in stderr and "--resume" in stderr and "Traceback" not in stderr


def test_resume_on_a_finished_run_trains_on_when_epochs_are_raised(dataset: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from nasseg.cli import app

    genotype = zoo.apply_overrides(zoo.get_genotype("unet-small"), TINY)
    genotype.to_json(tmp_path / "unet-small.json")
    common = ["train", str(tmp_path / "unet-small.json"), "--data", str(dataset), "--out", str(tmp_path / "run"),
              "--batch-size", "2", "--crop", "32", "32"]  # fmt: skip
    runner = CliRunner()
    assert runner.invoke(app, [*common, "--epochs", "1"]).exit_code == 0
    again = runner.invoke(app, [*common, "--epochs", "1", "--resume"])
    assert again.exit_code == 2 and "pass --epochs above 1" in again.output
    more = runner.invoke(app, [*common, "--epochs", "3", "--resume"])
    assert more.exit_code == 0 and "training 2 more from its final weights" in more.output, more.output
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs_run"] == 3
    assert (tmp_path / "run" / "history.part1.jsonl").is_file()
    assert "loss nan" not in more.output


def test_deferred_interrupt_stops_at_the_next_step_and_a_second_ctrl_c_at_once() -> None:
    """Run in a child process (signals to the test runner itself are not safe beside its threads)."""
    script = """
import os, signal, time
from nasseg.cli.interrupt import DeferredInterrupt
signal.signal(signal.SIGINT, signal.default_int_handler)
interrupt = DeferredInterrupt()
events = []
with interrupt:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)
    events.append(f"flag {interrupt.requested}")
    try:
        interrupt.check()
    except KeyboardInterrupt:
        events.append("check raised")
    interrupt.check()
    os.kill(os.getpid(), signal.SIGINT)
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.5)
    except KeyboardInterrupt:
        events.append("second raised at once")
events.append(f"restored {signal.getsignal(signal.SIGINT) is signal.default_int_handler}")
print("; ".join(events))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-1000:]
    assert done.stdout.strip() == "flag True; check raised; second raised at once; restored True"

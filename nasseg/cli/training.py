"""``nasseg train | evaluate | predict | demo``: fit zoo models on a dataset folder and use them."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import torch
import typer
from PIL import Image
from rich.table import Table

from nasseg import zoo
from nasseg.cli import app, console, err_console, print_json
from nasseg.cli.interrupt import DeferredInterrupt
from nasseg.cli.progress import progress_bar
from nasseg.zoo.data.folder import SegmentationFolder, open_folder
from nasseg.zoo.data.images import IMAGE_SUFFIXES, write_png
from nasseg.zoo.data.synthetic import make_dataset
from nasseg.zoo.errors import NassegError
from nasseg.zoo.genotype import Genotype
from nasseg.zoo.inference import predict_file
from nasseg.zoo.io import atomic_write_text
from nasseg.zoo.training.trainer import TrainConfig, Trainer, evaluate, read_train_checkpoint, resolve_device
from nasseg.zoo.versions import library_versions

if TYPE_CHECKING:
    from nasseg.serving.runtime import OnnxSegmenter

METRIC_KEYS = ("iou", "dice", "pixel_accuracy", "precision", "recall", "miou")


def _fit_genotype(spec: str, data: SegmentationFolder, crop: tuple[int, int]) -> Genotype:
    """The genotype to train: the model's, with the dataset's class count and names, and the crop as input size."""
    genotype = zoo.resolve_genotype(spec)
    return zoo.apply_overrides(genotype, {"num_classes": data.model_classes, "input_size": list(crop),
                                          "class_names": list(data.classes)})  # fmt: skip


def _metrics_table(title: str, metrics: dict[str, Any]) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in METRIC_KEYS:
        if key in metrics:
            table.add_row(key, f"{metrics[key]:.4f}")
    return table


def train_model(spec: str, data_dir: Path, out: Path, config: TrainConfig, resume: bool = False,
                pretrained: bool = False, name: str | None = None,
                keep_checkpoint: bool = False, crop_to_images: bool = False) -> dict[str, Any]:  # fmt: skip
    """Train, then write ``OUT/NAME.safetensors`` (bound to the arch hash), ``OUT/NAME.json`` (the
    genotype with its weights entry and metrics in provenance) and ``OUT/metrics.json``. The
    resume files (``checkpoint.pt`` with the optimiser state, ``best_state.pt``) are removed once
    the weights are written, unless ``keep_checkpoint`` (they are 3-4x the weights). With
    ``crop_to_images`` (no ``--crop`` given) a crop larger than the training images shrinks to them."""
    data = open_folder(data_dir, seed=config.seed)
    if crop_to_images:
        config = _crop_within_images(data, config)
    _warn_if_crop_exceeds_images(data, config.crop)
    genotype = _fit_genotype(spec, data, config.crop)
    if name is not None:
        genotype = genotype.replace(name=name)
    if (out / "checkpoint.pt").is_file() and not resume:
        raise NassegError(f"{out} already holds a training checkpoint: pass --resume to continue it, or another --out")
    torch.manual_seed(config.seed)  # one seed fixes the initial weights too
    model = zoo.create_model(genotype, pretrained=pretrained)
    epochs_before = 0
    if resume and not (out / "checkpoint.pt").is_file() and (out / "metrics.json").is_file():
        model, config, epochs_before = _continue_finished(out, config)
        resume = False
    console.print(f"training {genotype.name} (arch {genotype.arch_hash}) on {data.describe()}", highlight=False)
    trainer = Trainer(model, data, config, out)
    total = config.epochs * trainer.steps_per_epoch()
    with progress_bar(f"train {genotype.name}", total=total, fields="loss {task.fields[loss]}  "
                      f"val {config.monitor} {{task.fields[iou]}}") as advance:  # fmt: skip
        advance(trainer.epoch * trainer.steps_per_epoch() if resume else 0)

        interrupt = DeferredInterrupt()

        def on_step(event: dict[str, Any]) -> None:
            interrupt.check()  # Ctrl-C stops here, between steps, never inside the progress bar's lock
            if event.get("end_of_epoch"):
                advance(0, iou=event.get(config.monitor, float("nan")))
            else:
                advance(1, loss=event["loss"])

        trainer.on_step = on_step
        if resume and (out / "checkpoint.pt").is_file():
            state = read_train_checkpoint(out / "checkpoint.pt")
            advance(state["epoch"] * trainer.steps_per_epoch())
        try:
            with interrupt:
                result = trainer.fit(resume=resume)
        except KeyboardInterrupt:
            if trainer.epoch:
                say = (f"interrupted: {out} holds the checkpoint of epoch {trainer.epoch}; `nasseg train {spec} "
                       f"--data {data_dir} --out {out} --resume` (with the same options) continues it")  # fmt: skip
            else:
                say = "interrupted before the first epoch ended: nothing to resume; run the command again"
            err_console.print(say, highlight=False, soft_wrap=True)
            raise SystemExit(130) from None
    test_metrics = evaluate(model, data, "test", trainer.device)
    weights = zoo.save_weights(model.cpu(), genotype, out / f"{genotype.name}.safetensors")
    provenance = genotype.provenance.model_dump(mode="json")
    provenance.update(
        dataset=str(data.root),
        seed=config.seed,
        metrics={f"val_{k}": float(result.best_metrics[k]) for k in METRIC_KEYS if k in result.best_metrics}
        | {f"test_{k}": float(test_metrics[k]) for k in METRIC_KEYS if k in test_metrics},
        library_versions=library_versions(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    trained = genotype.replace(weights=weights, provenance=provenance)
    trained.to_json(out / f"{genotype.name}.json")
    summary = {"model": genotype.name, "arch_hash": genotype.arch_hash, "best_epoch": result.best_epoch,
               "epochs_run": epochs_before + len(result.history), "stopped_early": result.stopped_early,
               "train_seconds": round(result.seconds, 1), "val": result.best_metrics, "test": test_metrics,
               "genotype": str(out / f"{genotype.name}.json"), "weights": str(out / weights.file)}  # fmt: skip
    atomic_write_text(out / "metrics.json", json.dumps(summary, indent=2) + "\n")
    if not keep_checkpoint:
        for resume_file in ("checkpoint.pt", "best_state.pt"):
            (out / resume_file).unlink(missing_ok=True)
    return summary


def _continue_finished(out: Path, config: TrainConfig) -> tuple[torch.nn.Module, TrainConfig, int]:
    """``--resume`` on a finished run (it kept no checkpoint): its final weights trained for the
    epochs ``--epochs`` adds, with a fresh optimiser and schedule; the first run's history is kept as
    ``history.part1.jsonl``. With no epochs to add, a one-line error says what to pass."""
    from dataclasses import replace

    from nasseg.zoo.io import atomic_copy

    finished = json.loads((out / "metrics.json").read_text())
    done = int(finished.get("epochs_run", 0))
    if config.epochs <= done:
        raise NassegError(f"{out} finished its {done} epochs and kept no checkpoint: pass --epochs above {done} "
                          "with --resume to train on from its final weights")  # fmt: skip
    model = zoo.create_model(Path(finished["genotype"]), pretrained=True)
    if (out / "history.jsonl").is_file():
        atomic_copy(out / "history.jsonl", out / "history.part1.jsonl")
    console.print(f"{out} finished {done} epochs; training {config.epochs - done} more from its final weights "
                  "(a fresh optimiser and schedule: the run kept no checkpoint; --keep-checkpoint keeps one)",
                  highlight=False, soft_wrap=True)  # fmt: skip
    return model, replace(config, epochs=config.epochs - done), done


def _first_image_size(data: SegmentationFolder) -> tuple[int, int] | None:
    """(height, width) of the first training image, or None for an empty split."""
    samples = data.splits["train"]
    if not samples:
        return None
    with Image.open(samples[0].image) as first:
        return first.size[1], first.size[0]


def _crop_within_images(data: SegmentationFolder, config: TrainConfig) -> TrainConfig:
    """The default crop, shrunk to the training images where they are smaller (said in one line)."""
    from dataclasses import replace

    size = _first_image_size(data)
    if size is None or (config.crop[0] <= size[0] and config.crop[1] <= size[1]):
        return config
    crop = (min(config.crop[0], size[0]), min(config.crop[1], size[1]))
    console.print(f"training on {crop[0]}x{crop[1]} crops (the images' size; --crop sets another)", highlight=False)
    return replace(config, crop=crop)


def _warn_if_crop_exceeds_images(data: SegmentationFolder, crop: tuple[int, int]) -> None:
    """A crop larger than the training images pads every sample up to it: say so before training."""
    size = _first_image_size(data)
    if size is None:
        return
    height, width = size
    samples = data.splits["train"]
    if crop[0] > height or crop[1] > width:
        err_console.print(f"[yellow]warning:[/] --crop {crop[0]} {crop[1]} is larger than the training images "
                          f"({height}x{width}, e.g. {samples[0].image.name}): every crop is padded up to it, and the "
                          f"genotype records input_size {list(crop)}; pass --crop {height} {width} to train at their "
                          "size", highlight=False, soft_wrap=True)  # fmt: skip


@app.command()
def train(
    name: Annotated[str, typer.Argument(help="Registered model name or genotype .json.")],
    data: Annotated[Path, typer.Option(help="Dataset folder (ROOT/{train,val,test}/{images,masks}).")],
    out: Annotated[Path | None, typer.Option(help="Run folder (default: runs/NAME).")] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 20,
    batch_size: Annotated[int, typer.Option(min=2)] = 8,
    crop: Annotated[
        tuple[int, int] | None,
        typer.Option(help="Training crop height and width (default: 128 128, or the images' size where smaller)."),
    ] = None,
    optimizer: Annotated[str, typer.Option(help="adam or sgd.")] = "adam",
    lr: Annotated[float, typer.Option(min=0)] = 1e-3,
    loss: Annotated[
        str | None, typer.Option(help="bce_dice (binary default), bce, dice, ce (multi-class), ce_dice.")
    ] = None,
    patience: Annotated[
        int | None, typer.Option(help="Early stopping after this many epochs without progress.")
    ] = None,
    seed: int = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1 ...")] = "auto",
    freeze_base: Annotated[bool, typer.Option(help="Train only the implanted cells (IAC).")] = False,
    pretrained: Annotated[bool, typer.Option(help="Start from the model's weights.")] = False,
    resume: Annotated[bool, typer.Option(help="Continue the checkpoint in --out.")] = False,
    max_steps_per_epoch: Annotated[int | None, typer.Option(min=1)] = None,
    name_as: Annotated[str | None, typer.Option("--name", help="Name of the trained genotype (default: NAME).")] = None,
    keep_checkpoint: Annotated[
        bool, typer.Option(help="Keep checkpoint.pt and best_state.pt after training (to train on later).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Train a zoo model on a dataset folder; checkpoints every epoch (resume with --resume)."""
    if optimizer not in ("adam", "sgd"):
        raise NassegError(f"--optimizer must be adam or sgd, got {optimizer!r}")
    config = TrainConfig(epochs=epochs, batch_size=batch_size, crop=tuple(crop or (128, 128)), optimizer=optimizer,
                         lr=lr, loss=loss, patience=patience, seed=seed, device=device, freeze_base=freeze_base,
                         max_steps_per_epoch=max_steps_per_epoch)  # fmt: skip
    run = out or Path("runs") / (name_as or zoo.resolve_genotype(name).name)
    summary = train_model(name, data, run, config, resume=resume, pretrained=pretrained, name=name_as,
                          keep_checkpoint=keep_checkpoint, crop_to_images=crop is None)  # fmt: skip
    if as_json:
        print_json(summary)
        return
    console.print(_metrics_table(f"{summary['model']}: test split (best val epoch {summary['best_epoch']})",
                                 summary["test"]))  # fmt: skip
    console.print(f"weights: {summary['weights']}\ngenotype: {summary['genotype']}", highlight=False)


@app.command("evaluate")
def evaluate_command(
    name: Annotated[str, typer.Argument(help="Trained model: genotype .json with weights, or registered name.")],
    data: Annotated[Path, typer.Option(help="Dataset folder.")],
    split: Annotated[str, typer.Option(help="train, val or test.")] = "test",
    device: str = "auto",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """IoU, Dice/F1, pixel accuracy, precision and recall of a trained model on a split."""
    if split not in ("train", "val", "test"):
        raise NassegError(f"--split must be train, val or test, got {split!r}")
    folder = open_folder(data)
    model = zoo.create_model(name, pretrained=True).to(resolve_device(device))
    if model.genotype.task.num_classes != folder.model_classes:
        raise NassegError(f"model {model.genotype.name!r} predicts {model.genotype.task.num_classes} channel(s); "
                          f"{data} has {folder.num_classes} classes")  # fmt: skip
    metrics = evaluate(model, folder, split, resolve_device(device))
    if as_json:
        print_json({"model": model.genotype.name, "split": split, **metrics})
        return
    console.print(_metrics_table(f"{model.genotype.name} on {data} ({split}, {len(folder.splits[split])} images)",
                                 metrics))  # fmt: skip


def _image_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        elif path.is_file():
            files.append(path)
        else:
            raise NassegError(f"{path}: no such image file or folder")
    if not files:
        raise NassegError("no images to predict (expected PNG, JPEG, BMP or TIFF files)")
    return files


def predict_images(model: torch.nn.Module, images: list[Path], out: Path, threshold: float = 0.5,
                   pictures: list | None = None) -> list[dict]:  # fmt: skip
    """Write ``OUT/NAME_mask.png`` and ``OUT/NAME_overlay.png`` for every image; returns one record each.
    ``model`` may also be an ONNX Runtime predictor with ``.genotype`` and ``.predict_file(path, threshold)``.
    The overlay is upscaled to 256 px at least, with the truth beside the prediction (and the IoU)
    where the image sits in a dataset folder; ``pictures`` collects them for a contact sheet."""
    from nasseg.zoo.overlays import compare_picture, frame_iou, truth_for

    records = []
    scale = 255 if model.genotype.task.num_classes == 1 else 1
    for path in images:
        if isinstance(model, torch.nn.Module):
            image, mask, probability = predict_file(model, path, threshold)
        else:
            image, mask, probability = model.predict_file(path, threshold)
        write_png(out / f"{path.stem}_mask.png", (mask * scale).astype("uint8"))
        truth = truth_for(path)
        truth = truth if truth is not None and truth.shape == mask.shape else None
        picture = compare_picture(image, mask, truth, label=path.stem)
        write_png(out / f"{path.stem}_overlay.png", picture)
        if pictures is not None:
            pictures.append(picture)
        records.append({"image": str(path), "mask": str(out / f"{path.stem}_mask.png"),
                        "overlay": str(out / f"{path.stem}_overlay.png"),
                        "foreground_fraction": float((mask > 0).mean()),
                        "max_probability": float(probability.max()),
                        **({"iou": frame_iou(mask, truth)} if truth is not None else {})})  # fmt: skip
    return records


@app.command()
def predict(
    name: Annotated[str, typer.Argument(help="Trained model: genotype .json with weights, or registered name.")],
    images: Annotated[list[Path], typer.Argument(help="Image files or folders.")],
    out: Annotated[Path, typer.Option(help="Folder for masks and overlays.")] = Path("predictions"),
    threshold: Annotated[float, typer.Option(min=0, max=1)] = 0.5,
    device: str = "auto",
    onnx: Annotated[
        Path | None,
        typer.Option("--onnx", help="Run this export of NAME instead (a deploy-graph .onnx, or an OpenVINO .xml)."),
    ] = None,
    runtime: Annotated[
        str, typer.Option(help="With --onnx: onnx (ONNX Runtime) or openvino (CPU).")
    ] = "onnx",
    precision: Annotated[str | None, typer.Option(help="With --runtime openvino: f32, bf16 or int8.")] = None,
    allow_random_weights: Annotated[
        bool, typer.Option("--allow-random-weights", help="Predict with a net without trained weights (tests only).")
    ] = False,
) -> None:
    """Masks and overlay PNGs (a person can look at them) for images."""
    files = _image_files(images)
    if onnx is not None:

        model = onnx_predictor(onnx, name, device, allow_random=allow_random_weights, runtime=runtime,
                               precision=precision)  # fmt: skip
    else:
        from nasseg.serving.resolve import has_trained_weights, refuse_random

        if runtime != "onnx" or precision is not None:
            raise NassegError("--runtime and --precision run an export: pass it with --onnx FILE")

        genotype = zoo.resolve_genotype(name)
        trained = has_trained_weights(genotype)
        if not trained and not allow_random_weights:
            refuse_random(genotype, "predict with")
        model = zoo.create_model(genotype, pretrained=trained).to(resolve_device(device))
    with progress_bar("predict", total=len(files)) as advance:
        records, pictures = [], []
        for path in files:
            records += predict_images(model, [path], out, threshold, pictures if len(pictures) < 64 else None)
            advance()
    sheet = ""
    if len(pictures) > 1:
        from nasseg.zoo.overlays import contact_sheet

        write_png(out / "sheet.png", contact_sheet(pictures))
        sheet = f" and a contact sheet {out / 'sheet.png'}"
    ious = [r["iou"] for r in records if "iou" in r]
    truth = f"; mean frame IoU {sum(ious) / len(ious):.3f} against the folder's masks" if ious else ""
    console.print(f"wrote {len(records)} masks and overlays to {out}{sheet}{truth}", highlight=False)


def train_demo(out: Path, model: str, n: int, size: int, epochs: int, seed: int) -> None:
    """``nasseg demo --train``: make synth-defects, train a small model, evaluate, write overlays."""
    start = time.perf_counter()
    data_dir, run_dir, overlays = out / "data", out / "run", out / "overlays"
    if (run_dir / "checkpoint.pt").is_file() or (run_dir / "metrics.json").is_file():
        raise NassegError(f"{out} holds an earlier demo run; remove it or pass another --out")
    if not (data_dir / "dataset.json").is_file():
        with progress_bar("making synth-defects", total=n) as advance:
            make_dataset("synth-defects", data_dir, n=n, size=size, seed=seed, progress=advance)
    config = TrainConfig(epochs=epochs, batch_size=8, crop=(size, size), seed=seed, lr=3e-3, restart_epochs=epochs)
    summary = train_model(model, data_dir, run_dir, config)
    trained = zoo.create_model(summary["genotype"], pretrained=True)
    test_images = sorted((data_dir / "test" / "images").iterdir())
    predict_images(trained, test_images, overlays)
    console.print(_metrics_table(f"{summary['model']} on synth-defects (test split)", summary["test"]))
    console.print(
        f"data:      {data_dir}\nweights:   {summary['weights']}\ngenotype:  {summary['genotype']}\n"
        f"metrics:   {run_dir / 'metrics.json'}\noverlays:  {overlays} ({len(test_images)} images)\n"
        f"took {time.perf_counter() - start:.0f} s. Next: nasseg evaluate {summary['genotype']} --data {data_dir}",
        highlight=False,
    )


def onnx_predictor(onnx_file: Path, name: str, device: str = "auto", allow_random: bool = False,
                   runtime: str = "onnx", precision: str | None = None) -> OnnxSegmenter:  # fmt: skip
    """The deploy graph ``onnx_file`` for ``nasseg predict --onnx``; refused if it is not ``name``'s net,
    or if it records random weights and ``allow_random`` is not set."""
    from nasseg.serving.export import ExportError
    from nasseg.serving.resolve import resolve_onnx
    from nasseg.serving.runtime import OnnxSegmenter

    resolve_onnx(onnx_file, allow_random=allow_random)
    segmenter = OnnxSegmenter(onnx_file, device="cpu" if device == "cpu" else "auto", runtime=runtime,
                              precision=precision)  # fmt: skip
    expected = zoo.resolve_genotype(name).arch_hash
    if segmenter.metadata.arch_hash != expected:
        raise ExportError(f"{onnx_file} holds arch {segmenter.metadata.arch_hash} "
                          f"({segmenter.genotype.name}), but {name} is arch {expected}")  # fmt: skip
    return segmenter

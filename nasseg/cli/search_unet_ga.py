"""``nasseg search unet-ga``: the U-Net translator GA (seed 002) on a segmentation or paired folder."""

from __future__ import annotations

from typing import Annotated

import typer

from nasseg.cli import console
from nasseg.cli.search import (
    DataOption,
    DeviceOption,
    EpochsOption,
    ImagesOption,
    JsonOption,
    LatencySizeOption,
    LatencyTableOption,
    LatencyTargetOption,
    LatencyWeightOption,
    OutOption,
    RayOption,
    ResumeOption,
    SecondsOption,
    SeedOption,
    SizeOption,
    StepsOption,
    ValImagesOption,
    WorkersOption,
    common_searcher,
    fidelity_from,
    latency_objective,
    run_directory,
    run_search,
    search_app,
)
from searchers import Budget, SearchError, SegmentationEvaluator
from searchers.evaluators import search_task
from searchers.latency import DEFAULT_WEIGHT
from searchers.unet_ga import PAPER_LAYERS, TranslationEvaluator, UNetGAStrategy, UNetRandomStrategy, UNetSpace
from searchers.unet_ga.strategy import FITNESS_METRICS
from searchers.unet_ga.translation import paired_root

#: steps per candidate below which a short training ranks U-Nets poorly (search_fidelity.json: Spearman 0.90 at 100)
SEGMENTATION_MIN_STEPS = 100


def parse_widths(text: str) -> tuple[int, ...]:
    """``"64,128,256,512"`` -> (64, 128, 256, 512)."""
    try:
        widths = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise SearchError(f"--widths {text!r}: give comma-separated integers, e.g. 64,128,256,512") from None
    if not widths or min(widths) < 1:
        raise SearchError(f"--widths {text!r}: give positive integers, e.g. 64,128,256,512")
    return widths


def default_layers(size: int) -> int:
    """The paper's L = 8, or fewer where the search size cannot be halved 8 times (1 x 1 innermost at most)."""
    layers = 0
    while layers < PAPER_LAYERS and size % 2 ** (layers + 1) == 0:
        layers += 1
    return layers


@search_app.command("unet-ga")
def unet_ga(
    data: DataOption,
    task: Annotated[
        str, typer.Option(help="segmentation (masks) or translation (pix2pix on A/B pairs).")
    ] = "segmentation",
    population: Annotated[int, typer.Option("--population", "-K", min=2, help="Population size K.")] = 32,
    generations: Annotated[int, typer.Option("--generations", "-T", min=0, help="Generations T.")] = 100,
    gamma: Annotated[float, typer.Option(min=0, help="FLOPs weight in f = 1/(L_gen + gamma * GFLOPs).")] = 0.01,
    fitness: Annotated[
        str | None,
        typer.Option(help="L_gen of the fitness: iou (1 - val IoU; default for segmentation) or loss (the paper's)."),
    ] = None,
    widths: Annotated[str, typer.Option(help="S1: the encoder widths to choose from.")] = "64,128,256,512",
    layers: Annotated[
        int | None, typer.Option(min=2, help="Encoder levels L (default: 8, fewer for small sizes).")
    ] = None,
    flops_size: Annotated[
        int | None, typer.Option("--flops-size", min=8, help="Count FLOPs at this image side (default: search size).")
    ] = None,
    dropout: Annotated[float, typer.Option(min=0, max=0.95, help="Decoder dropout (pix2pix: 0.5).")] = 0.5,
    lam: Annotated[float, typer.Option("--lambda", min=0, help="L1 weight lambda (translation).")] = 100.0,
    disc_width: Annotated[int, typer.Option(min=1, help="PatchGAN width (pix2pix: 64; translation).")] = 64,
    selection: Annotated[
        str, typer.Option(help="Parent selection: rank (default) or roulette (the paper's eq. 4).")
    ] = "rank",
    elite_evaluations: Annotated[
        int, typer.Option(min=1, help="Re-score the elite until its fitness averages N seeds (1: the paper).")
    ] = 3,
    random_search: Annotated[
        bool, typer.Option("--random", help="Random sampling from the same space instead (the GA's evaluation count).")
    ] = False,
    evaluations: Annotated[int | None, typer.Option("--evaluations", min=1, help="Stop after N evaluations.")] = None,
    epochs: EpochsOption = 1,
    image_size: SizeOption = 256,
    batch_size: Annotated[int, typer.Option(min=2, help="Training batch size per candidate.")] = 4,
    lr: Annotated[float | None, typer.Option(min=0, help="Learning rate (default 1e-3; pix2pix's 2e-4).")] = None,
    max_images: ImagesOption = None,
    max_val_images: ValImagesOption = None,
    max_steps: StepsOption = None,
    min_steps: Annotated[
        int | None,
        typer.Option("--min-steps", min=1, help="Optimiser steps per candidate at least (default: 100 for "
                     "segmentation, where a shorter training ranks nets poorly; 20 for translation)."),
    ] = None,
    max_seconds: SecondsOption = None,
    workers: WorkersOption = None,
    ray: RayOption = None,
    resume: ResumeOption = None,
    out: OutOption = None,
    seed: SeedOption = 0,
    device: DeviceOption = "cpu",
    as_json: JsonOption = False,
    latency_table: LatencyTableOption = None,
    latency_target: LatencyTargetOption = None,
    latency_weight: LatencyWeightOption = DEFAULT_WEIGHT,
    latency_size: LatencySizeOption = "256x256",
) -> None:
    """Evolve U-Net encoder widths and skip connections (GA of seed 002; resume with --resume RUN)."""
    if task not in ("segmentation", "translation"):
        raise SearchError(f"--task {task!r}: choose segmentation or translation")
    size = (image_size, image_size)
    levels = layers or default_layers(image_size)
    if levels < 2:
        raise SearchError(f"--image-size {image_size}: a U-Net needs a size divisible by 4 at least")
    if lr is None:
        lr = 2e-4 if task == "translation" else 1e-3
    if min_steps is None:
        min_steps = 20 if task == "translation" else SEGMENTATION_MIN_STEPS
    fitness = fitness or ("loss" if task == "translation" else "iou")
    if fitness not in FITNESS_METRICS or (task == "translation" and fitness == "iou"):
        raise SearchError(f"--fitness {fitness!r}: choose {' or '.join(FITNESS_METRICS)} (translation: loss)")
    fidelity = fidelity_from(epochs, image_size, batch_size, max_images, max_val_images, max_steps, lr, min_steps)
    if task == "translation":
        paired_root(data)  # fails early, in one line, without pairs
        genotype_task = {"kind": "translation", "in_channels": 3, "num_classes": 3, "input_size": list(size)}
        evaluator = TranslationEvaluator(data, fidelity, device=device, lam=lam, disc_width=disc_width)
    else:
        if not data.is_dir():
            raise SearchError(f"--data {data}: no such dataset folder")
        genotype_task = search_task(data, size, in_channels=3)
        evaluator = SegmentationEvaluator(data, fidelity, device=device)
    space = UNetSpace(widths=parse_widths(widths), layers=levels, task=genotype_task, dropout=dropout)
    flops = (flops_size, flops_size) if flops_size else None
    # the GA's evaluations at most: P_0, then K - 1 children and one elite re-scoring per generation
    most = population + generations * (population - 1 + (elite_evaluations > 1))
    if random_search:
        total = min(most, evaluations) if evaluations else most
        strategy = UNetRandomStrategy(space, per_step=population, seed=seed, gamma=gamma, flops_size=flops,
                                      total=total, metric=fitness)  # fmt: skip
        name = UNetRandomStrategy.name
        budget = Budget(evaluations=total, seconds=max_seconds)
    else:
        strategy = UNetGAStrategy(space, population, generations, gamma, seed=seed, flops_size=flops,
                                  selection=selection, elite_evaluations=elite_evaluations,
                                  metric=fitness)  # fmt: skip
        name = UNetGAStrategy.name
        budget = Budget(steps=generations + 1, evaluations=evaluations, seconds=max_seconds)
    run_dir, resuming = run_directory(name, out, resume)
    latency = latency_objective(latency_table, latency_target, latency_weight, latency_size)
    searcher = common_searcher(strategy, evaluator, budget, run_dir, seed, data, workers, ray,
                               config={"task": task},
                               latency=latency)  # fmt: skip
    run_search(searcher, resuming, name, as_json)
    report = strategy.flops_report() if isinstance(strategy, UNetGAStrategy) else None
    if report is not None and not as_json:
        console.print(f"gamma * GFLOPs: {report['gamma_p_mean']:.4g} +- {report['gamma_p_std']:.3g} against a loss "
                      f"spread (std) of {report['loss_std']:.3g}: ratio {report['gamma_p_over_loss_std']:.3g} "
                      "(near 0: FLOPs cannot change the ranking; raise --gamma to trade quality for FLOPs)",
                      highlight=False)  # fmt: skip


__all__ = ["default_layers", "parse_widths", "unet_ga"]

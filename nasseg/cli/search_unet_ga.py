"""``nasseg search unet-ga``: the U-Net translator GA (seed 002) on a segmentation or paired folder."""

from __future__ import annotations

from typing import Annotated

import typer

from nasseg.cli.search_options import (
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
    PrintConfigOption,
    RayOption,
    ResumeOption,
    SecondsOption,
    SeedOption,
    SizeOption,
    StepsOption,
    ValImagesOption,
    WorkersOption,
)
from nasseg.cli.search_run import run_config, search_app
from nasseg.searchers.configs import UNetGAConfig
from nasseg.searchers.latency import DEFAULT_WEIGHT


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
        typer.Option(
            "--min-steps",
            min=1,
            help="Optimiser steps per candidate at least (default: 100 for "
            "segmentation, where a shorter training ranks nets poorly; 20 for translation).",
        ),
    ] = None,
    max_seconds: SecondsOption = None,
    workers: WorkersOption = None,
    ray: RayOption = None,
    resume: ResumeOption = None,
    out: OutOption = None,
    seed: SeedOption = 0,
    device: DeviceOption = "cpu",
    as_json: JsonOption = False,
    print_config: PrintConfigOption = False,
    latency_table: LatencyTableOption = None,
    latency_target: LatencyTargetOption = None,
    latency_weight: LatencyWeightOption = DEFAULT_WEIGHT,
    latency_size: LatencySizeOption = "256x256",
) -> None:
    """Evolve U-Net encoder widths and skip connections (GA of seed 002; resume with --resume RUN)."""
    run_config(UNetGAConfig.from_options(locals()), out, resume, as_json, print_config)


__all__ = ["unet_ga"]

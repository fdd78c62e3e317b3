"""``nasseg search renas``: RENAS (seed 001), evolution with a reinforced mutation controller."""

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
from nasseg.searchers.configs import RenasConfig
from nasseg.searchers.latency import DEFAULT_WEIGHT


@search_app.command("renas")
def renas(
    data: DataOption,
    task: Annotated[
        str,
        typer.Option(
            help="segmentation (DeepLabv3/ASPP head) or classification (proxy: 'has a defect' labels from the masks)."
        ),
    ] = "segmentation",  # fmt: skip
    population: Annotated[int, typer.Option("--population", "-P", min=2, help="Population size P.")] = 20,
    sample: Annotated[
        int | None, typer.Option("--sample", "-S", min=2, help="Tournament size S (default P/4).")
    ] = None,
    steps: Annotated[int, typer.Option("--steps", "-E", min=0, help="Evolution steps E (one child each).")] = 20,
    mutation: Annotated[
        str,
        typer.Option(help="controller (RENAS), random (plain EA) or sample (random sampling): the paper's ablation."),
    ] = "controller",  # fmt: skip
    children: Annotated[int, typer.Option(min=1, help="Tournaments (children) per step; >1 feeds --workers.")] = 1,
    inherit: Annotated[
        bool,
        typer.Option("--inherit/--no-inherit", help="Parameter inheritance (off: every child trains from scratch)."),
    ] = True,  # fmt: skip
    finetune_epochs: Annotated[int, typer.Option(min=1, help="Fine-tuning passes of an inheriting child.")] = 1,
    final_epochs: Annotated[
        int,
        typer.Option(
            min=0, help="Retrain the final population from scratch for this many epochs on all images; 0 skips it."
        ),
    ] = 5,  # fmt: skip
    blocks: Annotated[int, typer.Option(min=1, help="Blocks per cell #B.")] = 5,
    cells: Annotated[int, typer.Option(min=1, help="Cells between reductions #N.")] = 2,
    filters: Annotated[int, typer.Option(min=2, help="Filters of the first cell #F.")] = 24,
    aspp_channels: Annotated[int, typer.Option(min=1, help="ASPP branch width (DeepLabv3: 256).")] = 256,
    output_stride: Annotated[
        int | None, typer.Option(help="ASPP output stride 8 or 16 (default: 16 where features stay >= 8x8, else 8).")
    ] = None,
    bn_recalibration: Annotated[
        int, typer.Option(min=0, help="Re-estimate BatchNorm statistics on N training batches before scoring.")
    ] = 8,
    entropy_weight: Annotated[
        float, typer.Option(min=0, help="Controller entropy bonus in the reward (paper 0.1).")
    ] = 0.01,
    fitness: Annotated[
        str | None,
        typer.Option(
            help="Validation metric maximised (default: iou; classification: "
            "balanced_accuracy; soft_dice for tiny fidelities)."
        ),
    ] = None,  # fmt: skip
    evaluations: Annotated[int | None, typer.Option("--evaluations", min=1, help="Stop after N evaluations.")] = None,
    epochs: EpochsOption = 1,
    image_size: SizeOption = 64,
    batch_size: Annotated[int, typer.Option(min=2, help="Training batch size per candidate.")] = 4,
    lr: Annotated[
        float, typer.Option(min=0, help="Learning rate of inherited (and from-scratch) parameters; new ones get 10x.")
    ] = 1e-3,  # fmt: skip
    max_images: ImagesOption = None,
    max_val_images: ValImagesOption = None,
    max_steps: StepsOption = None,
    min_steps: Annotated[
        int | None,
        typer.Option(
            "--min-steps",
            min=1,
            help="Optimiser steps per child at least (default: 200 for segmentation, "
            "where fewer rank cells poorly (search_fidelity.json: Spearman 0.83 at 200); 20 otherwise).",
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
    """Evolve a RENAS cell (tournament selection, reinforced mutation, parameter inheritance; --resume RUN)."""
    run_config(RenasConfig.from_options(locals()), out, resume, as_json, print_config)


__all__ = ["renas"]

"""``nasseg search iac``: Implantable Adaptive Cells on a frozen, pre-trained U-Net (seed 004)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from nasseg.cli.search_options import (
    DataOption,
    DeviceOption,
    ImagesOption,
    JsonOption,
    LatencySizeOption,
    LatencyTableOption,
    LatencyTargetOption,
    LatencyWeightOption,
    MinStepsOption,
    OutOption,
    PrintConfigOption,
    ResumeOption,
    SecondsOption,
    SeedOption,
    SizeOption,
    StepsOption,
    ValImagesOption,
)
from nasseg.cli.search_run import run_config, search_app
from nasseg.searchers.configs import IacSearchConfig
from nasseg.searchers.latency import DEFAULT_WEIGHT


@search_app.command("iac")
def search_iac(
    data: DataOption,
    base: Annotated[str, typer.Option(help="Base U-Net: an iac-base-* model name or base genotype .json.")] = (
        "iac-base-unet-small"
    ),
    from_stage: Annotated[int, typer.Option(min=1, max=2, help="1: train the base; 2: load it (--base-weights).")] = 1,
    base_weights: Annotated[Path | None, typer.Option(help="Trained base weights (.safetensors) for stage 2.")] = None,
    out: OutOption = None,
    resume: ResumeOption = None,
    seed: SeedOption = 0,
    device: DeviceOption = "cpu",
    max_seconds: SecondsOption = None,
    image_size: SizeOption = 128,
    max_images: ImagesOption = None,
    max_val_images: ValImagesOption = None,
    max_steps: StepsOption = None,
    base_epochs: Annotated[int, typer.Option(min=1, help="Stage I epochs (paper 200).")] = 200,
    warmup_epochs: Annotated[int, typer.Option(min=0, help="Stage II cell-weights-only epochs (paper 15).")] = 15,
    search_epochs: Annotated[int, typer.Option(min=1, help="Stage II search epochs after warm-up (paper 200).")] = 200,
    cell_epochs: Annotated[int, typer.Option(min=1, help="Stage III epochs (paper 200).")] = 200,
    batch_size: Annotated[int, typer.Option(min=2, help="Batch size (paper 128 on a GPU).")] = 16,
    cell_channels: Annotated[int, typer.Option(min=1, help="Channels inside each cell.")] = 16,
    partial_channels: Annotated[
        int, typer.Option("-K", "--partial-channels", min=1, help="1/K of the channels go through the mixed ops.")
    ] = 4,
    record_epochs: Annotated[str, typer.Option(help="Stage II epochs whose genotype is saved.")] = "25,50,100,150,200",
    select_epoch: Annotated[
        int | None, typer.Option(min=1, help="Stage II epoch whose cell stage III trains (default: the last).")
    ] = None,
    max_skip: Annotated[int | None, typer.Option(min=0, help="Cap skip_connect edges in the derived cell.")] = None,
    implant: Annotated[
        str, typer.Option(help="residual (skip + zero-initialised cell: starts at the base) or replace (the paper).")
    ] = "residual",
    keep_base: Annotated[
        bool, typer.Option("--keep-base/--no-keep-base", help="Fall back to the base when it is better on val.")
    ] = True,
    cell_lr: Annotated[
        float, typer.Option(min=0, help="Stage III learning rate (set by benchmarks/iac_stage3.py).")
    ] = 3e-3,
    cell_flips: Annotated[bool, typer.Option(help="Random flips in stage III (the paper: none).")] = True,
    min_steps: MinStepsOption = 20,
    random_cell: Annotated[
        bool, typer.Option("--random", help="Random counterpart: no stage II, a random cell through stage III.")
    ] = False,
    as_json: JsonOption = False,
    print_config: PrintConfigOption = False,
    latency_table: LatencyTableOption = None,
    latency_target: LatencyTargetOption = None,
    latency_weight: LatencyWeightOption = DEFAULT_WEIGHT,
    latency_size: LatencySizeOption = "256x256",
) -> None:
    """Run IAC stages I-III: base U-Net, cell search on the frozen base, cell training; report vs the base."""
    run_config(IacSearchConfig.from_options(locals()), out, resume, as_json, print_config)

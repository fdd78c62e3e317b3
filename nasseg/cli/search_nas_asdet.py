"""``nasseg search nas-asdet``: progressive differentiable search with deep supervision (seed 003)."""

from __future__ import annotations

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
from nasseg.searchers.configs import NasAsdetSearchConfig
from nasseg.searchers.latency import DEFAULT_WEIGHT


@search_app.command("nas-asdet")
def search_nas_asdet(
    data: DataOption,
    out: OutOption = None,
    resume: ResumeOption = None,
    seed: SeedOption = 0,
    device: DeviceOption = "cpu",
    max_seconds: SecondsOption = None,
    image_size: SizeOption = 128,
    max_images: ImagesOption = None,
    max_val_images: ValImagesOption = None,
    max_steps: StepsOption = None,
    epochs_per_stage: Annotated[int, typer.Option(min=1, help="Supernet epochs per stage (paper 70).")] = 70,
    warmup_epochs: Annotated[int, typer.Option(min=0, help="Weights-only epochs at each stage start (paper 20).")] = 20,
    keep: Annotated[str, typer.Option(help="Ops kept per edge after each stage (paper 7,4,2,1).")] = "7,4,2,1",
    batch_size: Annotated[int, typer.Option(min=2, help="Batch size (paper 4).")] = 4,
    init_channels: Annotated[int, typer.Option(min=1, help="Channels of the first cells.")] = 16,
    stem_multiplier: Annotated[int, typer.Option(min=1, help="Stem width = this x init channels.")] = 3,
    max_skip: Annotated[int | None, typer.Option(min=0, help="Cap skip_connect edges per derived cell.")] = None,
    min_steps: MinStepsOption = 20,
    derive_weights: Annotated[
        str, typer.Option(help="Rank edges by op weights over all ops (eq. 14: all) or the survivors (active).")
    ] = "all",
    as_json: JsonOption = False,
    print_config: PrintConfigOption = False,
    latency_table: LatencyTableOption = None,
    latency_target: LatencyTargetOption = None,
    latency_weight: LatencyWeightOption = DEFAULT_WEIGHT,
    latency_size: LatencySizeOption = "256x256",
) -> None:
    """Search NAS-ASDet cells (11 ops, 4 normal + 4 reduction cells, fusion head) on a dataset folder."""
    run_config(NasAsdetSearchConfig.from_options(locals()), out, resume, as_json, print_config)

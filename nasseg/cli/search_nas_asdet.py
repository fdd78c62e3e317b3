"""``nasseg search nas-asdet``: progressive differentiable search with deep supervision (seed 003)."""

from __future__ import annotations

from typing import Annotated

import typer

from nasseg.cli import console
from nasseg.cli.search import (
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
    ResumeOption,
    SecondsOption,
    SeedOption,
    SizeOption,
    StepsOption,
    ValImagesOption,
    common_searcher,
    latency_objective,
    run_directory,
    run_search,
    search_app,
)
from searchers import Budget
from searchers.latency import DEFAULT_WEIGHT
from searchers.nas_asdet import NasAsdetConfig, NasAsdetStrategy


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
    latency_table: LatencyTableOption = None,
    latency_target: LatencyTargetOption = None,
    latency_weight: LatencyWeightOption = DEFAULT_WEIGHT,
    latency_size: LatencySizeOption = "256x256",
) -> None:
    """Search NAS-ASDet cells (11 ops, 4 normal + 4 reduction cells, fusion head) on a dataset folder."""
    config = NasAsdetConfig(keep=tuple(int(k) for k in keep.split(",")), epochs_per_stage=epochs_per_stage,
                            warmup_epochs=warmup_epochs, batch_size=batch_size, image_size=(image_size, image_size),
                            init_channels=init_channels, stem_multiplier=stem_multiplier,
                            max_steps_per_epoch=max_steps, max_images=max_images, max_val_images=max_val_images,
                            max_skip=max_skip, min_steps_per_epoch=min_steps,
                            derive_weights=derive_weights)  # fmt: skip
    run_dir, resuming = run_directory("nas-asdet", out, resume)
    strategy = NasAsdetStrategy(data, config, seed=seed, device=device)
    budget = Budget(steps=config.total_epochs, seconds=max_seconds)
    latency = latency_objective(latency_table, latency_target, latency_weight, latency_size)
    searcher = common_searcher(strategy, None, budget, run_dir, seed, data, latency=latency)
    result = run_search(searcher, resuming, "nas-asdet", as_json)
    if result.best is not None and not as_json:
        skips = result.best.extra.get("skip_connects", {})
        console.print(f"skip connections in the derived cells: {skips}; arch-weight heat maps in "
                      f"{result.run_dir / 'plots'}", highlight=False)  # fmt: skip

"""``nasseg search iac``: Implantable Adaptive Cells on a frozen, pre-trained U-Net (seed 004)."""

from __future__ import annotations

from pathlib import Path
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
from searchers.iac import IacConfig, IacStrategy
from searchers.latency import DEFAULT_WEIGHT


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
    latency_table: LatencyTableOption = None,
    latency_target: LatencyTargetOption = None,
    latency_weight: LatencyWeightOption = DEFAULT_WEIGHT,
    latency_size: LatencySizeOption = "256x256",
) -> None:
    """Run IAC stages I-III: base U-Net, cell search on the frozen base, cell training; report vs the base."""
    config = IacConfig(base=base, from_stage=from_stage, base_weights=str(base_weights) if base_weights else None,
                       base_epochs=base_epochs, warmup_epochs=warmup_epochs, search_epochs=search_epochs,
                       cell_epochs=cell_epochs, batch_size=batch_size, image_size=(image_size, image_size),
                       cell_channels=cell_channels, partial_channels=partial_channels,
                       record_epochs=tuple(int(e) for e in record_epochs.split(",") if e.strip()),
                       select_epoch=select_epoch, max_steps_per_epoch=max_steps, max_images=max_images,
                       max_val_images=max_val_images, max_skip=max_skip, implant=implant, keep_base=keep_base,
                       cell_lr=cell_lr, cell_flips=cell_flips, min_steps_per_epoch=min_steps,
                       random_cell=random_cell)  # fmt: skip
    run_dir, resuming = run_directory("iac", out, resume)
    strategy = IacStrategy(data, config, seed=seed, device=device)
    budget = Budget(steps=config.total_steps, seconds=max_seconds)
    latency = latency_objective(latency_table, latency_target, latency_weight, latency_size)
    searcher = common_searcher(strategy, None, budget, run_dir, seed, data, latency=latency)
    result = run_search(searcher, resuming, "iac", as_json)
    implant = next((r for r in result.history if r.key == "implant"), None)
    if implant is not None and not as_json:
        base_iou = implant.extra["base"].get("iou", float("nan"))
        console.print(f"stage III implant (cell of epoch {implant.extra['selected_epoch']}, "
                      f"{implant.extra['skip_connects']['cell']} skip connections): val IoU "
                      f"{implant.metrics.get('iou', float('nan')):.4f} vs base {base_iou:.4f}"
                      + (" (the base was better on val: the implant is reset to it)" if implant.extra["kept_base"]
                         else ""),
                      highlight=False)  # fmt: skip

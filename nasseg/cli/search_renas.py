"""``nasseg search renas``: RENAS (seed 001), evolution with a reinforced mutation controller."""

from __future__ import annotations

from typing import Annotated

import typer

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
from searchers import Budget, SearchError
from searchers.evaluators import search_task
from searchers.latency import DEFAULT_WEIGHT
from searchers.renas import RenasEvaluator, RenasSpace, RenasStrategy

#: steps per child below which a short training ranks RENAS cells poorly (search_fidelity.json)
SEGMENTATION_MIN_STEPS = 200


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
        typer.Option("--min-steps", min=1, help="Optimiser steps per child at least (default: 200 for segmentation, "
                     "where fewer rank cells poorly (search_fidelity.json: Spearman 0.83 at 200); 20 otherwise)."),
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
    """Evolve a RENAS cell (tournament selection, reinforced mutation, parameter inheritance; --resume RUN)."""
    if task not in ("segmentation", "classification"):
        raise SearchError(f"--task {task!r}: choose segmentation or classification")
    if not data.is_dir():
        raise SearchError(f"--data {data}: no such dataset folder")
    size = (image_size, image_size)
    if task == "segmentation":
        if image_size % 16:
            raise SearchError(
                f"--image-size {image_size}: the DeepLabv3 net has output stride 16; give a multiple of 16"
            )
        genotype_task = search_task(data, size)
    else:
        genotype_task = {"kind": "classification", "num_classes": 2, "input_size": list(size)}
    if min_steps is None:
        min_steps = SEGMENTATION_MIN_STEPS if task == "segmentation" else 20
    fidelity = fidelity_from(epochs, image_size, batch_size, max_images, max_val_images, max_steps, lr, min_steps)
    final = fidelity_from(max(final_epochs, 1), image_size, batch_size, lr=lr)
    space = RenasSpace(genotype_task, blocks=blocks, cells=cells, init_channels=filters, aspp_channels=aspp_channels,
                       output_stride=output_stride)  # fmt: skip
    strategy = RenasStrategy(space, population=population, sample_size=sample, steps=steps, mutation=mutation,  # type: ignore[arg-type]
                             children=children, finetune_epochs=finetune_epochs, inherit=inherit,
                             final=final_epochs > 0, seed=seed, metric=fitness,
                             controller={"entropy_weight": entropy_weight})  # fmt: skip
    evaluator = RenasEvaluator(data, fidelity, device=device, task=task, final_fidelity=final,
                               bn_recalibration=bn_recalibration)  # fmt: skip
    budget = Budget(steps=1 + steps + (1 if final_epochs > 0 else 0), evaluations=evaluations, seconds=max_seconds)
    run_dir, resuming = run_directory("renas", out, resume)
    latency = latency_objective(latency_table, latency_target, latency_weight, latency_size)
    searcher = common_searcher(strategy, evaluator, budget, run_dir, seed, data, workers, ray,
                               config={"task": task},
                               latency=latency)  # fmt: skip
    run_search(searcher, resuming, f"renas ({mutation})", as_json)


__all__ = ["renas"]

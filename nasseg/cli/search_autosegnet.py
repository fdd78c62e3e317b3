"""``nasseg search autosegnet``: AutoSegNet (seed 000), LSTM controller + REINFORCE on ENAS shared weights."""

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
from nasseg.searchers.configs import AutoSegNetSearchConfig
from nasseg.searchers.latency import DEFAULT_WEIGHT


@search_app.command("autosegnet")
def autosegnet(
    data: DataOption,
    cells_per_layer: Annotated[int, typer.Option(min=1, help="Cells per searched layer (paper: 3).")] = 3,
    ops_per_cell: Annotated[int, typer.Option(min=1, help="Ops per cell (paper: 2).")] = 2,
    epochs_max: Annotated[int, typer.Option("--epochs-max", min=1, help="MAX_EPOCH of the stop rule.")] = 200,
    target_iou: Annotated[
        float | None, typer.Option(min=0, max=1, help="Stop once the derived child's val IoU reaches this.")
    ] = None,
    target_loss: Annotated[
        float | None, typer.Option(min=0, help="Stop once the shared weights' training loss falls to this.")
    ] = None,
    controller: Annotated[str, typer.Option(help="lstm (the paper's) or uniform (random sampling).")] = "lstm",
    controller_steps: Annotated[int, typer.Option(min=0, help="REINFORCE updates per epoch.")] = 20,
    controller_lr: Annotated[float, typer.Option(min=0, help="Adam lr of the controller.")] = 5e-4,
    entropy_weight: Annotated[float, typer.Option(min=0, help="Entropy bonus of the controller loss.")] = 1e-4,
    baseline_decay: Annotated[float, typer.Option(min=0, max=1, help="Moving-average baseline decay.")] = 0.99,
    derive_samples: Annotated[int, typer.Option(min=1, help="Children sampled to derive the answer.")] = 8,
    rerank_top: Annotated[
        int,
        typer.Option(
            min=0,
            help="At the end, train the best N derived children alone; the best on val is "
            "the answer (0: the paper's, the controller's child as it is).",
        ),
    ] = 4,
    rerank_steps: Annotated[int, typer.Option(min=1, help="Adam steps of each reranked child.")] = 100,
    reward_images: Annotated[
        int | None, typer.Option(min=1, help="Validation images per reward (default: all of --max-val-images).")
    ] = None,
    lr: Annotated[float, typer.Option(min=0, help="SGD lr of the shared weights (paper: 0.5).")] = 0.5,
    loss: Annotated[
        str | None, typer.Option(help="Shared-weight loss (default: cross-entropy, bce for one-channel nets).")
    ] = None,
    clip: Annotated[float, typer.Option("--clip", min=0, help="Gradient-norm clip of the shared weights.")] = 0.5,
    stem_channels: Annotated[int, typer.Option(min=1, help="Stem width (widths double per level).")] = 32,
    min_size: Annotated[int, typer.Option(min=1, help="Minimum downsampled side (paper: 16).")] = 16,
    min_ratio: Annotated[float, typer.Option(min=0, max=1, help="Maximum downsampling ratio (paper: 1/32).")] = 1 / 32,
    in_channels: Annotated[int, typer.Option(min=1, help="Input channels of the searched net.")] = 3,
    image_size: SizeOption = 64,
    batch_size: Annotated[int, typer.Option(min=2, help="Minibatch of the shared weights.")] = 8,
    max_images: ImagesOption = None,
    max_val_images: ValImagesOption = None,
    max_steps: StepsOption = None,
    max_seconds: SecondsOption = None,
    out: OutOption = None,
    resume: ResumeOption = None,
    seed: SeedOption = 0,
    device: DeviceOption = "cpu",
    reward: Annotated[
        str, typer.Option(help="Controller reward: soft_iou (default), soft_dice or iou (the paper's, thresholded).")
    ] = "soft_iou",
    warmup_epochs: Annotated[
        int, typer.Option(min=0, help="First epochs train the shared weights on uniform children, no controller.")
    ] = 10,
    min_steps: MinStepsOption = 20,
    as_json: JsonOption = False,
    print_config: PrintConfigOption = False,
    latency_table: LatencyTableOption = None,
    latency_target: LatencyTargetOption = None,
    latency_weight: LatencyWeightOption = DEFAULT_WEIGHT,
    latency_size: LatencySizeOption = "256x256",
) -> None:
    """Search an AutoSegNet (down/bridge/up layer cells and long skips) on a dataset folder.

    The depth follows from --image-size (min size 16, ratio 1/32, an HDC layer instead of the last
    downsampling); train the result at another size with `nasseg train RUN/best.json --crop H W`.
    """
    run_config(AutoSegNetSearchConfig.from_options(locals()), out, resume, as_json, print_config)

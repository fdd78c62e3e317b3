"""What budget per candidate does a search need before its fitness ranks nets as training does?
-> ``results/search_fidelity.json``.

Issue 14 asks, for each searcher that did not beat random sampling, what scale the measurements say
it needs. A search can only beat random sampling if its fitness ranks candidates the way the final
training ranks them, and only by as much as the architectures of its space differ once trained.
Both are measured here, on the spaces and data of ``search_quality.py``'s CPU scale:

- ``--archs`` random architectures of each space (the U-Net GA's, RENAS' cells, NAS-ASDet's cells)
  are each trained from scratch by search quality's one recipe (Adam 3e-3, 16 x 25 steps, batch 8,
  64 px) with ``--seeds`` seeds, recording the validation IoU after every epoch;
- **truth**: an architecture's test IoU at its val-chosen epoch, averaged over seeds;
- **fitness at budget b** (b = 25, 50, 100, 200, 400 steps): its validation IoU after b steps, one
  seed, as a search would see it;
- per budget: the Spearman correlation of fitness and truth (mean over seeds), and the ratio of the
  spread between architectures to the spread between seeds of one architecture (below 1: the
  fitness is mostly seed noise);
- the headroom: the best truth minus the mean truth (what picking the best of the sample gains over
  a random pick), against the seed spread.

AutoSegNet does not train its children: it ranks them by a **one-shot reward**, the soft IoU of
each child with the weights it shares with all others. Its space (on synth-membranes, as in search
quality) gets the same truth, and the fitness is that reward after ``e`` epochs of shared-weight
training with uniformly sampled children (the search's warm-up; e = 1, 2, 4, ... 64 epochs of 20
steps, past the 16 the search runs), one supernet per seed. ``--one-shot-only`` computes just
those supernets (run it beside a normal run to use both cores).

Resumable (``WORK/units.json``); about 25 minutes per space on one core. Spaces not run keep
their previous rows in the results.

Issue 29 asks where NAS-ASDet's and AutoSegNet's spaces have headroom, since both were flat on the
data first used: ``--data`` (synth-defects at medium difficulty, or synth-membranes) and ``--size``
measure a space elsewhere, in rows named ``SPACE@DATA-SIZEpx`` beside the default ones;
``--truth-only`` skips the one-shot supernets (headroom needs only the retrained truth).

    python benchmarks/search_fidelity.py [--archs 8] [--seeds 2] [--spaces unet-ga renas nas-asdet autosegnet]
    python benchmarks/search_fidelity.py --spaces nas-asdet --size 128 --archs 6
    python benchmarks/search_fidelity.py --spaces autosegnet --data synth-defects --truth-only
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import search_quality as sq  # noqa: E402

from nasseg import zoo  # noqa: E402
from nasseg.searchers.evaluators import search_task  # noqa: E402
from nasseg.zoo.data.folder import open_folder  # noqa: E402
from nasseg.zoo.genotype import Genotype  # noqa: E402
from nasseg.zoo.io import atomic_write_bytes  # noqa: E402
from nasseg.zoo.training.trainer import Trainer  # noqa: E402
from nasseg.zoo.versions import library_versions  # noqa: E402

RESULTS = sq.ROOT / "results" / "search_fidelity.json"
SPACES = ("unet-ga", "renas", "nas-asdet", "autosegnet")
DATA = {"autosegnet": "synth-membranes"}  # the other spaces: synth-defects, as search quality
BUDGET_EPOCHS = (1, 2, 4, 8, 16)
ONE_SHOT_EPOCHS = (1, 2, 4, 8, 16, 32, 64)  # of shared-weight training; the CPU-scale search runs 16


def sample(space: str, count: int, data: Path, s: dict[str, Any], size: int) -> list[Genotype]:
    """``count`` random architectures of ``space`` as search quality's CPU scale builds it."""
    rng = random.Random(f"fidelity:{space}")
    task = search_task(data, (size, size), 3)
    if space == "unet-ga":
        from nasseg.searchers.unet_ga import UNetSpace

        draw = UNetSpace(widths=s["widths"], layers=s["layers"], task=task).sample
    elif space == "autosegnet":
        from nasseg.searchers.autosegnet import AutoSegNetSpace

        draw = AutoSegNetSpace((size, size), 3, task["num_classes"], genotype_name="autosegnet-random").sample
    elif space == "renas":
        from nasseg.searchers.renas import RenasSpace

        draw = RenasSpace(task, blocks=s["blocks"], cells=2, init_channels=s["filters"], aspp_channels=32).sample
    else:
        from nasseg.searchers.differentiable import random_cell
        from nasseg.searchers.nas_asdet import NasAsdetConfig, supernet_genotype
        from nasseg.zoo.ops import NAS_ASDET_OPS

        config = NasAsdetConfig(image_size=(size, size), init_channels=s["init_channels"])

        def draw(r: random.Random) -> Genotype:
            cells = random_cell(NAS_ASDET_OPS, r, True), random_cell(NAS_ASDET_OPS, r, True)
            return supernet_genotype(task, config, *cells, name="nas-asdet-random")

    return [draw(rng) for _ in range(count)]


def train_curve(genotype: Genotype, data: Path, recipe: sq.Recipe, size: int, seed: int, workdir: Path) -> dict:
    """Val IoU after every epoch of the recipe, and the test IoU at the val-chosen epoch."""
    torch.manual_seed(seed)
    model = zoo.build_model(genotype)
    trainer = Trainer(model, open_folder(data), recipe.config(size, seed, "cpu"), workdir)
    fit = trainer.fit(resume=trainer.checkpoint_path.is_file())
    test = sq.scores(model, data, "test", "cpu")
    return {"val": [r["iou"] for r in fit.history], "test_iou": test["iou"], "best_epoch": fit.best_epoch}


def one_shot_rewards(genotypes: list[Genotype], data: Path, s: dict[str, Any], size: int, seed: int,
                     epochs: int) -> dict:  # fmt: skip
    """The one-shot reward (soft IoU with shared weights, on the search's val images) of every
    genotype after each of ``ONE_SHOT_EPOCHS`` up to ``epochs`` of uniform shared-weight training."""
    from nasseg.searchers.autosegnet import AutoSegNetConfig, AutoSegNetSpace, AutoSegNetStrategy

    task = search_task(data, (size, size), 3)
    space = AutoSegNetSpace((size, size), 3, task["num_classes"])
    config = AutoSegNetConfig(image_size=(size, size), batch_size=8, max_images=s["images"], max_val_images=s["val"],
                              max_steps_per_epoch=s["steps"], min_steps_per_epoch=s["steps"], controller="uniform",
                              epochs_max=epochs, warmup_epochs=epochs)  # fmt: skip
    strategy = AutoSegNetStrategy(data, space, config, seed=seed)
    actions = [space.actions(genotype) for genotype in genotypes]
    rewards, losses = [], []
    while strategy.epoch < epochs:
        losses.append(strategy.train_shared_epoch())
        if strategy.epoch in ONE_SHOT_EPOCHS:
            rewards.append([strategy.score(a)["reward"] for a in actions])
    return {"rewards": rewards, "shared_loss": losses}


def one_shot_units(units: sq.Units, genotypes: list[Genotype], data: Path, s: dict[str, Any], size: int, seeds: int,
                   epochs: int) -> list[dict[str, Any]]:  # fmt: skip
    """:func:`one_shot_rewards` for one supernet per seed, each a resumable unit."""
    return [units.once(f"autosegnet/one-shot/e{epochs}/s{seed}", lambda seed=seed: one_shot_rewards(
        genotypes, data, s, size, seed, epochs)) for seed in range(seeds)]  # fmt: skip


def spearman(a: list[float], b: list[float]) -> float:
    def ranks(values: list[float]) -> list[float]:
        order = sorted(range(len(values)), key=values.__getitem__)
        out = [0.0] * len(values)
        for rank, index in enumerate(order):
            out[index] = float(rank)
        return out

    ra, rb = ranks(a), ranks(b)
    if statistics.pstdev(ra) == 0 or statistics.pstdev(rb) == 0:
        return float("nan")
    return statistics.correlation(ra, rb)


def summarise(curves: list[list[dict]], steps: int, one_shot: list[dict] | None = None) -> dict[str, Any]:
    """``curves[arch][seed]``: per budget the rank correlation with the truth and the spread ratio
    (with ``one_shot``, one supernet per seed, the one-shot rewards are the fitness)."""
    truth = [statistics.fmean(run["test_iou"] for run in runs) for runs in curves]
    seed_spread = statistics.fmean(statistics.stdev(run["test_iou"] for run in runs) for runs in curves)
    budgets = []
    for index, epochs in enumerate(ONE_SHOT_EPOCHS if one_shot else BUDGET_EPOCHS):
        if one_shot is not None:
            if any(len(run["rewards"]) <= index for run in one_shot):
                continue
            per_seed = [run["rewards"][index] for run in one_shot]
            within = statistics.fmean(statistics.stdev(values) for values in zip(*per_seed, strict=True))
        elif any(len(run["val"]) < epochs for runs in curves for run in runs):
            continue
        else:
            per_seed = [[runs[s]["val"][epochs - 1] for runs in curves] for s in range(len(curves[0]))]
            within = statistics.fmean(statistics.stdev(runs[s]["val"][epochs - 1] for s in range(len(runs)))
                                      for runs in curves)  # fmt: skip
        between = statistics.fmean(statistics.stdev(values) for values in per_seed)
        budgets.append({"steps": epochs * steps, "spearman_with_truth": statistics.fmean(
            spearman(values, truth) for values in per_seed), "between_arch_std": between, "seed_std": within,
            "spread_ratio": between / within if within > 0 else float("inf"),
            # do two seeds' fitnesses rank alike? (high here but low with the truth: a bias, not noise)
            "spearman_between_seeds": spearman(per_seed[0], per_seed[1]) if len(per_seed) > 1 else None})  # fmt: skip
    return {"archs": len(curves), "seeds": len(curves[0]), "truth_mean": statistics.fmean(truth),
            "truth_best": max(truth), "headroom_best_minus_mean": max(truth) - statistics.fmean(truth),
            "truth_between_arch_std": statistics.stdev(truth), "truth_seed_std": seed_spread,
            "fitness": "one-shot reward after shared-weight training" if one_shot else "val IoU after a short training",
            "budgets": budgets}  # fmt: skip


def variant(space: str, data: str, size: int, scale_size: int) -> str:
    """A row's name: the space alone on its own data at the scale's size, else ``SPACE@DATA-SIZEpx``."""
    return space if (data, size) == (DATA.get(space, "synth-defects"), scale_size) else f"{space}@{data}-{size}px"


def prepare_data(work: Path, scale: dict[str, Any], names: set[str], size: int) -> dict[str, Path]:
    """The scale's data sets named, drawn at ``size`` (a folder per size other than the scale's)."""
    folder = work if size == scale["size"] else work / f"{size}px"
    return sq.prepare_data(folder, {**scale, "size": size, "data": {name: scale["data"][name] for name in names}})


def parse_shard(text: str) -> tuple[int, int]:
    """``I/N`` -> (I, N), 0 <= I < N: which share of a row's trainings this process runs."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard {text!r}: expected I/N, e.g. 0/2") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"--shard {text!r}: need 0 <= I < N")
    return index, count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--spaces", nargs="+", choices=SPACES, default=list(SPACES))
    parser.add_argument("--scale", choices=("tiny", "cpu"), default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--one-shot-epochs", type=int, default=ONE_SHOT_EPOCHS[-1])
    parser.add_argument("--one-shot-only", action="store_true", help="only the AutoSegNet supernets")
    parser.add_argument("--truth-only", action="store_true", help="AutoSegNet: the retrained truth, no supernets")
    parser.add_argument("--data", choices=("synth-defects", "synth-membranes"), default=None,
                        help="measure every space on this data set (default: each space's own)")  # fmt: skip
    parser.add_argument("--size", type=int, default=None, help="image size (default: the scale's)")
    parser.add_argument("--shard", type=parse_shard, default=(0, 1), metavar="I/N",
                        help="train only units I, I+N, ... of each row (run N processes, one per core), the "
                             "others' units read when done; the row is written once all are done")  # fmt: skip
    parser.add_argument("--work", default=None)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    scale = sq.SCALES[args.scale]
    size, recipe = args.size or scale["size"], scale["recipe"]
    work = Path(args.work or sq.ROOT / "work" / f"search_fidelity-{args.scale}")
    work.mkdir(parents=True, exist_ok=True)
    # units also kept in a committed copy (as search_quality does), so a cut-off run continues across sessions
    units = sq.Units(
        work / "units.json",
        RESULTS.parent / f"search_fidelity_units-{args.scale}.json" if args.work is None else None,
    )
    data_of = {space: args.data or DATA.get(space, "synth-defects") for space in args.spaces}
    datasets = prepare_data(work, scale, set(data_of.values()), size)
    start = time.perf_counter()
    output = Path(args.out)
    previous = json.loads(output.read_text()) if output.is_file() else {}
    report: dict[str, Any] = {"benchmark": "search_fidelity", "scale": args.scale, "data": "synth-defects",
                              "data_by_space": DATA, "image_size": scale["size"], "recipe": sq._jsonable(vars(recipe)),
                              "spaces": previous.get("spaces", {}) if previous.get("scale") == args.scale else {},
                              "search_budgets_steps": {"unet-ga": scale["unet-ga"]["steps"],
                                                       "renas": scale["renas"]["steps"],
                                                       "autosegnet_epochs": scale["autosegnet"]["epochs"],
                                                       "autosegnet_steps_per_epoch": scale["autosegnet"]["steps"]},
                              "library_versions": library_versions()}  # fmt: skip
    for space in args.spaces:
        row_name = variant(space, data_of[space], size, scale["size"])
        data = datasets[data_of[space]]
        curves, genotypes = [], sample(space, args.archs, data, scale[space], size)
        supernets = functools.partial(one_shot_units, units, genotypes, data, scale[space], size, args.seeds,
                                      args.one_shot_epochs)  # fmt: skip
        if args.one_shot_only:
            supernets()
            continue
        shard, shards = args.shard
        for index, genotype in enumerate(genotypes):
            folder = work / "train" / f"{row_name}-a{index}"
            runs = [
                units.once(
                    f"{row_name}/a{index}/s{seed}",
                    lambda g=genotype, seed=seed, f=folder, d=data: train_curve(
                        g, d, recipe, size, seed, f.with_name(f"{f.name}-s{seed}")
                    ),
                )
                if (index * args.seeds + seed) % shards == shard
                else None  # another shard's: read below, once this shard's trainings are done
                for seed in range(args.seeds)
            ]
            curves.append(runs)
        curves = [  # the other shards' units, as the shared units file has them now
            [run if run is not None else units.fresh(f"{row_name}/a{index}/s{seed}") for seed, run in enumerate(runs)]
            for index, runs in enumerate(curves)
        ]
        if any(run is None for runs in curves for run in runs):  # another shard's units still running
            print(f"{row_name}: shard {shard}/{shards} done; rerun without --shard once all shards finish")
            continue
        one_shot = supernets() if space == "autosegnet" and not args.truth_only else None
        row = summarise(curves, scale[space]["steps"] if one_shot else recipe.steps, one_shot)
        report["spaces"][row_name] = {**row, "data": data_of[space], "image_size": size}
        report["minutes_this_run"] = round((time.perf_counter() - start) / 60, 1)
        output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(output, (json.dumps(report, indent=1) + "\n").encode())
        print(f"{row_name}: headroom {row['headroom_best_minus_mean']:.4f} (seed std {row['truth_seed_std']:.4f}); "
              + ", ".join(f"{b['steps']} steps: rho {b['spearman_with_truth']:+.2f} ratio {b['spread_ratio']:.2f}"
                          for b in row["budgets"]))  # fmt: skip


if __name__ == "__main__":
    main()

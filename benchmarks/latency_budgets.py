"""The searched front against the tuned U-Net grid, per latency budget -> ``latency_budgets.json`` + leaderboard.

Issue 29, item 6. For each budget (ORT fp32, batch 1, 256x256, 2 threads on this box):

1. **Search** with the latency objective at that budget (the machine's table,
   ``results/latency_table.json``; MnasNet's soft constraint with weight ``--weight``) on the
   search-quality data (seed 0), at the searcher's CPU-scale fidelity of ``search_quality.py``.
2. **Train** the pick by the zoo recipe (``zoo_entries.zoo_recipe``) on the zoo data (seed 1, whose
   test split no search saw) with ``--seeds`` training seeds, as the grid's U-Nets are trained
   (``unet_grid.py``).
3. **Time** every pick and every grid net in one pass on quiet cores (``--latency``): the measured
   p50 decides what is "under the budget", never the prediction.

The row per budget: the best searched net under it (mean test IoU over the seeds) and the best grid
U-Net under it, the searcher's minutes, and the pick's predicted and measured latency (recorded
in the pick's ``best.json`` too). ``--leaderboard`` merges the rows and the grid into
``leaderboard.json`` (``"unet_grid"``, ``"latency_budgets"``). Resumable: every search, training
and timing is a unit in ``WORK/latency_budgets_units.json``.

    python benchmarks/latency_budgets.py --searchers unet-ga [--budgets 2 4 8 16 32]
    python benchmarks/latency_budgets.py --latency --leaderboard     # time everything, write the tables
    python benchmarks/latency_budgets.py --scale tiny --work /tmp/lb --out /tmp/lb.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import search_quality as sq  # noqa: E402
import unet_grid  # noqa: E402
import zoo_entries as ze  # noqa: E402

from nasseg import zoo  # noqa: E402
from nasseg.searchers.evaluators import search_task  # noqa: E402
from nasseg.searchers.latency import LatencyObjective  # noqa: E402
from nasseg.zoo.data.folder import open_folder  # noqa: E402
from nasseg.zoo.genotype import Genotype  # noqa: E402
from nasseg.zoo.io import atomic_write_bytes  # noqa: E402
from nasseg.zoo.training.trainer import Trainer  # noqa: E402
from nasseg.zoo.versions import library_versions  # noqa: E402

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "latency_budgets.json"
LEADERBOARD = ROOT / "results" / "leaderboard.json"
TABLE = ROOT / "results" / "latency_table.json"
BUDGETS = (2.0, 4.0, 8.0, 16.0, 32.0)
#: per searcher, what differs from its search-quality settings here: the latency target is the cost
#: constraint, so the GA's FLOPs term is off (gamma 0: at gamma 0.01 every loose budget got the same
#: 7.5 ms net), and it runs more generations (K 12, T 8: about 90 evaluations instead of 34)
SEARCH_OVERRIDES: dict[str, dict[str, Any]] = {"unet-ga": {"gamma": 0.0, "K": 12, "T": 8}}
#: searchers run here under another name: (the searcher, what differs from its settings above);
#: ``unet-ga-halving``: the GA over widths up to 128 (the search-quality space stops at 64, and every
#: grid U-Net that wins at 4-8 ms has a 128-wide level), then 2 rungs of successive halving (the
#: best third of its architectures retrained 3x longer, the best third of those 9x): at loose
#: budgets the plain GA picked the same ~4-5 ms net, the one that learns fastest in 100 steps
#: ``unet-ga-d0``: the GA without the decoder dropout (``unet-ga`` rows keep pix2pix's 0.5 on the 3
#: inner decoder layers, which the grid's U-Nets do not have; 0 is now the segmentation default);
#: ``unet-ga-d0-w128``: the same over widths up to 128, as the grid's 4-8 ms winners have;
#: ``unet-ga-d0-l4``: and 4 levels, as those winners (``unet-w16-l4`` is a point of that space)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "unet-ga-halving": ("unet-ga", {"halving": 2, "widths": (8, 16, 32, 64, 128)}),
    "unet-ga-d0": ("unet-ga", {"dropout": 0.0}),
    "unet-ga-d0-w128": ("unet-ga", {"dropout": 0.0, "widths": (8, 16, 32, 64, 128)}),
    "unet-ga-d0-l4": ("unet-ga", {"dropout": 0.0, "widths": (8, 16, 32, 64, 128), "layers": 4})}
SIZE_256 = (256, 256)
DATA = "synth-defects"  # the default data set (its units keep the first runs' unprefixed ids)
DATASETS = ("synth-defects", "synth-membranes")


def key(args: argparse.Namespace, *parts: Any) -> str:
    """A unit's id, ``searcher/budget/what``; prefixed ``DATA:`` on a data set other than the default."""
    return data_key(args.data, *parts)


def data_key(data: str, *parts: Any) -> str:
    """:func:`key` for data set ``data`` (``zoo_entries`` reads this benchmark's units by it)."""
    name = "/".join(str(part) for part in parts)
    return name if data == DATA else f"{data}:{name}"


def run_name(args: argparse.Namespace, name: str) -> str:
    """A run or training folder's name, prefixed with the data set as :func:`key` is."""
    return name if args.data == DATA else f"{args.data}-{name}"


def search_pick(searcher: str, budget: float, args: argparse.Namespace, work: Path, units: sq.Units) -> dict:
    """One latency-targeted search (seed 0) at the searcher's CPU-scale settings."""
    scale = sq.SCALES[args.scale]
    data = sq.prepare_data(work / "search", scale)[args.data]  # every searcher on the data the grid is scored on
    objective = LatencyObjective.from_options(args.table, budget, args.weight, SIZE_256)
    base, variant = VARIANTS.get(searcher, (searcher, {}))
    settings = {**scale[base], **SEARCH_OVERRIDES.get(base, {}), **variant, "latency": objective}
    run_dir = work / "runs" / run_name(args, f"{searcher}-{budget:g}ms")
    start = time.perf_counter()
    found = sq.SEARCH[base]("search", 0, data, run_dir, settings, scale["size"], args.device, units)
    prediction = objective.table.predict(Genotype.from_dict(found["genotype"]), SIZE_256)
    return {**found, "predicted_ms": prediction.predicted_ms, "estimated_share": prediction.estimated_share,
            "search_minutes": round((time.perf_counter() - start) / 60, 2), "run_dir": str(run_dir)}  # fmt: skip


def train_pick(pick: dict, data: Path, scale: dict[str, Any], seed: int, device: str, workdir: Path) -> dict:
    """The pick trained by the zoo recipe at the zoo size, as the grid's nets are."""
    size = scale["size"]
    genotype = Genotype.from_dict(pick["genotype"])
    genotype = genotype.replace(task={**genotype.task.model_dump(), **search_task(data, (size, size))})
    torch.manual_seed(seed)
    model = zoo.build_model(genotype)
    trainer = Trainer(model, open_folder(data), ze.zoo_recipe(scale["epochs"], scale["steps"], size, seed, device),
                      workdir)  # fmt: skip
    fit = trainer.fit(resume=trainer.checkpoint_path.is_file())
    test = sq.scores(model, data, "test", device)
    return {"val_iou": float(fit.best_metrics.get("iou", 0.0)), "test_iou": test["iou"], "test_dice": test["dice"]}


def measured_ms(genotype: Genotype) -> float:
    from nasseg.serving.latency_table import measure_genotype_ms

    return measure_genotype_ms(genotype, SIZE_256, threads=2, repeats=30)


def rows_for(units: sq.Units, args: argparse.Namespace, band: float) -> list[dict[str, Any]]:
    grid = unet_grid.summarise(units_grid(args), unet_grid.grid_names(), [args.data], [0, 1]).get(args.data, [])
    timed_grid = [(r, (units.get(key(args, "latency", "grid", r["name"])) or {}).get("ms")) for r in grid]
    searched = []  # every pick: one searched at a tighter budget is a searched net under a looser one too
    for budget in args.budgets:
        for searcher in searchers_run(units, args):
            pick = units.get(key(args, searcher, f"{budget:g}", "search"))
            trained = [units.get(key(args, searcher, f"{budget:g}", f"r{seed}")) for seed in args.seeds]
            ms = (units.get(key(args, "latency", searcher, f"{budget:g}")) or {}).get("ms")
            if pick and all(trained) and ms is not None:
                searched.append({"searcher": searcher, "target_ms": budget,
                                 "iou": statistics.fmean(t["test_iou"] for t in trained),
                                 "ious": [t["test_iou"] for t in trained], "measured_ms": ms,
                                 "predicted_ms": pick["predicted_ms"], "search_minutes": pick["search_minutes"],
                                 "channels": Genotype.from_dict(pick["genotype"]).arch.model_dump().get("channels")})
    board = json.loads(LEADERBOARD.read_text()) if LEADERBOARD.is_file() else {}
    shipped = []
    for r in board.get("rows", {}).values():
        if r.get("kind") != "searched" or r.get("data") != args.data:
            continue
        retrained = [units.get(key(args, "zoo", r["name"], f"r{seed}")) for seed in args.seeds]
        iou = statistics.fmean(t["test_iou"] for t in retrained) if all(retrained) else r["test_iou"]
        shipped.append((r["name"], iou, r["p50_ms"]["onnx-fp32@2t"], len(args.seeds) if all(retrained) else 1))
    rows = []
    for budget in args.budgets:
        zoo_under = [entry for entry in shipped if entry[2] <= budget]
        best_zoo = max(zoo_under, key=lambda entry: entry[1]) if zoo_under else None
        under = [s for s in searched if s["measured_ms"] <= budget]
        grid_under = [(r, ms) for r, ms in timed_grid if ms is not None and ms <= budget]
        best_s = max(under, key=lambda s: s["iou"]) if under else None
        best_u = max(grid_under, key=lambda rm: rm[0]["test_iou_mean"]) if grid_under else None
        rows.append({
            "budget_ms": budget,
            "best_searched": f"{best_s['searcher']}@{best_s['target_ms']:g}ms" if best_s else None,
            "best_searched_iou": best_s["iou"] if best_s else None,
            "best_searched_ms": best_s["measured_ms"] if best_s else None,
            "best_unet": best_u[0]["name"] if best_u else None,
            "best_unet_iou": best_u[0]["test_iou_mean"] if best_u else None,
            "best_unet_ms": best_u[1] if best_u else None,
            "search_minutes": best_s["search_minutes"] if best_s else None,
            "searched_wins": bool(best_s and (not best_u or best_s["iou"] > best_u[0]["test_iou_mean"])),
            # yes / tie / no: searched (pick or shipped entry) minus grid, a tie within the grid's seed spread
            "verdict": verdict(max(best_s["iou"] if best_s else 0.0, best_zoo[1] if best_zoo else 0.0)
                               - (best_u[0]["test_iou_mean"] if best_u else 0.0), band),
            # the shipped searched zoo entries (same recipe and data as the grid; retrained here with the
            # seeds where --zoo-entries named them, else their one shipped seed; p50 from leaderboard.json)
            "best_zoo_searched": best_zoo[0] if best_zoo else None,
            "best_zoo_searched_seeds": best_zoo[3] if best_zoo else None,
            "best_zoo_searched_iou": best_zoo[1] if best_zoo else None,
            "best_zoo_searched_ms": best_zoo[2] if best_zoo else None,
            "picks": [s for s in searched if s["target_ms"] == budget],
        })  # fmt: skip
    return rows


def tie_band(args: argparse.Namespace) -> float:
    """The median spread (std over 2 training seeds) of the grid's U-Nets on this data: a searched
    net within it of the best grid U-Net is a tie, not a win (the mean of 2 seeds moves that much)."""
    grid = unet_grid.summarise(units_grid(args), unet_grid.grid_names(), [args.data], [0, 1]).get(args.data, [])
    spreads = [r["test_iou_std"] for r in grid if r.get("test_iou_std") is not None]
    return statistics.median(spreads) if spreads else 0.0


def searchers_run(units: sq.Units, args: argparse.Namespace) -> list[str]:
    """Every searcher with a search on ``args.data`` in this work folder (a run of one searcher keeps
    the others' rows)."""
    return [name for name in [*sq.SEARCH, *VARIANTS] if any(k.startswith(key(args, name, "")) for k in units.data)]


def units_grid(args: argparse.Namespace) -> sq.Units:
    return sq.Units(work_dir(args) / "unet_grid_units.json")


def work_dir(args: argparse.Namespace) -> Path:
    return Path(args.work or ROOT / "work" / f"zoo-{args.scale}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    scale = ze.SCALES[args.scale]
    work = work_dir(args)
    torch.set_num_threads(args.threads)
    units = sq.Units(work / "latency_budgets_units.json")
    data = ze.prepare_zoo_data(work, scale, {args.data})[args.data]
    for searcher in args.searchers:
        for budget in args.budgets:
            pick = units.once(key(args, searcher, f"{budget:g}", "search"), lambda s=searcher, b=budget: search_pick(
                s, b, args, work, units))  # fmt: skip
            for seed in args.seeds:
                workdir = work / "latency_budgets" / run_name(args, f"{searcher}-{budget:g}ms-s{seed}")
                units.once(key(args, searcher, f"{budget:g}", f"r{seed}"), lambda p=pick, s=seed, w=workdir:
                           train_pick(p, data, scale, s, args.device, w))  # fmt: skip
            write(units, args)
    for name in args.zoo_entries:  # shipped searched entries retrained here by the same recipe, per seed
        genotype = zoo.get_genotype(name)
        if genotype.family == "iac-unet":
            raise SystemExit(f"{name}: an IAC entry trains base and implant in turn (zoo_entries.py); not here")
        for seed in args.seeds:
            workdir = work / "latency_budgets" / run_name(args, f"zoo-{name}-s{seed}")
            units.once(key(args, "zoo", name, f"r{seed}"), lambda g=genotype, s=seed, w=workdir: train_pick(
                {"genotype": g.to_dict()}, data, scale, s, args.device, w))  # fmt: skip
        write(units, args)
    if args.latency:  # one pass on quiet cores: picks and grid nets
        torch.set_num_threads(2)
        for searcher in args.searchers:
            for budget in args.budgets:
                pick = units.get(key(args, searcher, f"{budget:g}", "search"))
                if pick:
                    units.once(key(args, "latency", searcher, f"{budget:g}"),
                               lambda p=pick: {"ms": measured_ms(Genotype.from_dict(p["genotype"]))})  # fmt: skip
        for name in unet_grid.grid_names():
            genotype = unet_grid.grid_genotype(name, data, scale["size"])
            units.once(key(args, "latency", "grid", name), lambda g=genotype: {"ms": measured_ms(g)})
    return write(units, args)


def write(units: sq.Units, args: argparse.Namespace) -> dict[str, Any]:
    band = tie_band(args)  # a margin within it of the best grid U-Net is a tie
    report = {"benchmark": "latency_budgets", "scale": args.scale, "data": args.data, "seeds": args.seeds,
              "searchers": searchers_run(units, args), "weight": args.weight, "table": Path(args.table).name,
              "latency": "measured: ORT fp32 raw graph, batch 1, 256x256, 2 threads, p50 of 30",
              "rows": rows_for(units, args, band), "tie_band": band,
              "library_versions": library_versions()}  # fmt: skip
    out = Path(args.out or (RESULTS if args.data == DATA else RESULTS.with_name(f"latency_budgets-{args.data}.json")))
    atomic_write_bytes(out, (json.dumps(report, indent=1, sort_keys=True) + "\n").encode())
    if args.leaderboard:  # the leaderboard beside the results file (benchmarks/results/ unless --out says)
        merge_leaderboard(report, units, args, out.with_name(LEADERBOARD.name))
    return report


def merge_leaderboard(report: dict[str, Any], units: sq.Units, args: argparse.Namespace, path: Path) -> None:
    """``leaderboard.json`` at ``path``: ``"unet_grid"`` (one row per grid net) and ``"latency_budgets"``,
    per data set."""
    board = json.loads(path.read_text()) if path.is_file() else {}
    grid = unet_grid.summarise(units_grid(args), unet_grid.grid_names(), [args.data], [0, 1])
    board["unet_grid"] = {**board.get("unet_grid", {}), args.data: [
        {**row, "p50_ms_2t": (units.get(key(args, "latency", "grid", row["name"])) or {}).get("ms")}
        for row in grid.get(args.data, [])]}  # fmt: skip
    board["latency_budgets"] = {**board.get("latency_budgets", {}),
                                args.data: [{k: v for k, v in row.items() if k != "picks"} for row in report["rows"]]}
    atomic_write_bytes(path, (json.dumps(board, indent=1, sort_keys=True) + "\n").encode())


def verdict(margin: float, band: float) -> str:
    """yes / tie / no for a searched-minus-grid IoU margin, a tie within ``band``."""
    return "tie" if abs(margin) <= band else ("yes" if margin > 0 else "no")


def markdown_table(report: dict[str, Any]) -> str:
    """The README's table: per budget, the best grid U-Net, the best pick searched at a budget (any searcher)
    and the best shipped searched entry."""

    def cell(name: Any, iou: Any, ms: Any, seeds: Any = None) -> str:
        if name is None:
            return "-"
        note = f", {seeds} seed{'s' * (seeds != 1)}" if seeds else ""
        return f"`{name}` {iou:.3f} ({ms:.1f} ms{note})"

    band = report.get("tie_band", 0.0)
    lines = ["| budget | best grid U-Net (2 seeds) | searched at a budget (2 seeds) | best searched zoo entry | "
             f"searched beats the grid (tie: within {band:.3f}) |", "|---|---|---|---|---|"]  # fmt: skip
    for r in report["rows"]:
        grid = r["best_unet_iou"] or 0.0
        searched = max(r["best_searched_iou"] or 0.0, r.get("best_zoo_searched_iou") or 0.0)
        zoo_cell = cell(r.get("best_zoo_searched"), r.get("best_zoo_searched_iou"), r.get("best_zoo_searched_ms"),
                        r.get("best_zoo_searched_seeds"))  # fmt: skip
        lines.append(f"| {r['budget_ms']:g} ms | {cell(r['best_unet'], r['best_unet_iou'], r['best_unet_ms'])} | "
                     f"{cell(r['best_searched'], r['best_searched_iou'], r['best_searched_ms'])} | {zoo_cell} | "
                     f"{verdict(searched - grid, band)} ({searched - grid:+.3f}) |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(ze.SCALES), default="cpu")
    parser.add_argument("--searchers", nargs="+", default=["unet-ga"])
    parser.add_argument("--budgets", nargs="+", type=float, default=list(BUDGETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--weight", type=float, default=2.0, help="latency weight w of (LAT/T)^-w over the target")
    parser.add_argument("--table", default=str(TABLE))
    parser.add_argument("--latency", action="store_true", help="time the picks and the grid nets (quiet cores)")
    parser.add_argument("--leaderboard", action="store_true", help="merge the grid and the rows into leaderboard.json")
    parser.add_argument("--zoo-entries", nargs="*", default=[], help="shipped searched entries to retrain per seed")
    unet_grid.add_run_options(parser, RESULTS)
    parser.set_defaults(out=None)  # results/latency_budgets.json, or latency_budgets-DATA.json for another data set
    parser.add_argument("--data", choices=DATASETS, default=DATA, help="the zoo data set searched and scored on")
    parser.add_argument("--markdown", action="store_true", help="print the README table of --out and stop")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown_table(json.loads(Path(args.out or RESULTS).read_text())))
        return
    report = run(args)
    for row in report["rows"]:
        print(f"{row['budget_ms']:g} ms: searched {row['best_searched']} {row['best_searched_iou']}  "
              f"grid {row['best_unet']} {row['best_unet_iou']}", file=sys.stderr)


if __name__ == "__main__":
    main()

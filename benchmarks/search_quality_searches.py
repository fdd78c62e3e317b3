"""The searches of ``search_quality.py`` (and the benchmarks built on it): each fills its searcher's
config (:mod:`nasseg.searchers.configs`, the same class ``nasseg search`` fills from its options)
from a scale's settings, and runs it with :func:`nasseg.searchers.configs.make_searcher`.

Every search here trains each candidate for one epoch of exactly ``s["steps"]`` steps, batch 8,
one candidate at a time in this process (``s["workers"]``, default 1: the committed rows ran so).
``SEARCH[name](arm, seed, data, run_dir, s, size, device, units)`` runs arm ``search`` (the
searcher) or ``random`` (its random counterpart) and returns what the report keeps of it;
``s["latency"]``, when set, is a :class:`nasseg.searchers.latency.LatencyObjective`.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from search_quality_report import arm_unit

from nasseg.searchers.configs import (
    AutoSegNetSearchConfig,
    IacSearchConfig,
    NasAsdetSearchConfig,
    RenasConfig,
    SearchConfig,
    UNetGAConfig,
    make_searcher,
)
from nasseg.searchers.configs.autosegnet import PAPER_OPS
from nasseg.searchers.evaluators import search_task
from nasseg.zoo.genotype import Genotype


def fidelity_settings(s: dict[str, Any], seed: int, data: Path, size: int, device: str) -> dict[str, Any]:
    """The settings every searcher's config shares here: data, seed, one epoch of ``steps`` steps."""
    return {"data": data, "seed": seed, "device": device, "image_size": size, "batch_size": 8,
            "max_images": s["images"], "max_val_images": s["val"], "max_steps": s["steps"],
            "min_steps": s["steps"]}  # fmt: skip


def run_searcher(config: SearchConfig, run_dir: Path, latency: Any = None) -> tuple[Any, Any]:
    """Run ``config``'s search in ``run_dir`` (resuming it): (the result, the strategy)."""
    searcher = make_searcher(config, run_dir, latency=latency)
    return searcher.run(resume=(run_dir / "run.json").is_file()), searcher.strategy


def search_unet_ga(arm: str, seed: int, data: Path, run_dir: Path, s: dict[str, Any], size: int, device: str,
                   units: Any) -> dict[str, Any]:  # fmt: skip
    total = None if arm == "search" else units.get(f"{s.get('unit', 'unet-ga')}/search/s{seed}/search")["evaluations"]
    # dropout: the committed rows ran with pix2pix's 0.5 on the inner decoder layers (now 0 by default)
    config = UNetGAConfig(**fidelity_settings(s, seed, data, size, device), epochs=1, widths=s["widths"],
                          layers=s["layers"], population=s["K"], generations=s["T"], gamma=s.get("gamma", 0.01),
                          fitness=s.get("fitness", "loss"), random_search=arm != "search",
                          evaluations=total, workers=s.get("workers", 1), halving=s.get("halving", 0),
                          dropout=s.get("dropout", 0.5))  # fmt: skip
    result, strategy = run_searcher(config, run_dir, s.get("latency"))
    report = strategy.flops_report() if arm == "search" else None
    return {"genotype": result.genotype.to_dict(), "evaluations": len(result.history), "flops_report": report,
            "search_fitness": result.best.fitness}  # fmt: skip


def search_renas(arm: str, seed: int, data: Path, run_dir: Path, s: dict[str, Any], size: int, device: str,
                 units: Any) -> dict[str, Any]:  # fmt: skip
    config = RenasConfig(**fidelity_settings(s, seed, data, size, device), blocks=s["blocks"], cells=2,
                         filters=s["filters"], aspp_channels=32, population=s["P"], steps=s["E"],
                         mutation="controller" if arm == "search" else "sample", final_epochs=s["final_epochs"],
                         final_steps=s["steps"], final_val_images=s["val"], entropy_weight=None,
                         workers=s.get("workers", 1), inherit=s.get("inherit", True))  # fmt: skip
    result, _ = run_searcher(config, run_dir, s.get("latency"))
    return {"genotype": result.genotype.to_dict(), "evaluations": len(result.history),
            "search_fitness": result.best.fitness}  # fmt: skip


def search_nas_asdet(arm: str, seed: int, data: Path, run_dir: Path, s: dict[str, Any], size: int, device: str,
                     units: Any) -> dict[str, Any]:  # fmt: skip
    config = NasAsdetSearchConfig(**fidelity_settings(s, seed, data, size, device),
                                  epochs_per_stage=s["epochs_per_stage"], warmup_epochs=s["warmup"],
                                  init_channels=s["init_channels"], selection=s.get("selection", "alpha"))  # fmt: skip
    if arm == "random":  # a random cell pair in the same space, the same net around it
        from nasseg.searchers.differentiable import random_cell
        from nasseg.searchers.nas_asdet import supernet_genotype
        from nasseg.zoo.ops import NAS_ASDET_OPS

        rng = random.Random(seed)
        normal, reduce = random_cell(NAS_ASDET_OPS, rng, True), random_cell(NAS_ASDET_OPS, rng, True)
        genotype = supernet_genotype(search_task(data, (size, size)), config.strategy_config(), normal, reduce,
                                     name=f"nas-asdet-random-s{seed}")  # fmt: skip
        return {"genotype": genotype.to_dict()}
    result, _ = run_searcher(config, run_dir, s.get("latency"))
    return {"genotype": result.genotype.to_dict(), "supernet_val_iou": result.best.metrics.get("iou"),
            "skip_connects": result.best.extra.get("skip_connects")}  # fmt: skip


def iac_config(s: dict[str, Any], seed: int, data: Path, size: int, device: str, **extra: Any) -> IacSearchConfig:
    """IAC at a scale's settings (``extra``: e.g. stage II from a given base, a random cell)."""
    return IacSearchConfig(**fidelity_settings(s, seed, data, size, device), base="iac-base-unet-small",
                           base_epochs=s["base_epochs"], warmup_epochs=s["warmup"], search_epochs=s["search"],
                           cell_epochs=s["cell_epochs"], cell_channels=s["cell_channels"], record_epochs=(),
                           selection=s.get("selection", "alpha"), search_align=s.get("search_align", "zero"),
                           **extra)  # fmt: skip


def search_iac(arm: str, seed: int, data: Path, run_dir: Path, s: dict[str, Any], size: int, device: str,
               units: Any) -> dict[str, Any]:  # fmt: skip
    """IAC's search arm trains its stage I base; its random arm, and a variant's search arm, start
    from that base (``BASE_ROW-search-sSEED``: the row whose random arm it shares, or its own), so
    every arm of a seed implants into the same net."""
    unit = s.get("unit", "iac")
    base_row = arm_unit(unit, "random")
    base = run_dir.parent / f"{base_row}-search-s{seed}" / "base.safetensors"
    if arm == "search" and unit == base_row:
        config = iac_config(s, seed, data, size, device)
    elif arm == "search":  # a variant: stage II on its base row's base
        if not base.is_file():
            raise FileNotFoundError(f"{base}: run the {base_row} row's search of seed {seed} first")
        config = iac_config(s, seed, data, size, device, from_stage=2, base_weights=base)
    else:  # the same stage I base as the search of this seed, a random cell, the same stage III
        config = iac_config(s, seed, data, size, device, from_stage=2, base_weights=base, random_cell=True)
    result, _ = run_searcher(config, run_dir, s.get("latency"))
    implant = next(r for r in result.history if r.key == "implant")
    return {"genotype": Genotype.from_json(run_dir / "implant.json").to_dict(), "base_json": str(run_dir / "base.json"),
            "stage3_val_iou": implant.metrics.get("iou"), "base_val_iou": implant.extra["base"].get("iou"),
            "kept_base": implant.extra.get("kept_base")}  # fmt: skip


def search_autosegnet(arm: str, seed: int, data: Path, run_dir: Path, s: dict[str, Any], size: int, device: str,
                      units: Any) -> dict[str, Any]:  # fmt: skip
    config = AutoSegNetSearchConfig(**fidelity_settings(s, seed, data, size, device),
                                    controller="lstm" if arm == "search" else "uniform",
                                    controller_steps=s["controller_steps"], epochs_max=s["epochs"],
                                    warmup_epochs=s["warm"], rerank_top=s.get("rerank_top", 0),
                                    rerank_steps=s.get("rerank_steps", 100), long_skips=s.get("long_skips", "searched"),
                                    ops=s.get("ops", PAPER_OPS), name=f"autosegnet-{arm}-s{seed}")  # fmt: skip
    result, strategy = run_searcher(config, run_dir, s.get("latency"))
    return {"genotype": result.genotype.to_dict(), "curves": strategy.curves}


SEARCH = {"unet-ga": search_unet_ga, "renas": search_renas, "nas-asdet": search_nas_asdet, "iac": search_iac,
          "autosegnet": search_autosegnet}  # fmt: skip

"""Random architectures of each searcher's space at its command-line defaults.

What ``nasseg latency table`` times (the shapes the spaces use) and what
``benchmarks/latency_model.py`` validates the predictor on. Each space is built as
``nasseg search NAME`` builds it by default, for a 3-channel, 1-class task at ``size``.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from nasseg.searchers.base import SearchError
from nasseg.zoo.genotype import Genotype

if TYPE_CHECKING:
    from nasseg.searchers.configs import SearchConfig
    from nasseg.zoo.latency import UnitCall

SPACES = ("unet-ga", "renas", "nas-asdet", "iac", "autosegnet")


def _task(size: tuple[int, int]) -> dict[str, Any]:
    return {"kind": "segmentation", "in_channels": 3, "num_classes": 1, "input_size": list(size)}


def _config(space: str, size: tuple[int, int]) -> Any:
    """The searcher's config at its command-line defaults, searching at ``size`` (no data needed)."""
    from nasseg.searchers.configs import CONFIGS

    return CONFIGS[space](data=".", image_size=size[0])


def _of_config_space(config: Any, size: tuple[int, int]) -> Callable[[random.Random], Genotype]:
    """The U-Net GA's and RENAS' samplers: their config builds the space for a task."""
    return config.space(_task(size)).sample


def _nas_asdet(config: Any, size: tuple[int, int]) -> Callable[[random.Random], Genotype]:
    from nasseg.searchers.differentiable import random_cell
    from nasseg.searchers.nas_asdet import supernet_genotype
    from nasseg.zoo.ops import NAS_ASDET_OPS

    strategy = dataclasses.replace(config.strategy_config(), image_size=size)
    return lambda rng: supernet_genotype(
        _task(size),
        strategy,
        random_cell(NAS_ASDET_OPS, rng, residual=True),
        random_cell(NAS_ASDET_OPS, rng, residual=True),
        name="nas-asdet-random",
    )


def _iac(config: Any, size: tuple[int, int]) -> Callable[[random.Random], Genotype]:
    from nasseg import zoo
    from nasseg.searchers.differentiable import random_cell
    from nasseg.zoo.ops import DARTS_OPS

    strategy = config.strategy_config()
    base = zoo.resolve_genotype(strategy.base)

    def sample(rng: random.Random) -> Genotype:
        return Genotype.from_dict({
            "schema": "nasseg.genotype/1", "name": "iac-random", "family": "iac-unet", "task": _task(size),
            "arch": {"base": {"model": strategy.base, "arch_hash": base.arch_hash},
                     "cell": random_cell(DARTS_OPS, rng, residual=False).model_dump(),
                     "cell_channels": strategy.cell_channels, "levels": strategy.levels, "implant": strategy.implant},
        })  # fmt: skip

    return sample


def _autosegnet(config: Any, size: tuple[int, int]) -> Callable[[random.Random], Genotype]:
    return config.space(1, size).sample


_SAMPLERS = {"unet-ga": _of_config_space, "renas": _of_config_space, "nas-asdet": _nas_asdet, "iac": _iac,
             "autosegnet": _autosegnet}  # fmt: skip


def space_ops(space: str) -> tuple[str, ...]:
    """The op names a space's cell edges choose from (none for the U-Net GA)."""
    from nasseg.zoo import ops

    return {"unet-ga": (), "renas": ops.RENAS_OPS, "nas-asdet": ops.NAS_ASDET_OPS, "iac": ops.DARTS_OPS,
            "autosegnet": ops.AUTOSEGNET_OPS}[space]  # fmt: skip


def sample_genotypes(space: str, count: int, size: tuple[int, int], seed: int = 0,
                     config: SearchConfig | None = None) -> list[Genotype]:  # fmt: skip
    """``count`` random architectures of ``space`` as a search at ``size`` builds them (AutoSegNet's
    depth and the GA's levels follow the search size), at the searcher's command-line defaults or,
    given a search's ``config``, as that search builds them (its widths, levels, cells, ...)."""
    if space not in _SAMPLERS:
        raise SearchError(f"unknown search space {space!r}; choose from {', '.join(SPACES)}")
    sample = _SAMPLERS[space](config if config is not None else _config(space, size), size)
    rng = random.Random(f"{space}:{seed}")
    return [sample(rng) for _ in range(count)]


def config_samples(config: SearchConfig, count: int, seed: int = 0) -> list[Genotype]:
    """``count`` random architectures of the space a search with ``config`` explores, at its size."""
    return sample_genotypes(config.searcher, count, (config.image_size, config.image_size), seed, config)


def space_unit_calls(spaces: Sequence[str], samples: int, size: tuple[int, int], models: Sequence[str] = (),
                     seed: int = 0, search_size: tuple[int, int] | None = None,
                     configs: Sequence[SearchConfig] = ()) -> list[UnitCall]:  # fmt: skip
    """The unit calls (with their modules, to time) on frames of ``size`` of ``samples`` random nets of
    each space (built as a search at ``search_size``, default ``size``, builds them) and of the space
    of each search ``config`` (built as that search builds them), of every op of each cell space at
    every edge shape those nets have, and of the named models."""
    from nasseg import zoo
    from nasseg.zoo.latency import edge_contexts, edge_op_calls, trace_genotype

    drawn = [(space, sample_genotypes(space, samples, search_size or size, seed)) for space in spaces]
    drawn += [(config.searcher, config_samples(config, samples, seed)) for config in configs]
    calls: list[UnitCall] = []
    for space, nets in drawn:
        traced = [c for g in nets for c in trace_genotype(g, size, True)]
        calls += traced
        for context in edge_contexts(traced):
            for name in space_ops(space):
                if name != "none":
                    calls += edge_op_calls(name, context, keep_modules=True)
    for name in models:
        calls += trace_genotype(zoo.resolve_genotype(name), size, keep_modules=True)
    return calls

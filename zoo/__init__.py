"""nasseg's model zoo: the genotype contract, the op table, cells, family builders, registry,
weights and model reports. ``zoo`` imports neither ``searchers`` nor ``serving``.

The names below load on first use (PEP 562), so ``import zoo`` and reading genotypes cost no torch
import: ``nasseg list`` and ``nasseg --help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from zoo._version import __version__
from zoo.errors import (
    BuildError,
    GenotypeError,
    InputSizeError,
    ModelNotFoundError,
    NassegError,
    WeightsError,
)

#: public name -> the module that defines it
_LAZY = {
    "Cell": "zoo.genotype", "Genotype": "zoo.genotype", "Task": "zoo.genotype",
    "LayerRow": "zoo.profiling", "ModelProfile": "zoo.profiling", "profile": "zoo.profiling",
    "apply_overrides": "zoo.registry", "build_model": "zoo.registry", "check_input_size": "zoo.registry",
    "create_model": "zoo.registry", "get_genotype": "zoo.registry", "input_divisor": "zoo.registry",
    "list_models": "zoo.registry", "resolve_genotype": "zoo.registry",
    "Padding": "zoo.sizing", "crop_to_original": "zoo.sizing", "pad_to_multiple": "zoo.sizing",
    "load_weights": "zoo.weights", "save_weights": "zoo.weights", "nasseg_home": "zoo.weight_files",
}  # fmt: skip

if TYPE_CHECKING:
    from zoo.genotype import Cell, Genotype, Task
    from zoo.profiling import LayerRow, ModelProfile, profile
    from zoo.registry import (
        apply_overrides,
        build_model,
        check_input_size,
        create_model,
        get_genotype,
        input_divisor,
        list_models,
        resolve_genotype,
    )
    from zoo.sizing import Padding, crop_to_original, pad_to_multiple
    from zoo.weight_files import nasseg_home
    from zoo.weights import load_weights, save_weights


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        try:  # submodules as attributes (zoo.weights, zoo.units, ...), as a plain package gives them
            return importlib.import_module(f"zoo.{name}")
        except ModuleNotFoundError:
            raise AttributeError(f"module 'zoo' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "__version__",
    "BuildError",
    "Cell",
    "Genotype",
    "GenotypeError",
    "InputSizeError",
    "LayerRow",
    "ModelNotFoundError",
    "ModelProfile",
    "Padding",
    "NassegError",
    "Task",
    "WeightsError",
    "apply_overrides",
    "build_model",
    "check_input_size",
    "crop_to_original",
    "create_model",
    "get_genotype",
    "input_divisor",
    "list_models",
    "load_weights",
    "nasseg_home",
    "pad_to_multiple",
    "profile",
    "resolve_genotype",
    "save_weights",
]

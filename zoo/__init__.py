"""nasseg's model zoo: the genotype contract, the op table, cells, family builders, registry,
weights and model reports. ``zoo`` imports neither ``searchers`` nor ``serving``.

The names below load on first use (PEP 562), so ``import zoo`` and reading genotypes cost no torch
import: ``nasseg list`` and ``nasseg --help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from nasseg.zoo._version import __version__
from nasseg.zoo.errors import (
    BuildError,
    GenotypeError,
    InputSizeError,
    ModelNotFoundError,
    NassegError,
    WeightsError,
)

#: public name -> the module of nasseg.zoo that defines it
_LAZY = {
    "Cell": "genotype", "Genotype": "genotype", "Task": "genotype",
    "LayerRow": "profiling", "ModelProfile": "profiling", "profile": "profiling",
    "apply_overrides": "registry", "build_model": "registry", "check_input_size": "registry",
    "create_model": "registry", "get_genotype": "registry", "input_divisor": "registry",
    "list_models": "registry", "resolve_genotype": "registry",
    "Padding": "sizing", "crop_to_original": "sizing", "pad_to_multiple": "sizing",
    "load_weights": "weights", "save_weights": "weights", "nasseg_home": "weight_files",
}  # fmt: skip

if TYPE_CHECKING:
    from nasseg.zoo.genotype import Cell, Genotype, Task
    from nasseg.zoo.profiling import LayerRow, ModelProfile, profile
    from nasseg.zoo.registry import (
        apply_overrides,
        build_model,
        check_input_size,
        create_model,
        get_genotype,
        input_divisor,
        list_models,
        resolve_genotype,
    )
    from nasseg.zoo.sizing import Padding, crop_to_original, pad_to_multiple
    from nasseg.zoo.weight_files import nasseg_home
    from nasseg.zoo.weights import load_weights, save_weights


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        try:  # submodules as attributes (zoo.weights, zoo.units, ...), as a plain package gives them
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
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

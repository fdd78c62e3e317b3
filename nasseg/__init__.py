"""nasseg: searched segmentation networks for inspection lines, from the search to the device.

The public API re-exports the zoo: ``nasseg.create_model("darts-v2-cifar")`` is
``zoo.create_model("darts-v2-cifar")``. Names load on first use, as in :mod:`zoo`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nasseg.zoo._version import __version__
from nasseg.zoo.errors import BuildError, GenotypeError, InputSizeError, ModelNotFoundError, NassegError, WeightsError

if TYPE_CHECKING:
    from nasseg.zoo import Genotype, ModelProfile, create_model, list_models, load_weights, profile, save_weights

_FROM_ZOO = ("Genotype", "ModelProfile", "create_model", "list_models", "load_weights", "profile", "save_weights")


def __getattr__(name: str) -> Any:
    if name in _FROM_ZOO:
        from nasseg import zoo

        return getattr(zoo, name)
    raise AttributeError(f"module 'nasseg' has no attribute {name!r}")


__all__ = [
    "__version__",
    "BuildError",
    "Genotype",
    "GenotypeError",
    "InputSizeError",
    "ModelNotFoundError",
    "ModelProfile",
    "NassegError",
    "WeightsError",
    "create_model",
    "list_models",
    "load_weights",
    "profile",
    "save_weights",
]

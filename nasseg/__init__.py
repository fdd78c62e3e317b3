"""nasseg: searched segmentation networks for inspection lines, from the search to the device.

The public API re-exports the zoo: ``nasseg.create_model("darts-v2-cifar")`` is
``zoo.create_model("darts-v2-cifar")``.
"""

from zoo import (
    BuildError,
    Genotype,
    GenotypeError,
    InputSizeError,
    ModelNotFoundError,
    ModelProfile,
    NassegError,
    WeightsError,
    create_model,
    list_models,
    load_weights,
    profile,
    save_weights,
)
from zoo._version import __version__

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

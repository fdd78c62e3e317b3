"""nasseg's model zoo: the genotype contract, the op table, cells, family builders, registry,
weights and model reports. ``zoo`` imports neither ``searchers`` nor ``serving``."""

from zoo._version import __version__
from zoo.errors import (
    BuildError,
    GenotypeError,
    InputSizeError,
    ModelNotFoundError,
    NassegError,
    WeightsError,
)
from zoo.genotype import Cell, Genotype, Task
from zoo.profile import LayerRow, ModelProfile, profile
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
from zoo.weights import load_weights, nasseg_home, save_weights

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

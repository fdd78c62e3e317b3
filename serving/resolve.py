"""A model spec (zoo name, genotype ``.json`` or ``.onnx`` file) -> the ``deploy`` ONNX file to serve.

Zoo names and genotype files are exported once into ``$NASSEG_HOME/onnx`` under
``NAME-ARCHHASH-WEIGHTS.onnx`` (``WEIGHTS``: the first 12 hex digits of the trained weights' sha256,
or ``random``), written atomically so that several workers may resolve the same spec at once.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from torch import nn

from nasseg import zoo
from nasseg.serving.export import ExportError, export, read_metadata
from nasseg.zoo.genotype import Genotype
from nasseg.zoo.weight_files import nasseg_home

WEIGHTS = ("auto", "trained", "random")
RANDOM_HINT = ("train it (nasseg train NAME DATA), pick a model with weights (nasseg list), or pass "
               "--allow-random-weights for sizing and speed checks")  # fmt: skip


class RandomWeightsError(ExportError):
    """A net without trained weights was to be served, predicted with or exported, unasked."""


def refuse_random(genotype: Genotype, action: str) -> None:
    """Raise :class:`RandomWeightsError`: ``action`` (serve, export, predict with) needs trained weights."""
    why = "names no weight file" if genotype.weights is None else f"weight file {genotype.weights.file!r} is missing"
    raise RandomWeightsError(f"model {genotype.name!r} has no trained weights (its genotype {why}): refusing to "
                             f"{action} a net with random weights; {RANDOM_HINT}")  # fmt: skip


def has_trained_weights(genotype: Genotype) -> bool:
    """Whether the genotype names a weight file that can be found."""
    return weights_file(genotype) is not None


def weights_file(genotype: Genotype) -> Path | None:
    """The genotype's trained weights file, or ``None`` when it names none or it cannot be found."""
    if genotype.weights is None:
        return None
    try:
        return zoo.weights.find_weights(genotype)
    except zoo.WeightsError:
        return None


def _weights_tag(genotype: Genotype) -> str:
    """``random``, or 12 hex digits of the trained weights' sha256 (recorded, or computed from the file)."""
    found = weights_file(genotype)
    if found is None:
        return "random"
    return (genotype.weights.sha256 or hashlib.sha256(found.read_bytes()).hexdigest())[:12]


def load_for_export(name: str | Path | Genotype, weights: str = "auto",
                    allow_random: bool = True) -> tuple[nn.Module, str]:  # fmt: skip
    """The net to export and a note on its weights (``auto``: trained weights where there are some;
    without any, :class:`RandomWeightsError` unless ``allow_random``)."""
    if weights not in WEIGHTS:
        raise ExportError(f"--weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    genotype = zoo.resolve_genotype(name)
    trained = weights == "trained" or (weights == "auto" and has_trained_weights(genotype))
    if weights == "auto" and not trained and not allow_random:
        refuse_random(genotype, "export")
    model = zoo.create_model(genotype, pretrained=trained)
    return model, "trained weights" if trained else "random weights (untrained: for sizing and speed only)"


def onnx_cache_dir() -> Path:
    """Where exported zoo models are kept: ``$NASSEG_HOME/onnx``."""
    return nasseg_home() / "onnx"


def is_onnx_spec(spec: str | Path) -> bool:
    """Whether ``spec`` names an exported graph file: ONNX, or an OpenVINO IR made from one."""
    return str(spec).lower().endswith((".onnx", ".xml"))


def resolve_onnx(spec: str | Path, cache_dir: Path | None = None, allow_random: bool = True) -> Path:
    """The ONNX file for ``spec``: the file itself, or the cached ``deploy`` export of a zoo name /
    genotype. A net without trained weights (an export that records ``random``) raises
    :class:`RandomWeightsError` unless ``allow_random``."""
    if is_onnx_spec(spec):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ExportError(f"{path}: no such ONNX file")
        if not allow_random:
            meta = read_metadata(path)
            if meta.weights == "random":
                raise RandomWeightsError(f"{path}: an export of {meta.genotype.name!r} with random weights; refusing "
                                         f"to serve it; {RANDOM_HINT}")  # fmt: skip
        return path.resolve()
    genotype = zoo.resolve_genotype(spec)
    tag = _weights_tag(genotype)
    if tag == "random" and not allow_random:
        refuse_random(genotype, "serve")
    directory = cache_dir or onnx_cache_dir()
    path = directory / f"{genotype.name}-{genotype.arch_hash}-{tag}.onnx"
    if path.is_file():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    model, _ = load_for_export(genotype, "random" if tag == "random" else "trained")
    export(model, path, weights="random" if tag == "random" else "trained")  # atomic
    return path

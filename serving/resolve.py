"""A model spec (zoo name, genotype ``.json`` or ``.onnx`` file) -> the ``deploy`` ONNX file to serve.

Zoo names and genotype files are exported once into ``$NASSEG_HOME/onnx`` under
``NAME-ARCHHASH-WEIGHTS.onnx`` (``WEIGHTS``: the first 12 hex digits of the trained weights' sha256,
or ``random``), written atomically so that several workers may resolve the same spec at once.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from torch import nn

import zoo
from serving.export import ExportError, export
from zoo.genotype import Genotype
from zoo.weights import nasseg_home

WEIGHTS = ("auto", "trained", "random")


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


def load_for_export(name: str | Path | Genotype, weights: str = "auto") -> tuple[nn.Module, str]:
    """The net to export and a note on its weights (``auto``: trained weights where there are some)."""
    if weights not in WEIGHTS:
        raise ExportError(f"--weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    genotype = zoo.resolve_genotype(name)
    trained = weights == "trained" or (weights == "auto" and has_trained_weights(genotype))
    model = zoo.create_model(genotype, pretrained=trained)
    return model, "trained weights" if trained else "random weights (untrained: for sizing and speed only)"


def onnx_cache_dir() -> Path:
    """Where exported zoo models are kept: ``$NASSEG_HOME/onnx``."""
    return nasseg_home() / "onnx"


def is_onnx_spec(spec: str | Path) -> bool:
    return str(spec).lower().endswith(".onnx")


def resolve_onnx(spec: str | Path, cache_dir: Path | None = None) -> Path:
    """The ONNX file for ``spec``: the file itself, or the cached ``deploy`` export of a zoo name / genotype."""
    if is_onnx_spec(spec):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ExportError(f"{path}: no such ONNX file")
        return path.resolve()
    genotype = zoo.resolve_genotype(spec)
    tag = _weights_tag(genotype)
    directory = cache_dir or onnx_cache_dir()
    path = directory / f"{genotype.name}-{genotype.arch_hash}-{tag}.onnx"
    if path.is_file():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    model, _ = load_for_export(genotype, "random" if tag == "random" else "trained")
    handle, tmp = tempfile.mkstemp(dir=directory, prefix=f".{genotype.name}-", suffix=".onnx")
    os.close(handle)
    try:
        export(model, tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path

"""Library versions recorded with trained weights, search results and benchmarks."""

from __future__ import annotations

import platform
from importlib import metadata

_PACKAGES = ("torch", "timm", "segmentation-models-pytorch", "onnx", "onnxruntime-gpu", "onnxruntime", "bentoml", "ray")


def library_versions(packages: tuple[str, ...] = ("torch", "timm")) -> dict[str, str]:
    """``{"nasseg": ..., "python": ..., package: version}`` for the installed ``packages`` (missing ones left out)."""
    from nasseg.zoo._version import __version__

    versions = {"nasseg": __version__, "python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def all_library_versions() -> dict[str, str]:
    """Versions of every library nasseg's results may depend on (for benchmarks and model cards)."""
    return library_versions(_PACKAGES)

"""How big a genotype's net would be, known before a byte of it is allocated.

The schema bounds every number (:mod:`zoo.archs`), but widths within bounds can still multiply into
a net of billions of parameters. :func:`check_build_size` therefore counts the cell ops the net
would hold (a cheap bound on the time building takes), then builds the net on PyTorch's ``meta``
device (modules and shapes, no storage) and counts its parameters. A net over the caps is a
:class:`~zoo.errors.BuildError` in well under a second, instead of a stalled build or the
allocator's traceback. ``max_params`` or ``NASSEG_MAX_PARAMS`` raises the cap for a user who
really means a bigger net.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from nasseg.zoo.errors import BuildError, NassegError
from nasseg.zoo.genotype import Genotype

#: Default parameter cap: 500 M parameters, 2 GB of float32 weights (the largest zoo net has 55 M).
MAX_PARAMS = 500_000_000
#: Cell op instances a net may hold (DARTS-V2 at 20 layers has 160).
MAX_CELL_OPS = 4096
PARAMS_ENV = "NASSEG_MAX_PARAMS"


def max_params_cap(max_params: int | None = None) -> int:
    """The parameter cap in force: ``max_params``, else ``$NASSEG_MAX_PARAMS``, else :data:`MAX_PARAMS`."""
    if max_params is not None:
        return max_params
    text = os.environ.get(PARAMS_ENV, "").strip()
    if not text:
        return MAX_PARAMS
    try:
        return int(float(text))
    except ValueError:
        raise BuildError(f"{PARAMS_ENV}={text!r} is not a number of parameters") from None


def cell_ops(genotype: Genotype) -> int:
    """An upper bound on the cell op instances the net builds (edges per cell x cells stacked)."""
    edges = sum(len(node) for cell in genotype.cells().values() for node in cell.nodes)
    repeats = getattr(genotype.arch, "layers", None) or 32  # autosegnet/iac: at most 2 * 13 levels + a bridge
    return edges * repeats


def meta_params(genotype: Genotype) -> int:
    """Parameters of the genotype's net, counted on the ``meta`` device (nothing allocated)."""
    from nasseg.zoo.registry import family_of

    try:
        with torch.device("meta"):
            model: nn.Module = family_of(genotype.family).build(genotype)
    except NassegError:
        raise
    except Exception as exc:  # a builder's own failure (smp, timm: an unknown encoder, ...) in one line
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BuildError(f"model {genotype.name!r} cannot be built: {text}") from None
    return sum(p.numel() for p in model.parameters())


def check_build_size(genotype: Genotype, max_params: int | None = None) -> int:
    """The net's parameter count; :class:`BuildError` when it is over the caps."""
    ops = cell_ops(genotype)
    if ops > MAX_CELL_OPS:
        raise BuildError(f"model {genotype.name!r}: {ops} cell ops to build, more than the limit of {MAX_CELL_OPS}")
    cap = max_params_cap(max_params)
    params = meta_params(genotype)
    if params > cap:
        raise BuildError(
            f"model {genotype.name!r}: {params / 1e6:,.1f} M parameters ({params * 4 / 2**30:,.1f} GiB of float32 "
            f"weights), more than the cap of {cap / 1e6:,.1f} M; pass max_params= or set {PARAMS_ENV} to build it"
        )
    return params

"""Family builders: one module per family turns a genotype into a ``torch.nn.Module``.

Each family module defines ``build(genotype) -> nn.Module`` and ``divisor(genotype) -> int``
(the input height and width must be multiples of it), and may define
``load_pretrained(model, genotype) -> Path`` for genotypes without a weight file of their own
(an IAC implant loads its base's weights), and ``bind_resolver(resolve)`` when its genotypes name
other models (an implant its base): the registry hands it its resolver, so no family imports the
registry above it. Shared concerns (attaching the genotype, weights, size checks) live in
:mod:`zoo.registry`, not in the families.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from nasseg.zoo._version import __version__
from nasseg.zoo.errors import BuildError
from nasseg.zoo.families import autosegnet, cellnet, iac_unet, smp, unet
from nasseg.zoo.genotype import Genotype

#: A model name or genotype file -> its genotype (:func:`zoo.registry.resolve_genotype`).
Resolver = Callable[[str | Path], Genotype]


@dataclass(frozen=True)
class Family:
    """How to build and size-check the nets of one family."""

    build: Callable[[Genotype], nn.Module]
    divisor: Callable[[Genotype], int]
    load_pretrained: Callable[[nn.Module, Genotype], Path] | None = None
    bind_resolver: Callable[[Resolver], None] | None = None


FAMILY_BUILDERS: dict[str, Family] = {
    "cellnet": Family(cellnet.build, cellnet.divisor),
    "unet": Family(unet.build, unet.divisor),
    "smp": Family(smp.build, smp.divisor),
    "iac-unet": Family(iac_unet.build, iac_unet.divisor, iac_unet.load_pretrained, iac_unet.bind_resolver),
    "autosegnet": Family(autosegnet.build, autosegnet.divisor),
}


def get_family(name: str) -> Family:
    """The builder of family ``name``; a clear error for families this version cannot build yet."""
    try:
        return FAMILY_BUILDERS[name]
    except KeyError:
        raise BuildError(
            f"family {name!r} is a valid genotype family, but nasseg {__version__} has no builder for it yet "
            f"(buildable: {', '.join(FAMILY_BUILDERS)})"
        ) from None


def bind_resolver(resolve: Resolver) -> None:
    """Give every family whose genotypes name other models the registry's resolver (the registry
    calls this once, before it first uses a family)."""
    for family in FAMILY_BUILDERS.values():
        if family.bind_resolver is not None:
            family.bind_resolver(resolve)

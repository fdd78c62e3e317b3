"""``smp``: segmentation-models-pytorch baselines as genotypes (never downloads weights)."""

from __future__ import annotations

from torch import nn

from nasseg.zoo.errors import BuildError
from nasseg.zoo.genotype import Genotype

_TAKES_DECODER_CHANNELS = ("Unet", "UnetPlusPlus", "MAnet")


def build(genotype: Genotype) -> nn.Module:
    """Build ``smp.create_model(arch, encoder, encoder_weights=None, ...)``; weights come from files."""
    import segmentation_models_pytorch as smp_lib  # slow to import (timm, hub clients): only when needed

    arch, task = genotype.arch, genotype.task
    kwargs = {"encoder_depth": arch.encoder_depth}
    if arch.decoder_channels is not None:
        if arch.arch not in _TAKES_DECODER_CHANNELS:
            raise BuildError(f"genotype {genotype.name!r}: smp {arch.arch} takes no decoder_channels list")
        if len(arch.decoder_channels) != arch.encoder_depth:
            raise BuildError(
                f"genotype {genotype.name!r}: decoder_channels needs {arch.encoder_depth} widths "
                f"(encoder_depth), got {len(arch.decoder_channels)}"
            )
        kwargs["decoder_channels"] = list(arch.decoder_channels)
    try:
        return smp_lib.create_model(
            arch.arch,
            encoder_name=arch.encoder,
            encoder_weights=None,
            in_channels=task.in_channels,
            classes=task.num_classes,
            **kwargs,
        )
    except (KeyError, ValueError, TypeError) as exc:
        message = str(exc).strip("'\"").splitlines()[0] if str(exc) else type(exc).__name__
        if len(message) > 160:  # smp lists every encoder it knows
            message = message[:160].rsplit(" ", 1)[0] + " ..."
        raise BuildError(
            f"genotype {genotype.name!r}: smp cannot build {arch.arch}/{arch.encoder}: {message}"
        ) from None


def divisor(genotype: Genotype) -> int:
    """smp encoders halve the size ``encoder_depth`` times."""
    return 2**genotype.arch.encoder_depth

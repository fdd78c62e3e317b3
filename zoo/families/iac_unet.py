"""``iac-unet``: base U-Nets and their Implantable Adaptive Cell implants (IAC, seed 004).

A **base** genotype (no ``cell``) is the Stage I "cell-free network, using standard
concatenation in skip connections" (section IV-B.1): an encoder (any timm model built with
``features_only=True``, or the plain U-Net encoder of Ronneberger et al.), a decoder that per
level upsamples, concatenates the encoder skip and applies two 3x3 conv-BN-ReLU, and a 1x1 head.
Encoders whose first feature is below full resolution (convnext_tiny: stride 4) get decoder
blocks without a skip, each upsampling x2, until the input resolution is reached.

An **implant** genotype names its base by zoo name (or genotype path) and arch hash and puts
one adaptive cell into every skip connection in ``levels`` (section III-B: "The IAC is applied
across all skip connections, adapting at different levels with distinct weights and
operations", "a single architecture shared across all levels, while individual cell weights
are trained separately"). The implant holds the base as ``model.base`` with the base's own
parameter names, so the base's weight file loads into it unchanged.

Encoder contract: ``encoder(x)`` returns a list of features, high to low resolution, whose
widths and strides are ``channels[i]`` and ``reductions[i]``; the last one feeds the decoder,
the others are the skips. Skip level 0 is the highest-resolution skip.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from nasseg.zoo.cells import Cell
from nasseg.zoo.errors import BuildError, GenotypeError
from nasseg.zoo.genotype import Cell as CellGenotype
from nasseg.zoo.genotype import Genotype, IACBaseRef, IACBaseUNet

__all__ = [
    "AdaptiveCell",
    "IACImplant",
    "IACUNet",
    "build",
    "divisor",
    "freeze_base",
    "load_pretrained",
    "resolve_base",
]


# ---------------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------------


def conv_bn(c_in: int, c_out: int, kernel: int, relu: bool) -> nn.Sequential:
    """Conv (no bias) - BN, then ReLU when ``relu``; 'same' padding."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(c_out)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def double_conv(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3 conv-BN-ReLU: a U-Net level (encoder of the plain U-Net, and every decoder block)."""
    return nn.Sequential(conv_bn(c_in, c_out, 3, relu=True), conv_bn(c_out, c_out, 3, relu=True))


class PlainUNetEncoder(nn.Module):
    """The original U-Net encoder (Ronneberger et al. 2015, the paper's "Base" backbone): double
    3x3 conv-BN-ReLU levels with 2x2 max-pooling between them; level i is at stride ``2 ** i``."""

    def __init__(self, in_channels: int, widths: list[int]):
        super().__init__()
        self.levels = nn.ModuleList(
            double_conv(c_in, c_out) for c_in, c_out in zip([in_channels, *widths[:-1]], widths, strict=True)
        )
        self.channels = list(widths)
        self.reductions = [2**i for i in range(len(widths))]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for i, level in enumerate(self.levels):
            x = level(F.max_pool2d(x, 2) if i else x)
            features.append(x)
        return features


class DecoderBlock(nn.Module):
    """Upsample (to the skip's size, or x2 without a skip), concatenate [up, skip], two 3x3
    conv-BN-ReLU. ``cell``, when given, transforms the skip before the concatenation."""

    def __init__(self, c_in: int, c_skip: int, c_out: int):
        super().__init__()
        self.c_in, self.c_skip = c_in, c_skip
        self.conv = double_conv(c_in + c_skip, c_out)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None, cell: nn.Module | None = None) -> torch.Tensor:
        if skip is None:
            return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        up = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
        if cell is not None:
            skip = cell(up, skip)
        return self.conv(torch.cat([up, skip], dim=1))


# ---------------------------------------------------------------------------------------------
# Encoders
# ---------------------------------------------------------------------------------------------


def _timm_name(encoder: str) -> str:
    return encoder.removeprefix("timm:")


def _create_timm(name: str, in_channels: int) -> nn.Module:
    import timm  # slow to import: only when a timm encoder is built

    try:
        return timm.create_model(name, features_only=True, pretrained=False, in_chans=in_channels)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        first = str(exc).strip("'\"").splitlines()[0] if str(exc) else type(exc).__name__
        raise BuildError(f"timm cannot build encoder {name!r} with features_only=True: {first}") from None


@lru_cache(maxsize=64)
def _timm_feature_info(name: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(channels, reductions) of a timm encoder, read from a parameter-free build on the meta device
    (a CPU build for the rare model whose constructor computes with tensor values)."""
    try:
        with torch.device("meta"):
            model = _create_timm(name, 3)
    except (RuntimeError, NotImplementedError):
        model = _create_timm(name, 3)
    return tuple(model.feature_info.channels()), tuple(model.feature_info.reduction())


def plain_encoder_widths(decoder_channels: list[int]) -> list[int]:
    """The plain encoder mirrors the decoder (U-Net's symmetry): widths are the decoder widths
    reversed plus a bottleneck twice the deepest one ([512, 256, 128, 64] -> 64 ... 1024)."""
    return [*reversed(decoder_channels), 2 * decoder_channels[0]]


def encoder_info(base: IACBaseUNet) -> tuple[list[int], list[int]]:
    """(channels, reductions) of the base's encoder features, high to low resolution."""
    if base.encoder == "unet":
        widths = plain_encoder_widths(list(base.decoder_channels))
        return widths, [2**i for i in range(len(widths))]
    channels, reductions = _timm_feature_info(_timm_name(base.encoder))
    return list(channels), list(reductions)


def _tail_blocks(first_reduction: int, encoder: str) -> int:
    """Skip-free x2 decoder blocks needed below the encoder's first feature stride."""
    tail = int(math.log2(first_reduction))
    if 2**tail != first_reduction:
        raise BuildError(f"encoder {encoder!r}: first feature stride {first_reduction} is not a power of 2")
    return tail


# ---------------------------------------------------------------------------------------------
# Base U-Net and implant
# ---------------------------------------------------------------------------------------------


class IACUNet(nn.Module):
    """The base U-Net: ``encoder``, ``decoder`` (deepest block first), ``head`` (1x1 to logits).

    ``forward(x, cells)`` runs the IAC in ``cells[f"level{i}"]`` on skip level i; the base alone
    passes no cells (plain concatenation skips, Stage I).
    """

    def __init__(self, base: IACBaseUNet, in_channels: int, num_classes: int):
        super().__init__()
        channels, reductions = encoder_info(base)
        if base.encoder == "unet":
            self.encoder: nn.Module = PlainUNetEncoder(in_channels, channels)
        else:
            self.encoder = _create_timm(_timm_name(base.encoder), in_channels)
        self.skip_channels = channels[:-1]
        widths = list(base.decoder_channels)
        expected = len(self.skip_channels) + _tail_blocks(reductions[0], base.encoder)
        if len(widths) != expected:
            raise BuildError(
                f"encoder {base.encoder!r} (strides {reductions}) needs {expected} decoder_channels "
                f"({len(self.skip_channels)} skip levels + {expected - len(self.skip_channels)} upsampling "
                f"to full resolution), got {len(widths)}"
            )
        skips = [*reversed(self.skip_channels), *[0] * (expected - len(self.skip_channels))]
        self.decoder = nn.ModuleList(
            DecoderBlock(c_in, c_skip, c_out)
            for c_in, c_skip, c_out in zip([channels[-1], *widths[:-1]], skips, widths, strict=True)
        )
        self.head = nn.Conv2d(widths[-1], num_classes, 1)

    def forward(self, x: torch.Tensor, cells: Mapping[str, nn.Module] | None = None) -> torch.Tensor:
        features = self.encoder(x)
        skips = features[:-1]
        x = features[-1]
        for i, block in enumerate(self.decoder):
            level = len(skips) - 1 - i
            if level < 0:
                x = block(x, None)
            else:
                key = f"level{level}"
                x = block(x, skips[level], cells[key] if cells is not None and key in cells else None)
        return self.head(x)

    def block_of_level(self, level: int) -> DecoderBlock:
        """The decoder block that consumes skip level ``level`` (0 = highest resolution)."""
        return self.decoder[len(self.skip_channels) - 1 - level]


class AdaptiveCell(nn.Module):
    """One Implantable Adaptive Cell (section III-B, Fig. 2): "input1 are coarse features procured
    via skip connections from the encoder, and input0 are upsampled decoder features"; "a 1x1
    convolution is applied before processing, and another 1x1 convolution aligns the final output".

    1x1 conv-BN adapters bring input0 (``up``) and input1 (``skip``) to ``channels``, the genotype
    cell runs, a 1x1 conv aligns its ``len(concat) * channels`` output to the skip's width.

    ``residual=True`` returns ``skip + align(cell(...))`` with ``align`` zero-initialised, so the
    implant starts as the identity on the skip: the frozen decoder sees exactly what it was
    trained on, and training can only move away from the base where that helps. This departs from
    the paper's replace reading (``residual=False``): there the random 1x1 align hands the frozen
    decoder features it has never seen, and issue 14 measured val IoU 0.016 at stage III step 0
    against the base's 0.709.
    """

    def __init__(self, cell: CellGenotype, c_up: int, c_skip: int, channels: int,
                 cell_factory: Callable[..., nn.Module] | None = None, residual: bool = False):  # fmt: skip
        super().__init__()
        self.residual = residual
        self.adapt_up = conv_bn(c_up, channels, 1, relu=False)
        self.adapt_skip = conv_bn(c_skip, channels, 1, relu=False)
        make_cell = cell_factory or Cell  # the IAC search passes a mixed-op (continuous) cell factory
        self.cell = make_cell(cell, channels, channels, channels, reduction=False, reduction_prev=False)
        self.align = nn.Conv2d(self.cell.C_out, c_skip, 1)
        if residual:
            nn.init.zeros_(self.align.weight)
            nn.init.zeros_(self.align.bias)

    def forward(self, up: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        out = self.align(self.cell(self.adapt_up(up), self.adapt_skip(skip)))
        return skip + out if self.residual else out

    def reset_to_identity(self) -> None:
        """Zero the align (residual cells only): the implant then computes exactly its base."""
        if not self.residual:
            raise ValueError("only a residual cell can be reset to the identity")
        nn.init.zeros_(self.align.weight)
        nn.init.zeros_(self.align.bias)


class IACImplant(nn.Module):
    """A base U-Net (``self.base``, parameter names as in the base) with adaptive cells
    (``self.cells["level<i>"]``) replacing the skips of the implanted levels.

    With ``residual=False`` (``implant: "replace"``) the cell's aligned output takes the skip's
    place in the decoder concatenation: Fig. 1 names the skip operation the "Adaptive OP" that
    "varies by stage: concat (Stage I), continuous IAC (Stage II), discrete IAC (Stage III)", so
    the paper's IAC is the skip's operation. The default ``residual=True`` adds it to the skip
    instead (see :class:`AdaptiveCell`); the 1x1 alignment to the skip's width keeps the frozen
    decoder's input shapes either way.
    """

    def __init__(
        self,
        base: IACUNet,
        cell: CellGenotype,
        channels: int,
        levels: list[int],
        base_genotype: Genotype | None = None,
        cell_factory: Callable[..., nn.Module] | None = None,
        residual: bool = True,
    ):
        super().__init__()
        self.base = base
        self.base_genotype = base_genotype
        self.cells = nn.ModuleDict(
            {
                f"level{level}": AdaptiveCell(
                    cell,
                    base.block_of_level(level).c_in,
                    base.skip_channels[level],
                    channels,
                    cell_factory,
                    residual,
                )
                for level in sorted(levels)
            }
        )
        self.base_frozen = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x, self.cells)

    def reset_to_base(self) -> None:
        """Make every (residual) cell the identity on its skip: the implant then equals its base."""
        for cell in self.cells.values():
            cell.reset_to_identity()

    def freeze_base(self, frozen: bool = True) -> IACImplant:
        """Freeze (or, with ``frozen=False``, release) the base: no gradients for its parameters,
        its BatchNorm running statistics kept (the base stays in eval mode under ``train()``).
        Stage II/III: "all weights except alpha, beta, and omega are frozen" (section IV-B.2); "The
        U-Net weights remain frozen while the adaptive cell is trained" (section IV-B.3)."""
        for parameter in self.base.parameters():
            parameter.requires_grad_(not frozen)
        self.base_frozen = frozen
        return self.train(self.training)

    def train(self, mode: bool = True) -> IACImplant:
        super().train(mode)
        if self.base_frozen:
            self.base.eval()
        return self


def freeze_base(model: nn.Module, frozen: bool = True) -> nn.Module:
    """Freeze the base of an IAC implant so that only its cells (with their 1x1 adapters) train."""
    if not isinstance(model, IACImplant):
        raise TypeError(f"freeze_base needs an IAC implant, got {type(model).__name__} (a base has no cells)")
    return model.freeze_base(frozen)


# ---------------------------------------------------------------------------------------------
# Family interface
# ---------------------------------------------------------------------------------------------


#: The registry's resolver of model names and genotype files, bound by :func:`bind_resolver`.
_resolve_genotype: Callable[[str | Path], Genotype] | None = None


def bind_resolver(resolve: Callable[[str | Path], Genotype]) -> None:
    """Called by the registry (:func:`zoo.families.bind_resolver`): how an implant finds its base."""
    global _resolve_genotype
    _resolve_genotype = resolve


def resolve_base(genotype: Genotype) -> Genotype:
    """The base genotype of an implant, checked: an ``iac-unet`` base (no cell), the arch hash the
    implant names, and the same task. A relative genotype path resolves next to the implant first."""
    if _resolve_genotype is None:
        raise BuildError(f"implant {genotype.name!r}: build it through zoo (zoo.build_model / create_model), "
                         "which tells the family how to find its base")  # fmt: skip
    resolve_genotype = _resolve_genotype
    ref: IACBaseRef = genotype.arch.base
    spec: str | Path = ref.model
    if genotype.source is not None and ref.model.endswith(".json") and not Path(ref.model).is_absolute():
        beside = genotype.source.parent / ref.model
        spec = beside if beside.is_file() else ref.model
    base = resolve_genotype(spec)
    where = f"implant {genotype.name!r}: base {ref.model!r}"
    if base.family != "iac-unet" or base.arch.cell is not None:
        raise GenotypeError(f"{where} must be an iac-unet base U-Net (no cell), got family {base.family!r}")
    if base.arch_hash != ref.arch_hash:
        raise GenotypeError(
            f"{where} is architecture {base.arch_hash}, but the implant was made for {ref.arch_hash}; "
            "re-derive the implant for this base"
        )
    same = {"input_size", "class_names"}  # names change no module (arch_hash leaves them out too)
    mine, theirs = genotype.task.model_dump(exclude=same), base.task.model_dump(exclude=same)
    if mine != theirs:
        raise GenotypeError(f"{where} has task {theirs}, but the implant has task {mine}; they must match")
    return base


def _check_kind(genotype: Genotype) -> None:
    if genotype.task.kind == "classification":
        raise BuildError(f"genotype {genotype.name!r}: iac-unet builds dense (segmentation/translation) nets")


def build(genotype: Genotype) -> nn.Module:
    """A base U-Net, or an implant built around its (resolved and hash-checked) base."""
    _check_kind(genotype)
    arch = genotype.arch
    if arch.cell is None:
        return IACUNet(arch.base, genotype.task.in_channels, genotype.task.num_classes)
    base_genotype = resolve_base(genotype)
    base = build(base_genotype)
    levels = list(range(len(base.skip_channels))) if arch.levels is None else list(arch.levels)
    bad = [level for level in levels if not 0 <= level < len(base.skip_channels)]
    if bad:
        raise BuildError(
            f"implant {genotype.name!r}: levels {bad} out of range; base {base_genotype.name!r} has skip levels "
            f"0..{len(base.skip_channels) - 1} (0 = highest resolution)"
        )
    return IACImplant(base, arch.cell, arch.cell_channels, levels, base_genotype,
                      residual=arch.implant == "residual")  # fmt: skip


def divisor(genotype: Genotype) -> int:
    """The encoder's total stride (32 for resnet18, 2 ** levels for the plain U-Net encoder)."""
    base = genotype.arch.base if genotype.arch.cell is None else resolve_base(genotype).arch.base
    return encoder_info(base)[1][-1]


def load_pretrained(model: nn.Module, genotype: Genotype) -> Path:
    """Pretrained weights of a genotype without its own weight file. A base with a timm encoder
    gets local ImageNet encoder weights (:mod:`zoo.encoder_weights`; decoder and head stay
    initialised): the paper's bases are ImageNet-pretrained. An implant loads its base's weights
    (its weight file, or else as a base) into ``model.base`` and freezes the base; its cells stay
    freshly initialised (Algorithm 3: "Load specific U-Net weights omega_U and freeze them",
    "Random initialize cells' weights omega"). The plain U-Net base without weights is an error."""
    from nasseg.zoo.encoder_weights import load_encoder_weights
    from nasseg.zoo.weights import load_weights

    if not isinstance(model, IACImplant):
        encoder = genotype.arch.base.encoder
        if genotype.weights is not None or encoder == "unet":
            return load_weights(model, genotype)
        return load_encoder_weights(model.encoder, _timm_name(encoder), genotype.task.in_channels)
    base_genotype = model.base_genotype or resolve_base(genotype)
    path = load_pretrained(model.base, base_genotype)
    model.freeze_base()
    return path

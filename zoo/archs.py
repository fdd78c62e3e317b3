"""The family-specific parts of the genotype contract: cells, task heads and ``arch`` models.

Strict pydantic models (unknown fields are errors); validators raise ``ValueError`` with a
message that names the problem, and :mod:`zoo.genotype` adds the source and field path.
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from nasseg.zoo.op_names import OP_NAMES

#: Bounds that keep a valid genotype buildable in bounded time and memory (a typo such as
#: ``layers: 1000000000`` is refused on load, not after minutes of building). JSON ``true`` is no
#: integer (pydantic would read it as 1), and booleans are strict: ``1`` is no ``true``.
MAX_WIDTH = 8192  # channels of any layer, classes, input channels
MAX_SIDE = 8192  # input height and width
MAX_LAYERS = 256  # stacked cells, encoder levels, listed widths
MAX_NODES = 32  # intermediate nodes of a cell, edges into one node


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"must be an integer, not the boolean {str(value).lower()}")
    return value


Int = Annotated[int, BeforeValidator(_no_bool)]
Width = Annotated[int, Field(ge=1, le=MAX_WIDTH), BeforeValidator(_no_bool)]
Side = Annotated[int, Field(ge=1, le=MAX_SIDE), BeforeValidator(_no_bool)]
Index = Annotated[int, Field(ge=0, le=MAX_LAYERS), BeforeValidator(_no_bool)]
StrictBool = Annotated[bool, Field(strict=True)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# ---------------------------------------------------------------------------------------------
# Cells
# ---------------------------------------------------------------------------------------------


class Cell(_Strict):
    """A cell DAG in the DARTS convention.

    Inputs 0 and 1 are the previous-previous and previous cell (or AutoSegNet's h[t-1], h[t]);
    ``nodes[k - 2]`` lists the (op, input) edges summed into node k; the output concatenates
    the nodes in ``concat`` (``"loose"``: every node no other node consumes, as ENAS and
    AutoSegNet do) plus, when ``residual``, input 1 (NAS-ASDet eq. 3).
    """

    nodes: list[Annotated[list[tuple[str, Int]], Field(max_length=MAX_NODES)]] = Field(
        min_length=1, max_length=MAX_NODES
    )
    concat: Annotated[list[Index], Field(max_length=MAX_NODES)] | Literal["loose"] = "loose"
    residual: StrictBool = False

    @field_validator("nodes")
    @classmethod
    def _check_nodes(cls, nodes: list[list[tuple[str, int]]]) -> list[list[tuple[str, int]]]:
        for position, edges in enumerate(nodes):
            node = position + 2
            if not edges:
                raise ValueError(f"node {node} has no input edge")
            for op, source in edges:
                if op not in OP_NAMES:
                    close = difflib.get_close_matches(op, OP_NAMES, n=2)
                    hint = f" (did you mean {' or '.join(close)}?)" if close else f" (known: {', '.join(OP_NAMES)})"
                    raise ValueError(f"node {node}: unknown op {op!r}{hint}")
                if source == node:
                    raise ValueError(f"node {node} consumes itself")
                if source > node:
                    raise ValueError(f"node {node} consumes the later node {source}")
                if source < 0:
                    raise ValueError(f"node {node}: input index {source} is out of range 0..{node - 1}")
        return nodes

    @model_validator(mode="after")
    def _check_concat(self) -> Cell:
        if isinstance(self.concat, list):
            last = len(self.nodes) + 1
            if not self.concat:
                raise ValueError("concat is empty")
            for node in self.concat:
                if not 2 <= node <= last:
                    raise ValueError(f"concat names node {node}, but the cell has nodes 2..{last}")
            if len(set(self.concat)) != len(self.concat):
                raise ValueError(f"concat names a node twice: {self.concat}")
        return self

    @property
    def steps(self) -> int:
        """Number of intermediate nodes."""
        return len(self.nodes)

    def output_nodes(self) -> list[int]:
        """The concatenated nodes, with ``"loose"`` resolved to the nodes no other node consumes."""
        if isinstance(self.concat, list):
            return list(self.concat)
        consumed = {source for edges in self.nodes for _, source in edges}
        return [node for node in range(2, len(self.nodes) + 2) if node not in consumed]

    def canonical(self) -> dict[str, Any]:
        """The cell with ``concat`` resolved: two cells that build the same modules compare equal."""
        return {
            "nodes": [[list(e) for e in edges] for edges in self.nodes],
            "concat": self.output_nodes(),
            "residual": self.residual,
        }


# ---------------------------------------------------------------------------------------------
# Task, weights, provenance
# ---------------------------------------------------------------------------------------------


class Task(_Strict):
    """What the net maps: ``num_classes`` is the output channel count for ``translation``."""

    kind: Literal["segmentation", "classification", "translation"]
    in_channels: Width = 3
    num_classes: Width = 1
    input_size: tuple[Side, Side] = (256, 256)
    #: The classes' names, background first (two for a one-output net): what a dataset's
    #: ``dataset.json`` called them; exports, ``/inspect`` and cards use them. Not hashed.
    class_names: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, max_length=MAX_WIDTH
    )

    @model_validator(mode="after")
    def _check_class_names(self) -> Task:
        if self.class_names is not None:
            expected = 2 if self.num_classes == 1 else self.num_classes
            if len(self.class_names) != expected or len(set(self.class_names)) != expected:
                raise ValueError(f"class_names needs {expected} distinct names for num_classes {self.num_classes}, "
                                 f"got {self.class_names}")  # fmt: skip
        return self


class Weights(_Strict):
    """A safetensors file next to the genotype file (or in ``$NASSEG_HOME/weights``), named by a plain
    file name: no folder, no ``..``, so a genotype cannot point its loader anywhere else."""

    file: str = Field(min_length=1, max_length=255)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    arch_hash: str = Field(pattern=r"^[0-9a-f]{16}$")

    @field_validator("file")
    @classmethod
    def _plain_name(cls, file: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]*", file):
            raise ValueError(f"{file!r} is not a plain file name: name the file next to the genotype, with no folder")
        return file


class Provenance(_Strict):
    """Where a genotype came from: searcher, data, seed, cost, metrics, versions, citation."""

    searcher: str | None = None
    dataset: str | None = None
    seed: int | None = None
    search_seconds: float | None = Field(default=None, ge=0)
    search_settings: dict[str, Any] = Field(default_factory=dict)
    device: str | None = None
    train_recipe: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    library_versions: dict[str, str] = Field(default_factory=dict)
    created: str | None = None
    source: str | None = None
    latency: dict[str, Any] | None = None


# ---------------------------------------------------------------------------------------------
# Family-specific architectures
# ---------------------------------------------------------------------------------------------


class ClassifierHead(_Strict):
    """Global pooling + linear classifier; optional DARTS auxiliary head (training only)."""

    type: Literal["classifier"] = "classifier"
    auxiliary: StrictBool = False


class ASPPHead(_Strict):
    """DeepLabv3 on the cell stack (RENAS, seed 001, section 5.4: "DeepLabv3 ... Atrous Spatial
    Pyramid Pooling module (ASPP) that contains three 3x3 convolutions with different atrous rates.
    The output stride is 16").

    ``output_stride``: the backbone stops reducing there; a reduction position past it keeps its
    cell and channel doubling but runs at stride 1 (see :meth:`CellNetArch.cell_strides`).
    ``rates``: the atrous rates of the 3x3 branches, used as written (DeepLabv3 doubles them,
    to 12, 24, 36, at output stride 8: write them so). ``channels``: width of every ASPP branch
    and of the projection (256 in DeepLabv3).
    """

    type: Literal["aspp"] = "aspp"
    output_stride: Literal[8, 16] = 16
    rates: list[Side] = Field(default_factory=lambda: [6, 12, 18], min_length=1, max_length=MAX_NODES)
    channels: Width = 256


class FusionHead(_Strict):
    """NAS-ASDet adaptive multi-scale fusion with deep-supervision branches (seed 003, 3.2.2).

    ``levels``: the feature levels Fea_1..Fea_n, one per resolution the cells produce (the last
    cell at each resolution; eq. 5 has five, at 1, 1/2, ..., 1/16 of Fea_1). ``deep_supervision``:
    in training the net also returns one prediction per level (eq. 16's branch losses).
    """

    type: Literal["fusion"] = "fusion"
    levels: Annotated[int, Field(ge=1, le=MAX_NODES), BeforeValidator(_no_bool)] = 5
    deep_supervision: StrictBool = True


Head = Annotated[Union[ClassifierHead, ASPPHead, FusionHead], Field(discriminator="type")]


class _Arch(_Strict):
    #: True where the net's modules depend on ``task.input_size`` (then the size is hashed).
    size_dependent: ClassVar[bool] = False


class CellNetArch(_Arch):
    """Stacked DARTS-style cells (RENAS, NAS-ASDet, DARTS). ``reduce`` absent: the normal cell
    at stride 2 reduces, as RENAS does. ``reduction_layers`` absent: reductions at 1/3 and 2/3
    of the depth (the NASNet/DARTS layout).

    ``stem``: ``cifar`` (3x3 conv, stride 1, ``stem_multiplier * init_channels`` channels),
    ``imagenet`` (DARTS' three stride-2 convs, stride 8) or ``stride2`` (the ``cifar`` stem at
    stride 2: NAS-ASDet predicts Fea_1 at half the input size, seed 003 eq. 10).
    """

    #: Spatial stride of each stem.
    STEM_STRIDES: ClassVar[dict[str, int]] = {"cifar": 1, "imagenet": 8, "stride2": 2}

    normal: Cell
    reduce: Cell | None = None
    init_channels: Width = 36
    layers: Annotated[int, Field(ge=1, le=MAX_LAYERS), BeforeValidator(_no_bool)] = 20
    stem: Literal["cifar", "imagenet", "stride2"] = "cifar"
    stem_multiplier: Annotated[int, Field(ge=1, le=64), BeforeValidator(_no_bool)] = 3
    reduction_layers: Annotated[list[Int], Field(max_length=MAX_LAYERS)] | None = None
    head: Head = Field(default_factory=ClassifierHead)

    @model_validator(mode="after")
    def _check_reductions(self) -> CellNetArch:
        if self.reduction_layers is not None:
            bad = [i for i in self.reduction_layers if not 0 <= i < self.layers]
            if bad:
                raise ValueError(f"reduction_layers {bad} out of range 0..{self.layers - 1}")
        return self

    @model_validator(mode="after")
    def _check_head(self) -> CellNetArch:
        strides = self.output_strides()
        if isinstance(self.head, FusionHead) and len(set(strides)) != self.head.levels:
            raise ValueError(
                f"fusion head: levels is {self.head.levels}, but the cells produce {len(set(strides))} "
                f"resolutions (1/{', 1/'.join(map(str, sorted(set(strides))))})"
            )
        if isinstance(self.head, ASPPHead) and strides[-1] != self.head.output_stride:
            raise ValueError(
                f"aspp head: output_stride is {self.head.output_stride}, but stem {self.stem!r} and "
                f"{len(self.reductions())} reductions reach only 1/{strides[-1]}"
            )
        return self

    def reductions(self) -> list[int]:
        """Indices of the reduction cells."""
        if self.reduction_layers is not None:
            return sorted(set(self.reduction_layers))
        return sorted({self.layers // 3, 2 * self.layers // 3})

    def cell_strides(self) -> list[int]:
        """Spatial stride (1 or 2) of each cell: 2 at the reductions, except past an ``aspp`` head's
        output stride, where the reduction position keeps its cell and channel doubling but runs at
        stride 1 (DeepLabv3 keeps the backbone's blocks and removes their striding)."""
        limit = self.head.output_stride if isinstance(self.head, ASPPHead) else None
        total, out = self.STEM_STRIDES[self.stem], []
        reductions = set(self.reductions())
        for i in range(self.layers):
            stride = 2 if i in reductions and (limit is None or 2 * total <= limit) else 1
            total *= stride
            out.append(stride)
        return out

    def output_strides(self) -> list[int]:
        """Stride of each cell's output relative to the input (stem included)."""
        total, out = self.STEM_STRIDES[self.stem], []
        for stride in self.cell_strides():
            total *= stride
            out.append(total)
        return out


class AutoSegNetArch(_Arch):
    """AutoSegNet encoder-decoder (seed 000): layer cells for down, bridge and up, and long-skip bits.
    Depth is computed from ``task.input_size``, ``min_size`` and ``min_ratio``
    (``zoo.families.autosegnet.autosegnet_depth``). ``long_skips`` holds one bit per level *from the
    bottom* (the level next to the bridge first); bits beyond the depth are ignored, missing bits are off."""

    size_dependent: ClassVar[bool] = True
    down: Cell
    bridge: Cell
    up: Cell
    long_skips: list[StrictBool] = Field(min_length=1, max_length=MAX_LAYERS)
    stem_channels: Width = 32
    min_size: Side = 16
    min_ratio: float = Field(default=1 / 32, gt=0, le=1)


class UNetArch(_Arch):
    """pix2pix-style U-Net generator (U-Net translator GA, seed 002): encoder widths, skip bits
    for the L - 1 inner levels (outermost first), 4x4 stride-2 convs, decoder mirrors encoder.
    ``dropout`` applies to the ``dropout_layers`` decoder blocks just outside the innermost one."""

    channels: list[Width] = Field(min_length=2, max_length=13)  # 2**13 = MAX_SIDE: the deepest net any input fits
    skips: list[StrictBool]
    kernel: Literal[4] = 4
    stride: Literal[2] = 2
    norm: Literal["batch", "instance", "none"] = "batch"
    dropout: float = Field(default=0.5, ge=0, lt=1)
    dropout_layers: Int = Field(default=3, ge=0, le=MAX_LAYERS)

    @model_validator(mode="after")
    def _check_skips(self) -> UNetArch:
        if len(self.skips) != len(self.channels) - 1:
            raise ValueError(
                f"skips has {len(self.skips)} bits, but {len(self.channels)} encoder levels need "
                f"{len(self.channels) - 1}"
            )
        return self


class IACBaseUNet(_Strict):
    """An IAC base U-Net defined inline: a timm encoder (``timm:<name>``, built with
    ``features_only=True``) or the plain U-Net encoder (``unet``), and the decoder widths."""

    encoder: str = Field(pattern=r"^(timm:[A-Za-z0-9_.\-]+|unet)$")
    decoder_channels: list[Width] = Field(default_factory=lambda: [256, 128, 64, 32, 16], max_length=MAX_LAYERS)


class IACBaseRef(_Strict):
    """An implant's base: a zoo name (or genotype path) and the architecture hash it must have."""

    model: str = Field(min_length=1)
    arch_hash: str = Field(pattern=r"^[0-9a-f]{16}$")


class IACUNetArch(_Arch):
    """IAC U-Nets (seed 004). Without ``cell``: the base U-Net (plain concatenation skips),
    defined inline. With ``cell``: an implant, naming its base by zoo name and arch hash, with one
    adaptive cell (1x1 in, cell, 1x1 out) in every skip connection listed in ``levels``
    (``None``: every level); one cell genotype, separate weights per level. ``implant`` (implants
    only): how the cell meets the skip: ``residual`` (default) feeds ``skip + align(cell)`` to the decoder, the
    align zero-initialised, so an implant starts exactly at its base; ``replace`` (the paper's
    reading of Fig. 1) feeds the cell's output instead of the skip."""

    base: IACBaseUNet | IACBaseRef
    cell: Cell | None = None
    cell_channels: Width = 16
    levels: Annotated[list[Index], Field(max_length=MAX_LAYERS)] | None = None
    implant: Literal["residual", "replace"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_implant(cls, data: Any) -> Any:
        """An implant without ``implant`` is residual (bases have none)."""
        if isinstance(data, dict) and data.get("cell") is not None and data.get("implant") is None:
            return {**data, "implant": "residual"}
        return data

    @model_validator(mode="after")
    def _check_base_or_implant(self) -> IACUNetArch:
        if self.cell is None:
            if not isinstance(self.base, IACBaseUNet):
                raise ValueError("a base U-Net (no cell) defines its base inline: base = {encoder, decoder_channels}")
            if self.levels is not None:
                raise ValueError("levels needs a cell to implant")
            if self.implant is not None:
                raise ValueError("implant (residual/replace) needs a cell to implant")
        elif not isinstance(self.base, IACBaseRef):
            raise ValueError("an implant names its base by zoo name and arch hash: base = {model, arch_hash}")

        if self.levels is not None and (not self.levels or len(set(self.levels)) != len(self.levels)):
            raise ValueError(f"levels must be distinct skip levels, got {self.levels}")
        return self


class SMPArch(_Arch):
    """A segmentation-models-pytorch model, so baselines are genotypes too."""

    arch: Literal["Unet", "UnetPlusPlus", "FPN", "PSPNet", "DeepLabV3", "DeepLabV3Plus", "Linknet", "MAnet", "PAN"]
    encoder: str = Field(min_length=1)
    encoder_depth: Int = Field(default=5, ge=3, le=5)
    decoder_channels: Annotated[list[Width], Field(max_length=MAX_LAYERS)] | None = None


ARCH_MODELS: dict[str, type[_Arch]] = {
    "cellnet": CellNetArch,
    "autosegnet": AutoSegNetArch,
    "unet": UNetArch,
    "iac-unet": IACUNetArch,
    "smp": SMPArch,
}

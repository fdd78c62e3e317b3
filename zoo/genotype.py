"""The genotype contract: one JSON document describes one concrete network.

A genotype is validated on load (strict pydantic models: unknown fields are errors), written
canonically (sorted keys, ints stay ints) and carries ``arch_hash``, a content hash of what
determines the net's modules, so that a weight file can say which architecture it belongs to.

Every failure is a :class:`zoo.errors.GenotypeError` whose one-line message names the source,
the field and the problem.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from zoo.errors import GenotypeError
from zoo.ops import OP_NAMES

SCHEMA_VERSION = "nasseg.genotype/1"
FAMILIES = ("cellnet", "autosegnet", "unet", "iac-unet", "smp")

PositiveInt = Annotated[int, Field(ge=1)]


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

    nodes: list[list[tuple[str, int]]] = Field(min_length=1)
    concat: list[int] | Literal["loose"] = "loose"
    residual: bool = False

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
    in_channels: PositiveInt = 3
    num_classes: PositiveInt = 1
    input_size: tuple[PositiveInt, PositiveInt] = (256, 256)


class Weights(_Strict):
    """A safetensors file (relative to the genotype file or ``$NASSEG_HOME/weights``)."""

    file: str = Field(min_length=1)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    arch_hash: str = Field(pattern=r"^[0-9a-f]{16}$")


class Provenance(_Strict):
    """Where a genotype came from: searcher, data, seed, cost, metrics, versions, citation."""

    searcher: str | None = None
    dataset: str | None = None
    seed: int | None = None
    search_seconds: float | None = Field(default=None, ge=0)
    metrics: dict[str, float] = Field(default_factory=dict)
    library_versions: dict[str, str] = Field(default_factory=dict)
    created: str | None = None
    source: str | None = None


# ---------------------------------------------------------------------------------------------
# Family-specific architectures
# ---------------------------------------------------------------------------------------------


class ClassifierHead(_Strict):
    """Global pooling + linear classifier; optional DARTS auxiliary head (training only)."""

    type: Literal["classifier"] = "classifier"
    auxiliary: bool = False


class ASPPHead(_Strict):
    """DeepLabv3 ASPP on the cell stack at output stride 16 (RENAS, seed 001, section 5.4)."""

    type: Literal["aspp"] = "aspp"
    output_stride: Literal[8, 16] = 16
    rates: list[PositiveInt] = Field(default_factory=lambda: [6, 12, 18])
    channels: PositiveInt = 256


class FusionHead(_Strict):
    """NAS-ASDet adaptive multi-scale fusion with deep-supervision branches (seed 003, 3.2.2)."""

    type: Literal["fusion"] = "fusion"
    levels: PositiveInt = 5
    deep_supervision: bool = True


Head = Annotated[Union[ClassifierHead, ASPPHead, FusionHead], Field(discriminator="type")]


class _Arch(_Strict):
    #: True where the net's modules depend on ``task.input_size`` (then the size is hashed).
    size_dependent: ClassVar[bool] = False


class CellNetArch(_Arch):
    """Stacked DARTS-style cells (RENAS, NAS-ASDet, DARTS). ``reduce`` absent: the normal cell
    at stride 2 reduces, as RENAS does. ``reduction_layers`` absent: reductions at 1/3 and 2/3
    of the depth (the NASNet/DARTS layout)."""

    normal: Cell
    reduce: Cell | None = None
    init_channels: PositiveInt = 36
    layers: PositiveInt = 20
    stem: Literal["cifar", "imagenet"] = "cifar"
    stem_multiplier: PositiveInt = 3
    reduction_layers: list[int] | None = None
    head: Head = Field(default_factory=ClassifierHead)

    @model_validator(mode="after")
    def _check_reductions(self) -> CellNetArch:
        if self.reduction_layers is not None:
            bad = [i for i in self.reduction_layers if not 0 <= i < self.layers]
            if bad:
                raise ValueError(f"reduction_layers {bad} out of range 0..{self.layers - 1}")
        return self

    def reductions(self) -> list[int]:
        """Indices of the reduction cells."""
        if self.reduction_layers is not None:
            return sorted(set(self.reduction_layers))
        return sorted({self.layers // 3, 2 * self.layers // 3})


class AutoSegNetArch(_Arch):
    """AutoSegNet encoder-decoder: layer cells for down, bridge and up, and long-skip bits.
    Depth is computed from ``task.input_size``, ``min_size`` and ``min_ratio`` (seed 000)."""

    size_dependent: ClassVar[bool] = True
    down: Cell
    bridge: Cell
    up: Cell
    long_skips: list[bool] = Field(min_length=1)
    stem_channels: PositiveInt = 32
    min_size: PositiveInt = 16
    min_ratio: float = Field(default=1 / 32, gt=0, le=1)


class UNetArch(_Arch):
    """pix2pix-style U-Net generator (U-Net translator GA, seed 002): encoder widths, skip bits
    for the L - 1 inner levels (outermost first), 4x4 stride-2 convs, decoder mirrors encoder.
    ``dropout`` applies to the ``dropout_layers`` decoder blocks just outside the innermost one."""

    channels: list[PositiveInt] = Field(min_length=2)
    skips: list[bool]
    kernel: Literal[4] = 4
    stride: Literal[2] = 2
    norm: Literal["batch", "instance", "none"] = "batch"
    dropout: float = Field(default=0.5, ge=0, lt=1)
    dropout_layers: int = Field(default=3, ge=0)

    @model_validator(mode="after")
    def _check_skips(self) -> UNetArch:
        if len(self.skips) != len(self.channels) - 1:
            raise ValueError(
                f"skips has {len(self.skips)} bits, but {len(self.channels)} encoder levels need "
                f"{len(self.channels) - 1}"
            )
        return self


class IACBase(_Strict):
    """The base U-Net of an IAC net: a timm encoder (``timm:<name>``) or the plain U-Net encoder."""

    encoder: str = Field(pattern=r"^(timm:[A-Za-z0-9_.\-]+|unet)$")
    decoder_channels: list[PositiveInt] = Field(default_factory=lambda: [256, 128, 64, 32, 16])


class IACUNetArch(_Arch):
    """U-Net with an implanted adaptive cell (1x1 in, cell, 1x1 out) in the chosen skip levels."""

    base: IACBase
    cell: Cell
    cell_channels: PositiveInt = 16
    levels: list[int] = Field(min_length=1)


class SMPArch(_Arch):
    """A segmentation-models-pytorch model, so baselines are genotypes too."""

    arch: Literal["Unet", "UnetPlusPlus", "FPN", "PSPNet", "DeepLabV3", "DeepLabV3Plus", "Linknet", "MAnet", "PAN"]
    encoder: str = Field(min_length=1)
    encoder_depth: int = Field(default=5, ge=3, le=5)
    decoder_channels: list[PositiveInt] | None = None


ARCH_MODELS: dict[str, type[_Arch]] = {
    "cellnet": CellNetArch,
    "autosegnet": AutoSegNetArch,
    "unet": UNetArch,
    "iac-unet": IACUNetArch,
    "smp": SMPArch,
}

# ---------------------------------------------------------------------------------------------
# The genotype document
# ---------------------------------------------------------------------------------------------


class Genotype(_Strict):
    """One concrete network. Load with :meth:`from_json` / :meth:`from_dict`; never mutate,
    use :meth:`replace`. Per-family subclasses give ``arch`` its type."""

    schema_: Literal["nasseg.genotype/1"] = Field(default=SCHEMA_VERSION, alias="schema")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$", max_length=128)
    family: str
    task: Task
    arch: Any
    weights: Weights | None = None
    provenance: Provenance = Field(default_factory=Provenance)

    _source: Path | None = PrivateAttr(default=None)

    # -- loading --------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> Genotype:
        """Validate ``data``; raise :class:`GenotypeError` naming ``source`` and the field."""
        if not isinstance(data, dict):
            raise GenotypeError(f"{source}: a genotype must be a JSON object, got {type(data).__name__}")
        schema = data.get("schema", SCHEMA_VERSION)
        if schema != SCHEMA_VERSION:
            raise GenotypeError(
                f"{source}: schema: unknown schema version {schema!r} (this nasseg reads {SCHEMA_VERSION!r})"
            )
        family = data.get("family")
        if family not in FAMILIES:
            close = difflib.get_close_matches(str(family), FAMILIES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise GenotypeError(f"{source}: family: unknown family {family!r}{hint}; known: {', '.join(FAMILIES)}")
        try:
            return _ADAPTER.validate_python(data)
        except ValidationError as exc:
            raise GenotypeError(f"{source}: {_describe(exc, family)}") from None
        except (ValueError, TypeError) as exc:  # pragma: no cover - pydantic wraps these
            raise GenotypeError(f"{source}: {exc}") from None

    @classmethod
    def from_json(cls, path_or_text: str | Path) -> Genotype:
        """Read a genotype from a ``.json`` file path (or a JSON string starting with ``{``)."""
        if isinstance(path_or_text, str) and path_or_text.lstrip().startswith("{"):
            text, source, path = path_or_text, "<json>", None
        else:
            path = Path(path_or_text)
            source = str(path)
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                raise GenotypeError(f"{source}: no such genotype file") from None
            except (OSError, UnicodeDecodeError) as exc:
                raise GenotypeError(f"{source}: cannot read genotype file: {exc}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise GenotypeError(f"{source}: line {exc.lineno} column {exc.colno}: invalid JSON: {exc.msg}") from None
        genotype = cls.from_dict(data, source=source)
        genotype._source = path.resolve() if path is not None else None
        return genotype

    @classmethod
    def from_darts(
        cls,
        text: str,
        family: str = "cellnet",
        name: str = "darts-import",
        task: Task | dict | None = None,
        **arch: Any,
    ) -> Genotype:
        """Import a published DARTS-format ``Genotype(normal=..., normal_concat=..., ...)`` text.

        ``family="cellnet"`` takes normal and reduce cells; ``family="iac-unet"`` takes the
        normal cell as the implanted cell. Extra keyword arguments fill the family's ``arch``.
        """
        from zoo.darts_format import parse_darts

        cells = parse_darts(text)
        if family == "cellnet":
            arch_data = {
                "normal": cells["normal"],
                **({"reduce": cells["reduce"]} if "reduce" in cells else {}),
            }
        elif family == "iac-unet":
            arch_data = {"cell": cells["normal"]}
        else:
            raise GenotypeError(f"from_darts: family {family!r} has no DARTS cells (use cellnet or iac-unet)")
        arch_data.update(arch)
        if isinstance(task, Task):
            task = task.model_dump()
        default_kind = "classification" if family == "cellnet" else "segmentation"
        data = {"name": name, "family": family, "task": task or {"kind": default_kind}, "arch": arch_data}
        return cls.from_dict(data, source=f"DARTS import {name!r}")

    # -- writing --------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (with defaults, ``schema`` key spelled as in the contract)."""
        return self.model_dump(mode="json", by_alias=True)

    def to_json(self, path: str | Path | None = None) -> str:
        """Canonical JSON (sorted keys, 2-space indent, trailing newline); written to ``path`` if given."""
        text = canonical_json(self.to_dict(), indent=2) + "\n"
        if path is not None:
            from zoo.io import atomic_write_text

            atomic_write_text(Path(path), text)
        return text

    def to_darts(self) -> str:
        """Export the cells back to DARTS-format text (``cellnet`` and ``iac-unet`` only)."""
        from zoo.darts_format import format_darts

        if isinstance(self.arch, CellNetArch):
            return format_darts(self.arch.normal, self.arch.reduce)
        if isinstance(self.arch, IACUNetArch):
            return format_darts(self.arch.cell, None)
        raise GenotypeError(f"genotype {self.name!r}: family {self.family!r} has no DARTS-format cells")

    def replace(self, **changes: Any) -> Genotype:
        """A new, re-validated genotype with top-level fields replaced (``task``/``arch`` may be dicts)."""
        data = self.to_dict()
        for key, value in changes.items():
            data[key] = value.model_dump(mode="json", by_alias=True) if isinstance(value, BaseModel) else value
        new = Genotype.from_dict(data, source=f"genotype {self.name!r}")
        new._source = self._source
        return new

    # -- identity -------------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        """Equal documents (the file a genotype was read from does not matter)."""
        return isinstance(other, Genotype) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(canonical_json(self.to_dict()))

    @property
    def arch_hash(self) -> str:
        """16 hex digits of SHA-256 over what fixes the modules: family, task (input size only
        where the family's depth depends on it) and arch with defaults filled and cells resolved."""
        task = self.task.model_dump(mode="json")
        if not type(self.arch).size_dependent:
            task.pop("input_size")
        arch = _resolve_cells(self.arch.model_dump(mode="json"), self.arch)
        payload = canonical_json({"family": self.family, "task": task, "arch": arch})
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    @property
    def source(self) -> Path | None:
        """The file this genotype was read from, if any."""
        return self._source

    def cells(self) -> dict[str, Cell]:
        """Every cell of the arch by field name (empty for families without cells)."""
        return {key: value for key, value in self.arch if isinstance(value, Cell)}


class CellNetGenotype(Genotype):
    family: Literal["cellnet"]
    arch: CellNetArch


class AutoSegNetGenotype(Genotype):
    family: Literal["autosegnet"]
    arch: AutoSegNetArch


class UNetGenotype(Genotype):
    family: Literal["unet"]
    arch: UNetArch


class IACUNetGenotype(Genotype):
    family: Literal["iac-unet"]
    arch: IACUNetArch


class SMPGenotype(Genotype):
    family: Literal["smp"]
    arch: SMPArch


AnyGenotype = Annotated[
    Union[CellNetGenotype, AutoSegNetGenotype, UNetGenotype, IACUNetGenotype, SMPGenotype],
    Field(discriminator="family"),
]
_ADAPTER: TypeAdapter = TypeAdapter(AnyGenotype)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the contract (``genotypes/schema.json`` is generated from this)."""
    schema = _ADAPTER.json_schema(by_alias=True)
    schema["$id"] = "https://nasseg.dev/schema/genotype-1.json"
    schema["title"] = "nasseg genotype (schema nasseg.genotype/1)"
    return schema


def canonical_json(data: Any, indent: int | None = None) -> str:
    """Sorted keys, no NaN, ints as ints. Compact without ``indent``; with it, objects break over
    lines while arrays without objects stay on one line when they fit (cells stay readable)."""
    if indent is None:
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return _pretty(data, indent, 0)


def _pretty(value: Any, indent: int, level: int, width: int = 96) -> str:
    inline = json.dumps(value, sort_keys=True, separators=(", ", ": "), ensure_ascii=False, allow_nan=False)
    fits = len(inline) + indent * level <= width and "{" not in inline.replace("{}", "")
    if not isinstance(value, dict | list) or not value or fits and isinstance(value, list):
        return inline
    pad, inner = " " * (indent * level), " " * (indent * (level + 1))
    if isinstance(value, dict):
        items = [
            f"{inner}{json.dumps(k, ensure_ascii=False)}: {_pretty(value[k], indent, level + 1)}" for k in sorted(value)
        ]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    items = [f"{inner}{_pretty(v, indent, level + 1)}" for v in value]
    return "[\n" + ",\n".join(items) + f"\n{pad}]"


def _resolve_cells(dumped: dict[str, Any], arch: _Arch) -> dict[str, Any]:
    for key in dumped:
        value = getattr(arch, key, None)
        if isinstance(value, Cell):
            dumped[key] = value.canonical()
    return dumped


_FAMILY_FIELDS = {family: set(model.model_fields) for family, model in ARCH_MODELS.items()}


def _describe(exc: ValidationError, family: str) -> str:
    """One line from a pydantic error: ``field.path: problem; ...`` (first three problems)."""
    parts = []
    for error in exc.errors(include_url=False):
        loc = [str(x) for x in error["loc"]]
        if loc and loc[0] == family:
            loc = loc[1:]
        where = _format_loc(loc)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden" and len(loc) == 2 and loc[0] == "arch":
            owners = [f for f, fields in _FAMILY_FIELDS.items() if loc[1] in fields and f != family]
            if owners:
                message = f"field of family {' / '.join(owners)}, not of {family!r}"
            else:
                message = f"unknown field for family {family!r} (known: {', '.join(sorted(_FAMILY_FIELDS[family]))})"
        elif error["type"] == "extra_forbidden":
            message = "unknown field"
        parts.append(f"{where}: {message}" if where else message)
    more = f" (and {len(parts) - 3} more)" if len(parts) > 3 else ""
    return "; ".join(parts[:3]) + more


def _format_loc(loc: list[str]) -> str:
    text = ""
    for item in loc:
        if item.isdigit():
            text += f"[{item}]"
        elif item.startswith(("function-", "tagged-union", "list[", "tuple[", "literal[")):
            continue
        else:
            text += f".{item}" if text else item
    return text

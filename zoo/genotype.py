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
import math
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, PrivateAttr, TypeAdapter, ValidationError

from nasseg.zoo.archs import (
    ARCH_MODELS,
    ASPPHead,
    AutoSegNetArch,
    Cell,
    CellNetArch,
    ClassifierHead,
    FusionHead,
    IACBaseRef,
    IACBaseUNet,
    IACUNetArch,
    Provenance,
    SMPArch,
    Task,
    UNetArch,
    Weights,
    _Arch,
    _Strict,
)
from nasseg.zoo.errors import GenotypeError

SCHEMA_VERSION = "nasseg.genotype/1"
#: A genotype is a few KB nested a few levels; far past that is a broken or hostile file.
MAX_NESTING = 32
#: a model name: a file stem with no folders and no leading dot (the registry checks names with it too)
MODEL_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._+-]*"
MAX_JSON_INT = 2**53  # integers a JSON reader anywhere keeps exactly
MAX_DOCUMENT_CHARS = 4 * 2**20
FAMILIES = tuple(ARCH_MODELS)

__all__ = [
    "ASPPHead", "AutoSegNetArch", "Cell", "CellNetArch", "ClassifierHead", "FusionHead", "Genotype", "IACBaseRef",
    "IACBaseUNet", "IACUNetArch", "Provenance", "SMPArch", "SCHEMA_VERSION", "Task", "UNetArch", "Weights",
    "canonical_json", "json_schema",
]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The genotype document
# ---------------------------------------------------------------------------------------------


class Genotype(_Strict):
    """One concrete network. Load with :meth:`from_json` / :meth:`from_dict`; never mutate,
    use :meth:`replace`. Per-family subclasses give ``arch`` its type."""

    schema_: Literal["nasseg.genotype/1"] = Field(default=SCHEMA_VERSION, alias="schema")
    name: str = Field(pattern=f"^{MODEL_NAME_PATTERN}$", max_length=128)
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
        _check_values(data, source)
        schema = data.get("schema", SCHEMA_VERSION)
        if schema != SCHEMA_VERSION:
            raise GenotypeError(
                f"{source}: schema: unknown schema version {schema!r} (this nasseg reads {SCHEMA_VERSION!r})"
            )
        family = data.get("family")
        if "family" not in data:
            raise GenotypeError(f"{source}: family: missing (one of {', '.join(FAMILIES)})")
        if family not in FAMILIES:
            close = difflib.get_close_matches(str(family), FAMILIES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise GenotypeError(f"{source}: family: unknown family {family!r}{hint}; known: {', '.join(FAMILIES)}")
        try:
            return _ADAPTER.validate_python(data)
        except ValidationError as exc:
            message = _describe(exc, family).replace("\n", "\\n").replace("\r", "\\r")
            raise GenotypeError(f"{source}: {message}") from None
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
        if len(text) > MAX_DOCUMENT_CHARS:
            raise GenotypeError(f"{source}: {len(text)} characters; a genotype has at most {MAX_DOCUMENT_CHARS}")
        try:
            data = strict_json_loads(text)
        except RecursionError:
            raise GenotypeError(f"{source}: JSON nested deeper than {MAX_NESTING} levels") from None
        except json.JSONDecodeError as exc:
            raise GenotypeError(f"{source}: line {exc.lineno} column {exc.colno}: invalid JSON: {exc.msg}") from None
        except ValueError as exc:  # strict_json_loads: NaN, Infinity, huge integers, duplicate keys
            raise GenotypeError(f"{source}: invalid JSON: {exc}") from None
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
        from nasseg.zoo.darts_format import parse_darts

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
        """Plain JSON-able dict (with defaults, ``schema`` key spelled as in the contract; ``task.class_names``
        and ``provenance.latency`` only when set)."""
        data = self.model_dump(mode="json", by_alias=True)
        if data["task"].get("class_names") is None:
            data["task"].pop("class_names", None)
        if data["provenance"].get("latency") is None:
            data["provenance"].pop("latency", None)
        return data

    def to_json(self, path: str | Path | None = None) -> str:
        """Canonical JSON (sorted keys, 2-space indent, trailing newline); written to ``path`` if given."""
        text = canonical_json(self.to_dict(), indent=2) + "\n"
        if path is not None:
            from nasseg.zoo.io import atomic_write_text

            atomic_write_text(Path(path), text)
        return text

    def to_darts(self) -> str:
        """Export the cells back to DARTS-format text (``cellnet`` and ``iac-unet`` only)."""
        from nasseg.zoo.darts_format import format_darts

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
        task.pop("class_names")  # names change no module
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


def strict_json_loads(text: str) -> Any:
    """``json.loads`` that refuses what JSON does not define or a genotype cannot mean: ``NaN`` and
    ``Infinity``, integers beyond 2**53 (or longer than 20 digits), and an object with a key twice
    (``json`` would silently keep the last). Each is a one-line ``ValueError``."""

    def constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    def integer(digits: str) -> int:
        if len(digits.lstrip("-")) > 20 or abs(int(digits)) > MAX_JSON_INT:
            shown = digits if len(digits) <= 24 else f"{digits[:12]}... ({len(digits)} digits)"
            raise ValueError(f"integer {shown} is beyond 2**53")
        return int(digits)

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for key, value in pairs:
            if key in data:
                raise ValueError(f"key {key[:60]!r} appears twice in one object")
            data[key] = value
        return data

    return json.loads(text, parse_constant=constant, parse_int=integer, object_pairs_hook=unique)


def _check_values(data: Any, source: str) -> None:
    """Refuse documents nested deeper than :data:`MAX_NESTING`, non-finite numbers and integers beyond
    2**53 anywhere (walked without recursion; a dict from code gets the checks a JSON file gets)."""
    stack: list[tuple[Any, int, str]] = [(data, 1, "")]
    while stack:
        value, depth, where = stack.pop()
        if depth > MAX_NESTING:
            raise GenotypeError(f"{source}: JSON nested deeper than {MAX_NESTING} levels")
        if isinstance(value, float) and not math.isfinite(value):
            raise GenotypeError(f"{source}: {where or 'value'}: {value} is not a finite number")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_JSON_INT:
            raise GenotypeError(f"{source}: {where or 'value'}: integer beyond 2**53")
        if isinstance(value, dict):
            stack.extend((child, depth + 1, f"{where}.{key}".lstrip(".")[:200]) for key, child in value.items())
        elif isinstance(value, list | tuple):
            stack.extend((child, depth + 1, f"{where}[{i}]") for i, child in enumerate(value))


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
        elif not item.isidentifier():  # a user's odd key ("", "a b", "\n"): quote it, keep one line
            text += f"[{item!r}]"
        else:
            text += f".{item}" if text else item
    return text

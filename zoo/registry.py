"""Model registry and factory, in the manner of timm's ``_registry`` / ``_factory``.

Registered names are the stems of ``genotypes/*.json`` shipped with the package, plus those in
``$NASSEG_HOME/genotypes`` (a user's registration shadows a shipped one, with a warning).
``create_model`` takes a name, a path to a genotype JSON, or a :class:`Genotype`, builds it with
its family builder, attaches the genotype
and the input divisor, and loads weights on request.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import re
import stat
import warnings
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasseg.zoo.errors import GenotypeError, InputSizeError, ModelNotFoundError, WeightsError
from nasseg.zoo.genotype import MODEL_NAME_PATTERN, Genotype, Task
from nasseg.zoo.io import atomic_copy, atomic_write_text, sha256_file
from nasseg.zoo.weight_files import find_weights, nasseg_home

if TYPE_CHECKING:
    from torch import nn

ModelSpec = str | Path | Genotype
#: JSON files of the genotypes folder that are not genotypes: the contract's schema, and the cost
#: index ``nasseg list`` reads without torch (``scripts/record_costs.py`` writes it)
SHIPPED_DATA_FILES = ("schema.json", "costs.json")
#: a model name, as a genotype's ``name`` field allows it (a file stem: no separators, no leading dot)
MODEL_NAME = re.compile(MODEL_NAME_PATTERN)


def genotype_dirs() -> list[Path]:
    """Directories scanned for registered genotypes, shipped first."""
    shipped = Path(str(resources.files("nasseg.genotypes")))
    return [shipped, nasseg_home() / "genotypes"]


def is_genotype_file(path: Path) -> bool:
    """Whether a JSON file claims to be a genotype (``"schema": "nasseg.genotype/..."``); other JSON
    (a run's ``metrics.json`` copied along) is not a registration and is skipped."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and str(data.get("schema", "")).startswith("nasseg.genotype/")


_WARNED_SHADOWS: set[str] = set()
_WARNED_STRAYS: set[Path] = set()


def _registered() -> dict[str, Path]:
    """Name -> genotype file; a user's registration wins over a shipped one of the same name (warned once)."""
    found: dict[str, Path] = {}
    for user, directory in enumerate(genotype_dirs()):  # 0: shipped, 1: $NASSEG_HOME
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.json")):
            if path.name in SHIPPED_DATA_FILES:
                continue
            if user and not is_genotype_file(path):
                if path not in _WARNED_STRAYS:
                    _WARNED_STRAYS.add(path)
                    warnings.warn(f"{path}: not a genotype (no \"schema\": \"nasseg.genotype/1\"); skipped",
                                  UserWarning, stacklevel=3)  # fmt: skip
                continue
            if user and path.stem in found and path.stem not in _WARNED_SHADOWS:
                _WARNED_SHADOWS.add(path.stem)
                warnings.warn(f"{path} shadows the shipped model {path.stem!r}: create_model({path.stem!r}) "
                              "builds yours", UserWarning, stacklevel=3)  # fmt: skip
            found[path.stem] = path
    return found


def shipped_names() -> set[str]:
    """Names of the genotypes shipped with the package."""
    shipped = genotype_dirs()[0]
    return {p.stem for p in shipped.glob("*.json") if p.name not in SHIPPED_DATA_FILES}


def register(source: str | Path, name: str | None = None, force: bool = False) -> Path:
    """Copy a trained genotype (a ``.json`` file, or a run folder holding one) and its weight file into
    ``$NASSEG_HOME/genotypes``, under ``name`` if given; returns the registered genotype file. An
    existing registration, or a shipped model's name, is refused unless ``force``.

    Everything is checked before anything is written: the name is a plain name (no folders), the
    weight file is a regular file (not a symlink) whose checksum and recorded architecture hash match
    the genotype. Both files are written atomically (a kill leaves the old registration whole)."""
    path = _trained_genotype_file(Path(source))
    genotype = Genotype.from_json(path)
    if genotype.weights is None:
        raise GenotypeError(f"{path}: names no weight file; train it first (nasseg train)")
    name = check_model_name(name or genotype.name)
    weights = _checked_weights(genotype)
    if name in shipped_names() and not force:
        raise GenotypeError(f"{name!r} is the name of a shipped model: pass --name NEW (or --force to shadow the "
                            "shipped one with yours)")  # fmt: skip
    target_dir = nasseg_home() / "genotypes"
    target = target_dir / f"{name}.json"
    if target.exists() and not force:
        raise GenotypeError(f"{target} already registers {name!r}; pass --force to replace it, or --name NEW")
    weights_target = target_dir / f"{name}.safetensors"
    registered = genotype.replace(name=name, weights=genotype.weights.model_copy(update={"file": weights_target.name}))
    atomic_copy(weights, weights_target, mode=0o644)
    atomic_write_text(target, registered.to_json())
    return target


def check_model_name(name: str) -> str:
    """``name`` if it is a plain model name (what a genotype's ``name`` allows: no folders, no
    leading dot), else a one-line :class:`GenotypeError`."""
    if not MODEL_NAME.fullmatch(name) or len(name) > 128:
        shown = name if len(name) <= 60 else name[:57] + "..."
        raise GenotypeError(f"model name {shown!r}: use a plain name of letters, digits, '.', '_', '+' and '-' "
                            "(no folders, at most 128 characters)")  # fmt: skip
    return name


def _checked_weights(genotype: Genotype) -> Path:
    """The genotype's weight file once it is known to be a regular file that matches the genotype."""
    from nasseg.zoo.weights import read_arch_hash

    weights = find_weights(genotype)
    if weights.is_symlink() or not stat.S_ISREG(weights.lstat().st_mode):
        raise WeightsError(f"{weights}: not a regular file (a symlink or special file); copy the file itself there")
    recorded = read_arch_hash(weights)
    if recorded != genotype.arch_hash:
        raise WeightsError(f"{weights}: records architecture {recorded}, not {genotype.arch_hash} "
                           f"({genotype.name!r}); these weights belong to another net")  # fmt: skip
    if genotype.weights.sha256 and sha256_file(weights) != genotype.weights.sha256:
        raise WeightsError(f"{weights}: checksum differs from the genotype's weights.sha256 (changed or damaged)")
    return weights


def _trained_genotype_file(source: Path) -> Path:
    if source.is_file():
        return source
    if not source.is_dir():
        raise GenotypeError(f"{source}: no such genotype file or run folder")
    candidates = [p for p in sorted(source.glob("*.json")) if is_genotype_file(p) and p.name != "best.json"]
    trained = [p for p in candidates if Genotype.from_json(p).weights is not None]
    if len(trained) != 1:
        found = ", ".join(p.name for p in trained) or "none"
        raise GenotypeError(f"{source}: expected one trained genotype .json (with weights), found {found}; "
                            "name the file instead")  # fmt: skip
    return trained[0]


def list_models(pattern: str = "*") -> list[str]:
    """Sorted registered model names matching a shell-style ``pattern`` (e.g. ``"smp-*"``)."""
    return sorted(name for name in _registered() if fnmatch.fnmatchcase(name, pattern))


def get_genotype(name: str) -> Genotype:
    """The genotype registered under ``name``; unknown names suggest close ones."""
    registered = _registered()
    if name not in registered:
        close = difflib.get_close_matches(name, list(registered), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `nasseg list` shows the registered models"
        raise ModelNotFoundError(f"unknown model {name!r}{hint}")
    genotype = Genotype.from_json(registered[name])
    if genotype.name != name:
        raise GenotypeError(f"{registered[name]}: name {genotype.name!r} differs from the file stem {name!r}")
    return genotype


def resolve_genotype(spec: ModelSpec) -> Genotype:
    """A :class:`Genotype` from a genotype, a ``.json`` path, or a registered name."""
    if isinstance(spec, Genotype):
        return spec
    text = str(spec)
    if isinstance(spec, Path) or text.endswith(".json") or Path(text).is_file():
        return Genotype.from_json(Path(text))
    return get_genotype(text)


def apply_overrides(genotype: Genotype, overrides: dict[str, Any]) -> Genotype:
    """Replace task fields (``num_classes=3``) or arch fields (``init_channels=16``) by keyword."""
    if not overrides:
        return genotype
    task, arch = genotype.task.model_dump(mode="json"), genotype.arch.model_dump(mode="json")
    arch_fields = type(genotype.arch).model_fields
    for key, value in overrides.items():
        if key in Task.model_fields:
            task[key] = value
        elif key in arch_fields:
            arch[key] = value
        else:
            known = ", ".join(sorted([*Task.model_fields, *arch_fields]))
            raise GenotypeError(f"model {genotype.name!r}: unknown override {key!r} (known: {known})")
    if (
        "num_classes" in overrides
        and "class_names" not in overrides
        and task["num_classes"] != genotype.task.num_classes
    ):
        task["class_names"] = None  # the old names do not fit the new classes
    return genotype.replace(task=task, arch=arch)


def input_divisor(genotype: Genotype) -> int:
    """Input height and width must be multiples of this for the net to take them."""
    return family_of(genotype.family).divisor(genotype)


def check_input_size(model_or_genotype: nn.Module | Genotype, size: tuple[int, int]) -> None:
    """Raise :class:`InputSizeError` if the net cannot take an ``(H, W)`` input."""
    genotype = model_or_genotype if isinstance(model_or_genotype, Genotype) else model_or_genotype.genotype
    divisor = input_divisor(genotype)
    height, width = size
    if height < 1 or width < 1 or height % divisor or width % divisor:
        raise InputSizeError(
            f"model {genotype.name!r} needs height and width that are positive multiples of {divisor}; "
            f"got {height}x{width} (zoo.pad_to_multiple pads an image to it and crop_to_original crops back)"
        )


def build_model(genotype: Genotype, max_params: int | None = None) -> nn.Module:
    """Build the net of a genotype (random initialisation) and attach ``genotype`` and ``divisor``.

    The genotype's nominal ``task.input_size`` must honour the family's divisor, and the net must
    fit the size caps (:func:`zoo.budget.check_build_size`; ``max_params`` raises the cap). The
    net refuses an input smaller than its divisor with :class:`InputSizeError`.
    """
    from nasseg.zoo.budget import check_build_size

    family = family_of(genotype.family)
    check_input_size(genotype, genotype.task.input_size)
    check_build_size(genotype, max_params)
    model = family.build(genotype)
    model.genotype = genotype
    model.divisor = family.divisor(genotype)
    model.register_forward_pre_hook(_refuse_too_small)
    return model


def _tracing() -> bool:
    import torch

    exporting = getattr(torch.compiler, "is_exporting", lambda: False)
    return torch.jit.is_tracing() or torch.compiler.is_compiling() or exporting()


def _refuse_too_small(model: nn.Module, args: tuple) -> None:
    """Forward pre-hook: an input below the net's divisor is an InputSizeError naming the smallest size."""
    import torch

    if not args or not isinstance(args[0], torch.Tensor) or args[0].dim() != 4 or _tracing():
        return
    height, width = args[0].shape[-2:]
    if min(height, width) < model.divisor:
        raise InputSizeError(
            f"model {model.genotype.name!r} takes inputs of at least {model.divisor}x{model.divisor} "
            f"(multiples of {model.divisor}); got {height}x{width} (zoo.pad_to_multiple pads an image to it)"
        )


def create_model(
    spec: ModelSpec, pretrained: bool = False, max_params: int | None = None, **overrides: Any
) -> nn.Module:
    """Build a registered model by name, a genotype JSON path, or a :class:`Genotype`.

    ``pretrained=True`` loads the genotype's safetensors weights (refused if they belong to
    another architecture). Keyword overrides replace task or arch fields before building.
    ``max_params`` raises the parameter cap (:mod:`zoo.budget`) for a net meant to be that big.
    """
    genotype = apply_overrides(resolve_genotype(spec), overrides)
    model = build_model(genotype, max_params)
    if pretrained:
        from nasseg.zoo.weights import load_weights

        family = family_of(genotype.family)
        if genotype.weights is None and family.load_pretrained is not None:
            family.load_pretrained(model, genotype)
        else:
            load_weights(model, genotype)
    model.pretrained = pretrained
    return model


_FAMILIES_BOUND = False


def family_of(name: str) -> Any:
    """The :class:`zoo.families.Family` of ``name``; on first use, the families that name other
    models get this registry's resolver (:func:`zoo.families.bind_resolver`)."""
    global _FAMILIES_BOUND
    from nasseg.zoo.families import bind_resolver, get_family

    if not _FAMILIES_BOUND:
        bind_resolver(resolve_genotype)
        _FAMILIES_BOUND = True
    return get_family(name)

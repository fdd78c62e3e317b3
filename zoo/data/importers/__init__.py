"""Importers for the public defect and EM sets users already have, into the checked folder format.

``import_dataset(FORMAT, SRC, OUT)`` reads the layout each download unpacks to (see each module's
docstring for the files it expects, the licence and where to get it) and writes the folder format
with a ``dataset.json`` recording the source, the class names and the split rule. Nothing is
downloaded: the user brings the files.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from nasseg.zoo.data.folder import DatasetError
from nasseg.zoo.data.importers import crackforest, dagm, isbi_em, kolektor2, magnetic_tile, mvtec, neu_seg
from nasseg.zoo.data.importers.common import ImportPlan, write_folder

#: format -> (planner, takes per-defect classes, has its own split)
FORMATS: dict[str, tuple[Callable[..., ImportPlan], bool, bool]] = {
    "mvtec": (mvtec.plan, True, True),
    "dagm": (dagm.plan, False, True),
    "kolektor2": (kolektor2.plan, False, True),
    "magnetic-tile": (magnetic_tile.plan, True, False),
    "neu-seg": (neu_seg.plan, False, True),
    "isbi-em": (isbi_em.plan, False, False),
    "crackforest": (crackforest.plan, False, False),
}
CLASS_MODES = ("binary", "per-defect")
SPLIT_MODES = ("source", "seeded")


def plan_import(fmt: str, src: str | Path, classes: str = "binary", split: str = "source", seed: int = 0) -> ImportPlan:
    """What importing ``src`` as ``fmt`` would write (problems included), without writing it."""
    if fmt not in FORMATS:
        raise DatasetError(Path(src), [f"unknown format {fmt!r}; known: {', '.join(FORMATS)}"])
    if classes not in CLASS_MODES or split not in SPLIT_MODES:
        raise DatasetError(Path(src), [f"--classes is one of {CLASS_MODES} and --split one of {SPLIT_MODES}"])
    planner, per_defect_ok, own_split = FORMATS[fmt]
    src = Path(src)
    if not src.is_dir():
        raise DatasetError(src, [f"{src}: no such folder"])
    if classes == "per-defect" and not per_defect_ok:
        raise DatasetError(src, [f"--classes per-defect: {fmt} has one defect class"])
    kwargs: dict = {"seed": seed}
    if per_defect_ok:
        kwargs["per_defect"] = classes == "per-defect"
    if own_split:
        kwargs["seeded"] = split == "seeded"
    return planner(src, **kwargs)


def import_dataset(fmt: str, src: str | Path, out: str | Path, classes: str = "binary", split: str = "source",
                   seed: int = 0, progress: Callable[[int], None] | None = None,
                   overwrite: bool = False) -> Path:  # fmt: skip
    """Import ``src`` (a ``fmt`` download) into the folder format at ``out``; DatasetError lists every problem."""
    plan = plan_import(fmt, src, classes, split, seed)
    return write_folder(plan, Path(out), str(src), fmt, progress=progress, overwrite=overwrite)


__all__ = ["CLASS_MODES", "FORMATS", "SPLIT_MODES", "import_dataset", "plan_import"]

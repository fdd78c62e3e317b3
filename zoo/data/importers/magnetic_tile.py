"""Magnetic Tile Defects (Huang et al. 2018, https://github.com/abin24/Magnetic-tile-defect-datasets.; free to use,
cite the paper).

The download holds one folder per type, images and masks side by side::

    MT_Blowhole/Imgs/exp1_num_4727.jpg
    MT_Blowhole/Imgs/exp1_num_4727.png     (the mask: 0 background, 255 defect)
    MT_Free/Imgs/...                        (defect-free)

Classes: ``background, defect``, or with ``per_defect`` one class per type (blowhole, break, crack,
fray, uneven). There are no splits: a seeded 70/15/15 one is made.
"""

from __future__ import annotations

from pathlib import Path

from nasseg.zoo.data.importers.common import (
    ImportPlan,
    SourceSample,
    binary_mask_reader,
    class_mask,
    image_reader,
    seeded_splits,
)


def plan(src: Path, per_defect: bool = False, seed: int = 0) -> ImportPlan:
    """The samples of a Magnetic Tile Defects download."""
    problems: list[str] = []
    type_dirs = sorted(p for p in src.glob("MT_*") if (p / "Imgs").is_dir())
    if not type_dirs:
        problems.append(f"{src}: no MT_*/Imgs folders (the Magnetic Tile Defects layout)")
    defects = [d.name.removeprefix("MT_").lower() for d in type_dirs if d.name != "MT_Free"]
    classes = ["background", *defects] if per_defect else ["background", "defect"]
    samples: list[SourceSample] = []
    for type_dir in type_dirs:
        name = type_dir.name.removeprefix("MT_").lower()
        for path in sorted((type_dir / "Imgs").glob("*.jpg")):
            mask = path.with_suffix(".png")
            if not mask.is_file():
                problems.append(f"{path}: no mask {mask.name}")
                continue
            reader = binary_mask_reader(mask, threshold=127)
            if per_defect and name != "free":
                reader = class_mask(reader, classes.index(name))
            samples.append(SourceSample(None, f"{name}-{path.stem}", path, image_reader(path), reader))
    return ImportPlan(seeded_splits(samples, seed), classes, problems, "seeded 70/15/15 (the source has no split)")

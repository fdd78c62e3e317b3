"""DAGM 2007 (https://hci.iwr.uni-heidelberg.de/content/weakly-supervised-learning-industrial-optical-inspection;
free for non-commercial research).

The download unpacks to ``Class1 .. Class10``, each::

    ClassN/Train/0576.PNG
    ClassN/Train/Label/0576_label.PNG     (only defective images have one)
    ClassN/Test/...

Give the root (every class folder) or one ``ClassN``. Images without a label file get empty masks.
Classes: ``background, defect``. Splits: DAGM's own Train/Test (val from train), or ``seeded``.
Stems carry the class folder (``Class1-0576``), so classes do not collide.
"""

from __future__ import annotations

from pathlib import Path

from nasseg.zoo.data.importers.common import (
    ImportPlan,
    SourceSample,
    binary_mask_reader,
    empty_mask_like,
    image_reader,
    seeded_splits,
)


def _class_dirs(src: Path) -> list[Path]:
    if (src / "Train").is_dir() or (src / "Test").is_dir():
        return [src]
    return sorted(p for p in src.glob("Class*") if p.is_dir())


def plan(src: Path, seeded: bool = False, seed: int = 0) -> ImportPlan:
    """The samples of a DAGM 2007 download (root or one class folder)."""
    problems: list[str] = []
    samples: list[SourceSample] = []
    class_dirs = _class_dirs(src)
    if not class_dirs:
        problems.append(f"{src}: no ClassN folders and no Train/ or Test/ (the DAGM 2007 layout)")
    for class_dir in class_dirs:
        for part, split in (("Train", "train"), ("Test", "test")):
            folder = class_dir / part
            if not folder.is_dir():
                problems.append(f"{folder}: missing")
                continue
            for path in sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png"):
                label = folder / "Label" / f"{path.stem}_label{path.suffix}"
                if not label.is_file():
                    label = folder / "Label" / f"{path.stem}_label.PNG"
                image = image_reader(path)
                mask = binary_mask_reader(label) if label.is_file() else empty_mask_like(image)
                samples.append(SourceSample(None if seeded else split, f"{class_dir.name}-{path.stem}", path, image,
                                            mask))  # fmt: skip
    rule = "seeded 70/15/15" if seeded else "DAGM's own Train/Test (val from train)"
    return ImportPlan(seeded_splits(samples, seed), ["background", "defect"], problems, rule)

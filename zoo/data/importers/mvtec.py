"""MVTec AD (https://www.mvtec.com/company/research/datasets/mvtec-ad; CC BY-NC-SA 4.0).

One category folder as the download unpacks it::

    CATEGORY/train/good/000.png
    CATEGORY/test/good/000.png
    CATEGORY/test/DEFECT/000.png
    CATEGORY/ground_truth/DEFECT/000_mask.png

``good`` images get empty masks; every ``test/DEFECT/NAME.png`` needs
``ground_truth/DEFECT/NAME_mask.png``. Classes: ``background, defect``, or with ``per_defect`` one
class per defect type (sorted by name). Splits: MVTec's own (train holds only good images; val
comes from it when the folder is opened), or ``seeded`` 70/15/15 over all images.
"""

from __future__ import annotations

from pathlib import Path

from nasseg.zoo.data.importers.common import (
    ImportPlan,
    SourceSample,
    binary_mask_reader,
    class_mask,
    empty_mask_like,
    image_reader,
    seeded_splits,
)


def plan(src: Path, per_defect: bool = False, seeded: bool = False, seed: int = 0) -> ImportPlan:
    """The samples of an MVTec AD category folder."""
    problems: list[str] = []
    for part in ("train", "test"):
        if not (src / part).is_dir():
            problems.append(f"{src / part}: missing (an MVTec AD category has train/, test/ and ground_truth/)")
    defects = sorted(p.name for p in (src / "test").glob("*") if p.is_dir() and p.name != "good")
    classes = ["background", *defects] if per_defect else ["background", "defect"]
    samples: list[SourceSample] = []
    for part in ("train", "test"):
        for kind_dir in sorted(p for p in (src / part).glob("*") if p.is_dir()):
            for path in sorted(kind_dir.glob("*.png")):
                stem = f"{part}-{kind_dir.name}-{path.stem}"
                split = None if seeded else part
                image = image_reader(path)
                if kind_dir.name == "good":
                    samples.append(SourceSample(split, stem, path, image, empty_mask_like(image)))
                    continue
                mask_path = src / "ground_truth" / kind_dir.name / f"{path.stem}_mask.png"
                if not mask_path.is_file():
                    problems.append(f"{path}: no mask {mask_path.relative_to(src)}")
                    continue
                index = classes.index(kind_dir.name) if per_defect else 1
                samples.append(SourceSample(split, stem, path, image, class_mask(binary_mask_reader(mask_path), index)))
    rule = "seeded 70/15/15" if seeded else "MVTec AD's own train/test (val from train)"
    return ImportPlan(seeded_splits(samples, seed), classes, problems, rule)

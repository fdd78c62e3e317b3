"""One import namespace: an installed nasseg adds exactly one top-level package, ``nasseg``."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("zoo", "searchers", "serving", "genotypes")


def test_the_built_wheel_holds_one_top_level_package(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: building in the checkout would leave its build/ folder there
    for folder in ("nasseg", *FOLDERS):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    [wheel] = (tmp_path / "dist").glob("nasseg-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"nasseg"}, top
    for folder in FOLDERS:  # each folder of the repository is a subpackage
        assert f"nasseg/{folder}/__init__.py" in names
    assert "nasseg/genotypes/unet-small.json" in names and "nasseg/zoo/families/__init__.py" in names
    assert any(n.startswith("nasseg/genotypes/") and n.endswith(".safetensors") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "nasseg = nasseg.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_no_source_imports_the_folders_by_their_bare_names() -> None:
    """``import zoo`` would load a second copy of the modules beside ``nasseg.zoo`` (from the
    repository root only) and fail where nasseg is installed."""
    bare = re.compile(rf"^\s*(from|import) ({'|'.join(FOLDERS)})(\.|\s|$)", re.M)
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    offenders = [path for path in tracked if bare.search((ROOT / path).read_text())]
    assert offenders == []


def test_the_front_door_and_the_subpackages_are_one_set_of_modules() -> None:
    import nasseg
    from nasseg import zoo
    from nasseg.zoo.registry import create_model

    assert nasseg.create_model is zoo.create_model is create_model
    assert zoo.__name__ == "nasseg.zoo" and "zoo" not in sys.modules

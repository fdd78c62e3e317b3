"""Regenerate every shipped genotype and genotypes/schema.json (run from anywhere).

Each ``scripts/genotypes_*.py`` module defines ``genotypes() -> list[Genotype]``; this script
writes each genotype to ``genotypes/<name>.json`` (canonical JSON) and the JSON Schema of the
contract to ``genotypes/schema.json``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from nasseg.zoo.genotype import Genotype, json_schema

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent / "genotypes"


def all_genotypes() -> list[Genotype]:
    """Every genotype of every ``genotypes_*.py`` module, in file order."""
    out: list[Genotype] = []
    for path in sorted(SCRIPTS.glob("genotypes_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
        out.extend(module.genotypes())
    names = [g.name for g in out]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise SystemExit(f"duplicate genotype names: {duplicated}")
    return out


def main() -> None:
    genotypes = all_genotypes()
    for genotype in genotypes:
        genotype.to_json(ROOT / f"{genotype.name}.json")
    (ROOT / "schema.json").write_text(json.dumps(json_schema(), indent=2, sort_keys=True) + "\n")
    print(f"wrote {len(genotypes)} genotypes and schema.json to {ROOT}")


if __name__ == "__main__":
    main()

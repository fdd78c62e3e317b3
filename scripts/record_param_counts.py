"""Record every registered model's parameter count in tests/zoo/param_counts.json (the base tester
checks counts stay stable; rerun this after adding or deliberately changing a model)."""

from __future__ import annotations

import json
from pathlib import Path

from nasseg import zoo

OUT = Path(__file__).resolve().parents[1] / "tests" / "zoo" / "param_counts.json"


def main() -> None:
    counts = {name: sum(p.numel() for p in zoo.create_model(name).parameters()) for name in zoo.list_models()}
    OUT.write_text(json.dumps(counts, indent=2, sort_keys=True) + "\n")
    print(f"recorded {len(counts)} models in {OUT}")


if __name__ == "__main__":
    main()

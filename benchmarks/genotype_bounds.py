"""How fast hostile genotypes are refused: each case of issue 16, timed from JSON text to its one-line error.

Cases: ``layers: 10**9``, ``10**9`` channels, classes or stem width, 100,000 nested objects,
``"in_channels": true``, a path-traversal weight file, widths in bounds that multiply past the
parameter cap (a meta-device build), and an encoder that cannot be built. Each runs ``--repeats``
times in this process; the median and the worst go to ``benchmarks/results/genotype_bounds.json``.

    python benchmarks/genotype_bounds.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

from nasseg import zoo
from nasseg.zoo.errors import NassegError
from nasseg.zoo.genotype import Genotype

RESULTS = Path(__file__).parent / "results" / "genotype_bounds.json"


def cases() -> dict[str, str]:
    """Case name -> genotype JSON text."""
    base = zoo.get_genotype("renas-synth-defects").to_dict()
    base.pop("weights", None)

    def changed(section: str, **values: object) -> str:
        data = copy.deepcopy(base)
        data[section].update(values)
        return json.dumps(data)

    smp = zoo.get_genotype("smp-unet-resnet18").to_dict()
    smp["arch"]["encoder"] = "resnet9999"
    traversal = copy.deepcopy(base)
    traversal["weights"] = {"file": "../../../../etc/passwd", "arch_hash": "0" * 16}
    return {
        "layers_1e9": changed("arch", layers=10**9),
        "channels_1e9": changed("arch", init_channels=10**9),
        "classes_1e9": changed("task", num_classes=10**9),
        "in_channels_true": changed("task", in_channels=True),
        "nested_100000": "{" + '"a":{' * 100_000 + "}" * 100_001,
        "weights_traversal": json.dumps(traversal),
        "widths_past_param_cap": changed("arch", init_channels=8192),
        "unbuildable_encoder": json.dumps(smp),
    }


def refuse(text: str) -> str:
    """The one-line error a genotype gets on load or on a (meta-device) build."""
    try:
        zoo.build_model(Genotype.from_json(text))
    except NassegError as exc:
        return str(exc)
    raise AssertionError("accepted")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = {}
    for name, text in cases().items():
        times, message = [], ""
        for _ in range(args.repeats):
            start = time.perf_counter()
            message = refuse(text)
            times.append(time.perf_counter() - start)
        rows[name] = {"median_s": round(statistics.median(times), 4), "max_s": round(max(times), 4),
                      "one_line": "\n" not in message, "error": message[:200]}  # fmt: skip
        print(name, rows[name], flush=True)
    RESULTS.write_text(json.dumps({"benchmark": "genotype_bounds", "repeats": args.repeats, "cases": rows},
                                  indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()

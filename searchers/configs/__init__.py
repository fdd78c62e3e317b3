"""One typed config per searcher, and one way to build and load them (see :mod:`searchers.configs.base`).

config = UNetGAConfig(data="data/defects", image_size=64, generations=3)
built = config.build()                        # strategy, evaluator, budget
config = load_config("runs/search-unet-ga/run.json")   # a run's config, to replay it
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nasseg.searchers.base import SearchError
from nasseg.searchers.configs.autosegnet import AutoSegNetSearchConfig
from nasseg.searchers.configs.base import BuiltSearch, LatencySettings, SearchConfig, make_searcher, validated, versions
from nasseg.searchers.configs.iac import IacSearchConfig
from nasseg.searchers.configs.nas_asdet import NasAsdetSearchConfig
from nasseg.searchers.configs.renas import RenasConfig
from nasseg.searchers.configs.unet_ga import UNetGAConfig

CONFIGS: dict[str, type[SearchConfig]] = {
    "unet-ga": UNetGAConfig,
    "renas": RenasConfig,
    "autosegnet": AutoSegNetSearchConfig,
    "nas-asdet": NasAsdetSearchConfig,
    "iac": IacSearchConfig,
}


def config_from_dict(values: dict[str, Any], where: str = "config") -> SearchConfig:
    """The searcher's config for ``values`` (its ``searcher`` key names the searcher)."""
    name = values.get("searcher")
    if name not in CONFIGS:
        raise SearchError(f"{where}: 'searcher' must be one of {', '.join(CONFIGS)}, got {name!r}")
    return validated(CONFIGS[name], values, where)


def load_config(path: str | Path) -> SearchConfig:
    """A config from a run's ``run.json`` (its ``config``) or a file ``--print-config`` wrote."""
    path = Path(path)
    if path.is_dir():
        path = path / "run.json"
    try:
        values = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SearchError(f"{path}: cannot read a search config ({exc})") from None
    if not isinstance(values, dict):
        raise SearchError(f"{path}: a search config is a JSON object")
    if "searcher" not in values:
        if "config" not in values:
            raise SearchError(f"{path}: no search config in it (written before run.json recorded configs): "
                              "replay it with its options, or resume it with `nasseg search STRATEGY ... --resume "
                              "RUN`")  # fmt: skip
        values = values["config"]
    return config_from_dict(values, str(path))


__all__ = [
    "AutoSegNetSearchConfig",
    "BuiltSearch",
    "CONFIGS",
    "IacSearchConfig",
    "LatencySettings",
    "NasAsdetSearchConfig",
    "RenasConfig",
    "SearchConfig",
    "UNetGAConfig",
    "config_from_dict",
    "load_config",
    "make_searcher",
    "versions",
]

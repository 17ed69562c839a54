"""mlmon: private ML model monitoring from mergeable profiles in a Parquet metric lake.

``import mlmon`` loads nothing heavy and touches no file, network or
environment variable: the names below are imported on first use.

>>> import mlmon
>>> ref = mlmon.build_reference(df)                         # doctest: +SKIP
>>> lake = mlmon.Lake("file:///data/lake")                  # doctest: +SKIP
>>> lake.drift("risk-model", "2026-10-01", "2026-11-01")    # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "FeatureSpec",
    "Lake",
    "LakeWriter",
    "Reference",
    "Schema",
    "build_reference",
    "load_reference",
    "profile_frame",
    "profile_windows",
    "save_reference",
]

_LAZY = {
    "FeatureSpec": "mlmon.profiles.schema",
    "Lake": "mlmon.analysis.lake",
    "LakeWriter": "mlmon.lake.writer",
    "Reference": "mlmon.profiles.frame",
    "Schema": "mlmon.profiles.schema",
    "build_reference": "mlmon.profiles.frame",
    "load_reference": "mlmon.lake.references",
    "profile_frame": "mlmon.profiles.frame",
    "profile_windows": "mlmon.profiles.frame",
    "save_reference": "mlmon.lake.references",
}

logging.getLogger(__name__).addHandler(logging.NullHandler())

if TYPE_CHECKING:
    from mlmon.analysis.lake import Lake
    from mlmon.lake.references import load_reference, save_reference
    from mlmon.lake.writer import LakeWriter
    from mlmon.profiles.frame import Reference, build_reference, profile_frame, profile_windows
    from mlmon.profiles.schema import FeatureSpec, Schema


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mlmon' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])

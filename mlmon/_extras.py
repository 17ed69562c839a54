"""Lazy imports of optional dependencies with an exact install hint."""

from __future__ import annotations

import importlib
from types import ModuleType

from mlmon.errors import MissingExtraError


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or fail with the ``pip install 'mlmon[extra]'`` hint."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{module} is not installed; it comes with the {extra!r} extra: "
            f"pip install 'mlmon[{extra}]'"
        ) from exc

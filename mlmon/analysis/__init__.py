"""Analysis: drift methods, percentiles and the analysis-ready :class:`Lake`."""

from typing import TYPE_CHECKING, Any

from mlmon.analysis.drift import METHODS, DriftMethod, drift_between, register_method

if TYPE_CHECKING:
    from mlmon.analysis.lake import Lake

__all__ = ["METHODS", "DriftMethod", "Lake", "drift_between", "register_method"]


def __getattr__(name: str) -> Any:
    # Lake on first use: the lake reader imports pyarrow.dataset (and pandas), which
    # `mlmon profile` and the edge, importing the drift methods, never need
    if name == "Lake":
        from mlmon.analysis.lake import Lake

        return Lake
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

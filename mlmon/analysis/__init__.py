"""Analysis: drift methods, percentiles and the analysis-ready :class:`Lake`."""

from mlmon.analysis.drift import METHODS, DriftMethod, drift_between, register_method
from mlmon.analysis.lake import Lake

__all__ = ["METHODS", "DriftMethod", "Lake", "drift_between", "register_method"]

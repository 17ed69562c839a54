"""``mlmon.ray.profile(ds, reference, model=..., window=...)``: see :mod:`mlmon.engines.ray`."""

from mlmon.engines.ray import partial_windows, profile

__all__ = ["partial_windows", "profile"]

"""``mlmon.spark.profile(df, reference, model=..., window=...)``: see :mod:`mlmon.engines.spark`."""

from mlmon.engines.spark import partial_windows, profile

__all__ = ["partial_windows", "profile"]

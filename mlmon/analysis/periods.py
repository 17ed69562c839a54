"""Grouping windows into reporting periods."""

from __future__ import annotations

import polars as pl

from mlmon.errors import ConfigError

__all__ = ["PERIODS", "period_expr"]

#: ``by=`` values and the polars truncation they use (weeks start on Monday).
PERIODS = {"hour": "1h", "day": "1d", "week": "1w", "month": "1mo"}


def period_expr(by: str | None, column: str = "window_start") -> pl.Expr:
    """Expression giving each row's period start; ``by=None`` or ``"all"`` is one period."""
    if by is None or by == "all":
        return pl.col(column).min().alias("period")
    try:
        every = PERIODS[by]
    except KeyError as exc:
        raise ConfigError(
            f"by={by!r} is not a period; use one of {', '.join([*PERIODS, 'all'])}"
        ) from exc
    return pl.col(column).dt.truncate(every).alias("period")

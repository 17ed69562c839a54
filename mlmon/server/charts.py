"""The server's own charts (the report's builders, :mod:`mlmon.reports.charts`, draw the rest).

- :func:`drift_heatmap`: feature x period, colour = the method's value over its threshold;
- :func:`method_chart`: one feature's value of every method over time, with thresholds.

Method ids appear only in tooltips; titles use the methods' plain names.
"""

from __future__ import annotations

import json
import math
from typing import Any

import polars as pl

from mlmon._extras import require
from mlmon.reports.charts import inline_data, to_spec
from mlmon.reports.context import method_name

__all__ = ["drift_heatmap", "method_chart", "spec_island"]

_WIDTH = 620


def _values(df: pl.DataFrame) -> list[dict[str, Any]]:
    from mlmon.server.data import jsonable

    return jsonable(df)


def drift_heatmap(drift: pl.DataFrame, method: str) -> Any | None:
    """Feature x period; colour = value / threshold of ``method`` (1 and above: drifted)."""
    d = drift.filter(pl.col("method") == method)
    if not d.height:
        return None
    alt = require("altair", "server")
    d = d.select(
        "period",
        "feature",
        "value",
        "threshold",
        "drifted",
        (pl.col("value") / pl.col("threshold")).alias("ratio"),
        pl.lit(method).alias("method_id"),
    )
    return (
        alt.Chart(inline_data(_values(d)))
        .mark_rect()
        .encode(
            x=alt.X(
                "period:O",
                title=None,
                timeUnit="utcyearmonthdatehours",
                axis=alt.Axis(format="%b %d %H:%M", labelAngle=-45),
            ),
            y=alt.Y("feature:N", title=None),
            color=alt.Color(
                "ratio:Q",
                title="value / threshold",
                scale=alt.Scale(
                    domain=[0, 1, 2], range=["#f1f8e9", "#ffe082", "#c62828"], clamp=True
                ),
            ),
            tooltip=[
                alt.Tooltip("feature:N"),
                alt.Tooltip("period:T", format="%Y-%m-%d %H:%M", formatType="utc"),
                alt.Tooltip("value:Q", format=".4g"),
                alt.Tooltip("threshold:Q", format=".3g"),
                alt.Tooltip("drifted:N"),
                alt.Tooltip("method_id:N", title="method id"),
            ],
        )
        .properties(
            width=_WIDTH,
            title=f"{method_name(method)}: each period against the reference "
            "(red: over the threshold)",
        )
    )


def method_chart(drift: pl.DataFrame, feature: str) -> Any | None:
    """Every method's value for ``feature`` per period, one small chart per method."""
    d = drift.filter(pl.col("feature") == feature)
    if not d.height:
        return None
    alt = require("altair", "server")
    d = d.select(
        "period",
        "value",
        "threshold",
        "drifted",
        pl.col("method").alias("method_id"),
        pl.col("method").map_elements(method_name, return_dtype=pl.String).alias("method"),
    ).with_columns(pl.col("value").fill_nan(None))
    base = alt.Chart().encode(
        x=alt.X(
            "period:T",
            title=None,
            scale=alt.Scale(type="utc"),
            axis=alt.Axis(format="%b %d", labelAngle=0, tickCount=4),
        )
    )
    line = base.mark_line(point=True, color="#1565c0").encode(
        y=alt.Y("value:Q", title=None),
        tooltip=[
            alt.Tooltip("period:T", format="%Y-%m-%d %H:%M", formatType="utc"),
            alt.Tooltip("value:Q", format=".4g"),
            alt.Tooltip("threshold:Q", format=".3g"),
            alt.Tooltip("drifted:N"),
            alt.Tooltip("method_id:N", title="method id"),
        ],
    )
    rule = (
        alt.Chart()
        .mark_rule(color="#c62828", strokeDash=[4, 3])
        .encode(y=alt.Y("mean(threshold):Q"))
    )
    return (
        alt.layer(line, rule, data=inline_data(_values(d)))
        .properties(width=260, height=110)
        .facet(facet=alt.Facet("method:N", title=None), columns=2)
        .resolve_scale(y="independent")
        .properties(title=f"{feature}: every method per period (dashed: threshold)")
    )


def _finite(v: Any) -> Any:
    """NaN and infinities (no JSON for them) as null, which Vega draws as a gap."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite(x) for x in v]
    return v


def spec_island(chart: Any) -> str:
    """The chart's Vega-Lite spec as JSON safe inside ``<script type="application/json">``."""
    text = json.dumps(_finite(to_spec(chart)), separators=(",", ":"), allow_nan=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")

"""Report charts: altair specs, rendered to SVG for PDF and embedded as Vega for HTML."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from mlmon._extras import require

__all__ = ["chart_specs", "to_svg", "vega_bundle"]

_WIDTH = 560
_STATUS = {"green": "#2e7d32", "amber": "#ef8f00", "red": "#c62828", "grey": "#757575"}


def _alt() -> Any:
    return require("altair", "reports")


def _drift_over_time(rows: list[dict[str, Any]], features: list[str]) -> Any:
    alt = _alt()
    data = [r for r in rows if r["method"] == "jensen_shannon" and r["feature"] in features[:6]]
    if not data:
        return None
    base = alt.Chart(alt.Data(values=data)).encode(
        x=alt.X("period:T", title=None, axis=alt.Axis(format="%b %d", tickCount="day"))
    )
    line = base.mark_line(point=True).encode(
        y=alt.Y("value:Q", title="Jensen-Shannon distance"),
        color=alt.Color("feature:N", title="feature"),
    )
    rule = (
        alt.Chart(alt.Data(values=[{"t": data[0]["threshold"]}]))
        .mark_rule(strokeDash=[4, 3], color="#c62828")
        .encode(y="t:Q")
    )
    return (line + rule).properties(
        width=_WIDTH, height=180, title="Drift by day (dashed: threshold)"
    )


def _distribution(d: dict[str, Any]) -> Any:
    alt = _alt()
    values = [
        {"label": b["label"], "bin": b["bin"], "sample": s, "fraction": b[s]}
        for b in d["bins"] for s in ("reference", "current")
    ]  # fmt: skip
    return (
        alt.Chart(alt.Data(values=values))
        .mark_bar()
        .encode(
            x=alt.X(
                "label:N", sort=alt.SortField("bin"), title=None, axis=alt.Axis(labelAngle=-40)
            ),
            y=alt.Y("fraction:Q", axis=alt.Axis(format="%"), title="share"),
            color=alt.Color(
                "sample:N",
                scale=alt.Scale(domain=["reference", "current"], range=["#9e9e9e", "#1565c0"]),
                title=None,
            ),
            xOffset=alt.XOffset("sample:N", sort=["reference", "current"]),
        )
        .properties(width=_WIDTH, height=170, title=f"{d['feature']}: reference vs current")
    )


def _latency(rows: list[dict[str, Any]]) -> Any:
    alt = _alt()
    values = [
        {"period": r["period"], "percentile": p, "ms": r[p]}
        for r in rows
        for p in ("p50", "p95", "p99")
    ]
    return (
        alt.Chart(alt.Data(values=values)).mark_line(point=True)
        .encode(x=alt.X("period:T", title=None, axis=alt.Axis(format="%b %d", tickCount="day")), y=alt.Y("ms:Q", title="latency (ms)"), color="percentile:N")
        .properties(width=_WIDTH, height=160, title="Latency percentiles by day")
    )  # fmt: skip


def _golden(rows: list[dict[str, Any]]) -> Any:
    alt = _alt()
    return (
        alt.Chart(alt.Data(values=rows)).mark_bar(color="#2e7d32")
        .encode(x=alt.X("period:T", title=None, axis=alt.Axis(format="%b %d", tickCount="day")), y=alt.Y("pass_rate:Q", axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[0, 1]), title="golden pass rate"))
        .properties(width=_WIDTH, height=120, title="Golden checks passed by day")
    )  # fmt: skip


def _volume(rows: list[dict[str, Any]]) -> Any:
    alt = _alt()
    return (
        alt.Chart(alt.Data(values=rows)).mark_bar(color="#1565c0")
        .encode(x=alt.X("period:T", title=None, axis=alt.Axis(format="%b %d", tickCount="day")), y=alt.Y("count:Q", title="records"))
        .properties(width=_WIDTH, height=110, title="Records profiled by day")
    )  # fmt: skip


def chart_specs(section: Any) -> dict[str, Any]:
    """Vega-Lite specs (dicts) of one model section's charts, by name; missing data -> no chart."""
    charts: dict[str, Any] = {}
    if section.volume:
        charts["volume"] = _volume(section.volume)
    if section.drift_over_time:
        c = _drift_over_time(
            section.drift_over_time,
            section.drifted_features or [r["feature"] for r in section.drift],
        )
        if c is not None:
            charts["drift_over_time"] = c
    for i, d in enumerate(section.distributions):
        charts[f"distribution_{i}"] = _distribution(d)
    if section.latency:
        charts["latency"] = _latency(section.latency)
    if section.golden:
        charts["golden"] = _golden(section.golden)
    return {k: json.loads(c.to_json()) for k, c in charts.items()}


def to_svg(spec: dict[str, Any]) -> str:
    """Render a Vega-Lite spec to SVG with vl-convert (fonts embedded, no network)."""
    vlc = require("vl_convert", "reports")
    svg: str = vlc.vegalite_to_svg(spec)
    return svg


@cache
def vega_bundle() -> str:
    """vega, vega-lite and vega-embed as one script, inlined once per HTML report."""
    vlc = require("vl_convert", "reports")
    return str(vlc.javascript_bundle())

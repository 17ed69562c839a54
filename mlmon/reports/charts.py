"""Report charts: altair builders over a section's frames, SVG for the PDF, Vega for the HTML.

Each builder takes polars frames and returns an altair chart, or ``None``
when there is nothing to draw (the template then prints a sentence instead).
Charts carry their data inline; :func:`to_svg` renders with vl-convert (no
browser, no network) and :func:`to_html_fragment` gives a ``<div>`` plus a
``vegaEmbed`` call that needs :func:`vega_bundle` once in the page.

Times are drawn in UTC whatever the reader's time zone.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from datetime import date, datetime
from functools import cache
from itertools import count
from typing import Any

import polars as pl

from mlmon._extras import require
from mlmon.reports.context import Distribution, MethodInfo, ModelSection, method_name

__all__ = [
    "FONT",
    "alerts_chart",
    "calibration_chart",
    "distribution_chart",
    "drift_method",
    "drift_over_time_chart",
    "golden_chart",
    "inline_data",
    "latency_chart",
    "performance_chart",
    "section_charts",
    "to_html_fragment",
    "to_spec",
    "to_svg",
    "vega_bundle",
    "volume_chart",
]

#: The font charts are measured and drawn with (DejaVu is on the report machine).
FONT = "DejaVu Sans"
WIDTH = 560  # plot width in px; with axis labels a chart fits A4 between 16 mm margins
DAY_MS = 86_400_000  # time axes label days: no two ticks within a day (no "Oct 01 Oct 01")
MAX_POINTS = 14  # lines over more periods than this are drawn without point markers
_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu")
_BLUE, _GREY, _GREEN, _AMBER, _RED = "#1565c0", "#9e9e9e", "#2e7d32", "#ef8f00", "#c62828"
_SEVERITY = {"info": _BLUE, "warning": _AMBER, "critical": _RED}
_CONFIG = {
    "font": FONT,
    "view": {"stroke": None},
    "axis": {"labelFontSize": 10, "titleFontSize": 10, "gridColor": "#eeeeee"},
    "legend": {"labelFontSize": 10, "titleFontSize": 10, "orient": "bottom"},
    "title": {"fontSize": 12, "anchor": "start", "fontWeight": "bold"},
    "header": {"labelFontSize": 10, "labelFontWeight": "bold"},
}
_ids = count(1)


def _alt() -> Any:
    return require("altair", "reports")


def _values(df: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-safe dicts; datetimes as ISO strings with their UTC offset."""
    return [
        {k: (v.isoformat() if isinstance(v, datetime | date) else v) for k, v in row.items()}
        for row in df.to_dicts()
    ]


@cache
def _rows_class() -> Any:
    alt = _alt()

    class InlineRows(alt.Data):  # type: ignore[name-defined]
        """``alt.Data(values=rows)`` of JSON-ready rows (:func:`_values`) that altair neither
        deep-copies at each ``properties``/``layer``/``facet`` nor walks value by value in
        ``to_dict``: the same spec, at a fraction of the cost (a model page's charts carry a
        few thousand values). Validating (altair's debug mode, the tests) takes altair's path."""

        def __deepcopy__(self, memo: Any = None) -> Any:
            return self  # never changed once made

        def to_dict(
            self,
            validate: bool = True,
            *,
            ignore: list[str] | None = None,
            context: dict[str, Any] | None = None,
        ) -> dict[str, Any]:
            if validate or ignore:
                out: dict[str, Any] = super().to_dict(
                    validate=validate, ignore=ignore, context=context
                )
                return out
            return {"values": [dict(r) for r in self._kwds["values"]]}

    return InlineRows


def inline_data(rows: list[dict[str, Any]]) -> Any:
    """An altair data object of ``rows`` (JSON values only: strings, numbers, booleans, None,
    as :func:`_values` gives them), cheap to copy and to serialize."""
    return _rows_class()(values=rows)


def _time_x(alt: Any, field: str = "period", title: str | None = None, ticks: int = 6) -> Any:
    return alt.X(f"{field}:T", title=title, scale=alt.Scale(type="utc"),
                 axis=alt.Axis(format="%b %d", labelAngle=0, tickCount=ticks,
                               tickMinStep=DAY_MS))  # fmt: skip


def _points(alt: Any, periods: int) -> Any:
    """Point markers on a line only when there are few periods (each is an SVG node to draw)."""
    return alt.OverlayMarkDef(size=18) if periods <= MAX_POINTS else False


def volume_chart(volume: pl.DataFrame) -> Any | None:
    """Records profiled per period (bars)."""
    if not volume.height:
        return None
    alt = _alt()
    return (
        alt.Chart(inline_data(_values(volume.select("period", "count"))))
        .mark_bar(color=_BLUE)
        .encode(x=_time_x(alt), y=alt.Y("count:Q", title="records"),
                tooltip=[alt.Tooltip("period:T", format="%Y-%m-%d %H:%M", formatType="utc"), alt.Tooltip("count:Q")])
        .properties(width=WIDTH, height=110, title="Records profiled per period")
    )  # fmt: skip


def drift_method(section: ModelSection, methods: Sequence[MethodInfo] = ()) -> str | None:
    """The method drawn over time: the distance method that flags the most features.

    Ties go to the order of ``methods`` (then by name); p-value methods
    (direction ``below``) are not drawn. None when nothing can be drawn.
    """
    d = section.drift_over_time
    if not d.height:
        return None
    below = {m.name for m in methods if m.direction == "below"} | {"chi_square"}
    order = {m.name: i for i, m in enumerate(methods)}
    present = [m for m in d["method"].unique().to_list() if m not in below]
    if not present:
        return None
    whole = section.drift
    flagged = {
        m: whole.filter((pl.col("method") == m) & pl.col("drifted").fill_null(False)).height
        for m in present
    }
    return min(present, key=lambda m: (-flagged[m], order.get(m, len(order)), m))


def _top_features(section: ModelSection, method: str, limit: int) -> list[str]:
    from mlmon.reports.summary import drifted_features

    chosen = drifted_features(section)[:limit]
    if len(chosen) < limit:
        rest = (
            section.drift_over_time.filter(
                (pl.col("method") == method) & ~pl.col("feature").is_in(chosen)
            )
            .group_by("feature")
            .agg((pl.col("value") / pl.col("threshold")).max().alias("x"))
            .sort(["x", "feature"], descending=[True, False], nulls_last=True)
        )
        chosen += rest["feature"].head(limit - len(chosen)).to_list()
    return chosen


def drift_over_time_chart(
    section: ModelSection, methods: Sequence[MethodInfo] = (), *, limit: int = 6
) -> Any | None:
    """Small multiples, one per feature (drifted first), of one method with its threshold rule."""
    method = drift_method(section, methods)
    if method is None:
        return None
    alt = _alt()
    features = _top_features(section, method, limit)
    data = section.drift_over_time.filter(
        (pl.col("method") == method) & pl.col("feature").is_in(features)
    ).select("period", "feature", "value", "threshold", "drifted")
    if not data.height:
        return None
    data = data.with_columns(pl.col("value").fill_nan(None))
    thresholds = data["threshold"].drop_nulls().unique().to_list()
    th_text = f"threshold {thresholds[0]:.3g}" if len(thresholds) == 1 else "threshold"
    cols = min(3, len(features))
    width = (WIDTH - 40 * (cols - 1)) // cols
    periods = data["period"].n_unique()
    base = alt.Chart().encode(x=_time_x(alt, ticks=3))
    line = base.mark_line(color=_BLUE, point=_points(alt, periods)).encode(
        y=alt.Y("value:Q", title=method_name(method, short=True)),
        tooltip=[alt.Tooltip("period:T", format="%Y-%m-%d %H:%M", formatType="utc"),
                 alt.Tooltip("value:Q", format=".4g"), alt.Tooltip("drifted:N")],
    )  # fmt: skip
    flagged = (
        base.mark_point(color=_RED, filled=True, size=40)
        .encode(y=alt.Y("value:Q"))
        .transform_filter("datum.drifted")
    )
    rule = alt.Chart().mark_rule(color=_RED, strokeDash=[4, 3]).encode(y=alt.Y("mean(threshold):Q"))
    # the red points only when some period drifted: an empty layer makes Vega warn in the
    # browser ("Infinite extent"), which the server's pages must not (tests/server/test_browser.py)
    layers = [line, flagged, rule] if data["drifted"].fill_null(False).any() else [line, rule]
    return (
        alt.layer(*layers, data=inline_data(_values(data)))
        .properties(width=width, height=90)
        .facet(
            facet=alt.Facet("feature:N", title=None, sort=features),
            columns=cols,
        )
        .properties(title=f"{method_name(method)} per period (dashed: {th_text}; red: drifted)")
    )


def distribution_chart(dist: Distribution, *, width: int = 250, max_bars: int = 15) -> Any:
    """Reference (grey) and current (blue) shares of one feature, side by side."""
    alt = _alt()
    f = dist.frame.with_row_index("order")
    axis = dist.axis
    if axis == "label" and f.height > max_bars:
        f = f.sort(pl.max_horizontal("reference", "current"), descending=True).head(max_bars)
        f = f.sort("order")
    f = f.with_columns(pl.col(axis).cast(pl.String) if axis == "label" else pl.col(axis))
    long = f.unpivot(["reference", "current"], index=["order", axis],
                     variable_name="sample", value_name="share")  # fmt: skip
    color = alt.Color("sample:N", title=None,
                      scale=alt.Scale(domain=["reference", "current"], range=[_GREY, _BLUE]))  # fmt: skip
    if axis == "x":
        chart = alt.Chart(inline_data(_values(long))).mark_line(point=True, interpolate="step")
        x = alt.X("x:Q", title=dist.feature)
        extra: dict[str, Any] = {}
    else:
        chart = alt.Chart(inline_data(_values(long))).mark_bar()
        labels = f["label"].to_list()
        x = alt.X("label:N", sort=labels, title=None,
                  axis=alt.Axis(labelAngle=-45, labelLimit=0, labelOverlap=False))  # fmt: skip
        extra = {"xOffset": alt.XOffset("sample:N", sort=["reference", "current"])}
    return chart.encode(
        x=x,
        y=alt.Y("share:Q", axis=alt.Axis(format="%"), title="share"),
        color=color,
        tooltip=[alt.Tooltip(f"{axis}:{'Q' if axis == 'x' else 'N'}"), alt.Tooltip("sample:N"),
                 alt.Tooltip("share:Q", format=".1%")],
        **extra,
    ).properties(width=width, height=140, title=f"{dist.feature} ({dist.kind})")  # fmt: skip


def latency_chart(latency: pl.DataFrame) -> Any | None:
    """p50, p95 and p99 latency per period, in ms."""
    if not latency.height:
        return None
    alt = _alt()
    long = latency.select("period", "p50", "p95", "p99").unpivot(
        ["p50", "p95", "p99"], index="period", variable_name="percentile", value_name="ms"
    )
    return (
        alt.Chart(inline_data(_values(long)))
        .mark_line(point=_points(alt, latency.height))
        .encode(
            x=_time_x(alt),
            y=alt.Y("ms:Q", title="latency (ms)"),
            color=alt.Color("percentile:N", title=None,
                            scale=alt.Scale(domain=["p50", "p95", "p99"], range=[_GREEN, _AMBER, _RED])),
            tooltip=[alt.Tooltip("period:T", format="%Y-%m-%d %H:%M", formatType="utc"), alt.Tooltip("percentile:N"),
                     alt.Tooltip("ms:Q", format=".1f")],
        )
        .properties(width=WIDTH, height=150, title="Latency percentiles per period")
    )  # fmt: skip


def golden_chart(golden: pl.DataFrame) -> Any | None:
    """Golden-check pass rate per period; periods below 100% in amber."""
    if not golden.height:
        return None
    alt = _alt()
    return (
        alt.Chart(inline_data(_values(golden.select("period", "checks", "passed", "pass_rate"))))
        .mark_bar()
        .encode(
            x=_time_x(alt),
            y=alt.Y("pass_rate:Q", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1]),
                    title="passed"),
            color=alt.condition("datum.pass_rate < 1", alt.value(_AMBER), alt.value(_GREEN)),
            tooltip=[alt.Tooltip("period:T", format="%Y-%m-%d", formatType="utc"),
                     alt.Tooltip("checks:Q"), alt.Tooltip("passed:Q"),
                     alt.Tooltip("pass_rate:Q", format=".1%")],
        )
        .properties(width=WIDTH, height=110, title="Golden checks passed per period")
    )  # fmt: skip


def alerts_chart(alerts: pl.DataFrame, start: datetime | None = None,
                 end: datetime | None = None) -> Any | None:  # fmt: skip
    """Alerts as ticks on a timeline at the window each covers, one row per rule (plain
    names), coloured by severity; only alerts inside ``start``..``end`` are drawn."""
    if not alerts.height:
        return None
    from mlmon.reports.context import rule_name

    alt = _alt()
    # drawn at the window each alert covers (raised_at may fall after the period)
    at = "window_start" if "window_start" in alerts.columns else "time"
    data = alerts.select(
        pl.col(at).fill_null(pl.col("time")).alias("at"), "severity",
        pl.col("rule").map_elements(rule_name, return_dtype=pl.String), "feature", "message",
    )  # fmt: skip
    if start is not None and end is not None:
        data = data.filter((pl.col("at") >= start) & (pl.col("at") < end))
        if not data.height:
            return None
    rules = data["rule"].n_unique()
    sev = sorted(
        set(data["severity"].drop_nulls().to_list()), key=lambda s: (s not in _SEVERITY, s)
    )
    domain = [s for s in _SEVERITY if s in sev] + [s for s in sev if s not in _SEVERITY]
    scale = alt.Scale(domain=domain, range=[_SEVERITY.get(s, _GREY) for s in domain])
    x = _time_x(alt, "at")
    if start is not None and end is not None:
        x = alt.X("at:T", title=None,
                  scale=alt.Scale(type="utc", domain=[start.isoformat(), end.isoformat()]),
                  axis=alt.Axis(format="%b %d", labelAngle=0, tickCount=6,
                                tickMinStep=DAY_MS))  # fmt: skip
    return (
        alt.Chart(inline_data(_values(data)))
        .mark_tick(thickness=2, size=14, clip=True)
        .encode(
            x=x,
            y=alt.Y("rule:N", title=None, axis=alt.Axis(labelLimit=200)),
            color=alt.Color("severity:N", title="severity", scale=scale),
            tooltip=[alt.Tooltip("at:T", format="%Y-%m-%d %H:%M", formatType="utc"), alt.Tooltip("severity:N"),
                     alt.Tooltip("rule:N"), alt.Tooltip("feature:N"), alt.Tooltip("message:N")],
        )
        .properties(width=WIDTH - 120, height=max(40, 22 * rules), title="Alerts")
    )  # fmt: skip


def performance_chart(performance: pl.DataFrame | None) -> Any | None:
    """Realized (solid) and estimated (dashed, with its band) performance per period."""
    if performance is None or not performance.height:
        return None
    headline = performance.filter(pl.col("metric").is_in(list(HEADLINE_METRICS)))
    performance = headline if headline.height else performance
    alt = _alt()
    data = inline_data(_values(performance))
    # the legend's symbols at full strength, not the faint band's
    legend = alt.Legend(symbolOpacity=1)
    color = alt.Color("metric:N", title=None, legend=legend)
    base = alt.Chart().encode(x=_time_x(alt), color=color)
    band = base.mark_area(opacity=0.15).encode(
        y=alt.Y("lower:Q", title="value", scale=alt.Scale(zero=False)), y2=alt.Y2("upper:Q")
    )
    est = base.mark_line(strokeDash=[4, 3]).encode(
        y=alt.Y("estimated:Q", title="value", scale=alt.Scale(zero=False))
    )
    periods = performance["period"].n_unique()
    real = base.mark_line(point=_points(alt, periods)).encode(
        y=alt.Y("realized:Q", title="value", scale=alt.Scale(zero=False))
    )
    # a layer with no value to draw makes Vega warn in the browser ("Infinite extent"), which
    # the server's pages must not (tests/server/test_browser.py): draw only what has values
    drawn = [
        layer
        for layer, columns in (
            (band, ("lower", "upper")),
            (est, ("estimated",)),
            (real, ("realized",)),
        )
        if all(_has_values(performance, c) for c in columns)
    ]
    if not drawn:
        return None
    return alt.layer(*drawn, data=data).properties(
        width=WIDTH, height=140, title="Performance per period (solid: realized; dashed: estimated)"
    )


def _has_values(frame: pl.DataFrame, column: str) -> bool:
    """Whether ``column`` exists and holds at least one finite number."""
    if column not in frame.columns:
        return False
    values = frame[column].cast(pl.Float64, strict=False)
    return bool(values.is_finite().fill_null(False).any())


#: Performance metrics drawn over time (the table lists them all).
HEADLINE_METRICS = ("accuracy", "roc_auc", "mae", "rmse")
#: Calibration bins with fewer labelled rows than this are not drawn (their rate is noise).
CALIBRATION_MIN_COUNT = 30


def calibration_chart(calibration: pl.DataFrame | None) -> Any | None:
    """Observed positive rate against mean score per bin, for the period and the reference."""
    if calibration is None or not calibration.height:
        return None
    calibration = calibration.filter(pl.col("count") >= CALIBRATION_MIN_COUNT)
    if not calibration.height:
        return None
    alt = _alt()
    data = inline_data(_values(calibration))
    diag = alt.Chart(alt.Data(values=[{"x": 0.0, "y": 0.0}, {"x": 1.0, "y": 1.0}]))
    ideal = diag.mark_line(color="#999999", strokeDash=[2, 2]).encode(
        x=alt.X("x:Q"), y=alt.Y("y:Q")
    )
    curve = (
        alt.Chart(data)
        .mark_line(point=True)
        .encode(
            x=alt.X(
                "mean_score:Q", title="mean predicted probability", scale=alt.Scale(domain=[0, 1])
            ),
            y=alt.Y(
                "positive_rate:Q", title="observed positive rate", scale=alt.Scale(domain=[0, 1])
            ),
            color=alt.Color("source:N", title=None),
        )
    )
    return alt.layer(ideal, curve).properties(
        width=260,
        height=200,
        title=f"Calibration (dotted: perfect; bins with {CALIBRATION_MIN_COUNT}+ labels)",
    )


def section_charts(
    section: ModelSection,
    methods: Sequence[MethodInfo] = (),
    start: datetime | None = None,
    end: datetime | None = None,
) -> dict[str, Any]:
    """Every chart of one model section by name; a part with no data has no entry.

    Names: ``volume``, ``drift_over_time``, ``distribution_0``..., ``latency``,
    ``golden``, ``alerts``, ``performance``.
    """
    charts: dict[str, Any] = {
        "volume": volume_chart(section.volume),
        "drift_over_time": drift_over_time_chart(section, methods),
        **{f"distribution_{i}": distribution_chart(d) for i, d in enumerate(section.distributions)},
        "latency": latency_chart(section.latency),
        "golden": golden_chart(section.golden),
        "alerts": alerts_chart(section.alerts, start, end),
        "performance": performance_chart(section.performance),
        "calibration": calibration_chart(section.calibration),
    }
    return {k: v for k, v in charts.items() if v is not None}


def to_spec(chart: Any) -> dict[str, Any]:
    """The chart's Vega-Lite spec with the report's fonts and no ``$schema`` URL."""
    # altair's schema validation costs ~0.03 s a chart; the tests validate every builder instead
    spec: dict[str, Any] = dict(chart if isinstance(chart, dict) else chart.to_dict(validate=False))
    spec.pop("$schema", None)
    spec["config"] = {**_CONFIG, **spec.get("config", {})}
    return spec


@cache
def _vlc() -> Any:
    vlc = require("vl_convert", "reports")
    for d in _FONT_DIRS:
        try:
            vlc.register_font_directory(d)
        except Exception:  # a missing directory only means fewer fonts; vl-convert has its own
            continue
    return vlc


def to_svg(chart: Any) -> str:
    """Render an altair chart (or a Vega-Lite dict) to SVG with vl-convert; no network."""
    svg: str = _vlc().vegalite_to_svg(to_spec(chart))
    return svg


def to_html_fragment(chart: Any, element_id: str | None = None, *, static: str = "") -> str:
    """A ``<div>`` and the ``vegaEmbed`` call that draws the chart into it.

    ``static`` (markup, e.g. the chart as an SVG image from :func:`to_svg`) is shown in a
    ``<div class="chart-static">`` that the same script removes before Vega draws: where
    a mail filter strips scripts, the static chart stays. The page must include
    :func:`vega_bundle` once, before the first fragment.
    """
    eid = element_id or f"chart-{next(_ids)}"
    spec = json.dumps(to_spec(chart), separators=(",", ":")).replace("</", "<\\/")
    before = remove = ""
    if static:
        before = f'<div class="chart-static" id="{html.escape(eid)}-static">{static}</div>'
        remove = f"document.getElementById('{eid}-static').remove();"
    return (
        f'{before}<div class="chart" id="{html.escape(eid)}"></div>'
        f"<script>{remove}vegaEmbed('#{eid}', {spec}, "
        '{"actions": false, "renderer": "svg"});</script>'
    )


@cache
def vega_bundle() -> str:
    """vega, vega-lite and vega-embed as one script (about 0.9 MB), inlined once per page."""
    bundle = str(require("vl_convert", "reports").javascript_bundle())
    return bundle.replace("</script", "<\\/script")

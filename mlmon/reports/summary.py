"""The executive summary in plain words, and how every figure of a report is printed.

Number formats (the same in the HTML page, the PDF and the summary; tests
compare printed figures with the analysis API's values through these
functions, so change them only together with those tests):

=================  =====================  ===========================================
figure             function               printed as
=================  =====================  ===========================================
latency            :func:`fmt_ms`         one decimal, in ms: ``41.2 ms``
pass / null rates  :func:`fmt_pct`        a percentage with one decimal: ``98.5%``
counts             :func:`fmt_count`      thousands separated: ``12,345``
drift values       :func:`fmt_value`      3 decimals (``0.213``); below 0.001 as
                                          ``2.1e-05``; from 1000 as ``1,234``
times              :func:`fmt_time`       ``2026-10-07 14:05`` (UTC); midnight as a date
missing values     (all of them)          ``n/a`` (None or NaN)
=================  =====================  ===========================================
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl

from mlmon.reports.context import ModelSection, ReportContext, method_name, p_value_methods

__all__ = [
    "NA",
    "drift_window_lines",
    "drifted_features",
    "fmt_count",
    "fmt_day",
    "fmt_ms",
    "fmt_pct",
    "fmt_period",
    "fmt_time",
    "fmt_until",
    "fmt_value",
    "fmt_window",
    "golden_outside",
    "model_summary",
    "summary_lines",
]

#: How a missing figure is printed.
NA = "n/a"


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def fmt_ms(v: float | None) -> str:
    """A latency in milliseconds with one decimal: ``fmt_ms(41.234) == "41.2 ms"``."""
    return NA if v is None or math.isnan(v) else f"{v:.1f} ms"


def fmt_pct(v: float | None) -> str:
    """A fraction as a percentage with one decimal: ``fmt_pct(0.985) == "98.5%"``."""
    return NA if v is None or math.isnan(v) else f"{100 * v:.1f}%"


def fmt_count(v: int | float | None) -> str:
    """A count with thousands separators: ``fmt_count(12345) == "12,345"``."""
    return NA if _missing(v) else f"{int(v):,}"  # type: ignore[arg-type]


def fmt_value(v: float | None) -> str:
    """A drift value or threshold: ``0.213``, ``2.1e-05``, ``1,234``; ``0`` stays ``0``."""
    if v is None or math.isnan(v):
        return NA
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "0"
    if abs(v) < 0.001:
        return f"{v:.1e}"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3f}"


def fmt_time(v: datetime | date | str | None) -> str:
    """A UTC time as ``2026-10-07 14:05``; a midnight (or a date) as ``2026-10-07``."""
    if _missing(v) or v == "":
        return NA if _missing(v) else ""
    if isinstance(v, str):
        v = datetime.fromisoformat(v)
    if isinstance(v, datetime):
        if (v.hour, v.minute, v.second) == (0, 0, 0):
            return f"{v:%Y-%m-%d}"
        return f"{v:%Y-%m-%d %H:%M}"
    return f"{v:%Y-%m-%d}"


def fmt_until(v: datetime | None) -> str:
    """An end-exclusive time (a window's end): a midnight is the day before it ends.

    ``fmt_until(datetime(2026, 10, 7, tzinfo=UTC)) == "2026-10-06"`` (data until the end of
    6 October); other times print as :func:`fmt_time` does.
    """
    if _missing(v) or v is None:
        return NA
    if isinstance(v, datetime) and (v.hour, v.minute, v.second, v.microsecond) == (0, 0, 0, 0):
        return f"{v - timedelta(days=1):%Y-%m-%d}"
    return fmt_time(v)


def fmt_window(start: datetime | None, end: datetime | None) -> str:
    """A window as ``2026-10-04 00:00 to 06:00`` (``24:00`` for the midnight that ends a day)."""
    if _missing(start) or _missing(end) or start is None or end is None:
        return NA
    day_end = end - timedelta(microseconds=1)
    if day_end.date() == start.date():
        until = "24:00" if end.date() != start.date() else f"{end:%H:%M}"
        return f"{start:%Y-%m-%d %H:%M} to {until}"
    return f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}"


def fmt_day(v: date | datetime | str) -> str:
    """A day in words: ``fmt_day("2026-12-05") == "5 December 2026"``."""
    d = date.fromisoformat(v) if isinstance(v, str) else v
    return f"{d.day} {d:%B %Y}"


def golden_outside(section: ModelSection) -> str:
    """Where golden checks ran when none ran in the period, in words ("" if none ran at all).

    ``"golden checks ran on 5 December 2026, outside this period"``; with checks on both
    sides, the last day before the period and the first after it.
    """
    g = section.golden_overall or {}
    days = [fmt_day(g[k]) for k in ("before", "after") if g.get(k)]
    if not days:
        return ""
    if len(days) == 1:
        return f"golden checks ran on {days[0]}, outside this period"
    return f"golden checks last ran on {days[0]} and next on {days[1]}, outside this period"


def drift_window_lines(section: ModelSection) -> list[str]:
    """The whole period's figure reconciled with the per-window flags behind the alerts.

    One sentence per feature that some window flagged, e.g. ``"age drifted in 12 of 24
    windows of 6 hours (PSI above 0.200); over the whole period PSI 0.155, below its
    threshold."``; one sentence when no window drifted.
    """
    w = section.drift_windows
    if w is None or not w.height:
        return []
    whole = {(r["feature"], r["method"]): r for r in section.drift.iter_rows(named=True)}
    lines = []
    for r in w.filter(pl.col("drifted_windows") > 0).iter_rows(named=True):
        short = method_name(r["method"], short=True)
        hours = r["window_hours"]
        size = f" of {hours:g} hours" if hours and not _missing(hours) else ""
        line = (
            f"{r['feature']} drifted in {r['drifted_windows']:,} of {r['windows']:,} "
            f"windows{size} ({short} above {fmt_value(r['threshold'])})"
        )
        month = whole.get((r["feature"], r["method"]))
        if month is not None and not _missing(month["value"]):
            side = "above" if month["drifted"] else "below"
            line += (
                f"; over the whole period {short} {fmt_value(month['value'])}, {side} its threshold"
            )
        lines.append(line + ".")
    if not lines:
        methods = ", ".join(method_name(m, short=True) for m in w["method"].unique().sort())
        lines.append(
            f"No feature drifted in any of the period's {int(w.select(pl.col('windows').max()).item()):,} windows "
            f"({methods})."
        )
    return lines


def fmt_period(start: datetime, end: datetime) -> str:
    """An end-exclusive UTC period in words: ``1 October 2026 to 31 October 2026 (UTC)``."""
    if (start.hour, start.minute, end.hour, end.minute) == (0, 0, 0, 0):
        last = end - timedelta(days=1)
        if last.date() == start.date():
            return f"{start.day} {start:%B %Y} (UTC)"
        return f"{start.day} {start:%B %Y} to {last.day} {last:%B %Y} (UTC)"
    return f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} (UTC)"


def drifted_features(section: ModelSection) -> list[str]:
    """Features flagged by at least one distance over the whole period, most flagged first.

    p-values (:func:`~mlmon.reports.context.p_value_methods`) are highlighted where the
    API flags them but not counted here.

    Ordered by the number of methods that flag the feature, then by how far
    the value is past its threshold, then by name.
    """
    d = section.drift
    if not d.height:
        return []
    flagged = d.filter(
        pl.col("drifted").fill_null(False) & ~pl.col("method").is_in(list(p_value_methods()))
    )
    if not flagged.height:
        return []
    excess = (
        pl.when(pl.col("threshold") > 0)
        .then(pl.col("value") / pl.col("threshold"))
        .otherwise(pl.lit(0.0))
    )
    ranked = (
        flagged.group_by("feature")
        .agg(pl.len().alias("n"), excess.max().alias("x"))
        .sort(["n", "x", "feature"], descending=[True, True, False], nulls_last=True)
    )
    return ranked["feature"].to_list()


def _alerts_phrase(alerts: pl.DataFrame) -> str:
    n = alerts.height
    if not n:
        return "no alerts"
    by = alerts.group_by("severity").len().sort("len", descending=True)
    parts = [f"{c} {s}" for s, c in by.iter_rows() if s]
    more = f" ({', '.join(parts)})" if parts else ""
    return f"{n} alert{'s' if n != 1 else ''}{more}"


def model_summary(section: ModelSection) -> str:
    """One plain sentence about a model.

    Examples
    --------
    ``risk-model (AMBER): 2 of 25 features drifted (age, bmi); p95 latency 41.2 ms;
    golden checks 98.5% passed (197 of 200); 12,345 records; 3 alerts (2 warning, 1 critical).``
    """
    m = section
    head = f"{m.model} ({m.status.upper()})" if m.status != "grey" else f"{m.model} (NO DATA)"
    parts: list[str] = []
    if m.drift.height:
        n_feat = m.drift["feature"].n_unique()
        drifted = drifted_features(m)
        if drifted:
            shown = ", ".join(drifted[:6]) + (
                f" and {len(drifted) - 6} more" if len(drifted) > 6 else ""
            )
            parts.append(f"{len(drifted)} of {n_feat} features drifted ({shown})")
        else:
            parts.append(f"none of {n_feat} features drifted")
    elif m.records:
        parts.append("drift not computed")
    p95 = m.latency_overall.get("p95")
    if not _missing(p95):
        parts.append(f"p95 latency {fmt_ms(p95)}")
    g = m.golden_overall
    if g and g.get("checks"):
        parts.append(
            f"golden checks {fmt_pct(g.get('pass_rate'))} passed "
            f"({fmt_count(g.get('passed'))} of {fmt_count(g.get('checks'))})"
        )
    if m.records:
        parts.append(f"{fmt_count(m.records)} records")
    if m.alerts.height:
        parts.append(_alerts_phrase(m.alerts))
    if not parts:
        notes = " ".join(n.rstrip(".") + "." for n in m.notes)
        if "no data" not in notes.lower():
            notes = ("No data in this period. " + notes).strip()
        return f"{head}: {notes[:1].lower()}{notes[1:]}"
    return f"{head}: {'; '.join(parts)}."


def summary_lines(ctx: ReportContext) -> list[str]:
    """The executive summary: an overall sentence, then one sentence per model."""
    n = len(ctx.models)
    attention = [m.model for m in ctx.models if m.status in ("amber", "red")]
    no_data = [m.model for m in ctx.models if m.status == "grey"]
    overall = f"Overall status {ctx.overall_status.upper()}"
    if not n:
        first = f"{overall}: no model was monitored in this period."
    elif attention:
        first = (
            f"{overall}: {len(attention)} of {n} model{'s' if n != 1 else ''} "
            f"need{'s' if len(attention) == 1 else ''} attention ({', '.join(attention)})."
        )
    else:
        first = f"{overall}: no model of {n} needs attention."
    if no_data:
        first += f" No data for {', '.join(no_data)}."
    return [first, *(model_summary(m) for m in ctx.models)]

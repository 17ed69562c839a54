"""Render a :class:`~mlmon.reports.context.ReportContext` to HTML (interactive) and PDF.

One jinja2 template (``report.html.j2``) and one stylesheet (``base.css``)
serve both outputs. The HTML page inlines the CSS and the Vega JavaScript
(once) and draws interactive charts; the PDF (weasyprint, A4, running header
and footer, page numbers, a table of contents with page numbers) gets the
same charts as SVG. Nothing is fetched from the network.

Figures are printed with the functions of :mod:`mlmon.reports.summary`
(latency ``41.2 ms``, rates ``98.5%``); the template gets them as the
filters ``ms``, ``pct``, ``count``, ``value`` and ``time``.

Templates are looked up in order: the ``templates`` argument, the
``MLMON_TEMPLATES`` environment variable, ``report_templates/`` at the root
of the source tree, ``mlmon/reports/templates/`` inside the package, and
``{sys.prefix}/share/mlmon/report_templates``.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from mlmon._extras import require
from mlmon.errors import ConfigError
from mlmon.lake.schema import explain_unjoined
from mlmon.reports.charts import section_charts, to_html_fragment, to_svg, vega_bundle
from mlmon.reports.context import MethodInfo, ModelSection, ReportContext, method_name, rule_name
from mlmon.reports.summary import (
    drift_window_lines,
    drifted_features,
    fmt_count,
    fmt_ms,
    fmt_pct,
    fmt_period,
    fmt_time,
    fmt_until,
    fmt_value,
    fmt_window,
    golden_outside,
    summary_lines,
)

__all__ = [
    "FORMATS",
    "TEMPLATE",
    "fmt_ms",
    "fmt_pct",
    "render",
    "render_html",
    "render_pdf",
    "summary_lines",
    "template_dir",
]

TEMPLATE = "report.html.j2"
STYLESHEET = "base.css"
#: The output formats :func:`render` knows.
FORMATS = ("pdf", "html")
#: At most this many alerts are listed per model (the rest are counted).
MAX_ALERT_ROWS = 30
_STATUS_WORDS = {"green": "green", "amber": "amber", "red": "red", "grey": "no data"}

log = logging.getLogger("mlmon.reports.render")


def _candidates(templates: str | Path | None) -> list[Path]:
    out = []
    if templates is not None:
        out.append(Path(templates))
    env = os.environ.get("MLMON_TEMPLATES")
    if env:
        out.append(Path(env))
    here = Path(__file__).resolve()
    out += [
        here.parents[2] / "report_templates",
        here.parent / "templates",
        Path(sys.prefix) / "share" / "mlmon" / "report_templates",
    ]
    return out


def template_dir(templates: str | Path | None = None) -> Path:
    """The folder holding ``report.html.j2`` and ``base.css``.

    Raises
    ------
    ConfigError
        No candidate folder has both files; the message lists every folder tried.
    """
    tried = _candidates(templates)
    for c in tried:
        if (c / TEMPLATE).is_file() and (c / STYLESHEET).is_file():
            return c
    raise ConfigError(
        f"report templates ({TEMPLATE}, {STYLESHEET}) not found; looked in "
        + ", ".join(str(c) for c in tried)
        + ". Set MLMON_TEMPLATES to the folder holding them (report_templates/ in the mlmon source)."
    )


# -- view model: what the template shows per model -------------------------------------------


def _svg_img(svg: str, name: str) -> str:
    """An SVG chart as a data-URI image: weasyprint parses it as SVG, outside the HTML cascade.

    Inline ``<svg>`` costs about twice the time (every node is parsed as HTML and styled).
    """
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return (f'<div class="chart"><img alt="{name.replace("_", " ")} chart" '
            f'src="data:image/svg+xml;base64,{data}"></div>')  # fmt: skip


def _inline_svg(svg: str, prefix: str) -> str:
    """An SVG chart for inline use in a page: its ids (clip paths) made unique with ``prefix``."""
    ids = set(re.findall(r'\bid="([^"]+)"', svg))
    for old in sorted(ids, key=len, reverse=True):
        svg = svg.replace(f'id="{old}"', f'id="{prefix}-{old}"').replace(
            f"url(#{old})", f"url(#{prefix}-{old})"
        )
    return re.sub(r"^<\?xml[^>]*>\s*", "", svg)


def _drift_view(
    m: ModelSection, methods: Sequence[MethodInfo]
) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    d = m.drift
    if not d.height:
        return [], []
    order = {x.name: i for i, x in enumerate(methods)}
    direction = {x.name: x.direction for x in methods}
    present = sorted(d["method"].unique().to_list(), key=lambda n: (order.get(n, len(order)), n))
    columns = []
    for name in present:
        th = d.filter(pl.col("method") == name)["threshold"].drop_nulls().unique().to_list()
        sign = "<" if direction.get(name) == "below" else ">"
        columns.append({"id": name, "label": method_name(name),
                        "threshold": f"{sign} {fmt_value(th[0])}" if len(th) == 1 else ""})  # fmt: skip
    drifted = drifted_features(m)
    rank = {f: i for i, f in enumerate(drifted)}
    rows: dict[str, dict[str, Any]] = {}
    for r in d.iter_rows(named=True):
        row = rows.setdefault(r["feature"], {"feature": r["feature"], "count": None, "cells": {}})
        row["cells"][r["method"]] = r
        if r.get("count") is not None:
            row["count"] = max(row["count"] or 0, r["count"])
    ordered = sorted(rows.values(), key=lambda r: (rank.get(r["feature"], len(rank)), r["feature"]))
    return columns, ordered


def _view(ctx: ReportContext, i: int, m: ModelSection, interactive: bool) -> dict[str, Any]:
    markup = require("jinja2", "reports").utils.markupsafe.Markup
    charts = {}
    for name, chart in section_charts(m, ctx.methods, ctx.period_start, ctx.period_end).items():
        try:
            svg, eid = to_svg(chart), f"chart-{i}-{name}"
            # the HTML page keeps the static SVG beside the Vega script: a mail filter that
            # strips scripts leaves the picture; the script removes it before Vega draws
            html = (to_html_fragment(chart, eid, static=_inline_svg(svg, eid))
                    if interactive else _svg_img(svg, name))  # fmt: skip
        except Exception as exc:  # a chart that cannot be drawn must not sink the report
            log.warning("chart %s of model %s not drawn: %s", name, m.model, exc)
            html = f'<p class="empty">This chart could not be drawn ({type(exc).__name__}).</p>'
        charts[name] = markup(html)
    methods, drift_rows = _drift_view(m, ctx.methods)
    nulls = m.null_rates.sort(["null_rate", "feature"], descending=[True, False], nulls_last=True)
    overall = m.latency_overall or {}
    golden = m.golden_overall or {}
    no_data = (
        not any(f is not None and f.height for f in m.frames.values())
        and not m.distributions
        and all(v is None for v in overall.values())
        and not golden.get("checks")
    )
    return {
        "s": m,
        "anchor": f"model-{i}",
        "no_data": no_data,
        "charts": charts,
        "distribution_charts": [
            charts[k]
            for k in sorted(charts, key=lambda k: (len(k), k))
            if k.startswith("distribution_")
        ],
        "drifted": drifted_features(m),
        "drift_methods": methods,
        "drift_rows": drift_rows,
        "null_rows": nulls.to_dicts(),
        "null_kind": "kind" in nulls.columns,
        "has_latency": any(overall.get(k) is not None for k in ("p50", "p95", "p99"))
        or m.latency.height > 0,
        "has_golden": bool(golden.get("checks")),
        "golden_error_rows": m.golden_errors.sort("count", descending=True).to_dicts(),
        "alert_rows": _alert_rows(m.alerts),
        "alert_windows": "window_start" in m.alerts.columns,
        "window_lines": drift_window_lines(m),
        "golden_outside": golden_outside(m),
        "alerts_more": max(0, m.alerts.height - MAX_ALERT_ROWS),
        "version_rows": m.versions.sort("first_seen").to_dicts(),
        "performance_rows": _performance_rows(m.performance),
        "labelled": _labelled(m.performance),
        "label_batches": _label_batches(m.label_batches),
    }


def _alert_rows(alerts: pl.DataFrame) -> list[dict[str, Any]]:
    """The first alerts with their rule's plain name and the window each covers."""
    rows = alerts.sort("time").head(MAX_ALERT_ROWS).to_dicts()
    for r in rows:
        r["rule_name"] = rule_name(r.get("rule"))
        r["window"] = (fmt_window(r.get("window_start"), r.get("window_end"))
                       if r.get("window_start") else "")  # fmt: skip
    return rows


def _labelled(perf: pl.DataFrame | None) -> dict[str, Any] | None:
    """Labelled and total predictions over the period (one metric's rows count each period once)."""
    if perf is None or not perf.height:
        return None
    one = perf.filter(pl.col("metric") == perf["metric"][0])
    labelled = int(one["count_labelled"].sum() or 0)
    total = int(one["count_total"].sum() or 0)
    return {"labelled": labelled, "total": total, "fraction": labelled / total if total else None}


def _label_batches(batches: pl.DataFrame | None) -> dict[str, Any] | None:
    """Records, matched and why the rest did not join, over the period's labels batches."""
    if batches is None or not batches.height:
        return None
    counts = {c: int(batches[c].sum() or 0) for c in batches.columns if c != "received_at"}
    reasons = [r.replace("`", "") for r in explain_unjoined(counts)]
    return {"batches": batches.height, **counts, "reasons": reasons}


def _performance_rows(perf: pl.DataFrame | None) -> list[dict[str, Any]]:
    """Per metric: means over the period and the last period's figures."""
    if perf is None or not perf.height:
        return []
    p = perf.sort("period")
    return (
        p.group_by("metric", maintain_order=True)
        .agg(
            pl.len().alias("periods"),
            pl.col("realized").fill_nan(None).mean().alias("realized_mean"),
            pl.col("estimated").fill_nan(None).mean().alias("estimated_mean"),
            pl.col("period").last().alias("last_period"),
            pl.col("realized").last().alias("last_realized"),
            pl.col("estimated").last().alias("last_estimated"),
            pl.col("lower").last().alias("last_lower"),
            pl.col("upper").last().alias("last_upper"),
        )
        .sort("metric")
        .to_dicts()
    )


def _render(ctx: ReportContext, interactive: bool, templates: str | Path | None) -> str:
    jinja2 = require("jinja2", "reports")
    folder = template_dir(templates)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(ms=fmt_ms, pct=fmt_pct, count=fmt_count, value=fmt_value, time=fmt_time,
                       until=fmt_until, capfirst=lambda s: s[:1].upper() + s[1:])  # fmt: skip
    markup = jinja2.utils.markupsafe.Markup
    comparison = (
        fmt_period(ctx.comparison_start, ctx.comparison_end)
        if ctx.comparison_start and ctx.comparison_end
        else ""
    )
    return env.get_template(TEMPLATE).render(
        ctx=ctx,
        period=fmt_period(ctx.period_start, ctx.period_end),
        comparison=comparison,
        summary=summary_lines(ctx),
        views=[_view(ctx, i, m, interactive) for i, m in enumerate(ctx.models, start=1)],
        status_word=lambda s: _STATUS_WORDS.get(s, s),
        method_name=method_name,
        css=markup((folder / STYLESHEET).read_text(encoding="utf-8")),
        interactive=interactive,
        vega_js=markup(vega_bundle()) if interactive else "",
    )


def render_html(ctx: ReportContext, *, templates: str | Path | None = None) -> str:
    """A self-contained HTML report: CSS and the Vega JavaScript inlined, no external URL.

    Parameters
    ----------
    ctx : ReportContext
    templates : str or Path, optional
        A folder with ``report.html.j2`` and ``base.css`` (see :func:`template_dir`).

    Returns
    -------
    str
        The page (about 1 MB, most of it the Vega bundle).
    """
    return _render(ctx, True, templates)


def render_pdf(
    ctx: ReportContext, path: str | Path, *, templates: str | Path | None = None
) -> Path:
    """Write an A4 PDF (page numbers, contents with page numbers, SVG charts) to ``path``.

    Returns
    -------
    Path
        ``path``.
    """
    weasyprint = require("weasyprint", "reports")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    folder = template_dir(templates)
    document = weasyprint.HTML(string=_render(ctx, False, templates), base_url=str(folder))
    document.write_pdf(str(out))
    return out


def render(
    ctx: ReportContext,
    out_dir: str | Path,
    formats: Sequence[str] = FORMATS,
    *,
    stem: str = "report",
    templates: str | Path | None = None,
) -> dict[str, Path]:
    """Render ``formats`` (``"pdf"``, ``"html"``) into ``out_dir`` as ``{stem}.{format}``.

    Returns
    -------
    dict
        Format to the file written.

    Raises
    ------
    ConfigError
        An unknown format (checked before anything is written).
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ConfigError(
            f"report format(s) {', '.join(map(repr, unknown))} unknown; use {', '.join(FORMATS)}"
        )
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    done: dict[str, Path] = {}
    for f in dict.fromkeys(formats):
        target = folder / f"{stem}.{f}"
        if f == "html":
            target.write_text(render_html(ctx, templates=templates), encoding="utf-8")
            done[f] = target
        else:
            done[f] = render_pdf(ctx, target, templates=templates)
    return done

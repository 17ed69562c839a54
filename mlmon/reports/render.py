"""Render a :class:`~mlmon.reports.context.ReportContext` to HTML (interactive) and PDF.

One jinja2 template (``report_templates/report.html.j2``) and one stylesheet
serve both: the HTML page embeds the Vega JavaScript once and draws
interactive charts; the PDF (weasyprint, A4, page numbers, a table of
contents with page numbers) gets the same charts as SVG. Nothing is fetched
from the network.

Printed figures follow :func:`fmt_ms` (one decimal, ms) and :func:`fmt_pct`
(percent with one decimal); tests compare them with the lake API's values.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from mlmon._extras import require
from mlmon.errors import ConfigError
from mlmon.reports.charts import chart_specs, to_svg, vega_bundle
from mlmon.reports.context import ReportContext

__all__ = [
    "fmt_ms",
    "fmt_pct",
    "render",
    "render_html",
    "render_pdf",
    "summary_lines",
    "template_dir",
]

METHODS_SHOWN = ("psi", "jensen_shannon", "ks", "wasserstein", "chi_square")


def template_dir() -> Path:
    """``MLMON_TEMPLATES`` if set, else ``report_templates/`` next to the package."""
    env = os.environ.get("MLMON_TEMPLATES")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "report_templates")
    for c in candidates:
        if (c / "report.html.j2").exists():
            return c
    raise ConfigError(
        f"report templates not found; looked in {', '.join(map(str, candidates))} (set MLMON_TEMPLATES)"
    )


def fmt_ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f} ms"


def fmt_pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and v != v:
        return "n/a"
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def _ts(v: Any) -> str:
    return str(v)[:16].replace("T", " ") if v else ""


def summary_lines(ctx: ReportContext) -> list[str]:
    """The executive summary, in plain words, one line per model."""
    lines = []
    for m in ctx.models:
        if m.status == "grey":
            lines.append(f"{m.model}: no data in this period. " + " ".join(m.notes))
            continue
        parts = [f"{m.model} is {m.status.upper()}: {'; '.join(m.status_reasons)}."]
        n_feat = len({r["feature"] for r in m.drift})
        if m.drift and m.drifted_features:
            parts.append(f"{len(m.drifted_features)} of {n_feat} monitored features drifted.")
        elif m.drift:
            parts.append(f"None of the {n_feat} monitored features drifted.")
        parts.append(f"{m.records:,} records were profiled.")
        if m.latency_overall:
            parts.append(f"p95 latency {fmt_ms(m.latency_overall.get('p95'))}.")
        if m.golden_overall:
            parts.append(f"Golden checks {fmt_pct(m.golden_overall['pass_rate'])} passed "
                         f"({m.golden_overall['passed']} of {m.golden_overall['checks']}).")  # fmt: skip
        if m.alerts:
            parts.append(f"{len(m.alerts)} alerts were raised.")
        lines.append(" ".join(parts))
    return lines


def _charts(ctx: ReportContext, interactive: bool) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = {}
    n = 0
    for i, m in enumerate(ctx.models, start=1):
        out[i] = {}
        for name, spec in chart_specs(m).items():
            n += 1
            if interactive:
                out[i][name] = (
                    f'<div class="chart" id="chart-{n}"></div>'
                    f"<script>vegaEmbed('#chart-{n}', {json.dumps(spec)}, {{actions: false}});</script>"
                )
            else:
                out[i][name] = f'<div class="chart">{to_svg(spec)}</div>'
    return out


def _drift_tables(ctx: ReportContext) -> dict[int, dict[str, dict[str, Any]]]:
    tables: dict[int, dict[str, dict[str, Any]]] = {}
    for i, m in enumerate(ctx.models, start=1):
        t: dict[str, dict[str, Any]] = {}
        for r in m.drift:
            t.setdefault(r["feature"], {})[r["method"]] = r
        drifted = set(m.drifted_features)
        tables[i] = dict(sorted(t.items(), key=lambda kv: (kv[0] not in drifted, kv[0])))
    return tables


def _period(ctx: ReportContext) -> str:
    s, e = datetime.fromisoformat(ctx.period_start), datetime.fromisoformat(ctx.period_end)
    return f"{s:%Y-%m-%d %H:%M} to {e:%Y-%m-%d %H:%M} UTC"


def _render(ctx: ReportContext, interactive: bool) -> str:
    jinja2 = require("jinja2", "reports")
    folder = template_dir()
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)), autoescape=True)
    env.filters.update(ms=fmt_ms, pct=fmt_pct, num=_num, ts=_ts)
    markup = jinja2.utils.markupsafe.Markup
    charts = {i: {k: markup(v) for k, v in c.items()} for i, c in _charts(ctx, interactive).items()}
    return env.get_template("report.html.j2").render(
        ctx=ctx,
        period=_period(ctx),
        summary=summary_lines(ctx),
        charts=charts,
        drift_table=_drift_tables(ctx),
        methods_shown=METHODS_SHOWN,
        css=markup((folder / "report.css").read_text()),
        interactive=interactive,
        vega_js=markup(vega_bundle()) if interactive else "",
    )


def render_html(ctx: ReportContext) -> str:
    """A self-contained HTML report: CSS and Vega inlined, no external URL."""
    return _render(ctx, interactive=True)


def render_pdf(ctx: ReportContext, path: str | Path) -> Path:
    """An A4 PDF with page numbers and a table of contents, charts as SVG."""
    weasyprint = require("weasyprint", "reports")
    out = Path(path)
    weasyprint.HTML(string=_render(ctx, interactive=False), base_url=str(template_dir())).write_pdf(
        str(out)
    )
    return out


def render(
    ctx: ReportContext,
    out_dir: str | Path,
    formats: tuple[str, ...] = ("pdf", "html"),
    stem: str = "report",
) -> dict[str, Path]:
    """Render the requested formats into ``out_dir``; returns format -> path."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    done: dict[str, Path] = {}
    for f in formats:
        if f == "html":
            p = folder / f"{stem}.html"
            p.write_text(render_html(ctx), encoding="utf-8")
            done["html"] = p
        elif f == "pdf":
            done["pdf"] = render_pdf(ctx, folder / f"{stem}.pdf")
        else:
            raise ConfigError(f"report format {f!r} is not one of pdf, html")
    return done

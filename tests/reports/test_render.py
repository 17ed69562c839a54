"""Rendering synthetic contexts: the PDF read back, page 1 as pixels, self-contained HTML."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pypdf import PdfReader

from mlmon.errors import ConfigError
from mlmon.reports import charts
from mlmon.reports.render import render, render_html, template_dir
from mlmon.reports.summary import (
    drifted_features,
    fmt_count,
    fmt_ms,
    fmt_pct,
    fmt_period,
    fmt_time,
    fmt_value,
    summary_lines,
)
from tests.reports.synthetic import END, START, context, edge_case_context


def _text(pdf: Path) -> list[str]:
    """Each page's text with whitespace runs (line breaks included) folded to one space."""
    return [" ".join((p.extract_text() or "").split()) for p in PdfReader(pdf).pages]


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    ctx = context()
    t = time.perf_counter()
    files = render(ctx, out, ("pdf", "html"))
    elapsed = time.perf_counter() - t
    print(f"\n2-model report rendered (pdf + html) in {elapsed:.2f} s")
    return ctx, files


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    out = tmp_path_factory.mktemp("edge")
    ctx = edge_case_context()
    return ctx, render(ctx, out, ("pdf", "html"))


def test_pdf_prints_the_context_figures(full):
    ctx, files = full
    pages = _text(files["pdf"])
    text = " ".join(pages)
    for m in ctx.models:
        drifted = drifted_features(m)
        assert drifted
        assert f"Drifted features: {', '.join(drifted)}" in text
        assert f"p95 {fmt_ms(m.latency_overall['p95'])}" in text
        assert f"Golden checks {fmt_pct(m.golden_overall['pass_rate'])} passed" in text
    assert "p95 latency 41.2 ms" in text and "p95 latency 87.7 ms" in text  # 41.234, 87.65
    assert "Traceback" not in text and "could not be drawn" not in text
    assert "Page 1 of" in pages[0] and ctx.title in pages[0]
    assert "Appendix B: data handling" in text and "put-only credentials" in text


def test_summary_is_plain_words(full):
    ctx, _ = full
    lines = summary_lines(ctx)
    assert lines[0] == (
        "Overall status RED: 2 of 2 models need attention (risk-model, chest-xray-triage)."
    )
    assert lines[1].startswith(
        "risk-model (AMBER): 2 of 25 features drifted (age, bmi); p95 latency 41.2 ms; "
        "golden checks 99.6% passed (741 of 744); "
    )


def test_contents_have_page_numbers(full):
    ctx, files = full
    pages = _text(files["pdf"])
    toc = pages[1]
    assert re.search(r"Executive summary ?\.+ ?2\b", toc)
    for m in ctx.models:
        found = re.search(rf"Model {re.escape(m.model)} ?\.+ ?(\d+)", toc)
        assert found, toc
        page = int(found.group(1))
        assert pages[page - 1].count(f"Model {m.model}") >= 1  # the number points at the section
        assert "Drift against the reference" in " ".join(pages[page - 1 : page + 2])
    appendix = int(re.search(r"Appendix A: drift methods and thresholds ?\.+ ?(\d+)", toc).group(1))
    assert appendix == len(pages) or "Appendix A" in pages[appendix - 1]


def test_first_page_is_not_blank_and_shows_the_badge(full, tmp_path):
    _, files = full
    if not shutil.which("pdftoppm"):
        pytest.fail("pdftoppm is missing: apt-get install poppler-utils")
    subprocess.run(["pdftoppm", "-r", "50", "-png", "-f", "1", "-l", "1", str(files["pdf"]),
                    str(tmp_path / "page")], check=True)  # fmt: skip
    img = np.asarray(Image.open(next(tmp_path.glob("page*.png"))).convert("RGB")).astype(int)
    non_white = (img.min(axis=2) < 235).mean()
    assert non_white > 0.01
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    red_badge = ((r > 150) & (g < 90) & (b < 90)).sum()  # the overall RED badge
    assert red_badge > 200


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.assets: list[tuple[str, str]] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.scripts += 1
        for k, v in attrs:
            if k in ("src", "href") and v:
                self.assets.append((tag, v))


def test_html_is_self_contained(full):
    ctx, files = full
    page = files["html"].read_text(encoding="utf-8")
    parser = _Assets()
    parser.feed(page)
    external = [(t, u) for t, u in parser.assets
                if re.match(r"(https?:)?//", u.strip(), re.I) or t in ("link", "script", "img")]  # fmt: skip
    assert external == []  # no <link>, no <script src>, no <img src> at all
    assert page.count("window.vegaEmbed=") == 1  # the Vega bundle, inlined once
    n_charts = sum(len(charts.section_charts(m, ctx.methods, START, END)) for m in ctx.models)
    assert page.count("vegaEmbed('#chart-") == n_charts
    assert parser.scripts == n_charts + 1
    assert "@page" in page  # the stylesheet is inlined
    assert "Traceback" not in page


def test_edge_cases_render_with_sentences(edge):
    _, files = edge
    text = " ".join(_text(files["pdf"]))
    html = files["html"].read_text(encoding="utf-8")
    for needle in (
        "No golden checks ran in this period",
        "No reference profile: drift not computed.",
        "No data in this period.",
        "No monitoring data for this model in this period",
        "No alerts were raised in this period",
        "No latency was recorded in this period",
        "No inference records were profiled in this period",
        "Drift was not computed for this period",
        "No performance figures for this period",
        "No data-quality figures for this period",
        "No model version was reported in this period",
        "Golden checks 100.0% passed",
    ):
        assert needle in text, needle
        assert needle in html, needle
    visible = re.sub(r"<script>.*?</script>", "", html, flags=re.S)  # the Vega bundle says "Error"
    for out in (text, visible):
        assert "Traceback" not in out and "could not be drawn" not in out and "Error" not in out
    assert "retired-model (NO DATA): no data in this period." in text
    assert text.count("No monitoring data for this model in this period") == 2  # retired, empty


def test_every_chart_is_valid_vega_lite(full, edge):
    for ctx in (full[0], edge[0]):
        for m in ctx.models:
            for name, chart in charts.section_charts(m, ctx.methods, START, END).items():
                chart.to_dict(validate=True)  # raises on a schema error
                assert charts.to_svg(chart).lstrip().startswith("<svg"), name


def test_inline_rows_give_the_same_spec_as_altairs_data(full, edge, monkeypatch):
    """Charts' data as :func:`charts.inline_data` (not copied, not walked value by value) give
    the spec that ``alt.Data(values=...)`` gives."""
    import altair as alt

    def specs() -> list[str]:
        return [
            json.dumps(charts.to_spec(chart), sort_keys=True)
            for ctx in (full[0], edge[0])
            for m in ctx.models
            for chart in charts.section_charts(m, ctx.methods, START, END).values()
        ]

    fast = specs()
    monkeypatch.setattr(charts, "inline_data", lambda rows: alt.Data(values=rows))
    assert fast == specs() and len(fast) > 10


def test_number_formats():
    assert fmt_ms(41.25) == "41.2 ms" and fmt_ms(41.26) == "41.3 ms" and fmt_ms(None) == "n/a"
    assert fmt_pct(0.9855) == "98.5%" or fmt_pct(0.9855) == "98.6%"
    assert fmt_pct(19 / 20) == "95.0%" and fmt_pct(float("nan")) == "n/a"
    assert fmt_count(1234567) == "1,234,567"
    assert [fmt_value(v) for v in (0.21349, 2.1e-05, 1234.5, 0.0, None)] == [
        "0.213", "2.1e-05", "1,234", "0", "n/a"
    ]  # fmt: skip
    assert fmt_time(START) == "2026-10-01"
    assert fmt_time(START.replace(hour=14, minute=5)) == "2026-10-01 14:05"
    assert fmt_period(START, END) == "1 October 2026 to 31 October 2026 (UTC)"


def test_template_lookup(tmp_path, monkeypatch):
    found = template_dir()
    assert (found / "report.html.j2").is_file()
    copy = tmp_path / "tpl"
    shutil.copytree(found, copy)
    (copy / "report.html.j2").write_text("<p>{{ ctx.title }} custom</p>")
    monkeypatch.setenv("MLMON_TEMPLATES", str(copy))
    assert template_dir() == copy
    assert render_html(context()) == "<p>Model monitoring report custom</p>"
    monkeypatch.setenv("MLMON_TEMPLATES", str(tmp_path / "nowhere"))
    assert template_dir() == found  # an override without templates falls through
    import mlmon.reports.render as r

    monkeypatch.setattr(r, "_candidates", lambda templates: [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(ConfigError, match=r"looked in .*a, .*b\. Set MLMON_TEMPLATES"):
        template_dir()


def test_unknown_format_writes_nothing(tmp_path):
    with pytest.raises(ConfigError, match="'docx' unknown; use pdf, html"):
        render(context(), tmp_path / "out", ("html", "docx"))
    assert not (tmp_path / "out").exists()


def test_performance_chart_draws_only_layers_with_values():
    """A layer with no value makes Vega warn "Infinite extent" in the browser (the server's
    pages must log nothing): realized-only periods draw no band or estimate layer, and a
    frame with no value at all draws no chart."""
    from datetime import datetime

    import polars as pl

    periods = [datetime(2026, 10, d) for d in (1, 2)]
    frame = pl.DataFrame(
        {"period": periods, "metric": ["accuracy"] * 2, "realized": [0.9, 0.8],
         "estimated": [None, None], "lower": [None, None], "upper": [None, None]},
        schema_overrides={"estimated": pl.Float64, "lower": pl.Float64, "upper": pl.Float64},
    )  # fmt: skip
    spec = charts.performance_chart(frame).to_dict()
    assert [layer["encoding"]["y"]["field"] for layer in spec["layer"]] == ["realized"]
    empty = frame.with_columns(pl.lit(None, pl.Float64).alias("realized"))
    assert charts.performance_chart(empty) is None
    both = frame.with_columns(estimated=pl.col("realized"), lower=pl.col("realized") - 0.1,
                              upper=pl.col("realized") + 0.1)  # fmt: skip
    assert len(charts.performance_chart(both).to_dict()["layer"]) == 3

"""A report a quality board understands (issue 16.6), asserted on rendered reports of a real lake.

The lake is the six fixture days through the real collector (6-hour windows, golden
checks on 2026-10-07, one failing); every expected figure is computed here from the
lake's own tables and the analysis API, then looked for in the PDF text (pypdf) and
the HTML page.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest
from pypdf import PdfReader

from mlmon.analysis.lake import Lake
from mlmon.reports import charts
from mlmon.reports.context import REPORT_METHODS, collect, method_name, period_bounds, rule_name
from mlmon.reports.render import render
from mlmon.reports.summary import fmt_value, fmt_window
from tests.reports.fixture_lake import build_fixture_lake

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "data" / "fixtures"
MODEL = "risk-model"
START, END = period_bounds("2026-10", None, None)
#: A period before the golden run of 2026-10-07 (drift alerts of 2026-10-04 fall inside it).
EARLY = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 5, tzinfo=UTC))
APPENDIX = "Appendix A: drift methods and thresholds"


@pytest.fixture(scope="module")
def lake_dir(tmp_path_factory) -> Path:
    """Six fixture days through the real collector, golden checks run on 2026-10-07 (one fails)."""
    return build_fixture_lake(tmp_path_factory.mktemp("boardlake"))


@pytest.fixture(scope="module")
def month(lake_dir, tmp_path_factory):
    """October rendered to PDF and HTML: (context, PDF text, HTML page)."""
    ctx = collect(str(lake_dir), [MODEL], START, END)
    files = render(ctx, tmp_path_factory.mktemp("month"), ("pdf", "html"))
    return ctx, _pdf_text(files["pdf"]), files["html"].read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def early(lake_dir, tmp_path_factory):
    """1 to 4 October (no golden checks inside it) rendered to PDF and HTML."""
    ctx = collect(str(lake_dir), [MODEL], *EARLY)
    files = render(ctx, tmp_path_factory.mktemp("early"), ("pdf", "html"))
    return ctx, _pdf_text(files["pdf"]), files["html"].read_text(encoding="utf-8")


def _pdf_text(pdf: Path) -> str:
    """The PDF's text with whitespace runs (line breaks included) folded to one space."""
    return " ".join(" ".join(p.extract_text() or "" for p in PdfReader(pdf).pages).split())


def _plain(html_fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", html_fragment)).split())


class _Table(HTMLParser):
    """The rows of one ``<table class="...">``: each cell's class and text."""

    def __init__(self, cls: str) -> None:
        super().__init__()
        self.cls, self.depth, self.rows = cls, 0, []
        self.cell: dict[str, str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and self.cls in (a.get("class") or "").split():
            self.depth = 1
        elif self.depth and tag == "tr":
            self.rows.append([])
        elif self.depth and tag in ("td", "th"):
            self.cell = {"class": a.get("class") or "", "text": "", "tag": tag}

    def handle_endtag(self, tag):
        if tag == "table":
            self.depth = 0
        elif self.cell is not None and tag in ("td", "th"):
            self.cell["text"] = " ".join(self.cell["text"].split())
            self.rows[-1].append(self.cell)
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell["text"] += data + " "


def test_drift_table_highlights_exactly_what_the_api_flags(lake_dir, month):
    _, text, page = month
    api = Lake(str(lake_dir)).drift(MODEL, START, END, by="all", methods=list(REPORT_METHODS))
    # the case of the issue: a p-value far below its threshold, flagged by the API
    chi = api.filter((pl.col("feature") == "age") & (pl.col("method") == "chi_square")).row(
        0, named=True
    )
    assert chi["drifted"] and chi["value"] < chi["threshold"]
    table = _Table("drift")
    table.feed(page)
    header, *rows = table.rows
    columns = [c["text"] for c in header]
    by_label = {method_name(m): m for m in api["method"].unique().to_list()}
    shown = {}
    for row in rows:
        feature = row[0]["text"]
        for col, cell in zip(columns[2:], row[2:], strict=True):
            method = next(m for label, m in by_label.items() if col.startswith(label))
            shown[(feature, method)] = (cell["text"], "flag" in cell["class"].split())
    expected = {
        (r["feature"], r["method"]): (fmt_value(r["value"]), bool(r["drifted"]))
        for r in api.iter_rows(named=True)
    }
    assert {k: v for k, v in shown.items() if v[0] != "–"} == expected
    assert shown[("age", "chi_square")] == (fmt_value(chi["value"]), True)
    assert f"Chi-square test p-value < {fmt_value(chi['threshold'])}" in text
    # "drifted features" still counts distances only, and says so
    assert "value is shown but not counted" in text


def test_month_figure_and_window_alerts_are_reconciled_in_words(lake_dir, month):
    _, text, _ = month
    lake = Lake(str(lake_dir))
    windows = lake.read("drift", model=MODEL, start=START, end=END).filter(
        pl.col("method") == "psi"
    )
    whole = lake.drift(MODEL, START, END, by="all", methods=["psi"])
    hours = (windows["window_end"] - windows["window_start"]).dt.total_seconds().unique()
    assert hours.to_list() == [6 * 3600]
    checked = 0
    for feature in sorted(set(windows.filter(pl.col("drifted"))["feature"])):
        w = windows.filter(pl.col("feature") == feature)
        k, n = int(w["drifted"].sum()), w.height
        assert 0 < k < n  # the month and the windows can disagree: the sentence must say both
        m = whole.filter(pl.col("feature") == feature).row(0, named=True)
        side = "above" if m["drifted"] else "below"
        assert (
            f"{feature} drifted in {k} of {n} windows of 6 hours (PSI above "
            f"{fmt_value(m['threshold'])}); over the whole period PSI {fmt_value(m['value'])}, "
            f"{side} its threshold."
        ) in text
        checked += 1
    assert checked >= 3
    assert "An alert is written when its condition starts to hold in a window" in text


def test_each_alert_row_names_its_window_in_plain_words(lake_dir, month):
    _, _, page = month
    alerts = Lake(str(lake_dir)).read("alerts", model=MODEL, start=START, end=END)
    assert alerts.height >= 4
    table = _Table("alerts")
    table.feed(page)
    header, *rows = table.rows
    assert header[0]["text"] == "Window covered (UTC)"
    got = sorted((r[0]["text"], r[3]["text"], r[4]["text"]) for r in rows)
    want = sorted(
        (fmt_window(a["window_start"], a["window_end"]), rule_name(a["rule"]), a["feature"] or "")
        for a in alerts.iter_rows(named=True)
    )
    assert got == want
    # the drift alerts cover a window days before the run that raised them
    raised = {a["window_start"]: a["raised_at"] for a in alerts.iter_rows(named=True)}
    assert any(r - w >= timedelta(days=1) for w, r in raised.items())


def test_method_ids_appear_only_in_the_appendix(month):
    ctx, text, _ = month
    heading = text.index(APPENDIX, text.index(APPENDIX) + 1)  # past the table of contents
    body, appendix = text[:heading], text[heading:]
    assert body.count("Drift against the reference") == 1
    ids = [m.name for m in ctx.methods]
    assert "psi" in ids and "chi_square" in ids
    for method_id in [*ids, "drift:psi", "golden_pass_rate"]:
        assert not re.search(rf"(?<![\w-]){re.escape(method_id)}(?![\w-])", body), method_id
    joined = body.replace("- ", "-")  # a name wrapped at its hyphen in a table header
    for m in ctx.methods:
        assert method_name(m.name) in joined
        assert m.name in appendix


def test_alerts_chart_draws_each_alert_at_its_window_inside_the_axes(lake_dir, early):
    ctx, _, _ = early
    start, end = EARLY
    alerts = ctx.models[0].alerts
    assert alerts.height and (alerts["time"] >= end).all()  # all raised after this period
    svg = charts.to_svg(charts.alerts_chart(alerts, start, end))
    width = float(re.search(r'class="background"[^>]*d="M0\.5,0\.5h([\d.]+)v', svg).group(1))
    ticks = re.findall(r'aria-roledescription="tick" d="M([\d.-]+),', svg)
    assert len(ticks) == alerts.height
    for x, ws in zip(sorted(map(float, ticks)), sorted(alerts["window_start"]), strict=True):
        assert 0 <= x <= width
        assert x + 1 == pytest.approx(width * ((ws - start) / (end - start)), abs=2)
    days = re.findall(r"<text[^>]*>(\w{3} \d\d)</text>", svg)  # a short period: no day twice
    assert len(days) == len(set(days)) == (end - start).days + 1


def test_distribution_bin_labels_are_whole(month):
    ctx, _, _ = month
    dists = ctx.models[0].distributions
    assert any(d.kind == "numeric" for d in dists) and any(d.kind == "categorical" for d in dists)
    for d in dists:
        svg = charts.to_svg(charts.distribution_chart(d))
        labels = [_plain(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]
        assert "…" not in "".join(labels)
        for label in d.frame["label"].to_list():
            assert label in labels, (d.feature, label)


def test_last_seen_is_the_day_of_the_last_window(lake_dir, month):
    _, _, page = month
    windows = (
        Lake(str(lake_dir))
        .scan("profiles", model=MODEL, start=START, end=END)
        .group_by("model_version")
        .agg(pl.col("window_start").min(), pl.col("window_end").max())
        .collect()
    )
    table = _Table("versions")
    table.feed(page)
    shown = {r[0]["text"]: (r[1]["text"], r[2]["text"]) for r in table.rows[1:]}
    assert len(shown) == windows.height >= 2
    for v in windows.iter_rows(named=True):
        last_day = (v["window_end"] - timedelta(microseconds=1)).date()
        assert v["window_end"].date() != last_day  # windows end at midnight: the old bug
        assert shown[v["model_version"]] == (
            v["window_start"].date().isoformat(),
            last_day.isoformat(),
        )


def test_golden_checks_outside_the_period_are_named(lake_dir, early):
    _, text, page = early
    checked = Lake(str(lake_dir)).read("golden", model=MODEL)["checked_at"]
    end = EARLY[1]
    assert checked.len() and (checked >= end).all()
    day = checked.min().date()
    sentence = f"golden checks ran on {day.day} {day:%B %Y}, outside this period"
    assert f"No golden checks ran in this period; {sentence}." in text
    assert sentence in _plain(page)


def test_html_keeps_a_static_svg_for_each_chart_where_scripts_are_stripped(month):
    ctx, _, page = month
    n = len(charts.section_charts(ctx.models[0], ctx.methods, START, END))
    assert n >= 6
    stripped = re.sub(r"<script>.*?</script>", "", page, flags=re.S)  # what a mail filter leaves
    assert "vegaEmbed" not in stripped
    static = re.findall(r'<div class="chart-static" id="(chart-1-\w+)-static"><svg ', stripped)
    assert len(static) == n
    for eid in static:  # with scripts on, the page removes the static chart before Vega draws
        assert f"document.getElementById('{eid}-static').remove();vegaEmbed('#{eid}'" in page
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert len(ids) == len(set(ids))  # inline SVGs' clip paths do not clash


def test_mlmon_report_path_carries_the_windows_through_the_saved_context(lake_dir, tmp_path):
    """`mlmon report` computes in a notebook, saves the context and renders in another process."""
    from mlmon.reports.runner import run_report

    done = run_report(str(lake_dir), [MODEL], START, END, str(tmp_path), formats=("pdf",))
    text = _pdf_text(Path(done["pdf"]))
    lake = Lake(str(lake_dir))
    alerts = lake.read("alerts", model=MODEL, start=START, end=END)
    for a in alerts.iter_rows(named=True):
        assert fmt_window(a["window_start"], a["window_end"]) in text
    windows = lake.read("drift", model=MODEL, start=START, end=END).filter(
        (pl.col("method") == "psi") & (pl.col("feature") == "age")
    )
    k, n = int(windows["drifted"].sum()), windows.height
    assert f"age drifted in {k} of {n} windows of 6 hours" in text

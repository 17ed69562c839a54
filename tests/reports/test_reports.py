"""Reports from a fixture lake: a real kernel (papermill), a real PDF read back, HTML with no URLs."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image
from pypdf import PdfReader

from mlmon.analysis.lake import Lake
from mlmon.reports.context import collect, period_bounds
from mlmon.reports.render import fmt_ms, fmt_pct, render
from mlmon.reports.runner import run_report
from tests.reports.fixture_lake import build_fixture_lake

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "data" / "fixtures"
START, END = period_bounds("2026-10", None, None)


@pytest.fixture(scope="module")
def lake_dir(tmp_path_factory):
    """Six fixture days through the real collector, golden checks run on 2026-10-07 (one fails)."""
    return build_fixture_lake(tmp_path_factory.mktemp("reportlake"))


def test_pdf_prints_what_the_lake_api_computes(lake_dir, tmp_path):
    done = run_report(
        str(lake_dir), ["risk-model"], START, END, str(tmp_path), formats=("pdf", "html")
    )
    assert (
        Path(done["ipynb"]).exists() and (Path(done["context"]) / "context.json").exists()
    )  # kept for audit
    reader = PdfReader(done["pdf"])
    text = " ".join("\n".join(p.extract_text() for p in reader.pages).split())  # lines re-joined
    lake = Lake(str(lake_dir))
    p95 = lake.percentiles(
        "latency_ms", (0.95,), model="risk-model", start=START, end=END, by="all", source="stream"
    )
    assert fmt_ms(p95["value"][0]) in text
    golden = lake.read("golden", model="risk-model")
    rate = golden["passed"].sum() / golden.height
    assert rate == pytest.approx(19 / 20)
    assert f"Golden checks {fmt_pct(rate)} passed" in text
    drift = lake.drift(
        "risk-model", START, END, by="all", methods=["psi", "jensen_shannon", "ks", "wasserstein"]
    )
    drifted = sorted(set(drift.filter(pl.col("drifted"))["feature"]))
    assert drifted == ["age", "score", "ward"]
    assert "Drifted features: age, score, ward" in text
    assert re.search(r"Executive summary ?\.+ ?2", text)  # the table of contents has page numbers
    assert "Page 1 of" in text and "Traceback" not in text
    assert len(reader.pages) >= 5

    png = tmp_path / "page"
    subprocess.run(
        ["pdftoppm", "-r", "40", "-png", "-f", "1", "-l", "1", done["pdf"], str(png)], check=True
    )
    img = np.asarray(Image.open(next(tmp_path.glob("page*.png"))).convert("L"))
    assert (img < 128).mean() > 0.003  # text and the status badge (a blank page has none)


class _Srcs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("src", "href") and v:
                self.urls.append(v)


def test_html_is_self_contained(lake_dir, tmp_path):
    ctx = collect(str(lake_dir), ["risk-model"], START, END)
    html = render(ctx, tmp_path, ("html",))["html"].read_text()
    parser = _Srcs()
    parser.feed(html)
    assert not [u for u in parser.urls if u.startswith(("http:", "https:", "//"))]
    assert html.count("vegaEmbed('#chart-") >= 4
    assert html.count("<script>") - html.count("vegaEmbed(") == 1  # the Vega bundle, inlined once


def test_empty_period_unknown_model_and_missing_reference(lake_dir, tmp_path):
    ctx = collect(
        str(lake_dir), ["risk-model", "no-such-model"], *period_bounds("2026-08", None, None)
    )
    assert ctx.models[0].status == "grey" and "No inference records" in " ".join(
        ctx.models[0].notes
    )
    assert "no data for model 'no-such-model'" in ctx.models[1].notes[0]
    pdf = render(ctx, tmp_path, ("pdf",))["pdf"]
    text = "\n".join(p.extract_text() for p in PdfReader(pdf).pages)
    assert "No golden checks ran in this period" in text and "Traceback" not in text

    copy = tmp_path / "noref"
    shutil.copytree(lake_dir, copy)
    shutil.rmtree(copy / "v1" / "references")
    ctx = collect(str(copy), ["risk-model"], START, END)
    assert any("Drift was not computed" in n for n in ctx.models[0].notes)
    text = "\n".join(
        p.extract_text() for p in PdfReader(render(ctx, tmp_path / "nr", ("pdf",))["pdf"]).pages
    )
    assert "Drift was not computed" in text and "Traceback" not in text


def test_explore_notebook_runs(lake_dir, tmp_path):
    import papermill

    out = tmp_path / "explore.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / "explore.ipynb"), str(out), kernel_name="python3",
                               progress_bar=False, parameters={"lake_uri": str(lake_dir), "model": "risk-model"})  # fmt: skip
    nb = json.loads(out.read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("text/html" in o.get("data", {}) for o in outputs)


def test_cli_report_and_bad_period(lake_dir, tmp_path):
    import sys

    proc = subprocess.run([sys.executable, "-m", "mlmon.cli", "report", "--lake", str(lake_dir), "--model", "risk-model",
                           "--period", "2026-13", "--out", str(tmp_path)], capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2 and "is not YYYY-MM" in proc.stderr


def test_schedules_write_reports_and_an_index(lake_dir, tmp_path):
    from mlmon.errors import ConfigError
    from mlmon.reports.schedule import load_schedule_config, period_for, run_due

    cfg_file = tmp_path / "reports.yaml"
    cfg_file.write_text(
        f"lake: {{uri: '{lake_dir}'}}\noutput: '{tmp_path / 'reports'}'\nschedules:\n"
        "  - {name: monthly-pdf, cron: '0 6 1 * *', period: previous_month, models: [risk-model], formats: [pdf]}\n"
        "  - {name: daily-html, cron: '0 7 * * *', period: previous_day, models: [risk-model], formats: [html]}\n"
    )
    cfg = load_schedule_config(cfg_file)
    now = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)
    assert period_for("previous_month", now)[2] == "2026-10"
    assert period_for("previous_week", datetime(2026, 10, 7, tzinfo=UTC))[2] == "2026-W40"
    entries = run_due(cfg, now)
    assert [e["period"] for e in entries] == ["2026-10", "2026-10-31"]
    index = json.loads((tmp_path / "reports" / "index.json").read_text())
    assert {(e["schedule"], e["period"]) for e in index} == {
        ("monthly-pdf", "2026-10"),
        ("daily-html", "2026-10-31"),
    }
    pdf = tmp_path / "reports" / index[-1]["files"]["pdf"] if "pdf" in index[-1]["files"] else None
    assert pdf is None or pdf.exists()
    assert (tmp_path / "reports" / "monthly-pdf" / "2026-10" / "monthly-pdf_2026-10.pdf").exists()
    assert (tmp_path / "reports" / "monthly-pdf" / "2026-10" / "monthly-pdf_2026-10.ipynb").exists()
    assert (
        'href="monthly-pdf/2026-10/monthly-pdf_2026-10.pdf"'
        in (tmp_path / "reports" / "index.html").read_text()
    )

    cfg_file.write_text(
        "lake: {uri: x}\noutput: y\nschedules:\n  - {name: m, cron: 'every month', models: [a]}\n"
    )
    with pytest.raises(
        ConfigError, match=r"schedules\.0\.cron: \"every month\" is not a cron expression"
    ):
        load_schedule_config(cfg_file)


def test_context_displays_in_jupyter(lake_dir):
    ctx = collect(str(lake_dir), ["risk-model"], START, END)
    html_text = ctx._repr_html_()
    assert (
        "risk-model" in html_text
        and ctx.overall_status.upper() in html_text
        and "2026-10-01" in html_text
    )


def test_cli_report_writes_a_report_rendered_audit_record(lake_dir, tmp_path):
    import sys

    from mlmon.governance.audit import verify

    lake = tmp_path / "lake"
    shutil.copytree(lake_dir, lake)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "mlmon.cli", "report", "--lake", str(lake), "--model", "risk-model",
                           "--start", "2026-10-05", "--end", "2026-10-06", "--format", "html", "--out", str(out),
                           "--state-dir", str(tmp_path / "state")], capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = verify(str(lake))
    assert result.ok
    recs = [json.loads(line) for f in sorted((lake / "audit" / "reports").glob("*.jsonl"))
            for line in f.read_text().splitlines()]  # fmt: skip
    rendered = [r for r in recs if r["action"] == "report_rendered"]
    assert len(rendered) == 1 and rendered[0]["target"] == str(out)
    html = next(out.glob("*.html"))
    assert rendered[0]["details"]["sha256"]["html"] == hashlib.sha256(html.read_bytes()).hexdigest()

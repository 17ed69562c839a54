"""`mlmon report` and `mlmon schedule run`: relative paths work, and only mlmon's own outputs are replaced."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
import yaml
from pypdf import PdfReader

from mlmon.edge.ingest import WindowAccumulator
from mlmon.lake.owned import MARKER
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import build_reference
from mlmon.profiles.schema import Schema

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "data" / "fixtures"
CANARY = "PATIENT-CANARY-7731"
STEM = "risk-model_20261001-20261101"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A folder holding ``lake/``: the six fixture days profiled as `mlmon profile` does."""
    d = tmp_path_factory.mktemp("project")
    schema = Schema.from_dict(yaml.safe_load((FIX / "schema.yaml").read_text()))
    ref = build_reference(pl.read_parquet(FIX / "reference.parquet"), schema, model="risk-model")
    writer = LakeWriter(str(d / "lake"), collector_id="batch")
    writer.write_reference("risk-model", ref)
    acc = WindowAccumulator(ref, window=timedelta(hours=1))
    for f in sorted((FIX / "inference").glob("*.parquet")):
        acc.add(pl.read_parquet(f))
    acc.flush(writer, "risk-model", source="batch")
    return d


def _mlmon(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlmon.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300, stdin=subprocess.DEVNULL)  # fmt: skip


def test_report_with_relative_lake_and_out_then_again_into_its_own_folder(project):
    args = ("report", "--lake", "./lake", "--model", "risk-model", "--period", "2026-10",
            "--out", "reports/", "--state-dir", "st")  # fmt: skip
    first = _mlmon(project, *args, "--format", "pdf,html")
    assert first.returncode == 0, first.stderr[-3000:]
    out = project / "reports"
    pdf = out / f"{STEM}.pdf"
    assert pdf.is_file() and (out / f"{STEM}.html").is_file() and (out / f"{STEM}.ipynb").is_file()
    assert not (out / "reports").exists()  # the notebook ran in reports/ with resolved paths
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(pdf).pages).split())
    assert "risk-model RED 18,000" in text and "Drifted features: age, score, ward" in text
    assert "NO DATA" not in text.upper()
    owned = json.loads((out / MARKER).read_text())["entries"]
    assert sorted(owned) == sorted(
        [f"{STEM}.pdf", f"{STEM}.html", f"{STEM}.ipynb", f"{STEM}-context"]
    )
    # a second run replaces its own outputs, and leaves a user's file beside them alone
    (out / "notes.txt").write_text(CANARY)
    before = pdf.stat().st_mtime_ns
    again = _mlmon(project, *args, "--format", "pdf")
    assert again.returncode == 0, again.stderr[-3000:]
    assert pdf.stat().st_mtime_ns != before and (out / "notes.txt").read_text() == CANARY


def test_report_refuses_to_write_over_a_users_file(project, tmp_path):
    out = tmp_path / "shared"
    out.mkdir()
    theirs = out / f"{STEM}.pdf"
    theirs.write_text(CANARY)
    proc = _mlmon(project, "report", "--lake", "lake", "--model", "risk-model", "--period", "2026-10",
                  "--out", str(out), "--state-dir", "st")  # fmt: skip
    assert proc.returncode == 2
    assert f"{out} holds 1 entry mlmon did not write ({STEM}.pdf)" in proc.stderr
    assert (
        "--out OTHER" in proc.stderr
        and CANARY not in proc.stderr
        and "Traceback" not in proc.stderr
    )
    assert theirs.read_text() == CANARY and sorted(p.name for p in out.iterdir()) == [theirs.name]


def test_schedule_resolves_paths_from_its_config_and_keeps_a_users_index(project, tmp_path):
    conf = project / "conf"
    conf.mkdir(exist_ok=True)
    (conf / "reports.yaml").write_text(
        "lake: {uri: ../lake}\noutput: ../scheduled\nschedules:\n"
        "  - {name: daily, cron: '0 7 * * *', period: previous_day, models: [risk-model], formats: [html]}\n"
    )
    out = project / "scheduled"
    out.mkdir(exist_ok=True)
    index = out / "index.html"
    index.write_text(CANARY)  # someone's own index page
    cmd = ("schedule", "run", "--config", str(conf / "reports.yaml"), "--once")
    refused = _mlmon(tmp_path, *cmd)  # run from elsewhere: paths come from the config's folder
    assert (
        refused.returncode == 2
        and f"{out} holds 1 entry mlmon did not write (index.html)" in refused.stderr
    )
    assert index.read_text() == CANARY and not (out / "daily").exists()
    index.unlink()
    done = _mlmon(tmp_path, *cmd)
    assert done.returncode == 0, done.stderr[-3000:]
    [entry] = json.loads((out / "index.json").read_text())
    html = out / entry["files"]["html"]
    assert html.is_file() and "risk-model" in html.read_text()
    assert "index.html" in json.loads((out / MARKER).read_text())["entries"]

"""`mlmon report` with a model the lake does not hold is an error; a known model with no data is a report."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
import yaml

from mlmon.edge.ingest import WindowAccumulator
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import build_reference
from mlmon.profiles.schema import Schema

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "data" / "fixtures"


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    """One fixture day of ``risk-model`` profiled as `mlmon profile` does."""
    d = tmp_path_factory.mktemp("report-models")
    schema = Schema.from_dict(yaml.safe_load((FIX / "schema.yaml").read_text()))
    ref = build_reference(pl.read_parquet(FIX / "reference.parquet"), schema, model="risk-model")
    writer = LakeWriter(str(d / "lake"), collector_id="batch")
    writer.write_reference("risk-model", ref)
    acc = WindowAccumulator(ref, window=timedelta(hours=6))
    acc.add(pl.read_parquet(sorted((FIX / "inference").glob("*.parquet"))[0]))
    acc.flush(writer, "risk-model", source="batch")
    return d / "lake"


def _report(lake: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlmon.cli", "report", "--lake", str(lake), "--out", str(out),
                           "--format", "html", "--state-dir", str(out.parent / "st"), *args],
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)  # fmt: skip


def test_a_model_name_typo_is_an_error_naming_the_models_and_writes_nothing(lake, tmp_path):
    out = tmp_path / "out"
    proc = _report(lake, out, "--model", "risk-modle", "--period", "2026-10")
    assert proc.returncode == 2, proc.stderr
    assert "model 'risk-modle' is not in the lake" in proc.stderr
    assert "expected one of: risk-model" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()  # no grey "NO DATA" report, no owned-files marker
    # one good and one misspelt model: still refused, before the notebook runs
    both = _report(
        lake, out, "--model", "risk-model", "--model", "risk-modle", "--period", "2026-10"
    )
    assert both.returncode == 2 and "'risk-modle'" in both.stderr and not out.exists()


def test_a_reversed_range_is_an_error(lake, tmp_path):
    out = tmp_path / "out"
    proc = _report(
        lake, out, "--model", "risk-model", "--start", "2026-11-01", "--end", "2026-10-01"
    )
    assert proc.returncode == 2 and "is not before end" in proc.stderr, proc.stderr
    assert not out.exists()


def test_a_known_model_with_no_data_in_the_period_is_a_no_data_report(lake, tmp_path):
    out = tmp_path / "out"
    proc = _report(lake, out, "--model", "risk-model", "--period", "2027-03")
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = next(out.glob("*.html")).read_text()
    assert "no data" in html.lower()

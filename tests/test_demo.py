"""The README's main command, end to end, as a newcomer runs it, on any date."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from pypdf import PdfReader

from mlmon.analysis.lake import Lake
from mlmon.demo.run import MODEL
from mlmon.lake.owned import MARKER

# One worker runs this module (make test: --dist loadgroup), so the demo runs once for it all.
pytestmark = pytest.mark.xdist_group("demo")

ROOT = Path(__file__).resolve().parents[1]
CANARY = "PATIENT-CANARY-7731"
FIXTURE_DAYS = sorted((ROOT / "data" / "fixtures" / "inference").glob("*.parquet"))
LABELLED_DAYS = FIXTURE_DAYS[:4]  # the demo writes outcomes for the first four days


@dataclass(frozen=True)
class DemoRun:
    lake: Path
    returncode: int
    stdout: str
    stderr: str


def faketime() -> str:
    """The ``faketime`` command (Debian package ``faketime``, libfaketime), or a clear failure."""
    found = shutil.which("faketime")
    if found is None:
        pytest.fail(
            "faketime is not installed: these tests move the clock years ahead with libfaketime. "
            "Install it with `sudo apt-get install faketime` (scripts/bootstrap.sh installs it)."
        )
    return found


def run_demo(lake: Path, offset: str | None = None) -> DemoRun:
    """``mlmon demo --lake LAKE`` in a subprocess, under ``faketime -f OFFSET`` when given."""
    cmd = [sys.executable, "-m", "mlmon.cli", "demo", "--lake", str(lake)]
    if offset is not None:
        cmd = [faketime(), "-f", offset, *cmd]
    env = {k: v for k, v in os.environ.items() if k not in ("FAKETIME", "LD_PRELOAD")}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600, env=env)
    return DemoRun(lake, proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    return run_demo(tmp_path_factory.mktemp("demo") / "lake")


def _labelled_outcomes() -> int:
    """What the demo's labels folder holds: 90% of each of the first four days' records."""
    return sum(int(0.9 * pl.read_parquet(f).height) for f in LABELLED_DAYS)


def test_demo_runs_edge_lake_analysis_and_report(demo: DemoRun) -> None:
    assert demo.returncode == 0, demo.stderr[-3000:]
    out = demo.stdout
    assert "edge cycle 1: golden 20/20 passed, 18000 records" in out
    assert "2026-10-04 ┆ age" in out and "2026-10-03 ┆ age" not in out
    pdf = demo.lake.parent / "lake-report" / "risk-model_2026-10.pdf"
    assert pdf.exists() and (demo.lake.parent / "lake-report" / "risk-model_2026-10.ipynb").exists()
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(pdf).pages).split())
    assert "risk-model" in text and "Drifted features: age" in text
    # delayed outcomes for days 1-4: every one joins (on any date: the label horizon counts
    # from when the edge stored a prediction), realized and estimated side by side
    n = _labelled_outcomes()
    first, last = LABELLED_DAYS[0].stem, LABELLED_DAYS[-1].stem
    assert (
        f"outcomes: {n} written to the labels folder (days 1-4); the edge read {n} in "
        f"{len(LABELLED_DAYS)} batch(es): {n} matched, realized for {first} to {last}"
    ) in out
    perf = [line for line in out.splitlines() if "┆ accuracy" in line]
    assert len(perf) == len(FIXTURE_DAYS)
    for line in perf:
        labelled = any(line.lstrip("│ ").startswith(f.stem) for f in LABELLED_DAYS)
        assert ("NaN" not in line) if labelled else ("NaN" in line), line
    assert "Model performance" in text and f"Labels joined for {n:,} of 18,000" in text
    assert f"Labels: {n:,} records in {len(LABELLED_DAYS)} batches, {n:,} joined" in text
    assert "Calibration" in text
    # it ends with the one command that serves the dashboard on this lake (issue 21)
    tail = out.rsplit("6. the dashboard on this lake", 1)[1]
    assert (
        f".venv/bin/mlmon server --lake {demo.lake.resolve()} --reports "
        f"{demo.lake.resolve().parent / 'lake-report'} --range-anchor data"
    ) in tail
    assert (
        "http://127.0.0.1:8400/models/risk-model?range=custom&start=2026-10-01&end=2026-10-06"
        in tail
    )


def _numbers(lake: Path) -> dict[str, pl.DataFrame]:
    """Every figure the demo shows, recomputed from its lake (times of the run left out)."""
    lk = Lake(str(lake))
    batches = lk.read("label_batches", model=MODEL)
    return {
        "performance": lk.performance(MODEL, by="day").sort("period", "metric"),
        "drift": lk.drift(MODEL, by="day").sort("period", "feature", "method"),
        "percentiles": lk.percentiles("latency_ms", model=MODEL, by="day", source="stream").sort(
            "period", "quantile"
        ),
        "label_batches": batches.drop("received_at", "collector_id").sort("batch_id"),
        "profiles": lk.sql(
            "SELECT window_start, feature, sum(count) AS n FROM profiles GROUP BY ALL ORDER BY ALL"
        ),
    }


def _profile_rows(lake: Path) -> int:
    return duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{lake}/v1/profiles/**/*.parquet')"
    ).fetchall()[0][0]


def test_demo_rerun_five_years_later_gives_the_same_numbers_and_keeps_the_users_files(
    demo: DemoRun,
) -> None:
    """The demo again on its own folders, with the clock moved five years ahead (libfaketime):
    every outcome joins and every figure equals today's run (nothing depends on the calendar),
    the old lake is cleared rather than added to, and files the user dropped into the demo's
    folders after the first run survive (the demo clears only what it wrote)."""
    assert demo.returncode == 0, demo.stderr[-3000:]
    today, rows = _numbers(demo.lake), _profile_rows(demo.lake)
    folders = (demo.lake, demo.lake.parent / ".lake-demo", demo.lake.parent / "lake-report")
    for folder in folders:
        (folder / "notes.txt").write_text(CANARY)
    later = run_demo(demo.lake, "+1825d")
    assert later.returncode == 0, later.stderr[-3000:]
    for folder in folders:
        assert (folder / "notes.txt").read_text() == CANARY
    assert "notes.txt" not in json.loads((demo.lake / MARKER).read_text())["entries"]
    assert _profile_rows(demo.lake) == rows
    moved = _numbers(demo.lake)
    for name in today:
        try:  # counts exactly; floats up to the last bits (merge order follows file listings)
            assert_frame_equal(today[name], moved[name], rel_tol=1e-12, abs_tol=1e-15)
        except AssertionError as exc:
            raise AssertionError(f"{name} differs under faketime +1825d: {exc}") from exc
    assert today["label_batches"]["matched"].sum() == _labelled_outcomes()
    table = [
        line for line in demo.stdout.splitlines() if "┆ accuracy" in line or "┆ roc_auc" in line
    ]
    assert table and table == [
        line for line in later.stdout.splitlines() if "┆ accuracy" in line or "┆ roc_auc" in line
    ]


@pytest.mark.parametrize("offset", ["+365d", "+1825d"])
def test_label_tests_pass_with_the_clock_moved_ahead(offset: str) -> None:
    """The delayed-label tests (which compare the lake's figures with scikit-learn on the raw
    rows) under a clock moved one and five years ahead."""
    env = {k: v for k, v in os.environ.items() if k not in ("FAKETIME", "LD_PRELOAD")}
    proc = subprocess.run(
        [faketime(), "-f", offset, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/edge/test_labels.py"],
        capture_output=True, text=True, cwd=ROOT, timeout=900, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout


def test_demo_says_why_when_no_outcome_joined(tmp_path: Path) -> None:
    """The demo's outcome lines come from the lake's label_batches: when nothing joined they
    say how many records and why, and the demo exits 6 instead of showing an empty column."""
    from datetime import UTC, datetime, timedelta

    import numpy as np

    from mlmon.cli import EXIT_UNJOINED
    from mlmon.demo.run import _say_outcomes
    from mlmon.edge.labels import LabelJoinConfig, PredictionStore, join_labels
    from mlmon.lake.writer import LakeWriter
    from mlmon.profiles.frame import build_reference
    from mlmon.profiles.performance import PerformanceSpec

    rng = np.random.default_rng(2)
    ref = build_reference(
        pl.DataFrame({"x": rng.random(300), "score": rng.random(300),
                      "label": rng.integers(0, 2, 300)}),
        performance=PerformanceSpec.make("binary", classes=("0", "1")),
    )  # fmt: skip
    outcomes = pl.DataFrame({"request_id": [f"q{i}" for i in range(40)], "label": [1, 0] * 20})
    store = PredictionStore(tmp_path / "state", timedelta(days=60))  # holds no prediction
    join_labels(outcomes, model=MODEL, reference=ref, secret=b"k" * 32,
                writer=LakeWriter(str(tmp_path / "lake"), collector_id="demo-edge"),
                cfg=LabelJoinConfig(), window=timedelta(hours=6), batch_id="b1",
                source="outcomes.parquet", store=store, now=datetime(2026, 10, 30, tzinfo=UTC))  # fmt: skip
    lines: list[str] = []
    no_perf = pl.DataFrame(schema={"period": pl.Datetime("us", "UTC"), "count_labelled": pl.Int64})
    joined = _say_outcomes(lines.append, Lake(str(tmp_path / "lake")), no_perf, outcomes.height)
    text = "\n".join(lines)
    assert joined == 0
    assert f"the edge read {outcomes.height} in 1 batch(es): 0 matched\n" in text
    assert f"     {outcomes.height} unknown_id: Ids with no stored prediction" in text
    assert f"the realized column is empty and the demo exits {EXIT_UNJOINED}" in text

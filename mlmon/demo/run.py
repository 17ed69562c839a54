"""The README's main command: the whole job on the bundled fixtures, into a local lake."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import polars as pl
import yaml

from mlmon.analysis.lake import Lake
from mlmon.edge.ingest import WindowAccumulator, read_records
from mlmon.lake.references import save_reference
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import build_reference
from mlmon.profiles.schema import Schema

MODEL = "risk-model"
FIXTURES = Path(__file__).resolve().parents[2] / "data" / "fixtures"


def run_demo(lake_dir: Path, *, quiet: bool = False, fixtures: Path = FIXTURES) -> int:
    """Build a reference, profile six days of records into ``lake_dir`` and print a summary."""
    say = (lambda *a: None) if quiet else print
    if not (fixtures / "reference.parquet").exists():
        raise FileNotFoundError(fixtures / "reference.parquet")
    lake_dir = lake_dir.resolve()
    if lake_dir.exists():
        shutil.rmtree(lake_dir)
    lake_dir.mkdir(parents=True)
    schema = Schema.from_dict(
        yaml.safe_load((fixtures / "schema.yaml").read_text()), source="schema.yaml"
    )
    baseline = pl.read_parquet(fixtures / "reference.parquet")
    ref = build_reference(baseline, schema, model=MODEL)
    ref_path = save_reference(ref, lake_dir.parent / f"{lake_dir.name}-reference.parquet")
    writer = LakeWriter(str(lake_dir), collector_id="demo-batch")
    writer.write_reference(MODEL, ref)
    say(
        f"1. reference {ref.reference_id}: {len(ref.profiles)} features from {ref.rows} baseline rows -> {ref_path}"
    )

    acc = WindowAccumulator(ref, window=timedelta(hours=1))
    files = sorted((fixtures / "inference").glob("*.parquet"))
    for f in files:
        for batch in read_records(f):
            acc.add(batch)
    n_windows = len(acc)
    written = acc.flush(writer, MODEL, source="batch")
    say(f"2. profiled {acc.rows} records from {len(files)} files into {n_windows} hourly windows; "
        f"{len(written)} Parquet objects in file://{lake_dir}")  # fmt: skip

    lake = Lake(str(lake_dir))
    drift = lake.drift(MODEL, by="day")
    distance = drift.filter(pl.col("method").is_in(["psi", "jensen_shannon", "ks", "wasserstein"]))
    summary = (
        distance.group_by("period", "feature")
        .agg(pl.col("drifted").sum().alias("methods_flagging"))
        .filter(pl.col("methods_flagging") > 0)
        .sort("period", "feature")
        .with_columns(pl.col("period").dt.date().alias("day"))
        .select("day", "feature", "methods_flagging")
    )
    say("\n3. drift by day (features flagged by PSI, Jensen-Shannon, KS or Wasserstein):")
    if summary.height == 0:
        say("   no drift found")
    else:
        with pl.Config(tbl_rows=50, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
            say(summary)
    lat = lake.percentiles("latency_ms", model=MODEL, by="day")
    wide = lat.pivot("quantile", index="period", values="value").with_columns(
        pl.col("period").dt.date()
    )
    wide.columns = ["day", "p50_ms", "p95_ms", "p99_ms"]
    say("\n4. latency by day (from merged sketches):")
    with pl.Config(
        tbl_rows=50,
        tbl_hide_dataframe_shape=True,
        tbl_hide_column_data_types=True,
        float_precision=1,
    ):
        say(wide)
    say(
        f'\nExplore it: mlmon sql --lake {lake_dir} "SELECT model, date, count(*) FROM profiles GROUP BY ALL"'
    )
    return 0

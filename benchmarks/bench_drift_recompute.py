"""Issue 2 benchmark: drift for one model over 30 days of 5-minute windows x 25 features.

    python -m benchmarks.bench_drift_recompute [--lake benchmarks/data/lake30] [--per-window 200]

Builds (once) a local lake of 8,640 five-minute windows (200 records each,
25 features + latency), then times ``Lake.drift(model, start, end, by=...)``
for the whole month, by day and as one period, in a fresh ``Lake`` each time
(no cache: listing, reading and merging are all counted): first on the lake
as the writer left it (8,640 window objects plus the writer's own day rollup
per table and day, ``v1/rollups/{table}/.../day-bench.parquet``, which whole days are read from),
then after the reader-side compaction job (``mlmon lake compact``) merged each
day into one object plus a day rollup.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from benchmarks.common import make_frame
from mlmon.analysis.lake import Lake
from mlmon.edge.ingest import WindowAccumulator
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import build_reference

START = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 30
WINDOW = timedelta(minutes=5)


def build(lake: Path, per_window: int) -> None:
    if (lake / "_complete").exists():
        return
    shutil.rmtree(lake, ignore_errors=True)
    ref = build_reference(make_frame(50_000, seed=1), model="bench")
    writer = LakeWriter(str(lake), collector_id="bench")
    writer.write_reference("bench", ref)
    windows_per_day = int(timedelta(days=1) / WINDOW)
    for day in range(DAYS):
        n = windows_per_day * per_window
        df = make_frame(n, seed=100 + day, shift=0.05 * day)
        offsets = np.repeat(np.arange(windows_per_day), per_window) * WINDOW.total_seconds()
        ts = pl.Series(
            "timestamp", [START + timedelta(days=day, seconds=float(s)) for s in offsets]
        )
        acc = WindowAccumulator(ref, window=WINDOW)
        acc.add(df.with_columns(ts.dt.cast_time_unit("us")))
        acc.flush(writer, "bench", with_drift=False)
    (lake / "_complete").write_text("ok")


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lake", default="benchmarks/data/lake30")
    ap.add_argument("--per-window", type=int, default=200)
    args = ap.parse_args()
    lake_dir = Path(args.lake)
    t = time.perf_counter()
    build(lake_dir, args.per_window)
    build_s = time.perf_counter() - t
    end = START + timedelta(days=DAYS)
    n_files = len(Lake(str(lake_dir)).files("profiles", model="bench"))
    raw_by_day = timed(lambda: Lake(str(lake_dir)).drift("bench", START, end, by="day"), repeat=3)
    compacted = lake_dir.with_name(lake_dir.name + "-compacted")
    if not (compacted / "_complete").exists():
        shutil.rmtree(compacted, ignore_errors=True)
        shutil.copytree(lake_dir, compacted)
        t = time.perf_counter()
        for table in ("profiles", "latency"):
            Lake(str(compacted)).compact(table, model="bench")
        compact_s = time.perf_counter() - t
    else:
        compact_s = float("nan")
    by_day = timed(lambda: Lake(str(compacted)).drift("bench", START, end, by="day"))
    whole = timed(lambda: Lake(str(compacted)).drift("bench", START, end, by="all"))
    by_hour = timed(lambda: Lake(str(compacted)).drift("bench", START, end, by="hour"), repeat=1)
    print(
        json.dumps(
            {
                "windows": n_files,
                "features": 25,
                "records_per_window": args.per_window,
                "lake_build_s": round(build_s, 1),
                "as_written_drift_by_day_s": round(raw_by_day, 3),
                "compaction_s": round(compact_s, 1),
                "drift_by_day_s": round(by_day, 3),
                "drift_whole_month_s": round(whole, 3),
                "drift_by_hour_s": round(by_hour, 3),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()

"""Issue 3 benchmark: file streams, records/second profiled from JSONL and from Parquet.

    python -m benchmarks.bench_stream [--rows 1000000]

Writes ``--rows`` records (25 features, timestamp, request id, latency) as
10 JSONL files and as 10 Parquet files (not timed), then times a fresh
FileStream reading the folder, profiling into 5-minute windows, writing the
closed windows to a local lake and committing its checkpoint: everything the
collector does per cycle. The request ids are HMACed, as in production.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from benchmarks.common import make_frame
from mlmon.analysis.lake import Lake
from mlmon.edge.streams import FileStream, StreamState
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import build_reference

T0 = datetime(2026, 10, 1, tzinfo=UTC)


def run(folder: Path, fmt: str, ref, state: Path, lake: Path) -> tuple[float, int]:
    stream = FileStream(
        folder,
        "tabular",
        StreamState(ref, state, window=timedelta(minutes=5)),
        b"b" * 32,
        file_format=fmt,
        settle=timedelta(0),
    )
    writer = LakeWriter(str(lake), collector_id=f"bench-{fmt}", k_anonymity=1)
    t = time.perf_counter()
    n = stream.read()
    for w, part in stream.closed_windows(T0 + timedelta(days=30)):
        writer.write_window("bench", w, ref, source="stream", part=part)
    writer.write_rollups()  # the day rollups, as the collector writes them after each cycle
    stream.commit()
    return time.perf_counter() - t, n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    ref = build_reference(make_frame(50_000, seed=1))
    out = {}
    with tempfile.TemporaryDirectory() as d:
        base = Path(d)
        for fmt in ("jsonl", "parquet"):
            (base / fmt).mkdir()
        per = args.rows // 10
        for i in range(10):
            df = make_frame(per, seed=10 + i)
            secs = np.sort(np.random.default_rng(i).uniform(0, 86400, per)) + i * 86400
            ts = pl.Series(
                "timestamp", [T0 + timedelta(seconds=float(s)) for s in secs]
            ).dt.cast_time_unit("us")
            df = df.with_columns(ts, pl.Series("request_id", [f"req-{i}-{j}" for j in range(per)]))
            df.write_parquet(base / "parquet" / f"{i:02d}.parquet")
            df.with_columns(pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ")).write_ndjson(
                base / "jsonl" / f"{i:02d}.jsonl"
            )
        for fmt in ("jsonl", "parquet"):
            secs, n = run(base / fmt, fmt, ref, base / f"state-{fmt}", base / "lake")
            out[fmt] = {"records": n, "seconds": round(secs, 2), "records_per_s": round(n / secs),
                        "records_per_min": round(60 * n / secs)}  # fmt: skip
        lake = Lake(str(base / "lake"))
        counted = lake.sql(
            "SELECT collector_id, sum(count) + sum(nulls) AS n FROM profiles WHERE feature='num_00' GROUP BY ALL"
        )
        out["lake_counts"] = {k: int(v) for k, v in counted.iter_rows()}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

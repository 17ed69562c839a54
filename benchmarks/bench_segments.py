"""Issue 20 item 6: the cost of segments in ``profile_windows``.

    python -m benchmarks.bench_segments [--rows 50000] [--days 1200] [--repeat 5]

The records and reference of :mod:`benchmarks.bench_many_windows` (25 features + latency,
daily windows), profiled without segments and with one segment column of five values
(a scanner drawn uniformly); best of ``--repeat`` in the same process.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from datetime import timedelta

import numpy as np
import polars as pl

from benchmarks.bench_many_windows import best, records, reference
from mlmon.profiles.frame import profile_windows
from mlmon.profiles.schema import SegmentSpec

SCANNERS = ("GE", "Siemens", "Philips", "Toshiba", "Agfa")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--days", type=int, default=1200)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    ref = reference()
    df = records(args.rows, args.days)
    scanner = np.random.default_rng(0).choice(SCANNERS, df.height)
    df = df.with_columns(pl.Series("scanner", scanner))
    seg = dataclasses.replace(
        ref, schema=ref.schema.with_segments((SegmentSpec("scanner", SCANNERS),))
    )
    step = timedelta(days=1)
    windows = list(profile_windows(df, seg, window=step))
    t0 = best(lambda: list(profile_windows(df, ref, window=step)), args.repeat)
    t1 = best(lambda: list(profile_windows(df, seg, window=step)), args.repeat)
    print(json.dumps({
        "rows": args.rows, "windows": len(windows),
        "segment_profiles": sum(len(w.profile.segments) for w in windows),
        "no_segments_s": round(t0, 3), "one_column_5_values_s": round(t1, 3),
        "ratio": round(t1 / t0, 2),
    }))  # fmt: skip


if __name__ == "__main__":
    main()

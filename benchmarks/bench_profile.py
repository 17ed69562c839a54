"""Issue 2 benchmark: profiling throughput and profile+drift time on 1M rows x 25 features.

    python -m benchmarks.bench_profile [--rows 1000000] [--repeat 5]

Baseline: the fastest plain histogram of the same 20 numeric columns over
fixed edges we could write: one comparison and one popcount
(np.count_nonzero) per edge, bin counts by differences (3-5x faster than
np.searchsorted + bincount or np.histogram for a dozen edges), both cores
through threads, timed in the same process on the same data. Input
reading is not timed (data is generated, written to Parquet and read back
before the clock starts).
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl

from benchmarks.common import make_frame, numeric_columns
from mlmon.edge.ingest import drift_rows
from mlmon.profiles.frame import build_reference, profile_frame


def baseline(df: pl.DataFrame, edges: dict[str, np.ndarray]) -> int:
    def hist(c: str) -> np.ndarray:
        x = df.get_column(c).to_numpy()
        above = np.array([np.count_nonzero(x >= v) for v in edges[c]])
        return -np.diff(np.concatenate([[x.size], above, [0]]))

    with ThreadPoolExecutor(2) as pool:
        return sum(int(h.sum()) for h in pool.map(hist, numeric_columns()))


def baseline_bincount(df: pl.DataFrame, edges: dict[str, np.ndarray]) -> int:
    """The textbook histogram: np.searchsorted + np.bincount per column, two threads."""

    def hist(c: str) -> np.ndarray:
        x = df.get_column(c).to_numpy()
        return np.bincount(np.searchsorted(edges[c], x), minlength=edges[c].size + 1)

    with ThreadPoolExecutor(2) as pool:
        return sum(int(h.sum()) for h in pool.map(hist, numeric_columns()))


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    ref = build_reference(make_frame(100_000, seed=1))
    df = make_frame(args.rows, seed=2, shift=0.3)
    edges = {c: ref.profiles[c].edges for c in numeric_columns()}
    values = args.rows * 25
    t_base = best(lambda: baseline(df, edges), args.repeat)
    t_base2 = best(lambda: baseline_bincount(df, edges), args.repeat)
    t_prof = best(lambda: profile_frame(df, ref), args.repeat)

    def profile_and_drift():
        drift_rows(ref, profile_frame(df, ref))

    t_both = best(profile_and_drift, args.repeat)
    result = {
        "rows": args.rows,
        "features": 25,
        "baseline_s": round(t_base, 4),
        "baseline_values_per_s": round(args.rows * 20 / t_base),
        "profile_s": round(t_prof, 4),
        "profile_values_per_s": round(values / t_prof),
        "speed_ratio_vs_baseline_per_value": round(
            (values / t_prof) / (args.rows * 20 / t_base), 3
        ),
        "baseline_searchsorted_bincount_s": round(t_base2, 4),
        "speed_ratio_vs_searchsorted_baseline": round(
            (values / t_prof) / (args.rows * 20 / t_base2), 3
        ),
        "profile_plus_drift_s": round(t_both, 4),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

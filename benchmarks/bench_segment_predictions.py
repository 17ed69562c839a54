"""Issue 20 item 6 (follow-up): the edge's per-segment prediction histograms.

    python -m benchmarks.bench_segment_predictions [--rows 100000] [--frame 1000] [--repeat 5]

Binary scores arriving in frames of ``--frame`` rows (one second apart, 5-minute windows),
counted by :class:`mlmon.edge.labels.PredictionHistograms` without segments and with two
segment columns (a ward of five values and an age band of 0/18/40/65), as the collector does
for every flat-record frame; best of ``--repeat`` wall times in the same process. For scale, the
same frames' feature profiles (``profile_windows``, 4 numeric features, no segments).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from benchmarks.bench_many_windows import best
from mlmon.edge.labels import PredictionHistograms
from mlmon.profiles.frame import build_reference, profile_windows
from mlmon.profiles.performance import PerformanceSpec
from mlmon.profiles.schema import SegmentSpec

WARDS = ("ICU", "ED", "ONC", "WARD-A", "WARD-B")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--frame", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n = args.rows
    t0 = datetime(2026, 10, 1, tzinfo=UTC)
    frame = pl.DataFrame(
        {
            "timestamp": pl.datetime_range(
                t0, t0 + timedelta(seconds=n - 1), "1s", eager=True, time_zone="UTC"
            ),
            "score": rng.random(n),
            "ward": rng.choice(WARDS, n),
            "age": rng.integers(0, 100, n).astype(float),
            "x1": rng.normal(size=n),
            "x2": rng.normal(size=n),
        }
    )
    spec = PerformanceSpec.make("binary", bins=50).named(score_columns=("score",))
    segs = (
        SegmentSpec("ward", WARDS),
        SegmentSpec("age_band", column="age", bands=(0, 18, 40, 65)),
    )
    frames = list(frame.iter_slices(args.frame))
    window = timedelta(minutes=5)

    def hists(segments: tuple[SegmentSpec, ...]) -> None:
        h = PredictionHistograms(spec, window, "timestamp", segments=segments)
        for f in frames:
            h.add(f)

    ref = build_reference(frame.select("score", "age", "x1", "x2").head(20_000))

    def features() -> None:
        for f in frames:
            list(profile_windows(f, ref, window=window))

    t_none = best(lambda: hists(()), args.repeat)
    t_seg = best(lambda: hists(segs), args.repeat)
    t_feat = best(features, args.repeat)
    print(json.dumps({
        "rows": n, "frame_rows": args.frame,
        "histograms_no_segments_s": round(t_none, 3),
        "histograms_ward_and_age_band_s": round(t_seg, 3),
        "ratio": round(t_seg / t_none, 2),
        "added_us_per_prediction": round((t_seg - t_none) / n * 1e6, 2),
        "feature_profiles_4_features_s": round(t_feat, 3),
    }))  # fmt: skip


if __name__ == "__main__":
    main()

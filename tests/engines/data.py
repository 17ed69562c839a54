"""Records, reference and the single-process oracle shared by the Spark and Ray tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from mlmon.analysis.lake import Lake
from mlmon.edge.ingest import WindowAccumulator
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import Reference, Window, build_reference
from mlmon.profiles.kinds import NumericProfile
from mlmon.profiles.schema import FeatureSpec, Schema

MODEL = "risk"
HOUR_US = 3_600_000_000
T0_US = int(datetime(2026, 10, 1, tzinfo=UTC).timestamp() * 1_000_000)


def records(n: int, seed: int, *, hours: int = 30) -> pl.DataFrame:
    """Numeric (nulls, NaN, +/-inf, ints), categorical (nulls, unknown values), versions, latency.

    Hours hold very different numbers of rows (skew); rows are not in time order.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(5.0, 3.0, n)
    x[rng.random(n) < 0.05] = np.nan
    x[rng.random(n) < 0.02] = np.inf
    x[rng.random(n) < 0.02] = -np.inf
    y = rng.lognormal(0.0, 2.0, n) * rng.choice([-1.0, 1.0], n)
    k = rng.integers(0, 7, n)
    cats = np.array(["a", "b", "c", "d", "new1"])[rng.integers(0, 5, n)]
    hour = np.minimum(rng.geometric(0.15, n) - 1, hours - 1)  # hour 0 holds ~15%, the tail 1-2 rows
    ts = T0_US + hour * HOUR_US + rng.integers(0, HOUR_US, n)
    version = rng.choice(["v1", "v2", ""], n, p=[0.6, 0.3, 0.1])
    return pl.DataFrame(
        {
            "x": pl.Series(x).scatter(np.flatnonzero(rng.random(n) < 0.05), None),
            "y": y,
            "k": pl.Series(k, dtype=pl.Int32).scatter(np.flatnonzero(rng.random(n) < 0.1), None),
            "c": pl.Series(cats).scatter(np.flatnonzero(rng.random(n) < 0.1), None),
            "timestamp": pl.Series(ts).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
            "latency_ms": rng.lognormal(3, 1, n),
            "model_version": pl.Series(version).replace("", None),
        }
    )


def reference() -> Reference:
    schema = Schema(
        features=(
            FeatureSpec("x", "numeric", centred=True),
            FeatureSpec("y", "numeric", centred=False),
            FeatureSpec("k", "numeric"),
            FeatureSpec("c", "categorical", allowed=("a", "b", "c")),
        )
    )
    return build_reference(records(3000, 1, hours=4), schema)


def single_process(df: pl.DataFrame, ref: Reference, window: timedelta) -> list[Window]:
    """The oracle: ``mlmon profile``'s accumulator over the whole frame in one process."""
    acc = WindowAccumulator(ref, window=window)
    acc.add(df)
    return acc.pop()


def assert_same_windows(got: list[Window], want: list[Window]) -> None:
    """Same windows, versions and rows; counts, bins and sketches exact; sums to 1e-12."""
    assert [(w.start, w.end, w.version, w.profile.rows) for w in got] == [
        (w.start, w.end, w.version, w.profile.rows) for w in want
    ]
    for g, w in zip(got, want, strict=True):
        pairs = [(n, g.profile.features[n], p) for n, p in w.profile.features.items()]
        pairs.append(("latency", g.profile.latency, w.profile.latency))
        for name, q, p in pairs:
            assert q == p, (w.start, w.version, name)
            if isinstance(p, NumericProfile):
                assert isinstance(q, NumericProfile)
                assert q.sketch == p.sketch
                assert np.array_equal(q.bins, p.bins)
                assert (q.count, q.nulls, q.nans, q.pos_inf, q.neg_inf) == (
                    p.count, p.nulls, p.nans, p.pos_inf, p.neg_inf,
                )  # fmt: skip
                for a, b in ((q.sum, p.sum), (q.sum_sq, p.sum_sq)):
                    assert abs(a - b) <= 1e-12 * max(abs(b), 1.0)


def lake_drift(path: Path) -> pl.DataFrame:
    """``Lake.drift`` by day and by hour: what ``mlmon drift`` prints."""
    lake = Lake(f"file://{path}")
    days = lake.drift(MODEL, by="day")
    return days.sort(sorted(c for c in ("period", "feature", "method") if c in days.columns))


def write_single(path: Path, df: pl.DataFrame, ref: Reference, window: timedelta) -> None:
    writer = LakeWriter(f"file://{path}", collector_id="one")
    writer.write_reference(MODEL, ref)
    acc = WindowAccumulator(ref, window=window)
    acc.add(df)
    acc.flush(writer, MODEL, source="batch")

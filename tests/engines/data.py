"""Records, reference and the single-process oracle shared by the Spark and Ray tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mlmon.analysis.lake import Lake
from mlmon.edge.ingest import WindowAccumulator
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import Reference, Window, WindowProfile, build_reference
from mlmon.profiles.kinds import NumericProfile
from mlmon.profiles.schema import FeatureSpec, Schema, SegmentSpec, band_segment

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
    # a segment column: two allow-listed sites, a rare unknown one and nulls (both __other__)
    site = rng.choice(["north", "south", "east", ""], n, p=[0.55, 0.35, 0.04, 0.06])
    return pl.DataFrame(
        {
            "x": pl.Series(x).scatter(np.flatnonzero(rng.random(n) < 0.05), None),
            "y": y,
            "k": pl.Series(k, dtype=pl.Int32).scatter(np.flatnonzero(rng.random(n) < 0.1), None),
            "c": pl.Series(cats).scatter(np.flatnonzero(rng.random(n) < 0.1), None),
            "timestamp": pl.Series(ts).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
            "latency_ms": rng.lognormal(3, 1, n),
            "model_version": pl.Series(version).replace("", None),
            "site": pl.Series(site).replace("", None),
        }
    )


def reference(*, segments: bool = False) -> Reference:
    """The tests' reference; with ``segments``, profiled per ``site`` (allow-listed), per
    ``c`` (a feature too, its segment values learned from the reference) and per band of ``k``
    (``k_band``: ``<2``, ``2-3``, ``4+`` and ``missing`` for its nulls)."""
    schema = Schema(
        features=(
            FeatureSpec("x", "numeric", centred=True),
            FeatureSpec("y", "numeric", centred=False),
            FeatureSpec("k", "numeric"),
            FeatureSpec("c", "categorical", allowed=("a", "b", "c")),
        ),
        segments=(
            SegmentSpec("site", ("north", "south")),
            SegmentSpec("c"),
            band_segment("k", (2, 4)),
        )
        if segments
        else (),
    )
    return build_reference(records(3000, 1, hours=4), schema)


def single_process(df: pl.DataFrame, ref: Reference, window: timedelta) -> list[Window]:
    """The oracle: ``mlmon profile``'s accumulator over the whole frame in one process."""
    acc = WindowAccumulator(ref, window=window)
    acc.add(df)
    return acc.pop()


def assert_same_windows(got: list[Window], want: list[Window]) -> None:
    """Same windows, versions and rows; counts, bins and sketches exact; sums to 1e-12.

    Segments too: the same segment keys per window, each compared as a window profile.
    """
    assert [(w.start, w.end, w.version, w.profile.rows) for w in got] == [
        (w.start, w.end, w.version, w.profile.rows) for w in want
    ]
    for g, w in zip(got, want, strict=True):
        _assert_same_profile(g.profile, w.profile, (w.start, w.version))
        assert sorted(g.profile.segments) == sorted(w.profile.segments), (w.start, w.version)
        for key, seg in w.profile.segments.items():
            got_seg = g.profile.segments[key]
            assert got_seg.rows == seg.rows, (w.start, w.version, key)
            _assert_same_profile(got_seg, seg, (w.start, w.version, key))


def _assert_same_profile(g: WindowProfile, w: WindowProfile, where: tuple[Any, ...]) -> None:
    pairs = [(n, g.features[n], p) for n, p in w.features.items()]
    pairs.append(("latency", g.latency, w.latency))
    for name, q, p in pairs:
        assert q == p, (*where, name)
        if isinstance(p, NumericProfile):
            assert isinstance(q, NumericProfile)
            assert q.sketch == p.sketch
            assert np.array_equal(q.bins, p.bins)
            assert (q.count, q.nulls, q.nans, q.pos_inf, q.neg_inf) == (
                p.count, p.nulls, p.nans, p.pos_inf, p.neg_inf,
            )  # fmt: skip
            for a, b in ((q.sum, p.sum), (q.sum_sq, p.sum_sq)):
                assert abs(a - b) <= 1e-12 * max(abs(b), 1.0)


def lake_drift(path: Path, segments: Sequence[str] = ()) -> pl.DataFrame:
    """``Lake.drift`` by day (what ``mlmon drift`` prints), then per value of each segment
    column (``--segment site``)."""
    lake = Lake(f"file://{path}")
    frames = [lake.drift(MODEL, by="day").with_columns(pl.lit("").alias("segment"))]
    for column in segments:  # a segment column: rows per segment value, in one call
        got = lake.drift(MODEL, by="day", segment=column)
        assert got.get_column("segment").n_unique() > 1, column
        frames.append(got)
    days = pl.concat(frames, how="diagonal_relaxed")
    keys = ("segment", "period", "feature", "method")
    return days.sort([c for c in keys if c in days.columns])


def write_single(path: Path, df: pl.DataFrame, ref: Reference, window: timedelta) -> None:
    writer = LakeWriter(f"file://{path}", collector_id="one")
    writer.write_reference(MODEL, ref)
    acc = WindowAccumulator(ref, window=window)
    acc.add(df)
    acc.flush(writer, MODEL, source="batch")

"""Many-window profiling (issue 19 item 8): grouped profiles equal one profile per window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from mlmon.errors import SchemaError
from mlmon.profiles import frame as frame_mod
from mlmon.profiles.frame import build_reference, profile_frame, profile_windows
from mlmon.profiles.kinds import NumericProfile
from mlmon.profiles.schema import FeatureSpec, Schema
from mlmon.profiles.sketch import QuantileSketch, grouped_sketches

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HOUR_US = 3_600_000_000


def _records(n: int, seed: int, *, hours: int) -> pl.DataFrame:
    """Numeric (nulls, NaN, +/-inf, zeros, ints), categorical (nulls, unknown values), versions."""
    rng = np.random.default_rng(seed)
    x = rng.normal(5.0, 3.0, n)
    x[rng.random(n) < 0.05] = np.nan
    x[rng.random(n) < 0.02] = np.inf
    x[rng.random(n) < 0.02] = -np.inf
    x[rng.random(n) < 0.05] = 5.0  # the reference median: zero bucket of a centred sketch
    y = rng.lognormal(0.0, 2.0, n) * rng.choice([-1.0, 1.0], n)
    y[rng.random(n) < 0.05] = 0.0
    k = rng.integers(0, 7, n)
    cats = np.array(["a", "b", "c", "d", "rare", "new1", "new2"])[rng.integers(0, 7, n)]
    # hours with 0 rows (gaps), with 1 row and with many
    hour = rng.integers(0, hours // 2, n)
    hour[-2:] = [hours - 3, hours - 1]  # one row each
    ts = hour * HOUR_US + rng.integers(0, HOUR_US, n)
    version = rng.choice(["v1", "v2", ""], n)
    return pl.DataFrame(
        {
            "x": x,
            "y": y,
            "k": pl.Series(k, dtype=pl.Int32).scatter(np.flatnonzero(rng.random(n) < 0.1), None),
            "c": pl.Series(cats).scatter(np.flatnonzero(rng.random(n) < 0.1), None),
            "timestamp": pl.Series(ts).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
            "latency_ms": rng.lognormal(3, 1, n),
            "model_version": pl.Series(version).replace("", None),
        }
    ).with_columns(
        # nulls as well as NaN in x
        pl.when(pl.int_range(pl.len()) % 17 == 0).then(None).otherwise(pl.col("x")).alias("x")
    )


def _reference() -> frame_mod.Reference:
    schema = Schema(
        features=(
            FeatureSpec("x", "numeric", centred=True),
            FeatureSpec("y", "numeric", centred=False),
            FeatureSpec("k", "numeric"),
            FeatureSpec("c", "categorical", allowed=("a", "b", "c", "d", "rare")),
        )
    )
    return build_reference(_records(3000, 1, hours=4), schema)


def _per_window(df: pl.DataFrame, ref: frame_mod.Reference, step: timedelta) -> dict:
    """The reference result: each (window, version) filtered out and profiled on its own."""
    step_us = int(step.total_seconds() * 1_000_000)
    keyed = df.with_columns(
        (pl.col("timestamp").dt.epoch("us") // step_us * step_us).alias("w"),
    )
    out = {}
    for (w, v), part in keyed.group_by(["w", "model_version"]):
        start = datetime.fromtimestamp(int(w) / 1e6, UTC)  # type: ignore[arg-type]
        out[(start, v)] = profile_frame(part.drop("w"), ref)
    return out


def _assert_equal(got: list[frame_mod.Window], want: dict, step: timedelta) -> None:
    assert len(got) == len(want)
    keys = [(w.start, w.version) for w in got]
    # ordered by window start, then version with missing versions last
    assert keys == sorted(keys, key=lambda k: (k[0], k[1] is None, k[1] or ""))
    for w in got:
        assert w.end - w.start == step
        ref = want[(w.start, w.version)]
        assert w.profile.rows == ref.rows
        assert w.profile.latency == ref.latency
        for name, p in ref.features.items():
            q = w.profile.features[name]
            assert q == p, (w.start, w.version, name)
            if isinstance(p, NumericProfile):
                assert isinstance(q, NumericProfile)
                assert q.sketch == p.sketch
                assert np.array_equal(q.bins, p.bins)
                scale = max(abs(p.sum), 1.0)
                assert abs(q.sum - p.sum) <= 1e-12 * scale * max(p.count, 1)


@pytest.mark.parametrize(
    ("chunk_rows", "hours", "ordered"),
    [
        (1 << 17, 1, False),
        (97, 1, False),
        (1 << 17, 50, False),
        (1000, 50, False),
        (1 << 17, 1, True),
        (97, 1, True),
    ],
)
def test_many_windows_equal_one_profile_per_window(monkeypatch, chunk_rows, hours, ordered) -> None:
    # chunk_rows 97 and 1000 cut windows across chunks: the parts are merged;
    # 50-hour windows hold over 512 values, summed one window at a time;
    # records in time order are profiled in place (no permutation)
    monkeypatch.setattr(frame_mod, "_CHUNK_ROWS", chunk_rows)
    if chunk_rows < 1 << 17:
        monkeypatch.setattr(frame_mod, "_CHUNK_GROUPS", 7)  # chunks end on group bounds too
        monkeypatch.setattr(frame_mod, "_THREADED_ROWS", 0)  # columns in two threads
    ref = _reference()
    df = _records(6000, 2, hours=300)
    if ordered:
        df = df.with_columns(pl.lit("v1").alias("model_version")).sort("timestamp")
    step = timedelta(hours=hours)
    got = list(profile_windows(df, ref, window=step))
    want = _per_window(df, ref, step)
    sizes = sorted(w.profile.rows for w in got)
    if hours == 1:
        assert len(got) > (150 if ordered else 200)
        assert sizes[0] == 1 and sizes[-1] > 20  # windows with one row and with many
    else:
        assert sizes[-1] > frame_mod._ORDERED_SUM_MAX + 100
    assert sum(sizes) == df.height
    _assert_equal(got, want, step)


def test_gap_hours_have_no_window_and_rows_keep_their_window() -> None:
    ref = _reference()
    df = _records(500, 3, hours=40)
    got = list(profile_windows(df, ref, window=timedelta(hours=1)))
    hours = {int((w.start - T0.replace(year=1970)).total_seconds() // 3600) for w in got}
    assert 38 not in hours and 39 in hours and 37 in hours  # hour 38: no rows, no window


def test_one_window_is_profile_frame() -> None:
    ref = _reference()
    df = _records(2000, 4, hours=6).with_columns(pl.lit("v9").alias("model_version"))
    (w,) = list(profile_windows(df, ref, window=timedelta(days=1)))
    assert w.version == "v9"
    one = profile_frame(df, ref)
    assert w.profile.features == one.features and w.profile.latency == one.latency


def test_windows_without_version_column_and_all_null_feature() -> None:
    ref = _reference()
    df = (
        _records(3000, 5, hours=50)
        .drop("model_version")
        .with_columns(pl.lit(None, dtype=pl.Float64).alias("y"), pl.lit(None).alias("c"))
    )
    step = timedelta(hours=2)
    got = list(profile_windows(df, ref, window=step))
    assert all(w.version is None for w in got)
    want = _per_window(
        df.with_columns(pl.lit(None, dtype=pl.String).alias("model_version")), ref, step
    )
    _assert_equal(got, want, step)
    assert all(w.profile.features["y"].nulls == w.profile.rows for w in got)


def test_grouped_sketches_equal_from_values() -> None:
    rng = np.random.default_rng(7)
    x = np.concatenate(
        [
            rng.normal(0, 1, 400),
            [0.0, -0.0, 1e-310, -1e-310, 1e300, -1e300],
            rng.lognormal(0, 5, 400),
        ]
    )
    groups = np.sort(rng.integers(0, 9, x.size))
    groups[groups == 4] = 5  # group 4 is empty
    for centre in (0.0, 0.3):
        got = grouped_sketches(x, groups, 10, 0.01, centre=centre)
        for g in range(10):
            assert got[g] == QuantileSketch.from_values(x[groups == g], 0.01, centre=centre)
        assert got[4].count == 0


def test_wrong_type_is_refused_before_any_window() -> None:
    ref = _reference()
    df = _records(400, 6, hours=40).with_columns(pl.col("y").cast(pl.String))
    windows = profile_windows(df, ref, window=timedelta(hours=1))
    with pytest.raises(SchemaError, match="feature 'y' is numeric in the reference"):
        next(windows)

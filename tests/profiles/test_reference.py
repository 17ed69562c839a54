"""Building references, schemas, windows and their bad inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from mlmon.errors import SchemaError, TimestampError
from mlmon.lake.references import load_reference, save_reference
from mlmon.profiles.frame import Profiler, build_reference, profile_frame, profile_windows
from mlmon.profiles.schema import FeatureSpec, Schema


def test_reference_round_trips_through_one_file(tmp_path):
    rng = np.random.default_rng(0)
    df = pl.DataFrame(
        {"x": rng.normal(size=500), "c": rng.choice(["a", "b"], 500), "latency_ms": rng.random(500)}
    )
    ref = build_reference(df, model="m")
    path = save_reference(ref, tmp_path / "ref.parquet")
    back = load_reference(path)
    assert back.reference_id == ref.reference_id and back.model == "m"
    assert back.profiles == ref.profiles
    assert back.latency == ref.latency
    assert back.schema == ref.schema


def test_reference_id_is_deterministic_and_content_based():
    df = pl.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]})
    assert build_reference(df).reference_id == build_reference(df).reference_id
    assert (
        build_reference(df).reference_id
        != build_reference(df.with_columns(pl.col("x") + 1)).reference_id
    )


def test_vocabulary_allow_list_and_k():
    df = pl.DataFrame({"c": ["a"] * 10 + ["b"] * 4 + ["Jane Doe"]})
    learned = build_reference(df, k=5)
    assert learned.profiles["c"].categories == ("a",)
    schema = Schema((FeatureSpec("c", "categorical", allowed=("a", "b", "z")),))
    allowed = build_reference(df, schema)
    assert allowed.profiles["c"].categories == ("a", "b", "z")
    assert allowed.profiles["c"].counts.tolist() == [10, 4, 0, 1]


def test_unknown_column_types_are_refused_with_the_column_name():
    df = pl.DataFrame({"x": [1.0], "blob": [[1, 2]]})
    with pytest.raises(SchemaError, match="column 'blob' has type List"):
        build_reference(df)


def test_schema_mismatch_and_empty_inputs():
    ref = build_reference(pl.DataFrame({"x": [1.0, 2.0], "c": ["a"] * 2}), k=1)
    with pytest.raises(SchemaError, match="lacks feature column"):
        profile_frame(pl.DataFrame({"x": [1.0]}), ref)
    with pytest.raises(SchemaError, match="'x' is numeric"):
        profile_frame(pl.DataFrame({"x": ["a"], "c": ["a"]}), ref)
    empty = profile_frame(
        pl.DataFrame({"x": [], "c": []}, schema={"x": pl.Float64, "c": pl.String}), ref
    )
    assert empty.rows == 0 and empty.features["x"].count == 0
    assert (
        list(profile_windows(pl.DataFrame(schema={"timestamp": pl.Datetime("us", "UTC")}), ref))
        == []
    )
    with pytest.raises(SchemaError, match="no finite values"):
        build_reference(pl.DataFrame({"x": [None, float("nan")]}, schema={"x": pl.Float64}))


def test_timestamps_must_be_utc_aware():
    ref = build_reference(pl.DataFrame({"x": [1.0, 2.0]}))
    naive = pl.DataFrame({"timestamp": [datetime(2026, 10, 1)], "x": [1.0]})
    with pytest.raises(TimestampError, match="naive"):
        list(profile_windows(naive, ref))
    text = pl.DataFrame({"timestamp": ["2026-10-01T10:00:00"], "x": [1.0]})
    with pytest.raises(TimestampError, match="no UTC offset"):
        list(profile_windows(text, ref))
    # an aware time in another zone is unambiguous: converted to UTC
    other = pl.DataFrame({"timestamp": ["2026-10-01T01:30:00+02:00"], "x": [1.0]})
    (w,) = profile_windows(other, ref)
    assert w.start == datetime(2026, 9, 30, 23, tzinfo=UTC)


def test_windows_split_by_time_and_version_and_streaming_is_equal():
    rng = np.random.default_rng(1)
    n = 3000
    t0 = datetime(2026, 10, 1, tzinfo=UTC)
    df = pl.DataFrame(
        {
            "timestamp": pl.Series(
                [t0 + timedelta(minutes=int(m)) for m in rng.integers(0, 180, n)]
            ).dt.cast_time_unit("us"),
            "x": rng.normal(size=n),
            "model_version": rng.choice(["1", "2"], n),
        }
    )
    ref = build_reference(df.drop("timestamp", "model_version"))
    windows = list(profile_windows(df, ref, window=timedelta(hours=1)))
    assert len(windows) == 6
    assert sum(w.profile.rows for w in windows) == n
    p = Profiler(ref)
    for chunk in df.iter_slices(700):
        p.update(chunk)
    assert p.result().features["x"] == profile_frame(df, ref).features["x"]


@pytest.mark.parametrize("year", [1, 9999])
def test_a_window_beyond_the_datetime_range_is_a_clear_error_not_an_overflow(year: int) -> None:
    ref = build_reference(pl.DataFrame({"x": [1.0, 2.0]}), Schema([FeatureSpec("x", "numeric")]))
    edge = datetime(year, 1, 1, tzinfo=UTC) if year == 1 else datetime(9999, 12, 31, 23, tzinfo=UTC)
    ok = datetime(2026, 10, 1, tzinfo=UTC)
    frame = pl.DataFrame({"x": [1.0, 2.0], "timestamp": [ok, edge]})
    with pytest.raises(TimestampError, match=r"row 1\) is too close to year 1 or 9999"):
        list(profile_windows(frame, ref, window=timedelta(hours=1)))
    (w,) = profile_windows(frame.head(1), ref, window=timedelta(hours=1))
    assert w.start == ok and w.profile.rows == 1

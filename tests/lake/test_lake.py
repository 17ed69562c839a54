"""The lake on a local folder and on a real S3 API (moto server on 127.0.0.1): same tests."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from mlmon.analysis.lake import Lake
from mlmon.edge.ingest import WindowAccumulator
from mlmon.errors import CorruptObjectWarning, LakeError, TimestampError, UnknownNameError
from mlmon.lake.storage import put_object
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import build_reference, profile_frame

T0 = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 12  # 4 six-hour windows a day
WINDOWS = DAYS * 4


def _records(rng, n, start, days, shift=0.0):
    secs = np.sort(rng.uniform(0, days * 86400, n))
    return pl.DataFrame(
        {
            "timestamp": pl.Series(
                [start + timedelta(seconds=float(s)) for s in secs], dtype=pl.Datetime("us", "UTC")
            ),
            "x": rng.normal(shift, 1, n),
            "c": rng.choice(["a", "b", "c"], n),
            "latency_ms": rng.lognormal(3, 0.5, n),
            "model_version": ["1"] * n,
        }
    )


@pytest.fixture
def populated(lake_target):
    rng = np.random.default_rng(5)
    ref_df = _records(rng, 4000, T0, 1).drop("timestamp", "model_version")
    reference = build_reference(ref_df, model="m")
    month = _records(rng, 6_000, T0, DAYS, shift=0.2)
    writer = LakeWriter(
        lake_target.uri, collector_id="c1", storage_options=lake_target.write_options, k_anonymity=1
    )
    writer.write_reference("m", reference)
    acc = WindowAccumulator(reference, window=timedelta(hours=6))
    acc.add(month)
    written = acc.flush(writer, "m")
    lake = Lake(lake_target.uri, lake_target.read_options)
    return lake, reference, month, written, writer


def test_month_from_merged_windows_equals_profiling_the_month(populated):
    lake, reference, month, _, _ = populated
    whole = profile_frame(month, reference)
    got = lake.drift("m", T0, T0 + timedelta(days=DAYS), by="all")
    assert set(got.get_column("feature")) == {"x", "c"}
    for row in got.iter_rows(named=True):
        ref_p = reference.profiles[row["feature"]]
        cur_p = whole.features[row["feature"]]
        from mlmon.analysis.drift import METHODS

        assert row["value"] == pytest.approx(
            METHODS[row["method"]](ref_p, cur_p), rel=1e-12, abs=1e-12
        )
        assert row["count"] == cur_p.count
    pct = lake.percentiles(
        "latency_ms",
        (0.5, 0.95, 0.99),
        model="m",
        start=T0,
        end=T0 + timedelta(days=DAYS),
        by="all",
    )
    expected = whole.latency.quantiles([0.5, 0.95, 0.99])
    assert pct.get_column("value").to_list() == pytest.approx(expected.tolist(), rel=1e-12)
    exact = np.quantile(month["latency_ms"].to_numpy(), [0.5, 0.95, 0.99], method="lower")
    assert np.all(np.abs(pct.get_column("value").to_numpy() - exact) <= 0.01 * exact)


def test_periods_and_pruning(populated):
    lake, *_ = populated
    daily = lake.drift("m", "2026-10-03", "2026-10-05", by="day", methods=["psi"])
    days = sorted({p.date().isoformat() for p in daily.get_column("period")})
    assert days == ["2026-10-03", "2026-10-04"]
    assert (
        len(lake.files("profiles", model="m", start="2026-10-03", end="2026-10-05")) == 8
    )  # 4 windows/day
    weekly = lake.drift("m", by="week", methods=["ks"])
    assert weekly.get_column("period").dt.weekday().unique().to_list() == [1]  # Mondays
    pct_feature = lake.percentiles("x", (0.5,), model="m", by="all")
    assert pct_feature.height == 1 and abs(pct_feature["value"][0] - 0.2) < 0.1


def test_sql_views_with_hive_partitions(populated):
    lake, _, month, _, _ = populated
    per_day = lake.sql(
        "SELECT date, sum(count) AS n FROM profiles WHERE model = 'm' AND feature = 'x' GROUP BY date ORDER BY date"
    )
    assert per_day.height == DAYS
    assert int(per_day["n"].sum()) == month.height
    assert lake.sql("SELECT count(*) AS n FROM golden")["n"][0] == 0  # empty table still has a view
    drift_rows = lake.sql("SELECT count(*) AS n FROM drift WHERE model = 'm'")["n"][0]
    assert drift_rows == WINDOWS * 10  # windows x (6 numeric + 4 categorical method rows)


def test_retried_write_is_idempotent(populated):
    lake, reference, month, written, writer = populated
    first = written[0]
    acc = WindowAccumulator(reference, window=timedelta(hours=6))
    acc.add(month)
    again = acc.flush(writer, "m")
    windows = [r for r in written if "/rollups/" not in r.path]
    assert [r.path for r in again] == [r.path for r in windows]  # day rollups: already up to date
    assert [r.sha256 for r in again] == [r.sha256 for r in windows]
    assert len(lake.files("profiles", model="m")) == WINDOWS
    rollups = sorted(r.path.split("/v1/")[-1] for r in written if "/rollups/" in r.path)
    assert rollups == sorted(
        f"rollups/{t}/model=m/date={(T0 + timedelta(days=d)).date()}/day-c1.parquet"
        for t in ("profiles", "latency")
        for d in range(DAYS)
    )
    assert first.bytes > 0


def test_corrupt_object_is_named_and_the_rest_is_read(populated):
    lake, _, _, written, writer = populated
    victim = next(r.path for r in written if r.table == "profiles")
    put_object(writer.storage, victim, b"PAR1 this is not parquet")
    with pytest.warns(CorruptObjectWarning, match=victim.rsplit("/", 1)[-1]):
        got = lake.read("profiles", model="m")
    assert got.height == (WINDOWS - 1) * 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fresh = Lake(lake.uri, lake.storage.options or None)
    with pytest.warns(CorruptObjectWarning):
        n = fresh.sql("SELECT count(*) AS n FROM profiles")["n"][0]
    assert n == (WINDOWS - 1) * 2
    with pytest.warns(CorruptObjectWarning):  # drift reads around it, keeping the filters
        drift = Lake(lake.uri, lake.storage.options or None).drift(
            "m", T0, T0 + timedelta(hours=12), by="hour", features=["x"]
        )
    assert set(drift["feature"]) == {"x"}


def test_naive_times_and_unknown_metrics_are_clear_errors(populated):
    lake, *_ = populated
    with pytest.raises(TimestampError, match="no UTC offset"):
        lake.drift("m", "2026-10-01T00:00:00", "2026-10-02T00:00:00Z")
    with pytest.raises(LakeError, match="no metric or numeric feature 'nope'"):
        lake.percentiles("nope", model="m")
    with pytest.raises(UnknownNameError, match=r"'unknown-model' is not in the lake .*one of: m;"):
        lake.drift("unknown-model", by="day")  # an error naming the models, not an empty frame


def test_unreachable_lake_is_a_clear_error():
    lake = Lake(
        "s3://mlmon-lake/x",
        {
            "key": "a",
            "secret": "b",
            "endpoint_url": "http://127.0.0.1:9",
            "config_kwargs": {"retries": {"max_attempts": 1}},
        },
    )
    with pytest.raises(LakeError, match=r"127\.0\.0\.1:9|cannot list"):
        lake.drift("m", by="day")


def test_compaction_keeps_results_and_late_windows(populated):
    lake, reference, month, _, writer = populated
    before_day = lake.drift("m", "2026-10-02", "2026-10-09", by="day")
    before_hour = lake.drift("m", "2026-10-02", "2026-10-03", by="hour", methods=["psi"])
    before_pct = lake.percentiles("latency_ms", model="m", by="week")
    done = lake.compact("profiles", model="m")
    lake.compact("latency", model="m")
    assert len(done) == DAYS
    fresh = Lake(lake.uri, lake.storage.options or None)
    assert len(fresh.files("profiles", model="m", start="2026-10-02", end="2026-10-09")) == 7
    after_day = fresh.drift("m", "2026-10-02", "2026-10-09", by="day")
    assert after_day.select("period", "feature", "method", "count").equals(
        before_day.select("period", "feature", "method", "count")
    )
    assert np.allclose(
        after_day["value"].to_numpy(), before_day["value"].to_numpy(), rtol=1e-12, equal_nan=True
    )
    assert fresh.drift("m", "2026-10-02", "2026-10-03", by="hour", methods=["psi"]).equals(
        before_hour
    )
    assert np.allclose(
        fresh.percentiles("latency_ms", model="m", by="week")["value"], before_pct["value"]
    )
    assert (
        fresh.sql("SELECT count(*) AS n FROM profiles")["n"][0] == WINDOWS * 2
    )  # no window counted twice

    # a late window for a compacted day is still read, and a second compaction absorbs it
    late = month.filter(pl.col("timestamp").dt.date() == datetime(2026, 10, 5).date()).with_columns(
        pl.col("timestamp") + timedelta(minutes=1)
    )
    writer2 = LakeWriter(
        lake.uri, collector_id="late", storage_options=writer.storage.options or None, k_anonymity=1
    )
    acc = WindowAccumulator(reference, window=timedelta(hours=6))
    acc.add(late)
    acc.flush(writer2, "m")
    day = ("2026-10-05", "2026-10-06")
    counts = Lake(lake.uri, lake.storage.options or None).drift(
        "m", *day, by="day", methods=["psi"]
    )
    assert counts.filter(pl.col("feature") == "x")["count"][0] == 2 * late.height
    Lake(lake.uri, lake.storage.options or None).compact("profiles", model="m")
    again = Lake(lake.uri, lake.storage.options or None)
    assert len(again.files("profiles", model="m", start=day[0], end=day[1])) == 1
    assert again.drift("m", *day, by="day", methods=["psi"]).equals(counts)

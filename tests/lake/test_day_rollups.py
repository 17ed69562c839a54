"""Day rollups kept by the writer itself (``v1/rollups/{table}/.../day-{collector}.parquet``), local and on S3.

On S3 the windows and rollups are written with the edge's PutObject-only role:
the writer never lists or reads the lake to keep its rollups.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from mlmon.analysis.drift import METHODS
from mlmon.analysis.lake import Lake
from mlmon.edge.ingest import WindowAccumulator
from mlmon.errors import CorruptObjectWarning
from mlmon.lake.storage import put_object
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import build_reference, profile_frame

T0 = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 4
WINDOW = timedelta(hours=2)


def _records(rng: np.random.Generator, n: int, start: datetime, days: float) -> pl.DataFrame:
    secs = np.sort(rng.uniform(0, days * 86400, n))
    return pl.DataFrame(
        {
            "timestamp": pl.Series(
                [start + timedelta(seconds=float(s)) for s in secs], dtype=pl.Datetime("us", "UTC")
            ),
            "x": rng.normal(0.3, 1, n),
            "c": rng.choice(["a", "b", "c", "d"], n, p=[0.5, 0.3, 0.19, 0.01]),
            "latency_ms": rng.lognormal(3, 0.5, n),
            "model_version": ["1"] * n,
        }
    )


@pytest.fixture
def setup(lake_target):
    rng = np.random.default_rng(11)
    reference = build_reference(
        _records(rng, 3000, T0, 1).drop("timestamp", "model_version"), model="m"
    )
    records = _records(rng, 5000, T0, DAYS)
    return lake_target, reference, records


def _write(target, reference, records, *, k=1, state=None, collector="c1"):
    writer = LakeWriter(
        target.uri,
        collector_id=collector,
        storage_options=target.write_options,
        k_anonymity=k,
        day_rollups=state if state is not None else True,
    )
    writer.write_reference("m", reference)
    acc = WindowAccumulator(reference, window=WINDOW)
    acc.add(records)
    return acc.flush(writer, "m")


def _truth(lake: Lake, reference, records) -> None:
    """Drift by day from the lake equals each day's raw records profiled in one go."""
    got = lake.drift("m", T0, T0 + timedelta(days=DAYS), by="day")
    assert got.height > 0
    for row in got.iter_rows(named=True):
        day = records.filter(pl.col("timestamp").dt.truncate("1d") == row["period"])
        cur = profile_frame(day, reference).features[row["feature"]]
        want = METHODS[row["method"]](reference.profiles[row["feature"]], cur)
        assert row["count"] == cur.count
        assert row["value"] == pytest.approx(want, rel=1e-12, abs=1e-12), row


def _day_files(lake: Lake, day: int) -> list[str]:
    start = T0 + timedelta(days=day)
    files = lake.files(
        "profiles", model="m", start=start, end=start + timedelta(days=1), rollup=True
    )
    return [f.rsplit("/", 1)[-1] for f in files]


def test_whole_days_are_read_from_one_rollup_and_equal_the_raw_records(setup):
    target, reference, records = setup
    written = _write(target, reference, records)
    rollups = [r for r in written if "/rollups/" in r.path]
    assert len(rollups) == 2 * DAYS  # profiles and latency, one per day
    paths = [r.path for r in written]
    for r in rollups:  # each PUT after every window it covers, outside the table's prefix
        folder = r.path.rsplit("/", 1)[0].replace("/v1/rollups/", "/v1/")
        assert r.path.endswith("/day-c1.parquet")
        assert paths.index(r.path) > max(
            i for i, p in enumerate(paths) if p.startswith(folder + "/2")
        )
    lake = Lake(target.uri, target.read_options)
    for d in range(DAYS):
        assert _day_files(lake, d) == ["day-c1.parquet"]
    _truth(lake, reference, records)
    pct = lake.percentiles("latency_ms", (0.5, 0.99), model="m", by="day")
    for period, part in pct.group_by("period"):
        day = records.filter(pl.col("timestamp").dt.truncate("1d") == period[0])
        lat = profile_frame(day, reference).latency.quantiles([0.5, 0.99])
        assert sorted(part["value"].to_list()) == pytest.approx(sorted(lat.tolist()), rel=1e-12)
    # hours and partial days still come from the windows (the day's 12 two-hour objects)
    hours = lake.files("profiles", model="m", start=T0, end=T0 + timedelta(hours=12), rollup=True)
    assert len(hours) == 12 and not any("/rollups/" in f for f in hours)


def test_with_k_anonymity_the_rollup_equals_merging_the_written_windows(setup):
    target, reference, records = setup
    _write(target, reference, records, k=5)
    lake = Lake(target.uri, target.read_options)
    last = T0 + timedelta(days=DAYS - 1)
    from_rollup = lake.drift("m", T0, T0 + timedelta(days=DAYS), by="day")
    from_windows = lake.drift("m", T0, T0 + timedelta(days=DAYS, microseconds=-1), by="day")
    a = from_rollup.filter(pl.col("period") == last)
    b = from_windows.filter(pl.col("period") == last)
    assert a.height == b.height > 0
    assert a.select("feature", "method", "count").equals(b.select("feature", "method", "count"))
    assert np.allclose(a["value"].to_numpy(), b["value"].to_numpy(), rtol=1e-12, atol=1e-12)


def test_late_windows_and_a_restart_without_state_are_never_counted_twice_or_missed(setup):
    target, reference, records = setup
    early = records.filter(pl.col("timestamp") < T0 + timedelta(days=DAYS - 1, hours=12))
    late = records.filter(pl.col("timestamp") >= T0 + timedelta(days=DAYS - 1, hours=12))
    _write(target, reference, early)
    # a new process (no rollup state): its rollup of the last day covers only what it wrote,
    # so the earlier windows of that day are read one by one
    _write(target, reference, late)
    lake = Lake(target.uri, target.read_options)
    files = _day_files(lake, DAYS - 1)
    assert files[0] == "day-c1.parquet" and len(files) == 1 + 6  # 6 two-hour windows before noon
    _truth(lake, reference, records)
    # the same windows again (a retry) change nothing
    _write(target, reference, late)
    _truth(Lake(target.uri, target.read_options), reference, records)


def test_rollup_state_survives_a_restart(setup, tmp_path):
    target, reference, records = setup
    early = records.filter(pl.col("timestamp") < T0 + timedelta(days=DAYS - 1, hours=12))
    late = records.filter(pl.col("timestamp") >= T0 + timedelta(days=DAYS - 1, hours=12))
    _write(target, reference, early, state=tmp_path / "rollups")
    _write(target, reference, late, state=tmp_path / "rollups")
    lake = Lake(target.uri, target.read_options)
    assert _day_files(lake, DAYS - 1) == ["day-c1.parquet"]
    _truth(lake, reference, records)


def test_two_collectors_each_roll_up_their_own_windows(setup):
    target, reference, records = setup
    half = records.height // 2
    _write(target, reference, records[:half], collector="a")
    _write(target, reference, records[half:], collector="b")
    lake = Lake(target.uri, target.read_options)
    assert set(_day_files(lake, 1)) <= {"day-a.parquet", "day-b.parquet"}
    _truth(lake, reference, records)


def test_an_unreadable_rollup_is_named_and_the_windows_are_read(setup):
    target, reference, records = setup
    written = _write(target, reference, records)
    victim = next(r.path for r in written if "/profiles/" in r.path and "/rollups/" in r.path)
    storage = LakeWriter(target.uri, collector_id="x", storage_options=target.write_options).storage
    put_object(storage, victim, b"PAR1 not parquet")
    lake = Lake(target.uri, target.read_options)
    with pytest.warns(CorruptObjectWarning, match="day-c1.parquet"):
        _truth(lake, reference, records)


def test_a_writer_can_do_without_rollups(setup):
    target, reference, records = setup
    written = _write(target, reference, records, state=False)
    assert not any("/rollups/" in r.path for r in written)
    _truth(Lake(target.uri, target.read_options), reference, records)


def test_pending_windows_are_folded_in_as_they_come(setup, monkeypatch):
    """A writer that rarely PUTs its rollups keeps merging pending windows (bounded memory)."""
    import mlmon.lake.rollup as rollup

    monkeypatch.setattr(rollup, "_FOLD_AFTER", 2)
    target, reference, records = setup
    written = _write(target, reference, records)
    assert sum("/rollups/" in r.path for r in written) == 2 * DAYS
    _truth(Lake(target.uri, target.read_options), reference, records)

"""Batched window writes (issue 19 item 8): ``LakeWriter.write_windows`` and the flush of
``mlmon profile`` write exactly the objects and rows that one ``write_window`` per window wrote.

The rows are read back with plain duckdb in a process that never imports mlmon, over the
documented glob of each table; the ``Lake`` reader's drift and percentiles are compared too.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from mlmon.analysis.lake import Lake
from mlmon.edge.ingest import WindowAccumulator, drift_rows
from mlmon.lake import writer as writer_mod
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import Reference, Window, build_reference

T0 = datetime(2026, 3, 1, tzinfo=UTC)
TABLES = ("profiles", "latency", "drift")

_CHILD = r"""
import json, sys
import duckdb

root, tables = sys.argv[1], sys.argv[2:]
con = duckdb.connect(config={"autoinstall_known_extensions": "false"})
out = {}
for t in tables:
    rel = con.sql(
        f"SELECT * FROM read_parquet('{root}/v1/{t}/**/*.parquet', hive_partitioning = true, "
        "filename = true)"
    )
    out[t] = {"columns": rel.columns, "rows": [list(r) for r in rel.fetchall()]}
print(json.dumps({"out": out, "mlmon": sorted(m for m in sys.modules if m.startswith("mlmon"))},
                 default=repr))
"""


#: Each table's columns, in the order of the tuples :func:`_plain_rows` gives.
_COLUMNS: dict[str, list[str]] = {}


def _plain_rows(root: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of each table, read by plain duckdb (no mlmon), with its object's path."""
    done = subprocess.run(
        [sys.executable, "-I", "-c", _CHILD, str(root), *TABLES],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["mlmon"] == []
    out = {}
    for t, res in doc["out"].items():
        cols = res["columns"]
        _COLUMNS[t] = sorted(cols)
        rows = []
        for r in res["rows"]:
            row = dict(zip(cols, r, strict=True))
            row["filename"] = row["filename"].split("/v1/", 1)[1]  # the key below the lake root
            rows.append(tuple(_norm(row[c]) for c in sorted(cols)))
        out[t] = sorted(rows, key=repr)
    return out


def _ks_p_apart(rows: dict[str, list[tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
    """The drift rows with the KS p-value taken out and put last (None on other methods)."""
    cols = _COLUMNS["drift"]
    m, p = cols.index("method"), cols.index("p_value")
    out = []
    for r in rows["drift"]:
        rest = (*r[:p], *r[p + 1 :])
        out.append((*rest, r[p]) if r[m] == "ks" else (*r, None))
    return sorted(out, key=lambda r: repr(r[:-1]))


def _norm(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return "nan"  # NaN equals NaN here: the same value was written
    if isinstance(v, list):
        return tuple(_norm(x) for x in v)
    return v


def _records(rng: np.random.Generator, n: int, days: float) -> pl.DataFrame:
    secs = np.sort(rng.uniform(0, days * 86400, n))
    return pl.DataFrame(
        {
            "timestamp": pl.Series(
                [T0 + timedelta(seconds=float(s)) for s in secs], dtype=pl.Datetime("us", "UTC")
            ),
            "age": rng.normal(52, 12, n),
            "dose": pl.Series(rng.gamma(2.0, 3.0, n)).scatter(
                np.flatnonzero(rng.random(n) < 0.1), None
            ),
            "ward": rng.choice(
                ["icu", "er", "gen", "ped", "rare"], n, p=[0.2, 0.3, 0.4, 0.09, 0.01]
            ),
            "latency_ms": rng.lognormal(3, 0.6, n),
            "model_version": rng.choice(["1", "2"], n, p=[0.7, 0.3]),
        }
    )


@pytest.fixture(scope="module")
def data() -> tuple[Reference, pl.DataFrame]:
    rng = np.random.default_rng(19)
    ref = build_reference(_records(rng, 3000, 1).drop("timestamp", "model_version"), model="m")
    return ref, _records(rng, 4000, 9)


def _windows(ref: Reference, records: pl.DataFrame, window: timedelta) -> list[Window]:
    acc = WindowAccumulator(ref, window=window)
    acc.add(records)
    return acc.pop()


@pytest.mark.parametrize("window", [timedelta(hours=5), timedelta(days=1)])
def test_batched_writes_give_the_same_objects_and_rows_as_one_window_at_a_time(
    data, tmp_path, window
):
    ref, records = data
    windows = _windows(ref, records, window)
    assert len({w.version for w in windows}) == 2 and len(windows) > 9
    drift = [drift_rows(ref, w.profile) for w in windows]
    drift[1] = []  # a window without drift rows, and one whose drift was not computed
    drift[2] = None  # type: ignore[call-overload]

    one = LakeWriter(str(tmp_path / "one"), collector_id="c1")
    singles = []
    for w, d in zip(windows, drift, strict=True):
        singles += one.write_window("m", w, ref, source="batch", drift_rows=d)
    singles += one.write_rollups()
    many = LakeWriter(str(tmp_path / "many"), collector_id="c1")
    batched = many.write_windows("m", windows, ref, source="batch", drift_rows=drift)
    batched += many.write_rollups()

    def keys(recs):
        return [(r.table, r.path.split("/v1/", 1)[1], r.rows) for r in recs]

    assert keys(batched) == keys(singles)  # same objects, same order (the audit trail's)
    a, b = _plain_rows(tmp_path / "one"), _plain_rows(tmp_path / "many")
    for t in TABLES:
        assert a[t] and a[t] == b[t], t
    assert len(a["drift"]) == sum(len(d or []) for d in drift)
    assert sum(1 for r in batched if r.table == "profiles" and "/rollups/" not in r.path) == len(
        windows
    )


def test_profile_command_writes_what_per_window_writes_gave(data, tmp_path):
    """``mlmon profile``'s flush (batched) against a per-window writer on the same records."""
    ref, records = data
    acc = WindowAccumulator(ref, window=timedelta(hours=3))
    acc.add(records)
    flush = LakeWriter(str(tmp_path / "flush"), collector_id="b")
    flush.write_reference("m", ref)
    acc.flush(flush, "m", source="batch")
    one = LakeWriter(str(tmp_path / "one"), collector_id="b")
    one.write_reference("m", ref)
    for w in _windows(ref, records, timedelta(hours=3)):
        one.write_window("m", w, ref, source="batch", drift_rows=drift_rows(ref, w.profile))
    one.write_rollups()
    got, want = _plain_rows(tmp_path / "flush"), _plain_rows(tmp_path / "one")
    assert got.keys() == want.keys() and got["profiles"] == want["profiles"]
    assert got["latency"] == want["latency"]
    # every drift row equal, but the KS p-value: the flush computes all of them at once
    # (mlmon.analysis.kolmogorov, scipy's algorithm in another summation order), within 1e-12
    flush, per_window = _ks_p_apart(got), _ks_p_apart(want)
    assert [r[:-1] for r in flush] == [r[:-1] for r in per_window]
    ks_p = [(a[-1], b[-1]) for a, b in zip(flush, per_window, strict=True) if b[-1] is not None]
    assert len(ks_p) > 100 and all(isinstance(b, float) for _, b in ks_p)
    assert all(a == pytest.approx(b, rel=1e-12, abs=1e-14) for a, b in ks_p)
    a, b = Lake(str(tmp_path / "flush")), Lake(str(tmp_path / "one"))
    for by in ("day", "week"):
        assert a.drift("m", by=by).equals(b.drift("m", by=by))
    assert a.percentiles("latency_ms", (0.5, 0.9), model="m", by="day").equals(
        b.percentiles("latency_ms", (0.5, 0.9), model="m", by="day")
    )


def test_daily_windows_get_no_day_rollup_and_read_the_same(data, tmp_path, monkeypatch):
    """A day rollup of one whole-day window would copy it: it is not written, and the
    ``Lake`` reader gives what it gave with the copy (issue 19: 1,200 daily windows)."""
    ref, records = data
    windows = _windows(ref, records.filter(pl.col("model_version") == "1"), timedelta(days=1))
    drift = [drift_rows(ref, w.profile) for w in windows]
    now = LakeWriter(str(tmp_path / "now"), collector_id="c1")
    now.write_reference("m", ref)
    out = now.write_windows("m", windows, ref, drift_rows=drift) + now.write_rollups()
    assert not any("/rollups/" in r.path for r in out)
    monkeypatch.setattr(writer_mod, "_is_whole_day", lambda start, end: False)
    before = LakeWriter(str(tmp_path / "before"), collector_id="c1")
    before.write_reference("m", ref)
    out = before.write_windows("m", windows, ref, drift_rows=drift) + before.write_rollups()
    assert sum("/rollups/" in r.path for r in out) == 2 * len(windows)  # profiles, latency
    a, b = Lake(str(tmp_path / "now")), Lake(str(tmp_path / "before"))
    for by in ("day", "week", "month"):
        assert a.drift("m", by=by).equals(b.drift("m", by=by)), by
        assert a.percentiles("age", (0.1, 0.5), model="m", by=by).equals(
            b.percentiles("age", (0.1, 0.5), model="m", by=by)
        )
    # a second object on such a day (another version) brings the day rollup back
    monkeypatch.undo()
    other = _windows(ref, records.filter(pl.col("model_version") == "2"), timedelta(days=1))
    later = now.write_windows("m", other[:1], ref) + now.write_rollups()
    rolled = [r.path for r in later if "/rollups/" in r.path]
    assert len(rolled) == 2 and all(f"date={other[0].start.date()}" in p for p in rolled)

"""Drift of many windows at once (issue 19 item 8) gives the rows of one window at a time."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from scipy import stats

from mlmon.analysis import drift as d
from mlmon.analysis.kolmogorov import kstwo_sf_many
from mlmon.edge.ingest import WindowAccumulator, drift_rows, drift_rows_many
from mlmon.profiles import arrow
from mlmon.profiles.frame import build_reference


def test_kstwo_sf_many_is_scipys_exact_distribution():
    sizes = [1, 2, 5, 17, 42, 64, 139, 140, 141, 1000, 100_000]
    grid = np.concatenate([np.linspace(0, 1, 21), np.sqrt(np.linspace(0.01, 4, 25) / 42)])
    n = np.repeat(sizes, grid.size)
    x = np.tile(grid, len(sizes))
    got = kstwo_sf_many(x, n)
    want = np.array([float(stats.kstwo.sf(a, int(b))) for a, b in zip(x, n, strict=True)])
    # every regime scipy chooses is taken: Durbin's matrix, Pomeranz, and the rest
    nx2 = n * x * x
    small = (n <= 140) & (n * x > 1) & (n * x < n - 1) & (x < 0.5)
    assert (small & (nx2 <= 0.754693)).sum() > 20 and (
        small & (nx2 > 0.754693) & (nx2 <= 4)
    ).sum() > 20
    # absolute: scipy's p-value is 1 - CDF, so both carry the CDF's rounding (~1e-16)
    assert np.abs(got - want).max() <= 1e-14
    with pytest.raises(ValueError, match="differ in length"):
        kstwo_sf_many([0.1, 0.2], [5])


@pytest.fixture(scope="module")
def windows():
    rng = np.random.default_rng(41)
    n = 6000
    frame = pl.DataFrame(
        {
            "x": rng.normal(0, 1, n),
            "discrete": rng.integers(0, 6, n).astype(float),
            "c": rng.choice(list("abcde"), n, p=[0.4, 0.3, 0.2, 0.09, 0.01]),
        }
    )
    ref = build_reference(frame, model="m")
    secs = np.sort(rng.uniform(0, 200 * 86400, 9000))
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    cur = pl.DataFrame(
        {
            "timestamp": pl.Series(
                [t0 + timedelta(seconds=float(s)) for s in secs], dtype=pl.Datetime("us", "UTC")
            ),
            "x": rng.normal(0.2, 1.1, 9000),
            "discrete": pl.Series(rng.integers(0, 7, 9000).astype(float)).scatter(
                np.arange(0, 9000, 50), None
            ),
            "c": rng.choice(list("abcdez"), 9000),
        }
    )
    acc = WindowAccumulator(ref, window=timedelta(days=1))
    acc.add(cur)
    return ref, [w.profile for w in acc.pop()]


def test_drift_of_many_windows_equals_one_window_at_a_time(windows):
    ref, profiles = windows
    assert len(profiles) >= 190
    assert ref.profiles["discrete"].support is not None  # exact per-value counts
    one = [drift_rows(ref, p) for p in profiles]
    many = drift_rows_many(ref, profiles)
    ks_p = 0
    for a, b in zip(one, many, strict=True):
        assert [(r["feature"], r["method"]) for r in a] == [(r["feature"], r["method"]) for r in b]
        for ra, rb in zip(a, b, strict=True):
            assert ra.keys() == rb.keys()
            for k, va in ra.items():
                vb = rb[k]
                if ra["method"] == "ks" and k == "p_value" and va is not None:
                    ks_p += 1  # all at once: scipy's algorithm summed in another order
                    assert vb == pytest.approx(va, rel=1e-12, abs=1e-14)
                elif isinstance(va, float) and math.isnan(va):
                    assert math.isnan(vb), (k, ra, rb)
                else:
                    assert va == vb and type(va) is type(vb), (k, ra, rb)
    assert ks_p >= 2 * len(profiles)  # x and discrete


def test_drift_of_many_windows_with_empty_windows_and_a_registered_method(windows):
    ref, profiles = windows
    prof = ref.profiles["x"]
    currents = [profiles[0].features["x"], prof.empty_like(), profiles[1].features["x"]]

    def mean_gap(r, c):
        return abs(r.mean - c.mean)

    d.register_method(
        "mean_gap", d.DriftMethod(mean_gap, "sketch", ("numeric",), 0.5, "above", (0, 1), "")
    )
    try:
        rows = d.drift_between_many(prof, currents, thresholds={"ks": 0.2})
        assert len(rows) == 3
        for cur, got in zip(currents, rows, strict=True):
            want = d.drift_between(prof, cur, thresholds={"ks": 0.2})
            assert [r["method"] for r in got] == [r["method"] for r in want]
            assert "mean_gap" in [r["method"] for r in got]
            for a, b in zip(got, want, strict=True):
                assert a["threshold"] == b["threshold"] and a["drifted"] == b["drifted"]
                assert a["value"] == b["value"] or (math.isnan(a["value"]) and cur.count == 0)
        assert all(math.isnan(r["value"]) and r["p_value"] is None for r in rows[1])
    finally:
        del d.METHODS["mean_gap"]


def test_profile_rows_of_many_windows_are_the_rows_one_by_one(windows):
    """``profiles_to_arrow`` builds many rows column by column: the same table."""
    ref, profiles = windows
    items = [(n, p) for prof in profiles for n, p in prof.features.items()]
    items += [(n, p.empty_like()) for n, p in ref.profiles.items()]
    # NannyML-compatible binning: the fine histogram's columns too
    rng = np.random.default_rng(7)
    nml = build_reference(pl.DataFrame({"x": rng.normal(0, 1, 10_000)}), binning="nannyml")
    fine = nml.profiles["x"]
    assert fine.fine is not None
    items += [("x", fine), ("x", fine.empty_like())]
    assert len(items) >= arrow._COLUMNAR_ROWS
    rows = pa.Table.from_pylist([arrow._row(n, p) for n, p in items], schema=arrow._SCHEMA)
    assert arrow.profiles_to_arrow(items).equals(rows)


def test_drift_table_of_many_windows_is_the_table_of_the_rows(windows):
    """``drift_table_many`` (arrays, no dict per row) is the table of ``drift_rows_many``'s
    rows, an empty window included; ``write_windows`` takes either."""
    from dataclasses import replace

    from mlmon.edge.ingest import drift_table_many
    from mlmon.lake.schema import table

    ref, profiles = windows
    empty = replace(
        profiles[0], features={n: p.empty_like() for n, p in profiles[0].features.items()}
    )
    profiles = [*profiles[:40], empty]
    got = drift_table_many(ref, profiles)
    rows = drift_rows_many(ref, profiles)
    assert list(got.counts) == [len(r) for r in rows]
    flat = [r for d in rows for r in d]
    want = pa.Table.from_pydict({k: [r[k] for r in flat] for k in flat[0]})
    types = {f.name: f.type for f in table("drift").arrow_schema}

    def values(t: pa.Table) -> list[list]:  # as the lake types them; NaN as a marker
        return [
            ["nan" if isinstance(v, float) and math.isnan(v) else v for v in c.to_pylist()]
            for c in (t.column(n).cast(types[n]) for n in t.column_names)
        ]

    assert got.table.column_names == want.column_names
    assert values(got.table) == values(want)
    assert any(r["statistic"] is None for r in flat) and any(math.isnan(r["value"]) for r in flat)

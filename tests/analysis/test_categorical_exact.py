"""Categorical drift over merged periods equals drift on the period's raw records (issue 19).

A model with about 40 predictions a day, profiled by the real writer in 5-minute windows (the
edge's default): nearly every window holds each category once or twice. The lake keeps exact
counts of the allow-listed categories, so a month merged from those windows has exactly the
counts of its raw records, and its chi-square and Jensen-Shannon values equal scipy's on the
raw counts. Values outside the allow-list are ``__other__`` in the windows and in the reference
alike, and never reach the lake as strings.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from scipy import stats
from scipy.spatial import distance

from mlmon.analysis.drift import METHODS
from mlmon.analysis.lake import Lake
from mlmon.edge.ingest import WindowAccumulator
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import build_reference
from mlmon.profiles.kinds import OTHER
from mlmon.profiles.schema import FeatureSpec, Schema

MODEL = "loans"
PER_DAY = 40
# salary_range: an operator-chosen allow-list; two categories are rare (about one a week)
SALARY = ("<20k", "20-40k", "40-60k", "60-100k", ">100k", "none")
SALARY_P = (0.30, 0.35, 0.20, 0.105, 0.005, 0.005)
# ward: the vocabulary is learned from the reference (categories seen at least k=5 times)
WARD = ("icu", "er", "gen", "ped", "burns")
WARD_P = (0.2, 0.3, 0.4, 0.0985, 0.0015)
# typed by hand, outside the allow-list: must become __other__ and never reach the lake
FREE_TEXT = "Jane Doe MRN-123456"
SCHEMA = Schema(
    features=(
        FeatureSpec("salary_range", "categorical", allowed=SALARY),
        FeatureSpec("ward", "categorical"),
    ),
    latency=None,
    version=None,
)


def _records(rng: np.random.Generator, start: datetime, days: int, tilt: float) -> pl.DataFrame:
    n = PER_DAY * days
    secs = np.sort(rng.uniform(0, days * 86400, n))
    p = np.array(SALARY_P) * np.exp(tilt * np.arange(len(SALARY)))
    salary = rng.choice(SALARY, n, p=p / p.sum()).astype(object)
    salary[rng.random(n) < 0.01] = FREE_TEXT
    return pl.DataFrame(
        {
            "timestamp": pl.Series(
                [start + timedelta(seconds=float(s)) for s in secs], dtype=pl.Datetime("us", "UTC")
            ),
            "salary_range": salary.tolist(),
            "ward": rng.choice(WARD, n, p=WARD_P).tolist(),
        }
    )


def _raw_counts(records: pl.DataFrame, feature: str, categories: tuple[str, ...]) -> np.ndarray:
    """Counts over ``categories`` + ``__other__``, computed from raw values without mlmon."""
    values = records.get_column(feature).to_list()
    counts = [sum(v == c for v in values) for c in categories]
    return np.array([*counts, len(values) - sum(counts)], dtype=np.int64)


def _profile_into_lake(lake: Path, reference, records: pl.DataFrame) -> None:
    """The edge's path: 5-minute windows, the default writer (k_anonymity=5), day rollups."""
    writer = LakeWriter(str(lake), collector_id="edge-1")
    writer.write_reference(MODEL, reference)
    acc = WindowAccumulator(reference, window=timedelta(minutes=5))
    acc.add(records)
    acc.flush(writer, MODEL, with_drift=False)
    writer.write_rollups()


def _scipy_chi_square_p(ref: np.ndarray, cur: np.ndarray) -> float:
    table = np.vstack([ref, cur])
    table = table[:, table.sum(axis=0) > 0]
    return float(stats.chi2_contingency(table, correction=True).pvalue)


@pytest.fixture(scope="module")
def months(tmp_path_factory: pytest.TempPathFactory):
    """August and September are the reference; all three months go through 5-minute windows."""
    rng = np.random.default_rng(19)
    ref_records = _records(rng, datetime(2026, 8, 1, tzinfo=UTC), 61, tilt=0.0)
    reference = build_reference(ref_records, SCHEMA, model=MODEL)
    october = _records(rng, datetime(2026, 10, 1, tzinfo=UTC), 31, tilt=0.15)
    lake = tmp_path_factory.mktemp("cat") / "lake"
    _profile_into_lake(lake, reference, pl.concat([ref_records, october]))
    return lake, reference, ref_records, october


def test_the_reference_has_the_same_other_bucket(months):
    _, reference, ref_records, _ = months
    salary = reference.profiles["salary_range"]
    assert salary.categories == SALARY  # the allow-list, nothing learned
    assert salary.counts[-1] > 0  # the free text counted in __other__, as in every window
    assert np.array_equal(salary.counts, _raw_counts(ref_records, "salary_range", SALARY))
    ward = reference.profiles["ward"]
    assert "burns" not in ward.categories  # seen fewer than k=5 times in the reference
    assert np.array_equal(ward.counts, _raw_counts(ref_records, "ward", ward.categories))


def test_a_month_of_5_minute_windows_merges_to_exactly_its_raw_counts(months):
    lake_dir, reference, _, october = months
    lake = Lake(str(lake_dir))
    windows = lake.scan("profiles", model=MODEL, rollup=False).collect()
    n_windows = windows.get_column("window_start").n_unique()
    assert n_windows > 3000  # about one record per non-empty window
    # most windows hold every category they saw fewer than k=5 times: folding them per
    # window (the old writer) would have put nearly all of the month into __other__
    for feature, prof in reference.profiles.items():
        merged = {
            f: p
            for period, _, f, p in lake.merged_profiles(MODEL, by="month")
            if period.month == 10
        }[feature]
        raw = _raw_counts(october, feature, prof.categories)
        assert np.array_equal(merged.counts, raw), feature
        assert merged.counts[:-1].sum() > 0.9 * merged.count  # most mass is allow-listed
        assert merged.nulls == 0


def test_monthly_drift_equals_scipy_on_the_raw_records(months):
    lake_dir, reference, ref_records, october = months
    drift = Lake(str(lake_dir)).drift(
        MODEL, "2026-10-01", "2026-11-01", by="month", methods=["chi_square", "jensen_shannon"]
    )
    assert drift.height == 2 * 2  # one month x two features x two methods
    for feature, prof in reference.profiles.items():
        ref = _raw_counts(ref_records, feature, prof.categories)
        cur = _raw_counts(october, feature, prof.categories)
        got = {r["method"]: r for r in drift.filter(pl.col("feature") == feature).to_dicts()}
        assert got["chi_square"]["count"] == len(october)
        want_p = _scipy_chi_square_p(ref, cur)
        assert got["chi_square"]["value"] == pytest.approx(want_p, rel=1e-12, abs=1e-12)
        want_js = float(distance.jensenshannon(ref / ref.sum(), cur / cur.sum(), base=2))
        assert got["jensen_shannon"]["value"] == pytest.approx(want_js, rel=1e-12, abs=1e-12)
    # the tilt is real drift on salary_range: the exact counts see it
    assert drift.filter((pl.col("feature") == "salary_range") & (pl.col("method") == "chi_square"))[
        "drifted"
    ].item()


def test_values_outside_the_allow_list_never_reach_the_lake(months):
    lake_dir, *_ = months
    files = sorted(lake_dir.rglob("*.parquet"))
    assert files
    text = "".join(str(pq.read_table(f).to_pylist()) for f in files)  # decompressed
    assert "Jane Doe" not in text and "MRN-123456" not in text
    assert OTHER in text  # the bucket they were counted in


def test_the_reference_months_do_not_flag_themselves(months):
    """August and September, profiled as traffic in 5-minute windows, against the reference
    built from them: no method flags either month with its default threshold (before issue 19
    per-window folding flagged every month of every categorical feature)."""
    lake_dir, reference, ref_records, _ = months
    drift = Lake(str(lake_dir)).drift(MODEL, "2026-08-01", "2026-10-01", by="month")
    methods = {m for m, d in METHODS.items() if "categorical" in d.kinds}
    assert set(drift["method"]) == methods
    assert drift.height == 2 * 2 * len(methods)  # August, September x two features
    assert drift["count"].sum() == 2 * len(ref_records) * len(methods)
    assert drift.filter(pl.col("drifted")).height == 0, drift.filter(pl.col("drifted"))
    # the months' rare categories are counted exactly, not folded: both months together
    # give the reference's counts
    for feature, prof in reference.profiles.items():
        merged = [
            p
            for _, _, f, p in Lake(str(lake_dir)).merged_profiles(
                MODEL, "2026-08-01", "2026-10-01", by="all"
            )
            if f == feature
        ]
        assert len(merged) == 1 and np.array_equal(merged[0].counts, prof.counts)

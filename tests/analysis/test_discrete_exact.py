"""Discrete numeric features drift exactly (issue 19 item 2).

A numeric reference feature with at most ``DISCRETE_MAX`` (50) distinct values gets one bin per
value (``mlmon.profiles.kinds.discrete_edges``): windows and merged periods carry exact counts
per reference value, and KS, Wasserstein-1 and the binned methods come from those counts. Where
every value of both sides is on the reference's support they equal scipy on the raw rows to
1e-9; values off the support are counted exactly in the bins between the support values and
placed within the sketch's relative accuracy.

The oracle data are NannyML's three synthetic datasets, chunked as NannyML chunks by default
(10 equal row-count chunks in timestamp order); continuous features are checked too, against
the accuracy the README states for them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import reduce
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.stats as st
from scipy.spatial import distance

from mlmon.analysis.drift import drift_between, psi
from mlmon.analysis.lake import Lake
from mlmon.edge.ingest import WindowAccumulator
from mlmon.lake.references import load_reference, save_reference
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import build_reference, profile_frame, profile_windows
from mlmon.profiles.kinds import DISCRETE_MAX, NumericProfile, discrete_support
from mlmon.profiles.schema import FeatureSpec, Schema
from mlmon.profiles.sketch import cdf_distances
from tests import nannyml_data

#: Numeric columns of NannyML's datasets (features and model scores): 10, 17 and 25 distinct
#: values are discrete; the 101-valued scores and the continuous features are not.
NUMERIC = {
    "binary": ["distance_from_office", "gas_price_per_litre", "public_transportation_cost",
               "tenure", "y_pred_proba"],
    "multiclass": ["app_behavioral_score", "requested_credit_limit", "credit_bureau_score",
                   "stated_income", "y_pred_proba_prepaid_card", "y_pred_proba_highstreet_card",
                   "y_pred_proba_upmarket_card"],
    "car_loan": ["car_value", "debt_to_income_ratio", "loan_length", "driver_tenure",
                 "y_pred_proba"],
}  # fmt: skip
DISCRETE = {"requested_credit_limit", "stated_income", "loan_length"}
CHUNKS = 10
EXACT = 1e-9
#: The README's accuracy for continuous features (sketch): W1 within 2% relative or 0.001 of
#: the reference's std, KS within 0.01 absolute.
W1_REL, W1_STD, KS_ABS = 0.02, 1e-3, 0.01


def _utc(frame: pl.DataFrame) -> pl.DataFrame:
    """NannyML's timestamps are naive strings; mlmon takes UTC datetimes."""
    ts = pl.col("timestamp").str.to_datetime(time_unit="us").dt.replace_time_zone("UTC")
    return frame.with_columns(ts)


def _chunks(frame: pl.DataFrame, n: int) -> list[pl.DataFrame]:
    frame = frame.sort("timestamp", maintain_order=True)
    size = frame.height // n
    return [frame.slice(i * size, size if i < n - 1 else frame.height - i * size) for i in range(n)]


def _rows(reference: NumericProfile, current: NumericProfile) -> dict[str, dict]:
    return {r["method"]: r for r in drift_between(reference, current)}


def _check_exact(ref: NumericProfile, cur: NumericProfile, r: np.ndarray, x: np.ndarray) -> None:
    """W1 (raw and / std), KS D and p, and the binned methods equal scipy on the raw values.

    W1 is scipy's on the raw values' distinct values weighted by their counts (the same
    distance as on the raw rows, without sorting them), KS is ``ks_2samp`` on the raw rows.
    """
    got = _rows(ref, cur)
    rv, rn = np.unique(r, return_counts=True)
    xv, xn = np.unique(x, return_counts=True)
    w1 = st.wasserstein_distance(rv, xv, u_weights=rn, v_weights=xn)
    assert got["wasserstein"]["statistic"] == pytest.approx(w1, rel=EXACT, abs=1e-15)
    assert got["wasserstein"]["value"] == pytest.approx(w1 / r.std(), rel=EXACT, abs=1e-15)
    ks = st.ks_2samp(r, x, method="asymp")
    assert got["ks"]["statistic"] == pytest.approx(ks.statistic, rel=EXACT, abs=1e-15)
    assert got["ks"]["p_value"] == pytest.approx(ks.pvalue, rel=EXACT, abs=1e-300)
    # binned methods: over the exact count of each reference value
    support = ref.support
    assert support is not None
    rc = np.array([(r == v).sum() for v in support])
    xc = np.array([(x == v).sum() for v in support])
    assert np.array_equal(ref.support_counts, rc) and np.array_equal(cur.support_counts, xc)
    assert xc.sum() == x.size and rc.sum() == r.size  # every value on the support
    js = distance.jensenshannon(rc / rc.sum(), xc / xc.sum(), base=2)
    assert got["jensen_shannon"]["value"] == pytest.approx(js, rel=EXACT, abs=1e-12)
    assert got["psi"]["value"] == pytest.approx(psi(rc, xc), rel=EXACT, abs=1e-12)
    hel = np.sqrt(max(1.0 - np.sum(np.sqrt(rc / rc.sum() * xc / xc.sum())), 0.0))
    assert got["hellinger"]["value"] == pytest.approx(hel, rel=EXACT, abs=1e-12)
    table = np.vstack([rc, xc])
    chi = st.chi2_contingency(table[:, table.sum(axis=0) > 0], correction=True)
    assert got["chi_square"]["statistic"] == pytest.approx(chi.statistic, rel=EXACT)
    assert got["chi_square"]["p_value"] == pytest.approx(chi.pvalue, rel=EXACT, abs=1e-300)


@pytest.fixture(scope="module", params=nannyml_data.DATASETS)
def dataset(request):
    name = request.param
    reference, analysis, _ = nannyml_data.load(name)
    analysis = _utc(analysis)
    columns = NUMERIC[name]
    schema = Schema(tuple(FeatureSpec(c, "numeric") for c in columns), latency=None, version=None)
    ref = build_reference(reference.select(columns), schema)
    return name, columns, reference, analysis, ref


def test_features_with_few_values_are_discrete_and_the_rest_are_not(dataset):
    _, columns, reference, _, ref = dataset
    for c in columns:
        distinct = reference[c].n_unique()
        assert (ref.profiles[c].support is not None) == (distinct <= DISCRETE_MAX), c
        assert (c in DISCRETE) == (distinct <= DISCRETE_MAX), c
        if c in DISCRETE:  # the support is the reference's values, each with its own bin
            values = np.unique(reference[c].cast(pl.Float64).to_numpy())
            assert np.array_equal(ref.profiles[c].support, values)


def test_every_chunk_cell_matches_scipy_exact_where_discrete(dataset):
    """Every numeric feature x chunk (NannyML's default chunking): discrete cells exact,
    continuous cells within the stated sketch accuracy."""
    _, columns, reference, analysis, ref = dataset
    checked = 0
    raw = {c: np.sort(reference[c].cast(pl.Float64).to_numpy()) for c in columns}  # sorted once
    for chunk in _chunks(analysis, CHUNKS):
        window = profile_frame(chunk.select(columns), ref)
        for c in columns:
            r = raw[c]
            x = chunk[c].cast(pl.Float64).to_numpy()
            if c in DISCRETE:
                _check_exact(ref.profiles[c], window.features[c], r, x)
            else:
                got = _rows(ref.profiles[c], window.features[c])
                w1 = st.wasserstein_distance(r, x)
                err = abs(got["wasserstein"]["statistic"] - w1)
                assert err <= max(W1_REL * w1, W1_STD * r.std()), (c, err, w1)
                ks = st.ks_2samp(r, x, method="asymp").statistic
                assert got["ks"]["statistic"] == pytest.approx(ks, abs=KS_ABS)
            checked += 1
    assert checked == CHUNKS * len(columns)


@pytest.mark.parametrize("name", ["multiclass", "car_loan"])  # binary has no discrete feature
def test_a_chunk_merged_from_many_small_windows_is_still_exact(name):
    """Each chunk profiled in 1-hour windows (profile_windows), the windows merged back."""
    reference, analysis, _ = nannyml_data.load(name)
    analysis = _utc(analysis)
    discrete = [c for c in NUMERIC[name] if c in DISCRETE]
    schema = Schema(tuple(FeatureSpec(c, "numeric") for c in discrete), latency=None, version=None)
    ref = build_reference(reference.select(discrete), schema)
    for chunk in _chunks(analysis, CHUNKS)[::3]:
        windows = list(profile_windows(chunk.select("timestamp", *discrete), ref,
                                       window=timedelta(hours=1)))  # fmt: skip
        assert len(windows) > 50
        merged = reduce(lambda a, b: a.merge(b), (w.profile for w in windows))
        for c in discrete:
            r = reference[c].cast(pl.Float64).to_numpy()
            x = chunk[c].cast(pl.Float64).to_numpy()
            _check_exact(ref.profiles[c], merged.features[c], r, x)


def test_few_values_near_zero_are_exact_and_were_not():
    """3-17 values around 0, where a relative-error sketch's buckets are widest against the
    gaps between values: exact now; the old layout (reference-quantile bins, the sketch's CDF,
    ``discrete_max=0``) is more than 10% off in some of these cells."""
    old_errors = []
    for m in (3, 5, 10, 17):
        values = np.round(np.linspace(-0.02, 0.03, m), 6)
        for seed in range(4):
            rng = np.random.default_rng(seed)
            r = rng.choice(values, 20_000, p=rng.dirichlet(np.full(m, 5.0)))
            x = rng.choice(values, 3_000, p=rng.dirichlet(np.full(m, 5.0)))
            reference = build_reference(pl.DataFrame({"x": r}))
            ref = reference.profiles["x"]
            assert ref.support is not None and ref.support.size == m
            cur = profile_frame(pl.DataFrame({"x": x}), reference).features["x"]
            _check_exact(ref, cur, r, x)
            old = build_reference(pl.DataFrame({"x": r}), discrete_max=0)
            old_cur = profile_frame(pl.DataFrame({"x": x}), old).features["x"]
            want = st.wasserstein_distance(r, x)
            old_w1 = _rows(old.profiles["x"], old_cur)["wasserstein"]["statistic"]
            old_errors.append(abs(old_w1 - want) / want)
    assert max(old_errors) > 0.1, old_errors


def test_values_off_the_reference_support_are_counted_and_placed_by_the_sketch():
    """Production brings values the reference never had (and a rare one it had): they are
    counted exactly between the support values; W1 and KS stay within the sketch's accuracy
    for that mass, and the binned methods see the new values as drift."""
    rng = np.random.default_rng(7)
    support = np.array([0.0, 1.0, 2.0, 5.0])
    r = np.concatenate([rng.choice(support, 10_000), [9.0, 9.0]])  # 9.0: seen < k=5 times
    reference = build_reference(pl.DataFrame({"x": r}))
    ref = reference.profiles["x"]
    assert np.array_equal(ref.support, support)  # the rare 9.0 is not stored
    x = np.concatenate([rng.choice(support, 4_000), rng.uniform(2.0, 5.0, 300), [-3.0, 12.5]])
    cur = profile_frame(pl.DataFrame({"x": x}), reference).features["x"]
    assert cur.support_counts.sum() == 4_000  # exactly the on-support values
    off = np.concatenate([cur.bins[0:-1:2], cur.bins[-1:]])  # below, between, above
    assert off.sum() == 302 and off[0] == 1 and off[3] == 300 and off[-1] == 1, off
    got = _rows(ref, cur)
    w1 = st.wasserstein_distance(r, x)
    # off-support mass (7%) within a bucket (1% of its distance from the median) of its value
    assert got["wasserstein"]["statistic"] == pytest.approx(w1, rel=0.01)
    assert got["ks"]["statistic"] == pytest.approx(st.ks_2samp(r, x).statistic, abs=0.01)
    assert got["jensen_shannon"]["drifted"] and got["psi"]["drifted"]
    # no off-support value in the window: exact again, the reference's own 9.0s notwithstanding
    on = rng.choice(support, 3_000)
    cur_on = profile_frame(pl.DataFrame({"x": on}), reference).features["x"]
    got_on = _rows(ref, cur_on)
    assert got_on["ks"]["statistic"] == pytest.approx(
        st.ks_2samp(r, on).statistic, rel=EXACT, abs=1e-15
    )
    assert got_on["wasserstein"]["statistic"] == pytest.approx(
        st.wasserstein_distance(r, on), rel=1e-3
    )


def test_a_lake_month_of_windows_drifts_exactly_and_old_references_work_as_before(tmp_path: Path):
    """6-hour windows through the real accumulator and writer; Lake.drift over the merged
    period equals scipy on the raw rows. A reference in the old layout (quantile bins, as every
    reference saved before issue 19 item 2) still loads and drifts through the sketch."""
    reference_rows, analysis, _ = nannyml_data.load("car_loan")
    analysis = _utc(analysis)
    columns = ["loan_length", "car_value"]
    schema = Schema(tuple(FeatureSpec(c, "numeric") for c in columns), latency=None, version=None)
    period = analysis.sort("timestamp").head(3_000)
    start = period["timestamp"].min()
    end = period["timestamp"].max() + timedelta(days=1)
    for mode, discrete_max in (("discrete", DISCRETE_MAX), ("old", 0)):
        lake = tmp_path / mode
        ref = build_reference(reference_rows.select(columns), schema, model="loans",
                              discrete_max=discrete_max)  # fmt: skip
        path = tmp_path / f"{mode}.parquet"
        save_reference(ref, path)
        loaded = load_reference(path)
        assert loaded.reference_id == ref.reference_id
        writer = LakeWriter(str(lake), collector_id="edge-1")
        writer.write_reference("loans", loaded)
        acc = WindowAccumulator(loaded, window=timedelta(hours=6))
        acc.add(period.select("timestamp", *columns))
        acc.flush(writer, "loans", with_drift=False)
        drift = Lake(str(lake)).drift("loans", start, end, by="all", methods=["ks", "wasserstein"])
        r = reference_rows["loan_length"].to_numpy()
        x = period["loan_length"].to_numpy()
        got = {d["method"]: d for d in drift.filter(pl.col("feature") == "loan_length").to_dicts()}
        w1, ks = st.wasserstein_distance(r, x), st.ks_2samp(r, x).statistic
        prof = loaded.profiles["loan_length"]
        if mode == "discrete":
            assert prof.support is not None
            assert got["wasserstein"]["statistic"] == pytest.approx(w1, rel=EXACT)
            assert got["ks"]["statistic"] == pytest.approx(ks, rel=EXACT)
        else:  # as before: quantile bins, the sketch's CDF, not exact
            assert prof.support is None and discrete_support(prof.edges) is None
            merged = [
                p for _, _, f, p in Lake(str(lake)).merged_profiles("loans", start, end)
                if f == "loan_length"
            ]  # fmt: skip
            want = cdf_distances(prof.sketch, merged[0].sketch)
            assert (got["ks"]["statistic"], got["wasserstein"]["statistic"]) == pytest.approx(want)
            assert abs(got["wasserstein"]["statistic"] - w1) > 1e-6 * w1


def test_reports_show_a_discrete_feature_per_value():
    """The report's distribution of a discrete feature: one row per reference value, and the
    values between or beyond them only where there are some (never a 1-ulp "bin")."""
    from mlmon.reports.context import _distribution

    rng = np.random.default_rng(3)
    reference = build_reference(pl.DataFrame({"x": rng.choice([0.0, 1.0, 3.0], 1_000)}))
    x = np.concatenate([rng.choice([0.0, 1.0, 3.0], 98), [2.5, 7.0]])
    cur = profile_frame(pl.DataFrame({"x": x}), reference).features["x"]
    frame = _distribution("x", reference.profiles["x"], cur).frame
    assert frame["label"].to_list() == ["= 0", "= 1", "1–3", "= 3", "> 3"]
    assert frame["current"].to_list() == pytest.approx(
        [np.mean(x == 0), np.mean(x == 1), 0.01, np.mean(x == 3), 0.01]
    )
    assert frame["reference"].sum() == pytest.approx(1.0)


def test_the_lake_stores_as_support_only_reference_values_seen_k_times(tmp_path: Path):
    """Privacy: the support (the bin edges of a discrete feature) comes from the reference,
    values seen at least k=5 times there; windows carry the reference's edges, so a value seen
    only in production, or fewer than 5 times in the reference, is no edge anywhere in the lake."""
    rng = np.random.default_rng(11)
    support = [10.0, 20.0, 30.0]
    r = np.concatenate([rng.choice(support, 2_000), [77.0] * 4])  # 77.0: 4 times, below k
    schema = Schema((FeatureSpec("x", "numeric"),), latency=None, version=None)
    reference = build_reference(pl.DataFrame({"x": r}), schema, model="m")
    assert np.array_equal(reference.profiles["x"].support, support)
    t0 = datetime(2026, 11, 2, tzinfo=UTC)
    x = np.concatenate([rng.choice(support, 500), [41.25, 41.25, 77.0]])  # production-only 41.25
    records = pl.DataFrame(
        {"timestamp": [t0 + timedelta(minutes=int(i)) for i in range(x.size)], "x": x}
    ).with_columns(pl.col("timestamp").dt.cast_time_unit("us"))
    writer = LakeWriter(str(tmp_path), collector_id="edge-1")
    writer.write_reference("m", reference)
    acc = WindowAccumulator(reference, window=timedelta(hours=1))
    acc.add(records)
    acc.flush(writer, "m", with_drift=False)
    lake = Lake(str(tmp_path))
    rows = lake.scan("profiles", model="m", rollup=False).collect()
    assert rows.height >= 8
    edges = {tuple(e) for e in rows["bin_edges"].to_list()}
    assert edges == {tuple(reference.profiles["x"].edges.tolist())}
    values = set(discrete_support(np.array(next(iter(edges)))).tolist())
    assert values == set(support) and 41.25 not in values and 77.0 not in values
    merged = lake.merged_profiles("m")[0][3]
    assert merged.support_counts.sum() == 500 and merged.count == 503  # counted, off support

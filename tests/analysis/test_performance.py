"""Realized metrics from performance profiles against scikit-learn on the raw rows.

Tolerances: threshold metrics and confusion counts exact (1e-12); Brier and
log loss 1e-9 relative (sums in a different order); ROC AUC and average
precision on the raw scores lie within the bounds that the bin counts give
(:func:`binning_bounds`), and equal scikit-learn on the bin index to 1e-12.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from mlmon.analysis.performance import (
    binning_bounds,
    calibration,
    estimate,
    metric,
    realized,
)
from mlmon.errors import ProfileError, SchemaError, UnknownNameError
from mlmon.profiles.performance import (
    PerformanceProfile,
    PerformanceSpec,
    performance_from_row,
    performance_to_row,
)

BINARY = PerformanceSpec.make("binary", classes=("neg", "pos"), thresholds=(0.5, 0.33), bins=40)


def _binary_rows(n: int, seed: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1.0, n)
    p = 1.0 / (1.0 + np.exp(-(1.7 * x - 0.4)))
    y = (rng.random(n) < p).astype(np.int64)
    return y, p


def test_binary_threshold_metrics_equal_sklearn_exactly() -> None:
    y, p = _binary_rows(20_000, 1)
    prof = PerformanceProfile.from_labels(BINARY, y, p)
    got = realized(prof)
    for th, suffix in ((0.5, ""), (0.33, "@0.33")):
        pred = (p >= th).astype(int)
        assert got[f"accuracy{suffix}"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
        assert got[f"precision{suffix}"] == pytest.approx(skm.precision_score(y, pred), abs=1e-12)
        assert got[f"recall{suffix}"] == pytest.approx(skm.recall_score(y, pred), abs=1e-12)
        assert got[f"f1{suffix}"] == pytest.approx(skm.f1_score(y, pred), abs=1e-12)
    assert prof.confusion[0].tolist() == skm.confusion_matrix(y, (p >= 0.5).astype(int)).tolist()
    assert got["brier"] == pytest.approx(skm.brier_score_loss(y, p), rel=1e-9)
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, p), rel=1e-9)


def test_ranking_metrics_within_the_binning_bound() -> None:
    y, p = _binary_rows(20_000, 2)
    prof = PerformanceProfile.from_labels(BINARY, y, p)
    got = realized(prof)
    bins = BINARY.bin_of(p)
    # the binned values are scikit-learn's on the bin index
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, bins), abs=1e-12)
    assert got["pr_auc"] == pytest.approx(skm.average_precision_score(y, bins), abs=1e-12)
    pos, neg = prof.hist[1, 0].astype(float), prof.hist[0, 0].astype(float)
    bounds = binning_bounds(pos, neg)
    exact_auc = skm.roc_auc_score(y, p)
    exact_ap = skm.average_precision_score(y, p)
    lo, hi = bounds["roc_auc"]
    assert lo - 1e-12 <= exact_auc <= hi + 1e-12
    lo_ap, hi_ap = bounds["pr_auc"]
    assert lo_ap - 1e-12 <= exact_ap <= hi_ap + 1e-12
    # a worst case: the binned value is much closer to the exact one than the bound
    assert hi - lo < 0.02 and hi_ap - lo_ap < 0.03
    assert abs(got["roc_auc"] - exact_auc) < (hi - lo) / 4


@pytest.mark.parametrize("bins", [10, 50, 200])
def test_binning_bound_shrinks_with_bins(bins: int) -> None:
    y, p = _binary_rows(50_000, 3)
    spec = PerformanceSpec.make("binary", bins=bins)
    prof = PerformanceProfile.from_labels(spec, y, p)
    lo, hi = binning_bounds(prof.hist[1, 0].astype(float), prof.hist[0, 0].astype(float))["roc_auc"]
    # scores here have densities bounded by about 3 per class: half-width <= 0.5 * 3 / B
    assert (hi - lo) / 2 <= 0.5 * 3.0 / bins
    assert lo <= skm.roc_auc_score(y, p) <= hi


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 1), st.floats(0, 1)), min_size=2, max_size=300),
)
def test_bounds_hold_for_any_data_including_ties(rows: list[tuple[int, float]]) -> None:
    y = np.array([r[0] for r in rows])
    p = np.array([r[1] for r in rows])
    if y.min() == y.max():
        return
    spec = PerformanceSpec.make("binary", bins=7)
    prof = PerformanceProfile.from_labels(spec, y, p)
    pos, neg = prof.hist[1, 0].astype(float), prof.hist[0, 0].astype(float)
    b = binning_bounds(pos, neg)
    assert b["roc_auc"][0] - 1e-9 <= skm.roc_auc_score(y, p) <= b["roc_auc"][1] + 1e-9
    ap = skm.average_precision_score(y, p)
    assert b["pr_auc"][0] - 1e-9 <= ap <= b["pr_auc"][1] + 1e-9


def test_multiclass_equals_sklearn() -> None:
    rng = np.random.default_rng(4)
    n, k = 6000, 3
    logits = rng.normal(size=(n, k))
    s = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(k, p=row) for row in s])
    spec = PerformanceSpec.make("multiclass", classes=("a", "b", "c"), bins=50)
    prof = PerformanceProfile.from_labels(spec, y, s)
    got = realized(prof)
    pred = s.argmax(axis=1)
    assert prof.confusion[0].tolist() == skm.confusion_matrix(y, pred).tolist()
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):  # fmt: skip
        assert got[name] == pytest.approx(fn(y, pred, average="macro"), abs=1e-12)
    assert got["brier"] == pytest.approx(np.mean(np.sum((s - np.eye(k)[y]) ** 2, axis=1)), rel=1e-9)
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, s), rel=1e-9)
    binned = np.stack([spec.bin_of(s[:, c]) for c in range(k)], axis=1)
    ovr = np.mean([skm.roc_auc_score(y == c, binned[:, c]) for c in range(k)])
    assert got["roc_auc"] == pytest.approx(ovr, abs=1e-12)
    assert abs(got["roc_auc"] - skm.roc_auc_score(y, s, multi_class="ovr")) < 0.01


def test_multiclass_from_predicted_classes_only() -> None:
    spec = PerformanceSpec.make("multiclass", classes=("a", "b", "c"))
    y = np.array([0, 1, 2, 2, 1])
    pred = np.array([0, 2, 2, 2, 1])
    got = realized(PerformanceProfile.from_labels(spec, y, predicted=pred))
    assert got["accuracy"] == pytest.approx(0.8)
    assert "roc_auc" not in got and "brier" not in got


def test_regression_equals_sklearn() -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(50, 10, 10_000)
    pred = y + rng.normal(1.0, 3.0, y.size)
    spec = PerformanceSpec.make("regression")
    got = realized(PerformanceProfile.from_labels(spec, y, predicted=pred))
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, pred), rel=1e-9)
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)), rel=1e-9)
    assert got["r2"] == pytest.approx(skm.r2_score(y, pred), rel=1e-9)
    assert got["mean_error"] == pytest.approx(np.mean(pred - y), rel=1e-9)
    ae = np.abs(pred - y)
    assert got["abs_error_p90"] == pytest.approx(np.quantile(ae, 0.9, method="lower"), rel=0.011)


def _days(seed: int, n_days: int = 30) -> list[tuple[np.ndarray, np.ndarray]]:
    return [_binary_rows(500, seed * 100 + d) for d in range(n_days)]


def test_month_of_daily_profiles_equals_the_month_in_one_go() -> None:
    days = _days(6)
    merged = PerformanceProfile(BINARY)
    for y, p in days:
        day = PerformanceProfile.from_predictions(BINARY, p).merge(
            PerformanceProfile.from_labels(BINARY, y, p)
        )
        merged = merged.merge(day)
    y = np.concatenate([d[0] for d in days])
    p = np.concatenate([d[1] for d in days])
    whole = PerformanceProfile.from_predictions(BINARY, p).merge(
        PerformanceProfile.from_labels(BINARY, y, p)
    )
    assert merged == whole
    assert realized(merged) == pytest.approx(realized(whole), rel=1e-12)
    # and the regression sketch merges too
    spec = PerformanceSpec.make("regression")
    parts = [PerformanceProfile.from_labels(spec, d[1], predicted=d[1] * 0.9) for d in days]
    total = parts[0]
    for q in parts[1:]:
        total = total.merge(q)
    one = PerformanceProfile.from_labels(spec, p, predicted=p * 0.9)
    assert total == one


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 10_000), st.integers(0, 10_000))
def test_merge_is_associative_and_commutative(s1: int, s2: int, s3: int) -> None:
    a, b, c = (PerformanceProfile.from_labels(BINARY, *_binary_rows(50, s)) for s in (s1, s2, s3))
    assert a.merge(b) == b.merge(a)
    assert a.merge(b).merge(c) == a.merge(b.merge(c))
    assert a.merge(a.empty_like()) == a


def test_arrow_row_round_trip() -> None:
    y, p = _binary_rows(300, 7)
    for prof in (
        PerformanceProfile.from_predictions(BINARY, p).merge(
            PerformanceProfile.from_labels(BINARY, y, p)
        ),
        PerformanceProfile.from_labels(PerformanceSpec.make("regression"), p, predicted=p + 0.1),
    ):
        assert performance_from_row(performance_to_row(prof)) == prof


def test_specs_refuse_bad_input() -> None:
    with pytest.raises(SchemaError, match="unknown"):
        PerformanceSpec.make("ranking")
    with pytest.raises(SchemaError, match="two classes"):
        PerformanceSpec.make("binary", classes=("a", "b", "c"))
    with pytest.raises(SchemaError, match="strictly between"):
        PerformanceSpec.make("binary", thresholds=(1.0,))
    other = PerformanceSpec.make("binary", bins=10)
    with pytest.raises(ProfileError, match="different specs"):
        PerformanceProfile(BINARY).merge(PerformanceProfile(other))
    with pytest.raises(UnknownNameError, match="metrics:"):
        metric("auroc")


# -- label-free estimates -----------------------------------------------------------
def _windows(shifts: np.ndarray, n: int, seed: int, *, miscalibrate: float = 1.0):
    """Windows of a model whose scores are calibrated (miscalibrate=1) or not."""
    rng = np.random.default_rng(seed)
    for i, shift in enumerate(shifts):
        x = rng.normal(shift, 1.0, n)
        p_true = 1.0 / (1.0 + np.exp(-(1.7 * x - 0.4)))
        y = (rng.random(n) < p_true).astype(np.int64)
        score = 1.0 / (1.0 + np.exp(-(1.7 * x - 0.4) * miscalibrate))
        yield i, y, score


def _reference(seed: int = 99, n: int = 50_000) -> PerformanceProfile:
    y, p = _binary_rows(n, seed)
    return PerformanceProfile.from_labels(BINARY, y, p)


def test_estimates_follow_realized_under_covariate_shift() -> None:
    cal = calibration(_reference())
    assert cal is not None
    shifts = np.linspace(0.0, 1.5, 60)  # planted covariate shift: the inputs move right
    inside = {m: 0 for m in ("accuracy", "precision", "recall", "f1", "roc_auc")}
    moved = []
    for _, y, s in _windows(shifts, 1000, 11):
        prof = PerformanceProfile.from_predictions(BINARY, s).merge(
            PerformanceProfile.from_labels(BINARY, y, s)
        )
        real = realized(prof)
        est = estimate(prof, cal, draws=1000)
        for m in inside:
            value, lo, hi = est[m]
            assert lo <= value <= hi
            inside[m] += lo <= real[m] <= hi
        moved.append(real["precision"])
    # the shift really changes performance: precision rises by more than the band width
    assert moved[-1] - moved[0] > 0.1
    for m, k in inside.items():
        assert k >= 0.9 * len(shifts), f"{m}: realized inside the band in {k} of {len(shifts)}"


def test_estimates_fail_on_a_miscalibrated_model() -> None:
    """Scores that are over-confident (logit x 3) after the reference: the estimate misses."""
    cal = calibration(_reference())
    assert cal is not None
    missed = 0
    shifts = np.zeros(30)
    for _, y, s in _windows(shifts, 1000, 12, miscalibrate=3.0):
        prof = PerformanceProfile.from_predictions(BINARY, s).merge(
            PerformanceProfile.from_labels(BINARY, y, s)
        )
        _, lo, hi = estimate(prof, cal, draws=500)["accuracy"]
        missed += not lo <= realized(prof)["accuracy"] <= hi
    assert missed >= 0.5 * len(shifts)


def test_realized_outside_the_labelled_rows_band_means_the_calibration_changed() -> None:
    """The estimate for exactly the labelled rows: realized stays inside its band while the
    model is calibrated, and leaves it when the model becomes over-confident."""
    from mlmon.analysis.performance import labelled_rows

    cal = calibration(_reference())
    assert cal is not None
    outside = {}
    for factor in (1.0, 3.0):
        miss = 0
        for _, y, s in _windows(np.zeros(30), 1000, 21, miscalibrate=factor):
            # half of the window's labels arrived
            prof = PerformanceProfile.from_predictions(BINARY, s).merge(
                PerformanceProfile.from_labels(BINARY, y[:500], s[:500])
            )
            _, lo, hi = estimate(labelled_rows(prof), cal, draws=500)["accuracy"]
            miss += not lo <= realized(prof)["accuracy"] <= hi
        outside[factor] = miss
    assert outside[1.0] <= 3  # about 5% by construction of a 95% band
    assert outside[3.0] >= 15

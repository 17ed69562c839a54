"""Realized and label-free estimated model performance, from merged performance profiles.

Realized metrics come from the labelled part of a
:class:`~mlmon.profiles.performance.PerformanceProfile`:

- threshold metrics (accuracy, precision, recall, F1; multiclass macro
  averages) and the Brier score and log loss are exact: they are computed
  from confusion counts and sums, not from bins;
- ranking metrics (ROC AUC, PR AUC = average precision) are computed on the
  binned scores, exactly as scikit-learn computes them on the bin index; the
  true value on the raw scores lies within :func:`binning_bounds`, an interval
  derived from the bin counts alone (every positive ranked first, or last,
  within its bin). For ROC AUC its half-width is
  ``0.5 * sum_b pos_b * neg_b / (P * N)``: the share of positive-negative
  pairs that fall in one bin; it shrinks as the number of bins grows (for
  class score densities bounded by ``f``, below ``0.5 * f / B`` for ``B``
  uniform bins).

Label-free estimates (classifiers whose scores are probabilities) follow
NannyML's confidence-based performance estimation, but from profiles: a
calibration curve is learned from the reference's labelled histograms
(isotonic over bins, evaluated at each bin's mean score; multiclass: one per
class, one-vs-rest), each window bin's expected positive rate is read from it,
and the expected confusion counts (of each row's predicted class: the model's
logged decision, else the rule) and ROC AUC follow; multiclass metrics are
macro averages. The band is the central 95% interval of the metric's value
over 2,000 draws in which the calibration curve moves by its own sampling
error on the reference (per pooled block) and each bin's labels are drawn
Binomial(n_b, p_b): where the realized value should fall if the calibration
still holds. It does not cover
a model whose calibration changed (concept drift): see docs/performance.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import digamma

from mlmon.errors import UnknownNameError
from mlmon.profiles.performance import PerformanceProfile

__all__ = [
    "METRICS",
    "Calibration",
    "MulticlassCalibration",
    "PerfMetric",
    "binning_bounds",
    "calibration",
    "estimate",
    "labelled_rows",
    "metric",
    "realized",
]

DRAWS = 2000
BAND = (0.025, 0.975)


def _div(a: float, b: float) -> float:
    return float(a) / float(b) if b else float("nan")


# -- binary building blocks ---------------------------------------------------------
def _pos_neg(p: PerformanceProfile, c: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative counts per bin of score class ``c`` (binary: c = 0)."""
    h = p.hist
    if p.spec.task == "binary":
        return h[1, 0].astype(np.float64), h[0, 0].astype(np.float64)
    pos = h[c, c].astype(np.float64)
    return pos, h[:, c].sum(axis=0) - pos


def auc_from_bins(pos: np.ndarray, neg: np.ndarray) -> np.ndarray | float:
    """ROC AUC with ties within a bin counted one half; works on (..., B) arrays."""
    total_p, total_n = pos.sum(axis=-1), neg.sum(axis=-1)
    above = np.cumsum(pos[..., ::-1], axis=-1)[..., ::-1] - pos  # positives in higher bins
    num = (neg * (above + 0.5 * pos)).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / (total_p * total_n)


def _harmonic(x: np.ndarray) -> np.ndarray:
    return digamma(x + 1.0) + np.euler_gamma


def _ap_sum(tp0: np.ndarray, seen0: np.ndarray, m: np.ndarray) -> np.ndarray:
    """sum_{i=1..m} (tp0 + i) / (seen0 + i), in closed form with harmonic numbers."""
    out = m - (seen0 - tp0) * (_harmonic(seen0 + m) - _harmonic(seen0))
    return np.where(m > 0, out, 0.0)


def ap_from_bins(pos: np.ndarray, neg: np.ndarray) -> float:
    """Average precision on binned scores, as scikit-learn computes it on the bin index."""
    order = slice(None, None, -1)
    tp = np.cumsum(pos[order])
    fp = np.cumsum(neg[order])
    total = tp[-1] if tp.size else 0.0
    if not total:
        return float("nan")
    keep = (pos[order] + neg[order]) > 0
    prec = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
    recall_step = pos[order] / total
    return float(np.sum((prec * recall_step)[keep]))


def binning_bounds(pos: np.ndarray, neg: np.ndarray) -> dict[str, tuple[float, float]]:
    """Where ROC AUC and average precision on the raw scores can lie, given the bin counts.

    Within a bin the order of positives and negatives is unknown. ROC AUC:
    all of a bin's positives above its negatives, or below. Average precision:
    the upper bound ranks a bin's positives first, tied (scikit-learn credits a
    tied group the precision after the whole group), the lower bound ranks them
    after the bin's negatives. Raw scores with ties stay within both.
    """
    total_p, total_n = pos.sum(), neg.sum()
    auc = float(auc_from_bins(pos, neg))
    half = _div(0.5 * float(np.dot(pos, neg)), total_p * total_n)
    rp, rn = pos[::-1], neg[::-1]
    tp_prev = np.concatenate([[0.0], np.cumsum(rp)[:-1]])
    fp_prev = np.concatenate([[0.0], np.cumsum(rn)[:-1]])
    # best case: a bin's positives ranked first and tied, so each is credited the
    # precision after all of them (at least what any untied order credits)
    hi_terms = np.divide(
        rp * (tp_prev + rp), tp_prev + fp_prev + rp, out=np.zeros_like(rp), where=rp > 0
    )
    hi = hi_terms.sum() / total_p if total_p else float("nan")
    lo = _ap_sum(tp_prev, tp_prev + fp_prev + rn, rp).sum() / total_p if total_p else float("nan")
    return {"roc_auc": (auc - half, auc + half), "pr_auc": (float(lo), float(hi))}


# -- realized metrics ---------------------------------------------------------------
def _binary_counts(p: PerformanceProfile, j: int = 0) -> tuple[float, float, float, float]:
    (tn, fp), (fn, tp) = p.confusion[j].astype(np.float64)
    return tn, fp, fn, tp


def _threshold_metrics(tn: Any, fp: Any, fn: Any, tp: Any) -> dict[str, Any]:
    with np.errstate(invalid="ignore", divide="ignore"):
        n = tn + fp + fn + tp
        return {
            "accuracy": (tp + tn) / n,
            "precision": tp / (tp + fp),
            "recall": tp / (tp + fn),
            "f1": 2 * tp / (2 * tp + fp + fn),
            "specificity": tn / (tn + fp),
        }


def _macro(conf: np.ndarray) -> dict[str, float]:
    c = conf.astype(np.float64)
    tp = np.diag(c)
    with np.errstate(invalid="ignore", divide="ignore"):
        prec = tp / c.sum(axis=0)
        rec = tp / c.sum(axis=1)
        f1 = 2 * tp / (c.sum(axis=0) + c.sum(axis=1))
        tn = c.sum() - c.sum(axis=0) - c.sum(axis=1) + tp
        spec = tn / (c.sum() - c.sum(axis=1))
        return {
            "accuracy": float(tp.sum() / c.sum()),
            "precision": float(np.nanmean(prec)) if np.isfinite(prec).any() else float("nan"),
            "recall": float(np.nanmean(rec)) if np.isfinite(rec).any() else float("nan"),
            "f1": float(np.nanmean(f1)) if np.isfinite(f1).any() else float("nan"),
            "specificity": float(np.nanmean(spec)) if np.isfinite(spec).any() else float("nan"),
        }


def realized(p: PerformanceProfile) -> dict[str, float]:
    """Every realized metric of a profile's labelled rows (NaN where undefined)."""
    s, n = p.spec, p.count_labelled
    if n == 0:
        return {}
    if s.task == "regression":
        mse = p.err_sq_sum / n
        sst = p.y_sq_sum - p.y_sum**2 / n
        sk = p.abs_err
        return {
            "mae": p.abs_err_sum / n,
            "rmse": float(np.sqrt(mse)),
            "mean_error": p.err_sum / n,
            "r2": 1.0 - p.err_sq_sum / sst if sst > 0 else float("nan"),
            "abs_error_p50": sk.quantile(0.5) if sk is not None and sk.count else float("nan"),
            "abs_error_p90": sk.quantile(0.9) if sk is not None and sk.count else float("nan"),
        }
    out: dict[str, float] = {}
    has_scores = bool(p.hist.sum())
    if s.task == "binary":
        for j, th in enumerate(s.thresholds):
            m = _threshold_metrics(*_binary_counts(p, j))
            suffix = "" if j == 0 else f"@{th:g}"
            out.update({f"{k}{suffix}": float(v) for k, v in m.items()})
        pos, neg = _pos_neg(p)
        out["roc_auc"] = float(auc_from_bins(pos, neg))
        out["pr_auc"] = ap_from_bins(pos, neg)
        out["positive_rate"] = float(pos.sum() / n)
    else:
        out.update(_macro(p.confusion[0]))
        if has_scores:
            aucs = [float(auc_from_bins(*_pos_neg(p, c))) for c in range(s.k)]
            finite = [a for a in aucs if np.isfinite(a)]
            out["roc_auc"] = float(np.mean(finite)) if finite else float("nan")
    if has_scores:
        out["brier"] = p.brier_sum / n
        out["log_loss"] = p.log_loss_sum / n
    return out


# -- calibration and estimates ------------------------------------------------------
def _pav_blocks(y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted isotonic (non-decreasing) regression by pool-adjacent-violators: the fit,
    and for each point the weight and the index of its pooled block."""
    vals: list[float] = []
    wts: list[float] = []
    sizes: list[int] = []
    for yi, wi in zip(y.tolist(), w.tolist(), strict=True):
        vals.append(yi)
        wts.append(wi)
        sizes.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            wsum = wts[-2] + wts[-1]
            merged = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / wsum
            size = sizes[-2] + sizes[-1]
            del vals[-1], wts[-1], sizes[-1]
            vals[-1], wts[-1], sizes[-1] = merged, wsum, size
    return (
        np.repeat(vals, sizes),
        np.repeat(wts, sizes),
        np.repeat(np.arange(len(sizes)), sizes),
    )


@dataclass(frozen=True)
class Calibration:
    """A calibration curve: positive rate as a function of score (binary)."""

    score: np.ndarray  # mean reference score of each non-empty bin, increasing
    rate: np.ndarray  # isotonic positive rate at that score
    labelled: int
    weight: np.ndarray | None = None  # labelled reference rows behind each rate (its pool)
    block: np.ndarray | None = None  # index of the pooled block of each point

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return np.interp(scores, self.score, self.rate)

    def draws(self, scores: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` curves drawn around this one from the reference's own sampling error.

        Each pooled block's rate moves by a normal error of its binomial standard
        error, the same error for every point of the block, then the curve is read
        at ``scores``; shape (n, len(scores)).
        """
        if self.weight is None or self.block is None:
            return np.broadcast_to(self(scores), (n, len(scores))).copy()
        sd = np.sqrt(self.rate * (1 - self.rate) / np.maximum(self.weight, 1.0))
        z = rng.standard_normal((n, int(self.block.max()) + 1))[:, self.block]
        curves = np.clip(self.rate + z * sd, 0.0, 1.0)
        return np.stack([np.interp(scores, self.score, c) for c in curves])


def _fit(pos: np.ndarray, neg: np.ndarray, score_sum: np.ndarray, labelled: int) -> Calibration:
    tot = pos + neg
    keep = tot > 0
    mean_score = score_sum[keep] / tot[keep]
    rate, weight, block = _pav_blocks(pos[keep] / tot[keep], tot[keep])
    return Calibration(mean_score, rate, labelled, weight, block)


@dataclass(frozen=True)
class MulticlassCalibration:
    """One-vs-rest calibration curves, one per class (CBPE's multiclass calibration)."""

    classes: tuple[Calibration | None, ...]
    labelled: int


def calibration(ref: PerformanceProfile) -> Calibration | MulticlassCalibration | None:
    """The calibration map learned from the reference's labelled histograms.

    Binary: positive rate as a function of the score. Multiclass: for each class,
    the rate of that class as a function of its own score (one-vs-rest), from the
    reference's per-class score histograms; None without labels or scores.
    """
    if ref.count_labelled == 0 or ref.spec.task == "regression":
        return None
    if ref.spec.task == "binary":
        pos, neg = _pos_neg(ref)
        return _fit(pos, neg, ref.score_sum[0], int(ref.count_labelled))
    if not ref.hist.sum():
        return None
    curves = []
    for c in range(ref.spec.k):
        pos, neg = _pos_neg(ref, c)
        curves.append(
            _fit(pos, neg, ref.score_sum[c], int(ref.count_labelled)) if pos.sum() else None
        )
    return MulticlassCalibration(tuple(curves), int(ref.count_labelled))


def _bin_scores(p: PerformanceProfile, c: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Predictions per bin of score class ``c`` and their mean score (the bin's middle when empty)."""
    n = p.hist_all[c].astype(np.float64)
    edges = np.asarray(p.spec.edges)
    mid = 0.5 * (edges[:-1] + edges[1:])
    return n, np.divide(p.score_sum_all[c], n, out=mid.copy(), where=n > 0)


def _binary_split(p: PerformanceProfile) -> tuple[np.ndarray, np.ndarray]:
    """Predictions per bin predicted negative and positive: the logged decisions where the
    profile has them (``hist_pred``), the rule ``score >= thresholds[0]`` for the rest
    (profiles written before decisions, or merged with them)."""
    hp = p.hist_pred[:, 0, :].astype(np.float64)
    rest = np.maximum(p.hist_all[0].astype(np.float64) - hp.sum(axis=0), 0.0)
    tb = int(p.spec.threshold_bins()[0])
    above = np.arange(p.spec.n_bins) >= tb
    return hp[0] + np.where(above, 0.0, rest), hp[1] + np.where(above, rest, 0.0)


ESTIMABLE = ("accuracy", "precision", "recall", "f1", "specificity", "roc_auc")


def _band(point: dict[str, Any], sims: dict[str, Any]) -> dict[str, tuple[float, float, float]]:
    out = {}
    for name in ESTIMABLE:
        vals = np.asarray(sims[name], dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        lo, hi = np.quantile(vals, BAND) if vals.size else (np.nan, np.nan)
        out[name] = (float(point[name]), float(lo), float(hi))
    return out


def estimate(
    p: PerformanceProfile,
    cal: Calibration | MulticlassCalibration,
    *,
    draws: int = DRAWS,
    seed: int = 0,
) -> dict[str, tuple[float, float, float]]:
    """Estimated (value, lower, upper) per metric of ``ESTIMABLE``, from all predictions' scores.

    Threshold metrics use each prediction's predicted class (the model's logged
    decision where the records carried one) against its calibrated probability:
    CBPE's expected confusion matrix. Multiclass: per class one-vs-rest, then
    the macro average (accuracy: expected share of rows whose predicted class is
    right); ROC AUC from each class's calibrated score histogram.
    """
    if p.count_total == 0:
        return {}
    if isinstance(cal, MulticlassCalibration):
        return _estimate_multiclass(p, cal, draws=draws, seed=seed)
    if p.spec.task != "binary":
        return {}
    n, mean = _bin_scores(p)
    rate = np.clip(cal(mean), 0.0, 1.0)
    n0, n1 = _binary_split(p)

    def metrics(pos0: np.ndarray, pos1: np.ndarray) -> dict[str, Any]:
        tp, fn = pos1.sum(axis=-1), pos0.sum(axis=-1)
        fp, tn = (n1 - pos1).sum(axis=-1), (n0 - pos0).sum(axis=-1)
        m = _threshold_metrics(tn, fp, fn, tp)
        m["roc_auc"] = auc_from_bins(pos0 + pos1, n - pos0 - pos1)
        return m

    point = metrics(n0 * rate, n1 * rate)
    rng = np.random.default_rng(seed)
    # the labels' own chance, and the calibration curve's sampling error on the reference
    rates = cal.draws(mean, draws, rng)
    sim0 = rng.binomial(n0.astype(np.int64), rates).astype(np.float64)
    sim1 = rng.binomial(n1.astype(np.int64), rates).astype(np.float64)
    return _band(point, metrics(sim0, sim1))


def _estimate_multiclass(
    p: PerformanceProfile, cal: MulticlassCalibration, *, draws: int, seed: int
) -> dict[str, tuple[float, float, float]]:
    k = p.spec.k
    hp = p.hist_pred.astype(np.float64)  # [predicted][score class][bin]
    if not hp.sum() or any(c is None for c in cal.classes):
        return {}
    total = float(p.count_total)
    rng = np.random.default_rng(seed)
    point_parts: list[dict[str, Any]] = []
    sim_parts: list[dict[str, Any]] = []
    for c in range(k):
        curve = cal.classes[c]
        assert curve is not None
        n, mean = _bin_scores(p, c)
        rate = np.clip(curve(mean), 0.0, 1.0)
        yes = hp[c, c]  # rows predicted class c, per bin of their class-c score
        no = hp[:, c].sum(axis=0) - yes

        def ovr(pos_yes: np.ndarray, pos_no: np.ndarray, yes: Any = yes, no: Any = no,
                n: Any = n) -> dict[str, Any]:  # fmt: skip
            tp, fn = pos_yes.sum(axis=-1), pos_no.sum(axis=-1)
            fp, tn = (yes - pos_yes).sum(axis=-1), (no - pos_no).sum(axis=-1)
            m = _threshold_metrics(tn, fp, fn, tp)
            m["tp"] = tp
            m["roc_auc"] = auc_from_bins(pos_yes + pos_no, n - pos_yes - pos_no)
            return m

        point_parts.append(ovr(yes * rate, no * rate))
        rates = curve.draws(mean, draws, rng)
        sim_yes = rng.binomial(yes.astype(np.int64), rates).astype(np.float64)
        sim_no = rng.binomial(no.astype(np.int64), rates).astype(np.float64)
        sim_parts.append(ovr(sim_yes, sim_no))

    def macro(parts: list[dict[str, Any]]) -> dict[str, Any]:
        out = {
            name: np.mean(np.stack([np.asarray(m[name], dtype=np.float64) for m in parts]), axis=0)
            for name in ("precision", "recall", "f1", "specificity", "roc_auc")
        }
        out["accuracy"] = sum(np.asarray(m["tp"], dtype=np.float64) for m in parts) / total
        return out

    return _band(macro(point_parts), macro(sim_parts))


def labelled_rows(p: PerformanceProfile) -> PerformanceProfile:
    """The profile's labelled rows seen as predictions (their score histogram, no labels).

    :func:`estimate` on it gives what the calibration curve expects of exactly the rows
    whose labels arrived, so a realized value outside that band means the model's
    calibration changed (concept drift), not just that the labelled rows differ.
    """
    return PerformanceProfile(
        p.spec,
        count_total=p.count_labelled,
        hist_all=p.hist.sum(axis=0),
        score_sum_all=p.score_sum.copy(),
        hist_pred=p.hist_pred_labelled.copy(),
    )


# -- the registry -------------------------------------------------------------------
@dataclass(frozen=True)
class PerfMetric:
    """A performance metric: which tasks it applies to and how an alert is decided.

    An alert is raised when the value (realized, or estimated when too few
    labels arrived) is worse than the reference's by more than ``tolerance``
    (absolute for scores in [0, 1], relative, a fraction, for regression
    errors) plus the period's sampling noise where a band is known.
    """

    name: str
    tasks: tuple[str, ...]
    higher_is_better: bool
    tolerance: float
    relative: bool = False

    def alert(
        self, value: float, reference: float, tolerance: float | None = None, noise: float = 0.0
    ) -> bool:
        """Worse than ``reference`` by more than the tolerance plus ``noise`` (sampling error:
        half the width of the period's band, so small periods do not alert on chance)."""
        if not (np.isfinite(value) and np.isfinite(reference)):
            return False
        tol = self.tolerance if tolerance is None else tolerance
        margin = (abs(reference) * tol if self.relative else tol) + (
            noise if np.isfinite(noise) else 0.0
        )
        return value < reference - margin if self.higher_is_better else value > reference + margin


_CLS = ("binary", "multiclass")
METRICS: dict[str, PerfMetric] = {
    m.name: m
    for m in (
        PerfMetric("accuracy", _CLS, True, 0.05),
        PerfMetric("precision", _CLS, True, 0.05),
        PerfMetric("recall", _CLS, True, 0.05),
        PerfMetric("f1", _CLS, True, 0.05),
        PerfMetric("specificity", _CLS, True, 0.05),
        PerfMetric("roc_auc", _CLS, True, 0.05),
        PerfMetric("pr_auc", ("binary",), True, 0.05),
        PerfMetric("brier", _CLS, False, 0.05),
        PerfMetric("log_loss", _CLS, False, 0.2, relative=True),
        PerfMetric("positive_rate", ("binary",), True, float("inf")),
        PerfMetric("mae", ("regression",), False, 0.1, relative=True),
        PerfMetric("rmse", ("regression",), False, 0.1, relative=True),
        PerfMetric("mean_error", ("regression",), False, float("inf")),
        PerfMetric("r2", ("regression",), True, 0.1),
        PerfMetric("abs_error_p50", ("regression",), False, 0.1, relative=True),
        PerfMetric("abs_error_p90", ("regression",), False, 0.1, relative=True),
    )
}


def metric(name: str) -> PerfMetric:
    try:
        return METRICS[name.split("@", 1)[0]]
    except KeyError as exc:
        raise UnknownNameError(
            f"unknown performance metric {name!r}; metrics: {', '.join(METRICS)}"
        ) from exc

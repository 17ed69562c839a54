"""Mergeable model-quality profiles: what realized and estimated performance are computed from.

A :class:`PerformanceProfile` summarises, for one window of *prediction* time:

- ``count_total`` and ``hist_all``: every prediction's score on fixed bin edges
  (written when the window closes; label-free estimates use it);
- for the rows whose label has arrived (``count_labelled``):
  - classification: ``hist[t, c, b]``, the number of rows with true class
    ``t`` whose score for class ``c`` falls in bin ``b``; ``confusion[j, t, p]``
    (binary: one 2 x 2 matrix per threshold ``j``; multiclass: one K x K matrix
    of the predicted class); per-bin sums of scores (calibration curve), and
    sums of the Brier score and the log loss;
  - regression: count, sums of errors, squared errors, absolute errors, of the
    label and its square, and a quantile sketch of the absolute error;
- classification, every prediction and the labelled ones again:
  ``hist_pred[d, c, b]`` / ``hist_pred_labelled[d, c, b]``, the number of rows
  *predicted* class ``d`` whose score for class ``c`` falls in bin ``b``
  (label-free estimates: CBPE's expected confusion matrix).

The predicted class of a row is the model's own logged decision when the
records carry one (``decision`` column, NannyML's ``y_pred``), else the rule:
binary ``score >= thresholds[0]``, multiclass the class of the highest score.
The first confusion matrix (binary ``confusion[0]``, multiclass the only one)
is of that predicted class, so realized accuracy, precision, recall, F1 and
specificity are those of the decisions the model actually took; the other
binary thresholds stay what-ifs on the score. ``count_decided`` and
``labelled_decided`` count the rows whose predicted class was a logged decision.
Profiles written before decisions existed have empty ``hist_pred`` arrays and
are read as before (the rule).

Every field is a count or a sum, so merging two profiles is adding them, and
labels that arrive in pieces over weeks merge into the same window. The
binary thresholds are bin edges, so the confusion counts at each threshold
are also sums of histogram bins.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from mlmon.errors import ProfileError, SchemaError
from mlmon.profiles.kinds import sum_of_squares
from mlmon.profiles.sketch import DEFAULT_ALPHA, QuantileSketch

__all__ = [
    "PERFORMANCE_FIELDS",
    "TASKS",
    "PerformanceProfile",
    "PerformanceSpec",
    "decision_index",
    "performance_from_row",
    "performance_to_row",
]

TASKS = ("binary", "multiclass", "regression")
LOG_EPS = 1e-15  # scores are clipped to [eps, 1 - eps] for the log loss, as scikit-learn does


@dataclass(frozen=True)
class PerformanceSpec:
    """What a model's performance profiles look like; fixed when the reference is built.

    ``classes`` are the label values as strings (binary: negative then
    positive). ``edges`` are the score bin edges on [0, 1] (classification):
    uniform, with every threshold inserted so that ``score >= threshold`` is a
    union of whole bins. ``score_columns`` and ``decision_column`` name the
    record fields the reference was built from (the edge reads scores and the
    model's logged decisions from them); they do not change what a profile
    means, so specs that differ only there compare equal and merge.
    """

    task: str
    classes: tuple[str, ...] = ()
    thresholds: tuple[float, ...] = ()
    edges: tuple[float, ...] = ()
    alpha: float = DEFAULT_ALPHA
    score_columns: tuple[str, ...] = field(default=(), compare=False)
    decision_column: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise SchemaError(f"performance task {self.task!r} is unknown; use one of {TASKS}")
        if self.task == "binary" and len(self.classes) != 2:
            raise SchemaError(
                f"a binary task needs exactly two classes (negative, positive), got {self.classes}"
            )
        if self.task == "multiclass" and len(self.classes) < 2:
            raise SchemaError("a multiclass task needs at least two classes")
        if self.task != "regression" and len(self.edges) < 2:
            raise SchemaError("a classification task needs score bin edges")

    @classmethod
    def make(
        cls,
        task: str,
        *,
        classes: tuple[Any, ...] | list[Any] = (),
        thresholds: tuple[float, ...] | list[float] = (0.5,),
        bins: int = 100,
        alpha: float = DEFAULT_ALPHA,
    ) -> PerformanceSpec:
        """A spec with ``bins`` uniform score bins on [0, 1] plus the thresholds as edges."""
        if task == "regression":
            return cls(task, alpha=alpha)
        if bins < 2:
            raise SchemaError(f"score bins must be at least 2, got {bins}")
        names = tuple(str(c) for c in classes) or (("0", "1") if task == "binary" else ())
        if len(set(names)) != len(names):
            raise SchemaError(f"classes {names} repeat a value")
        ths = tuple(float(t) for t in thresholds) if task == "binary" else ()
        for t in ths:
            if not 0.0 < t < 1.0:
                raise SchemaError(f"threshold {t} must lie strictly between 0 and 1")
        edges = np.unique(np.concatenate([np.linspace(0.0, 1.0, bins + 1), np.array(ths)]))
        return cls(task, names, ths, tuple(float(e) for e in edges), alpha)

    @property
    def k(self) -> int:
        return len(self.classes)

    @property
    def n_bins(self) -> int:
        return max(len(self.edges) - 1, 0)

    @property
    def score_classes(self) -> int:
        """Score columns histogrammed: binary 1 (the positive class), multiclass K."""
        return {"binary": 1, "multiclass": self.k}.get(self.task, 0)

    @property
    def n_thresholds(self) -> int:
        return {"binary": len(self.thresholds), "multiclass": 1}.get(self.task, 0)

    def bin_of(self, scores: np.ndarray) -> np.ndarray:
        """Bin index of each score: bins are [e_i, e_i+1), the last one closed; clipped to [0, 1]."""
        e = np.asarray(self.edges)
        idx = np.searchsorted(e, scores, side="right") - 1
        return np.clip(idx, 0, self.n_bins - 1)

    def threshold_bins(self) -> np.ndarray:
        """For each threshold, the first bin predicted positive (``score >= threshold``)."""
        e = np.asarray(self.edges)
        return np.searchsorted(e, np.asarray(self.thresholds), side="left")

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "classes": list(self.classes),
            "thresholds": list(self.thresholds),
            "edges": list(self.edges),
            "alpha": self.alpha,
            "score_columns": list(self.score_columns),
            "decision_column": self.decision_column,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PerformanceSpec:
        return cls(
            d["task"],
            tuple(str(c) for c in d.get("classes") or ()),
            tuple(float(t) for t in d.get("thresholds") or ()),
            tuple(float(e) for e in d.get("edges") or ()),
            float(d.get("alpha") or DEFAULT_ALPHA),
            tuple(str(c) for c in d.get("score_columns") or ()),
            d.get("decision_column"),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def named(
        self, score_columns: tuple[str, ...] | None = None, decision_column: str | None = None
    ) -> PerformanceSpec:
        """This spec with the record columns it reads (unchanged where ``None``)."""
        return PerformanceSpec(
            self.task, self.classes, self.thresholds, self.edges, self.alpha,
            self.score_columns if score_columns is None else score_columns,
            self.decision_column if decision_column is None else decision_column,
        )  # fmt: skip

    def decisions(
        self, values: pl.Series, column: str, *, strict: bool = True
    ) -> tuple[np.ndarray, int]:
        """:func:`decision_index` of ``values`` (the column ``column``) for this spec."""
        return decision_index(self, values, column, strict=strict)

    def class_index(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Class index of each label (as string) and a mask of labels not in ``classes``."""
        lookup = {c: i for i, c in enumerate(self.classes)}
        idx = np.fromiter((lookup.get(str(v), -1) for v in labels), np.int64, len(labels))
        return idx, idx < 0


def decision_index(
    spec: PerformanceSpec, values: pl.Series, column: str, *, strict: bool = True
) -> tuple[np.ndarray, int]:
    """The class index of each logged decision (-1 where missing) and how many were unknown.

    Decisions are class labels (``spec.classes``); integers and whole floats are
    read as their integer label, booleans as (negative, positive) of a binary
    task. With ``strict`` an unknown value raises :class:`SchemaError`; without
    it the row gets -1 (the rule decides) and is counted. Errors name the column
    and what is wrong, never the values (they can be anything a record carried).
    """
    if spec.task == "regression":
        raise SchemaError(f"decision column {column!r}: a regression model has no classes")
    dtype = values.dtype
    null = values.is_null().to_numpy()
    if dtype == pl.Boolean:
        if spec.task != "binary":
            raise SchemaError(
                f"decision column {column!r} holds booleans; a multiclass model's decisions "
                f"must be its class labels ({len(spec.classes)} classes)"
            )
        idx = values.fill_null(False).cast(pl.Int64).to_numpy()
        return np.where(null, -1, idx), 0
    if dtype.is_float():
        f = values.cast(pl.Float64).fill_null(0.0).fill_nan(0.0).to_numpy()
        null = null | values.cast(pl.Float64).is_nan().fill_null(True).to_numpy()
        if not np.all(np.isfinite(f)) or not np.all(f == np.round(f)):
            raise SchemaError(
                f"decision column {column!r} holds fractional numbers: decisions are class labels "
                f"({', '.join(spec.classes)}), not scores; name the score column(s) separately"
            )
        strings = pl.Series(f.astype(np.int64)).cast(pl.String)
    elif dtype.is_integer() or dtype in (pl.String, pl.Categorical, pl.Enum):
        strings = values.cast(pl.String)
    else:
        raise SchemaError(
            f"decision column {column!r} has type {dtype}; decisions must be class labels "
            "(strings, integers or, binary, booleans)"
        )
    idx, unknown = spec.class_index(strings.fill_null("").to_numpy())
    unknown &= ~null
    bad = int(np.count_nonzero(unknown))
    if bad and strict:
        raise SchemaError(
            f"decision column {column!r}: {bad} value(s) are not among the classes "
            f"{list(spec.classes)}; fix the column or the classes (--classes)"
        )
    return np.where(null | unknown, -1, idx), bad


#: The float sums of :class:`PerformanceProfile`, in field order.
_SUM_FIELDS = (
    "brier_sum", "log_loss_sum", "err_sum", "err_sq_sum", "abs_err_sum", "y_sum", "y_sq_sum",
)  # fmt: skip


def _zeros(shape: tuple[int, ...], dtype: Any = np.int64) -> np.ndarray:
    return np.zeros(shape, dtype=dtype)


@dataclass
class PerformanceProfile:
    """Counts and sums for one window's predictions and the labels that arrived for them."""

    spec: PerformanceSpec
    count_total: int = 0
    count_labelled: int = 0
    hist_all: np.ndarray = field(default_factory=lambda: _zeros((0, 0)))
    score_sum_all: np.ndarray = field(default_factory=lambda: _zeros((0, 0), np.float64))
    hist: np.ndarray = field(default_factory=lambda: _zeros((0, 0, 0)))
    confusion: np.ndarray = field(default_factory=lambda: _zeros((0, 0, 0)))
    score_sum: np.ndarray = field(default_factory=lambda: _zeros((0, 0), np.float64))
    brier_sum: float = 0.0
    log_loss_sum: float = 0.0
    err_sum: float = 0.0
    err_sq_sum: float = 0.0
    abs_err_sum: float = 0.0
    y_sum: float = 0.0
    y_sq_sum: float = 0.0
    abs_err: QuantileSketch | None = None
    hist_pred: np.ndarray = field(default_factory=lambda: _zeros((0, 0, 0)))
    hist_pred_labelled: np.ndarray = field(default_factory=lambda: _zeros((0, 0, 0)))
    count_decided: int = 0
    labelled_decided: int = 0

    def __post_init__(self) -> None:
        s = self.spec
        ks, b, k = s.score_classes, s.n_bins, s.k
        shapes = {
            "hist_all": (ks, b),
            "score_sum_all": (ks, b),
            "hist": (k, ks, b),
            "confusion": (s.n_thresholds, k, k),
            "score_sum": (ks, b),
            "hist_pred": (k, ks, b),
            "hist_pred_labelled": (k, ks, b),
        }
        for name, shape in shapes.items():
            arr = getattr(self, name)
            if arr.size == 0 and math.prod(shape) != 0:
                dtype = np.float64 if name.startswith("score_sum") else np.int64
                setattr(self, name, _zeros(shape, dtype))
            elif arr.shape != shape:
                try:
                    setattr(self, name, np.asarray(arr).reshape(shape))
                except ValueError as exc:
                    raise ProfileError(
                        f"performance profile field {name} has {arr.size} values, "
                        f"expected shape {shape} for task {s.task}"
                    ) from exc
        if s.task == "regression" and self.abs_err is None:
            self.abs_err = QuantileSketch.empty(s.alpha)

    # -- monoid ---------------------------------------------------------------------
    def empty_like(self) -> PerformanceProfile:
        return PerformanceProfile(self.spec)

    def merge(self, other: PerformanceProfile) -> PerformanceProfile:
        if other.spec != self.spec:
            raise ProfileError(
                "cannot merge performance profiles built with different specs "
                f"({self.spec.task} {self.spec.classes} vs {other.spec.task} {other.spec.classes}); "
                "were they built from different references?"
            )
        sketch = (
            self.abs_err.merge(other.abs_err)
            if self.abs_err is not None and other.abs_err is not None
            else self.abs_err or other.abs_err
        )
        return PerformanceProfile(
            self.spec,
            self.count_total + other.count_total,
            self.count_labelled + other.count_labelled,
            self.hist_all + other.hist_all,
            self.score_sum_all + other.score_sum_all,
            self.hist + other.hist,
            self.confusion + other.confusion,
            self.score_sum + other.score_sum,
            self.brier_sum + other.brier_sum,
            self.log_loss_sum + other.log_loss_sum,
            self.err_sum + other.err_sum,
            self.err_sq_sum + other.err_sq_sum,
            self.abs_err_sum + other.abs_err_sum,
            self.y_sum + other.y_sum,
            self.y_sq_sum + other.y_sq_sum,
            sketch,
            self.hist_pred + other.hist_pred,
            self.hist_pred_labelled + other.hist_pred_labelled,
            self.count_decided + other.count_decided,
            self.labelled_decided + other.labelled_decided,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PerformanceProfile):
            return NotImplemented
        arrays = ("hist_all", "hist", "confusion", "hist_pred", "hist_pred_labelled")
        floats = ("brier_sum", "log_loss_sum", "err_sum", "err_sq_sum", "abs_err_sum", "y_sum")
        return (
            self.spec == other.spec
            and self.count_total == other.count_total
            and self.count_labelled == other.count_labelled
            and self.count_decided == other.count_decided
            and self.labelled_decided == other.labelled_decided
            and all(np.array_equal(getattr(self, a), getattr(other, a)) for a in arrays)
            and np.allclose(self.score_sum, other.score_sum, rtol=1e-12, atol=1e-9)
            and np.allclose(self.score_sum_all, other.score_sum_all, rtol=1e-12, atol=1e-9)
            and all(
                math.isclose(getattr(self, f), getattr(other, f), rel_tol=1e-12, abs_tol=1e-9)
                for f in (*floats, "y_sq_sum")
            )
            and self.abs_err == other.abs_err
        )

    __hash__ = None  # type: ignore[assignment]

    # -- building -------------------------------------------------------------------
    @classmethod
    def from_predictions(
        cls, spec: PerformanceSpec, scores: np.ndarray, decisions: np.ndarray | None = None
    ) -> PerformanceProfile:
        """Every prediction of a window: binary scores (n,), multiclass scores (n, K).

        ``decisions`` are the model's logged predicted classes as class indices
        (see :meth:`PerformanceSpec.decision_index`; -1 where a row has none, then
        the rule decides). Rows with a missing (NaN) score are not counted.
        Regression models only count their predictions.
        """
        x = np.asarray(scores, dtype=np.float64)
        if spec.task == "regression":
            return cls(spec, count_total=int(np.count_nonzero(np.isfinite(x))))
        x = x.reshape(len(x), spec.score_classes)
        ok = np.isfinite(x).all(axis=1)
        x = x[ok]
        dec = None if decisions is None else np.asarray(decisions, dtype=np.int64)[ok]
        pred = _predicted(spec, x, dec)
        k, b = spec.k, spec.n_bins
        hist = _zeros((spec.score_classes, b))
        sums = _zeros((spec.score_classes, b), np.float64)
        hist_pred = _zeros((k, spec.score_classes, b))
        for c in range(spec.score_classes):
            bins = spec.bin_of(x[:, c])
            hist[c] = np.bincount(bins, minlength=b)
            sums[c] = np.bincount(bins, weights=x[:, c], minlength=b)
            hist_pred[:, c, :] = np.bincount(pred * b + bins, minlength=k * b).reshape(k, b)
        return cls(
            spec,
            count_total=int(x.shape[0]),
            hist_all=hist,
            score_sum_all=sums,
            hist_pred=hist_pred,
            count_decided=int(np.count_nonzero(dec >= 0)) if dec is not None else 0,
        )

    @classmethod
    def from_predictions_grouped(
        cls,
        spec: PerformanceSpec,
        scores: np.ndarray,
        groups: np.ndarray,
        n_groups: int,
        decisions: np.ndarray | None = None,
    ) -> list[PerformanceProfile]:
        """:meth:`from_predictions` of each group of rows (``groups``: each row's group index
        in ``[0, n_groups)``) in one pass: equal to calling it on each group's rows, without a
        call per group (the edge's prediction histograms per segment)."""
        g_all = np.asarray(groups, dtype=np.int64)
        x = np.asarray(scores, dtype=np.float64)
        if spec.task == "regression":
            fin = np.isfinite(x)
            counts = np.bincount(g_all[fin], minlength=n_groups)
            return [cls(spec, count_total=int(c)) for c in counts]
        x = x.reshape(len(x), spec.score_classes)
        ok = np.isfinite(x).all(axis=1)
        x, g = x[ok], g_all[ok]
        dec = None if decisions is None else np.asarray(decisions, dtype=np.int64)[ok]
        pred = _predicted(spec, x, dec)
        k, b, ks = spec.k, spec.n_bins, spec.score_classes
        hist = _zeros((n_groups, ks, b))
        sums = _zeros((n_groups, ks, b), np.float64)
        hist_pred = _zeros((n_groups, k, ks, b))
        for c in range(ks):
            bins = spec.bin_of(x[:, c])
            hist[:, c] = np.bincount(g * b + bins, minlength=n_groups * b).reshape(n_groups, b)
            sums[:, c] = np.bincount(g * b + bins, weights=x[:, c], minlength=n_groups * b).reshape(
                n_groups, b
            )
            hist_pred[:, :, c, :] = np.bincount(
                (g * k + pred) * b + bins, minlength=n_groups * k * b
            ).reshape(n_groups, k, b)
        totals = np.bincount(g, minlength=n_groups)
        decided = (
            np.bincount(g[dec >= 0], minlength=n_groups)
            if dec is not None
            else np.zeros(n_groups, np.int64)
        )
        return [
            cls(
                spec,
                count_total=int(totals[i]),
                hist_all=hist[i],
                score_sum_all=sums[i],
                hist_pred=hist_pred[i],
                count_decided=int(decided[i]),
            )
            for i in range(n_groups)
        ]

    @classmethod
    def from_labels(
        cls,
        spec: PerformanceSpec,
        y_true: np.ndarray,
        scores: np.ndarray | None = None,
        predicted: np.ndarray | None = None,
        decisions: np.ndarray | None = None,
    ) -> PerformanceProfile:
        """Labelled rows: class indices (classification) or values (regression) with predictions.

        Classification takes ``scores`` (binary (n,) probability of the positive
        class; multiclass (n, K) probabilities) and, optionally, ``decisions``:
        the model's logged predicted classes as class indices (-1 where a row
        has none; then ``score >= thresholds[0]`` or the highest score decides).
        Multiclass also takes only the ``predicted`` class indices, without
        scores (then only the confusion matrix is filled). Regression takes
        ``predicted`` values. Callers drop rows whose label or prediction is
        missing or unknown and count them.
        """
        y = np.asarray(y_true)
        n = len(y)
        if spec.task == "regression":
            if predicted is None:
                raise ProfileError("regression performance needs the predicted values")
            yt = y.astype(np.float64)
            yp = np.asarray(predicted, dtype=np.float64)
            err = yp - yt
            ae = np.abs(err)
            return cls(
                spec,
                count_labelled=n,
                err_sum=float(err.sum()),
                err_sq_sum=sum_of_squares(err),
                abs_err_sum=float(ae.sum()),
                y_sum=float(yt.sum()),
                y_sq_sum=sum_of_squares(yt),
                abs_err=QuantileSketch.from_values(ae, spec.alpha),
            )
        t = y.astype(np.int64)
        k, b, ks = spec.k, spec.n_bins, spec.score_classes
        if decisions is None and spec.task == "multiclass" and predicted is not None:
            decisions = predicted
        dec = None if decisions is None else np.asarray(decisions, dtype=np.int64)
        hist = _zeros((k, ks, b))
        hist_pred = _zeros((k, ks, b))
        score_sum = _zeros((ks, b), np.float64)
        confusion = _zeros((spec.n_thresholds, k, k))
        brier = log_loss = 0.0
        pred: np.ndarray | None = None
        if scores is not None:
            s = np.asarray(scores, dtype=np.float64).reshape(n, ks)
            pred = _predicted(spec, s, dec)
            for c in range(ks):
                bins = spec.bin_of(s[:, c])
                hist[:, c, :] = np.bincount(t * b + bins, minlength=k * b).reshape(k, b)
                hist_pred[:, c, :] = np.bincount(pred * b + bins, minlength=k * b).reshape(k, b)
                score_sum[c] = np.bincount(bins, weights=s[:, c], minlength=b)
            if spec.task == "binary":
                p = s[:, 0]
                brier = float(np.sum((p - t) ** 2))
                pc = np.clip(p, LOG_EPS, 1 - LOG_EPS)
                log_loss = float(-np.sum(np.where(t == 1, np.log(pc), np.log1p(-pc))))
                for j, th in enumerate(spec.thresholds):
                    at = pred if j == 0 else (p >= th).astype(np.int64)
                    confusion[j] = np.bincount(t * 2 + at, minlength=4).reshape(2, 2)
            else:
                onehot = np.zeros_like(s)
                onehot[np.arange(n), t] = 1.0
                brier = float(np.sum((s - onehot) ** 2))
                pt = np.clip(s[np.arange(n), t], LOG_EPS, 1 - LOG_EPS)
                log_loss = float(-np.sum(np.log(pt)))
        elif spec.task == "multiclass" and dec is not None:
            if (dec < 0).any():
                raise ProfileError("multiclass rows without scores need a predicted class each")
            pred = dec
        if spec.task == "multiclass":
            if pred is None:
                raise ProfileError("multiclass performance needs class scores or predicted classes")
            confusion[0] = np.bincount(t * k + pred, minlength=k * k).reshape(k, k)
        elif scores is None:
            raise ProfileError("binary performance needs the positive-class scores")
        return cls(
            spec,
            count_labelled=n,
            hist=hist,
            confusion=confusion,
            score_sum=score_sum,
            brier_sum=brier,
            log_loss_sum=log_loss,
            hist_pred_labelled=hist_pred,
            labelled_decided=int(np.count_nonzero(dec >= 0)) if dec is not None else 0,
        )


def _predicted(
    spec: PerformanceSpec, scores: np.ndarray, decisions: np.ndarray | None
) -> np.ndarray:
    """The predicted class index of each row: its logged decision, else the rule."""
    if spec.task == "binary":
        rule = (scores[:, 0] >= spec.thresholds[0]).astype(np.int64)
    else:
        rule = np.argmax(scores, axis=1).astype(np.int64)
    if decisions is None:
        return rule
    if len(decisions) != len(rule):
        raise ProfileError(f"{len(decisions)} decisions for {len(rule)} predictions")
    return np.where(decisions >= 0, decisions, rule)


#: The performance columns of a lake row (see :mod:`mlmon.lake.schema`), with their meaning.
PERFORMANCE_FIELDS: tuple[tuple[pa.Field, str], ...] = (
    (pa.field("task", pa.string(), nullable=False), "binary, multiclass or regression."),
    (pa.field("classes", pa.list_(pa.string())), "Class labels K (binary: negative, positive)."),
    (pa.field("thresholds", pa.list_(pa.float64())), "Binary decision thresholds T (bin edges)."),
    (pa.field("score_edges", pa.list_(pa.float64())), "Score bin edges on [0, 1], B + 1 values."),
    (pa.field("count_total", pa.int64(), nullable=False), "Predictions in the window."),
    (pa.field("count_labelled", pa.int64(), nullable=False), "Labelled rows in this row."),
    (pa.field("hist_all", pa.list_(pa.int64())), "Scores of all predictions per bin, [score class][bin]."),
    (pa.field("score_sum_all", pa.list_(pa.float64())), "Sum of all predictions' scores per [score class][bin]."),
    (pa.field("hist", pa.list_(pa.int64())), "Labelled rows per [true class][score class][bin]."),
    (pa.field("confusion", pa.list_(pa.int64())), "Per [threshold][true][predicted]; the first (multiclass: the only) matrix is of the logged decisions where present."),
    (pa.field("score_sum", pa.list_(pa.float64())), "Sum of labelled scores per [score class][bin] (calibration)."),
    (pa.field("brier_sum", pa.float64()), "Sum of Brier scores of labelled rows."),
    (pa.field("log_loss_sum", pa.float64()), "Sum of log losses of labelled rows (scores clipped to 1e-15)."),
    (pa.field("err_sum", pa.float64()), "Regression: sum of (prediction - label)."),
    (pa.field("err_sq_sum", pa.float64()), "Regression: sum of squared errors."),
    (pa.field("abs_err_sum", pa.float64()), "Regression: sum of absolute errors."),
    (pa.field("y_sum", pa.float64()), "Regression: sum of labels."),
    (pa.field("y_sq_sum", pa.float64()), "Regression: sum of squared labels."),
    (pa.field("sketch_alpha", pa.float64()), "Regression: relative accuracy of the absolute-error sketch."),
    (pa.field("sketch_zero", pa.int64()), "Regression: absolute errors of exactly zero."),
    (pa.field("sketch_pos_index", pa.list_(pa.int32())), "Regression: absolute-error sketch bucket indices."),
    (pa.field("sketch_pos_count", pa.list_(pa.int64())), "Regression: counts for sketch_pos_index."),
    (pa.field("hist_pred", pa.list_(pa.int64())), "All predictions per [predicted class][score class][bin] (the logged decision, else the rule)."),
    (pa.field("hist_pred_labelled", pa.list_(pa.int64())), "Labelled rows per [predicted class][score class][bin]."),
    (pa.field("count_decided", pa.int64()), "Predictions whose predicted class is the model's logged decision."),
    (pa.field("labelled_decided", pa.int64()), "Labelled rows whose predicted class is the model's logged decision."),
)  # fmt: skip


def performance_to_row(p: PerformanceProfile, *, columns: bool = False) -> dict[str, Any]:
    """One lake row (without the window columns) for a performance profile.

    ``columns`` adds the spec's record column names (``score_columns``,
    ``decision_column``): the reference file keeps them, lake rows do not.
    """
    s = p.spec
    sk = p.abs_err
    names = (
        {"score_columns": list(s.score_columns), "decision_column": s.decision_column}
        if columns
        else {}
    )
    return names | {
        "task": s.task,
        "classes": list(s.classes),
        "thresholds": list(s.thresholds),
        "score_edges": list(s.edges),
        "count_total": p.count_total,
        "count_labelled": p.count_labelled,
        "hist_all": p.hist_all.ravel().tolist(),
        "score_sum_all": p.score_sum_all.ravel().tolist(),
        "hist": p.hist.ravel().tolist(),
        "confusion": p.confusion.ravel().tolist(),
        "score_sum": p.score_sum.ravel().tolist(),
        "brier_sum": p.brier_sum,
        "log_loss_sum": p.log_loss_sum,
        "err_sum": p.err_sum,
        "err_sq_sum": p.err_sq_sum,
        "abs_err_sum": p.abs_err_sum,
        "y_sum": p.y_sum,
        "y_sq_sum": p.y_sq_sum,
        "sketch_alpha": sk.alpha if sk is not None else None,
        "sketch_zero": sk.zero if sk is not None else None,
        "sketch_pos_index": sk.pos_index.tolist() if sk is not None else None,
        "sketch_pos_count": sk.pos_count.tolist() if sk is not None else None,
        "hist_pred": p.hist_pred.ravel().tolist(),
        "hist_pred_labelled": p.hist_pred_labelled.ravel().tolist(),
        "count_decided": p.count_decided,
        "labelled_decided": p.labelled_decided,
    }


def performance_from_row(row: dict[str, Any]) -> PerformanceProfile:
    """The profile of one lake row (the inverse of :func:`performance_to_row`)."""
    spec = PerformanceSpec(
        row["task"],
        tuple(row.get("classes") or ()),
        tuple(row.get("thresholds") or ()),
        tuple(row.get("score_edges") or ()),
        float(row.get("sketch_alpha") or DEFAULT_ALPHA),
        tuple(str(c) for c in row.get("score_columns") or ()),
        row.get("decision_column"),
    )

    def ints(name: str) -> np.ndarray:
        return np.asarray(row.get(name) or [], dtype=np.int64)

    sketch = None
    if spec.task == "regression":
        sketch = QuantileSketch(
            spec.alpha,
            np.asarray(row.get("sketch_pos_index") or [], dtype=np.int32),
            ints("sketch_pos_count"),
            zero=int(row.get("sketch_zero") or 0),
        )
    return PerformanceProfile(
        spec,
        int(row.get("count_total") or 0),
        int(row.get("count_labelled") or 0),
        ints("hist_all"),
        np.asarray(row.get("score_sum_all") or [], dtype=np.float64),
        ints("hist"),
        ints("confusion"),
        np.asarray(row.get("score_sum") or [], dtype=np.float64),
        **{f: float(row.get(f) or 0.0) for f in _SUM_FIELDS},
        abs_err=sketch,
        hist_pred=ints("hist_pred"),
        hist_pred_labelled=ints("hist_pred_labelled"),
        count_decided=int(row.get("count_decided") or 0),
        labelled_decided=int(row.get("labelled_decided") or 0),
    )

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
    label and its square, and a quantile sketch of the absolute error.

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
import pyarrow as pa

from mlmon.errors import ProfileError, SchemaError
from mlmon.profiles.kinds import sum_of_squares
from mlmon.profiles.sketch import DEFAULT_ALPHA, QuantileSketch

__all__ = [
    "PERFORMANCE_FIELDS",
    "TASKS",
    "PerformanceProfile",
    "PerformanceSpec",
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
    union of whole bins.
    """

    task: str
    classes: tuple[str, ...] = ()
    thresholds: tuple[float, ...] = ()
    edges: tuple[float, ...] = ()
    alpha: float = DEFAULT_ALPHA

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
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PerformanceSpec:
        return cls(
            d["task"],
            tuple(str(c) for c in d.get("classes") or ()),
            tuple(float(t) for t in d.get("thresholds") or ()),
            tuple(float(e) for e in d.get("edges") or ()),
            float(d.get("alpha") or DEFAULT_ALPHA),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def class_index(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Class index of each label (as string) and a mask of labels not in ``classes``."""
        lookup = {c: i for i, c in enumerate(self.classes)}
        idx = np.fromiter((lookup.get(str(v), -1) for v in labels), np.int64, len(labels))
        return idx, idx < 0


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

    def __post_init__(self) -> None:
        s = self.spec
        ks, b, k = s.score_classes, s.n_bins, s.k
        shapes = {
            "hist_all": (ks, b),
            "score_sum_all": (ks, b),
            "hist": (k, ks, b),
            "confusion": (s.n_thresholds, k, k),
            "score_sum": (ks, b),
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
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PerformanceProfile):
            return NotImplemented
        arrays = ("hist_all", "hist", "confusion")
        floats = ("brier_sum", "log_loss_sum", "err_sum", "err_sq_sum", "abs_err_sum", "y_sum")
        return (
            self.spec == other.spec
            and self.count_total == other.count_total
            and self.count_labelled == other.count_labelled
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
    def from_predictions(cls, spec: PerformanceSpec, scores: np.ndarray) -> PerformanceProfile:
        """Every prediction of a window: binary scores (n,), multiclass scores (n, K).

        Rows with a missing (NaN) score are not counted. Regression models
        only count their predictions.
        """
        x = np.asarray(scores, dtype=np.float64)
        if spec.task == "regression":
            return cls(spec, count_total=int(np.count_nonzero(np.isfinite(x))))
        x = x.reshape(len(x), spec.score_classes)
        ok = np.isfinite(x).all(axis=1)
        x = x[ok]
        hist = _zeros((spec.score_classes, spec.n_bins))
        sums = _zeros((spec.score_classes, spec.n_bins), np.float64)
        for c in range(spec.score_classes):
            bins = spec.bin_of(x[:, c])
            hist[c] = np.bincount(bins, minlength=spec.n_bins)
            sums[c] = np.bincount(bins, weights=x[:, c], minlength=spec.n_bins)
        return cls(spec, count_total=int(x.shape[0]), hist_all=hist, score_sum_all=sums)

    @classmethod
    def from_labels(
        cls,
        spec: PerformanceSpec,
        y_true: np.ndarray,
        scores: np.ndarray | None = None,
        predicted: np.ndarray | None = None,
    ) -> PerformanceProfile:
        """Labelled rows: class indices (classification) or values (regression) with predictions.

        Classification takes ``scores`` (binary (n,) probability of the positive
        class; multiclass (n, K) probabilities), or for multiclass only the
        ``predicted`` class indices (then only the confusion matrix is filled).
        Regression takes ``predicted`` values. Callers drop rows whose label
        or prediction is missing or unknown and count them.
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
        hist = _zeros((k, ks, b))
        score_sum = _zeros((ks, b), np.float64)
        confusion = _zeros((spec.n_thresholds, k, k))
        brier = log_loss = 0.0
        if scores is not None:
            s = np.asarray(scores, dtype=np.float64).reshape(n, ks)
            for c in range(ks):
                bins = spec.bin_of(s[:, c])
                hist[:, c, :] = np.bincount(t * b + bins, minlength=k * b).reshape(k, b)
                score_sum[c] = np.bincount(bins, weights=s[:, c], minlength=b)
            if spec.task == "binary":
                p = s[:, 0]
                brier = float(np.sum((p - t) ** 2))
                pc = np.clip(p, LOG_EPS, 1 - LOG_EPS)
                log_loss = float(-np.sum(np.where(t == 1, np.log(pc), np.log1p(-pc))))
                for j, th in enumerate(spec.thresholds):
                    pred = (p >= th).astype(np.int64)
                    confusion[j] = np.bincount(t * 2 + pred, minlength=4).reshape(2, 2)
            else:
                onehot = np.zeros_like(s)
                onehot[np.arange(n), t] = 1.0
                brier = float(np.sum((s - onehot) ** 2))
                pt = np.clip(s[np.arange(n), t], LOG_EPS, 1 - LOG_EPS)
                log_loss = float(-np.sum(np.log(pt)))
                predicted = np.argmax(s, axis=1)
        if spec.task == "multiclass":
            if predicted is None:
                raise ProfileError("multiclass performance needs class scores or predicted classes")
            pr = np.asarray(predicted, dtype=np.int64)
            confusion[0] = np.bincount(t * k + pr, minlength=k * k).reshape(k, k)
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
        )


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
    (pa.field("confusion", pa.list_(pa.int64())), "Per [threshold][true][predicted] (multiclass: one matrix)."),
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
)  # fmt: skip


def performance_to_row(p: PerformanceProfile) -> dict[str, Any]:
    """One lake row (without the window columns) for a performance profile."""
    s = p.spec
    sk = p.abs_err
    return {
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
    }


def performance_from_row(row: dict[str, Any]) -> PerformanceProfile:
    """The profile of one lake row (the inverse of :func:`performance_to_row`)."""
    spec = PerformanceSpec(
        row["task"],
        tuple(row.get("classes") or ()),
        tuple(row.get("thresholds") or ()),
        tuple(row.get("score_edges") or ()),
        float(row.get("sketch_alpha") or DEFAULT_ALPHA),
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
    )

"""Profiling records against a reference: a pure function of a batch.

:func:`build_reference` learns bin edges, centres and vocabularies from a
baseline dataframe; :func:`profile_frame` profiles one batch of records
against it; :class:`Profiler` folds a stream of batches (memory independent
of the number of rows); :func:`profile_windows` splits records by window of
prediction time and model version.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from mlmon.errors import SchemaError, SegmentWarning, TimestampError
from mlmon.profiles.binning import binning_items, check_binning, reference_bins
from mlmon.profiles.kinds import (
    DISCRETE_MAX,
    OTHER,
    CategoricalProfile,
    NumericProfile,
    _to_float_array,
    bin_index,
    discrete_edges,
    sum_of_squares,
)
from mlmon.profiles.multivariate import MULTIVARIATE, MultivariateModel, fit_multivariate
from mlmon.profiles.performance import PerformanceProfile, PerformanceSpec
from mlmon.profiles.schema import FeatureSpec, Schema, SegmentSpec, band_segment
from mlmon.profiles.sketch import DEFAULT_ALPHA, grouped_sketches

__all__ = [
    "LATENCY_EDGES_MS",
    "OpenWindows",
    "Profiler",
    "Reference",
    "Window",
    "WindowProfile",
    "build_reference",
    "merge_windows",
    "parse_segment",
    "performance_segments",
    "profile_frame",
    "profile_windows",
    "segment_codes",
    "to_polars",
    "utc_timestamps",
]

Profile = NumericProfile | CategoricalProfile

#: Fixed latency histogram edges (ms), shared by every model so latency merges everywhere.
LATENCY_EDGES_MS = np.array(
    [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000], dtype=np.float64
)


def to_polars(data: Any) -> pl.DataFrame:
    """Accept a polars DataFrame, an Arrow table/batch or a pandas DataFrame."""
    if isinstance(data, pl.DataFrame):
        return data
    if isinstance(data, pa.Table | pa.RecordBatch):
        return pl.from_arrow(data)  # type: ignore[return-value]
    if type(data).__module__.startswith("pandas"):
        return pl.from_pandas(data)
    raise SchemaError(
        f"cannot profile a {type(data).__name__}; pass a polars or pandas DataFrame or an Arrow table"
    )


@dataclass(frozen=True)
class Reference:
    """The reference every window is compared with: bin edges, centres, vocabularies, sketches.

    Built by :func:`build_reference`; saved with :func:`mlmon.lake.save_reference`
    as one Parquet file (the edge reads it from its own config volume) and
    written to the lake's ``references`` table.
    """

    reference_id: str
    schema: Schema
    profiles: dict[str, Profile]
    created_at: datetime
    model: str | None = None
    rows: int = 0
    latency: NumericProfile | None = None
    #: The reference's labelled performance profile (spec, calibration, baseline), if any.
    performance: PerformanceProfile | None = None
    #: Data-driven drift thresholds ``{feature: {method: threshold}}`` computed from the
    #: reference's chunks (``mlmon.analysis.thresholds``); empty when none were computed.
    drift_thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    #: How each numeric feature was binned: ``quantiles``, ``nannyml`` or ``fixed``
    #: (:mod:`mlmon.profiles.binning`); a feature not listed used ``quantiles``.
    binning: dict[str, str] = field(default_factory=dict)
    #: The PCA fitted on the reference for multivariate drift (``build_reference(multivariate=True)``).
    multivariate: MultivariateModel | None = None
    #: The reference's feature profiles per segment (``"scanner=GE"`` -> feature -> profile),
    #: on the overall profiles' bins and vocabularies; empty without segment columns.
    segment_profiles: dict[str, dict[str, Profile]] = field(default_factory=dict)
    #: The reference's labelled performance profile per segment (``"scanner=GE"`` ->
    #: profile), only for segments with enough labels to calibrate on
    #: (:func:`segment_calibration_ok`); estimates of the other segments use the overall one.
    segment_performance: dict[str, PerformanceProfile] = field(default_factory=dict)

    def empty_profile(self, name: str) -> Profile:
        return self.profiles[name].empty_like()

    def with_drift_thresholds(self, thresholds: Mapping[str, Mapping[str, float]]) -> Reference:
        """This reference with data-driven ``thresholds`` stored in it, under a new id.

        The id covers the thresholds, so two references of the same baseline with
        different thresholds are told apart in the lake and in windows' ``reference_id``
        (without thresholds a reference keeps the id of its profiles).

        Examples
        --------
        >>> import polars as pl
        >>> ref = build_reference(pl.DataFrame({"x": [1.0, 2.0, 3.0]}), k=1)
        >>> tuned = ref.with_drift_thresholds({"x": {"psi": 0.3}})
        >>> tuned.drift_thresholds, tuned.reference_id != ref.reference_id
        ({'x': {'psi': 0.3}}, True)
        """
        found = {f: {m: float(v) for m, v in per.items()} for f, per in thresholds.items()}
        base = _reference_id(self.schema, self.profiles, self.multivariate)
        if found:
            h = hashlib.sha256(base.encode())
            h.update(json.dumps(found, sort_keys=True).encode())
            base = h.hexdigest()[:16]
        return replace(self, drift_thresholds=found, reference_id=base)

    def empty_window(self) -> WindowProfile:
        lat = self.latency.empty_like() if self.latency is not None else _empty_latency()
        mv = self.multivariate.profile.empty_like() if self.multivariate is not None else None
        return WindowProfile(
            {n: p.empty_like() for n, p in self.profiles.items()},
            latency=lat,
            rows=0,
            multivariate=mv,
        )


def _empty_latency() -> NumericProfile:
    return NumericProfile(edges=LATENCY_EDGES_MS, centre=0.0, alpha=DEFAULT_ALPHA)


def _numeric_reference(
    series: pl.Series,
    spec: FeatureSpec,
    alpha: float,
    binning: str = "quantiles",
    fixed: np.ndarray | None = None,
) -> NumericProfile:
    arr, nulls = _to_float_array(series)
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        raise SchemaError(
            f"reference column {spec.name!r} has no finite values; drop it from the schema "
            "or provide a baseline with data"
        )
    edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, spec.bins + 1)))
    if edges.size < 2:
        edges = np.array([edges[0], np.nextafter(edges[0], np.inf)])
    centre = float(np.median(finite)) if spec.centred else 0.0
    other = reference_bins(finite, binning=binning, fixed=fixed, feature=spec.name)
    if other is not None:  # NannyML's rule or fixed edges (mlmon.profiles.binning)
        edges, fine = other
        return NumericProfile.from_array(
            arr, edges=edges, centre=centre, alpha=alpha, nulls=nulls, fine=fine
        )
    return NumericProfile.from_array(arr, edges=edges, centre=centre, alpha=alpha, nulls=nulls)


def _discrete_reference(
    series: pl.Series, spec: FeatureSpec, alpha: float, k: int, discrete_max: int
) -> NumericProfile | None:
    """The reference profile of a discrete feature, or ``None`` when it is not discrete.

    Discrete: at most ``discrete_max`` distinct finite values. Its support is the
    values seen at least ``k`` times (the rule of learned categorical vocabularies: a
    rarer value is not stored, it is counted in the bins between support values), and
    each support value gets a bin of its own (:func:`~mlmon.profiles.kinds.discrete_edges`).
    """
    if discrete_max <= 0:
        return None
    arr, nulls = _to_float_array(series)
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return None  # _numeric_reference names the problem
    values, counts = np.unique(finite, return_counts=True)
    if values.size > discrete_max:
        return None
    support = values[counts >= k]
    up = np.nextafter(support, np.inf)
    if (
        support.size == 0
        or np.any(up[:-1] >= support[1:])
        or not math.isfinite(np.nextafter(up[-1], np.inf))
    ):
        return None  # no value seen k times, or adjacent floats: quantile bins
    centre = float(np.median(finite)) if spec.centred else 0.0
    return NumericProfile.from_array(
        arr, edges=discrete_edges(support), centre=centre, alpha=alpha, nulls=nulls
    )


def _vocabulary(
    series: pl.Series, spec: FeatureSpec, k: int, max_categories: int
) -> tuple[str, ...]:
    if spec.allowed is not None:
        vocab = tuple(dict.fromkeys(spec.allowed))
        if OTHER in vocab:
            raise SchemaError(f"feature {spec.name!r}: {OTHER!r} is reserved in allow-lists")
        return vocab
    vc = series.cast(pl.String).drop_nulls().value_counts(sort=True)
    name, cnt = vc.columns
    kept = vc.filter(pl.col(cnt) >= k).sort([cnt, name], descending=[True, False])
    return tuple(kept.get_column(name).head(max_categories).to_list())


def _reference_id(
    schema: Schema, profiles: dict[str, Profile], multivariate: MultivariateModel | None = None
) -> str:
    h = hashlib.sha256(json.dumps(schema.to_dict(), sort_keys=True).encode())
    if multivariate is not None:  # a reference without one keeps its id
        h.update(json.dumps(multivariate.to_dict(), sort_keys=True).encode())
    for name in sorted(profiles):
        p = profiles[name]
        if isinstance(p, NumericProfile):
            h.update(p.edges.tobytes())
            h.update(np.float64(p.centre).tobytes())
            h.update(p.bins.tobytes())
            if p.fine is not None:
                h.update(np.array([p.fine.lo, p.fine.hi, p.fine.n], dtype=np.float64).tobytes())
        else:
            h.update("\x1f".join(p.categories).encode())
            h.update(p.counts.tobytes())
    return h.hexdigest()[:16]


def build_reference(
    df: Any,
    schema: Schema | None = None,
    *,
    model: str | None = None,
    alpha: float = DEFAULT_ALPHA,
    k: int = 5,
    max_categories: int = 50,
    created_at: datetime | None = None,
    decision_column: str | None = None,
    performance: PerformanceSpec | None = None,
    label_column: str = "label",
    score_columns: str | Sequence[str] = "score",
    binning: str = "quantiles",
    bin_edges: Mapping[str, Sequence[float]] | None = None,
    multivariate: bool = False,
    n_components: float = 0.65,
    multivariate_chunks: int = 10,
    multivariate_k: float = 3.0,
    discrete_max: int = DISCRETE_MAX,
    segments: Sequence[str] = (),
    bands: Mapping[str, Sequence[float]] | None = None,
) -> Reference:
    """Build the reference profile from a training or baseline dataframe.

    Parameters
    ----------
    df
        Baseline records (polars, pandas or Arrow).
    schema
        Features and column roles; inferred from dtypes when ``None``.
    model
        Model name recorded with the reference.
    alpha
        Relative accuracy of the quantile sketches.
    k
        A category enters a learned vocabulary only if seen at least ``k`` times.
    max_categories
        Largest learned vocabulary per feature (the rest is ``__other__``).
    performance
        With a :class:`~mlmon.profiles.performance.PerformanceSpec`, the
        baseline's labels (``label_column``), the model's own logged decisions
        (``decision_column``, optional: NannyML's ``y_pred``; the predicted class
        of the threshold metrics instead of ``score >= threshold`` or the highest
        score; a value outside the classes is an error naming the column) and the model's scores
        (``score_columns``: binary one column, multiclass one per class in
        ``classes`` order, or one column of predicted classes; regression the
        predicted value) become the
        reference performance profile: calibration curve and baseline metrics.
    binning
        How numeric features are binned: ``"quantiles"`` (reference quantiles,
        the default) or ``"nannyml"`` (NannyML 0.13's rule, so drift values equal
        its ``UnivariateDriftCalculator``); see :mod:`mlmon.profiles.binning`.
    bin_edges
        Fixed edges for some numeric features (``{"age": [0, 18, 65, 120]}``),
        overriding ``binning`` for them.
    multivariate
        Fit a PCA on the reference for multivariate drift
        (:mod:`mlmon.profiles.multivariate`): every window profile then carries
        each record's reconstruction error.
    n_components
        Fraction of the variance the PCA keeps (more than it), or a number of components.
    multivariate_chunks, multivariate_k
        The reference band of the mean error: ``multivariate_chunks`` consecutive
        row chunks, their mean plus and minus ``multivariate_k`` standard deviations.
    discrete_max
        A numeric feature with at most this many distinct finite values is
        profiled discrete: each of its values seen at least ``k`` times gets a bin
        of its own, so drift on it is exact (KS, Wasserstein and the binned
        methods over per-value counts). 0 turns it off (reference-quantile bins).
    segments
        Segment columns added to the schema's (``schema.segments``): windows are then
        profiled per segment value as well as overall (see ``docs/segments.md``). A
        segment without an allow-list learns one here (values seen at least ``k``
        times, at most ``max_categories``); the reference keeps its profile per segment.
        A learned allow-list that comes out empty (every value seen fewer than ``k``
        times) is warned about (:class:`~mlmon.errors.SegmentWarning`, naming the column).
    bands
        Banded segments of numeric columns (``{"age": [0, 18, 40, 65]}``): the segment
        ``age_band`` takes the band label of each record's ``age`` (``0-17``, ``18-39``,
        ``40-64``, ``65+``, ``<0`` below the first edge, ``missing`` for null or NaN),
        never the value itself (:class:`~mlmon.profiles.schema.SegmentSpec`).

    Returns
    -------
    Reference

    Raises
    ------
    SchemaError
        A schema feature is missing from ``df`` or a numeric feature has no data.
    ConfigError
        An unknown ``binning`` rule, or ``bin_edges`` for a feature that is not
        numeric or edges that are not strictly increasing finite numbers.

    Examples
    --------
    >>> import polars as pl
    >>> ref = build_reference(pl.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a"] * 3}), k=1)
    >>> sorted(ref.profiles)
    ['c', 'x']
    """
    frame = to_polars(df)
    schema = schema or Schema.infer(frame)
    if segments:
        known = set(schema.segment_names)
        extra = tuple(SegmentSpec(str(n)) for n in dict.fromkeys(segments) if n not in known)
        schema = schema.with_segments(schema.segments + extra)
    if bands:
        banded = tuple(band_segment(str(c), e) for c, e in bands.items())
        known = set(schema.segment_names)
        twice = [b.name for b in banded if b.name in known]
        if twice:
            raise SchemaError(
                f"banded segment(s) {', '.join(twice)} are declared in the schema and in "
                "bands=; declare each once"
            )
        schema = schema.with_segments(schema.segments + banded)
    _check_columns(frame, schema, what="reference data")
    if schema.segments:
        schema = schema.with_segments(
            tuple(_segment_vocabulary(frame, g, k, max_categories) for g in schema.segments)
        )
    check_binning(binning)
    fixed = binning_items(bin_edges, [f.name for f in schema.features if f.kind == "numeric"])
    rules: dict[str, str] = {}
    profiles: dict[str, Profile] = {}
    for spec in schema.features:
        col = frame.get_column(spec.name)
        if spec.kind == "numeric":
            _check_numeric_dtype(col, spec, "reference data")
            rules[spec.name] = "fixed" if spec.name in fixed else binning
            discrete = None
            if binning == "quantiles" and spec.name not in fixed:  # NannyML's rule has no such bins
                discrete = _discrete_reference(col, spec, alpha, k, discrete_max)
            profiles[spec.name] = (
                discrete
                if discrete is not None
                else _numeric_reference(col, spec, alpha, binning, fixed.get(spec.name))
            )
        else:
            vocab = _vocabulary(col, spec, k, max_categories)
            profiles[spec.name] = CategoricalProfile.from_series(col, categories=vocab)
    latency = None
    if schema.latency and schema.latency in frame.columns:
        latency = NumericProfile.from_series(
            frame.get_column(schema.latency), edges=LATENCY_EDGES_MS, centre=0.0, alpha=alpha
        )
    if performance is not None and decision_column is not None:  # read by _performance_reference
        performance = performance.named(decision_column=decision_column)
    created = created_at or datetime.now(UTC)
    if created.tzinfo is None:
        raise TimestampError("build_reference(created_at=...) must be timezone-aware (UTC)")
    perf = None
    if performance is not None:
        perf = _performance_reference(frame, performance, label_column, score_columns)
    mv = None
    if multivariate:
        mv = fit_multivariate(
            frame,
            schema.names,
            profiles,
            n_components=n_components,
            chunks=multivariate_chunks,
            k=multivariate_k,
            alpha=alpha,
        )
    ref = Reference(
        reference_id=_reference_id(schema, profiles, mv),
        schema=schema,
        profiles=profiles,
        created_at=created.astimezone(UTC),
        model=model,
        rows=frame.height,
        latency=latency,
        performance=perf,
        binning=rules,
        multivariate=mv,
    )
    if not schema.segments:
        return ref
    per_segment = profile_frame(frame, ref).segments
    seg_perf = {}
    if perf is not None:  # each segment's own calibration, where it has labels enough
        seg_perf = {
            key: p
            for key, p in performance_segments(
                frame, replace(ref, performance=perf), label_column=label_column,
                score_columns=score_columns,
            ).items()
            if segment_calibration_ok(p)
        }  # fmt: skip
    return replace(
        ref,
        segment_profiles={k: dict(w.features) for k, w in per_segment.items()},
        segment_performance=seg_perf,
    )


#: A segment's own calibration is kept when the reference has at least this many labelled
#: rows in it ...
SEGMENT_CALIBRATION_MIN_LABELLED = 500
#: ... and, for a classifier, at least this many of every class among them.
SEGMENT_CALIBRATION_MIN_CLASS = 50


def segment_calibration_ok(p: PerformanceProfile) -> bool:
    """Whether a segment's labelled reference profile is enough to calibrate on: at least
    :data:`SEGMENT_CALIBRATION_MIN_LABELLED` labelled rows and, for a classifier, at least
    :data:`SEGMENT_CALIBRATION_MIN_CLASS` of every class (a regression model has no
    calibration). Below that its estimates use the overall calibration."""
    if p.spec.task == "regression" or p.count_labelled < SEGMENT_CALIBRATION_MIN_LABELLED:
        return False
    hist = np.asarray(p.hist)  # [true class][score class][bin]
    if hist.ndim != 3 or hist.shape[1] == 0:  # no scores: nothing to calibrate
        return False
    per_class = hist[:, 0, :].sum(axis=1)  # labelled rows per true class
    return bool(per_class.min() >= SEGMENT_CALIBRATION_MIN_CLASS)


def band_codes(col: pl.Series, spec: SegmentSpec) -> pl.Series:
    """The band label of each value of ``col`` for the banded segment ``spec``.

    Bands are ``[edge, next edge)``: a value exactly on an edge is in the band it opens.
    """
    assert spec.bands is not None and spec.allowed is not None
    if col.dtype == pl.String:
        col = col.str.strip_chars()
    values = col.cast(pl.Float64, strict=False).fill_null(np.nan).to_numpy()
    idx = np.searchsorted(np.asarray(spec.bands), values, side="right")
    idx[np.isnan(values)] = len(spec.allowed) - 1  # missing
    return pl.Series(spec.name, np.asarray(spec.allowed, dtype=object)[idx], pl.String)


def _segment_vocabulary(frame: pl.DataFrame, spec: SegmentSpec, k: int, most: int) -> SegmentSpec:
    """``spec`` with its allow-list: declared, or learned as categorical vocabularies are."""
    if spec.bands is not None:  # the band labels, fixed by the edges
        return spec
    learned = _vocabulary(
        frame.get_column(spec.name), FeatureSpec(spec.name, "categorical", spec.allowed), k, most
    )
    if not learned and spec.allowed is None:  # name the column only, never a value
        warnings.warn(
            f"segment column {spec.name!r}: no value was seen at least {k} times in the "
            "reference, so its learned allow-list is empty and every record falls in the "
            f"segment {OTHER!r} (the segment tells nothing). Declare the values to keep "
            f"(segments: [{{name: {spec.name}, allowed: [...]}}]), build the reference from "
            f"more records, or drop the segment column",
            SegmentWarning,
            stacklevel=4,
        )
    return SegmentSpec(spec.name, learned)


def performance_segments(
    df: Any,
    reference: Reference,
    *,
    label_column: str = "label",
    score_columns: str | Sequence[str] = "score",
    role: str = "labels",
) -> dict[str, PerformanceProfile]:
    """Performance profiles per segment (``"scanner=GE"`` -> profile).

    ``role="labels"``: each segment's labelled rows of ``df`` (labels and scores, as
    for :func:`build_reference`'s ``performance``), for realized performance;
    ``role="predictions"``: every row's scores (binary or multiclass probabilities,
    no labels needed), for the label-free estimate. Profiled with the reference's
    performance spec; written with
    :meth:`~mlmon.lake.writer.LakeWriter.write_segment_performance` they give
    :meth:`mlmon.Lake.performance` and :meth:`mlmon.Lake.subgroup_gaps` per segment.

    Raises
    ------
    SchemaError
        The reference has no performance spec or no segment columns, or a column is missing.
    """
    frame = to_polars(df)
    if reference.performance is None or not reference.schema.segments:
        raise SchemaError(
            "performance per segment needs a reference built with a performance spec and "
            "segment columns (build_reference(performance=..., segments=[...]))"
        )
    spec = reference.performance.spec
    out: dict[str, PerformanceProfile] = {}
    for seg in reference.schema.segments:
        if seg.source not in frame.columns:
            raise SchemaError(
                f"labelled records lack the segment column {seg.source!r}; columns: "
                f"{', '.join(frame.columns)}"
            )
        codes = _segment_codes(frame, seg)
        for value in codes.unique().sort().to_list():
            part = frame.filter(codes == value)
            key = segment_key(seg.name, value)
            if role == "predictions":
                cols = [score_columns] if isinstance(score_columns, str) else list(score_columns)
                scores = part.select(cols).to_numpy().astype(np.float64)
                out[key] = PerformanceProfile.from_predictions(spec, scores)
            elif role == "labels":
                out[key] = _performance_reference(part, spec, label_column, score_columns)
            else:
                raise SchemaError(f"role {role!r}: use 'labels' or 'predictions'")
    return out


def parse_segment(segment: str) -> tuple[str, str | None]:
    """``"scanner"`` -> ``("scanner", None)``; ``"scanner=GE"`` -> ``("scanner", "GE")``.

    Examples
    --------
    >>> parse_segment("site=north")
    ('site', 'north')
    """
    name, sep, value = segment.partition("=")
    if not name:
        raise SchemaError(
            f"segment {segment!r}: give a segment column (e.g. scanner) or column=value "
            "(e.g. scanner=GE)"
        )
    return name, (value if sep else None)


def segment_key(name: str, value: str) -> str:
    """The key of one segment in :attr:`WindowProfile.segments`: ``"name=value"``."""
    return f"{name}={value}"


def segment_codes(frame: pl.DataFrame, spec: SegmentSpec) -> pl.Series:
    """Each record's value of the segment ``spec``: an allow-listed value or band label,
    else ``__other__`` (a value outside the list is never returned)."""
    return _segment_codes(frame, spec)


def _segment_codes(frame: pl.DataFrame, spec: SegmentSpec) -> pl.Series:
    """Each record's segment value: an allow-listed value, else ``__other__`` (missing too).

    A banded segment's value is the band label of its column's number (``missing`` for a
    null, NaN or a value that is no number): the raw value is never a segment.
    """
    raw = frame.get_column(spec.source)
    if raw.dtype.is_nested() or raw.dtype in (pl.Binary, pl.Object):  # no value of its kind
        raw = pl.Series(raw.name, [None] * raw.len(), pl.String)
    if spec.bands is not None:
        return band_codes(raw, spec)
    allowed = list(spec.allowed or ())
    col = raw.cast(pl.String, strict=False)
    return col.replace_strict(allowed, allowed, default=OTHER, return_dtype=pl.String).fill_null(
        OTHER
    )


def _performance_reference(
    frame: pl.DataFrame, spec: PerformanceSpec, label: str, scores: str | Sequence[str]
) -> PerformanceProfile:
    decision = spec.decision_column  # the model's logged decisions, if named
    cols = [scores] if isinstance(scores, str) else list(scores)
    extra = [decision] if decision and decision not in (label, *cols) else []
    missing = [c for c in (label, *cols, *extra) if c not in frame.columns]
    if missing:
        raise SchemaError(
            f"reference data lack the performance column(s) {', '.join(missing)}; "
            f"columns: {', '.join(frame.columns)} (set label_column / score_columns)"
        )
    if decision and spec.task == "regression":
        raise SchemaError(f"decision column {decision!r}: a regression model has no classes")
    scored = spec.task == "binary" or (spec.task == "multiclass" and len(cols) > 1)
    spec = spec.named(score_columns=tuple(cols) if scored else ())
    sub = frame.select(label, *cols, *extra).drop_nulls(subset=[label, *cols])
    dec = spec.decisions(sub.get_column(decision), decision)[0] if decision else None
    y = sub.get_column(label)
    if spec.task == "regression":
        return PerformanceProfile.from_labels(
            spec, y.cast(pl.Float64).to_numpy(), predicted=sub.get_column(cols[0]).to_numpy()
        )
    idx, unknown = spec.class_index(y.cast(pl.String).to_numpy())
    if unknown.any():
        bad = sorted({str(v) for v in y.filter(pl.Series(unknown)).unique().to_list()})[:5]
        raise SchemaError(
            f"reference column {label!r} has labels {bad} that are not among the classes "
            f"{list(spec.classes)}; fix the data or the classes"
        )
    if spec.task == "multiclass" and len(cols) == 1:  # the predicted class, no scores
        pidx, unknown_pred = spec.class_index(sub.get_column(cols[0]).cast(pl.String).to_numpy())
        keep = ~unknown_pred
        return PerformanceProfile.from_labels(spec, idx[keep], predicted=pidx[keep])
    s = sub.select(cols).to_numpy().astype(np.float64)
    if spec.task == "binary" or s.shape[1] == spec.k:
        return PerformanceProfile.from_labels(
            spec, idx, s if spec.task != "binary" else s[:, 0], decisions=dec
        )
    raise SchemaError(
        f"a {spec.task} reference needs {spec.k} score columns (one per class), got {cols}"
    )


@dataclass(frozen=True)
class WindowProfile:
    """Profiles of every feature (and latency) for one batch or window."""

    features: dict[str, Profile]
    latency: NumericProfile | None = None
    rows: int = 0
    #: The records' reconstruction errors (:data:`~mlmon.profiles.multivariate.MULTIVARIATE`),
    #: when the reference has a multivariate model.
    multivariate: NumericProfile | None = None
    #: Profiles of the same records per segment (``"scanner=GE"`` -> profile), when the
    #: reference declares segment columns; a segment without records is absent.
    segments: dict[str, WindowProfile] = field(default_factory=dict)

    def merge(self, other: WindowProfile) -> WindowProfile:
        missing = set(self.features) ^ set(other.features)
        if missing:
            raise SchemaError(
                f"cannot merge window profiles with different features: {sorted(missing)}"
            )
        feats = {n: p.merge(other.features[n]) for n, p in self.features.items()}  # type: ignore[arg-type]
        if self.latency is None or other.latency is None:
            lat = self.latency or other.latency
        else:
            lat = self.latency.merge(other.latency)
        if self.multivariate is None or other.multivariate is None:
            mv = self.multivariate or other.multivariate
        else:
            mv = self.multivariate.merge(other.multivariate)
        segments = dict(self.segments)
        for key, seg in other.segments.items():
            segments[key] = segments[key].merge(seg) if key in segments else seg
        return WindowProfile(feats, lat, self.rows + other.rows, mv, segments)

    def fold_rare(self, k: int) -> WindowProfile:
        """Fold rare categories of every categorical feature (for display, not before merging)."""
        feats = {
            n: p.fold_rare(k) if isinstance(p, CategoricalProfile) else p
            for n, p in self.features.items()
        }
        segments = {key: seg.fold_rare(k) for key, seg in self.segments.items()}
        return WindowProfile(feats, self.latency, self.rows, self.multivariate, segments)


def _check_columns(frame: pl.DataFrame, schema: Schema, *, what: str) -> None:
    needed = dict.fromkeys((*schema.names, *schema.segment_columns))
    missing = [n for n in needed if n not in frame.columns]
    if missing:
        raise SchemaError(
            f"{what} lacks feature column(s) {', '.join(missing)} that the reference expects; "
            f"columns present: {', '.join(frame.columns) or '(none)'}. "
            "Rename the columns or rebuild the reference with the new schema."
        )


def _check_numeric_dtype(col: pl.Series, spec: FeatureSpec, what: str) -> None:
    dtype = col.dtype
    if dtype.is_numeric() or dtype == pl.Null:
        return
    raise SchemaError(
        f"{what}: feature {spec.name!r} is numeric in the reference but the column has type {dtype}; "
        "cast it to a number or rebuild the reference with this feature as categorical"
    )


def _profile_one(reference: Reference, name: str, col: pl.Series) -> Profile:
    ref = reference.profiles[name]
    if isinstance(ref, NumericProfile):
        _check_numeric_dtype(col, reference.schema.feature(name), "records")
        return NumericProfile.from_series(
            col, edges=ref.edges, centre=ref.centre, alpha=ref.alpha, fine=ref.fine
        )
    return CategoricalProfile.from_series(col, categories=ref.categories)


#: Job name of the latency column in :func:`profile_frame` (not a valid feature name).
_LATENCY = "\x00latency"
#: Job name of the reconstruction errors in :func:`profile_windows` (not a valid feature name).
_MULTIVARIATE = "\x00multivariate"


def profile_frame(data: Any, reference: Reference, *, threads: int = 2) -> WindowProfile:
    """Profile one batch of records against ``reference``.

    Pure: no I/O, no global state. From 50,000 rows, columns are profiled in
    ``threads`` threads (this one and ``threads - 1`` workers): numpy and polars
    release the GIL in the heavy parts.

    Raises
    ------
    SchemaError
        A feature column is missing or has the wrong type.
    """
    frame = to_polars(data)
    _check_columns(frame, reference.schema, what="records")
    overall = _profile_plain(frame, reference, threads)
    if not reference.schema.segments:
        return overall
    segments: dict[str, WindowProfile] = {}
    for spec in reference.schema.segments:
        codes = _segment_codes(frame, spec)
        for value in codes.unique(maintain_order=True).sort().to_list():
            part = frame.filter(codes == value)
            segments[segment_key(spec.name, value)] = _profile_plain(part, reference, threads)
    return replace(overall, segments=segments)


def _profile_plain(frame: pl.DataFrame, reference: Reference, threads: int) -> WindowProfile:
    """:func:`profile_frame` without segments."""
    names = list(reference.schema.names)
    lat_col = reference.schema.latency
    latency_series = frame.get_column(lat_col) if lat_col and lat_col in frame.columns else None

    def work(name: str) -> Profile:
        if name == _LATENCY and latency_series is not None:
            base = reference.latency or _empty_latency()
            return NumericProfile.from_series(
                latency_series, edges=base.edges, centre=0.0, alpha=base.alpha
            )
        return _profile_one(reference, name, frame.get_column(name))

    # Categorical columns first (the longest), then numeric ones; this thread and
    # one worker take the next column from a shared queue until it is empty.
    categorical = [n for n in names if isinstance(reference.profiles[n], CategoricalProfile)]
    jobs = categorical + [n for n in names if n not in categorical]
    if latency_series is not None:
        jobs.append(_LATENCY)
    done: dict[str, Profile] = {}
    if threads > 1 and frame.height >= 50_000:
        queue = iter(jobs)
        lock = threading.Lock()

        def drain() -> None:
            while True:
                with lock:
                    name = next(queue, None)
                if name is None:
                    return
                done[name] = work(name)

        with ThreadPoolExecutor(max_workers=threads - 1) as pool:
            helpers = [pool.submit(drain) for _ in range(threads - 1)]
            drain()
            for h in helpers:
                h.result()
    else:
        done = {n: work(n) for n in jobs}
    results = [done[n] for n in names]
    latency = done.get(_LATENCY)
    assert latency is None or isinstance(latency, NumericProfile)
    mv = None
    if reference.multivariate is not None:
        mv = reference.multivariate.profile_errors(reference.multivariate.errors(frame))
    return WindowProfile(dict(zip(names, results, strict=True)), latency, frame.height, mv)


@dataclass
class Profiler:
    """Fold a stream of batches into one :class:`WindowProfile` (memory is one batch).

    Examples
    --------
    >>> import polars as pl
    >>> ref = build_reference(pl.DataFrame({"x": [1.0, 2.0, 3.0]}))
    >>> p = Profiler(ref)
    >>> p.update(pl.DataFrame({"x": [1.5]})); p.update(pl.DataFrame({"x": [2.5, None]}))
    >>> p.result().features["x"].count
    2
    """

    reference: Reference
    _acc: WindowProfile | None = field(default=None, init=False)

    def update(self, batch: Any) -> None:
        prof = profile_frame(batch, self.reference)
        self._acc = prof if self._acc is None else self._acc.merge(prof)

    def result(self) -> WindowProfile:
        return self._acc if self._acc is not None else self.reference.empty_window()


@dataclass(frozen=True)
class Window:
    """One window of records: its UTC bounds, the model version and its profile."""

    start: datetime
    end: datetime
    version: str | None
    profile: WindowProfile


def merge_windows(
    open_windows: dict[tuple[datetime, str | None], Window], windows: Iterable[Window]
) -> int:
    """Merge ``windows`` into ``open_windows`` (one per window start and version, in place);
    the rows added."""
    n = 0
    for w in windows:
        key = (w.start, w.version)
        prev = open_windows.get(key)
        open_windows[key] = (
            w if prev is None else Window(w.start, w.end, w.version, prev.profile.merge(w.profile))
        )
        n += w.profile.rows
    return n


@dataclass
class OpenWindows:
    """Record batches folded into one profile per (window start, version) until popped.

    The one fold of the edge's ``WindowAccumulator`` and the engines' ``PartialAccumulator``
    (each adds only how its windows leave: written to the lake, or serialised for a driver).
    """

    reference: Reference
    window: timedelta = timedelta(hours=1)
    rows: int = 0
    _open: dict[tuple[datetime, str | None], Window] = field(default_factory=dict, init=False)

    def add(self, batch: Any) -> int:
        """Profile ``batch`` by window and merge it into the open windows; the rows added."""
        n = merge_windows(self._open, profile_windows(batch, self.reference, window=self.window))
        self.rows += n
        return n

    def __len__(self) -> int:
        return len(self._open)

    def pop(self, *, closed_before: datetime | None = None) -> list[Window]:
        """Remove and return the windows that end at or before ``closed_before`` (all if None),
        in (start, version) order."""
        keys = sorted(
            (k for k, w in self._open.items() if closed_before is None or w.end <= closed_before),
            key=lambda k: (k[0], k[1] or ""),
        )
        return [self._open.pop(k) for k in keys]


def utc_timestamps(frame: pl.DataFrame, column: str, *, what: str = "records") -> pl.Series:
    """The timestamp column as UTC-aware datetimes.

    Strings are parsed as ISO-8601 and must carry an offset (``Z`` or
    ``+02:00``); aware datetimes in another zone are converted to UTC, which
    is lossless. Naive values are refused: mlmon cannot guess their zone.
    """
    if column not in frame.columns:
        raise SchemaError(
            f"{what} have no timestamp column {column!r}; columns: {', '.join(frame.columns)}"
        )
    s = frame.get_column(column)
    if s.dtype == pl.String:
        naive = s.str.contains(r"(Z|[+-]\d\d:?\d\d)$").not_() & s.is_not_null()
        if naive.any():
            row = int(naive.arg_max() or 0)
            raise TimestampError(
                f"{what}: timestamp {s[row]!r} in column {column!r} (row {row}) has no UTC offset; "
                "write timestamps as ISO-8601 with 'Z' or an offset, e.g. 2026-10-01T12:00:00Z"
            )
        try:
            s = s.str.to_datetime(time_unit="us", time_zone="UTC")
        except pl.exceptions.ComputeError as exc:
            raise TimestampError(
                f"{what}: cannot parse column {column!r} as ISO-8601 timestamps: {exc}"
            ) from exc
    if not isinstance(s.dtype, pl.Datetime):
        raise TimestampError(
            f"{what}: column {column!r} has type {s.dtype}; expected UTC datetimes or ISO-8601 strings"
        )
    if s.dtype.time_zone is None:
        raise TimestampError(
            f"{what}: column {column!r} holds naive datetimes (no time zone); "
            "mlmon needs UTC: e.g. .dt.replace_time_zone('UTC') if they are UTC"
        )
    if s.null_count():
        raise TimestampError(f"{what}: column {column!r} has {s.null_count()} missing timestamps")
    return s.dt.convert_time_zone("UTC").dt.cast_time_unit("us")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_US = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
_MAX_US = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)


def profile_windows(
    data: Any, reference: Reference, *, window: timedelta = timedelta(hours=1)
) -> Iterator[Window]:
    """Split records by window of prediction time (and model version) and profile each.

    Windows are aligned to the UNIX epoch (an hourly window starts on the hour)
    and come in (start, version) order, missing versions last. All windows are
    profiled together without copying the records (see :func:`_profile_groups`);
    each profile equals :func:`profile_frame` of that window's records.

    Raises
    ------
    TimestampError
        A timestamp so close to year 1 or 9999 that its window is no datetime
        (names the row); the edge's streams refuse such records one by one first.
    """
    frame = to_polars(data)
    if frame.height == 0:
        return
    schema = reference.schema
    _check_columns(frame, schema, what="records")
    ts = utc_timestamps(frame, schema.timestamp)
    step_us = int(window.total_seconds() * 1_000_000)
    if step_us <= 0:
        raise SchemaError(f"window must be positive, got {window}")
    epoch_us = ts.dt.epoch("us")
    lo_us = _MIN_US + step_us  # a window [start, start + window) must be a datetime
    hi_us = _MAX_US - 2 * step_us
    outside = ~epoch_us.is_between(lo_us, hi_us) & epoch_us.is_not_null()
    if outside.any():
        row = int(outside.arg_max() or 0)
        raise TimestampError(
            f"records: timestamp {ts[row]} in column {schema.timestamp!r} (row {row}) is too "
            f"close to year 1 or 9999 for a {window} window; drop or fix the record"
        )
    start_us = (epoch_us // step_us) * step_us
    version = (
        frame.get_column(schema.version).cast(pl.String)
        if schema.version and schema.version in frame.columns
        else pl.Series([None] * frame.height, dtype=pl.String)
    )
    if not reference.schema.segments:
        yield from _profile_groups(frame, reference, start_us, version, window)
        return
    windows = list(_profile_groups(frame, reference, start_us, version, window))
    by_key = {(w.start, w.version): w.profile.segments for w in windows}
    # one pass per segment column: its value joins the version in the group key
    missing = "\x00"  # a null version (no version string holds it: VersionGuard)
    for spec in reference.schema.segments:
        codes = _segment_codes(frame, spec)
        combined = version.fill_null(missing) + "\x1f" + codes
        for sw in _profile_groups(frame, reference, start_us, combined, window):
            assert sw.version is not None
            ver, _, value = sw.version.partition("\x1f")  # a version holds no unit separator
            key = segment_key(spec.name, value)
            by_key[(sw.start, None if ver == missing else ver)][key] = sw.profile
    yield from windows


#: Rows profiled at a time by :func:`_profile_groups` (bounds its working memory).
_CHUNK_ROWS = 1 << 17
#: Groups profiled at a time by :func:`_profile_groups` (their profiles are alive together).
_CHUNK_GROUPS = 256
#: From this many rows, columns are profiled in two threads.
_THREADED_ROWS = 50_000
#: Groups with at least this many finite values are summed pairwise, one by one.
_ORDERED_SUM_MAX = 512


def _profile_groups(
    frame: pl.DataFrame,
    reference: Reference,
    start_us: pl.Series,
    version: pl.Series,
    window: timedelta,
) -> Iterator[Window]:
    """Profile every (window, version) group of ``frame`` without copying it.

    Groups are numbered in (window, version) order; the rows are visited in
    group order through an index permutation, ``_CHUNK_ROWS`` at a time, and each
    chunk is profiled for all of its groups at once (one ``bincount`` per
    statistic, not one profile per window). A group cut by a chunk boundary is
    merged across chunks. One group is profiled with :func:`profile_frame`.
    """
    w_rank = start_us.rank("dense").cast(pl.Int64).to_numpy()
    v_rank = version.rank("dense").cast(pl.Int64).fill_null(0).to_numpy().copy()
    n_versions = int(v_rank.max()) + 1
    v_rank[v_rank == 0] = n_versions  # missing versions sort last
    gid = (w_rank * (n_versions + 1) + v_rank).astype(np.int64)
    del w_rank, v_rank
    uniq, gid = np.unique(gid, return_inverse=True)
    n_groups = uniq.size
    del uniq
    w_np = start_us.to_numpy()
    if n_groups == 1:
        v0 = version[0]
        start = datetime.fromtimestamp(int(w_np[0]) / 1e6, UTC)
        yield Window(
            start,
            start + window,
            None if v0 is None else str(v0),
            _profile_plain(frame, reference, threads=2),
        )
        return
    # records usually come in time order: then the groups are runs of rows and
    # no permutation is needed
    in_order = bool(np.all(gid[1:] >= gid[:-1]))
    perm = None if in_order else np.argsort(gid, kind="stable")
    sizes = np.bincount(gid, minlength=n_groups)
    del gid
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    if perm is not None:
        first = perm[first]
    columns = _window_columns(frame, reference)

    def window_of(g: int, prof: WindowProfile) -> Window:
        row = int(first[g])
        start = datetime.fromtimestamp(int(w_np[row]) / 1e6, UTC)
        v = version[row]
        return Window(start, start + window, None if v is None else str(v), prof)

    group_of_row = np.repeat(np.arange(n_groups, dtype=np.int64), sizes)
    # columns in two threads for large batches, as in profile_frame
    threaded = frame.height >= _THREADED_ROWS
    with ThreadPoolExecutor(max_workers=2) if threaded else nullcontext() as pool:
        yield from _profile_runs(frame.height, columns, perm, group_of_row, window_of, pool)


def _profile_runs(
    height: int,
    columns: list[_Column],
    perm: np.ndarray | None,
    group_of_row: np.ndarray,
    window_of: Callable[[int, WindowProfile], Window],
    pool: ThreadPoolExecutor | None,
) -> Iterator[Window]:
    """Profile the rows in group order, ``_CHUNK_ROWS`` (and ``_CHUNK_GROUPS``) at a time.

    A group cut at the end of a chunk is merged with its rest in the next one.
    """
    pending: WindowProfile | None = None
    pending_group = -1
    ends = np.cumsum(np.bincount(group_of_row))  # one past the last row of each group
    a = 0
    while a < height:
        g0 = int(group_of_row[a])
        # at most _CHUNK_GROUPS groups at a time: their profiles are alive together
        b = min(a + _CHUNK_ROWS, int(ends[min(g0 + _CHUNK_GROUPS, ends.size) - 1]))
        rows = perm[a:b] if perm is not None else slice(a, b)
        groups = group_of_row[a:b]
        local = groups - g0
        n_local = int(local[-1]) + 1
        profiles = _profile_chunk(columns, rows, local, n_local, pool)
        if pending is not None and pending_group != g0:
            yield window_of(pending_group, pending)
            pending = None
        for i, prof in enumerate(profiles):
            g = g0 + i
            if g == pending_group and pending is not None:
                prof = pending.merge(prof)
                pending = None
            if i == n_local - 1 and b < height:
                pending, pending_group = prof, g  # may continue in the next chunk
                continue
            yield window_of(g, prof)
        a = b


@dataclass(frozen=True)
class _Column:
    """One column to profile per group: its job name, the series and the empty profile."""

    name: str
    series: pl.Series
    empty: Profile


def _window_columns(frame: pl.DataFrame, reference: Reference) -> list[_Column]:
    cols = []
    for name in reference.schema.names:
        col = frame.get_column(name)
        ref = reference.profiles[name]
        if isinstance(ref, NumericProfile):
            _check_numeric_dtype(col, reference.schema.feature(name), "records")
        cols.append(_Column(name, col, ref.empty_like()))
    lat_col = reference.schema.latency
    if lat_col and lat_col in frame.columns:
        base = reference.latency or _empty_latency()
        cols.append(_Column(_LATENCY, frame.get_column(lat_col), base.empty_like()))
    mv = reference.multivariate
    if mv is not None:  # every row's error at once, before the rows are grouped
        errors = pl.Series(MULTIVARIATE, mv.errors(frame))
        cols.append(_Column(_MULTIVARIATE, errors, mv.profile.empty_like()))
    return cols


def _profile_chunk(
    columns: list[_Column],
    rows: np.ndarray | slice,
    groups: np.ndarray,
    n_groups: int,
    pool: ThreadPoolExecutor | None = None,
) -> list[WindowProfile]:
    """Profiles of ``n_groups`` groups: ``rows`` of the frame, ``groups`` their group (sorted).

    ``rows`` is an index array, or a slice when the frame is in group order.
    """
    idx = pl.Series(rows) if isinstance(rows, np.ndarray) else None

    def work(c: _Column) -> list[Profile]:
        if idx is not None:
            part = c.series.gather(idx)
        else:
            assert isinstance(rows, slice)
            part = c.series.slice(rows.start, groups.size)
        if type(c.empty) is NumericProfile:
            return _numeric_groups(part, groups, n_groups, c.empty)
        if type(c.empty) is CategoricalProfile:
            return _categorical_groups(part, groups, n_groups, c.empty)
        # a kind without a grouped path: one profile per group
        bounds = np.searchsorted(groups, np.arange(n_groups + 1))
        return [
            _profile_like(c.empty, part.slice(int(bounds[i]), int(bounds[i + 1] - bounds[i])))
            for i in range(n_groups)
        ]

    done = pool.map(work, columns) if pool is not None else map(work, columns)
    per_column = dict(zip([c.name for c in columns], done, strict=True))
    sizes = np.bincount(groups, minlength=n_groups)
    names = [c.name for c in columns if c.name not in (_LATENCY, _MULTIVARIATE)]
    latency = per_column.get(_LATENCY)
    errors = per_column.get(_MULTIVARIATE)
    out = []
    for i in range(n_groups):
        lat = latency[i] if latency is not None else None
        assert lat is None or isinstance(lat, NumericProfile)
        mv = errors[i] if errors is not None else None
        assert mv is None or isinstance(mv, NumericProfile)
        out.append(WindowProfile({n: per_column[n][i] for n in names}, lat, int(sizes[i]), mv))
    return out


def _profile_like(empty: Profile, series: pl.Series) -> Profile:
    if isinstance(empty, NumericProfile):
        return NumericProfile.from_series(
            series, edges=empty.edges, centre=empty.centre, alpha=empty.alpha, fine=empty.fine
        )
    return CategoricalProfile.from_series(series, categories=empty.categories)


def _numeric_groups(
    series: pl.Series, groups: np.ndarray, n_groups: int, empty: NumericProfile
) -> list[Profile]:
    """:meth:`NumericProfile.from_series` of every group at once (equal profiles)."""
    null = series.is_null().to_numpy()
    x = series.cast(pl.Float64, strict=False).to_numpy()
    if x.dtype != np.float64:
        x = x.astype(np.float64)
    nulls = np.bincount(groups[null], minlength=n_groups)
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(x)
        nan = np.isnan(x) & ~null
        pos_inf = np.bincount(groups[x == np.inf], minlength=n_groups)
        neg_inf = np.bincount(groups[x == -np.inf], minlength=n_groups)
    nans = np.bincount(groups[nan], minlength=n_groups)
    xf, gf = x[finite], groups[finite]
    counts = np.bincount(gf, minlength=n_groups)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    nbins = empty.edges.size + 1
    bins = np.bincount(gf * nbins + bin_index(xf, empty.edges), minlength=n_groups * nbins).reshape(
        n_groups, nbins
    )
    sketches = grouped_sketches(xf, gf, n_groups, empty.alpha, centre=empty.centre)
    starts = bounds[:-1][counts > 0]
    some = np.flatnonzero(counts > 0)
    sums = np.zeros(n_groups)
    sums_sq = np.zeros(n_groups)
    mins = np.full(n_groups, math.inf)
    maxs = np.full(n_groups, -math.inf)
    if starts.size:
        # reduceat adds in order: exact enough for small groups (error below 1e-13
        # relative); larger ones are summed as profile_frame sums them (pairwise)
        sums[some] = np.add.reduceat(xf, starts)
        sums_sq[some] = np.add.reduceat(xf * xf, starts)
        mins[some] = np.minimum.reduceat(xf, starts)
        maxs[some] = np.maximum.reduceat(xf, starts)
        for i in np.flatnonzero(counts >= _ORDERED_SUM_MAX).tolist():
            v = xf[bounds[i] : bounds[i + 1]]
            sums[i] = float(v.sum())
            sums_sq[i] = sum_of_squares(v)
    edges, centre, alpha = empty.edges, empty.centre, empty.alpha
    cols = zip(
        counts.tolist(),
        nulls.tolist(),
        nans.tolist(),
        pos_inf.tolist(),
        neg_inf.tolist(),
        sums.tolist(),
        sums_sq.tolist(),
        mins.tolist(),
        maxs.tolist(),
        bins,
        sketches,
        strict=True,
    )
    out: list[Profile] = []
    for n, nl, nn, pi, ni, sm, sq, lo, hi, b, sk in cols:
        if n == 0:  # no finite value: the counts of the others only
            out.append(
                NumericProfile(edges, centre, alpha, nulls=nl, nans=nn, pos_inf=pi, neg_inf=ni)
            )
            continue
        out.append(
            NumericProfile(
                edges,
                centre,
                alpha,
                count=n,
                nulls=nl,
                nans=nn,
                pos_inf=pi,
                neg_inf=ni,
                sum=sm,
                sum_sq=sq,
                min=lo,
                max=hi,
                bins=b,
                sketch=sk,
            )
        )
    if empty.fine is not None:  # NannyML-compatible binning: each group's fine histogram
        fine = empty.fine
        out = [
            replace(p, fine=fine.add(xf[bounds[i] : bounds[i + 1]]))
            for i, p in enumerate(out)
            if isinstance(p, NumericProfile)
        ]
    return out


def _categorical_groups(
    series: pl.Series, groups: np.ndarray, n_groups: int, empty: CategoricalProfile
) -> list[Profile]:
    """:meth:`CategoricalProfile.from_series` of every group at once (equal profiles)."""
    if series.dtype != pl.String:
        series = series.cast(pl.String)
    categories = empty.categories
    k = len(categories)
    position = {c: i for i, c in enumerate(categories)}
    distinct = series.drop_nulls().unique().to_list()
    if distinct:
        code = (
            series.replace_strict(
                distinct, [position.get(v, k) for v in distinct], return_dtype=pl.Int64
            )
            .fill_null(k + 1)
            .to_numpy()
        )
    else:  # every value missing
        code = np.full(series.len(), k + 1, dtype=np.int64)
    width = k + 2
    counts = np.bincount(groups * width + code, minlength=n_groups * width).reshape(n_groups, width)
    return [
        CategoricalProfile(categories, counts[i, : k + 1].copy(), int(counts[i, k + 1]))
        for i in range(n_groups)
    ]

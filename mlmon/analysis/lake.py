"""``mlmon.Lake``: the lake readers plus drift and percentiles for any time window.

Everything here is recomputed from the lake alone by merging per-window
profiles; no raw data is needed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import numpy as np
import polars as pl

from mlmon.analysis.drift import drift_between, method
from mlmon.analysis.multivariate import multivariate_row
from mlmon.analysis.performance import calibration, estimate, labelled_rows, metric, realized
from mlmon.analysis.periods import period_expr
from mlmon.analysis.subgroups import subgroup_gap_rows
from mlmon.analysis.thresholds import Thresholds
from mlmon.errors import ConfigError, LakeError, UnknownNameError
from mlmon.lake.reader import LakeStore, _as_utc
from mlmon.lake.schema import TABLES
from mlmon.profiles.arrow import merge_rows
from mlmon.profiles.frame import Reference, parse_segment
from mlmon.profiles.kinds import SHOWN_MIN_COUNT, NumericProfile
from mlmon.profiles.multivariate import MULTIVARIATE
from mlmon.profiles.performance import PerformanceProfile, performance_from_row

__all__ = ["Lake"]

TimeArg = datetime | date | str | None

_DRIFT_SCHEMA: dict[str, Any] = {
    "period": pl.Datetime("us", "UTC"),
    "feature": pl.String,
    "method": pl.String,
    "value": pl.Float64,
    "threshold": pl.Float64,
    "drifted": pl.Boolean,
    "count": pl.Int64,
    "reference_id": pl.String,
    "statistic": pl.Float64,
    "dof": pl.Int64,
    "p_value": pl.Float64,
}
_MULTIVARIATE_SCHEMA: dict[str, Any] = {
    "period": pl.Datetime("us", "UTC"),
    "metric": pl.String,
    "value": pl.Float64,
    "lower": pl.Float64,
    "upper": pl.Float64,
    "alert": pl.Boolean,
    "count": pl.Int64,
    "std": pl.Float64,
    "reference_id": pl.String,
}
_PERF_SCHEMA: dict[str, Any] = {
    "period": pl.Datetime("us", "UTC"),
    "metric": pl.String,
    "realized": pl.Float64,
    "estimated": pl.Float64,
    "lower": pl.Float64,
    "upper": pl.Float64,
    "reference": pl.Float64,
    "count_labelled": pl.Int64,
    "count_total": pl.Int64,
    "alert": pl.Boolean,
    "estimated_labelled": pl.Float64,
    "calibration_changed": pl.Boolean,
    "reference_id": pl.String,
}
#: Metrics shown by default per task (``metrics=None``).
DEFAULT_METRICS = {
    "binary": ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "brier"),
    "multiclass": ("accuracy", "precision", "recall", "f1", "roc_auc"),
    "regression": ("mae", "rmse", "r2", "abs_error_p90"),
}
#: The ``source`` values of the ``latency`` table (``Lake.percentiles(source=...)``).
LATENCY_SOURCES = ("probe", "stream", "batch")
_PCT_SCHEMA: dict[str, Any] = {
    "period": pl.Datetime("us", "UTC"),
    "metric": pl.String,
    "quantile": pl.Float64,
    "value": pl.Float64,
    "count": pl.Int64,
}


_GAP_SCHEMA: dict[str, Any] = {
    "segment": pl.String,
    "metric": pl.String,
    "gap": pl.Float64,
    "lower": pl.Float64,
    "upper": pl.Float64,
    "high_segment": pl.String,
    "high_value": pl.Float64,
    "high_count": pl.Int64,
    "low_segment": pl.String,
    "low_value": pl.Float64,
    "low_count": pl.Int64,
    "segments": pl.Int64,
}


def _with_segment(schema: dict[str, Any]) -> dict[str, Any]:
    """A result schema with the ``segment`` column (``"scanner=GE"``) after ``period``."""
    out = dict(schema)
    items = list(out.items())
    return dict([items[0], ("segment", pl.String), *items[1:]])


def _rollup_ok(by: str | None) -> bool:
    """Day rollups serve any period of a day or longer."""
    return by in (None, "all", "day", "week", "month")


class Lake(LakeStore):
    """A metric lake opened for analysis.

    Parameters
    ----------
    uri
        ``file:///path``, a local path, or ``s3://bucket/prefix``.
    storage_options
        fsspec/s3fs options (endpoint, credentials).

    Examples
    --------
    >>> lake = Lake("file:///tmp/lake")  # doctest: +SKIP
    >>> lake.drift("risk", "2026-10-01", "2026-11-01", by="week")  # doctest: +SKIP
    """

    def known_models(self) -> list[str]:
        """Models with data in any table of the lake (profiles, latency, golden, references, ...)."""
        return sorted({m for t in TABLES for m in self.models(t)})

    def require_model(self, model: str) -> None:
        """Raise unless ``model`` has data somewhere in the lake.

        Raises
        ------
        UnknownNameError
            The lake holds other models (named in the message) but not this one.
        LakeError
            The lake holds no model at all (a wrong lake URI is the likely cause).
        """
        known = self.known_models()
        if model in known:
            return
        if not known:
            raise LakeError(
                f"model {model!r}: the lake {self.uri} holds no data for any model (no "
                f"v1/<table>/model=... folders); check the lake URI (--lake or MLMON_LAKE)"
            )
        raise UnknownNameError(
            f"model {model!r} is not in the lake {self.uri}; expected one of: "
            f"{', '.join(known)}; check the model name (names are case-sensitive)"
        )

    def _check_range(self, start: TimeArg, end: TimeArg) -> None:
        lo, hi = _as_utc(start, "start"), _as_utc(end, "end")
        if lo is not None and hi is not None and lo >= hi:
            raise ConfigError(
                f"start {lo.isoformat()} is not before end {hi.isoformat()} (end is exclusive); "
                "swap them, or for one day give e.g. start 2026-10-01 and end 2026-10-02"
            )

    def _profiles(
        self,
        model: str,
        start: TimeArg,
        end: TimeArg,
        version: str | None,
        features: Any = None,
        by: str | None = None,
        segment: str | None = None,
    ) -> pl.DataFrame:
        if segment is not None:
            return self._segment_rows(model, start, end, version, features, by, segment)
        lf = self.scan("profiles", model=model, start=start, end=end, rollup=_rollup_ok(by))
        if version is not None:
            lf = lf.filter(pl.col("model_version") == version)
        if features is not None:
            lf = lf.filter(pl.col("feature").is_in(list(features)))
        try:
            return lf.collect()
        except Exception:  # a corrupt object: read() names it in a warning and skips it
            rows = self.read("profiles", model=model, start=start, end=end)
            if version is not None:
                rows = rows.filter(pl.col("model_version") == version)
            if features is not None:
                rows = rows.filter(pl.col("feature").is_in(list(features)))
            return rows

    def _segment_rows(
        self,
        model: str,
        start: TimeArg,
        end: TimeArg,
        version: str | None,
        features: Any,
        by: str | None,
        segment: str,
        table_name: str = "segment_profiles",
    ) -> pl.DataFrame:
        """Rows of one segment column (or one segment), with ``segment`` = ``"name=value"``.

        A lake written before segments existed has no such table: no rows.
        """
        name, value = parse_segment(segment)
        rollup = _rollup_ok(by) and table_name == "segment_profiles"
        lf = self.scan(table_name, model=model, start=start, end=end, rollup=rollup)
        lf = lf.filter(pl.col("segment") == name)
        if value is not None:
            lf = lf.filter(pl.col("segment_value") == value)
        if version is not None:
            lf = lf.filter(pl.col("model_version") == version)
        if features is not None:
            lf = lf.filter(pl.col("feature").is_in(list(features)))
        rows = lf.collect()
        return rows.with_columns(
            (pl.col("segment") + "=" + pl.col("segment_value")).alias("segment")
        ).drop("segment_value")

    def segments(self, model: str, start: TimeArg = None, end: TimeArg = None) -> pl.DataFrame:
        """The segments with records in [start, end): segment (``"scanner=GE"``) and rows.

        ``rows`` is exact; where it is shown, fold segments below
        :data:`~mlmon.profiles.kinds.SHOWN_MIN_COUNT` (the report does).
        """
        lf = self.scan("segment_profiles", model=model, start=start, end=end)
        rows = lf.collect()
        schema = {"segment": pl.String, "rows": pl.Int64}
        if rows.height == 0:
            return pl.DataFrame(schema=schema)
        first = pl.col("feature") == pl.col("feature").min().over(
            "segment", "segment_value", "window_start", "collector_id"
        )
        return (
            rows.filter(first)
            .group_by("segment", "segment_value")
            .agg(pl.col("rows").fill_null(0).sum())
            .select((pl.col("segment") + "=" + pl.col("segment_value")).alias("segment"), "rows")
            .sort("segment")
            .cast(schema)  # type: ignore[arg-type]
        )

    def drift(
        self,
        model: str,
        start: TimeArg = None,
        end: TimeArg = None,
        *,
        by: str | None = "day",
        version: str | None = None,
        methods: list[str] | tuple[str, ...] | None = None,
        thresholds: Thresholds | Mapping[str, Any] | None = None,
        features: list[str] | None = None,
        segment: str | None = None,
        details: bool = True,
    ) -> pl.DataFrame:
        """Drift of each period against the reference, from merged window profiles.

        Parameters
        ----------
        model
            Model name (the ``model=`` partition).
        start, end
            UTC bounds of ``window_start``, [start, end); ISO strings allowed.
        by
            ``"hour"``, ``"day"``, ``"week"``, ``"month"`` or ``"all"``/``None``.
        version
            Only windows whose records reported this model version.
        methods
            Method ids (default: every registered method that applies).
        thresholds
            Per method and per feature, e.g. ``{"psi": 0.2, "age": {"js": 0.1}}``
            (or a :class:`~mlmon.analysis.thresholds.Thresholds`). They override the
            data-driven thresholds stored with the reference, which override the
            methods' defaults.
        segment
            A segment column (``"scanner"``: rows per segment value) or one segment
            (``"scanner=GE"``): each segment's merged profiles against the reference's
            profile of the same segment (the overall one for a segment the reference
            did not see). The result then has a ``segment`` column after ``period``.
        details
            False: ``statistic``, ``dof`` and ``p_value`` are left null (the KS p-value
            costs more than every method's value together); the other columns are the same.

        Returns
        -------
        polars.DataFrame
            period, feature, method, value, threshold, drifted, count, reference_id,
            statistic (chi-square statistic, KS ``D``, raw Wasserstein-1 in the
            feature's units), dof (chi-square), p_value (chi-square, KS); empty for
            a model of the lake with no windows in [start, end).

        Raises
        ------
        UnknownNameError
            ``model`` has no data in the lake; the message names the models that do;
            or a threshold names an unknown method or feature.
        ConfigError
            ``start`` is not before ``end``, or a threshold is not a number in the
            method's range or names a method that does not apply to the feature.
        """
        for m in methods or ():
            method(m)
        th = Thresholds.parse(thresholds)
        self._check_range(start, end)
        schema = _DRIFT_SCHEMA if segment is None else _with_segment(_DRIFT_SCHEMA)
        rows = self._profiles(model, start, end, version, features, by, segment)
        if rows.height == 0:
            self.require_model(model)  # a known model with no data in the range: empty
            return pl.DataFrame(schema=schema)
        rows = rows.with_columns(period_expr(by))
        if segment is None:
            rows = rows.with_columns(pl.lit(None, pl.String).alias("segment"))
        merged = merge_rows(rows, ["period", "segment", "reference_id", "feature"])
        refs: dict[str, Reference] = {}
        out: list[dict[str, Any]] = []
        for (period, seg, ref_id, feature), current in merged:
            if ref_id not in refs:
                refs[ref_id] = self.reference(ref_id, model=model)
                if th.features:
                    th.check_features(refs[ref_id])
            ref = refs[ref_id]
            ref_profile = ref.segment_profiles.get(seg or "", {}).get(feature)
            if ref_profile is None or not ref_profile.count:
                ref_profile = ref.profiles.get(feature)
            if ref_profile is None:
                continue
            per = th.for_feature(feature, ref.drift_thresholds.get(feature))
            for r in drift_between(ref_profile, current, methods, per, details=details):
                out.append(
                    {
                        "period": period,
                        "segment": seg,
                        "feature": feature,
                        **r,
                        "count": current.count,
                        "reference_id": ref_id,
                    }
                )
        keys = (
            ["period", "feature", "method"]
            if segment is None
            else ["period", "segment", "feature", "method"]
        )
        return pl.DataFrame(out, schema=schema).sort(keys)

    def multivariate_drift(
        self,
        model: str,
        start: TimeArg = None,
        end: TimeArg = None,
        *,
        by: str | None = "day",
        version: str | None = None,
    ) -> pl.DataFrame:
        """Multivariate drift per period: the mean PCA reconstruction error against the reference band.

        Needs a reference built with ``multivariate=True`` (``mlmon reference build
        --multivariate``); periods profiled against references without one have no row.
        The mean is exact: the merged error profiles' ``sum / count``. The band was
        drawn from reference chunks of ``rows / multivariate_chunks`` records: periods
        much smaller than that vary more and cross it more often by chance.

        Returns
        -------
        polars.DataFrame
            period, metric (``"multivariate: reconstruction error"``), value (mean
            error), lower, upper (the reference band), alert (value outside it),
            count (records), std (of the records' errors), reference_id.

        Raises
        ------
        UnknownNameError
            ``model`` has no data in the lake.
        ConfigError
            ``start`` is not before ``end``.
        """
        self._check_range(start, end)
        rows = self._profiles(model, start, end, version, [MULTIVARIATE], by)
        if rows.height == 0:
            self.require_model(model)
            return pl.DataFrame(schema=_MULTIVARIATE_SCHEMA)
        merged = merge_rows(rows.with_columns(period_expr(by)), ["period", "reference_id"])
        refs: dict[str, Reference] = {}
        out: list[dict[str, Any]] = []
        for (period, ref_id), errors in merged:
            if ref_id not in refs:
                refs[ref_id] = self.reference(ref_id, model=model)
            mv = refs[ref_id].multivariate
            if mv is None or not isinstance(errors, NumericProfile):
                continue
            out.append({"period": period, **multivariate_row(mv, errors), "reference_id": ref_id})
        return pl.DataFrame(out, schema=_MULTIVARIATE_SCHEMA).sort("period", "reference_id")

    def merged_profiles(
        self,
        model: str,
        start: TimeArg = None,
        end: TimeArg = None,
        *,
        by: str | None = "all",
        version: str | None = None,
        features: list[str] | None = None,
    ) -> list[tuple[datetime, str, str, Any]]:
        """Window profiles merged per period: ``(period, reference_id, feature, profile)``."""
        rows = self._profiles(model, start, end, version, features, by)
        if rows.height == 0:
            return []
        merged = merge_rows(
            rows.with_columns(period_expr(by)), ["period", "reference_id", "feature"]
        )
        return [(p, r, f, prof) for (p, r, f), prof in merged]

    def data_quality(
        self, model: str, start: TimeArg = None, end: TimeArg = None, *, version: str | None = None
    ) -> pl.DataFrame:
        """Per feature over the period: values, nulls, NaN/inf, null rate, mean and std (numeric).

        The reconstruction errors of multivariate drift are no feature: see
        :meth:`multivariate_drift`.
        """
        out = []
        for _, _, feature, prof in self.merged_profiles(
            model, start, end, by="all", version=version
        ):
            if feature == MULTIVARIATE:
                continue
            total = prof.total
            bad = (
                getattr(prof, "nans", 0) + getattr(prof, "pos_inf", 0) + getattr(prof, "neg_inf", 0)
            )
            out.append(
                {
                    "feature": feature,
                    "kind": prof.kind,
                    "count": prof.count,
                    "nulls": prof.nulls,
                    "non_finite": bad,
                    "null_rate": (prof.nulls + bad) / total if total else math.nan,
                    "mean": prof.mean if isinstance(prof, NumericProfile) else None,
                    "std": prof.std if isinstance(prof, NumericProfile) else None,
                }
            )
        schema = {"feature": pl.String, "kind": pl.String, "count": pl.Int64, "nulls": pl.Int64,
                  "non_finite": pl.Int64, "null_rate": pl.Float64, "mean": pl.Float64, "std": pl.Float64}  # fmt: skip
        return pl.DataFrame(out, schema=schema).sort("feature")

    def percentiles(
        self,
        metric: str = "latency_ms",
        q: tuple[float, ...] | list[float] = (0.5, 0.95, 0.99),
        *,
        model: str,
        start: TimeArg = None,
        end: TimeArg = None,
        by: str | None = "day",
        version: str | None = None,
        source: str | None = None,
        segment: str | None = None,
    ) -> pl.DataFrame:
        """Percentiles of a latency metric or a numeric feature from merged sketches.

        ``metric`` is looked up in the ``latency`` table first (e.g. ``latency_ms``),
        then among the features in ``profiles``. Values are within the sketch's
        relative accuracy (1% by default) of numpy's ``method="lower"`` quantiles
        (relative to the distance from the reference median for centred features).

        Parameters
        ----------
        source
            Only latencies from this source: ``"probe"`` (the edge's golden probes),
            ``"stream"`` (latencies logged with the inference records) or ``"batch"``
            (``mlmon profile``); ``None`` (default) merges every source.
        segment
            Percentiles of a numeric feature per segment (``"scanner"``) or in one
            (``"scanner=GE"``); the result then has a ``segment`` column. Latencies
            are not kept per segment.

        Returns
        -------
        polars.DataFrame
            period, metric, quantile, value, count.

        Raises
        ------
        UnknownNameError
            ``model`` has no data in the lake; the message names the models that do.
        ConfigError
            An unknown ``source``, or ``start`` not before ``end``.
        """
        if source is not None and source not in LATENCY_SOURCES:
            raise ConfigError(
                f"latency source {source!r} is unknown; expected one of "
                f"{', '.join(LATENCY_SOURCES)} (or None for all of them)"
            )
        self._check_range(start, end)
        qs = np.asarray(q, dtype=np.float64)
        if segment is not None:
            return self._segment_percentiles(metric, qs, model, start, end, by, version, segment)
        lat = self.scan("latency", model=model, start=start, end=end, rollup=_rollup_ok(by)).filter(
            pl.col("feature") == metric
        )
        if source is not None:
            lat = lat.filter(pl.col("source") == source)
        if version is not None:
            lat = lat.filter(pl.col("model_version") == version)
        rows = lat.collect()
        if rows.height == 0 and source is None:
            rows = self._profiles(model, start, end, version, [metric], by)
        if rows.height == 0:
            self.require_model(model)
            if metric not in self._known_metrics(model):
                raise LakeError(
                    f"no metric or numeric feature {metric!r} for model {model!r} in {self.uri}; "
                    f"known: {', '.join(sorted(self._known_metrics(model))) or '(none)'}"
                )
            return pl.DataFrame(schema=_PCT_SCHEMA)
        rows = rows.with_columns(period_expr(by))
        out: list[dict[str, Any]] = []
        for (period,), prof in merge_rows(rows, ["period"]):
            if not isinstance(prof, NumericProfile):
                raise LakeError(f"{metric!r} is categorical; percentiles need a numeric metric")
            values = prof.quantiles(qs) if prof.count else np.full(qs.shape, math.nan)
            for qi, v in zip(qs, values, strict=True):
                out.append(
                    {
                        "period": period,
                        "metric": metric,
                        "quantile": float(qi),
                        "value": float(v),
                        "count": prof.count,
                    }
                )
        return pl.DataFrame(out, schema=_PCT_SCHEMA).sort("period", "quantile")

    def _segment_percentiles(
        self,
        metric: str,
        qs: np.ndarray,
        model: str,
        start: TimeArg,
        end: TimeArg,
        by: str | None,
        version: str | None,
        segment: str,
    ) -> pl.DataFrame:
        schema = _with_segment(_PCT_SCHEMA)
        rows = self._profiles(model, start, end, version, [metric], by, segment)
        if rows.height == 0:
            self.require_model(model)
            return pl.DataFrame(schema=schema)
        out: list[dict[str, Any]] = []
        for (period, seg), prof in merge_rows(
            rows.with_columns(period_expr(by)), ["period", "segment"]
        ):
            if not isinstance(prof, NumericProfile):
                raise LakeError(f"{metric!r} is categorical; percentiles need a numeric metric")
            values = prof.quantiles(qs) if prof.count else np.full(qs.shape, math.nan)
            for qi, v in zip(qs, values, strict=True):
                out.append({"period": period, "segment": seg, "metric": metric,
                            "quantile": float(qi), "value": float(v), "count": prof.count})  # fmt: skip
        return pl.DataFrame(out, schema=schema).sort("period", "segment", "quantile")

    def _known_metrics(self, model: str) -> set[str]:
        names: set[str] = set()
        for t in ("latency", "references"):
            try:
                names |= set(
                    self.read(t, model=model, columns=["feature"]).get_column("feature").to_list()
                )
            except LakeError:
                continue
        return names

    # -- performance -------------------------------------------------------------------
    def _performance_rows(
        self,
        model: str,
        start: TimeArg,
        end: TimeArg,
        version: str | None,
        segment: str | None = None,
    ) -> pl.DataFrame:
        if segment is not None:
            rows = self._segment_rows(
                model, start, end, version, None, None, segment, "segment_performance"
            )
            return rows.filter(pl.col("role") != "reference")
        lf = self.scan("performance", model=model, start=start, end=end).filter(
            pl.col("role") != "reference"
        )
        if version is not None:
            lf = lf.filter(pl.col("model_version") == version)
        return lf.collect().with_columns(pl.lit(None, pl.String).alias("segment"))

    def segment_performance_references(
        self, model: str, reference_id: str
    ) -> dict[str, PerformanceProfile]:
        """The reference's labelled performance profiles of the segments calibrated on their
        own labels (``"scanner=GE"`` -> profile); empty when none were written."""
        rows = (
            self.scan("segment_performance", model=model)
            .filter((pl.col("role") == "reference") & (pl.col("reference_id") == reference_id))
            .collect()
        )
        return {
            f"{r['segment']}={r['segment_value']}": performance_from_row(r)
            for r in rows.iter_rows(named=True)
        }

    def performance_reference(self, model: str, reference_id: str) -> PerformanceProfile | None:
        """The reference's labelled performance profile (calibration and baseline), if written."""
        rows = (
            self.scan("performance", model=model)
            .filter((pl.col("role") == "reference") & (pl.col("reference_id") == reference_id))
            .collect()
        )
        if rows.height == 0:
            return None
        return performance_from_row(rows.row(0, named=True))

    def merged_performance(
        self,
        model: str,
        start: TimeArg = None,
        end: TimeArg = None,
        *,
        by: str | None = "all",
        version: str | None = None,
    ) -> list[tuple[datetime, str, PerformanceProfile]]:
        """Performance profiles merged per period: ``(period, reference_id, profile)``."""
        return [
            (p, ref, prof)
            for p, _, ref, prof in self._merged_performance(model, start, end, by, version, None)
        ]

    def _merged_performance(
        self,
        model: str,
        start: TimeArg,
        end: TimeArg,
        by: str | None,
        version: str | None,
        segment: str | None,
    ) -> list[tuple[datetime, str | None, str, PerformanceProfile]]:
        """``(period, segment, reference_id, profile)``; segment None for the overall rows."""
        rows = self._performance_rows(model, start, end, version, segment)
        if rows.height == 0:
            return []
        rows = rows.with_columns(period_expr(by)).sort("period", "segment", "reference_id")
        merged: dict[tuple[datetime, str | None, str], PerformanceProfile] = {}
        for r in rows.iter_rows(named=True):
            key = (r["period"], r["segment"], r["reference_id"])
            prof = performance_from_row(r)
            merged[key] = merged[key].merge(prof) if key in merged else prof
        return [(p, seg, ref, prof) for (p, seg, ref), prof in merged.items()]

    def subgroup_gaps(
        self,
        model: str,
        start: TimeArg = None,
        end: TimeArg = None,
        *,
        segment: str,
        version: str | None = None,
        min_count: int = SHOWN_MIN_COUNT,
    ) -> pl.DataFrame:
        """The largest difference across segments in recall, false-positive rate and precision.

        From the labelled rows of the ``segment_performance`` table over [start, end)
        (binary classifiers), with Newcombe's 95% score interval of each difference
        (see :mod:`mlmon.analysis.subgroups` for the method and what it assumes).
        Segments whose denominator is below ``min_count`` take no part.

        Parameters
        ----------
        segment
            The segment column, e.g. ``"scanner"``.

        Returns
        -------
        polars.DataFrame
            segment (the column), metric, gap, lower, upper, high_segment, high_value,
            high_count, low_segment, low_value, low_count, segments.

        Raises
        ------
        ConfigError
            ``segment`` names one segment (``scanner=GE``): a gap needs the column.
        """
        name, value = parse_segment(segment)
        if value is not None:
            raise ConfigError(
                f"segment {segment!r}: subgroup gaps compare the segments of one column; "
                f"give the column alone (e.g. {name!r})"
            )
        self._check_range(start, end)
        parts = self._merged_performance(model, start, end, None, version, name)
        if not parts:
            self.require_model(model)
            return pl.DataFrame(schema=_GAP_SCHEMA)
        merged: dict[str, PerformanceProfile] = {}
        for _, seg, _, prof in parts:
            key = str(seg)
            merged[key] = merged[key].merge(prof) if key in merged else prof
        rows = [{"segment": name, **r} for r in subgroup_gap_rows(merged, min_count=min_count)]
        return pl.DataFrame(rows, schema=_GAP_SCHEMA)

    def performance(
        self,
        model: str,
        start: TimeArg = None,
        end: TimeArg = None,
        *,
        by: str | None = "week",
        metrics: list[str] | tuple[str, ...] | None = None,
        version: str | None = None,
        tolerances: dict[str, float] | None = None,
        min_labels: int = 100,
        segment: str | None = None,
    ) -> pl.DataFrame:
        """Realized and estimated performance per period, from merged performance profiles.

        Parameters
        ----------
        model, start, end, by, version
            As for :meth:`drift`; periods are of *prediction* time.
        metrics
            Metric names (default: a task's usual ones, see ``DEFAULT_METRICS``).
        tolerances
            Per-metric alert tolerances overriding the defaults of
            :data:`mlmon.analysis.performance.METRICS`.
        min_labels
            Below this many labelled rows a period's alert uses the estimate.
        segment
            Per segment (``"scanner"``) or for one (``"scanner=GE"``), from the
            ``segment_performance`` table; the result then has a ``segment`` column,
            and a ``calibration`` column: ``segment`` where the reference had labels
            enough in that segment to calibrate on (its own calibration for the
            estimate, its own baseline for ``reference``), else ``overall``
            (``Reference.segment_performance``, docs/segments.md).

        Returns
        -------
        polars.DataFrame
            period, metric, realized, estimated, lower, upper (the estimate's
            95% band), reference (the metric on the reference), count_labelled,
            count_total, alert, estimated_labelled (the estimate for exactly the
            labelled rows), calibration_changed (the realized value is outside
            that estimate's band: the calibration learned on the reference no
            longer holds), reference_id. Estimates exist for binary and
            multiclass classifiers whose reference was built with labels and
            scores (multiclass: one probability column per class); threshold
            metrics use the model's logged decisions where the records had them.
        """
        for m in metrics or ():
            metric(m)
        self._check_range(start, end)
        out: list[dict[str, Any]] = []
        refs: dict[str, Any] = {}
        seg_refs: dict[str, dict[str, Any]] = {}
        for period, seg, ref_id, prof in self._merged_performance(
            model, start, end, by, version, segment
        ):
            if ref_id not in refs:
                ref = self.performance_reference(model, ref_id)
                refs[ref_id] = (
                    ref,
                    calibration(ref) if ref else None,
                    realized(ref) if ref else {},
                )
                if segment is not None:
                    seg_refs[ref_id] = {
                        key: (calibration(p), realized(p))
                        for key, p in self.segment_performance_references(model, ref_id).items()
                    }
            _, cal, ref_values = refs[ref_id]
            cal_source = "overall"
            if seg is not None and seg in seg_refs.get(ref_id, {}):
                # the segment's own calibration and baseline (enough labels in the reference)
                cal, ref_values = seg_refs[ref_id][seg]
                cal_source = "segment"
            real = realized(prof)
            est = estimate(prof, cal) if cal is not None else {}
            on_labelled = (
                estimate(labelled_rows(prof), cal)
                if cal is not None and prof.count_labelled
                else {}
            )
            for name in metrics or DEFAULT_METRICS[prof.spec.task]:
                value = real.get(name, math.nan)
                e, lo, hi = est.get(name, (math.nan, math.nan, math.nan))
                el, llo, lhi = on_labelled.get(name, (math.nan, math.nan, math.nan))
                basis = value if prof.count_labelled >= min_labels else e
                reference = ref_values.get(name, math.nan)
                tol = (tolerances or {}).get(name)
                out.append(
                    {
                        "period": period,
                        "segment": seg,
                        "metric": name,
                        "realized": value,
                        "estimated": e,
                        "lower": lo,
                        "upper": hi,
                        "reference": reference,
                        "count_labelled": prof.count_labelled,
                        "count_total": prof.count_total,
                        "alert": metric(name).alert(basis, reference, tol, (hi - lo) / 2),
                        "estimated_labelled": el,
                        "calibration_changed": bool(
                            math.isfinite(value) and math.isfinite(llo) and not llo <= value <= lhi
                        ),
                        "reference_id": ref_id,
                        **({"calibration": cal_source} if segment is not None else {}),
                    }
                )
        if not out:
            self.require_model(model)
        if segment is not None:
            schema = {**_with_segment(_PERF_SCHEMA), "calibration": pl.String}
            return pl.DataFrame(out, schema=schema).sort("period", "segment", "metric")
        return pl.DataFrame(out, schema=_PERF_SCHEMA).sort("period", "metric")

    def calibration_curve(
        self,
        model: str,
        start: TimeArg = None,
        end: TimeArg = None,
        *,
        version: str | None = None,
    ) -> pl.DataFrame:
        """Binary calibration curve of the period's labelled rows and of the reference.

        Returns
        -------
        polars.DataFrame
            source (``period`` or ``reference``), bin, mean_score, positive_rate, count;
            bins without labelled rows are left out.
        """
        out: list[dict[str, Any]] = []
        parts = self.merged_performance(model, start, end, by="all", version=version)
        for _, ref_id, prof in parts:
            if prof.spec.task != "binary":
                continue
            ref = self.performance_reference(model, ref_id)
            for source, p in (("period", prof), ("reference", ref)):
                if p is None:
                    continue
                pos, tot = p.hist[1, 0], p.hist[:, 0].sum(axis=0)
                for b in np.flatnonzero(tot):
                    out.append(
                        {
                            "source": source,
                            "bin": int(b),
                            "mean_score": float(p.score_sum[0, b] / tot[b]),
                            "positive_rate": float(pos[b] / tot[b]),
                            "count": int(tot[b]),
                        }
                    )
        schema = {"source": pl.String, "bin": pl.Int64, "mean_score": pl.Float64,
                  "positive_rate": pl.Float64, "count": pl.Int64}  # fmt: skip
        return pl.DataFrame(out, schema=schema)

"""Everything a monitoring report shows, as plain frozen values.

The analysis side (a papermill notebook on the metric lake) fills a
:class:`ReportContext`; the renderer (:mod:`mlmon.reports.render`) only
formats it, so the figures printed are exactly the figures computed. The two
run in different processes: :func:`save` writes a folder (``context.json``
plus one Parquet file per frame) and :func:`load` reads it back unchanged.

Shape::

    ReportContext            title, period, comparison period, provenance
    ├── models: [ModelSection]   one per model, status green/amber/red (grey: no data)
    │   ├── frames (polars)      versions, volume, null_rates, drift, drift_over_time,
    │   │                        latency, golden, golden_errors, alerts, performance,
    │   │                        calibration, label_batches, drift_windows
    │   └── distributions: [Distribution]   reference vs current shares of a feature
    ├── methods: [MethodInfo]    the drift methods, thresholds and what they mean
    └── data_handling: [str]     what was and was not collected

Every frame may be empty (zero rows, even zero columns): the section then
gets an empty frame with the documented columns (:data:`FRAME_COLUMNS`). A
non-empty frame must have at least those columns (extra columns are kept).
Datetime columns must be UTC-aware (``pl.Datetime(time_zone="UTC")``);
``pl.Date`` is accepted for ``period``.

:func:`collect` fills a context from a lake with the current analysis API;
:func:`period_bounds` parses ``--period`` values.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import polars as pl

from mlmon.errors import ConfigError, LakeError, SchemaError, TimestampError
from mlmon.lake.schema import LABELS_UNJOINED
from mlmon.profiles.kinds import SHOWN_MIN_COUNT

if TYPE_CHECKING:
    from mlmon.analysis.lake import Lake

__all__ = [
    "DEFAULT_DATA_HANDLING",
    "FRAME_COLUMNS",
    "METHOD_NAMES",
    "RULE_NAMES",
    "STATUS_ORDER",
    "Distribution",
    "MethodInfo",
    "ModelSection",
    "ReportContext",
    "collect",
    "day_version_counts",
    "load",
    "method_name",
    "methods_from_registry",
    "p_value_methods",
    "period_bounds",
    "rule_name",
    "save",
]

Status = Literal["green", "amber", "red", "grey"]

#: Worst-of order for :attr:`ReportContext.overall_status`; ``grey`` means "no data to judge".
STATUS_ORDER: dict[str, int] = {"grey": -1, "green": 0, "amber": 1, "red": 2}

_TS = pl.Datetime("us", "UTC")

#: The columns (and dtypes of an empty frame) of every frame of a :class:`ModelSection`.
FRAME_COLUMNS: dict[str, dict[str, pl.DataType]] = {
    "versions": {"version": pl.String(), "first_seen": _TS, "last_seen": _TS, "count": pl.Int64()},
    "volume": {"period": _TS, "count": pl.Int64()},
    "null_rates": {"feature": pl.String(), "null_rate": pl.Float64(), "count": pl.Int64()},
    "drift": {"feature": pl.String(), "method": pl.String(), "value": pl.Float64(),
              "threshold": pl.Float64(), "drifted": pl.Boolean(), "count": pl.Int64()},
    "drift_over_time": {"period": _TS, "feature": pl.String(), "method": pl.String(),
                        "value": pl.Float64(), "threshold": pl.Float64(), "drifted": pl.Boolean()},
    "latency": {"period": _TS, "p50": pl.Float64(), "p95": pl.Float64(), "p99": pl.Float64(),
                "count": pl.Int64()},
    "golden": {"period": _TS, "checks": pl.Int64(), "passed": pl.Int64(), "pass_rate": pl.Float64()},
    "golden_errors": {"error_kind": pl.String(), "count": pl.Int64()},
    "alerts": {"time": _TS, "severity": pl.String(), "rule": pl.String(), "feature": pl.String(),
               "message": pl.String()},
    "drift_windows": {"feature": pl.String(), "method": pl.String(), "windows": pl.Int64(),
                      "drifted_windows": pl.Int64(), "window_hours": pl.Float64(),
                      "threshold": pl.Float64()},
    "performance": {"period": _TS, "metric": pl.String(), "realized": pl.Float64(),
                    "estimated": pl.Float64(), "lower": pl.Float64(), "upper": pl.Float64(),
                    "count_labelled": pl.Int64(), "count_total": pl.Int64()},
    "calibration": {"source": pl.String(), "bin": pl.Int64(), "mean_score": pl.Float64(),
                    "positive_rate": pl.Float64(), "count": pl.Int64()},
    "label_batches": {"received_at": _TS, "records": pl.Int64(), "matched": pl.Int64(),
                      **{c: pl.Int64() for c in LABELS_UNJOINED}},
    "segments": {"segment": pl.String(), "records": pl.Int64(), "drifted_features": pl.String()},
    "subgroup_gaps": {"segment": pl.String(), "metric": pl.String(), "gap": pl.Float64(),
                      "lower": pl.Float64(), "upper": pl.Float64(), "high_segment": pl.String(),
                      "high_value": pl.Float64(), "low_segment": pl.String(),
                      "low_value": pl.Float64(), "segments": pl.Int64()},
}  # fmt: skip
#: Frames that may be None: no performance data (the section is left out), or no per-window
#: drift in the lake (``drift_windows``: the reconciliation sentences are left out).
OPTIONAL_FRAMES = ("performance", "calibration", "label_batches", "drift_windows", "segments",
                   "subgroup_gaps")  # fmt: skip

#: The data-handling statement printed when the analysis side gives none.
DEFAULT_DATA_HANDLING: tuple[str, ...] = (
    "Collected: per-window counts over the reference's bins, relative-error quantile sketches, "
    "exact counts of operator-chosen allow-listed categories (others counted together; "
    "counts under 5 are folded together wherever they are shown), null counts, latency "
    "sketches, golden-check outcomes, alert states and model version tags.",
    "Not collected: raw inputs, model outputs, request or patient identifiers (replaced by keyed "
    "HMACs where counting needs them), free text or images.",
    "Storage: Parquet objects in the customer's own bucket, written with put-only credentials and "
    "server-side KMS encryption; every figure in this report was recomputed from them.",
)

#: Plain names of the drift methods (long, short); the ids appear only in the appendix.
METHOD_NAMES: dict[str, tuple[str, str]] = {
    "psi": ("Population stability index", "PSI"),
    "jensen_shannon": ("Jensen-Shannon distance", "JS distance"),
    "hellinger": ("Hellinger distance", "Hellinger distance"),
    "chi_square": ("Chi-square test p-value", "chi-square p-value"),
    "ks": ("Kolmogorov-Smirnov statistic", "KS statistic"),
    "wasserstein": ("Wasserstein distance (in reference SDs)", "Wasserstein distance"),
}
#: Plain names of the alert rules (``drift:<method>`` rules are named after their method).
RULE_NAMES: dict[str, str] = {
    "golden_pass_rate": "Golden checks failing",
    "endpoint_unreachable": "Endpoint unreachable",
}


def method_name(method: str, short: bool = False) -> str:
    """A drift method's plain name: ``method_name("psi") == "Population stability index"``.

    Unknown ids (a third party's method) read as their id with spaces.
    """
    names = METHOD_NAMES.get(method)
    if names is None:
        return method.replace("_", " ")
    return names[1] if short else names[0]


def rule_name(rule: str | None) -> str:
    """An alert rule's plain name: ``rule_name("drift:psi") == "Drift (PSI)"``."""
    if not rule:
        return ""
    kind, _, arg = rule.partition(":")
    if kind == "drift" and arg:
        return f"Drift ({method_name(arg, short=True)})"
    if kind == "performance_estimate" and arg:
        return f"Estimated {arg.replace('_', ' ')} low"
    return RULE_NAMES.get(rule, rule.replace("_", " ").capitalize())


def p_value_methods() -> frozenset[str]:
    """Registered methods whose value is a p-value (direction ``below``).

    The report shows and highlights their flags as the API gives them, but does not
    count them when it says which features drifted: at thousands of values a test
    finds any difference significant.
    """
    from mlmon.analysis.drift import METHODS

    return frozenset(n for n, m in METHODS.items() if m.direction == "below")


_FORMAT = "mlmon.report_context"
_VERSION = 1


def _check_utc(value: datetime, where: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise TimestampError(
            f"{where} is {value!r}; expected a UTC-aware datetime, "
            "e.g. datetime(2026, 10, 1, tzinfo=UTC)"
        )
    return value.astimezone(UTC)


def _frame(df: pl.DataFrame | None, name: str, where: str) -> pl.DataFrame:
    """The frame with its documented columns; an empty frame gets them with their dtypes."""
    schema = FRAME_COLUMNS[name]
    if df is None or (df.height == 0 and not set(schema) <= set(df.columns)):
        return pl.DataFrame(schema=schema)
    if not isinstance(df, pl.DataFrame):
        raise SchemaError(f"{where}.{name} is a {type(df).__name__}; expected a polars DataFrame")
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise SchemaError(
            f"{where}.{name} lacks column(s) {', '.join(missing)}; "
            f"expected {', '.join(schema)}, got {', '.join(df.columns) or 'no columns'}"
        )
    for col, dtype in schema.items():
        got = df.schema[col]
        if (
            isinstance(dtype, pl.Datetime)
            and isinstance(got, pl.Datetime)
            and got.time_zone is None
        ):
            raise TimestampError(
                f"{where}.{name}.{col} is a naive datetime; expected UTC-aware "
                f'(e.g. .dt.replace_time_zone("UTC"))'
            )
    return df


@dataclass(frozen=True)
class MethodInfo:
    """A drift method as the appendix explains it.

    ``direction`` is ``"above"`` when a value above the threshold flags drift
    (distances) and ``"below"`` when a value below it does (p-values).
    """

    name: str
    kinds: tuple[str, ...]
    default_threshold: float
    direction: Literal["above", "below"]
    description: str

    def __post_init__(self) -> None:
        if self.direction not in ("above", "below"):
            raise SchemaError(
                f"method {self.name!r}: direction {self.direction!r} is not 'above' or 'below'"
            )
        object.__setattr__(self, "kinds", tuple(self.kinds))


@dataclass(frozen=True, eq=False)
class Distribution:
    """Reference versus current shares of one feature.

    ``frame`` has a ``label`` (str, categories or bin labels) or an ``x``
    (float, bin centres) column, then ``reference`` and ``current``, both
    fractions that sum to about 1. Rows are drawn in frame order.
    """

    feature: str
    kind: Literal["numeric", "categorical"]
    frame: pl.DataFrame

    def __post_init__(self) -> None:
        if self.kind not in ("numeric", "categorical"):
            raise SchemaError(
                f"distribution {self.feature!r}: kind {self.kind!r} is not numeric or categorical"
            )
        cols = self.frame.columns
        if not ({"reference", "current"} <= set(cols) and ("label" in cols or "x" in cols)):
            raise SchemaError(
                f"distribution {self.feature!r}: expected columns label (or x), reference, current; "
                f"got {', '.join(cols) or 'no columns'}"
            )

    @property
    def axis(self) -> str:
        """``"label"`` or ``"x"``: the column the bars are drawn over."""
        return "label" if "label" in self.frame.columns else "x"


def _empty(name: str) -> pl.DataFrame:
    return pl.DataFrame(schema=FRAME_COLUMNS[name])


@dataclass(frozen=True, eq=False)
class ModelSection:
    """One model's part of the report. Any frame may be empty; see :data:`FRAME_COLUMNS`.

    ``status`` is ``green``, ``amber`` or ``red`` (``grey``: no data to judge);
    ``status_reasons`` say why in plain words; ``notes`` explain missing parts
    ("No reference profile: drift not computed"). ``latency_overall`` has
    ``p50``/``p95``/``p99`` in ms (None when unknown), ``golden_overall``
    ``checks``/``passed``/``pass_rate``. ``performance`` is None when the
    model has no labels or estimates; the section is then left out.
    ``drift_windows`` (None when the lake has no per-window drift) counts, per feature, the
    edge's windows its alert methods flagged, beside the whole period's figure in ``drift``.
    ``alerts`` may carry ``window_start``, ``window_end`` (the window an alert covers) and
    ``state`` (firing, resolved) besides its documented columns.
    ``golden_overall`` without checks in the period may name the nearest days with checks
    outside it (``before``, ``after``: ISO dates).
    ``label_batches`` (None when no labels batch touched the period) counts what
    each labels batch matched and what did not join, and why.
    """

    model: str
    status: Status = "green"
    status_reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    versions: pl.DataFrame = field(default_factory=lambda: _empty("versions"))
    volume: pl.DataFrame = field(default_factory=lambda: _empty("volume"))
    null_rates: pl.DataFrame = field(default_factory=lambda: _empty("null_rates"))
    drift: pl.DataFrame = field(default_factory=lambda: _empty("drift"))
    drift_over_time: pl.DataFrame = field(default_factory=lambda: _empty("drift_over_time"))
    distributions: list[Distribution] = field(default_factory=list)
    latency: pl.DataFrame = field(default_factory=lambda: _empty("latency"))
    latency_overall: dict[str, float | None] = field(default_factory=dict)
    golden: pl.DataFrame = field(default_factory=lambda: _empty("golden"))
    golden_overall: dict[str, Any] = field(default_factory=dict)
    #: Multivariate drift over the whole period (``Lake.multivariate_drift(by="all")``):
    #: ``value`` (mean reconstruction error), ``lower``, ``upper``, ``alert``, ``count``;
    #: empty when the reference has no PCA.
    multivariate: dict[str, Any] = field(default_factory=dict)
    golden_errors: pl.DataFrame = field(default_factory=lambda: _empty("golden_errors"))
    alerts: pl.DataFrame = field(default_factory=lambda: _empty("alerts"))
    performance: pl.DataFrame | None = None
    calibration: pl.DataFrame | None = None
    label_batches: pl.DataFrame | None = None
    drift_windows: pl.DataFrame | None = None
    #: Per segment (``"scanner=GE"``, when the reference declares segment columns): its
    #: records and drifted features over the period; segments of fewer than
    #: :data:`SHOWN_MIN_COUNT` records are folded into one row per column (records null).
    segments: pl.DataFrame | None = None
    #: The largest recall, false-positive-rate and precision differences across segments.
    subgroup_gaps: pl.DataFrame | None = None

    def __post_init__(self) -> None:
        where = f"model {self.model!r}"
        if self.status not in STATUS_ORDER:
            raise SchemaError(
                f"{where}: status {self.status!r} is not one of {', '.join(STATUS_ORDER)}"
            )
        for name in FRAME_COLUMNS:
            value = getattr(self, name)
            if name in OPTIONAL_FRAMES and value is None:
                continue
            object.__setattr__(self, name, _frame(value, name, where))

    @property
    def frames(self) -> dict[str, pl.DataFrame | None]:
        """The section's frames by field name (``performance`` may be None)."""
        return {name: getattr(self, name) for name in FRAME_COLUMNS}

    @property
    def records(self) -> int:
        """Inference records profiled in the period (the sum of ``volume.count``)."""
        return int(self.volume["count"].sum() or 0) if self.volume.height else 0


@dataclass(frozen=True, eq=False)
class ReportContext:
    """Everything one report shows. Datetimes are UTC-aware; see the module docstring."""

    title: str
    period_start: datetime
    period_end: datetime
    generated_at: datetime
    lake_display: str
    mlmon_version: str
    models: list[ModelSection]
    methods: list[MethodInfo] = field(default_factory=list)
    data_handling: list[str] = field(default_factory=lambda: list(DEFAULT_DATA_HANDLING))
    comparison_start: datetime | None = None
    comparison_end: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("period_start", "period_end", "generated_at", "comparison_start",
                     "comparison_end"):  # fmt: skip
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _check_utc(value, f"ReportContext.{name}"))
        if (self.comparison_start is None) != (self.comparison_end is None):
            raise SchemaError(
                "ReportContext: give both comparison_start and comparison_end, or neither"
            )
        if self.period_end <= self.period_start:
            raise SchemaError(
                f"ReportContext: period_end {self.period_end} is not after "
                f"period_start {self.period_start}"
            )

    @property
    def overall_status(self) -> str:
        """The worst model status (red > amber > green); ``grey`` only if no model has data."""
        return max((m.status for m in self.models), key=STATUS_ORDER.__getitem__, default="grey")

    def save(self, folder: str | Path) -> Path:
        """Same as :func:`save`."""
        return save(self, folder)

    def _repr_html_(self) -> str:
        """A status table for Jupyter: model, status, records and why."""
        import html

        colours = {"green": "#2e7d32", "amber": "#ef8f00", "red": "#c62828", "grey": "#757575"}
        rows = "".join(
            f"<tr><td>{html.escape(m.model)}</td><td style='color:{colours.get(m.status, '#000')};font-weight:bold'>"
            f"{m.status.upper()}</td><td style='text-align:right'>{m.records:,}</td>"
            f"<td>{html.escape('; '.join(m.status_reasons))}</td></tr>"
            for m in self.models
        )
        return (
            f"<b>{html.escape(self.title)}</b> {self.period_start:%Y-%m-%d} to {self.period_end:%Y-%m-%d} UTC: "
            f"<b>{self.overall_status.upper()}</b><table><tr><th>model</th><th>status</th><th>records</th>"
            f"<th>why</th></tr>{rows}</table>"
        )

    @classmethod
    def load(cls, folder: str | Path) -> ReportContext:
        """Same as :func:`load`."""
        return load(folder)


def methods_from_registry(thresholds: Mapping[str, float] | None = None,
                          names: tuple[str, ...] | None = None) -> list[MethodInfo]:  # fmt: skip
    """:class:`MethodInfo` for the registered drift methods, with any threshold overrides."""
    from mlmon.analysis.drift import METHODS

    th = dict(thresholds or {})
    return [
        MethodInfo(n, m.kinds, th.get(n, m.default_threshold), m.direction, m.description)
        for n, m in METHODS.items()
        if names is None or n in names
    ]


# -- save / load -------------------------------------------------------------------------


def _iso(d: datetime | None) -> str | None:
    return None if d is None else d.isoformat()


def _from_iso(s: str | None) -> datetime | None:
    return None if s is None else datetime.fromisoformat(s)


def _clean(v: Any) -> Any:
    """NaN is not JSON: it is stored as null (None), which the renderer prints as "n/a"."""
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def save(ctx: ReportContext, folder: str | Path) -> Path:
    """Write ``ctx`` to ``folder``: ``context.json`` plus one Parquet file per frame.

    Parameters
    ----------
    ctx : ReportContext
    folder : str or Path
        Created if missing; files of an earlier context in it are overwritten.

    Returns
    -------
    Path
        The ``context.json`` file.

    Examples
    --------
    >>> import tempfile
    >>> from datetime import datetime, UTC
    >>> ctx = ReportContext("r", datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC),
    ...                     datetime(2026, 11, 1, tzinfo=UTC), "file:///lake", "0.1.0", [ModelSection("m")])
    >>> with tempfile.TemporaryDirectory() as d:
    ...     load(save(ctx, d).parent).models[0].model
    'm'
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    models = []
    for i, m in enumerate(ctx.models):
        frames: dict[str, str | None] = {}
        for name, df in m.frames.items():
            if df is None:
                frames[name] = None
                continue
            fname = f"m{i}_{name}.parquet"
            df.write_parquet(out / fname)
            frames[name] = fname
        dists = []
        for j, d in enumerate(m.distributions):
            fname = f"m{i}_distribution{j}.parquet"
            d.frame.write_parquet(out / fname)
            dists.append({"feature": d.feature, "kind": d.kind, "frame": fname})
        models.append(
            {
                "model": m.model,
                "status": m.status,
                "status_reasons": list(m.status_reasons),
                "notes": list(m.notes),
                "latency_overall": {k: _clean(v) for k, v in m.latency_overall.items()},
                "golden_overall": {k: _clean(v) for k, v in m.golden_overall.items()},
                "multivariate": {k: _clean(v) for k, v in m.multivariate.items()},
                "frames": frames,
                "distributions": dists,
            }
        )
    doc = {
        "format": _FORMAT,
        "version": _VERSION,
        "title": ctx.title,
        "period_start": _iso(ctx.period_start),
        "period_end": _iso(ctx.period_end),
        "comparison_start": _iso(ctx.comparison_start),
        "comparison_end": _iso(ctx.comparison_end),
        "generated_at": _iso(ctx.generated_at),
        "lake_display": ctx.lake_display,
        "mlmon_version": ctx.mlmon_version,
        "methods": [
            {
                "name": x.name,
                "kinds": list(x.kinds),
                "default_threshold": x.default_threshold,
                "direction": x.direction,
                "description": x.description,
            }
            for x in ctx.methods
        ],
        "data_handling": list(ctx.data_handling),
        "models": models,
    }
    path = out / "context.json"
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return path


def load(folder: str | Path) -> ReportContext:
    """Read a context written by :func:`save` (the folder, or its ``context.json``).

    Raises
    ------
    FileNotFoundError
        No ``context.json`` there.
    SchemaError
        The file is not a report context of a version this mlmon reads.
    """
    p = Path(folder)
    path = p if p.suffix == ".json" and p.is_file() else p / "context.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no report context here (expected context.json written by "
            "mlmon.reports.context.save)"
        )
    base = path.parent
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{path}: not a report context (invalid JSON: {exc})") from exc
    if doc.get("format") != _FORMAT or doc.get("version") != _VERSION:
        raise SchemaError(
            f"{path}: expected format {_FORMAT!r} version {_VERSION}, got "
            f"{doc.get('format')!r} version {doc.get('version')!r}; re-run the report notebook"
        )
    models = []
    for m in doc["models"]:
        frames: dict[str, Any] = {
            name: (None if fname is None else pl.read_parquet(base / fname))
            for name, fname in m["frames"].items()
        }
        dists = [
            Distribution(d["feature"], d["kind"], pl.read_parquet(base / d["frame"]))
            for d in m["distributions"]
        ]
        models.append(
            ModelSection(
                model=m["model"],
                status=m["status"],
                status_reasons=m["status_reasons"],
                notes=m["notes"],
                latency_overall=m["latency_overall"],
                golden_overall=m["golden_overall"],
                multivariate=m.get("multivariate") or {},
                distributions=dists,
                **frames,
            )
        )
    return ReportContext(
        title=doc["title"],
        period_start=_from_iso(doc["period_start"]),  # type: ignore[arg-type]
        period_end=_from_iso(doc["period_end"]),  # type: ignore[arg-type]
        comparison_start=_from_iso(doc["comparison_start"]),
        comparison_end=_from_iso(doc["comparison_end"]),
        generated_at=_from_iso(doc["generated_at"]),  # type: ignore[arg-type]
        lake_display=doc["lake_display"],
        mlmon_version=doc["mlmon_version"],
        models=models,
        methods=[
            MethodInfo(
                x["name"],
                tuple(x["kinds"]),
                x["default_threshold"],
                x["direction"],
                x["description"],
            )
            for x in doc["methods"]
        ],
        data_handling=doc["data_handling"],
    )


# -- filled from the lake (the analysis half; kept so `mlmon report` runs end to end) -----

#: The methods a report flags drift by (p-values are shown, not used for status).
REPORT_METHODS = ("psi", "jensen_shannon", "ks", "wasserstein", "chi_square")


def period_bounds(
    period: str | None, start: str | None, end: str | None
) -> tuple[datetime, datetime]:
    """``--period 2026-10`` (a month), ``2026-W43`` (an ISO week) or ``2026-10-05`` (a day), or start/end."""
    if period:
        try:
            if "-W" in period:
                y, w = period.split("-W")
                s = datetime.fromisocalendar(int(y), int(w), 1).replace(tzinfo=UTC)
                return s, s + timedelta(days=7)
            parts = [int(x) for x in period.split("-")]
            if len(parts) == 2:
                s = datetime(parts[0], parts[1], 1, tzinfo=UTC)
                e = datetime(parts[0] + (parts[1] == 12), parts[1] % 12 + 1, 1, tzinfo=UTC)
                return s, e
            if len(parts) == 3:
                s = datetime(parts[0], parts[1], parts[2], tzinfo=UTC)
                return s, s + timedelta(days=1)
        except ValueError as exc:
            raise ValueError(f"period {period!r} is not YYYY-MM, YYYY-Www or YYYY-MM-DD") from exc
        raise ValueError(f"period {period!r} is not YYYY-MM, YYYY-Www or YYYY-MM-DD")
    if not (start and end):
        raise ValueError("give --period, or both --start and --end")
    return _utc(start), _utc(end)


def _utc(text: str) -> datetime:
    d = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return d.replace(tzinfo=UTC) if d.tzinfo is None and len(text) == 10 else d.astimezone(UTC)


def _distribution(feature: str, ref: Any, cur: Any) -> Distribution:
    """Reference vs current fractions over the reference's bins (numeric) or categories.

    Categorical: a category counted fewer than :data:`SHOWN_MIN_COUNT` times in the
    period (or the reference) is shown inside ``__other__`` (small-count protection
    where counts are shown; the lake and the drift values use the exact counts).
    """
    if ref.kind == "categorical":
        ref, cur = ref.fold_rare(SHOWN_MIN_COUNT), cur.fold_rare(SHOWN_MIN_COUNT)
    rc, cc = ref.bins.astype(float), cur.bins.astype(float)
    rf = rc / rc.sum() if rc.sum() else rc
    cf = cc / cc.sum() if cc.sum() else cc
    if ref.kind == "categorical":
        labels = [str(x) for x in ref.labels]
    else:
        e = ref.edges
        labels = (
            [f"< {e[0]:.4g}"]
            + [f"{e[i]:.4g}–{e[i + 1]:.4g}" for i in range(len(e) - 1)]
            + [f"> {e[-1]:.4g}"]
        )
    frame = pl.DataFrame({"label": labels, "reference": rf.tolist(), "current": cf.tolist()})
    if ref.kind == "numeric" and ref.support is not None:
        frame = _discrete_distribution(ref.support, frame)
    return Distribution(feature, ref.kind, frame)


def _discrete_distribution(support: Any, frame: pl.DataFrame) -> pl.DataFrame:
    """A discrete feature's bins as one row per reference value (``= v``), plus the bins
    between and beyond the values only where either side has values there."""
    n = len(support)
    labels = [f"< {support[0]:.4g}"]
    for i in range(n):
        labels.append(f"= {support[i]:.4g}")
        if i + 1 < n:
            labels.append(f"{support[i]:.4g}–{support[i + 1]:.4g}")
    labels += [f"> {support[-1]:.4g}", f"> {support[-1]:.4g}"]
    point = [i % 2 == 1 and i < 2 * n for i in range(frame.height)]
    out = frame.with_columns(label=pl.Series(labels), point=pl.Series(point))
    out = out.filter(pl.col("point") | (pl.col("reference") > 0) | (pl.col("current") > 0))
    return out.group_by("label", maintain_order=True).agg(
        pl.col("reference").sum(), pl.col("current").sum()
    )


def _drifted(drift: pl.DataFrame) -> list[str]:
    distance = drift.filter(~pl.col("method").is_in(list(p_value_methods())))
    ranked = (
        distance.group_by("feature")
        .agg(pl.col("drifted").sum().alias("n"), pl.col("value").max().alias("v"))
        .filter(pl.col("n") > 0)
        .sort(["n", "v"], descending=True)
    )
    return ranked["feature"].to_list()


def window_counts(lake: Lake, model: str, start: datetime, end: datetime) -> pl.DataFrame:
    """Records per (UTC day, model version) in [start, end), from the window objects.

    One row per day and version: ``day``, ``version`` (null when not reported),
    ``first_seen`` (earliest window start), ``last_seen`` (latest window end) and ``count``
    (records: each window's row count once per collector and version). The section's
    volume, versions and records are sums of it. A reader that knows a faster way to the
    same figures (the server's, from day rollups) passes its own to :func:`collect`.
    """
    return day_version_counts(lake.scan("profiles", model=model, start=start, end=end)).collect()


def day_version_counts(profiles: pl.LazyFrame) -> pl.LazyFrame:
    """:func:`window_counts`'s figures from ``profiles`` rows (``window_start``,
    ``window_end``, ``collector_id``, ``model_version``, ``rows``): each window's row count
    once per collector and version, summed per UTC day and version."""
    return (
        profiles.group_by("window_start", "collector_id", "model_version")
        .agg(pl.col("rows").first(), pl.col("window_end").first())
        .group_by(pl.col("window_start").dt.truncate("1d").alias("day"), "model_version")
        .agg(
            pl.col("window_start").min().alias("first_seen"),
            pl.col("window_end").max().alias("last_seen"),
            pl.col("rows").sum().cast(pl.Int64).alias("count"),
        )
        .rename({"model_version": "version"})
    )


#: Parts of a section that :func:`collect` can leave empty (``skip=``): what an overview of
#: many models does not show. They do not change the status or its reasons.
#: ``drift_details``: drift's statistic, dof and p-value columns (null; the KS p-value costs
#: more than every method's value together). ``null_rates``: the data quality table.
DETAIL_PARTS = frozenset(
    {"drift_over_time", "drift_details", "distributions", "latency", "calibration", "drift_windows",
     "null_rates"}
)  # fmt: skip


def _section(
    lake: Lake,
    model: str,
    start: datetime,
    end: datetime,
    thresholds: dict[str, float],
    *,
    counts: Callable[[Lake, str, datetime, datetime], pl.DataFrame] = window_counts,
    skip: frozenset[str] = frozenset(),
) -> ModelSection:
    if model not in lake.models("profiles") and model not in lake.models("golden"):
        known = ", ".join(lake.models("profiles")) or "none"
        return ModelSection(
            model,
            status="grey",
            status_reasons=["no data for this model in the lake"],
            notes=[f"The lake has no data for model {model!r} (models with data: {known})."],
        )
    notes: list[str] = []
    dq = lake.data_quality(model, start, end) if "null_rates" not in skip else _empty("null_rates")
    per_day = (
        counts(lake, model, start, end)
        if model in lake.models("profiles")
        else pl.DataFrame(
            schema={"day": _TS, "version": pl.String, "first_seen": _TS, "last_seen": _TS,
                    "count": pl.Int64}
        )
    )  # fmt: skip
    volume = (
        per_day.group_by(pl.col("day").alias("period"))
        .agg(pl.col("count").sum().cast(pl.Int64))
        .sort("period")
    )
    versions = (
        per_day.group_by("version")
        .agg(
            pl.col("first_seen").min(),
            pl.col("last_seen").max(),
            pl.col("count").sum().cast(pl.Int64),
        )
        .with_columns(pl.col("version").fill_null("(not reported)"))
        .sort("first_seen")
    )
    records = int(volume["count"].sum()) if volume.height else 0
    if records == 0:
        notes.append("No inference records were profiled in this period.")
    drift = over_time = pl.DataFrame()
    try:
        details = "drift_details" not in skip
        drift = lake.drift(
            model,
            start,
            end,
            by="all",
            methods=list(REPORT_METHODS),
            thresholds=thresholds,
            details=details,
        )
        if "drift_over_time" not in skip:
            over_time = lake.drift(
                model,
                start,
                end,
                by="day",
                methods=list(REPORT_METHODS),
                thresholds=thresholds,
                details=details,
            )
    except LakeError as exc:
        notes.append(f"Drift was not computed: {exc}")
    multivariate: dict[str, Any] = {}
    try:
        mv = lake.multivariate_drift(model, start, end, by="all")
    except LakeError:
        mv = pl.DataFrame()
    if mv.height == 1:
        row = mv.row(0, named=True)
        multivariate = {k: row[k] for k in ("value", "lower", "upper", "alert", "count")}
    distributions: list[Distribution] = []
    drifted: list[str] = []
    if drift.height:
        drifted = _drifted(drift)
    if drift.height and "distributions" not in skip:
        distance = drift.filter(~pl.col("method").is_in(list(p_value_methods())))
        top = (
            drifted[:3]
            or (
                distance.sort("value", descending=True)["feature"]
                .unique(maintain_order=True)
                .head(2)
            ).to_list()
        )
        merged = {
            f: (r, p)
            for _, r, f, p in lake.merged_profiles(model, start, end, by="all", features=top)
        }
        for f in top:
            if f in merged:
                ref = lake.reference(merged[f][0], model=model).profiles[f]
                distributions.append(_distribution(f, ref, merged[f][1]))
        # the flags stay the API's own (a p-value below its threshold is flagged and
        # highlighted); p-values are not counted in the drifted features (see p_value_methods)
    if (
        not drift.height
        and records
        and not any(n.startswith("Drift was not computed") for n in notes)
    ):
        notes.append("No reference profile was found for this model: drift was not computed.")
    latency = pl.DataFrame()
    latency_overall: dict[str, float | None] = {}
    try:
        lat = lake.percentiles("latency_ms", (0.5, 0.95, 0.99), model=model, start=start, end=end,
                               by="all" if "latency" in skip else "day", source="stream")  # fmt: skip
    except LakeError:  # a model that records no latency (e.g. imaging sources)
        lat = pl.DataFrame()
    if lat.height and "latency" in skip:  # the whole range only
        latency_overall = dict(zip(["p50", "p95", "p99"], lat["value"].to_list(), strict=True))
    elif lat.height:
        latency = (
            lat.pivot("quantile", index="period", values="value")
            .sort("period")
            .join(lat.group_by("period").agg(pl.col("count").max()), on="period")
        )
        latency.columns = ["period", "p50", "p95", "p99", "count"]
        allp = lake.percentiles("latency_ms", (0.5, 0.95, 0.99), model=model, start=start,
                                end=end, by="all", source="stream")  # fmt: skip
        latency_overall = dict(zip(["p50", "p95", "p99"], allp["value"].to_list(), strict=True))
    golden = golden_errors = pl.DataFrame()
    golden_overall: dict[str, Any] = {}
    g_rows = lake.read("golden", model=model, start=start, end=end)
    if g_rows.height:
        golden = (
            g_rows.with_columns(pl.col("checked_at").dt.truncate("1d").alias("period"))
            .group_by("period")
            .agg(pl.len().cast(pl.Int64).alias("checks"),
                 pl.col("passed").sum().cast(pl.Int64).alias("passed"))
            .with_columns((pl.col("passed") / pl.col("checks")).alias("pass_rate"))
            .sort("period")
        )  # fmt: skip
        checks, passed = g_rows.height, int(g_rows["passed"].sum())
        golden_overall = {"checks": checks, "passed": passed, "pass_rate": passed / checks}
        golden_errors = (
            g_rows.filter(~pl.col("passed"))
            .group_by("error_kind")
            .agg(pl.len().cast(pl.Int64).alias("count"))
            .sort("count", descending=True)
        )
    else:
        golden_overall = _golden_outside(lake, model, start, end)
    a_rows = lake.read("alerts", model=model, start=start, end=end)
    alerts = _alerts(a_rows)
    drift_windows = (
        _drift_windows(lake, model, start, end, a_rows)
        if drift.height and "drift_windows" not in skip
        else None
    )
    status, reasons = _status(records, golden_overall, drifted, a_rows)
    if multivariate.get("alert") and status in ("green", "amber"):
        why = "the features together drifted (multivariate reconstruction error outside the reference band)"
        reasons = [why] if status == "green" else [*reasons, why]
        status = "amber"
    seg_parts = _segments(lake, model, start, end, thresholds)
    seg_drifted = (
        []
        if seg_parts["segments"] is None
        else [
            f"{r['segment']} ({r['drifted_features']})"
            for r in seg_parts["segments"].iter_rows(named=True)
            if r["drifted_features"] and r["records"] is not None
        ]
    )
    if seg_drifted:
        why = "drift in segment(s): " + "; ".join(seg_drifted)
        reasons = [why] if status == "green" else [*reasons, why]
        status = "amber" if status == "green" else status
    perf_reasons: list[str] = []
    perf_parts = _performance(
        lake, model, start, end, status_reasons=perf_reasons, calibration="calibration" not in skip
    )
    if perf_reasons:
        reasons = [*reasons, *perf_reasons]
        status = "amber" if status == "green" else status
    return ModelSection(
        model,
        status=status,
        status_reasons=reasons,
        notes=notes,
        versions=versions,
        volume=volume,
        null_rates=dq,
        drift=drift.drop("period", "reference_id") if drift.height else drift,
        drift_over_time=over_time.drop("reference_id") if over_time.height else over_time,
        distributions=distributions,
        latency=latency,
        latency_overall=latency_overall,
        golden=golden,
        golden_overall=golden_overall,
        multivariate=multivariate,
        golden_errors=golden_errors,
        alerts=alerts,
        drift_windows=drift_windows,
        **perf_parts,
        **seg_parts,
    )


def _segments(
    lake: Lake, model: str, start: datetime, end: datetime, thresholds: Any
) -> dict[str, pl.DataFrame | None]:
    """Per segment: records and drifted features; the subgroup gaps of each segment column.

    Statistics use the exact counts; where a segment's records are shown, segments of fewer
    than :data:`SHOWN_MIN_COUNT` records are folded into one row per segment column, with
    neither their records nor their drift (docs/security.md, "Segments and small counts").
    """
    counts = lake.segments(model, start, end)
    if counts.height == 0:
        return {"segments": None, "subgroup_gaps": None}
    rows: list[dict[str, Any]] = []
    gaps: list[pl.DataFrame] = []
    columns = sorted({s.split("=", 1)[0] for s in counts.get_column("segment").to_list()})
    for col in columns:
        drift = lake.drift(model, start, end, by="all", methods=list(REPORT_METHODS),
                           thresholds=thresholds, segment=col)  # fmt: skip
        of_col = counts.filter(pl.col("segment").str.starts_with(col + "="))
        small = 0
        for seg, n in of_col.iter_rows():
            if n < SHOWN_MIN_COUNT:
                small += 1
                continue
            mine = drift.filter(pl.col("segment") == seg)
            rows.append({"segment": seg, "records": n,
                         "drifted_features": ", ".join(_drifted(mine)) if mine.height else ""})  # fmt: skip
        if small:
            rows.append({"segment": f"{col}: {small} segment(s) of fewer than {SHOWN_MIN_COUNT} "
                         "records, folded", "records": None, "drifted_features": ""})  # fmt: skip
        if model in lake.models("segment_performance"):
            g = lake.subgroup_gaps(model, start, end, segment=col)
            if g.height:
                gaps.append(g.select(list(FRAME_COLUMNS["subgroup_gaps"])))
    return {
        "segments": pl.DataFrame(rows, schema=FRAME_COLUMNS["segments"]),
        "subgroup_gaps": pl.concat(gaps) if gaps else None,
    }


def _golden_outside(lake: Lake, model: str, start: datetime, end: datetime) -> dict[str, Any]:
    """When no golden check ran in the period: the last day before it and the first day
    after it that had checks (ISO dates, keys ``before`` and ``after``), if any."""
    if model not in lake.models("golden"):
        return {}
    times = lake.scan("golden", model=model).select("checked_at").collect()["checked_at"]
    out: dict[str, Any] = {"checks": 0}
    before, after = times.filter(times < start), times.filter(times >= end)
    if before.len():
        out["before"] = before.max().date().isoformat()  # type: ignore[union-attr]
    if after.len():
        out["after"] = after.min().date().isoformat()  # type: ignore[union-attr]
    return out


def _alerts(rows: pl.DataFrame) -> pl.DataFrame:
    """The alerts frame: when raised, the window each covers, its state, plain drift messages."""
    if not rows.height:
        return pl.DataFrame()
    out = []
    for r in rows.sort("raised_at", "window_start").iter_rows(named=True):
        message = r.get("message")
        kind, _, method = (r.get("rule") or "").partition(":")
        if kind == "drift" and method and r.get("value") is not None and r.get("threshold"):
            verb = "drifted" if r.get("state", "firing") == "firing" else "back within threshold"
            message = (f"{r.get('feature') or 'feature'} {verb}: {method_name(method, short=True)} "
                       f"{r['value']:.3g} (threshold {r['threshold']:.3g})")  # fmt: skip
        out.append({"time": r["raised_at"], "severity": r["severity"], "rule": r["rule"],
                    "feature": r.get("feature"), "message": message,
                    "window_start": r.get("window_start"), "window_end": r.get("window_end"),
                    "state": r.get("state")})  # fmt: skip
    return pl.DataFrame(
        out,
        schema={**FRAME_COLUMNS["alerts"], "window_start": _TS, "window_end": _TS,
                "state": pl.String()},
    )  # fmt: skip


def _drift_windows(
    lake: Lake, model: str, start: datetime, end: datetime, alerts: pl.DataFrame
) -> pl.DataFrame | None:
    """Per feature, how many of the edge's windows its alert methods flagged in the period.

    The methods are those of the period's ``drift:<method>`` alerts (PSI, the edge's
    default rule, when there are none); None when the lake has no per-window drift.
    """
    if model not in lake.models("drift"):
        return None
    rules = alerts["rule"].to_list() if alerts.height else []
    methods = sorted({r.split(":", 1)[1] for r in rules if r.startswith("drift:")}) or ["psi"]
    rows = lake.read("drift", model=model, start=start, end=end).filter(
        pl.col("method").is_in(methods)
        & (pl.col("window_start") >= start)
        & (pl.col("window_start") < end)
    )
    if not rows.height:
        return None
    per_window = rows.group_by("window_start", "window_end", "feature", "method").agg(
        pl.col("drifted").fill_null(False).any(), pl.col("threshold").first()
    )
    return (
        per_window.group_by("feature", "method")
        .agg(
            pl.len().cast(pl.Int64).alias("windows"),
            pl.col("drifted").sum().cast(pl.Int64).alias("drifted_windows"),
            ((pl.col("window_end") - pl.col("window_start")).dt.total_seconds() / 3600)
            .median()
            .alias("window_hours"),
            pl.col("threshold").first().cast(pl.Float64),
        )
        .sort(["drifted_windows", "feature"], descending=[True, False])
    )


def _performance(
    lake: Lake,
    model: str,
    start: datetime,
    end: datetime,
    *,
    status_reasons: list[str],
    calibration: bool = True,
) -> dict[str, pl.DataFrame | None]:
    """Realized versus estimated performance, the calibration curve and the labels batches,
    when the lake has them."""
    batches = _label_batches(lake, model, start, end, status_reasons=status_reasons)
    if model not in lake.models("performance"):
        return {"performance": None, "calibration": None, "label_batches": batches}
    by = "day" if end - start <= timedelta(days=31) else "week"
    perf = lake.performance(model, start, end, by=by)
    if perf.height == 0:
        return {"performance": None, "calibration": None, "label_batches": batches}
    alerting = sorted(set(perf.filter(pl.col("alert")).get_column("metric").to_list()))
    if alerting:
        status_reasons.append(
            "performance below the reference in some periods: " + ", ".join(alerting)
        )
    # one period outside a 95% band is chance; most labelled periods outside it is not
    checked = perf.filter(
        pl.col("metric").is_in(["accuracy", "roc_auc"]) & pl.col("realized").is_not_nan()
    )
    changed = checked.filter(pl.col("calibration_changed"))
    if changed.height >= max(2, checked.height / 2):
        days = sorted({f"{p:%Y-%m-%d}" for p in changed.get_column("period").to_list()})
        status_reasons.append(
            "labelled outcomes no longer match the model's calibration (realized outside the "
            f"expected band in {changed.height} of {checked.height} checks, from {days[0]})"
        )
    keep = list(FRAME_COLUMNS["performance"])
    return {
        "performance": perf.select(keep),
        "calibration": lake.calibration_curve(model, start, end) if calibration else None,
        "label_batches": batches,
    }


def _label_batches(
    lake: Lake, model: str, start: datetime, end: datetime, *, status_reasons: list[str]
) -> pl.DataFrame | None:
    """The labels batches that matched predictions of the period, and those that arrived since
    the period began and matched nothing (they may hold this period's outcomes: a report written
    after the labels arrived says so); a status reason when records arrived and none joined."""
    if model not in lake.models("label_batches"):
        return None
    # a batch's window spans the prediction windows it matched; one that matched nothing is
    # filed at the time it arrived (one row per batch: the table is small, read it whole)
    rows = lake.read("label_batches", model=model).filter(
        ((pl.col("window_start") < end) & (pl.col("window_end") > start))
        | ((pl.col("matched") == 0) & (pl.col("received_at") >= start))
    )
    if rows.height == 0:
        return None
    rows = rows.select(list(FRAME_COLUMNS["label_batches"])).sort("received_at")
    records, matched = int(rows["records"].sum() or 0), int(rows["matched"].sum() or 0)
    if records and not matched:
        why = ", ".join(
            f"{int(rows[c].sum()):,} {c}" for c in LABELS_UNJOINED if int(rows[c].sum() or 0)
        )
        status_reasons.append(
            f"{records:,} label records arrived in {rows.height} batch(es) and none joined a "
            f"prediction ({why}): realized performance cannot be shown"
        )
    return rows


def _status(
    records: int, golden: dict[str, Any], drifted: list[str], alerts: pl.DataFrame
) -> tuple[Status, list[str]]:
    red, amber = [], []
    if alerts.height and (alerts["rule"] == "endpoint_unreachable").any():
        red.append("the endpoint was unreachable during golden checks")
    rate = golden.get("pass_rate")
    if rate is not None and rate < 0.95:
        red.append(f"golden checks passed {100 * rate:.1f}%")
    elif rate is not None and rate < 1.0:
        amber.append(f"golden checks passed {100 * rate:.1f}%")
    n = len(drifted)
    if n >= 3:
        red.append(f"{n} features drifted ({', '.join(drifted)})")
    elif n:
        amber.append(f"{n} feature{'s' if n > 1 else ''} drifted ({', '.join(drifted)})")
    if records == 0 and not golden.get("checks"):
        return "grey", ["no data in this period"]
    status: Status = "red" if red else "amber" if amber else "green"
    return status, red + amber or ["no drift, all golden checks passed"]


def collect(
    lake: Lake | str,
    models: list[str],
    start: datetime,
    end: datetime,
    *,
    thresholds: dict[str, float] | None = None,
    title: str = "Model monitoring report",
    storage_options: dict[str, Any] | None = None,
    skip: frozenset[str] = frozenset(),
    counts: Callable[[Lake, str, datetime, datetime], pl.DataFrame] | None = None,
) -> ReportContext:
    """Compute every figure of the report from the lake.

    ``skip`` names :data:`DETAIL_PARTS` to leave empty in each section (the status, its
    reasons and every other figure stay the same): an overview of many models skips them
    all. ``counts`` replaces :func:`window_counts` by a reader that gives the same figures
    another way. ``lake`` may be any reader with :class:`~mlmon.analysis.lake.Lake`'s
    methods (the server passes one that caches them).
    """
    unknown = set(skip) - DETAIL_PARTS
    if unknown:
        raise ConfigError(
            f"skip: {', '.join(sorted(unknown))} is not one of {', '.join(sorted(DETAIL_PARTS))}"
        )
    from mlmon.analysis.lake import Lake

    try:
        version = metadata.version("mlmon")
    except metadata.PackageNotFoundError:  # a source tree on sys.path, not installed
        version = "unknown"

    # a URI (str or path), or a reader with Lake's methods (a Lake, or the server's caching one)
    lk = cast("Lake", lake) if hasattr(lake, "drift") else Lake(cast(str, lake), storage_options)
    th = thresholds or {}
    return ReportContext(
        title=title,
        period_start=start,
        period_end=end,
        generated_at=datetime.now(UTC).replace(microsecond=0),
        lake_display=lk.uri,
        mlmon_version=version,
        models=[
            _section(
                lk,
                m,
                start,
                end,
                th,
                counts=counts or window_counts,
                skip=frozenset(skip),
            )
            for m in models
        ],
        methods=methods_from_registry(th, REPORT_METHODS),
    )

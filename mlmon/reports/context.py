"""Everything a monitoring report shows, computed from the lake alone.

:func:`collect` fills a :class:`ReportContext` through the mlmon API (drift,
percentiles, data quality, golden checks, alerts, versions). The report
notebook calls it and saves the context (:meth:`ReportContext.save`, one JSON
file); the renderer reads it back, so the numbers printed in the PDF are the
numbers the API computed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from mlmon.analysis.drift import METHODS
from mlmon.analysis.lake import Lake
from mlmon.errors import LakeError

__all__ = ["ModelSection", "ReportContext", "collect", "period_bounds"]

#: The methods a report flags drift by (p-values are shown, not used for status).
REPORT_METHODS = ("psi", "jensen_shannon", "ks", "wasserstein", "chi_square")
STATUS_RULES = (
    "red: the endpoint was unreachable, golden checks passed < 95%, or 3+ features drifted",
    "amber: any feature drifted, or golden checks passed < 100%",
    "green: otherwise",
)


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
                s = datetime(*parts, tzinfo=UTC)
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


def _rows(df: pl.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (v.isoformat() if isinstance(v, datetime | date) else v) for k, v in r.items()}
        for r in df.to_dicts()
    ]


@dataclass
class ModelSection:
    model: str
    status: str = "green"
    status_reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    records: int = 0
    versions: list[dict[str, Any]] = field(default_factory=list)
    volume: list[dict[str, Any]] = field(default_factory=list)
    data_quality: list[dict[str, Any]] = field(default_factory=list)
    drift: list[dict[str, Any]] = field(default_factory=list)
    drift_over_time: list[dict[str, Any]] = field(default_factory=list)
    drifted_features: list[str] = field(default_factory=list)
    distributions: list[dict[str, Any]] = field(default_factory=list)
    latency: list[dict[str, Any]] = field(default_factory=list)
    latency_overall: dict[str, float | None] = field(default_factory=dict)
    golden: list[dict[str, Any]] = field(default_factory=list)
    golden_overall: dict[str, Any] = field(default_factory=dict)
    golden_errors: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ReportContext:
    title: str
    period_start: str
    period_end: str
    generated_at: str
    lake: str
    models: list[ModelSection]
    methods: list[dict[str, Any]]
    status_rules: list[str] = field(default_factory=lambda: list(STATUS_RULES))

    @property
    def overall_status(self) -> str:
        order = {"green": 0, "amber": 1, "red": 2, "grey": 0}
        return max((m.status for m in self.models), key=lambda s: order.get(s, 0), default="grey")

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.write_text(json.dumps(asdict(self), indent=1, default=str, allow_nan=True))
        return p

    @classmethod
    def load(cls, path: str | Path) -> ReportContext:
        raw = json.loads(Path(path).read_text())
        raw["models"] = [ModelSection(**m) for m in raw["models"]]
        return cls(**raw)


def _distribution(ref: Any, cur: Any) -> list[dict[str, Any]]:
    """Reference vs current fractions over the reference's bins (numeric) or categories."""
    rc, cc = ref.bins.astype(float), cur.bins.astype(float)
    rf = rc / rc.sum() if rc.sum() else rc
    cf = cc / cc.sum() if cc.sum() else cc
    if ref.kind == "categorical":
        labels = list(ref.labels)
    else:
        e = ref.edges
        labels = (
            [f"< {e[0]:.4g}"]
            + [f"{e[i]:.4g} - {e[i + 1]:.4g}" for i in range(len(e) - 1)]
            + [f"> {e[-1]:.4g}"]
        )
    return [{"bin": i, "label": lab, "reference": float(r), "current": float(c)}
            for i, (lab, r, c) in enumerate(zip(labels, rf, cf, strict=True))]  # fmt: skip


def _section(
    lake: Lake, model: str, start: datetime, end: datetime, thresholds: dict[str, float]
) -> ModelSection:
    sec = ModelSection(model)
    if model not in lake.models("profiles") and model not in lake.models("golden"):
        known = ", ".join(lake.models("profiles")) or "none"
        sec.status = "grey"
        sec.status_reasons = ["no data for this model in the lake"]
        sec.notes.append(f"The lake has no data for model {model!r} (models with data: {known}).")
        return sec
    dq = lake.data_quality(model, start, end)
    sec.data_quality = _rows(dq)
    prof_rows = lake.scan("profiles", model=model, start=start, end=end)
    vol = (
        prof_rows.group_by("window_start", "collector_id", "model_version")
        .agg(pl.col("rows").first())
        .with_columns(pl.col("window_start").dt.truncate("1d").alias("period"))
        .group_by("period")
        .agg(pl.col("rows").sum().alias("count"))
        .sort("period")
        .collect()
    )
    sec.volume = _rows(vol)
    sec.records = int(vol["count"].sum()) if vol.height else 0
    versions = (
        prof_rows.group_by("model_version")
        .agg(
            pl.col("window_start").min().alias("first_seen"),
            pl.col("window_end").max().alias("last_seen"),
        )
        .sort("first_seen")
        .collect()
    )
    sec.versions = _rows(versions)
    if sec.records == 0:
        sec.notes.append("No inference records were profiled in this period.")
    try:
        drift = lake.drift(
            model, start, end, by="all", methods=list(REPORT_METHODS), thresholds=thresholds
        )
        over_time = lake.drift(
            model, start, end, by="day", methods=list(REPORT_METHODS), thresholds=thresholds
        )
    except LakeError as exc:
        drift = over_time = pl.DataFrame()
        sec.notes.append(f"Drift was not computed: {exc}")
    if drift.height:
        sec.drift = _rows(drift.drop("period", "reference_id"))
        distance = drift.filter(pl.col("method") != "chi_square")
        ranked = (
            distance.group_by("feature").agg(pl.col("drifted").sum().alias("n"), pl.col("value").max().alias("v"))
            .filter(pl.col("n") > 0).sort(["n", "v"], descending=True)
        )  # fmt: skip
        sec.drifted_features = ranked["feature"].to_list()
        sec.drift_over_time = _rows(over_time.drop("reference_id"))
        top = (
            sec.drifted_features[:3]
            or distance.sort("value", descending=True)["feature"]
            .unique(maintain_order=True)
            .head(2)
            .to_list()
        )
        merged = {
            f: (r, p)
            for _, r, f, p in lake.merged_profiles(model, start, end, by="all", features=top)
        }
        for f in top:
            if f in merged:
                ref = lake.reference(merged[f][0], model=model).profiles[f]
                sec.distributions.append(
                    {"feature": f, "kind": ref.kind, "bins": _distribution(ref, merged[f][1])}
                )
    elif sec.records:
        sec.notes.append("No reference profile was found for this model: drift was not computed.")
    lat = lake.percentiles(
        "latency_ms",
        (0.5, 0.95, 0.99),
        model=model,
        start=start,
        end=end,
        by="day",
        source="stream",
    )
    if lat.height:
        wide = lat.pivot("quantile", index="period", values="value").sort("period")
        wide.columns = ["period", "p50", "p95", "p99"]
        sec.latency = _rows(wide)
        allp = lake.percentiles(
            "latency_ms",
            (0.5, 0.95, 0.99),
            model=model,
            start=start,
            end=end,
            by="all",
            source="stream",
        )
        sec.latency_overall = dict(zip(["p50", "p95", "p99"], allp["value"].to_list(), strict=True))
    golden = lake.read("golden", model=model, start=start, end=end)
    if golden.height:
        g = (
            golden.with_columns(pl.col("checked_at").dt.truncate("1d").alias("period"))
            .group_by("period").agg(pl.len().alias("checks"), pl.col("passed").sum().alias("passed"))
            .with_columns((pl.col("passed") / pl.col("checks")).alias("pass_rate")).sort("period")
        )  # fmt: skip
        sec.golden = _rows(g)
        checks, passed = golden.height, int(golden["passed"].sum())
        sec.golden_overall = {"checks": checks, "passed": passed, "pass_rate": passed / checks}
        errs = (
            golden.filter(~pl.col("passed"))
            .group_by("error_kind")
            .len("count")
            .sort("count", descending=True)
        )
        sec.golden_errors = _rows(errs)
    alerts = lake.read("alerts", model=model, start=start, end=end)
    if alerts.height:
        a = alerts.select("raised_at", "severity", "rule", "feature", "message").sort("raised_at")
        sec.alerts = _rows(a)
    _status(sec, alerts)
    return sec


def _status(sec: ModelSection, alerts: pl.DataFrame) -> None:
    reasons_red, reasons_amber = [], []
    unreachable = alerts.height and (alerts["rule"] == "endpoint_unreachable").any()
    rate = sec.golden_overall.get("pass_rate")
    if unreachable:
        reasons_red.append("the endpoint was unreachable during golden checks")
    if rate is not None and rate < 0.95:
        reasons_red.append(f"golden checks passed {rate:.1%}")
    elif rate is not None and rate < 1.0:
        reasons_amber.append(f"golden checks passed {rate:.1%}")
    n = len(sec.drifted_features)
    if n >= 3:
        reasons_red.append(f"{n} features drifted ({', '.join(sec.drifted_features)})")
    elif n:
        reasons_amber.append(
            f"{n} feature{'s' if n > 1 else ''} drifted ({', '.join(sec.drifted_features)})"
        )
    if sec.records == 0 and not sec.golden:
        sec.status = "grey"
        sec.status_reasons = ["no data in this period"]
        return
    sec.status = "red" if reasons_red else "amber" if reasons_amber else "green"
    sec.status_reasons = reasons_red + reasons_amber or ["no drift, all golden checks passed"]


def collect(
    lake: Lake | str,
    models: list[str],
    start: datetime,
    end: datetime,
    *,
    thresholds: dict[str, float] | None = None,
    title: str = "Model monitoring report",
    storage_options: dict[str, Any] | None = None,
) -> ReportContext:
    """Compute every figure of the report from the lake."""
    lk = lake if isinstance(lake, Lake) else Lake(lake, storage_options)
    th = thresholds or {}
    methods = [
        {"name": n, "kinds": list(m.kinds), "threshold": th.get(n, m.default_threshold), "direction": m.direction,
         "description": m.description}
        for n, m in METHODS.items() if n in REPORT_METHODS
    ]  # fmt: skip
    return ReportContext(
        title=title,
        period_start=start.isoformat(),
        period_end=end.isoformat(),
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        lake=lk.uri,
        models=[_section(lk, m, start, end, th) for m in models],
        methods=methods,
    )

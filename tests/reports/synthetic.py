"""Synthetic report contexts (seeded numpy), for rendering tests without a lake."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import numpy as np
import polars as pl

from mlmon.reports.context import (
    Distribution,
    MethodInfo,
    ModelSection,
    ReportContext,
)

START = datetime(2026, 10, 1, tzinfo=UTC)
END = datetime(2026, 11, 1, tzinfo=UTC)

METHODS = [
    MethodInfo("psi", ("numeric", "categorical"), 0.2, "above",
               "Population stability index over the reference bins."),
    MethodInfo("jensen_shannon", ("numeric", "categorical"), 0.1, "above",
               "Jensen-Shannon distance (base 2) over the reference bins."),
    MethodInfo("ks", ("numeric",), 0.1, "above",
               "Kolmogorov-Smirnov statistic from the quantile sketches."),
    MethodInfo("wasserstein", ("numeric",), 0.1, "above",
               "Wasserstein-1 distance divided by the reference's standard deviation."),
    MethodInfo("chi_square", ("numeric", "categorical"), 0.05, "below",
               "p-value of the chi-square test on the 2 x k table of counts."),
]  # fmt: skip

NUMERIC = ["age", "bmi", "heart_rate", "systolic_bp", "diastolic_bp", "glucose", "creatinine",
           "sodium", "potassium", "hemoglobin", "wbc", "platelets", "temperature", "resp_rate",
           "spo2", "albumin", "bilirubin", "lactate", "crp", "length_of_stay"]  # fmt: skip
CATEGORICAL = ["ward", "sex", "admission_type", "insurance", "scanner"]
FEATURES = NUMERIC + CATEGORICAL  # 25


def _days(start: datetime, end: datetime) -> list[datetime]:
    n = (end - start).days
    return [start + timedelta(days=i) for i in range(n)]


def model_section(
    model: str,
    *,
    seed: int = 0,
    drifted: tuple[str, ...] = ("age", "bmi"),
    start: datetime = START,
    end: datetime = END,
    p95_ms: float = 41.234,
    golden_fail: int = 3,
    performance: bool = False,
) -> ModelSection:
    """A full section: 25 features, daily frames over the period, ``drifted`` features past threshold."""
    rng = np.random.default_rng(seed)
    days = _days(start, end)
    counts = rng.integers(3_000, 5_000, len(days))
    volume = pl.DataFrame({"period": days, "count": counts.astype(np.int64)})
    total = int(counts.sum())

    nulls = rng.uniform(0, 0.02, len(FEATURES))
    nulls[FEATURES.index("creatinine")] = 0.134
    null_rates = pl.DataFrame(
        {
            "feature": FEATURES,
            "kind": ["numeric"] * len(NUMERIC) + ["categorical"] * len(CATEGORICAL),
            "null_rate": nulls,
            "count": np.full(len(FEATURES), total, dtype=np.int64),
        }
    )

    rows, over = [], []
    for f in FEATURES:
        numeric = f in NUMERIC
        shift = 2.5 if f in drifted else rng.uniform(0.05, 0.5)
        for m in METHODS:
            if not numeric and "numeric" in m.kinds and "categorical" not in m.kinds:
                continue
            if m.direction == "above":
                value = m.default_threshold * shift
                flag = value > m.default_threshold
            else:
                value = 1e-9 if f in drifted else rng.uniform(0.2, 0.9)
                flag = value < m.default_threshold
            rows.append({"feature": f, "method": m.name, "value": float(value),
                         "threshold": m.default_threshold, "drifted": bool(flag), "count": total})  # fmt: skip
            for i, d in enumerate(days):
                ramp = (i + 1) / len(days)
                v = (
                    m.default_threshold * shift * (0.4 + 1.2 * ramp) * rng.uniform(0.85, 1.15)
                    if m.direction == "above"
                    else float(rng.uniform(0.0, 1.0))
                )
                fl = v > m.default_threshold if m.direction == "above" else v < m.default_threshold
                over.append({"period": d, "feature": f, "method": m.name, "value": float(v),
                             "threshold": m.default_threshold, "drifted": bool(fl)})  # fmt: skip

    edges = np.linspace(20, 90, 9)
    labels = [f"< {edges[0]:.0f}"] + [f"{a:.0f} to {b:.0f}" for a, b in pairwise(edges)] + [f"> {edges[-1]:.0f}"]  # fmt: skip
    ref = rng.dirichlet(np.full(len(labels), 8.0))
    cur = np.roll(ref, 2) * 0.7 + ref * 0.3
    dists = [
        Distribution(
            next((f for f in drifted if f in NUMERIC), "age"),
            "numeric",
            pl.DataFrame({"label": labels, "reference": ref, "current": cur / cur.sum()}),
        ),
        Distribution(
            "ward",
            "categorical",
            pl.DataFrame(
                {
                    "label": ["ICU", "ED", "cardiology", "oncology", "surgery", "__other__"],
                    "reference": [0.12, 0.30, 0.18, 0.15, 0.20, 0.05],
                    "current": [0.22, 0.26, 0.15, 0.12, 0.19, 0.06],
                }
            ),
        ),
    ]
    numeric_drifted = [f for f in drifted if f in NUMERIC]
    if len(numeric_drifted) > 1:
        x = np.linspace(15, 45, 12)
        r = np.exp(-((x - 26) ** 2) / 30)
        c = np.exp(-((x - 30) ** 2) / 30)
        dists.insert(1, Distribution(numeric_drifted[1], "numeric",
                                     pl.DataFrame({"x": x, "reference": r / r.sum(), "current": c / c.sum()})))  # fmt: skip

    p50 = rng.normal(18, 1.5, len(days))
    latency = pl.DataFrame(
        {
            "period": days,
            "p50": p50,
            "p95": p50 + rng.normal(22, 3, len(days)),
            "p99": p50 + rng.normal(60, 8, len(days)),
            "count": counts.astype(np.int64),
        }
    )
    checks = np.full(len(days), 24, dtype=np.int64)
    failed = np.zeros(len(days), dtype=np.int64)
    failed[rng.choice(len(days), size=golden_fail, replace=False)] = 1
    passed = checks - failed
    golden = pl.DataFrame(
        {"period": days, "checks": checks, "passed": passed, "pass_rate": passed / checks}
    )
    golden_overall = {
        "checks": int(checks.sum()),
        "passed": int(passed.sum()),
        "pass_rate": float(passed.sum() / checks.sum()),
    }
    golden_errors = pl.DataFrame(
        {"error_kind": ["value_mismatch", "timeout"], "count": [golden_fail - 1, 1]}
    )
    alert_times = sorted(
        start + timedelta(hours=int(h)) for h in rng.integers(24, 24 * len(days), 6)
    )
    alerts = pl.DataFrame(
        {
            "time": alert_times,
            "severity": ["warning", "warning", "critical", "warning", "info", "critical"],
            "rule": ["drift_psi", "drift_psi", "golden_failed", "latency_p95", "volume_low",
                     "drift_psi"],
            "feature": [drifted[0] if drifted else None, drifted[-1] if drifted else None, None,
                        None, None, drifted[0] if drifted else None],
            "message": ["PSI 0.52 above 0.2 for 3 windows", "PSI 0.31 above 0.2",
                        "golden sample 7 returned 0.12, expected 0.87 +/- 0.05",
                        "p95 latency 81.0 ms above 75 ms", "volume 40% below the 7-day median",
                        "PSI 0.61 above 0.2 for 6 windows"],
        }
    )  # fmt: skip
    versions = pl.DataFrame(
        {
            "version": ["1.3.0", "1.4.0"],
            "first_seen": [start, start + timedelta(days=12, hours=9)],
            "last_seen": [start + timedelta(days=12, hours=9), end],
            "count": [int(counts[:12].sum()), int(counts[12:].sum())],
        }
    )
    perf = None
    if performance:
        auc = 0.86 - np.linspace(0, 0.05, len(days)) + rng.normal(0, 0.005, len(days))
        perf = pl.DataFrame(
            {
                "period": days,
                "metric": ["roc_auc"] * len(days),
                "realized": auc,
                "estimated": auc + rng.normal(0, 0.01, len(days)),
                "lower": auc - 0.03,
                "upper": auc + 0.03,
                "count_labelled": [900] * len(days),
                "count_total": [1000] * len(days),
            }
        )
    n = len(drifted)
    status = "red" if n >= 3 else "amber" if n or golden_fail else "green"
    reasons = []
    if n:
        reasons.append(f"{n} features drifted ({', '.join(drifted)})")
    if golden_fail:
        reasons.append(f"golden checks passed {100 * golden_overall['pass_rate']:.1f}%")
    return ModelSection(
        model=model,
        status=status,  # type: ignore[arg-type]
        status_reasons=reasons or ["no drift, all golden checks passed"],
        notes=[],
        versions=versions,
        volume=volume,
        null_rates=null_rates,
        drift=pl.DataFrame(rows),
        drift_over_time=pl.DataFrame(over),
        distributions=dists,
        latency=latency,
        latency_overall={"p50": float(np.median(p50)), "p95": p95_ms, "p99": p95_ms + 58.7},
        golden=golden,
        golden_overall=golden_overall,
        golden_errors=golden_errors,
        alerts=alerts,
        performance=perf,
    )


def context(models: list[ModelSection] | None = None, **kw: object) -> ReportContext:
    """A report over October 2026; two full models by default."""
    models = models if models is not None else [
        model_section("risk-model", seed=1, drifted=("age", "bmi"), performance=True),
        model_section("chest-xray-triage", seed=2, drifted=("scanner", "glucose", "sodium"),
                      p95_ms=87.65, golden_fail=9),
    ]  # fmt: skip
    args: dict[str, object] = {
        "title": "Model monitoring report",
        "period_start": START,
        "period_end": END,
        "comparison_start": datetime(2026, 9, 1, tzinfo=UTC),
        "comparison_end": START,
        "generated_at": datetime(2026, 11, 1, 6, 0, 12, tzinfo=UTC),
        "lake_display": "s3://hospital-mlmon/lake",
        "mlmon_version": "0.1.0",
        "models": models,
        "methods": METHODS,
    }
    args.update(kw)
    return ReportContext(**args)  # type: ignore[arg-type]


def edge_case_context() -> ReportContext:
    """A model with no data, one with no reference, one whose frames are all empty, one with alerts only."""
    no_data = ModelSection(
        "retired-model",
        status="grey",
        status_reasons=["no data in this period"],
        notes=["No data in this period."],
    )
    full = model_section("sepsis-alert", seed=3, drifted=())
    no_ref = ModelSection(
        "new-model",
        status="green",
        status_reasons=["no drift computed; all golden checks passed"],
        notes=["No reference profile: drift not computed."],
        volume=full.volume,
        versions=full.versions,
        null_rates=full.null_rates,
        golden=full.golden.with_columns(passed=pl.col("checks"), pass_rate=pl.lit(1.0)),
        golden_overall={
            "checks": full.golden_overall["checks"],
            "passed": full.golden_overall["checks"],
            "pass_rate": 1.0,
        },
    )
    empty = pl.DataFrame()
    all_empty = ModelSection(
        "empty-frames",
        status="amber",
        status_reasons=["metrics missing"],
        notes=[],
        versions=empty,
        volume=empty,
        null_rates=empty,
        drift=empty,
        drift_over_time=empty,
        latency=empty,
        latency_overall={"p50": None, "p95": None, "p99": None},
        golden=empty,
        golden_errors=empty,
        alerts=empty,
        performance=pl.DataFrame(),
    )
    only_alerts = ModelSection(
        "only-alerts",
        status="red",
        status_reasons=["the endpoint was unreachable"],
        alerts=full.alerts.head(2),
        performance=pl.DataFrame(),
    )
    return context([no_data, no_ref, all_empty, only_alerts], comparison_start=None,
                   comparison_end=None)  # fmt: skip

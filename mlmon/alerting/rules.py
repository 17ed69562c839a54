"""Alert rules evaluated over the lake (reader role): what holds now, per model and subject.

Every rule reads aggregates through :class:`mlmon.Lake` (merged profiles, golden
outcomes, latency sketches, performance profiles, version checks) over its
``period`` ending at ``now``, and returns :class:`Finding` values. A finding's
``summary`` names the model, the feature or metric and figures only: no
record, value of a record, sample id or any other id reaches a message.

=================  =====================================================  ==================
rule               holds when                                             subject
=================  =====================================================  ==================
``drift``          a feature's drift over the period crosses its          feature (per method)
                   threshold (``min_count`` values at least)
``golden``         the golden pass rate is below ``min_pass_rate``        none
``latency``        the ``quantile`` latency exceeds ``objective_ms``      none
``performance``    a metric is outside its expected band                  metric
``missing_data``   no window ended within ``missing_after`` of now        none
``version_checks`` the newest replication check of a candidate failed     version
=================  =====================================================  ==================

A rule with too little data to judge returns nothing for it, so an alert keeps
its state rather than resolving on silence (``missing_data`` covers silence).
"""

from __future__ import annotations

import fnmatch
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from mlmon.alerting.config import AlertsConfig, RuleSettings
from mlmon.analysis.lake import Lake
from mlmon.errors import LakeError, MlmonError
from mlmon.lake.schema import TABLES

__all__ = ["RULES", "Finding", "evaluate"]

log = logging.getLogger("mlmon.alerting")

_GOLDEN_KINDS = ("timeout", "connect", "tls", "http_4xx", "http_5xx", "malformed", "mismatch")


@dataclass(frozen=True)
class Finding:
    """One rule judged for one model (and feature, metric or version)."""

    rule: str
    model: str
    subject: str | None
    holds: bool
    severity: str
    summary: str
    value: float | None = None
    threshold: float | None = None
    feature: str | None = None

    @property
    def key(self) -> str:
        """``rule|model|subject``: what dedupes the alert while it fires."""
        return f"{self.rule}|{self.model}|{self.subject or ''}"


def _human(d: timedelta) -> str:
    s = int(d.total_seconds())
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= n and s % n == 0:
            return f"{s // n}{unit}"
    if s >= 3600:
        return f"{s / 3600:.1f}h"
    return f"{s}s"


def _drift(lake: Lake, model: str, r: RuleSettings, now: datetime) -> list[Finding]:
    methods = list(r.option("methods", model) or ["psi"])
    min_count = int(r.option("min_count", model, 200))
    df = lake.drift(model, now - r.period, now, by=None, methods=methods)
    out = []
    for row in df.iter_rows(named=True):
        value, thr = row["value"], row["threshold"]
        if row["count"] is None or row["count"] < min_count or value is None:
            continue
        if not math.isfinite(value):
            continue
        verb = "drifted" if row["drifted"] else "within its threshold"
        out.append(
            Finding(
                f"drift:{row['method']}",
                model,
                row["feature"],
                bool(row["drifted"]),
                r.severity,
                f"{row['feature']} {verb}: {row['method']} {value:.3g} vs threshold {thr:.3g} "
                f"({row['count']} values, last {_human(r.period)})",
                value=float(value),
                threshold=float(thr),
                feature=row["feature"],
            )
        )
    return out


def _golden(lake: Lake, model: str, r: RuleSettings, now: datetime) -> list[Finding]:
    rows = lake.read("golden", model=model, start=now - r.period, end=now)
    if rows.height == 0:
        return []
    minimum = float(r.option("min_pass_rate", model, 0.95))
    checks = rows.height
    passed = int(rows.get_column("passed").sum())
    kinds = rows.get_column("error_kind").drop_nulls().value_counts(sort=True)
    failures = ", ".join(
        f"{k} {n}" for k, n in kinds.iter_rows() if k in _GOLDEN_KINDS
    )  # a fixed vocabulary: nothing from a record
    rate = passed / checks
    return [
        Finding(
            "golden_pass_rate",
            model,
            None,
            rate < minimum,
            r.severity,
            f"golden checks passed {rate:.1%} ({passed} of {checks}, minimum {minimum:.1%}, "
            f"last {_human(r.period)})" + (f"; failures: {failures}" if failures else ""),
            value=rate,
            threshold=minimum,
        )
    ]


def _latency(lake: Lake, model: str, r: RuleSettings, now: datetime) -> list[Finding]:
    objective = r.option("objective_ms", model)
    if objective is None:
        return []
    q = float(r.option("quantile", model, 0.95))
    try:
        df = lake.percentiles(
            "latency_ms", q=(q,), model=model, start=now - r.period, end=now, by=None
        )
    except LakeError:  # no latency recorded for this model
        return []
    if df.height == 0:
        return []
    row = df.row(0, named=True)
    value = row["value"]
    if value is None or not math.isfinite(value) or not row["count"]:
        return []
    name = f"p{q * 100:g}"
    return [
        Finding(
            "latency_objective",
            model,
            None,
            value > float(objective),
            r.severity,
            f"response time {name} {value:.0f} ms vs objective {float(objective):.0f} ms "
            f"({row['count']} requests, last {_human(r.period)})",
            value=float(value),
            threshold=float(objective),
        )
    ]


def _performance(lake: Lake, model: str, r: RuleSettings, now: datetime) -> list[Finding]:
    metrics = r.option("metrics", model)
    min_labels = int(r.option("min_labels", model, 100))
    df = lake.performance(
        model, now - r.period, now, by=None, metrics=metrics, min_labels=min_labels
    )
    out = []
    for row in df.iter_rows(named=True):
        measured = row["count_labelled"] >= min_labels
        value = row["realized"] if measured else row["estimated"]
        if value is None or not math.isfinite(value):
            continue
        how = "measured" if measured else "estimated"
        ref = row["reference"]
        band = (
            f" (band {row['lower']:.3g} to {row['upper']:.3g})"
            if row["lower"] is not None and math.isfinite(row["lower"])
            else ""
        )
        out.append(
            Finding(
                "performance",
                model,
                row["metric"],
                bool(row["alert"]),
                r.severity,
                f"{row['metric']} {how} {value:.3g} vs reference {ref:.3g}{band}, "
                f"{row['count_labelled']} of {row['count_total']} predictions with a known "
                f"outcome, last {_human(r.period)}",
                value=float(value),
                threshold=float(ref) if ref is not None and math.isfinite(ref) else None,
            )
        )
    return out


def _newest(lake: Lake, model: str, start: datetime, end: datetime) -> datetime | None:
    newest = None
    for t in ("profiles", "latency", "golden"):
        try:
            v = (
                lake.scan(t, model=model, start=start, end=end)
                .select(pl.col("window_end").max())
                .collect()
                .item()
            )
        except (LakeError, pl.exceptions.PolarsError):
            continue
        if v is not None and (newest is None or v > newest):
            newest = v
    return newest


_DATA_TABLES = ("profiles", "latency", "golden")


def _expected(r: RuleSettings, model: str) -> bool:
    return any(fnmatch.fnmatchcase(model, p) for p in r.options.get("expect", ()))


def _missing(lake: Lake, model: str, r: RuleSettings, now: datetime) -> list[Finding]:
    """Fires for a model that had data and stopped, or that ``expect`` names and has none.

    A model with only a reference (registered, never served yet) is not missing data:
    it gets a finding that does not hold (which also resolves an alert raised before).
    """
    after = r.option("missing_after", model)
    newest = _newest(lake, model, now - r.period, now + timedelta(days=1))
    never_had_data = newest is None and not any(model in lake.models(t) for t in _DATA_TABLES)
    if never_had_data and not _expected(r, model):
        return [
            Finding(
                "missing_data",
                model,
                None,
                False,
                r.severity,
                "no records yet (the model has only a reference; name it in "
                "missing_data.expect to be told while none arrive)",
                threshold=after.total_seconds(),
            )
        ]
    if newest is None:
        holds, text = True, f"no records in the last {_human(r.period)}"
        value = r.period.total_seconds()
    else:
        age = max(now - newest, timedelta(0))
        holds = age > after
        text = f"newest data is {_human(timedelta(seconds=round(age.total_seconds(), -1)))} old"
        value = age.total_seconds()
    return [
        Finding(
            "missing_data",
            model,
            None,
            holds,
            r.severity,
            f"{text} (expected within {_human(after)})",
            value=value,
            threshold=after.total_seconds(),
        )
    ]


def _version_checks(lake: Lake, model: str, r: RuleSettings, now: datetime) -> list[Finding]:
    """The newest replication test of each candidate in ``version_checks`` (registry watch).

    ``outcome`` fail fires, pass resolves; error (an endpoint did not answer, nothing
    was decided) leaves the alert as it is.
    """
    if "version_checks" not in TABLES:
        return []
    rows = lake.read("version_checks", model=model, start=now - r.period, end=now)
    if rows.height == 0 or "outcome" not in rows.columns:
        return []
    newest = (
        rows.filter(pl.col("outcome").is_in(["pass", "fail"]))
        .sort("checked_at")
        .group_by("candidate_version", maintain_order=True)
        .last()
    )
    out = []
    for row in newest.iter_rows(named=True):
        version = str(row["candidate_version"])
        failed = row["outcome"] == "fail"
        figures = []
        cand, champ = row.get("candidate_pass_rate"), row.get("champion_pass_rate")
        if cand is not None:
            figures.append(
                f"golden pass rate {cand:.1%}"
                + (f" vs the champion's {champ:.1%}" if champ is not None else "")
            )
        if row.get("latency_ratio") is not None:
            figures.append(f"median latency {row['latency_ratio']:.2f}x the champion's")
        extra = f" ({', '.join(figures)})" if figures else ""
        out.append(
            Finding(
                "version_check",
                model,
                version,
                failed,
                r.severity,
                f"candidate version {version} {'failed' if failed else 'passed'} its "
                f"replication test against the champion{extra}",
                value=float(cand) if cand is not None else None,
                threshold=float(champ) if champ is not None else None,
            )
        )
    return out


RuleFn = Callable[[Lake, str, RuleSettings, datetime], list[Finding]]

#: Rule name (the ``rules:`` key of alerts.yaml) -> evaluation over the lake.
RULES: dict[str, RuleFn] = {
    "drift": _drift,
    "golden": _golden,
    "latency": _latency,
    "performance": _performance,
    "missing_data": _missing,
    "version_checks": _version_checks,
}


def selected_models(known: Iterable[str], patterns: Iterable[str]) -> list[str]:
    pats = list(patterns)
    return [m for m in known if any(fnmatch.fnmatchcase(m, p) for p in pats)]


def evaluate(lake: Lake, config: AlertsConfig, now: datetime) -> tuple[list[Finding], list[str]]:
    """Every enabled rule for every selected model; returns findings and per-rule problems.

    A rule that fails for one model (an unreadable object, a missing reference)
    is reported in the problems (rule and model named) and costs only itself.
    """
    findings: list[Finding] = []
    problems: list[str] = []
    known = lake.known_models()
    expected = [  # models missing_data.expect names exactly: judged even with nothing in the lake
        p
        for r in config.rules
        if r.name == "missing_data"
        for p in r.options.get("expect", ())
        if not any(c in p for c in "*?[") and p not in known
    ]
    for model in selected_models([*known, *expected], config.models):
        for r in config.rules:
            if model in expected and r.name != "missing_data":
                continue
            try:
                findings += RULES[r.name](lake, model, r, now)
            except (MlmonError, pl.exceptions.PolarsError, OSError) as exc:
                problems.append(f"rule {r.name} for model {model}: {type(exc).__name__}: {exc}")
                log.warning("alerts: rule %s for model %s not evaluated: %s", r.name, model, exc)
    return findings, problems

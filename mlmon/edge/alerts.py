"""Alert rules evaluated at the edge, as rows of the lake's ``alerts`` table."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

__all__ = ["drift_alerts", "golden_alerts"]


def _row(now: datetime, rule: str, severity: str, message: str, **kw: Any) -> dict[str, Any]:
    return {
        "raised_at": now,
        "rule": rule,
        "severity": severity,
        "state": "firing",
        "message": message,
        **kw,
    }


def drift_alerts(
    drift_rows: Iterable[dict[str, Any]],
    now: datetime,
    methods: Iterable[str] = ("psi",),
    min_count: int = 200,
) -> list[dict[str, Any]]:
    """One warning per feature whose drift crossed the threshold of an alerting method.

    Windows with fewer than ``min_count`` values of the feature raise no alert:
    binned distances of a handful of values are mostly sampling noise (PSI over
    10 bins has an expected value near 10/n under no drift). Their profiles
    still reach the lake, where drift over longer periods is recomputed.
    """
    wanted = set(methods)
    out = []
    for r in drift_rows:
        if r["method"] in wanted and r["drifted"] and r.get("count", min_count) >= min_count:
            out.append(
                _row(
                    now,
                    f"drift:{r['method']}",
                    "warning",
                    f"{r['feature']} drifted: {r['method']} {r['value']:.3g} vs threshold {r['threshold']:.3g}",
                    feature=r["feature"],
                    value=float(r["value"]),
                    threshold=float(r["threshold"]),
                )
            )
    return out


def golden_alerts(
    checks: int, passed: int, error_kinds: dict[str, int], now: datetime, min_pass_rate: float
) -> list[dict[str, Any]]:
    """Endpoint unreachable (critical) or golden pass rate below the minimum (warning)."""
    if checks == 0:
        return []
    rate = passed / checks
    unreachable = sum(error_kinds.get(k, 0) for k in ("connect", "timeout", "tls"))
    if unreachable == checks:
        kinds = ", ".join(f"{k}={v}" for k, v in sorted(error_kinds.items()))
        return [
            _row(
                now,
                "endpoint_unreachable",
                "critical",
                f"no golden check got an answer ({kinds})",
                value=0.0,
                threshold=min_pass_rate,
            )
        ]
    if rate < min_pass_rate:
        return [
            _row(
                now,
                "golden_pass_rate",
                "warning",
                f"golden checks passed {rate:.1%} (minimum {min_pass_rate:.1%})",
                value=rate,
                threshold=min_pass_rate,
            )
        ]
    return []

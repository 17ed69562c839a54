"""Alert rules evaluated at the edge, and the state changes they write to the ``alerts`` table.

A rule is evaluated into :class:`Condition` values (does the condition hold
now, for this rule and feature?). :class:`AlertState` remembers which
conditions are firing, on the state volume so that ``mlmon edge once`` runs
remember too, and turns each evaluation into rows only when something
changed:

==================================  ==========================================
evaluation                          row written
==================================  ==========================================
holds, was not firing               ``state = firing``
holds, already firing               none (the alert is still firing)
does not hold, was firing           ``state = resolved`` (with the new value)
does not hold, was not firing       none
not evaluated (too few values)      none; the state is unchanged
==================================  ==========================================

So the ``alerts`` table holds one row per state change: the alerts firing at a
time ``t`` are those whose latest row at or before ``t`` is ``firing``.
Evaluations of windows older than the newest one already evaluated for the same
condition (late data) change nothing.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = [
    "AlertState",
    "Condition",
    "drift_alerts",
    "drift_conditions",
    "golden_alerts",
    "golden_conditions",
]

UNREACHABLE_KINDS = ("connect", "timeout", "tls")
"""Probe error kinds that mean no answer came at all."""


@dataclass(frozen=True)
class Condition:
    """One rule evaluated once: whether it holds, with the value it was judged on.

    ``message`` describes the current measurement in plain words (it is the
    message of a firing row, and of a resolved row after ``resolved: ``).
    ``scope`` tells apart conditions of one rule and feature that are tracked
    separately (the source of a window: ``stream``, ``sink``).
    """

    rule: str
    severity: str
    holds: bool
    message: str
    value: float | None = None
    threshold: float | None = None
    feature: str | None = None
    scope: str = ""

    @property
    def key(self) -> str:
        """What identifies this condition across evaluations: rule, scope and feature."""
        return "|".join((self.rule, self.scope, self.feature or ""))

    def row(self, now: datetime, state: str) -> dict[str, Any]:
        """A row of the ``alerts`` table (without the window and collector columns)."""
        message = self.message if state == "firing" else f"resolved: {self.message}"
        return {
            "raised_at": now,
            "rule": self.rule,
            "severity": self.severity,
            "state": state,
            "message": message,
            "feature": self.feature,
            "value": self.value,
            "threshold": self.threshold,
        }


def drift_conditions(
    drift_rows: Iterable[dict[str, Any]],
    methods: Iterable[str] = ("psi",),
    min_count: int = 200,
    scope: str = "",
) -> list[Condition]:
    """One condition per feature and alerting method: did the window drift?

    Windows with fewer than ``min_count`` values of the feature are not
    evaluated: binned distances of a handful of values are mostly sampling noise
    (PSI over 10 bins has an expected value near 10/n under no drift). Their
    profiles still reach the lake, where drift over longer periods is recomputed.
    """
    wanted = set(methods)
    out = []
    for r in drift_rows:
        if r["method"] not in wanted or r.get("count", min_count) < min_count:
            continue
        value = float(r["value"])
        if not math.isfinite(value):
            continue
        verb = "drifted" if r["drifted"] else "within threshold"
        out.append(
            Condition(
                f"drift:{r['method']}",
                "warning",
                bool(r["drifted"]),
                f"{r['feature']} {verb}: {r['method']} {value:.3g} vs threshold {r['threshold']:.3g}",
                value=value,
                threshold=float(r["threshold"]),
                feature=r["feature"],
                scope=scope,
            )
        )
    return out


def golden_conditions(
    checks: int, passed: int, error_kinds: dict[str, int], min_pass_rate: float
) -> list[Condition]:
    """Endpoint unreachable (critical) and golden pass rate below the minimum (warning).

    While no check gets an answer, only ``endpoint_unreachable`` is evaluated:
    the pass rate says nothing about the model then, and its alert keeps its state.
    """
    if checks == 0:
        return []
    kinds = ", ".join(f"{k}={v}" for k, v in sorted(error_kinds.items()))
    unreachable = sum(error_kinds.get(k, 0) for k in UNREACHABLE_KINDS)
    if unreachable == checks:
        return [
            Condition(
                "endpoint_unreachable",
                "critical",
                True,
                f"no golden check got an answer ({kinds})",
                value=0.0,
                threshold=min_pass_rate,
            )
        ]
    rate = passed / checks
    answered = checks - unreachable
    return [
        Condition(
            "endpoint_unreachable",
            "critical",
            False,
            f"endpoint answered {answered} of {checks} golden checks",
            value=answered / checks,
            threshold=min_pass_rate,
        ),
        Condition(
            "golden_pass_rate",
            "warning",
            rate < min_pass_rate,
            f"golden checks passed {rate:.1%} (minimum {min_pass_rate:.1%})"
            + (f"; failures: {kinds}" if kinds else ""),
            value=rate,
            threshold=min_pass_rate,
        ),
    ]


def drift_alerts(
    drift_rows: Iterable[dict[str, Any]],
    now: datetime,
    methods: Iterable[str] = ("psi",),
    min_count: int = 200,
) -> list[dict[str, Any]]:
    """Firing rows for every drifted feature of one window, without any state.

    The collector writes state changes instead (:class:`AlertState`); this is
    the rule alone, e.g. for a notebook.
    """
    conds = drift_conditions(drift_rows, methods, min_count)
    return [c.row(now, "firing") for c in conds if c.holds]


def golden_alerts(
    checks: int, passed: int, error_kinds: dict[str, int], now: datetime, min_pass_rate: float
) -> list[dict[str, Any]]:
    """Firing rows of one golden run, without any state (see :func:`drift_alerts`)."""
    conds = golden_conditions(checks, passed, error_kinds, min_pass_rate)
    return [c.row(now, "firing") for c in conds if c.holds]


class AlertState:
    """Which conditions are firing, per model; kept in one JSON file on the state volume.

    Parameters
    ----------
    path
        The file (``state_dir/alerts.json``); missing means nothing is firing.

    Examples
    --------
    >>> import tempfile
    >>> from datetime import UTC, datetime
    >>> state = AlertState(Path(tempfile.mkdtemp()) / "alerts.json")
    >>> t = datetime(2026, 10, 1, tzinfo=UTC)
    >>> down = golden_conditions(5, 0, {"connect": 5}, 1.0)
    >>> [r["state"] for r in state.update("m", down, t, t)]
    ['firing']
    >>> state.update("m", down, t, t)
    []
    >>> [r["state"] for r in state.update("m", golden_conditions(5, 5, {}, 1.0), t, t)]
    ['resolved']
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._state: dict[str, dict[str, dict[str, Any]]] = {}
        self._dirty = False
        if path.exists():
            loaded = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                self._state = loaded

    def firing(self, model: str) -> list[str]:
        """Keys of the conditions firing for ``model`` (``rule|scope|feature``), sorted."""
        return sorted(k for k, v in self._state.get(model, {}).items() if v.get("firing"))

    def update(
        self, model: str, conditions: Iterable[Condition], now: datetime, window_start: datetime
    ) -> list[dict[str, Any]]:
        """Apply one evaluation; return the rows of the state changes (firing or resolved)."""
        rows = []
        book = self._state.setdefault(model, {})
        stamp = window_start.strftime("%Y-%m-%dT%H:%M:%S.%f%z")  # sorts as time does
        for c in conditions:
            entry = book.get(c.key)
            if entry is not None and entry.get("window", "") > stamp:
                continue  # an older window than one already judged: late data changes nothing
            was_firing = entry is not None and bool(entry.get("firing"))
            if c.holds and not was_firing:
                rows.append(c.row(now, "firing"))
            elif was_firing and not c.holds:
                rows.append(c.row(now, "resolved"))
            book[c.key] = {"firing": c.holds, "window": stamp}
            self._dirty = True
        return rows

    def save(self) -> None:
        """Write the state if it changed (a temporary file, then an atomic rename)."""
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._state, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)
        self._dirty = False

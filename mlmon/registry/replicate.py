"""Replication test of a candidate version: the same golden inputs to candidate and champion.

Pure: the caller sends every golden case to both endpoints (``mlmon registry
test-candidate`` does it with the edge's probes) and hands over one
:class:`Answer` per case and endpoint; :func:`compare_versions` decides.

Per case (only cases both endpoints answered are compared):

* the outputs **agree** when they are the same classes (labels, compared as
  text) or, for numbers, ``|candidate - champion| <= score_abs_tol +
  score_rel_tol * |champion|`` for every element;
* each endpoint **passes** the case when its answer matches the golden set's
  expected output (the golden set's own rule).

The candidate **fails** (:class:`ReplicationTolerance`) when any of these holds:

====================  ===============================================================
check                 fails when
====================  ===============================================================
disagreement          disagreeing cases / compared cases > ``max_disagreement``
pass rate             candidate's pass rate < champion's - ``max_pass_rate_drop``
errors                the candidate left more cases unanswered than the champion
latency               candidate's median > champion's median x ``latency_ratio``
                      + ``latency_floor_ms``
output distribution   the candidate's outputs on the golden set, profiled on the
                      reference's bins of ``output_feature``, drift from the
                      champion's by more than the method's threshold (only when a
                      reference with that feature is given)
====================  ===============================================================

The outcome is ``error`` (nothing decided) when either endpoint answered no case
at all: it is down, or the URL, TLS or credentials are wrong.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from mlmon.analysis.drift import drift_between, method
from mlmon.errors import ConfigError
from mlmon.profiles.frame import Reference
from mlmon.profiles.kinds import CategoricalProfile, NumericProfile

__all__ = [
    "REPLICATION_CASE_COLUMNS",
    "Answer",
    "Replication",
    "ReplicationTolerance",
    "compare_versions",
    "outputs_agree",
]


@dataclass(frozen=True)
class Answer:
    """One endpoint's answer to one golden case; ``outputs`` stay in memory (not in ``repr``)."""

    ok: bool
    passed: bool
    latency_ms: float | None = None
    error_kind: str | None = None
    outputs: tuple[Any, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class ReplicationTolerance:
    """How far the candidate may differ from the champion and still pass.

    Parameters
    ----------
    max_disagreement
        Share of compared cases whose outputs may differ (default 0: every case agrees).
    score_abs_tol, score_rel_tol
        Numbers agree when ``|a - b| <= abs + rel x |champion|`` (defaults 1e-6, 1e-6).
    max_pass_rate_drop
        Allowed drop of the golden pass rate, absolute (default 0).
    latency_ratio, latency_floor_ms
        The candidate's median latency may be up to ``ratio x`` the champion's + ``floor``
        (defaults 1.5 and 50 ms: a few ms of jitter on a fast model do not fail the gate).
    output_drift_method
        Drift method for the output distributions (default ``jensen_shannon``).
    max_output_drift
        Its threshold; default the method's default threshold.
    """

    max_disagreement: float = 0.0
    score_abs_tol: float = 1e-6
    score_rel_tol: float = 1e-6
    max_pass_rate_drop: float = 0.0
    latency_ratio: float = 1.5
    latency_floor_ms: float = 50.0
    output_drift_method: str = "jensen_shannon"
    max_output_drift: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_disagreement", "max_pass_rate_drop"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
                raise ConfigError(f"{name} is {value!r}; use a fraction in [0, 1], e.g. 0.05")
        for name in ("score_abs_tol", "score_rel_tol", "latency_floor_ms"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} is {value!r}; use a number >= 0")
        if not (math.isfinite(self.latency_ratio) and self.latency_ratio >= 1.0):
            raise ConfigError(f"latency_ratio is {self.latency_ratio}; use a number >= 1, e.g. 1.5")
        method(self.output_drift_method)  # an unknown method names the registered ones
        if self.max_output_drift is not None and not math.isfinite(self.max_output_drift):
            raise ConfigError(f"max_output_drift is {self.max_output_drift}; use a finite number")

    @property
    def output_threshold(self) -> float:
        m = method(self.output_drift_method)
        return m.default_threshold if self.max_output_drift is None else self.max_output_drift


REPLICATION_CASE_COLUMNS: dict[str, pl.DataType] = {
    "case": pl.Int64(),
    "verdict": pl.String(),
    "candidate_passed": pl.Boolean(),
    "champion_passed": pl.Boolean(),
    "candidate_error": pl.String(),
    "champion_error": pl.String(),
    "score_delta": pl.Float64(),
    "candidate_latency_ms": pl.Float64(),
    "champion_latency_ms": pl.Float64(),
}
"""Columns of :attr:`Replication.cases`: outcomes and numbers only, never an output."""


@dataclass(frozen=True)
class Replication:
    """The decision: ``outcome`` (pass, fail, error), ``reasons``, per-case ``cases`` and
    ``summary`` (the ``version_checks`` numbers)."""

    outcome: str
    cases: pl.DataFrame
    summary: dict[str, Any]
    reasons: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.outcome == "pass"


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)


def _numbers(v: Any) -> np.ndarray | None:
    if _is_number(v):
        return np.asarray([float(v)])
    if isinstance(v, list | tuple) and v and all(_is_number(x) or isinstance(x, list | tuple)
                                                 for x in v):  # fmt: skip
        try:
            return np.asarray(v, dtype=float).ravel()
        except (TypeError, ValueError):
            return None
    return None


def _labels(v: Any) -> Any:
    if isinstance(v, list | tuple):
        return [_labels(x) for x in v]
    return str(v)


def outputs_agree(
    candidate: Sequence[Any], champion: Sequence[Any], tol: ReplicationTolerance | None = None
) -> tuple[bool, float | None]:
    """Do two answers to the same inputs agree? ``(agree, max |delta|)`` (delta None for labels).

    Integers that are class labels compare exactly (``0 == 0``); floats within the tolerance.

    Examples
    --------
    >>> outputs_agree([0.5000001], [0.5])[0], outputs_agree([1], [0]), outputs_agree(["a"], ["a"])
    (True, (False, 1.0), (True, None))
    """
    tol = tol or ReplicationTolerance()
    if len(candidate) != len(champion):
        return False, None
    a, b = _numbers(list(candidate)), _numbers(list(champion))
    if a is not None and b is not None:
        if a.shape != b.shape or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
            return False, None
        delta = np.abs(a - b)
        ok = bool(np.all(delta <= tol.score_abs_tol + tol.score_rel_tol * np.abs(b)))
        return ok, float(delta.max()) if delta.size else 0.0
    return _labels(list(candidate)) == _labels(list(champion)), None


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def _scalar_outputs(answers: Sequence[Answer]) -> list[Any]:
    out: list[Any] = []
    for a in answers:
        if not a.ok:
            continue
        for o in a.outputs:
            if isinstance(o, list | tuple):
                if len(o) != 1:
                    continue  # a score vector is not one value of the output feature
                o = o[0]
            if o is not None:
                out.append(o)
    return out


def output_profiles(
    reference: Reference, feature: str, candidate: Sequence[Answer], champion: Sequence[Answer]
) -> tuple[Any, Any] | None:
    """The two endpoints' scalar outputs profiled on the reference's bins of ``feature``."""
    ref = reference.profiles.get(feature)
    if ref is None:
        return None
    profs: list[Any] = []
    for answers in (candidate, champion):
        values = _scalar_outputs(answers)
        if isinstance(ref, NumericProfile):
            nums = [float(v) for v in values if _is_number(v) or isinstance(v, bool)]
            series = pl.Series(feature, nums, dtype=pl.Float64)
            profs.append(NumericProfile.from_series(
                series, edges=ref.edges, centre=ref.centre, alpha=ref.alpha, fine=ref.fine
            ))  # fmt: skip
        elif isinstance(ref, CategoricalProfile):
            series = pl.Series(feature, [str(v) for v in values], dtype=pl.String)
            profs.append(CategoricalProfile.from_series(series, categories=ref.categories))
        else:
            return None
    return profs[0], profs[1]


def compare_versions(
    candidate: Sequence[Answer],
    champion: Sequence[Answer],
    tolerance: ReplicationTolerance | None = None,
    *,
    reference: Reference | None = None,
    output_feature: str | None = None,
) -> Replication:
    """Compare the candidate's answers with the champion's, case by case (module docstring).

    Parameters
    ----------
    candidate, champion
        One :class:`Answer` per golden case, in the same order.
    tolerance
        Default :class:`ReplicationTolerance`.
    reference, output_feature
        The lake's reference of the model and the feature the model's output is profiled
        as (e.g. ``prediction``); without both, the output distributions are not compared.

    Raises
    ------
    ConfigError
        The two lists differ in length, or are empty.

    Examples
    --------
    >>> same = [Answer(True, True, 5.0, outputs=(1,)), Answer(True, True, 6.0, outputs=(0,))]
    >>> compare_versions(same, same).outcome
    'pass'
    >>> other = [Answer(True, False, 5.0, outputs=(0,)), same[1]]
    >>> r = compare_versions(other, same)
    >>> r.outcome, r.summary["disagreed"]
    ('fail', 1)
    """
    tol = tolerance or ReplicationTolerance()
    if len(candidate) != len(champion):
        raise ConfigError(
            f"{len(candidate)} candidate answers for {len(champion)} champion answers; send "
            "every golden case to both endpoints"
        )
    if not candidate:
        raise ConfigError("no golden case to compare; the golden set is empty")
    rows = []
    deltas: list[float] = []
    for i, (c, p) in enumerate(zip(candidate, champion, strict=True), start=1):
        delta = None
        if c.ok and p.ok:
            agree, delta = outputs_agree(c.outputs, p.outputs, tol)
            verdict = "agree" if agree else "differ"
            if delta is not None:
                deltas.append(delta)
        elif p.ok:
            verdict = "candidate error"
        elif c.ok:
            verdict = "champion error"
        else:
            verdict = "both error"
        rows.append({
            "case": i, "verdict": verdict, "candidate_passed": c.passed,
            "champion_passed": p.passed, "candidate_error": c.error_kind,
            "champion_error": p.error_kind, "score_delta": delta,
            "candidate_latency_ms": c.latency_ms if c.ok else None,
            "champion_latency_ms": p.latency_ms if p.ok else None,
        })  # fmt: skip
    cases = pl.DataFrame(rows, schema=REPLICATION_CASE_COLUMNS)
    verdicts = cases.get_column("verdict")
    n = len(candidate)
    agreed = int((verdicts == "agree").sum())
    disagreed = int((verdicts == "differ").sum())
    cand_errors = sum(not c.ok for c in candidate)
    champ_errors = sum(not p.ok for p in champion)
    cand_rate = sum(c.passed for c in candidate) / n
    champ_rate = sum(p.passed for p in champion) / n
    cand_p50 = _median([c.latency_ms for c in candidate if c.ok and c.latency_ms is not None])
    champ_p50 = _median([p.latency_ms for p in champion if p.ok and p.latency_ms is not None])
    summary: dict[str, Any] = {
        "cases": n,
        "agreed": agreed,
        "disagreed": disagreed,
        "candidate_errors": cand_errors,
        "champion_errors": champ_errors,
        "candidate_pass_rate": cand_rate,
        "champion_pass_rate": champ_rate,
        "max_score_delta": max(deltas) if deltas else None,
        "candidate_latency_p50_ms": cand_p50,
        "champion_latency_p50_ms": champ_p50,
        "latency_ratio": cand_p50 / champ_p50 if cand_p50 is not None and champ_p50 else None,
        "reference_id": None,
        "output_feature": output_feature,
        "output_drift_method": tol.output_drift_method,
        "output_drift": None,
        "output_drift_threshold": tol.output_threshold,
    }
    down = [
        name for name, errs in (("candidate", cand_errors), ("champion", champ_errors)) if errs == n
    ]
    if down:
        kinds = {
            name: sorted({a.error_kind or "error" for a in answers})
            for name, answers in (("candidate", candidate), ("champion", champion))
        }
        reasons = tuple(
            f"the {name}'s endpoint answered none of the {n} golden cases "
            f"({', '.join(kinds[name])}); nothing was decided"
            for name in down
        )
        return Replication("error", cases, summary, reasons)

    reasons_l: list[str] = []
    compared = agreed + disagreed
    if compared and disagreed / compared > tol.max_disagreement + 1e-12:
        reasons_l.append(
            f"outputs differ in {disagreed} of {compared} cases ({disagreed / compared:.1%}; "
            f"allowed {tol.max_disagreement:.1%})"
        )
    if cand_rate < champ_rate - tol.max_pass_rate_drop - 1e-12:
        reasons_l.append(
            f"golden pass rate {cand_rate:.1%} is below the champion's {champ_rate:.1%} "
            f"(allowed drop {tol.max_pass_rate_drop:.1%})"
        )
    if cand_errors > champ_errors:
        reasons_l.append(
            f"the candidate did not answer {cand_errors} case(s), the champion {champ_errors}"
        )
    if cand_p50 is not None and champ_p50 is not None:
        limit = champ_p50 * tol.latency_ratio + tol.latency_floor_ms
        if cand_p50 > limit:
            reasons_l.append(
                f"median latency {cand_p50:.1f} ms is above {limit:.1f} ms (the champion's "
                f"{champ_p50:.1f} ms x {tol.latency_ratio:g} + {tol.latency_floor_ms:g} ms)"
            )
    if reference is not None and output_feature is not None:
        profs = output_profiles(reference, output_feature, candidate, champion)
        if profs is not None:
            cand_prof, champ_prof = profs
            summary["reference_id"] = reference.reference_id
            res = drift_between(
                champ_prof, cand_prof, [tol.output_drift_method],
                {tol.output_drift_method: tol.output_threshold},
            )  # fmt: skip
            if res:
                value = float(res[0]["value"])
                summary["output_drift"] = None if math.isnan(value) else value
                if res[0]["drifted"]:
                    reasons_l.append(
                        f"the candidate's {output_feature} distribution on the golden set "
                        f"drifts from the champion's: {tol.output_drift_method} {value:.4f} "
                        f"(threshold {tol.output_threshold:g})"
                    )
    outcome = "fail" if reasons_l else "pass"
    return Replication(outcome, cases, summary, tuple(reasons_l))

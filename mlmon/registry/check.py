"""Compare a candidate version's golden results with the production version's, case by case.

Pure: the caller runs the golden set against the candidate's endpoint and reads
the production version's golden rows from the lake; :func:`compare_golden`
decides, per case (matched on ``sample_id_hmac``):

=================  ==============================================================
verdict            when
=================  ==============================================================
``ok``             production passed the case (in at least half its checks) and
                   the candidate passes it
``regressed``      production passed it, the candidate fails it
``improved``       production failed it (in more than half its checks), the
                   candidate passes it
``still failing``  both fail it
``no baseline``    the lake has no check of this case for the production version
                   (not counted either way)
=================  ==============================================================

The candidate is *at least as good* (exit 0) when all of these hold
(:class:`CheckTolerance`): regressed cases <= ``max_regressed_cases``; its pass
rate over the cases with a baseline >= production's minus ``max_pass_rate_drop``;
its median latency <= production's median x ``latency_ratio`` + ``latency_floor_ms``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from mlmon.errors import ConfigError

__all__ = ["CASE_COLUMNS", "CheckResult", "CheckTolerance", "compare_golden"]

CASE_COLUMNS: dict[str, pl.DataType] = {
    "case": pl.Int64(),
    "sample": pl.String(),
    "verdict": pl.String(),
    "baseline_checks": pl.Int64(),
    "baseline_pass_rate": pl.Float64(),
    "candidate_passed": pl.Boolean(),
    "candidate_error": pl.String(),
    "output_delta": pl.Float64(),
    "baseline_latency_ms": pl.Float64(),
    "candidate_latency_ms": pl.Float64(),
}
"""Columns of :attr:`CheckResult.cases`; ``sample`` is a prefix of the sample id's HMAC."""


@dataclass(frozen=True)
class CheckTolerance:
    """How much worse than production the candidate may be and still pass.

    Parameters
    ----------
    max_regressed_cases
        Cases production passed and the candidate fails, allowed (default 0).
    max_pass_rate_drop
        Allowed drop of the pass rate, absolute (default 0.0).
    latency_ratio, latency_floor_ms
        The candidate's median latency may be up to ``ratio x`` production's
        median ``+ floor_ms`` (defaults 1.5 and 50 ms; the floor keeps a few
        milliseconds of jitter on a fast model from failing the gate).
    """

    max_regressed_cases: int = 0
    max_pass_rate_drop: float = 0.0
    latency_ratio: float = 1.5
    latency_floor_ms: float = 50.0

    def __post_init__(self) -> None:
        if isinstance(self.max_regressed_cases, bool) or self.max_regressed_cases < 0:
            raise ConfigError(
                f"max_regressed_cases is {self.max_regressed_cases!r}; use a whole number >= 0"
            )
        if not 0.0 <= self.max_pass_rate_drop <= 1.0:
            raise ConfigError(
                f"max_pass_rate_drop is {self.max_pass_rate_drop}; use a fraction in [0, 1]"
            )
        if not (math.isfinite(self.latency_ratio) and self.latency_ratio >= 1.0):
            raise ConfigError(f"latency_ratio is {self.latency_ratio}; use a number >= 1, e.g. 1.5")
        if not (math.isfinite(self.latency_floor_ms) and self.latency_floor_ms >= 0):
            raise ConfigError(f"latency_floor_ms is {self.latency_floor_ms}; use a number >= 0")


@dataclass(frozen=True)
class CheckResult:
    """Per-case table, summary figures and the verdict of one check."""

    cases: pl.DataFrame
    summary: dict[str, Any]
    failures: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        """True when the candidate is at least as good as production within the tolerance."""
        return not self.failures


def _median(values: pl.Series) -> float | None:
    values = values.drop_nulls()
    return float(values.median()) if values.len() else None  # type: ignore[arg-type]


def compare_golden(
    candidate: pl.DataFrame,
    baseline: pl.DataFrame,
    tolerance: CheckTolerance | None = None,
) -> CheckResult:
    """Compare the candidate's golden run with production's recorded golden checks.

    Parameters
    ----------
    candidate
        One row per golden case, in file order: ``sample_id_hmac``, ``passed``,
        ``error_kind``, ``latency_ms`` and ``output_delta`` (max absolute
        difference from the expected output; null for labels or no answer).
    baseline
        The lake's ``golden`` rows of the production version: ``sample_id_hmac``,
        ``passed``, ``latency_ms`` (any number of checks per case).
    tolerance
        Default :class:`CheckTolerance`.

    Raises
    ------
    ConfigError
        ``baseline`` has no row for any of the candidate's cases (nothing to compare with).

    Examples
    --------
    >>> cand = pl.DataFrame({"sample_id_hmac": ["a"], "passed": [True], "error_kind": [None],
    ...                      "latency_ms": [5.0], "output_delta": [0.0]})
    >>> base = pl.DataFrame({"sample_id_hmac": ["a", "a"], "passed": [True, True],
    ...                      "latency_ms": [4.0, 6.0]})
    >>> compare_golden(cand, base).passed
    True
    """
    tol = tolerance or CheckTolerance()
    per_case = baseline.group_by("sample_id_hmac").agg(
        pl.len().cast(pl.Int64).alias("baseline_checks"),
        pl.col("passed").cast(pl.Float64).mean().alias("baseline_pass_rate"),
        pl.col("latency_ms").median().alias("baseline_latency_ms"),
    )
    cases = (
        candidate.with_row_index("case", offset=1)
        .join(per_case, on="sample_id_hmac", how="left")
        .with_columns(
            pl.col("sample_id_hmac").str.slice(0, 12).alias("sample"),
            pl.col("passed").alias("candidate_passed"),
            pl.col("error_kind").alias("candidate_error"),
            pl.col("latency_ms").alias("candidate_latency_ms"),
        )
    )
    base_ok = pl.col("baseline_pass_rate") >= 0.5
    verdict = (
        pl.when(pl.col("baseline_checks").is_null())
        .then(pl.lit("no baseline"))
        .when(base_ok & pl.col("candidate_passed"))
        .then(pl.lit("ok"))
        .when(base_ok)
        .then(pl.lit("regressed"))
        .when(pl.col("candidate_passed"))
        .then(pl.lit("improved"))
        .otherwise(pl.lit("still failing"))
    )
    cases = cases.with_columns(verdict.alias("verdict"))
    cases = cases.select([pl.col(c).cast(t) for c, t in CASE_COLUMNS.items()]).sort("case")

    compared = cases.filter(pl.col("baseline_checks").is_not_null())
    if compared.height == 0:
        raise ConfigError(
            "the lake has no golden check of the production version for any case of this "
            "golden set; run the edge collector's golden checks against production first, check "
            "that the same HMAC key is used, or pass --baseline-version"
        )
    regressed = int((compared.get_column("verdict") == "regressed").sum())
    base_rate = float(compared.get_column("baseline_pass_rate").mean())  # type: ignore[arg-type]
    cand_rate = float(compared.get_column("candidate_passed").cast(pl.Float64).mean())  # type: ignore[arg-type]
    base_p50 = _median(baseline.get_column("latency_ms"))
    cand_p50 = _median(candidate.filter(pl.col("passed")).get_column("latency_ms"))
    deltas = cases.get_column("output_delta").drop_nulls()
    summary = {
        "cases": cases.height,
        "compared": compared.height,
        "no_baseline": cases.height - compared.height,
        "regressed": regressed,
        "improved": int((cases.get_column("verdict") == "improved").sum()),
        "baseline_pass_rate": base_rate,
        "candidate_pass_rate": cand_rate,
        "baseline_latency_p50_ms": base_p50,
        "candidate_latency_p50_ms": cand_p50,
        "max_output_delta": float(deltas.max()) if deltas.len() else None,  # type: ignore[arg-type]
    }
    failures = []
    if regressed > tol.max_regressed_cases:
        failures.append(
            f"{regressed} case(s) regressed (production passed, candidate fails); "
            f"allowed {tol.max_regressed_cases}"
        )
    if cand_rate < base_rate - tol.max_pass_rate_drop - 1e-12:
        failures.append(
            f"pass rate {cand_rate:.1%} is below production's {base_rate:.1%} "
            f"(allowed drop {tol.max_pass_rate_drop:.1%})"
        )
    if base_p50 is not None and cand_p50 is not None:
        limit = base_p50 * tol.latency_ratio + tol.latency_floor_ms
        if cand_p50 > limit:
            failures.append(
                f"median latency {cand_p50:.1f} ms is above {limit:.1f} ms (production's "
                f"{base_p50:.1f} ms x {tol.latency_ratio:g} + {tol.latency_floor_ms:g} ms)"
            )
    return CheckResult(cases, summary, tuple(failures))

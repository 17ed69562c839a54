"""Subgroup performance gaps: the largest difference of a rate across segments, with its interval.

For a binary classifier each segment's labelled rows give a confusion matrix
(at the reference's first threshold, or the model's logged decisions). Three
rates are compared across the segments of one segment column:

* ``recall`` (sensitivity), ``TP / (TP + FN)``, over the segment's positives;
* ``false_positive_rate``, ``FP / (FP + TN)``, over its negatives;
* ``precision``, ``TP / (TP + FP)``, over its positive predictions.

The gap of a rate is its highest segment value minus its lowest. Its 95%
interval is Newcombe's hybrid score interval for a difference of two
independent proportions (Newcombe 1998, method 10: Wilson score intervals of
each proportion, combined), the interval statsmodels'
``confint_proportions_2indep(method="newcomb")`` gives. It treats the two
segments as chosen in advance, so it is optimistic for the largest of many
differences: read it as the interval of that pair.

A segment whose denominator is below ``min_count`` (default
:data:`~mlmon.profiles.kinds.SHOWN_MIN_COUNT`) takes no part in a gap: its
rate rests on too few records to show, and it would win the largest
difference by noise alone. The gap is computed on exact counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from mlmon.profiles.kinds import SHOWN_MIN_COUNT
from mlmon.profiles.performance import PerformanceProfile

__all__ = ["GAP_RATES", "newcombe_interval", "subgroup_gap_rows", "wilson_interval"]

#: Rate name -> (numerator, denominator) of the confusion counts ``tn, fp, fn, tp``.
GAP_RATES: dict[str, tuple[str, tuple[str, ...]]] = {
    "recall": ("tp", ("tp", "fn")),
    "false_positive_rate": ("fp", ("fp", "tn")),
    "precision": ("tp", ("tp", "fp")),
}

#: The normal quantile of a two-sided 95% interval.
_Z95 = 1.959963984540054


def wilson_interval(successes: float, n: float, z: float = _Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (no continuity correction).

    Examples
    --------
    >>> [round(v, 4) for v in wilson_interval(8, 10)]
    [0.4902, 0.9433]
    """
    if n <= 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def newcombe_interval(
    x1: float, n1: float, x2: float, n2: float, z: float = _Z95
) -> tuple[float, float]:
    """Newcombe's hybrid score interval of ``x1/n1 - x2/n2`` (independent proportions).

    Examples
    --------
    >>> [round(v, 4) for v in newcombe_interval(56, 70, 48, 80)]
    [0.0524, 0.3339]
    """
    if n1 <= 0 or n2 <= 0:
        return (math.nan, math.nan)
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson_interval(x1, n1, z)
    l2, u2 = wilson_interval(x2, n2, z)
    d = p1 - p2
    return (
        d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
    )


def _counts(p: PerformanceProfile) -> dict[str, float]:
    (tn, fp), (fn, tp) = np.asarray(p.confusion[0], dtype=np.float64)
    return {"tn": float(tn), "fp": float(fp), "fn": float(fn), "tp": float(tp)}


def subgroup_gap_rows(
    profiles: Mapping[str, PerformanceProfile], *, min_count: int = SHOWN_MIN_COUNT
) -> list[dict[str, Any]]:
    """One row per rate: the largest difference across ``profiles`` (segment value -> profile).

    Returns rows with ``metric``, ``gap`` (highest minus lowest rate), ``lower`` and
    ``upper`` (its 95% Newcombe interval), ``high_segment`` / ``high_value`` /
    ``high_count`` and ``low_segment`` / ``low_value`` / ``low_count`` (the two
    segments, their rates and denominators) and ``segments`` (how many segments
    took part). Fewer than two segments with ``min_count`` records in the
    denominator give a row of NaN.
    """
    counts = {
        key: _counts(p)
        for key, p in profiles.items()
        if p.spec.task == "binary" and p.count_labelled > 0
    }
    out: list[dict[str, Any]] = []
    for name, (num, den) in GAP_RATES.items():
        rates = []
        for key, c in sorted(counts.items()):
            n = sum(c[d] for d in den)
            if n >= min_count and n > 0:
                rates.append((c[num] / n, key, c[num], n))
        row: dict[str, Any] = {"metric": name, "segments": len(rates)}
        if len(rates) < 2:
            row.update(gap=math.nan, lower=math.nan, upper=math.nan)
            row.update(high_segment=None, high_value=math.nan, high_count=None)
            row.update(low_segment=None, low_value=math.nan, low_count=None)
            out.append(row)
            continue
        rates.sort(key=lambda r: (r[0], r[1]))
        lo, hi = rates[0], rates[-1]
        lower, upper = newcombe_interval(hi[2], hi[3], lo[2], lo[3])
        row.update(gap=hi[0] - lo[0], lower=lower, upper=upper)
        row.update(high_segment=hi[1], high_value=hi[0], high_count=int(hi[3]))
        row.update(low_segment=lo[1], low_value=lo[0], low_count=int(lo[3]))
        out.append(row)
    return out

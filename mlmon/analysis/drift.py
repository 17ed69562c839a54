"""Drift methods: pure functions over aligned counts or two sketches, in one registry.

Binned methods take the reference's and the current window's counts over
the same bins (numeric: reference-quantile bins plus two overflow bins;
categorical: vocabulary plus ``__other__``). Sketch methods take the two
numeric profiles and compare their quantile sketches (exact at shared
bucket boundaries, see :func:`mlmon.profiles.sketch.cdf_distances`).

Discrete numeric features (at most :data:`~mlmon.profiles.kinds.DISCRETE_MAX`
distinct reference values) have one bin per reference value: the binned
methods compare exact per-value counts (plus the counts between and beyond
the values), and KS and Wasserstein-1 are computed from those counts, exact
when every value is on the reference's support
(:func:`mlmon.profiles.sketch.discrete_cdf_distances`).

Default thresholds (a window is *drifted* when the value is above the
threshold, or below it for p-values):

==============  =========  ==========================================================
method          threshold  meaning
==============  =========  ==========================================================
psi             0.2        population stability index; 0.1-0.2 moderate, > 0.2 major
jensen_shannon  0.1        Jensen-Shannon distance, base 2, in [0, 1]
hellinger       0.1        Hellinger distance in [0, 1]
chi_square      0.05       p-value of the chi-square test on the 2 x k table (below)
ks              0.1        Kolmogorov-Smirnov statistic in [0, 1]
wasserstein     0.1        Wasserstein-1 divided by the reference's standard deviation
==============  =========  ==========================================================

Beside each value, :meth:`DriftMethod.statistics` gives ``statistic``, ``dof``
and ``p_value``: the chi-square statistic, degrees of freedom and p-value;
the KS statistic and its asymptotic p-value; the raw Wasserstein-1 (in the
feature's units). Thresholds per feature and data-driven thresholds:
:mod:`mlmon.analysis.thresholds`.

NannyML-compatible mode: a reference built with ``binning="nannyml"``
(:mod:`mlmon.profiles.binning`) bins numeric features with NannyML 0.13's rule,
and ``ks`` and ``wasserstein`` then use NannyML's 10,000-bin estimates
(:mod:`mlmon.profiles.fine`), so ``jensen_shannon``, ``hellinger``, the raw
Wasserstein (``statistic``) and the chi-square ``statistic`` equal NannyML's
``UnivariateDriftCalculator`` (``benchmarks/bench_nannyml_compare.py``).

Empty bins: PSI, Jensen-Shannon and Hellinger use proportions with zero
bins clipped to ``EPS = 1e-4`` (then renormalised) for PSI only; JS and
Hellinger are finite with empty bins as they are. Chi-square drops bins
empty in both samples and follows scipy's ``chi2_contingency`` (Yates'
correction when there are two bins), NannyML's convention, which is far less
trigger-happy at large n than a goodness-of-fit test.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import special, stats

from mlmon.errors import DuplicateNameError, ProfileError, UnknownNameError
from mlmon.profiles.fine import FineHistogram
from mlmon.profiles.kinds import CategoricalProfile, NumericProfile
from mlmon.profiles.sketch import cdf_distances, discrete_cdf_distances

try:  # what scipy.stats.kstwo.sf computes for 0.5/n < d < 1 (see _kstwo_sf)
    from scipy.stats._ksstats import _kolmogn
except ImportError:  # pragma: no cover - a scipy that moved it: the public call is used
    _kolmogn = None

__all__ = [
    "DETAIL_FIELDS",
    "EPS",
    "METHODS",
    "DriftMethod",
    "chi_square",
    "chi_square_test",
    "drift_between",
    "hellinger",
    "jensen_shannon",
    "ks",
    "ks_test",
    "method",
    "method_details",
    "psi",
    "register_method",
    "wasserstein",
    "wasserstein_distance",
]

EPS = 1e-4


def _proportions(counts: np.ndarray) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    if total <= 0:
        raise ProfileError("cannot compute drift on an empty distribution (all counts are zero)")
    return c / total


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index, ``sum((p_c - p_r) * ln(p_c / p_r))``.

    Proportions are clipped below at :data:`EPS` so empty bins stay finite.
    """
    p = np.clip(_proportions(reference), EPS, None)
    q = np.clip(_proportions(current), EPS, None)
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen-Shannon distance with base-2 logarithms (in [0, 1]), like scipy's ``jensenshannon``."""
    p, q = _proportions(reference), _proportions(current)
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0)
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0)
    js = 0.5 * (kl_p.sum() + kl_q.sum())
    return float(math.sqrt(max(js, 0.0)))


def hellinger(reference: np.ndarray, current: np.ndarray) -> float:
    """Hellinger distance ``sqrt(1 - sum(sqrt(p * q)))`` in [0, 1]."""
    p, q = _proportions(reference), _proportions(current)
    bc = float(np.sum(np.sqrt(p * q)))
    return float(math.sqrt(max(1.0 - bc, 0.0)))


def chi_square(reference: np.ndarray, current: np.ndarray) -> float:
    """p-value of the chi-square test of independence on the 2 x k table of counts.

    Bins empty in both samples are dropped; with one bin left the
    distributions are identical and the p-value is 1.
    """
    return chi_square_test(reference, current)[2]


def chi_square_test(reference: np.ndarray, current: np.ndarray) -> tuple[float, int, float]:
    """Statistic, degrees of freedom and p-value of the chi-square test on the 2 x k table.

    Equal to ``scipy.stats.chi2_contingency(table, correction=True)`` on the
    table without its all-empty bins; one bin left gives ``(0.0, 0, 1.0)``.
    """
    ref, cur = np.array(reference, float), np.array(current, float)  # copies: the cache key
    last = getattr(_LAST_CHI, "value", None)
    if last is not None and np.array_equal(last[0], ref) and np.array_equal(last[1], cur):
        return last[2]
    out = _chi_square_test(ref, cur)
    _LAST_CHI.value = (ref, cur, out)
    return out


#: The last chi-square test of each thread: the value and the statistics of one comparison
#: ask for the same two count vectors in a row (``drift_between``).
_LAST_CHI = threading.local()


def _chi_square_test(reference: np.ndarray, current: np.ndarray) -> tuple[float, int, float]:
    table = np.vstack([np.asarray(reference, float), np.asarray(current, float)])
    if table[0].sum() <= 0 or table[1].sum() <= 0:
        raise ProfileError("cannot compute drift on an empty distribution (all counts are zero)")
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 0, 1.0
    # scipy.stats.chi2_contingency(table, correction=True), written out: the same
    # statistic and p-value (tested) at a tenth of the cost, which matters for
    # hourly drift over a month (tens of thousands of tables).
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    dof = table.shape[1] - 1
    if dof == 1:  # Yates' continuity correction, as scipy applies it
        diff = expected - table
        table = table + np.sign(diff) * np.minimum(0.5, np.abs(diff))
    statistic = float(np.sum((table - expected) ** 2 / expected))
    return statistic, dof, float(special.chdtrc(dof, statistic))


def ks(reference: NumericProfile, current: NumericProfile) -> float:
    """Kolmogorov-Smirnov statistic from the two quantile sketches.

    With NannyML-compatible binning (both profiles keep a fine histogram),
    NannyML's estimate from its 10,000 equal-width bins instead.
    """
    fine = _fine_pair(reference, current)
    if fine is not None:
        return fine[0].ks(fine[1])
    return _sketch_pair(reference, current)[0]


def ks_test(reference: NumericProfile, current: NumericProfile) -> tuple[float, float]:
    """KS statistic from the sketches and its two-sided asymptotic p-value.

    The p-value is scipy's ``ks_2samp(method="asymp")`` formula,
    ``kstwo.sf(D, round(n * m / (n + m)))``, applied to the sketch's ``D``.
    """
    d = ks(reference, current)
    n, m = reference.count, current.count
    return d, _kstwo_sf(d, round(n * m / (n + m)))


def _kstwo_sf(d: float, n: int) -> float:
    """``scipy.stats.kstwo.sf(d, n)``, without the distribution's argument handling where
    it only passes ``d`` on: scipy's own ``_kolmogn`` (the same value, tested), about a
    quarter cheaper, which counts when every window of a backfill gets a KS p-value."""
    if _kolmogn is not None and n >= 1 and 0.5 / n < d < 1.0:
        return float(_kolmogn(n, np.float64(d), cdf=False))
    return float(stats.kstwo.sf(d, n))


def wasserstein_distance(reference: NumericProfile, current: NumericProfile) -> float:
    """Wasserstein-1 distance from the two quantile sketches, in the feature's units.

    With NannyML-compatible binning (both profiles keep a fine histogram),
    NannyML's estimate from its 10,000 equal-width bins instead (equal to
    NannyML 0.13's value; :mod:`mlmon.profiles.fine`).
    """
    fine = _fine_pair(reference, current)
    if fine is not None:
        return fine[0].wasserstein(fine[1])
    return _sketch_pair(reference, current)[1]


def wasserstein(reference: NumericProfile, current: NumericProfile) -> float:
    """Wasserstein-1 divided by the reference's standard deviation (scale-free).

    A constant reference (std 0) uses 1 as the scale.
    """
    w = wasserstein_distance(reference, current)
    std = reference.std
    return w / std if std > 0 else w


def _fine_pair(
    reference: NumericProfile, current: NumericProfile
) -> tuple[FineHistogram, FineHistogram] | None:
    """Both fine histograms when both profiles have compatible ones (NannyML binning)."""
    a, b = reference.fine, current.fine
    if a is None or b is None or not a.compatible(b):
        return None
    if a.total == 0 or b.total == 0:
        raise ProfileError("cannot compute drift on an empty distribution (no finite values)")
    return a, b


#: The last sketch comparison of each thread: KS and Wasserstein, their values and their
#: statistics ask for the same pair of profiles four times in a row (``drift_between``).
_LAST_PAIR = threading.local()


def _sketch_pair(reference: NumericProfile, current: NumericProfile) -> tuple[float, float]:
    last = getattr(_LAST_PAIR, "value", None)
    if last is not None and last[0] is reference and last[1] is current:
        return last[2]
    out = _sketch_pair_uncached(reference, current)
    _LAST_PAIR.value = (reference, current, out)  # holds the pair: ids cannot be reused
    return out


def _sketch_pair_uncached(
    reference: NumericProfile, current: NumericProfile
) -> tuple[float, float]:
    if reference.centre != current.centre:
        raise ProfileError(
            "sketches were centred differently (different references); compare profiles "
            "built on the same reference"
        )
    assert reference.sketch is not None and current.sketch is not None
    if reference.count == 0 or current.count == 0:
        raise ProfileError("cannot compute drift on an empty distribution (no finite values)")
    exact = _discrete_pair(reference, current)
    if exact is not None:
        return exact
    return cdf_distances(reference.sketch, current.sketch)


def _discrete_pair(
    reference: NumericProfile, current: NumericProfile
) -> tuple[float, float] | None:
    """KS and Wasserstein-1 from the exact per-value counts of a discrete feature.

    ``None`` unless both profiles have the same discrete bins
    (:func:`mlmon.profiles.kinds.discrete_edges`); values off the support are
    taken from the sketches (:func:`mlmon.profiles.sketch.discrete_cdf_distances`).
    """
    support = reference.support
    if support is None or not np.array_equal(reference.edges, current.edges):
        return None
    ref_points, cur_points = reference.support_counts, current.support_counts
    assert reference.sketch is not None and current.sketch is not None
    assert ref_points is not None and cur_points is not None
    return discrete_cdf_distances(
        support, ref_points, reference.sketch, cur_points, current.sketch, reference.centre
    )


@dataclass(frozen=True)
class DriftMethod:
    """One registered drift method.

    ``uses`` says what the function takes: ``"counts"`` (two aligned count
    vectors) or ``"sketch"`` (two numeric profiles). ``direction`` is
    ``"above"`` when larger values mean drift, ``"below"`` for p-values.
    """

    func: Callable[[Any, Any], float]
    uses: Literal["counts", "sketch"]
    kinds: tuple[str, ...]
    default_threshold: float
    direction: Literal["above", "below"]
    bounds: tuple[float, float]
    description: str
    #: Optional: the method's test statistic, degrees of freedom and p-value
    #: (keys ``statistic``, ``dof``, ``p_value``), same inputs as ``func``.
    details: Callable[[Any, Any], dict[str, float | int]] | None = None

    def statistics(self, reference: Any, current: Any) -> dict[str, float | int | None]:
        """``statistic``, ``dof`` and ``p_value`` of one comparison (None where not defined)."""
        out: dict[str, float | int | None] = dict.fromkeys(DETAIL_FIELDS)
        if self.details is not None:
            args = (reference.bins, current.bins) if self.uses == "counts" else (reference, current)
            out.update(self.details(*args))
        return out

    def is_drifted(self, value: float, threshold: float | None = None) -> bool:
        t = self.default_threshold if threshold is None else threshold
        if math.isnan(value):
            return False
        return value > t if self.direction == "above" else value < t

    def __call__(self, reference: Any, current: Any) -> float:
        if self.uses == "counts":
            return float(self.func(reference.bins, current.bins))
        return float(self.func(reference, current))


#: The extra fields of a drift result beside ``value`` (see :meth:`DriftMethod.statistics`).
DETAIL_FIELDS = ("statistic", "dof", "p_value")


def _chi_square_details(reference: np.ndarray, current: np.ndarray) -> dict[str, float | int]:
    statistic, dof, p = chi_square_test(reference, current)
    return {"statistic": statistic, "dof": dof, "p_value": p}


def _ks_details(reference: NumericProfile, current: NumericProfile) -> dict[str, float | int]:
    d, p = ks_test(reference, current)
    return {"statistic": d, "p_value": p}


def _wasserstein_details(
    reference: NumericProfile, current: NumericProfile
) -> dict[str, float | int]:
    return {"statistic": wasserstein_distance(reference, current)}


def method_details(name: str, reference: Any, current: Any) -> dict[str, float | int | None]:
    """``statistic``, ``dof`` and ``p_value`` of method ``name`` on two profiles."""
    return method(name).statistics(reference, current)


def method(name: str) -> DriftMethod:
    """Look up a drift method by name."""
    try:
        return METHODS[name]
    except KeyError as exc:
        raise UnknownNameError(
            f"unknown drift method {name!r}; registered methods: {', '.join(sorted(METHODS))}"
        ) from exc


def register_method(name: str, drift_method: DriftMethod, *, replace: bool = False) -> None:
    """Register a third-party drift method; refuses to replace one unless ``replace=True``."""
    if name in METHODS and not replace:
        raise DuplicateNameError(f"drift method {name!r} is already registered; pass replace=True")
    METHODS[name] = drift_method


def drift_between(
    reference: NumericProfile | CategoricalProfile,
    current: NumericProfile | CategoricalProfile,
    methods: list[str] | tuple[str, ...] | None = None,
    thresholds: Mapping[str, float] | None = None,
    *,
    details: bool = True,
) -> list[dict[str, Any]]:
    """Apply every applicable method to one feature; one dict per method.

    Each dict has ``method``, ``value``, ``threshold``, ``drifted`` and the
    :data:`DETAIL_FIELDS` (``statistic``: chi-square statistic, KS ``D`` or raw
    Wasserstein-1 in the feature's units; ``dof``; ``p_value``: chi-square or
    KS; None where a method has none). Methods that do not apply to the
    feature's kind are skipped; an empty current profile gives ``value = nan``
    and ``drifted = False``. ``details=False`` leaves the detail fields None (the KS
    p-value costs more than every method's value together).
    """
    names = list(methods) if methods is not None else list(METHODS)
    thresholds = thresholds or {}
    rows = []
    for name in names:
        m = method(name)
        if reference.kind not in m.kinds:
            continue
        t = thresholds.get(name, m.default_threshold)
        found: dict[str, float | int | None] = dict.fromkeys(DETAIL_FIELDS)
        try:
            if current.count > 0:
                value = m(reference, current)
                if details:
                    found = m.statistics(reference, current)
            else:
                value = math.nan
        except ProfileError:
            value = math.nan
        rows.append(
            {
                "method": name,
                "value": value,
                "threshold": t,
                "drifted": m.is_drifted(value, t),
                **found,
            }
        )
    return rows


METHODS: dict[str, DriftMethod] = {
    "psi": DriftMethod(
        psi, "counts", ("numeric", "categorical"), 0.2, "above", (0.0, math.inf),
        "Population stability index over the reference bins (proportions clipped at 1e-4).",
    ),
    "jensen_shannon": DriftMethod(
        jensen_shannon, "counts", ("numeric", "categorical"), 0.1, "above", (0.0, 1.0),
        "Jensen-Shannon distance (base 2) over the reference bins.",
    ),
    "hellinger": DriftMethod(
        hellinger, "counts", ("numeric", "categorical"), 0.1, "above", (0.0, 1.0),
        "Hellinger distance over the reference bins.",
    ),
    "chi_square": DriftMethod(
        chi_square, "counts", ("numeric", "categorical"), 0.05, "below", (0.0, 1.0),
        "p-value of the chi-square test on the 2 x k table of reference and current counts.",
        _chi_square_details,
    ),
    "ks": DriftMethod(
        ks, "sketch", ("numeric",), 0.1, "above", (0.0, 1.0),
        "Kolmogorov-Smirnov statistic from the quantile sketches.",
        _ks_details,
    ),
    "wasserstein": DriftMethod(
        wasserstein, "sketch", ("numeric",), 0.1, "above", (0.0, math.inf),
        "Wasserstein-1 distance from the sketches, divided by the reference's std.",
        _wasserstein_details,
    ),
}  # fmt: skip

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import special

from mlmon.analysis.kolmogorov import kstwo_sf_many
from mlmon.errors import DuplicateNameError, ProfileError, UnknownNameError
from mlmon.profiles.fine import FineHistogram
from mlmon.profiles.kinds import CategoricalProfile, NumericProfile
from mlmon.profiles.sketch import cdf_distances, cdf_distances_many, discrete_cdf_distances


def _kolmogn_fn() -> Any:
    """What scipy.stats.kstwo.sf computes for 0.5/n < d < 1 (see _kstwo_sf), imported on
    first use (scipy.stats takes about half a second to import); None in a scipy that
    moved it (the public call is used then)."""
    if not _KOLMOGN:
        try:
            from scipy.stats._ksstats import _kolmogn
        except ImportError:  # pragma: no cover
            _KOLMOGN.append(None)
        else:
            _KOLMOGN.append(_kolmogn)
    return _KOLMOGN[0]


_KOLMOGN: list[Any] = []

__all__ = [
    "DETAIL_FIELDS",
    "EPS",
    "METHODS",
    "DriftColumns",
    "DriftMethod",
    "chi_square",
    "chi_square_test",
    "drift_between",
    "drift_between_many",
    "drift_columns_many",
    "drift_features_many",
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
    kolmogn = _kolmogn_fn()
    if kolmogn is not None and n >= 1 and 0.5 / n < d < 1.0:
        return float(kolmogn(n, np.float64(d), cdf=False))
    from scipy import stats

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


#: The built-in methods as registered at import: :func:`drift_between_many` computes these
#: over all windows at once; a method registered or replaced later runs window by window.
_BUILTIN = dict(METHODS)


def drift_between_many(
    reference: NumericProfile | CategoricalProfile,
    currents: Sequence[NumericProfile | CategoricalProfile],
    methods: list[str] | tuple[str, ...] | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> list[list[dict[str, Any]]]:
    """:func:`drift_between` of one feature for many windows: one list of rows per window.

    The same rows as calling :func:`drift_between` on each window, computed per method over
    all windows at once (see :func:`drift_features_many`).
    """
    return drift_features_many([(reference, currents, thresholds)], methods)[0]


#: One feature's ``(reference profile, window profiles, thresholds)`` for the many-window
#: functions (:func:`drift_features_many`, :func:`drift_columns_many`).
FeatureWindows = tuple[
    NumericProfile | CategoricalProfile,
    Sequence[NumericProfile | CategoricalProfile],
    Mapping[str, float] | None,
]


def drift_features_many(
    features: Sequence[FeatureWindows],
    methods: list[str] | tuple[str, ...] | None = None,
) -> list[list[list[dict[str, Any]]]]:
    """:func:`drift_between` for many features and windows: per feature, per window, its rows.

    ``features`` holds ``(reference, currents, thresholds)`` per feature. Each built-in
    method runs over all windows of a feature at once: the binned methods as arrays of
    windows x bins, KS and Wasserstein from the sketches window by window as
    :func:`drift_between` computes them, and every KS p-value of every feature in one call
    of :func:`mlmon.analysis.kolmogorov.kstwo_sf_many` (scipy's exact distribution, by
    groups). A method registered or replaced after import runs window by window. Every
    value is :func:`drift_between`'s, bit for bit, but the KS p-value, which is scipy's
    algorithm summed in another order (within 1e-14; ``tests/analysis/test_drift_many.py``).
    The same values as arrays, without a dict per row: :func:`drift_columns_many`.
    """
    out = []
    for (_, currents, _), per_method in zip(
        features, drift_columns_many(features, methods), strict=True
    ):
        rows: list[list[dict[str, Any]]] = [[] for _ in currents]
        for cols in per_method:
            for dest, row in zip(rows, cols.rows(), strict=True):
                dest.append(row)
        out.append(rows)
    return out


@dataclass
class DriftColumns:
    """One method's drift of one feature in many windows: one array element per window.

    The rows of :func:`drift_between` as arrays: ``value``, ``drifted`` and the
    :data:`DETAIL_FIELDS`, each detail with a mask of the windows where it is set (None
    in :func:`drift_between`'s row elsewhere). :meth:`rows` gives the rows.
    """

    method: str
    threshold: float
    value: np.ndarray
    drifted: np.ndarray
    statistic: np.ndarray
    has_statistic: np.ndarray
    dof: np.ndarray
    has_dof: np.ndarray
    p_value: np.ndarray
    has_p_value: np.ndarray
    #: a method that is not built in: each window's details as it returned them
    found: list[dict[str, Any]] | None = None

    @classmethod
    def empty(cls, name: str, threshold: float, windows: int) -> DriftColumns:
        nan, no = np.full(windows, math.nan), np.zeros(windows, dtype=bool)
        return cls(
            name, threshold, nan.copy(), no.copy(), nan.copy(), no.copy(),
            np.zeros(windows, dtype=np.int64), no.copy(), nan.copy(), no.copy(),
        )  # fmt: skip

    def set_found(self, i: int, found: Mapping[str, Any]) -> None:
        """Window ``i``'s details as :meth:`DriftMethod.statistics` returned them."""
        if self.found is None:
            self.found = [dict.fromkeys(DETAIL_FIELDS) for _ in range(self.value.size)]
        self.found[i] = dict(found)
        for k, has, arr, cast in (
            ("statistic", self.has_statistic, self.statistic, float),
            ("dof", self.has_dof, self.dof, int),
            ("p_value", self.has_p_value, self.p_value, float),
        ):
            v = found.get(k)
            has[i] = v is not None
            if v is not None:
                arr[i] = cast(v)

    def rows(self) -> list[dict[str, Any]]:
        """:func:`drift_between`'s row of this method, one per window."""
        t, name = self.threshold, self.method
        if self.found is not None:
            found = self.found
        else:
            found = [
                {"statistic": s if hs else None, "dof": d if hd else None, "p_value": p if hp else None}
                for s, hs, d, hd, p, hp in zip(
                    self.statistic.tolist(), self.has_statistic.tolist(), self.dof.tolist(),
                    self.has_dof.tolist(), self.p_value.tolist(), self.has_p_value.tolist(),
                    strict=True,
                )
            ]  # fmt: skip
        return [
            {"method": name, "value": v, "threshold": t, "drifted": dr, **f}
            for v, dr, f in zip(self.value.tolist(), self.drifted.tolist(), found, strict=True)
        ]


def drift_columns_many(
    features: Sequence[FeatureWindows],
    methods: list[str] | tuple[str, ...] | None = None,
) -> list[list[DriftColumns]]:
    """:func:`drift_features_many` as arrays: per feature, one :class:`DriftColumns` per
    method that applies to it, in :func:`drift_between`'s order of methods."""
    pending: list[tuple[DriftColumns, np.ndarray, np.ndarray]] = []
    outs = [_drift_many(r, list(c), methods, t, pending) for r, c, t in features]
    if pending:
        ps = _ks_p_values(
            np.concatenate([cols.statistic[i] for cols, i, _ in pending]),
            np.concatenate([n for _, _, n in pending]),
        )
        at = 0
        for cols, i, _ in pending:
            cols.p_value[i] = ps[at : at + i.size]
            at += i.size
    return outs


def _drift_many(
    reference: NumericProfile | CategoricalProfile,
    currents: list[NumericProfile | CategoricalProfile],
    methods: list[str] | tuple[str, ...] | None,
    thresholds: Mapping[str, float] | None,
    pending: list[tuple[DriftColumns, np.ndarray, np.ndarray]],
) -> list[DriftColumns]:
    names = list(methods) if methods is not None else list(METHODS)
    thresholds = thresholds or {}
    out: list[DriftColumns] = []
    live = [i for i, c in enumerate(currents) if c.count > 0]
    pairs: dict[int, tuple[float, float] | None] = {}  # KS and W1 of each window, computed once
    tables: dict[str, Any] = {}  # the count tables of the binned methods, built once
    for name in names:
        m = method(name)
        if reference.kind not in m.kinds:
            continue
        t = thresholds.get(name, m.default_threshold)
        cols = DriftColumns.empty(name, t, len(currents))
        ctx = _Context(pairs, tables)
        if live:
            fast = _FAST.get(name) if _BUILTIN.get(name) is m else None
            if fast is not None:
                fast(reference, [currents[i] for i in live], live, cols, ctx)
            else:
                for i in live:
                    try:
                        cols.value[i] = m(reference, currents[i])
                        found = m.statistics(reference, currents[i])
                    except ProfileError:
                        cols.value[i] = math.nan
                        found = dict.fromkeys(DETAIL_FIELDS)
                    cols.set_found(i, found)
        if (
            isinstance(t, bool)
            or not isinstance(t, (int, float))
            or m.direction
            not in (
                "above",
                "below",
            )
        ):
            cols.drifted[:] = [m.is_drifted(v, t) for v in cols.value.tolist()]
        else:  # is_drifted for every window at once (NaN is never drifted)
            cols.drifted = cols.value > t if m.direction == "above" else cols.value < t
        if ctx.ks_p:
            at = np.array(ctx.ks_p, dtype=np.int64)
            pending.append((cols, at, np.array(ctx.ks_n, dtype=np.int64)))
        out.append(cols)
    return out


@dataclass
class _Context:
    """What the methods of one feature share: each window's (KS, W1) by position (None
    where it raised ProfileError), and the windows whose KS p-value is asked for (with n)."""

    pairs: dict[int, tuple[float, float] | None]
    tables: dict[str, Any] = field(default_factory=dict)
    ks_p: list[int] = field(default_factory=list)
    ks_n: list[int] = field(default_factory=list)


_Fast = Callable[[Any, list[Any], list[int], DriftColumns, _Context], None]


def _fill_pairs(
    ctx: _Context, reference: NumericProfile, currents: list[NumericProfile], live: list[int]
) -> None:
    """Every window's (KS, W1) into ``ctx.pairs``: as :func:`_pair` gives them, with the
    sketch comparisons of all windows in one :func:`cdf_distances_many`."""
    batch: list[int] = []
    # what does not depend on the window, once
    ref_plain = reference.fine is None and reference.sketch is not None and reference.count > 0
    discrete = reference.support is not None
    centre, edges = reference.centre, reference.edges
    for j, i in enumerate(live):
        cur = currents[j]
        if i in ctx.pairs:
            continue
        plain = (
            ref_plain
            and centre == cur.centre
            and cur.sketch is not None
            and cur.count > 0
            and (not discrete or not np.array_equal(edges, cur.edges))
        )
        if plain:  # what _pair would give by cdf_distances
            batch.append(j)
        else:
            _pair(ctx, i, reference, cur)
    if batch:
        assert reference.sketch is not None
        sketches = [currents[j].sketch for j in batch]
        got = cdf_distances_many(reference.sketch, sketches)  # type: ignore[arg-type]
        for j, pair in zip(batch, got, strict=True):
            ctx.pairs[live[j]] = pair


def _pair(
    ctx: _Context, i: int, reference: NumericProfile, current: NumericProfile
) -> tuple[float, float] | None:
    """KS and Wasserstein-1 of window ``i`` as :func:`ks` and :func:`wasserstein_distance`
    give them (None where they raise ProfileError), computed once for both methods."""
    if i not in ctx.pairs:
        try:
            fine = _fine_pair(reference, current)
            if fine is not None:
                ctx.pairs[i] = (fine[0].ks(fine[1]), fine[0].wasserstein(fine[1]))
            else:
                ctx.pairs[i] = _sketch_pair_uncached(reference, current)
        except ProfileError:
            ctx.pairs[i] = None
    return ctx.pairs[i]


def _count_table(
    reference: Any, currents: list[Any], ctx: _Context
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Reference counts (k,), current counts (w, k) and which rows have counts (w,);
    ``None`` when the reference has none (every value is then NaN). Built once per
    feature (the arrays are shared: do not modify them)."""
    if "counts" not in ctx.tables:
        ctx.tables["counts"] = _count_table_uncached(reference, currents)
    out: tuple[np.ndarray, np.ndarray, np.ndarray] | None = ctx.tables["counts"]
    return out


def _count_table_uncached(
    reference: Any, currents: list[Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    ref = np.asarray(reference.bins, dtype=np.float64)
    cur = np.array([np.asarray(c.bins, dtype=np.float64) for c in currents])
    if cur.ndim != 2 or cur.shape[1] != ref.size:
        raise ProfileError("windows' bins do not match the reference's bins")
    if ref.sum() <= 0:
        return None
    return ref, cur, cur.sum(axis=1) > 0


def _proportion_rows(
    reference: Any, currents: list[Any], ctx: _Context
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Proportions of the reference (k,) and of each window (w, k), and which windows
    have counts; built once per feature (shared: do not modify them)."""
    if "proportions" in ctx.tables:
        out: tuple[np.ndarray, np.ndarray, np.ndarray] | None = ctx.tables["proportions"]
        return out
    table = _count_table(reference, currents, ctx)
    if table is None:
        ctx.tables["proportions"] = None
        return None
    ref, cur, ok = table
    p = ref / ref.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        q = cur / cur.sum(axis=1, keepdims=True)
    ctx.tables["proportions"] = (p, q, ok)
    return p, q, ok


def _fill(ok: np.ndarray, live: list[int], vals: np.ndarray, values: np.ndarray) -> None:
    idx = np.asarray(live)[ok]
    values[idx] = vals[ok]


def _psi_many(
    reference: Any, currents: list[Any], live: list[int], cols: DriftColumns, ctx: _Context
) -> None:
    rows = _proportion_rows(reference, currents, ctx)
    if rows is None:
        return
    p, q, ok = rows
    p = np.clip(p, EPS, None)
    q = np.clip(np.where(ok[:, None], q, 1.0), EPS, None)
    _fill(ok, live, np.sum((q - p) * np.log(q / p), axis=1), cols.value)


def _js_many(
    reference: Any, currents: list[Any], live: list[int], cols: DriftColumns, ctx: _Context
) -> None:
    rows = _proportion_rows(reference, currents, ctx)
    if rows is None:
        return
    p, q, ok = rows
    q = np.where(ok[:, None], q, 0.0)
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0)
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0)
    js = 0.5 * (kl_p.sum(axis=1) + kl_q.sum(axis=1))
    _fill(ok, live, np.sqrt(np.maximum(js, 0.0)), cols.value)


def _hellinger_many(
    reference: Any, currents: list[Any], live: list[int], cols: DriftColumns, ctx: _Context
) -> None:
    rows = _proportion_rows(reference, currents, ctx)
    if rows is None:
        return
    p, q, ok = rows
    q = np.where(ok[:, None], q, 0.0)
    bc = np.sum(np.sqrt(p * q), axis=1)
    _fill(ok, live, np.sqrt(np.maximum(1.0 - bc, 0.0)), cols.value)


def _chi_square_many(
    reference: Any, currents: list[Any], live: list[int], cols: DriftColumns, ctx: _Context
) -> None:
    table = _count_table(reference, currents, ctx)
    if table is None:
        return
    ref, cur, ok = table
    rows = np.flatnonzero(ok)
    keep = (ref[None, :] + cur[rows]) > 0  # bins empty in both samples are dropped
    # windows with the same bins left are one array: the same operations, in the same
    # order, as _chi_square_test on each (so the same values)
    patterns, group = np.unique(keep, axis=0, return_inverse=True)
    where = np.asarray(live, dtype=np.int64)
    for g, mask in enumerate(patterns):
        sel = rows[group.ravel() == g]
        k = int(mask.sum())
        if k < 2:
            stat, dof, p = np.zeros(sel.size), 0, np.ones(sel.size)
        else:
            tab = np.empty((sel.size, 2, k))
            tab[:, 0, :] = ref[mask]
            tab[:, 1, :] = cur[sel][:, mask]
            expected = tab.sum(axis=2)[:, :, None] * tab.sum(axis=1)[:, None, :]
            expected /= tab.sum(axis=(1, 2))[:, None, None]
            dof = k - 1
            if dof == 1:  # Yates' continuity correction, as scipy applies it
                diff = expected - tab
                tab = tab + np.sign(diff) * np.minimum(0.5, np.abs(diff))
            stat = ((tab - expected) ** 2 / expected).reshape(sel.size, -1).sum(axis=1)
            p = special.chdtrc(dof, stat)
        idx = where[sel]
        cols.value[idx] = p
        cols.statistic[idx], cols.dof[idx], cols.p_value[idx] = stat, dof, p
        cols.has_statistic[idx] = cols.has_dof[idx] = cols.has_p_value[idx] = True


def _ks_many(
    reference: NumericProfile,
    currents: list[NumericProfile],
    live: list[int],
    cols: DriftColumns,
    ctx: _Context,
) -> None:
    n = reference.count
    _fill_pairs(ctx, reference, currents, live)
    for j, i in enumerate(live):
        got = _pair(ctx, i, reference, currents[j])
        if got is None:
            continue
        d, m = got[0], currents[j].count
        cols.value[i] = cols.statistic[i] = d
        cols.has_statistic[i] = cols.has_p_value[i] = True  # p: all at once, later
        ctx.ks_p.append(i)
        ctx.ks_n.append(round(n * m / (n + m)))


def _ks_p_values(d: np.ndarray, n: np.ndarray) -> np.ndarray:
    """KS p-values: NaN statistics (empty sketches) as the one-window path gives them."""
    out = np.full(d.size, math.nan)
    fin = ~np.isnan(d)
    out[fin] = kstwo_sf_many(d[fin], n[fin])
    for i in np.flatnonzero(~fin).tolist():
        out[i] = _kstwo_sf(float(d[i]), int(n[i]))
    return out


def _wasserstein_many(
    reference: NumericProfile,
    currents: list[NumericProfile],
    live: list[int],
    cols: DriftColumns,
    ctx: _Context,
) -> None:
    std = reference.std
    _fill_pairs(ctx, reference, currents, live)
    for j, i in enumerate(live):
        got = _pair(ctx, i, reference, currents[j])
        if got is None:
            continue
        w = got[1]
        cols.value[i] = w / std if std > 0 else w
        cols.statistic[i] = w
        cols.has_statistic[i] = True


_FAST: dict[str, _Fast] = {
    "psi": _psi_many,
    "jensen_shannon": _js_many,
    "hellinger": _hellinger_many,
    "chi_square": _chi_square_many,
    "ks": _ks_many,
    "wasserstein": _wasserstein_many,
}

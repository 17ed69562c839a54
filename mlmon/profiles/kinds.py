"""Per-feature profile kinds: numeric and categorical, each a monoid.

Every kind has an empty value (built from the reference's spec), a columnar
``from_array`` and a ``merge`` that adds part by part. Kinds are listed in
:data:`KINDS` (name -> class); later kinds (performance, imaging) register
with :func:`register_kind`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import polars as pl

from mlmon.errors import DuplicateNameError, ProfileError, UnknownNameError
from mlmon.profiles.fine import FineHistogram
from mlmon.profiles.sketch import DEFAULT_ALPHA, QuantileSketch, scratch

__all__ = [
    "DISCRETE_MAX",
    "KINDS",
    "OTHER",
    "SHOWN_MIN_COUNT",
    "CategoricalProfile",
    "FeatureProfile",
    "NumericProfile",
    "bin_counts",
    "bin_index",
    "discrete_edges",
    "discrete_support",
    "kind_class",
    "register_kind",
    "sum_of_squares",
]

OTHER = "__other__"
#: The smallest count of an allow-listed category that is shown or exported (reports): smaller
#: counts are folded into ``__other__`` there (:meth:`CategoricalProfile.fold_rare`). The lake
#: keeps exact counts so merged periods drift exactly (docs/security.md, "Exact categorical
#: counts").
SHOWN_MIN_COUNT = 5


#: A numeric reference feature with at most this many distinct finite values is profiled
#: *discrete*: every value of its support gets a bin of its own (:func:`discrete_edges`), so
#: windows and merged periods carry exact counts per value and KS, Wasserstein and the
#: binned methods are exact there. Equal to the largest learned categorical vocabulary
#: (``build_reference(max_categories=50)``): binned methods then see at most as many bins
#: as on a categorical feature (their small-window bias grows with the number of bins).
DISCRETE_MAX = 50


def discrete_edges(support: np.ndarray) -> np.ndarray:
    """Bin edges that give each value of ``support`` (sorted, finite) a bin of its own.

    With ``u(x) = nextafter(x, inf)`` the edges are ``s_0, u(s_0), s_1, u(s_1), ...,
    s_{m-1}, u(s_{m-1}), u(u(s_{m-1}))`` (``2m + 1`` edges, ``2m + 2`` bins of
    :func:`bin_index`): bin ``2k + 1`` is ``[s_k, u(s_k))``, which holds the one float
    ``s_k``; the even bins and the last one hold every other value, between support
    values and beyond them. :func:`discrete_support` reads the support back from the edges alone, so
    the layout needs no other field in the lake and old references read as before.

    Raises
    ------
    ProfileError
        Two support values are adjacent floats, or the largest is the largest float.
    """
    s = np.asarray(support, dtype=np.float64)
    up = np.nextafter(s, np.inf)
    if s.size == 0 or np.any(up[:-1] >= s[1:]) or not np.all(np.isfinite(s)):
        raise ProfileError("a discrete support must be sorted finite values, not adjacent floats")
    last = np.nextafter(up[-1], np.inf)
    if not math.isfinite(last):
        raise ProfileError("a discrete support cannot hold the largest float")
    edges = np.empty(2 * s.size + 1, dtype=np.float64)
    edges[0 : 2 * s.size : 2] = s
    edges[1 : 2 * s.size : 2] = up
    edges[-1] = last
    return edges


def discrete_support(edges: np.ndarray) -> np.ndarray | None:
    """The support of edges laid out by :func:`discrete_edges`, else ``None``.

    Any edges of that layout mean it: bin ``2k + 1``, ``[s_k, u(s_k))``, can only
    hold ``s_k``, so its count is that value's exact count however the edges came about.
    """
    e = np.asarray(edges)
    if e.size < 3 or e.size % 2 == 0:
        return None
    s = e[0:-1:2]
    if not (
        np.array_equal(e[1:-1:2], np.nextafter(s, np.inf)) and e[-1] == np.nextafter(e[-2], np.inf)
    ):
        return None
    return s


@runtime_checkable
class FeatureProfile(Protocol):
    """What every profile kind offers."""

    kind: ClassVar[str]

    @property
    def count(self) -> int: ...

    @property
    def nulls(self) -> int: ...

    def merge(self, other: Any) -> Any: ...

    def empty_like(self) -> Any: ...


def bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin positions over reference edges plus two open-ended overflow bins.

    With edges ``e_0 < ... < e_{E-1}``: bin 0 is ``(-inf, e_0)``, bin ``k``
    is ``[e_{k-1}, e_k)`` for ``1 <= k <= E-1`` with the last interior bin
    closed on the right (so the reference's maximum is inside it), and bin
    ``E`` is ``(e_{E-1}, inf)``. There are ``E + 1`` bins.

    One comparison pass per edge: for the dozen edges of a reference this is
    several times faster than a binary search per value.
    """
    x = np.asarray(values)
    dtype = np.uint8 if edges.size < 255 else np.int32
    idx = np.zeros(x.shape, dtype=dtype)
    for e in edges[:-1]:
        idx += x >= e
    if edges.size:
        idx += (x > edges[-1]) if edges.size >= 2 else (x >= edges[-1])
    return idx


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of :func:`bin_index` bins (length ``len(edges) + 1``).

    Counted without materialising the index: the number of values at or
    above each edge (above, for the closed last edge) gives every bin count
    by differences, so each edge costs one comparison and one popcount.
    """
    x = np.asarray(values)
    n = x.size
    if edges.size == 0:
        return np.array([n], dtype=np.int64)
    flag = scratch(n)[1]  # one reused bool buffer for every comparison
    ge = []
    for e in edges[:-1]:
        np.greater_equal(x, e, out=flag)
        ge.append(np.count_nonzero(flag))
    if edges.size >= 2:
        np.greater(x, edges[-1], out=flag)
    else:
        np.greater_equal(x, edges[-1], out=flag)
    ge.append(np.count_nonzero(flag))
    above = np.asarray(ge, dtype=np.int64)
    return -np.diff(np.concatenate([[n], above, [0]])).astype(np.int64)


#: Chunk length for :func:`sum_of_squares`: OpenBLAS runs ``ddot`` on one thread up to
#: 10,000 values and, above that, on threads that keep spinning after the call.
_DOT_CHUNK = 8192


def sum_of_squares(x: np.ndarray) -> float:
    """``sum(x * x)`` of a float64 array, as fast as ``np.dot`` but on this thread only.

    ``np.dot`` on a long vector wakes OpenBLAS's worker threads, which then spin
    on the other core and halve the speed of any profiling running there; rows
    of ``_DOT_CHUNK`` values stay on the calling thread.
    """
    m = x.size - x.size % _DOT_CHUNK
    rows = x[:m].reshape(-1, _DOT_CHUNK)
    rest = x[m:]
    return float(np.vecdot(rows, rows).sum()) + float(np.dot(rest, rest))


def _to_float_array(series: pl.Series) -> tuple[np.ndarray, int]:
    """Float64 numpy view of a series without its nulls, and the null count."""
    nulls = series.null_count()
    if nulls:
        series = series.drop_nulls()
    if series.dtype != pl.Float64:
        series = series.cast(pl.Float64, strict=False)
    arr = series.to_numpy()
    if arr.dtype != np.float64:
        arr = arr.astype(np.float64)
    return arr, nulls


@dataclass(frozen=True, eq=False)
class NumericProfile:
    """Mergeable summary of a numeric feature over one window.

    ``count`` counts finite values only; nulls, NaN and +/-inf are counted
    apart and never reach the sums, bins or sketch. ``bins`` has
    ``len(edges) + 1`` counts (see :func:`bin_index`). The sketch holds
    ``value - centre`` (the reference median) unless ``centre`` is 0.
    """

    kind: ClassVar[str] = "numeric"

    edges: np.ndarray
    centre: float = 0.0
    alpha: float = DEFAULT_ALPHA
    count: int = 0
    nulls: int = 0
    nans: int = 0
    pos_inf: int = 0
    neg_inf: int = 0
    sum: float = 0.0
    sum_sq: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    bins: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    sketch: QuantileSketch | None = None
    #: NannyML-compatible binning only: the equal-width histogram of its Wasserstein and
    #: KS estimates (:mod:`mlmon.profiles.fine`); None otherwise.
    fine: FineHistogram | None = None

    def __post_init__(self) -> None:
        if self.bins.size == 0:
            object.__setattr__(self, "bins", np.zeros(self.edges.size + 1, dtype=np.int64))
        if self.sketch is None:
            object.__setattr__(self, "sketch", QuantileSketch.empty(self.alpha))

    def empty_like(self) -> NumericProfile:
        fine = self.fine.empty_like() if self.fine is not None else None
        return NumericProfile(edges=self.edges, centre=self.centre, alpha=self.alpha, fine=fine)

    @classmethod
    def from_array(
        cls,
        values: np.ndarray,
        *,
        edges: np.ndarray,
        centre: float = 0.0,
        alpha: float = DEFAULT_ALPHA,
        nulls: int = 0,
        fine: FineHistogram | None = None,
    ) -> NumericProfile:
        """Profile a float array; ``nulls`` counts null values already left out of it.

        NaN and +/-inf in ``values`` are counted apart and kept out of the sums,
        bins and sketch. ``fine`` (an empty :class:`FineHistogram` of the
        reference) adds the finite values to that histogram too.
        """
        prof = cls._from_array(values, edges=edges, centre=centre, alpha=alpha, nulls=nulls)
        if fine is None:
            return prof
        x = np.asarray(values, dtype=np.float64)
        return replace(prof, fine=fine.empty_like().add(x[np.isfinite(x)]))

    @classmethod
    def _from_array(
        cls,
        values: np.ndarray,
        *,
        edges: np.ndarray,
        centre: float = 0.0,
        alpha: float = DEFAULT_ALPHA,
        nulls: int = 0,
    ) -> NumericProfile:
        x = np.asarray(values, dtype=np.float64)
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN: looked at below
            total = float(x.sum())
        nans = pos_inf = neg_inf = 0
        # A finite sum means every value is finite (NaN and inf propagate), which
        # saves a pass; an infinite one may also be an overflow, so look closer.
        finite = np.isfinite(x) if not math.isfinite(total) else None
        if finite is not None and not finite.all():
            bad = x[~finite]
            nan_mask = np.isnan(bad)
            nans = int(np.count_nonzero(nan_mask))
            pos_inf = int(np.count_nonzero(bad == np.inf))
            neg_inf = int(np.count_nonzero(bad == -np.inf))
            x = x[finite]
            total = float(x.sum())
        if x.size == 0:
            return cls(
                edges=edges,
                centre=centre,
                alpha=alpha,
                nulls=nulls,
                nans=nans,
                pos_inf=pos_inf,
                neg_inf=neg_inf,
            )
        bins = bin_counts(x, edges)
        return cls(
            edges=edges,
            centre=centre,
            alpha=alpha,
            count=int(x.size),
            nulls=nulls,
            nans=nans,
            pos_inf=pos_inf,
            neg_inf=neg_inf,
            sum=total,
            sum_sq=sum_of_squares(x),
            min=float(x.min()),
            max=float(x.max()),
            bins=bins,
            sketch=QuantileSketch.from_values(x, alpha, centre=centre),
        )

    @classmethod
    def from_series(cls, series: pl.Series, **kwargs: Any) -> NumericProfile:
        arr, nulls = _to_float_array(series)
        return cls.from_array(arr, nulls=nulls, **kwargs)

    def _check_compatible(self, other: NumericProfile) -> None:
        if not isinstance(other, NumericProfile):
            raise ProfileError(f"cannot merge a numeric profile with {type(other).__name__}")
        if (
            self.centre != other.centre
            or self.alpha != other.alpha
            or not np.array_equal(self.edges, other.edges)
            or (self.fine is None) != (other.fine is None)
            or (
                self.fine is not None
                and other.fine is not None
                and not self.fine.compatible(other.fine)
            )
        ):
            raise ProfileError(
                "cannot merge numeric profiles built on different references "
                "(bin edges, centre or sketch accuracy differ); profile both with one reference"
            )

    def merge(self, other: NumericProfile) -> NumericProfile:
        self._check_compatible(other)
        assert self.sketch is not None and other.sketch is not None
        return replace(
            self,
            count=self.count + other.count,
            nulls=self.nulls + other.nulls,
            nans=self.nans + other.nans,
            pos_inf=self.pos_inf + other.pos_inf,
            neg_inf=self.neg_inf + other.neg_inf,
            sum=self.sum + other.sum,
            sum_sq=self.sum_sq + other.sum_sq,
            min=min(self.min, other.min),
            max=max(self.max, other.max),
            bins=self.bins + other.bins,
            sketch=self.sketch.merge(other.sketch),
            fine=(
                self.fine.merge(other.fine)
                if self.fine is not None and other.fine is not None
                else None
            ),
        )

    # -- statistics -------------------------------------------------------------------
    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count else math.nan

    @property
    def std(self) -> float:
        """Population standard deviation of the finite values."""
        if self.count == 0:
            return math.nan
        var = self.sum_sq / self.count - self.mean**2
        return math.sqrt(max(var, 0.0))

    @property
    def total(self) -> int:
        """Every row seen, including nulls, NaN and inf."""
        return self.count + self.nulls + self.nans + self.pos_inf + self.neg_inf

    @property
    def support(self) -> np.ndarray | None:
        """The reference's distinct values when the feature is discrete (:data:`DISCRETE_MAX`).

        ``None`` for a continuous feature (reference-quantile bins).
        """
        return discrete_support(self.edges)

    @property
    def support_counts(self) -> np.ndarray | None:
        """Exact count of each :attr:`support` value (``None`` for a continuous feature).

        ``count - support_counts.sum()`` values lie off the support (in the even bins
        and the last one).
        """
        s = self.support
        return None if s is None else self.bins[1 : 2 * s.size : 2]

    def quantiles(self, qs: Any) -> np.ndarray:
        assert self.sketch is not None
        return self.sketch.quantiles(qs) + self.centre

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NumericProfile):
            return NotImplemented
        return (
            np.array_equal(self.edges, other.edges)
            and self.centre == other.centre
            and self.alpha == other.alpha
            and (self.count, self.nulls, self.nans, self.pos_inf, self.neg_inf)
            == (other.count, other.nulls, other.nans, other.pos_inf, other.neg_inf)
            and self._sums_close(other)
            and self.min == other.min
            and self.max == other.max
            and np.array_equal(self.bins, other.bins)
            and self.sketch == other.sketch
            and self.fine == other.fine
        )

    __hash__ = None  # type: ignore[assignment]

    def _sums_close(self, other: NumericProfile) -> bool:
        """Float sums depend on the order of addition; compare them to rounding error."""
        if self.count == 0:
            return self.sum == other.sum == 0.0
        scale = max(abs(self.min), abs(self.max)) * self.count
        return math.isclose(
            self.sum, other.sum, rel_tol=1e-9, abs_tol=1e-12 * scale
        ) and math.isclose(
            self.sum_sq,
            other.sum_sq,
            rel_tol=1e-9,
            abs_tol=1e-12 * scale * max(abs(self.min), abs(self.max)),
        )


@dataclass(frozen=True, eq=False)
class CategoricalProfile:
    """Counts over an allow-listed vocabulary plus ``__other__``.

    ``counts[i]`` counts ``categories[i]``; the last count is ``__other__``
    (every value outside the vocabulary, in windows and in the reference alike,
    and, after :meth:`fold_rare`, every category seen fewer than ``k`` times).
    Values outside the vocabulary are never kept as strings. Window profiles
    are written with exact counts, so merging windows gives exactly the counts
    of profiling their records in one go.
    """

    kind: ClassVar[str] = "categorical"

    categories: tuple[str, ...]
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    nulls: int = 0

    def __post_init__(self) -> None:
        if OTHER in self.categories:
            raise ProfileError(f"{OTHER!r} is reserved and cannot be a category")
        if self.counts.size == 0:
            object.__setattr__(self, "counts", np.zeros(len(self.categories) + 1, dtype=np.int64))
        elif self.counts.size != len(self.categories) + 1:
            raise ProfileError(
                f"categorical counts have {self.counts.size} entries; expected "
                f"{len(self.categories) + 1} (categories + {OTHER})"
            )

    def empty_like(self) -> CategoricalProfile:
        return CategoricalProfile(categories=self.categories)

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    @property
    def total(self) -> int:
        return self.count + self.nulls

    @property
    def bins(self) -> np.ndarray:
        """The counts, named like numeric bins so binned drift methods treat both alike."""
        return self.counts

    @property
    def labels(self) -> tuple[str, ...]:
        return (*self.categories, OTHER)

    @classmethod
    def from_series(cls, series: pl.Series, *, categories: tuple[str, ...]) -> CategoricalProfile:
        """Count a column's values over ``categories`` (vectorised value counts)."""
        nulls = series.null_count()
        if series.dtype != pl.String:
            series = series.cast(pl.String)
        vc = series.drop_nulls().value_counts()
        values = vc.get_column(vc.columns[0]).to_list()
        freq = vc.get_column(vc.columns[1]).to_numpy()
        position = {c: i for i, c in enumerate(categories)}
        counts = np.zeros(len(categories) + 1, dtype=np.int64)
        other = len(categories)
        for value, n in zip(values, freq, strict=True):  # one entry per distinct value
            counts[position.get(value, other)] += n
        return cls(categories=categories, counts=counts, nulls=nulls)

    def merge(self, other: CategoricalProfile) -> CategoricalProfile:
        if not isinstance(other, CategoricalProfile):
            raise ProfileError(f"cannot merge a categorical profile with {type(other).__name__}")
        if self.categories != other.categories:
            raise ProfileError(
                "cannot merge categorical profiles with different vocabularies; "
                "profile both with one reference"
            )
        return CategoricalProfile(
            self.categories, self.counts + other.counts, self.nulls + other.nulls
        )

    def fold_rare(self, k: int) -> CategoricalProfile:
        """Fold every category seen fewer than ``k`` times (but at least once) into ``__other__``.

        Small-count protection for counts that are shown or exported (reports):
        apply it to the merged period that is shown, never to a window before
        it is merged (that breaks drift, issue 19).
        """
        counts = self.counts.copy()
        rare = (counts[:-1] > 0) & (counts[:-1] < k)
        if rare.any():
            counts[-1] += counts[:-1][rare].sum()
            counts[:-1][rare] = 0
        return CategoricalProfile(self.categories, counts, self.nulls)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CategoricalProfile):
            return NotImplemented
        return (
            self.categories == other.categories
            and self.nulls == other.nulls
            and np.array_equal(self.counts, other.counts)
        )

    __hash__ = None  # type: ignore[assignment]


def register_kind(name: str, cls: type, *, replace: bool = False) -> None:
    """Add a profile kind; refuses to overwrite unless ``replace=True``."""
    if name in KINDS and not replace:
        raise DuplicateNameError(f"profile kind {name!r} is already registered; pass replace=True")
    KINDS[name] = cls


def kind_class(name: str) -> type:
    try:
        return KINDS[name]
    except KeyError as exc:
        raise UnknownNameError(
            f"unknown profile kind {name!r}; registered kinds: {', '.join(sorted(KINDS))}"
        ) from exc


KINDS: dict[str, type] = {
    "numeric": NumericProfile,
    "categorical": CategoricalProfile,
}

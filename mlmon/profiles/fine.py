"""An equal-width histogram over the reference's range: NannyML's Wasserstein and KS estimates.

NannyML 0.13 (``nannyml/drift/univariate/methods.py``) estimates Wasserstein-1
and the Kolmogorov-Smirnov statistic, for a reference of at least 10,000 values,
from ``n = 10,000`` equal-width bins between the reference's minimum ``lo``
and maximum ``hi`` (``np.histogram`` edges). Values outside ``[lo, hi]`` enter
its Wasserstein estimate only through their count and their summed distance
to the nearest edge. :class:`FineHistogram` keeps exactly that, so it merges
by adding counts and a merged period gives NannyML's value for its records:

- sparse counts of the ``n`` bins (bin ``i`` is ``[e_i, e_{i+1})``, the last
  one closed, as ``np.histogram``);
- ``below``/``below_excess``: values ``< lo`` and ``sum(lo - v)`` over them;
- ``above``/``above_excess``: values ``> hi`` and ``sum(v - hi)`` over them.

It never stores a value: only counts, and two sums of distances.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from mlmon.errors import ProfileError

__all__ = ["NANNYML_BINS", "NANNYML_MIN_REFERENCE", "FineHistogram"]

#: NannyML's ``n_bins`` for its estimated Wasserstein and KS.
NANNYML_BINS = 10_000
#: NannyML estimates (rather than computes exactly) from this many reference values.
NANNYML_MIN_REFERENCE = 10_000

_EMPTY_I = np.zeros(0, dtype=np.int32)
_EMPTY_C = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class FineHistogram:
    """Counts on ``n`` equal-width bins over ``[lo, hi]``, plus the mass outside (a monoid)."""

    lo: float
    hi: float
    n: int = NANNYML_BINS
    index: np.ndarray = field(default_factory=lambda: _EMPTY_I)
    counts: np.ndarray = field(default_factory=lambda: _EMPTY_C)
    below: int = 0
    below_excess: float = 0.0
    above: int = 0
    above_excess: float = 0.0

    @classmethod
    def for_reference(cls, values: np.ndarray, n: int = NANNYML_BINS) -> FineHistogram:
        """The reference's histogram: edges from its min and max (``np.histogram(x, bins=n)``)."""
        x = np.asarray(values, dtype=np.float64)
        if x.size == 0:
            raise ProfileError("a fine histogram needs at least one finite reference value")
        edges = np.histogram_bin_edges(x, bins=n)  # widens a constant column as numpy does
        return cls(float(edges[0]), float(edges[-1]), n).add(x)

    @property
    def edges(self) -> np.ndarray:
        """The ``n + 1`` bin edges (``np.linspace(lo, hi, n + 1)``, as ``np.histogram``)."""
        return np.linspace(self.lo, self.hi, self.n + 1)

    @property
    def total(self) -> int:
        return int(self.counts.sum()) + self.below + self.above

    def empty_like(self) -> FineHistogram:
        return FineHistogram(self.lo, self.hi, self.n)

    def dense(self) -> np.ndarray:
        """The ``n`` bin counts as a dense array."""
        out = np.zeros(self.n, dtype=np.int64)
        out[self.index] = self.counts
        return out

    def add(self, values: np.ndarray) -> FineHistogram:
        """This histogram plus finite ``values``."""
        x = np.asarray(values, dtype=np.float64)
        low = x < self.lo
        high = x > self.hi
        inside = x[~(low | high)]
        counts = np.histogram(inside, bins=self.edges)[0].astype(np.int64)
        idx = np.flatnonzero(counts)
        other = FineHistogram(
            self.lo,
            self.hi,
            self.n,
            idx.astype(np.int32),
            counts[idx],
            int(np.count_nonzero(low)),
            float(np.sum(self.lo - x[low])),
            int(np.count_nonzero(high)),
            float(np.sum(x[high] - self.hi)),
        )
        return self.merge(other) if self.total else other

    def compatible(self, other: FineHistogram) -> bool:
        return (self.lo, self.hi, self.n) == (other.lo, other.hi, other.n)

    def merge(self, other: FineHistogram) -> FineHistogram:
        if not self.compatible(other):
            raise ProfileError(
                "cannot merge fine histograms over different ranges (different references); "
                "profile both with one reference"
            )
        idx, counts = self.merge_arrays(
            self.n,
            np.concatenate([self.index, other.index]),
            np.concatenate([self.counts, other.counts]),
        )
        return replace(
            self,
            index=idx,
            counts=counts,
            below=self.below + other.below,
            below_excess=self.below_excess + other.below_excess,
            above=self.above + other.above,
            above_excess=self.above_excess + other.above_excess,
        )

    @staticmethod
    def merge_arrays(
        n: int, index: np.ndarray, counts: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sum counts of equal bin indices; sorted non-zero bins."""
        if index.size == 0:
            return _EMPTY_I, _EMPTY_C
        if counts.size != index.size:
            raise ProfileError("fine histogram: bin indices and counts differ in length")
        idx = index.astype(np.int64)
        if idx.min() < 0 or idx.max() >= n:
            raise ProfileError(f"fine histogram: a bin index is outside 0..{n - 1}")
        # float64 weights add integer counts exactly up to 2**53
        dense = np.bincount(idx, weights=counts.astype(np.float64), minlength=n).astype(np.int64)
        nz = np.flatnonzero(dense)
        return nz.astype(np.int32), dense[nz]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FineHistogram):
            return NotImplemented
        return bool(
            self.compatible(other)
            and np.array_equal(self.index, other.index)
            and np.array_equal(self.counts, other.counts)
            and (self.below, self.above) == (other.below, other.above)
            and np.isclose(self.below_excess, other.below_excess, rtol=1e-9, atol=1e-12)
            and np.isclose(self.above_excess, other.above_excess, rtol=1e-9, atol=1e-12)
        )

    __hash__ = None  # type: ignore[assignment]

    # -- NannyML's estimates ----------------------------------------------------------
    def wasserstein(self, current: FineHistogram) -> float:
        """NannyML's estimated Wasserstein-1 of ``current`` against this (reference) histogram.

        Its formula, term by term: inside ``[lo, hi]`` the bin-wise CDF difference
        times the bin width (the current CDF starts at ``(below + 1) / N`` when
        some values are below ``lo``, NannyML's convention), plus the mean
        distance of the values outside the range to the nearest edge.
        """
        n_ref = self.total
        n_cur = current.total
        if n_ref == 0 or n_cur == 0:
            raise ProfileError("cannot compute drift on an empty distribution (no finite values)")
        if not self.compatible(current):
            raise ProfileError("fine histograms over different ranges; use one reference")
        edges = self.edges
        width = edges[1] - edges[0]
        ref_cdf = np.cumsum(self.dense() / n_ref)
        amount_smaller = (current.below + 1) / n_cur if current.below else 0.0
        cur_cdf = np.cumsum(current.dense() / n_cur) + amount_smaller
        within = float(np.sum(np.abs(ref_cdf - cur_cdf) * width))
        return within + current.below_excess / n_cur + current.above_excess / n_cur

    def ks(self, current: FineHistogram) -> float:
        """NannyML's estimated Kolmogorov-Smirnov statistic (CDFs at the ``n`` right edges)."""
        n_ref = self.total
        n_cur = current.total
        if n_ref == 0 or n_cur == 0:
            raise ProfileError("cannot compute drift on an empty distribution (no finite values)")
        ref_cdf = np.cumsum(self.dense() / n_ref)
        cur_cdf = current.below / n_cur + np.cumsum(current.dense() / n_cur)
        return float(np.max(np.abs(ref_cdf - cur_cdf)))

"""A mergeable relative-error quantile sketch (DDSketch-style log buckets).

A value ``x > 0`` falls in bucket ``i = ceil(log_gamma(x))``, which covers
``(gamma**(i-1), gamma**i]`` with ``gamma = (1 + alpha) / (1 - alpha)``; its
representative ``2 * gamma**i / (gamma + 1)`` is within ``alpha`` (relative)
of every value in the bucket. Negative values use a mirrored store; values
whose bucket index is below that of ``MIN_INDEXABLE`` (1e-300) are counted in a zero
bucket. Only bucket
indices and counts are kept, so two sketches merge by adding counts, and
two sketches with the same ``alpha`` share bucket boundaries exactly: CDFs
compare bucket for bucket, which is what makes KS and Wasserstein from
sketches accurate (:func:`cdf_distances`).

Quantiles follow numpy's ``method="lower"`` (the order statistic at rank
``floor(q * (n - 1))``) and are within ``alpha`` relative error of it.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlmon.errors import ProfileError

__all__ = [
    "DEFAULT_ALPHA",
    "MIN_INDEXABLE",
    "QuantileSketch",
    "cdf_distances",
    "cdf_distances_many",
    "discrete_cdf_distances",
    "grouped_sketches",
]

DEFAULT_ALPHA = 0.01
MIN_INDEXABLE = 1e-300

_EMPTY_I = np.zeros(0, dtype=np.int32)
_EMPTY_C = np.zeros(0, dtype=np.int64)


#: Adding 1.5 * 2**52 to an integer-valued float below 2**51 in magnitude puts the
#: integer in the low bits of the sum: subtracting these bits reads it back.
_MAGIC = 6755399441055744.0
_MAGIC_BITS = int(np.float64(_MAGIC).view(np.int64))


def _gamma(alpha: float) -> float:
    return (1.0 + alpha) / (1.0 - alpha)


_SCRATCH = threading.local()


def scratch(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-thread float64 and bool work buffers of length ``n`` (grown, then reused).

    Reusing them instead of allocating fresh arrays for every column halves the
    sketch's time: fresh multi-megabyte arrays cost a page fault per 4 KiB.
    Callers must not keep references to them.
    """
    bufs = getattr(_SCRATCH, "bufs", None)
    if bufs is None or bufs[0].size < n:
        bufs = (np.empty(n, np.float64), np.empty(n, np.bool_))
        _SCRATCH.bufs = bufs
    return bufs[0][:n], bufs[1][:n]


def _compact(index: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum counts of equal indices; return sorted unique indices with non-zero counts."""
    if index.size == 0:
        return _EMPTY_I, _EMPTY_C
    lo = int(index.min())
    dense = np.bincount(index - lo, weights=None if count is None else count, minlength=0)
    dense = dense.astype(np.int64, copy=False)
    nz = np.flatnonzero(dense)
    return (nz + lo).astype(np.int32), dense[nz]


@dataclass(frozen=True, eq=False)
class QuantileSketch:
    """Log-bucket quantile sketch; an immutable value, merged by adding counts.

    Build one with :meth:`from_values` (finite values only; callers count
    NaN and inf separately) or :meth:`empty`; combine with :meth:`merge`.

    Examples
    --------
    >>> import numpy as np
    >>> s = QuantileSketch.from_values(np.arange(1, 1001, dtype=float))
    >>> bool(abs(s.quantile(0.5) - 500) <= 0.01 * 500)
    True
    """

    alpha: float = DEFAULT_ALPHA
    pos_index: np.ndarray = field(default_factory=lambda: _EMPTY_I)
    pos_count: np.ndarray = field(default_factory=lambda: _EMPTY_C)
    neg_index: np.ndarray = field(default_factory=lambda: _EMPTY_I)
    neg_count: np.ndarray = field(default_factory=lambda: _EMPTY_C)
    zero: int = 0
    # memos of derived values (the sketch is immutable): buckets, and the last CDF comparison
    _buckets: Any = field(default=None, init=False, repr=False, compare=False)
    _cdf_memo: Any = field(default=None, init=False, repr=False, compare=False)
    _cdf_side: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ProfileError(f"sketch alpha must be in (0, 1), got {self.alpha}")

    # -- construction -------------------------------------------------------------
    @classmethod
    def empty(cls, alpha: float = DEFAULT_ALPHA) -> QuantileSketch:
        return cls(alpha=alpha)

    @classmethod
    def from_values(
        cls, values: np.ndarray, alpha: float = DEFAULT_ALPHA, *, centre: float = 0.0
    ) -> QuantileSketch:
        """Sketch ``values - centre`` for an array of finite floats.

        A few in-place vectorised passes and one ``bincount``: the bucket index
        is computed in a single float buffer (subtract, abs, log, scale, ceil),
        the sign is folded into the lowest bit of the key so the positive and
        negative stores come out of the same ``bincount``, and the float key
        becomes an integer by adding ``1.5 * 2**52`` and reading the bits
        (exact for integer-valued floats below ``2**51``; a third of the cost
        of a float-to-int cast).
        """
        x = np.asarray(values, dtype=np.float64)
        if x.size == 0:
            return cls(alpha=alpha)
        inv_log_gamma = 1.0 / math.log(_gamma(alpha))
        k_min = math.ceil(math.log(MIN_INDEXABLE) * inv_log_gamma)
        key, neg = scratch(x.size)
        np.subtract(x, centre, out=key)
        np.signbit(key, out=neg)
        np.abs(key, out=key)
        with np.errstate(divide="ignore"):
            np.log(key, out=key)
        key *= inv_log_gamma
        np.ceil(key, out=key)
        zero = 0
        lo = float(key.min())
        if lo < k_min:  # zeros (log -> -inf) and values below MIN_INDEXABLE
            zero = int(np.count_nonzero(key < k_min))
            np.maximum(key, k_min - 1, out=key)
            lo = float(k_min - 1)
        key *= 2.0
        key += neg
        key += _MAGIC - 2.0 * lo  # 2 * (index - lo) + sign, in the low bits
        idx = key.view(np.int64)
        idx -= _MAGIC_BITS
        dense = np.bincount(idx)
        pos, neg_counts = dense[0::2], dense[1::2]
        base = int(lo)
        if zero and base == k_min - 1:  # the zero slot is not a bucket
            pos[0] = 0
            if neg_counts.size:
                neg_counts[0] = 0
        p_nz, n_nz = np.flatnonzero(pos), np.flatnonzero(neg_counts)
        return cls(
            alpha,
            (p_nz + base).astype(np.int32),
            pos[p_nz].astype(np.int64),
            (n_nz + base).astype(np.int32),
            neg_counts[n_nz].astype(np.int64),
            zero,
        )

    # -- monoid ---------------------------------------------------------------------
    def merge(self, other: QuantileSketch) -> QuantileSketch:
        """Add two sketches with the same ``alpha``."""
        if other.alpha != self.alpha:
            raise ProfileError(
                f"cannot merge sketches with alpha {self.alpha} and {other.alpha}; "
                "profile both with the same relative accuracy"
            )
        pi, pc = _compact(
            np.concatenate([self.pos_index, other.pos_index]),
            np.concatenate([self.pos_count, other.pos_count]),
        )
        ni, nc = _compact(
            np.concatenate([self.neg_index, other.neg_index]),
            np.concatenate([self.neg_count, other.neg_count]),
        )
        return QuantileSketch(self.alpha, pi, pc, ni, nc, self.zero + other.zero)

    @classmethod
    def merge_arrays(
        cls,
        alpha: float,
        pos_index: np.ndarray,
        pos_count: np.ndarray,
        neg_index: np.ndarray,
        neg_count: np.ndarray,
        zero: int,
    ) -> QuantileSketch:
        """Build one sketch from the concatenated stores of many (vectorised merge)."""
        pi, pc = _compact(np.asarray(pos_index), np.asarray(pos_count))
        ni, nc = _compact(np.asarray(neg_index), np.asarray(neg_count))
        return cls(alpha, pi, pc, ni, nc, int(zero))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QuantileSketch):
            return NotImplemented
        return (
            self.alpha == other.alpha
            and self.zero == other.zero
            and np.array_equal(self.pos_index, other.pos_index)
            and np.array_equal(self.pos_count, other.pos_count)
            and np.array_equal(self.neg_index, other.neg_index)
            and np.array_equal(self.neg_count, other.neg_count)
        )

    __hash__ = None  # type: ignore[assignment]

    # -- reading --------------------------------------------------------------------
    @property
    def gamma(self) -> float:
        return _gamma(self.alpha)

    @property
    def count(self) -> int:
        return int(self.pos_count.sum() + self.neg_count.sum() + self.zero)

    def buckets(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Return ``(lower, upper, representative, count)`` of non-empty buckets, ascending.

        Computed once per sketch; the arrays are shared, so do not modify them.
        """
        if self._buckets is not None:
            return self._buckets
        g = self.gamma
        # negative store: larger index = more negative, so reverse for ascending order
        n_idx = self.neg_index[::-1].astype(np.float64)
        n_cnt = self.neg_count[::-1]
        p_idx = self.pos_index.astype(np.float64)
        n_hi_abs = np.power(g, n_idx)
        p_hi = np.power(g, p_idx)
        lower = np.concatenate([-n_hi_abs, [0.0] if self.zero else [], p_hi / g])
        upper = np.concatenate([-n_hi_abs / g, [0.0] if self.zero else [], p_hi])
        rep_scale = 2.0 / (g + 1.0)
        rep = np.concatenate([-n_hi_abs * rep_scale, [0.0] if self.zero else [], p_hi * rep_scale])
        cnt = np.concatenate([n_cnt, [self.zero] if self.zero else [], self.pos_count])
        out = (lower, upper, rep, cnt.astype(np.int64))
        object.__setattr__(self, "_buckets", out)
        return out

    def quantiles(self, qs: np.ndarray | list[float] | tuple[float, ...]) -> np.ndarray:
        """Quantiles at ``qs`` (each in [0, 1]); NaN for an empty sketch."""
        q = np.asarray(qs, dtype=np.float64)
        if np.any((q < 0) | (q > 1)) or np.any(np.isnan(q)):
            raise ProfileError(f"quantiles must be in [0, 1], got {q.tolist()}")
        n = self.count
        if n == 0:
            return np.full(q.shape, np.nan)
        _, _, rep, cnt = self.buckets()
        cum = np.cumsum(cnt)
        rank = np.floor(q * (n - 1))
        pos = np.searchsorted(cum, rank, side="right")
        return rep[np.minimum(pos, rep.size - 1)]

    def quantile(self, q: float) -> float:
        return float(self.quantiles([q])[0])


def cdf_distances(a: QuantileSketch, b: QuantileSketch) -> tuple[float, float]:
    """Kolmogorov-Smirnov statistic and Wasserstein-1 distance between two sketches.

    Both sketches share bucket boundaries (same ``alpha``), so the empirical
    CDFs are exact at every boundary; inside a bucket the mass is taken as
    uniform, which makes both CDFs (and their difference) piecewise linear.
    KS is then the largest |F_a - F_b| at a boundary and Wasserstein-1 the
    exact integral of |F_a - F_b| over the piecewise-linear difference.

    Returns ``(nan, nan)`` when either sketch is empty. The result is kept on ``b``
    for the same ``a`` (KS and Wasserstein of one pair are computed once).
    """
    memo = b._cdf_memo
    if memo is not None and memo[0] is a:
        return memo[1]
    if a.alpha != b.alpha:
        raise ProfileError(f"cannot compare sketches with alpha {a.alpha} and {b.alpha}")
    na, nb = a.count, b.count
    if na == 0 or nb == 0:
        return math.nan, math.nan
    # a (the reference, compared with many windows) keeps its own edges and CDF there:
    # the union with b's edges and a's CDF on it are then the same arrays as computed
    # from scratch (np.unique of all four, a's cumulative counts at each), at less cost
    a_edges, a_cum, a_f = _cdf_side(a)
    lb, ub, _, cb = b.buckets()
    b_edges = np.unique(np.concatenate([lb, ub]))
    at = np.searchsorted(a_edges, b_edges)
    new = b_edges[(at >= a_edges.size) | (a_edges[np.minimum(at, a_edges.size - 1)] != b_edges)]
    if new.size:
        where = np.searchsorted(a_edges, new)
        edges = np.insert(a_edges, where, new)
        fa = np.insert(a_f, where, a_cum[np.searchsorted(a.buckets()[1], new, side="right")] / na)
    else:
        edges, fa = a_edges, a_f
    fb = np.concatenate([[0], np.cumsum(cb)])[np.searchsorted(ub, edges, side="right")] / nb
    d = fa - fb
    ks = float(np.max(np.abs(d)))
    d0, d1 = d[:-1], d[1:]
    width = np.diff(edges)
    a0, a1 = np.abs(d0), np.abs(d1)
    same = d0 * d1 >= 0
    denom = np.where(same, 1.0, a0 + a1)
    area = np.where(same, (a0 + a1) / 2.0, (d0 * d0 + d1 * d1) / (2.0 * denom))
    w1 = float(np.sum(area * width))
    object.__setattr__(b, "_cdf_memo", (a, (ks, w1)))
    return ks, w1


def cdf_distances_many(a: QuantileSketch, bs: list[QuantileSketch]) -> list[tuple[float, float]]:
    """:func:`cdf_distances` of ``a`` against each of ``bs``: the same values.

    The sketches whose buckets are all buckets of ``a`` (the usual case: a window's
    buckets are among the reference's) have their edges among ``a``'s (the same bucket
    gives the same edges), so their CDF differences are rows of one array, computed
    together with the same operations per element as :func:`cdf_distances` (and so the
    same values); the others go one by one.
    """
    out: list[tuple[float, float] | None] = [None] * len(bs)
    na = a.count
    cand: list[int] = []
    for j, b in enumerate(bs):
        if na == 0 or b._cdf_memo is not None or a.alpha != b.alpha:
            out[j] = cdf_distances(a, b)
        else:
            cand.append(j)
    rows: list[int] = []
    if cand:
        a_edges, _, a_f = _cdf_side(a)
        col, ok, bucket_counts, row_of, nb = _bucket_columns(a, [bs[j] for j in cand])
        for k, j in enumerate(cand):
            if ok[k]:
                rows.append(j)
            else:
                out[j] = cdf_distances(a, bs[j])
    if rows:
        keep = ok[row_of]  # the buckets of the sketches compared as rows
        new_row = np.cumsum(ok) - 1
        width = np.diff(a_edges)
        nb_rows = nb[ok][:, None]
        ks_all, w1_all = np.empty(len(rows)), np.empty(len(rows))
        r_all, c_all, n_all = new_row[row_of[keep]], col[keep], bucket_counts[keep]
        for lo in range(0, len(rows), _CDF_ROWS):  # rows in blocks that stay in cache
            hi = min(lo + _CDF_ROWS, len(rows))
            sel = (r_all >= lo) & (r_all < hi)
            counts = np.zeros((hi - lo, a_edges.size), dtype=np.int64)
            counts[r_all[sel] - lo, c_all[sel]] = n_all[sel]
            d = np.cumsum(counts, axis=1) / nb_rows[lo:hi]
            np.subtract(a_f[None, :], d, out=d)
            ad = np.abs(d)
            ks_all[lo:hi] = np.max(ad, axis=1)
            # cdf_distances' area per interval: (|d0| + |d1|) / 2 where d keeps its sign,
            # (d0^2 + d1^2) / (2 (|d0| + |d1|)) where it crosses zero; the same operations
            d0, d1 = d[:, :-1], d[:, 1:]
            s = ad[:, :-1] + ad[:, 1:]
            cross = np.nonzero(d0 * d1 < 0)
            x0, x1 = d0[cross], d1[cross]
            crossed = (x0 * x0 + x1 * x1) / (2.0 * s[cross])
            area = s / 2.0
            area[cross] = crossed
            area *= width
            w1_all[lo:hi] = np.sum(area, axis=1)
        for j, k_, w_ in zip(rows, ks_all.tolist(), w1_all.tolist(), strict=True):
            out[j] = (k_, w_)
            object.__setattr__(bs[j], "_cdf_memo", (a, (k_, w_)))
    return [x for x in out if x is not None]


#: Sketches compared per block of rows by :func:`cdf_distances_many`.
_CDF_ROWS = 128


def _bucket_columns(
    a: QuantileSketch, bs: list[QuantileSketch]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Where each bucket of each of ``bs`` is in ``a``'s CDF.

    Returns the column in ``a``'s edges of each bucket's upper edge, which sketches have
    only buckets of ``a`` (and a count), each bucket's count, its sketch, and each
    sketch's count. Buckets are matched by store and index, which give the edges (so a
    bucket of ``a`` has the same upper edge as ``a``'s, bit for bit).
    """
    a_edges, _, _ = _cdf_side(a)
    _, ua, _, _ = a.buckets()
    up = np.searchsorted(a_edges, ua)  # column of each bucket of a (buckets() order)
    n_neg, z = a.neg_index.size, 1 if a.zero else 0
    n = len(bs)
    parts_col, parts_cnt, parts_row, found = [], [], [], np.zeros(n, dtype=np.int64)
    sizes = np.zeros(n, dtype=np.int64)
    for store in ("pos", "neg"):
        idx = [getattr(b, f"{store}_index") for b in bs]
        cnt = [getattr(b, f"{store}_count") for b in bs]
        lens = np.fromiter((x.size for x in idx), np.int64, n)
        if not lens.sum():
            continue
        sizes += lens
        allidx = np.concatenate(idx)
        row = np.repeat(np.arange(n), lens)
        ref = a.pos_index if store == "pos" else a.neg_index
        at = np.searchsorted(ref, allidx)
        hit = at < ref.size
        hit[hit] = ref[at[hit]] == allidx[hit]
        found += np.bincount(row, weights=hit, minlength=n).astype(np.int64)
        pos = n_neg + z + at if store == "pos" else n_neg - 1 - at
        parts_col.append(np.where(hit, up[np.clip(pos, 0, max(up.size - 1, 0))], 0))
        parts_cnt.append(np.concatenate(cnt))
        parts_row.append(row)
    zeros = np.fromiter((b.zero for b in bs), np.int64, n)
    has_zero = zeros > 0
    nb = sizes * 0
    for part_cnt, part_row in zip(parts_cnt, parts_row, strict=True):
        nb += np.bincount(part_row, weights=part_cnt, minlength=n).astype(np.int64)
    nb += zeros
    ok = (found == sizes) & (nb > 0) & (~has_zero | bool(z))
    if z and has_zero.any():
        zr = np.flatnonzero(has_zero)
        parts_col.append(np.full(zr.size, up[n_neg]))
        parts_cnt.append(zeros[zr])
        parts_row.append(zr)
    if not parts_col:
        empty = np.zeros(0, dtype=np.int64)
        return empty, ok, empty, empty, nb
    return (
        np.concatenate(parts_col),
        ok,
        np.concatenate(parts_cnt),
        np.concatenate(parts_row),
        nb,
    )


def _cdf_side(a: QuantileSketch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``a``'s bucket edges (sorted, unique), cumulative counts, and its CDF at the edges."""
    if a._cdf_side is None:
        la, ua, _, ca = a.buckets()
        edges = np.unique(np.concatenate([la, ua]))
        cum = np.concatenate([[0], np.cumsum(ca)])
        object.__setattr__(
            a, "_cdf_side", (edges, cum, cum[np.searchsorted(ua, edges, side="right")] / a.count)
        )
    out: tuple[np.ndarray, np.ndarray, np.ndarray] = a._cdf_side
    return out


def _bucket_keys(values: np.ndarray, alpha: float, centre: float) -> tuple[np.ndarray, np.ndarray]:
    """Bucket index and store (1 positive, -1 negative, 0 zero bucket) of each value.

    The same float operations as :meth:`QuantileSketch.from_values` and
    :func:`grouped_sketches`, so a value lands in the bucket they put it in.
    """
    inv_log_gamma = 1.0 / math.log(_gamma(alpha))
    k_min = math.ceil(math.log(MIN_INDEXABLE) * inv_log_gamma)
    key = np.subtract(np.asarray(values, dtype=np.float64), centre)
    store = np.where(np.signbit(key), -1, 1)
    np.abs(key, out=key)
    with np.errstate(divide="ignore"):
        np.log(key, out=key)
    key *= inv_log_gamma
    np.ceil(key, out=key)
    zero = key < k_min
    store[zero] = 0
    return np.where(zero, 0, key).astype(np.int64), store


def _residual_buckets(
    sketch: QuantileSketch, support: np.ndarray, points: np.ndarray, centre: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(lower, upper, count)`` of the sketch's buckets without the support's point masses.

    In the feature's units, ascending. ``None`` if a point mass is not in its bucket
    (a sketch not built with these centre and alpha).
    """
    lower, upper, _, cnt = sketch.buckets()
    if int(points.sum()) == sketch.count:
        return np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64)
    index, store = _bucket_keys(support, sketch.alpha, centre)
    cnt = cnt.copy()
    # bucket position in buckets() order: negative store reversed, zero, positive store
    n_neg = sketch.neg_index.size
    z = 1 if sketch.zero else 0
    for i, st, c in zip(index.tolist(), store.tolist(), points.tolist(), strict=True):
        if c == 0:
            continue
        if st == 0:
            if not z:
                return None
            pos = n_neg
        else:
            idx = sketch.pos_index if st > 0 else sketch.neg_index
            j = int(np.searchsorted(idx, i))
            if j >= idx.size or idx[j] != i:
                return None
            pos = n_neg + z + j if st > 0 else n_neg - 1 - j
        cnt[pos] -= c
    if np.any(cnt < 0):
        return None
    keep = cnt > 0
    return lower[keep] + centre, upper[keep] + centre, cnt[keep]


def _mixed_cdf(
    x: np.ndarray,
    support: np.ndarray,
    points: np.ndarray,
    residual: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Counts at or below, and below, each ``x``: point masses plus residual buckets.

    A residual bucket's count is spread uniformly over it (a bucket of width 0,
    values at the centre, is a point mass).
    """
    cum_p = np.concatenate([[0], np.cumsum(points)])
    at = cum_p[np.searchsorted(support, x, side="right")].astype(np.float64)
    below = cum_p[np.searchsorted(support, x, side="left")].astype(np.float64)
    lower, upper, cnt = residual
    if cnt.size:
        cum_r = np.concatenate([[0], np.cumsum(cnt)])
        width = upper - lower
        for j, out in ((np.searchsorted(upper, x, side="right"), at),
                       (np.searchsorted(upper, x, side="left"), below)):  # fmt: skip
            # j: the buckets wholly at (or below) x
            out += cum_r[j]
            jj = np.minimum(j, cnt.size - 1)
            inside = (j < cnt.size) & (lower[jj] < x) & (width[jj] > 0)
            frac = np.where(inside, (x - lower[jj]) / np.where(width[jj] > 0, width[jj], 1.0), 0.0)
            out += cnt[jj] * np.clip(frac, 0.0, 1.0)
    return at, below


def discrete_cdf_distances(
    support: np.ndarray,
    a_points: np.ndarray,
    a: QuantileSketch,
    b_points: np.ndarray,
    b: QuantileSketch,
    centre: float,
) -> tuple[float, float] | None:
    """KS statistic and Wasserstein-1 of two discrete profiles: exact counts per support value.

    Each side is its point masses on ``support`` (exact counts ``a_points``,
    ``b_points``) plus the rest of its sketch (``a``, ``b``, the values off the
    support), spread uniformly inside each bucket. Both CDFs are then step
    functions plus piecewise-linear parts; KS is the largest gap between them at
    any breakpoint (either side of a step) and Wasserstein-1 the exact integral of
    their difference. With every value on the support both are exact (the
    empirical CDFs of the raw values); values off the support are placed within
    the sketch's bucket, as :func:`cdf_distances` places every value.

    Returns ``None`` when a sketch does not hold its point masses (built with
    another centre or accuracy); ``(nan, nan)`` when either side is empty.
    """
    na, nb = a.count, b.count
    if na == 0 or nb == 0:
        return math.nan, math.nan
    ra = _residual_buckets(a, support, a_points, centre)
    rb = _residual_buckets(b, support, b_points, centre)
    if ra is None or rb is None:
        return None
    x = np.unique(np.concatenate([support, ra[0], ra[1], rb[0], rb[1]]))
    fa_at, fa_below = _mixed_cdf(x, support, a_points, ra)
    fb_at, fb_below = _mixed_cdf(x, support, b_points, rb)
    d_at = fa_at / na - fb_at / nb
    d_below = fa_below / na - fb_below / nb
    ks = float(max(np.max(np.abs(d_at)), np.max(np.abs(d_below))))
    # between breakpoints the difference is linear: from d_at[i] to d_below[i + 1]
    d0, d1 = d_at[:-1], d_below[1:]
    width = np.diff(x)
    a0, a1 = np.abs(d0), np.abs(d1)
    same = d0 * d1 >= 0
    denom = np.where(same, 1.0, a0 + a1)
    area = np.where(same, (a0 + a1) / 2.0, (d0 * d0 + d1 * d1) / (2.0 * denom))
    return ks, float(np.sum(area * width))


def grouped_sketches(
    values: np.ndarray,
    groups: np.ndarray,
    n_groups: int,
    alpha: float = DEFAULT_ALPHA,
    *,
    centre: float = 0.0,
) -> list[QuantileSketch]:
    """One sketch per group, equal to :meth:`QuantileSketch.from_values` of each group's values.

    ``values`` are finite floats and ``groups`` their group numbers (``0 <= g <
    n_groups``, sorted ascending). The bucket of every value is computed in one
    pass, exactly as :meth:`~QuantileSketch.from_values` computes it; the counts of
    all groups come out of one ``bincount`` (or one sort when the groups times the
    buckets in use would be too many for a dense count).
    """
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return [QuantileSketch(alpha=alpha) for _ in range(n_groups)]
    g = np.asarray(groups, dtype=np.int64)
    inv_log_gamma = 1.0 / math.log(_gamma(alpha))
    k_min = math.ceil(math.log(MIN_INDEXABLE) * inv_log_gamma)
    key = np.subtract(x, centre)
    neg = np.signbit(key)
    np.abs(key, out=key)
    with np.errstate(divide="ignore"):
        np.log(key, out=key)
    key *= inv_log_gamma
    np.ceil(key, out=key)
    is_zero = key < k_min
    zeros = np.bincount(g[is_zero], minlength=n_groups)
    if is_zero.any():
        keep = ~is_zero
        key, neg, g = key[keep], neg[keep], g[keep]
    if key.size == 0:
        return [QuantileSketch(alpha, zero=int(z)) for z in zeros]
    lo = int(key.min())
    code = key.astype(np.int64)
    del key
    code -= lo
    width = int(code.max()) + 1
    code += neg * width  # per group: positive buckets, then negative ones, each ascending
    code += g * (2 * width)
    if n_groups * 2 * width <= max(4 * code.size, 1 << 20):
        dense = np.bincount(code, minlength=n_groups * 2 * width)
        keys = np.flatnonzero(dense)
        counts = dense[keys]
    else:
        keys, counts = np.unique(code, return_counts=True)
    del code
    bounds = np.searchsorted(keys, np.arange(2 * n_groups + 1) * width).tolist()
    index = (keys % width + lo).astype(np.int32)
    counts = counts.astype(np.int64, copy=False)
    zero_list = zeros.tolist()
    return [
        QuantileSketch(
            alpha,
            index[bounds[2 * i] : bounds[2 * i + 1]],
            counts[bounds[2 * i] : bounds[2 * i + 1]],
            index[bounds[2 * i + 1] : bounds[2 * i + 2]],
            counts[bounds[2 * i + 1] : bounds[2 * i + 2]],
            zero_list[i],
        )
        for i in range(n_groups)
    ]

"""The exact two-sided Kolmogorov-Smirnov p-value for many ``(D, n)`` at once.

``kstwo_sf_many(d, n)`` gives ``scipy.stats.kstwo.sf(d, n)`` elementwise: the same
algorithm scipy chooses for each pair (Simard and L'Ecuyer's selection in
``scipy.stats._ksstats._kolmogn``), with the two that cost (Durbin's matrix as
Marsaglia, Tsang and Wang compute it, and Pomeranz's recursion) run once per group of
pairs instead of once per pair, as numpy over the group. Every other pair (closed forms,
Smirnov's series, n > 140) is scipy's own call.

The values equal scipy's up to floating-point summation order (a convolution summed in
another order, a matrix product batched): within 1e-14 absolute on p-values (scipy's own
p-value is ``1 - CDF`` and carries the CDF's rounding), which
``tests/analysis/test_drift_many.py`` checks against ``scipy.stats.kstwo.sf``. A
backfill of 1,200 daily windows x 20 numeric features asks for 24,000 p-values; scipy
computes each in about 1 ms of Python (Pomeranz's recursion is 2n + 1 small convolutions),
this in a few ms per group.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["kstwo_sf_many"]

_E128 = 128
_EP128 = float(2.0**128)
_EM128 = float(2.0**-128)


def kstwo_sf_many(d: np.ndarray | list[float], n: np.ndarray | list[int]) -> np.ndarray:
    """``scipy.stats.kstwo.sf(d, n)`` for every pair, computed by groups (see the module)."""
    x = np.asarray(d, dtype=np.float64).ravel()
    nn = np.asarray(n, dtype=np.int64).ravel()
    if x.shape != nn.shape:
        raise ValueError(f"d and n differ in length ({x.size} and {nn.size})")
    out = np.full(x.size, np.nan)
    nf = nn.astype(np.float64)
    t = nf * x
    with np.errstate(invalid="ignore"):
        nx2 = t * x
    inside = (nn >= 1) & (x > 0) & (x < 1.0) & (t > 1.0) & (t < nf - 1)
    small = inside & (nn <= 140) & (x < 0.5)
    dmtw = small & (nx2 <= 0.754693)
    pomeranz = small & ~dmtw & (nx2 <= 4)
    # scipy's 2 * smirnov(n, x) branches (large D): x >= 0.5; n <= 140 beyond Pomeranz;
    # n > 140 from n x^2 = 2.2 (and 0 from 370)
    with np.errstate(invalid="ignore"):
        big = inside & (nn > 140) & (x < 0.5)
        smirnov = inside & ((x >= 0.5) | (small & (nx2 > 4)) | (big & (nx2 >= 2.2) & (nx2 < 370)))
        zero = big & (nx2 >= 370)
    if smirnov.any():
        from scipy import special  # imported with mlmon.analysis.drift already

        out[smirnov] = np.clip(2 * special.smirnov(nn[smirnov], x[smirnov]), 0.0, 1.0)
    out[zero] = 0.0
    rest = ~(dmtw | pomeranz | smirnov | zero)
    if rest.any():
        from scipy import stats  # imported on first use (about half a second)

        for i in np.flatnonzero(rest).tolist():
            out[i] = float(stats.kstwo.sf(x[i], int(nn[i])))
    for size in np.unique(nn[pomeranz]).tolist():
        sel = np.flatnonzero(pomeranz & (nn == size))
        out[sel] = 1.0 - _pomeranz_cdf(int(size), x[sel])
    if dmtw.any():
        k = np.ceil(t[dmtw]).astype(np.int64)
        sel_all = np.flatnonzero(dmtw)
        keys = nn[dmtw] * 1000 + k
        for key in np.unique(keys).tolist():
            sel = sel_all[keys == key]
            out[sel] = 1.0 - _dmtw_cdf(int(key // 1000), int(key % 1000), x[sel])
    return np.clip(out, 0.0, 1.0)


def _dmtw_cdf(n: int, k: int, d: np.ndarray) -> np.ndarray:
    """``_kolmogn_DMTW(n, d, cdf=True)`` for pairs with one ``n`` and one ``k = ceil(n d)``."""
    b = d.size
    h = k - n * d
    m = 2 * k - 1
    intm = np.arange(1, m + 1)
    v = 1.0 - h[:, None] ** intm[None, :]
    w = np.empty(m)
    fac = 1.0
    for j in intm.tolist():
        w[j - 1] = fac
        fac /= j
        v[:, j - 1] *= fac
    tt = np.maximum(2 * h - 1.0, 0) ** m - 2 * h**m
    v[:, -1] = (1.0 + tt) * fac
    big_h = np.zeros((b, m, m))
    for i in range(1, m):
        big_h[:, i - 1 :, i] = w[: m - i + 1]
    big_h[:, :, 0] = v
    big_h[:, -1, :] = v[:, ::-1]
    power = np.broadcast_to(np.eye(m), (b, m, m)).copy()
    expnt = np.zeros(b, dtype=np.int64)
    h_expnt = np.zeros(b, dtype=np.int64)
    rest = n
    while rest > 0:
        if rest % 2:
            power = np.matmul(power, big_h)
            expnt += h_expnt
        big_h = np.matmul(big_h, big_h)
        h_expnt *= 2
        scale = np.abs(big_h[:, k - 1, k - 1]) > _EP128
        if scale.any():
            big_h[scale] /= _EP128
            h_expnt[scale] += _E128
        rest //= 2
    p = power[:, k - 1, k - 1].copy()
    for i in range(1, n + 1):
        p = i * p / n
        tiny = np.abs(p) < _EM128
        if tiny.any():
            p[tiny] *= _EP128
            expnt[tiny] -= _E128
    p = np.ldexp(p, expnt)
    return np.clip(p, 0.0, 1.0)


def _pomeranz_bounds(
    i: int, n: int, ll: np.ndarray, ceilf: np.ndarray, roundf: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``_pomeranz_compute_j1j2`` for one row ``i`` and every pair (arrays)."""
    if i == 0:
        j1, j2 = -ll - ceilf - 1, ll + ceilf - 1
    else:
        half, odd = divmod(i + 1, 2)
        if odd == 0:  # i is odd
            if half == n + 1:
                j1, j2 = n - ll - ceilf - 1, n + ll + ceilf - 1
            else:
                j1, j2 = half - 1 - ll - roundf - 1, half + ll - 1 + ceilf - 1
        else:
            j1, j2 = half - 1 - ll - 1, half + ll + roundf - 1
    return np.maximum(j1 + 2, 0), np.minimum(j2, n)


def _pomeranz_cdf(n: int, x: np.ndarray) -> np.ndarray:
    """``_kolmogn_Pomeranz(n, x, cdf=True)`` for pairs with one ``n``.

    Rows are kept in absolute positions ``0..n`` (scipy keeps each row's non-zero
    stretch), so pairs with different ``floor(n x)`` run together: row ``i`` is the
    convolution of row ``i - 1`` with the row's Poisson-like weights, kept on
    ``[j1, j2]``, which is the band product below.
    """
    b = x.size
    t = n * x
    ll = np.floor(t).astype(np.int64)
    f = t - ll
    g = np.minimum(f, 1.0 - f)
    ceilf = (f > 0).astype(np.int64)
    roundf = (f > 0.5).astype(np.int64)
    npwrs = 2 * (ll + 1)
    width = int(npwrs.max())
    powers = np.zeros((3, b, width))  # g/n, 2g/n, (1-2g)/n: (.)^m / m!
    powers[:, :, 0] = 1.0
    steps = np.stack([g / n, 2 * g / n, (1 - 2 * g) / n])
    for m in range(1, width):
        powers[:, :, m] = powers[:, :, m - 1] * steps / m
    powers[:, np.arange(width)[None, :] >= npwrs[:, None]] = 0.0  # scipy's pwrs[:npwrs]
    cols = np.arange(n + 1)
    # row i - 1 sits after `pad` zeros: row[j - s] for s > j reads a zero
    pad = width - 1
    padded = np.zeros((b, pad + n + 1))
    row = padded[:, pad:]
    # every pair's windows of the row, once: windows[:, j, pad - s] is row[j - s]
    windows = sliding_window_view(padded, pad + 1, axis=1)
    j1, j2 = _pomeranz_bounds(0, n, ll, ceilf, roundf)
    row[:, 0] = 1.0  # scipy's first row: 1 at its start (j1 = 0 for row 0)
    expnt = np.zeros(b, dtype=np.int64)
    for i in range(1, 2 * n + 2):
        k1 = j1
        j1, j2 = _pomeranz_bounds(i, n, ll, ceilf, roundf)
        which = 0 if i in (1, 2 * n + 1) else (1 if i % 2 else 2)
        keep = (cols[None, :] >= j1[:, None]) & (cols[None, :] <= j2[:, None])
        keep &= (j2 - k1 + 1 > 0)[:, None]
        # row i - 1 convolved with the weights: out[j] = sum over s of row[j - s] * w[s]
        # (only on the columns some pair keeps, and the lags some pair reaches), as one
        # product of each pair's sliding windows of the row with its reversed weights
        weights = powers[which]
        out = np.zeros((b, n + 1))
        active = j2 - k1 + 1 > 0
        if active.any():
            lo, hi = int(j1[active].min()), int(j2[active].max())
            reach = min(width - 1, int((j2 - k1)[active].max()))
            if lo <= hi:
                out[:, lo : hi + 1] = np.matmul(
                    windows[:, lo : hi + 1, pad - reach :], weights[:, reach::-1, None]
                )[..., 0]
        np.copyto(row, np.where(keep, out, 0.0))
        top = row.max(axis=1)
        scale = (top > 0) & (top < _EM128)
        if scale.any():
            row[scale] *= _EP128
            expnt[scale] -= _E128
    ans = row[:, n].copy()
    for m in range(1, n + 1):
        big = np.abs(ans) > _EP128
        if big.any():
            ans[big] *= _EM128
            expnt[big] += _E128
        ans *= m
    ans = np.ldexp(ans, expnt)
    return np.clip(ans, 0.0, 1.0)

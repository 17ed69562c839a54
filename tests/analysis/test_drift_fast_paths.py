"""The shortcuts per-window drift takes (issue 19 item 8) give exactly the values without them."""

from __future__ import annotations

import copy

import numpy as np
import polars as pl
from scipy import stats

from mlmon.analysis import drift as d
from mlmon.profiles.frame import build_reference, profile_frame


def test_ks_p_value_is_scipys_kstwo_sf_exactly():
    for n in (1, 2, 5, 17, 42, 139, 140, 141, 1000, 100_000):
        edge = 0.5 / n
        for x in (
            0.0,
            edge,
            np.nextafter(edge, 1),
            0.01,
            0.05,
            0.1,
            0.17,
            0.3,
            0.5,
            0.77,
            0.999,
            1.0,
        ):
            assert d._kstwo_sf(float(x), n) == float(stats.kstwo.sf(x, n)), (x, n)


def test_chi_square_cache_never_returns_a_stale_test():
    a, b = np.array([10, 20, 30, 5]), np.array([12, 18, 33, 1])
    first = d.chi_square_test(a, b)
    b[3] = 40  # the same array, changed in place
    again = d.chi_square_test(a, b)
    res = stats.chi2_contingency(np.vstack([a, b]))
    assert again != first
    assert again[0] == np.float64(again[0]) and abs(again[2] - res.pvalue) < 1e-12
    assert d.chi_square_test([10, 20, 30, 5], [12, 18, 33, 1]) == first


def test_drift_between_equals_each_method_computed_on_its_own():
    rng = np.random.default_rng(8)
    frame = pl.DataFrame({"x": rng.normal(0, 1, 2000), "c": rng.choice(list("abc"), 2000)})
    ref = build_reference(frame, model="m")
    for shift in (0.0, 0.3, 1.0):
        cur = profile_frame(
            pl.DataFrame({"x": rng.normal(shift, 1, 60), "c": rng.choice(list("abc"), 60)}), ref
        )
        for name, prof in cur.features.items():
            rows = {r["method"]: r for r in d.drift_between(ref.profiles[name], prof)}
            for method, row in rows.items():
                m = d.METHODS[method]
                # fresh copies: no shortcut can be taken
                r2, c2 = copy.deepcopy(ref.profiles[name]), copy.deepcopy(prof)
                assert row["value"] == m(r2, c2), (name, method)
                for k, v in m.statistics(r2, c2).items():
                    assert row[k] == v, (name, method, k)

"""QuantileSketch: monoid laws, accuracy against numpy, KS/Wasserstein against scipy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hst
from hypothesis.extra.numpy import arrays

from mlmon.errors import ProfileError
from mlmon.profiles.sketch import QuantileSketch, cdf_distances

finite = hst.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
values = arrays(np.float64, hst.integers(0, 300), elements=finite)


@given(values, values, values)
@settings(max_examples=60, deadline=None)
def test_merge_is_associative_commutative_and_equals_concatenation(a, b, c):
    sa, sb, sc = (QuantileSketch.from_values(x) for x in (a, b, c))
    assert sa.merge(sb) == sb.merge(sa)
    assert sa.merge(sb).merge(sc) == sa.merge(sb.merge(sc))
    assert sa.merge(sb) == QuantileSketch.from_values(np.concatenate([a, b]))
    assert sa.merge(QuantileSketch.empty()) == sa


@given(
    arrays(np.float64, hst.integers(1, 400), elements=finite), hst.sampled_from([0.01, 0.02, 0.05])
)
@settings(max_examples=80, deadline=None)
def test_quantiles_within_relative_accuracy_of_numpy_lower(x, alpha):
    s = QuantileSketch.from_values(x, alpha)
    qs = np.array([0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0])
    got = s.quantiles(qs)
    exact = np.quantile(x, qs, method="lower")
    # relative accuracy alpha, with an absolute floor for values in the zero bucket
    # relative accuracy alpha (exact at bucket edges, so allow float rounding), zero bucket floor
    assert np.all(np.abs(got - exact) <= alpha * (1 + 1e-9) * np.abs(exact) + 1e-300)


wide = hst.one_of(
    hst.floats(allow_nan=False, allow_infinity=False),
    hst.sampled_from([0.0, -0.0, 1.0, -1.0, 5e-324, 1e-300, -1e-301, 1.7e308]),
)


@given(
    arrays(np.float64, hst.integers(1, 400), elements=wide),
    hst.sampled_from([0.0, 0.5, -3.0]),
    hst.sampled_from([0.01, 0.05, 0.2]),
)
@settings(max_examples=80, deadline=None)
def test_bucket_index_is_the_ceiling_of_the_log_for_every_float(x, centre, alpha):
    """The fast kernel (sign in the low bit, integer read from the float's bits)
    puts every value where the definition does: ``ceil(log(|x - c|) / log(gamma))``
    per sign, and values below 1e-300 in the zero bucket."""
    s = QuantileSketch.from_values(x, alpha, centre=centre)
    d = x - centre
    inv = 1.0 / np.log(s.gamma)
    k_min = np.ceil(np.log(1e-300) * inv)
    with np.errstate(divide="ignore"):
        k = np.ceil(np.log(np.abs(d)) * inv)
    small = k < k_min
    assert s.zero == int(np.count_nonzero(small))
    for sign, index, count in (
        (False, s.pos_index, s.pos_count),
        (True, s.neg_index, s.neg_count),
    ):
        keys, n = np.unique(k[~small & (np.signbit(d) == sign)], return_counts=True)
        np.testing.assert_array_equal(index, keys.astype(np.int32))
        np.testing.assert_array_equal(count, n)


def test_zero_negative_and_empty():
    s = QuantileSketch.from_values(np.array([-5.0, 0.0, 0.0, 3.0]))
    assert s.count == 4 and s.zero == 2
    assert s.quantile(0.0) == pytest.approx(-5.0, rel=0.01)
    assert s.quantile(1.0) == pytest.approx(3.0, rel=0.01)
    assert np.isnan(QuantileSketch.empty().quantile(0.5))
    with pytest.raises(ProfileError, match=r"quantiles must be in \[0, 1\]"):
        s.quantiles([1.5])


def test_merging_different_accuracy_is_refused():
    with pytest.raises(ProfileError, match="alpha"):
        QuantileSketch.from_values(np.ones(3), 0.01).merge(
            QuantileSketch.from_values(np.ones(3), 0.02)
        )


@pytest.mark.parametrize(
    ("ref", "cur"),
    [
        (lambda r: r.normal(0, 1, 20000), lambda r: r.normal(0.3, 1, 20000)),
        (lambda r: r.normal(0, 1, 20000), lambda r: r.normal(0, 1.5, 5000)),
        (lambda r: r.lognormal(3, 1, 20000), lambda r: r.lognormal(3.2, 1, 20000)),
        (lambda r: r.exponential(2, 10000) - 1, lambda r: r.exponential(2.5, 10000) - 1),
    ],
)
def test_ks_and_wasserstein_from_sketches_match_scipy(ref, cur):
    rng = np.random.default_rng(7)
    a, b = ref(rng), cur(rng)
    ks, w1 = cdf_distances(QuantileSketch.from_values(a), QuantileSketch.from_values(b))
    assert abs(ks - st.ks_2samp(a, b).statistic) <= 0.01  # issue 2: within 0.01 absolute
    assert w1 == pytest.approx(st.wasserstein_distance(a, b), rel=0.02)  # within 2% relative


def test_offset_data_needs_centring():
    """DESIGN.md: N(310, 1) vs N(310.05, 1): centring recovers the exact KS."""
    rng = np.random.default_rng(3)
    a, b = rng.normal(310, 1, 100_000), rng.normal(310.05, 1, 100_000)
    exact = st.ks_2samp(a, b).statistic
    c = float(np.median(a))
    ks_centred, _ = cdf_distances(
        QuantileSketch.from_values(a - c), QuantileSketch.from_values(b - c)
    )
    ks_raw, _ = cdf_distances(QuantileSketch.from_values(a), QuantileSketch.from_values(b))
    assert abs(ks_centred - exact) <= 0.002
    assert abs(ks_raw - exact) > 0.005  # the reason for centring


def test_cdf_memo_is_kept_per_pair_only():
    """KS and Wasserstein of one pair share one computation; another reference recomputes."""
    rng = np.random.default_rng(3)
    cur = QuantileSketch.from_values(rng.normal(0.5, 1, 2000))
    ref_a = QuantileSketch.from_values(rng.normal(0, 1, 2000))
    ref_b = QuantileSketch.from_values(rng.normal(2, 1, 2000))
    first = cdf_distances(ref_a, cur)
    assert cdf_distances(ref_a, cur) == first
    other = cdf_distances(ref_b, cur)
    copy = QuantileSketch(
        cur.alpha, cur.pos_index, cur.pos_count, cur.neg_index, cur.neg_count, cur.zero
    )
    assert other != first and other[1] > first[1]
    assert other == cdf_distances(ref_b, copy)
    assert cdf_distances(ref_a, cur) == first

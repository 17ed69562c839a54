"""Numeric and categorical profiles: monoid laws, NaN/inf handling, Arrow round trip."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst
from hypothesis.extra.numpy import arrays

from mlmon.errors import ProfileError
from mlmon.profiles.arrow import merge_rows, profile_from_row, profiles_to_arrow
from mlmon.profiles.kinds import (
    OTHER,
    CategoricalProfile,
    NumericProfile,
    bin_index,
    sum_of_squares,
)

EDGES = np.array([-10.0, -1.0, 0.0, 0.5, 1.0, 10.0])
anyfloat = hst.one_of(
    hst.floats(min_value=-1e12, max_value=1e12),
    hst.sampled_from([float("nan"), float("inf"), float("-inf"), 0.0, 0.25, -10.0, 10.0]),
)
numeric_values = arrays(np.float64, hst.integers(0, 200), elements=anyfloat)
cats = hst.lists(hst.sampled_from(["a", "b", "c", "zzz", "Jane Doe", None]), max_size=200)
VOCAB = ("a", "b", "c")


def num(x: np.ndarray) -> NumericProfile:
    return NumericProfile.from_array(x, edges=EDGES, centre=0.25)


def cat(values: list) -> CategoricalProfile:
    return CategoricalProfile.from_series(pl.Series(values, dtype=pl.String), categories=VOCAB)


@given(numeric_values, numeric_values, numeric_values)
@settings(max_examples=60, deadline=None)
def test_numeric_monoid(a, b, c):
    pa_, pb, pc = num(a), num(b), num(c)
    assert pa_.merge(pb) == pb.merge(pa_)
    assert pa_.merge(pb).merge(pc) == pa_.merge(pb.merge(pc))
    assert pa_.merge(pb) == num(np.concatenate([a, b]))
    assert pa_.merge(pa_.empty_like()) == pa_


@given(numeric_values)
@settings(max_examples=60, deadline=None)
def test_numeric_counts_nan_and_inf_apart(x):
    p = num(x)
    finite = x[np.isfinite(x)]
    assert p.count == finite.size
    assert p.nans == np.isnan(x).sum()
    assert p.pos_inf == (x == np.inf).sum() and p.neg_inf == (x == -np.inf).sum()
    assert p.bins.sum() == finite.size
    assert np.isfinite(p.sum) and np.isfinite(p.sum_sq)
    if finite.size:
        assert p.sum == pytest.approx(finite.sum(), rel=1e-9, abs=1e-6)
        assert p.min == finite.min() and p.max == finite.max()


def test_nulls_are_not_nans():
    p = NumericProfile.from_series(pl.Series([1.0, None, float("nan"), 2.0]), edges=EDGES)
    assert (p.count, p.nulls, p.nans) == (2, 1, 1)


def test_constant_and_empty_columns():
    p = num(np.full(50, 3.0))
    assert p.count == 50 and p.std == 0.0 and p.quantiles([0.5])[0] == pytest.approx(3.0, rel=0.01)
    e = num(np.array([], dtype=float))
    assert e.count == 0 and np.isnan(e.mean)


def test_bins_follow_documented_edges():
    x = np.array([-11.0, -10.0, -1.0, 0.0, 0.7, 10.0, 10.5])
    # (-inf,-10) [-10,-1) [-1,0) [0,0.5) [0.5,1) [1,10] (10,inf)
    assert bin_index(x, EDGES).tolist() == [0, 1, 2, 3, 4, 5, 6]
    edges = np.array([0.0, 1.0])
    counts = np.bincount(bin_index(np.array([0.0, 0.5, 1.0]), edges), minlength=3)
    assert counts.tolist() == [0, 3, 0]  # the reference max stays inside


@given(cats, cats, cats)
@settings(max_examples=60, deadline=None)
def test_categorical_monoid_and_other(a, b, c):
    pa_, pb, pc = cat(a), cat(b), cat(c)
    assert pa_.merge(pb) == pb.merge(pa_)
    assert pa_.merge(pb).merge(pc) == pa_.merge(pb.merge(pc))
    assert pa_.merge(pb) == cat(a + b)
    assert pa_.nulls == sum(v is None for v in a)
    assert pa_.counts[-1] == sum(v not in VOCAB and v is not None for v in a)


def test_values_outside_vocabulary_are_never_kept():
    p = cat(["a", "Jane Doe", "MRN-123456"])
    table = profiles_to_arrow([("name", p)])
    blob = str(table.to_pylist())
    assert "Jane Doe" not in blob and "MRN-123456" not in blob
    assert p.labels == (*VOCAB, OTHER)


def test_fold_rare_is_k_anonymity():
    p = cat(["a"] * 10 + ["b"] * 2 + ["zzz"])
    folded = p.fold_rare(5)
    assert folded.counts.tolist() == [10, 0, 0, 3]
    assert folded.count == p.count


def test_incompatible_profiles_refuse_to_merge():
    with pytest.raises(ProfileError, match="different references"):
        num(np.ones(3)).merge(NumericProfile.from_array(np.ones(3), edges=EDGES[:3]))
    with pytest.raises(ProfileError, match="vocabularies"):
        cat(["a"]).merge(CategoricalProfile.from_series(pl.Series(["a"]), categories=("a",)))


@given(numeric_values, cats)
@settings(max_examples=40, deadline=None)
def test_arrow_round_trip_and_grouped_merge(x, c):
    n, k = num(x), cat(c)
    table = profiles_to_arrow([("x", n), ("c", k)])
    rows = table.to_pylist()
    assert profile_from_row(rows[0]) == n
    assert profile_from_row(rows[1]) == k
    doubled = pa.concat_tables([table, table])
    merged = dict(merge_rows(doubled, ["feature"]))
    assert merged[("x",)] == n.merge(n)
    assert merged[("c",)] == k.merge(k)


@pytest.mark.parametrize("n", [0, 1, 8191, 8192, 8193, 100_000, 1_000_003])
def test_sum_of_squares_equals_numpy(n):
    """Chunked (to keep OpenBLAS on one thread) yet equal to the plain sum to 1e-12 relative."""
    x = np.random.default_rng(n).normal(3.0, 2.0, n)
    want = float(np.sum(x.astype(np.longdouble) ** 2))
    assert sum_of_squares(x) == pytest.approx(want, rel=1e-12, abs=0.0)

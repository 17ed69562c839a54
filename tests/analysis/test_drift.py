"""Drift methods against scipy/numpy on raw data, and a conformance test over the registry."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import scipy.stats as st
from hypothesis import assume, given, settings
from hypothesis import strategies as hst
from hypothesis.extra.numpy import arrays
from scipy.spatial.distance import jensenshannon

from mlmon.analysis.drift import EPS, METHODS, DriftMethod, method, register_method
from mlmon.errors import DuplicateNameError, UnknownNameError
from mlmon.profiles.frame import build_reference, profile_frame
from mlmon.profiles.kinds import bin_index


def _raw_counts(
    ref: np.ndarray, cur: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    k = edges.size + 1
    return (
        np.bincount(bin_index(ref, edges), minlength=k),
        np.bincount(bin_index(cur, edges), minlength=k),
    )


@pytest.fixture(scope="module")
def shifted():
    rng = np.random.default_rng(11)
    ref = pl.DataFrame({"x": rng.normal(50, 10, 30_000), "c": rng.choice(list("abcde"), 30_000)})
    cur = pl.DataFrame(
        {
            "x": rng.normal(53, 12, 20_000),
            "c": rng.choice(list("abcdef"), 20_000, p=[0.3, 0.2, 0.2, 0.1, 0.1, 0.1]),
        }
    )
    reference = build_reference(ref)
    return ref, cur, reference, profile_frame(cur, reference)


def test_binned_methods_equal_numpy_on_the_same_bins(shifted):
    ref, cur, reference, window = shifted
    r_raw, c_raw = ref["x"].to_numpy(), cur["x"].to_numpy()
    rc, cc = _raw_counts(r_raw, c_raw, reference.profiles["x"].edges)
    p, q = rc / rc.sum(), cc / cc.sum()
    pc, qc = np.clip(p, EPS, None), np.clip(q, EPS, None)
    expected = {
        "psi": float(np.sum((qc - pc) * np.log(qc / pc))),
        "jensen_shannon": float(jensenshannon(p, q, base=2)),
        "hellinger": float(np.sqrt(1 - np.sum(np.sqrt(p * q)))),
        "chi_square": float(st.chi2_contingency(np.vstack([rc, cc])[:, (rc + cc) > 0]).pvalue),
    }
    for name, value in expected.items():
        got = METHODS[name](reference.profiles["x"], window.features["x"])
        assert got == pytest.approx(value, abs=1e-9), name


def test_categorical_methods_equal_numpy(shifted):
    ref, cur, reference, window = shifted
    vocab = reference.profiles["c"].categories
    rc = np.array([(ref["c"] == v).sum() for v in vocab] + [(~ref["c"].is_in(vocab)).sum()])
    cc = np.array([(cur["c"] == v).sum() for v in vocab] + [(~cur["c"].is_in(vocab)).sum()])
    got = METHODS["jensen_shannon"](reference.profiles["c"], window.features["c"])
    assert got == pytest.approx(jensenshannon(rc / rc.sum(), cc / cc.sum(), base=2), abs=1e-9)
    got = METHODS["chi_square"](reference.profiles["c"], window.features["c"])
    assert got == pytest.approx(
        st.chi2_contingency(np.vstack([rc, cc])[:, (rc + cc) > 0]).pvalue, abs=1e-9
    )


def test_sketch_methods_match_scipy(shifted):
    ref, cur, reference, window = shifted
    r_raw, c_raw = ref["x"].to_numpy(), cur["x"].to_numpy()
    ks = METHODS["ks"](reference.profiles["x"], window.features["x"])
    assert abs(ks - st.ks_2samp(r_raw, c_raw).statistic) <= 0.01
    w = METHODS["wasserstein"](reference.profiles["x"], window.features["x"])
    assert w == pytest.approx(st.wasserstein_distance(r_raw, c_raw) / r_raw.std(), rel=0.02)


# -- conformance: every registered method, so a new one is tested by being registered ---
def _profiles(ref: np.ndarray, cur: np.ndarray):
    reference = build_reference(pl.DataFrame({"x": ref}))
    return reference.profiles["x"], profile_frame(pl.DataFrame({"x": cur}), reference).features["x"]


def _cat_profiles(ref: list[str], cur: list[str]):
    reference = build_reference(pl.DataFrame({"c": ref}), k=1)
    return reference.profiles["c"], profile_frame(pl.DataFrame({"c": cur}), reference).features["c"]


def _no_drift_value(m: DriftMethod) -> float:
    return 1.0 if m.direction == "below" else 0.0


@pytest.mark.parametrize("name", sorted(METHODS))
def test_conformance_identical_inputs_give_no_drift(name):
    m = METHODS[name]
    x = np.random.default_rng(1).normal(0, 1, 5000)
    r, c = _profiles(x, x)
    assert m(r, c) == pytest.approx(_no_drift_value(m), abs=1e-9)
    assert not m.is_drifted(m(r, c))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_conformance_finite_with_empty_bins_and_within_bounds(name):
    m = METHODS[name]
    rng = np.random.default_rng(2)
    r, c = _profiles(
        rng.normal(0, 1, 5000), rng.normal(10, 0.1, 500)
    )  # all mass in one overflow bin
    v = m(r, c)
    assert math.isfinite(v)
    assert m.bounds[0] - 1e-12 <= v <= m.bounds[1] + 1e-12
    assert m.is_drifted(v)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_conformance_scale_invariant(name):
    m = METHODS[name]
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 8000), rng.normal(0.4, 1, 8000)
    v1 = m(*_profiles(a, b))
    v2 = m(*_profiles(a * 1000.0, b * 1000.0))
    assert v2 == pytest.approx(v1, rel=0.03, abs=0.005)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_conformance_grows_with_the_shift(name):
    m = METHODS[name]
    rng = np.random.default_rng(4)
    a = rng.normal(0, 1, 20_000)
    z = rng.normal(0, 1, 20_000)
    values = [m(*_profiles(a, z + s)) for s in (0.1, 0.5, 1.5)]
    if m.direction == "below":
        values = [-v for v in values]
    assert values[0] <= values[1] <= values[2]
    assert values[0] < values[2]


@pytest.mark.parametrize("name", sorted(n for n, m in METHODS.items() if "categorical" in m.kinds))
def test_conformance_categorical(name):
    m = METHODS[name]
    ref = ["a"] * 500 + ["b"] * 300 + ["c"] * 200
    same = m(*_cat_profiles(ref, ref))
    assert same == pytest.approx(_no_drift_value(m), abs=1e-9)
    moved = m(*_cat_profiles(ref, ["a"] * 100 + ["b"] * 300 + ["c"] * 600))
    assert m.is_drifted(moved)


def test_registry_refuses_duplicates_and_names_known_methods():
    with pytest.raises(DuplicateNameError, match="already registered"):
        register_method("psi", METHODS["psi"])
    with pytest.raises(UnknownNameError) as info:
        method("kl")
    for name in METHODS:
        assert name in str(info.value)


@given(
    arrays(np.int64, hst.integers(1, 15), elements=hst.integers(0, 60)),
    hst.data(),
)
@settings(max_examples=200, deadline=None)
def test_chi_square_equals_scipy_contingency_with_yates(ref, data):
    """The written-out test equals scipy.stats.chi2_contingency (Yates for 2 bins) to 1e-12."""
    cur = data.draw(arrays(np.int64, ref.size, elements=hst.integers(0, 60)))
    assume(ref.sum() > 0 and cur.sum() > 0)
    table = np.vstack([ref, cur]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    want = 1.0 if table.shape[1] < 2 else st.chi2_contingency(table, correction=True).pvalue
    assert METHODS["chi_square"].func(ref, cur) == pytest.approx(want, abs=1e-12)

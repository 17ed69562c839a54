"""The golden comparison gate (pure) and the package surface."""

from __future__ import annotations

import subprocess
import sys

import polars as pl
import pytest

import mlmon.registry
from mlmon.errors import ConfigError, DuplicateNameError, MissingExtraError, UnknownNameError
from mlmon.registry import (
    REGISTRIES,
    AttributionRule,
    CheckTolerance,
    MlflowRegistry,
    compare_golden,
    open_registry,
    register_registry,
)

# The real servers these tests start are session fixtures: one worker runs them all, so each
# server starts once per run (make test: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("mlflow-registry")


def _candidate(passed, latency=10.0, delta=0.0):
    n = len(passed)
    return pl.DataFrame(
        {
            "sample_id_hmac": [f"{i:064x}" for i in range(n)],
            "passed": passed,
            "error_kind": [None if p else "mismatch" for p in passed],
            "latency_ms": [latency] * n,
            "output_delta": [delta] * n,
        }
    )


def _baseline(rates, checks=4, latency=10.0):
    rows = []
    for i, rate in enumerate(rates):
        for k in range(checks):
            rows.append({"sample_id_hmac": f"{i:064x}", "passed": k < rate * checks,
                         "latency_ms": latency})  # fmt: skip
    return pl.DataFrame(rows)


def test_verdicts_per_case():
    cand = _candidate([True, False, True, False, True])
    base = _baseline([1.0, 1.0, 0.0, 0.25])  # case 5 has no baseline
    r = compare_golden(cand, base, CheckTolerance(max_regressed_cases=1))
    assert r.cases.get_column("verdict").to_list() == [
        "ok", "regressed", "improved", "still failing", "no baseline"
    ]  # fmt: skip
    assert r.cases.get_column("baseline_pass_rate").to_list()[:4] == [1.0, 1.0, 0.0, 0.25]
    assert r.summary["compared"] == 4 and r.summary["no_baseline"] == 1
    assert r.summary["baseline_pass_rate"] == pytest.approx((1 + 1 + 0 + 0.25) / 4)
    assert r.summary["candidate_pass_rate"] == pytest.approx(0.5)
    # one regression is allowed, but the pass rate (0.5) is below production's (0.5625)
    assert r.failures == ("pass rate 50.0% is below production's 56.2% (allowed drop 0.0%)",)


def test_equal_candidate_passes_and_a_regression_fails():
    assert compare_golden(_candidate([True] * 4), _baseline([1.0] * 4)).passed
    r = compare_golden(_candidate([True, True, True, False]), _baseline([1.0] * 4))
    assert not r.passed
    assert r.failures[0] == "1 case(s) regressed (production passed, candidate fails); allowed 0"
    assert "pass rate 75.0% is below production's 100.0%" in r.failures[1]


def test_pass_rate_gate_with_allowed_drop():
    cand, base = _candidate([True, True, True, False]), _baseline([1.0] * 4)
    tol = CheckTolerance(max_regressed_cases=1, max_pass_rate_drop=0.25)
    assert compare_golden(cand, base, tol).passed
    tol = CheckTolerance(max_regressed_cases=1, max_pass_rate_drop=0.2)
    assert compare_golden(cand, base, tol).failures == (
        "pass rate 75.0% is below production's 100.0% (allowed drop 20.0%)",
    )


def test_latency_gate_has_a_ratio_and_an_absolute_floor():
    base = _baseline([1.0] * 3, latency=10.0)
    assert compare_golden(_candidate([True] * 3, latency=60.0), base).passed  # 10*1.5+50 = 65
    r = compare_golden(_candidate([True] * 3, latency=70.0), base)
    assert r.failures == (
        "median latency 70.0 ms is above 65.0 ms (production's 10.0 ms x 1.5 + 50 ms)",
    )
    tol = CheckTolerance(latency_ratio=1.0, latency_floor_ms=0.0)
    assert not compare_golden(_candidate([True] * 3, latency=10.5), base, tol).passed


def test_no_baseline_at_all_is_an_error():
    other = pl.DataFrame({"sample_id_hmac": ["x"], "passed": [True], "latency_ms": [1.0]})
    with pytest.raises(ConfigError, match="no golden check of the production version"):
        compare_golden(_candidate([True]), other)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"max_regressed_cases": -1}, "whole number >= 0"), ({"max_pass_rate_drop": 2.0}, "[0, 1]"),
     ({"latency_ratio": 0.5}, "number >= 1"), ({"latency_floor_ms": -1.0}, ">= 0")],
)  # fmt: skip
def test_bad_tolerances(kwargs, match):
    with pytest.raises(ConfigError, match=__import__("re").escape(match)):
        CheckTolerance(**kwargs)


def test_bad_attribution_rule():
    with pytest.raises(ConfigError, match="'nearest' is not a rule; use one of auto, tag"):
        AttributionRule("nearest")  # type: ignore[arg-type]


def test_adapter_table():
    assert sorted(REGISTRIES) == ["mlflow"]
    with pytest.raises(UnknownNameError, match="'zenml' is not known; registered: mlflow"):
        open_registry("http://127.0.0.1:1", "zenml")
    with pytest.raises(DuplicateNameError, match="replace=True"):
        register_registry("mlflow", REGISTRIES["mlflow"])
    reg = open_registry("http://127.0.0.1:1", "mlflow")
    assert isinstance(reg, MlflowRegistry)
    reg.close()


def test_all_is_sorted_and_importing_needs_no_httpx():
    # ruff's RUF022 order: SCREAMING_CASE constants, then CamelCase classes, then functions
    names = mlmon.registry.__all__
    kind = [0 if n.isupper() else 1 if n[0].isupper() else 2 for n in names]
    assert sorted(zip(kind, names, strict=True)) == list(zip(kind, names, strict=True))
    assert all(hasattr(mlmon.registry, n) for n in names)
    code = "import sys, mlmon.registry; print('httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_httpx_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "httpx", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'mlmon\[registry\]'"):
        MlflowRegistry("http://127.0.0.1:1")

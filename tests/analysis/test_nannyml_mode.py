"""NannyML-compatible mode (issue 19 item 4): NannyML 0.13's values and alerts, kept by the lake.

With ``build_reference(binning="nannyml")`` and data-driven thresholds taken the NannyML way
(``chunk_size``, ``leave_out=False``), every chunk's Jensen-Shannon, Hellinger, Wasserstein and
chi-square equal NannyML's ``UnivariateDriftCalculator`` (run in its own environment, the oracle)
within 1e-6, and the alerts are the same. The rule and NannyML's Wasserstein histogram are
stored with the reference and in every window profile, so drift recomputed from the lake (merged
windows, rollups) keeps NannyML's values.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from benchmarks.bench_nannyml_compare import (
    CONSTANT,
    REQUIRED,
    Job,
    compare,
    mlmon_cells,
    nannyml_cells,
    tails_dataset,
)
from mlmon.analysis.drift import drift_between
from mlmon.analysis.lake import Lake
from mlmon.analysis.thresholds import chunk_bounds
from mlmon.edge.ingest import WindowAccumulator
from mlmon.errors import ConfigError
from mlmon.lake.references import load_reference
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.fine import FineHistogram
from mlmon.profiles.frame import build_reference, profile_frame
from mlmon.profiles.schema import FeatureSpec, Schema
from tests import nannyml_data

ROOT = Path(__file__).resolve().parents[2]


def test_every_cell_equals_nannyml_on_car_loan_and_on_tails():
    """NannyML in its own interpreter against mlmon, same chunks: values within 1e-6, same alerts.

    car_loan is one of NannyML's datasets; tails adds what they lack (values beyond the
    reference's range on both sides, missing values, a category the reference never saw).
    NannyML's default thresholds (mean + 3 std over the reference's chunks) are mlmon's
    data-driven ones taken the NannyML way; its ConstantThreshold is mlmon's user threshold.
    """
    jobs = [
        Job("car_loan", chunk_size=5000),
        tails_dataset(nannyml_data.DATA),
        dataclasses.replace(tails_dataset(nannyml_data.DATA), constant=CONSTANT),
    ]
    nml = nannyml_cells(jobs)
    ours = [c for job in jobs for c in mlmon_cells(job)]
    stats = compare(nml, ours)
    for dataset in ("car_loan", "tails", "tails+constant"):
        assert {(k, m) for d, k, m in stats if d == dataset} >= REQUIRED
    chunks = {"car_loan": 20, "tails": 12}  # reference + analysis chunks
    features = {("car_loan", "continuous"): 4, ("car_loan", "categorical"): 3,
                ("tails", "continuous"): 2, ("tails", "categorical"): 1}  # fmt: skip
    alerts = 0
    for key, s in stats.items():
        assert s["missing"] == 0 and s["chunk_mismatch"] == 0, key
        dataset = key[0].removesuffix("+constant")
        assert s["cells"] == chunks[dataset] * features[dataset, key[1]], key
        assert s["max_abs_diff"] <= 1e-6, (key, s)
        assert s["alerts_equal"] == s["cells"], (key, s)
        alerts += s["nannyml_alerts"]
    assert alerts > 60  # the analysis halves drift: equal alerts are not all "no alert"
    # the constant thresholds change which chunks alert: they were applied on both sides
    js = ("categorical", "jensen_shannon")
    assert (
        stats[("tails+constant", *js)]["nannyml_alerts"] != stats[("tails", *js)]["nannyml_alerts"]
    )


def test_chunks_are_nannyml_chunks():
    assert chunk_bounds(10, chunk_size=4) == [(0, 4), (4, 8), (8, 10)]
    assert chunk_bounds(10, chunk_number=3) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert chunk_bounds(50_000, chunk_number=10)[-1] == (45_000, 50_000)
    with pytest.raises(ConfigError, match="exactly one"):
        chunk_bounds(10)


def test_fine_histogram_merges_like_its_records():
    """A monoid: windows merged give the histogram of their records, outside values included."""
    rng = np.random.default_rng(4)
    ref = rng.normal(0, 1, 12_000)
    empty = FineHistogram.for_reference(ref).empty_like()
    cur = rng.normal(0.5, 2.0, 3_000)  # many values outside the reference's range
    parts = np.array_split(cur, 7)
    merged = empty
    for p in parts:
        merged = merged.merge(empty.add(p))
    whole = empty.add(cur)
    assert merged == whole
    assert whole.below > 0 and whole.above > 0 and whole.total == cur.size
    assert np.array_equal(whole.dense(), np.histogram(cur, bins=whole.edges)[0])
    assert whole.below_excess == pytest.approx(np.sum(whole.lo - cur[cur < whole.lo]))


SCHEMA = Schema(
    features=(
        FeatureSpec("income", "numeric"),
        FeatureSpec("age", "numeric"),
        FeatureSpec("grade", "categorical"),
    ),
    latency=None,
    version=None,
)


def _records(rng: np.random.Generator, n: int, start: datetime, shift: float) -> pl.DataFrame:
    secs = np.sort(rng.uniform(0, 10 * 86400, n))
    return pl.DataFrame(
        {
            "timestamp": pl.Series(
                [start + timedelta(seconds=float(s)) for s in secs], dtype=pl.Datetime("us", "UTC")
            ),
            "income": rng.lognormal(10 + shift, 0.5, n),
            "age": rng.integers(18, 90, n).astype(float) + shift * 10,
            "grade": rng.choice(["a", "b", "c"], n).tolist(),
        }
    )


def test_the_binning_rule_and_histogram_survive_the_lake(tmp_path):
    """Written with LakeWriter and read back: rule, edges and histogram equal; merged hourly
    windows (and day rollups) give the same Wasserstein as one profile of the records."""
    rng = np.random.default_rng(19)
    baseline = _records(rng, 12_000, datetime(2026, 9, 1, tzinfo=UTC), 0.0)
    ages = [18, 30, 45, 65, 90]
    ref = build_reference(baseline, SCHEMA, binning="nannyml", bin_edges={"age": ages}, k=1)
    assert ref.binning == {"income": "nannyml", "age": "fixed"}
    assert np.array_equal(ref.profiles["age"].edges, ages)
    doane = np.histogram_bin_edges(baseline["income"].to_numpy(), bins="doane")
    assert np.array_equal(ref.profiles["income"].edges, doane)
    assert ref.profiles["income"].fine is not None and ref.profiles["age"].fine is None

    writer = LakeWriter(str(tmp_path / "lake"), collector_id="edge-1")
    writer.write_reference("m", ref)
    current = _records(rng, 4_000, datetime(2026, 10, 1, tzinfo=UTC), 0.2)
    acc = WindowAccumulator(ref, window=timedelta(hours=1))
    acc.add(current)
    acc.flush(writer, "m", with_drift=False)
    writer.write_rollups()

    lake = Lake(str(tmp_path / "lake"))
    back = lake.reference(ref.reference_id, model="m")
    assert back.binning == ref.binning
    for name, prof in ref.profiles.items():
        assert back.profiles[name] == prof, name  # edges, counts and fine histogram
    direct = profile_frame(current, ref).features["income"]
    want = {r["method"]: r for r in drift_between(ref.profiles["income"], direct)}
    for by in ("all", "day"):  # all: every hourly window merged; day: the rollups
        drift = lake.drift("m", by=by, features=["income"], methods=["wasserstein", "ks"])
        if by == "all":
            got = {r["method"]: r for r in drift.iter_rows(named=True)}
            assert got["wasserstein"]["statistic"] == pytest.approx(
                want["wasserstein"]["statistic"], abs=1e-9
            )
            assert got["ks"]["value"] == pytest.approx(want["ks"]["value"], abs=1e-12)
        assert drift.height > 0
    merged = next(p for _, _, f, p in lake.merged_profiles("m", by="all") if f == "income")
    assert merged.fine == direct.fine

    # the same lake path read by an edge: the reference file keeps the rule too
    path = tmp_path / "ref.parquet"
    from mlmon.lake.references import save_reference

    save_reference(ref, path)
    assert load_reference(path).binning == ref.binning


def test_bad_binning_is_an_error_naming_the_fix():
    rng = np.random.default_rng(1)
    baseline = _records(rng, 200, datetime(2026, 9, 1, tzinfo=UTC), 0.0)
    with pytest.raises(
        ConfigError, match="binning 'doane' is not a binning rule; rules: quantiles, nannyml"
    ):
        build_reference(baseline, SCHEMA, binning="doane")
    with pytest.raises(ConfigError, match="'grade': not a numeric feature"):
        build_reference(baseline, SCHEMA, bin_edges={"grade": [0, 1]})
    with pytest.raises(ConfigError, match="'age': edges must be strictly increasing"):
        build_reference(baseline, SCHEMA, bin_edges={"age": [3, 2, 5]})


def test_reference_build_cli_binning_and_nannyml_thresholds(tmp_path, capsys):
    """``mlmon reference build --binning nannyml --bin-edges ... --nannyml-thresholds``."""
    from mlmon.analysis.thresholds import data_driven_thresholds
    from mlmon.cli import main

    rng = np.random.default_rng(2)
    data = tmp_path / "baseline.parquet"
    baseline = _records(rng, 2_000, datetime(2026, 9, 1, tzinfo=UTC), 0.0)
    baseline.write_parquet(data)
    out = tmp_path / "ref.parquet"
    args = ["reference", "build", "--data", str(data), "--model", "m", "--out", str(out),
            "--categorical", "grade", "--binning", "nannyml"]  # fmt: skip
    assert main([*args, "--bin-edges", "age=18,40,65,90", "--nannyml-thresholds",
                 "--threshold-chunk-size", "300"]) == 0  # fmt: skip
    ref = load_reference(out)
    assert ref.binning == {"income": "nannyml", "age": "fixed"}
    assert np.array_equal(ref.profiles["age"].edges, [18, 40, 65, 90])
    want = data_driven_thresholds(baseline, ref, chunk_size=300, leave_out=False)
    assert ref.drift_thresholds == want and want["income"]["jensen_shannon"] > 0
    # without a chunk size, --threshold-chunks N cuts NannyML's chunk_number=N chunks
    assert main([*args, "--nannyml-thresholds", "--threshold-chunks", "7"]) == 0
    want = data_driven_thresholds(baseline, ref, chunk_size=2_000 // 7, leave_out=False)
    assert load_reference(out).drift_thresholds["income"] == want["income"]
    capsys.readouterr()
    assert main([*args, "--bin-edges", "age=18,x"]) == 2
    assert "--bin-edges 'age=18,x': the edges must be numbers" in capsys.readouterr().err
    assert main([*args, "--bin-edges", "grade=1,2"]) == 2
    assert "bin edges for 'grade': not a numeric feature" in capsys.readouterr().err


def test_a_nannyml_profile_round_trips_through_arrow_and_merges_there():
    """One row per profile and back, and merge_rows (the lake's merge) of window rows."""
    from mlmon.profiles.arrow import merge_rows, profile_from_row, profiles_to_arrow
    from mlmon.profiles.kinds import NumericProfile

    rng = np.random.default_rng(8)
    base = rng.normal(0, 1, 11_000)
    ref = NumericProfile.from_array(base, edges=np.array([-1.0, 0.0, 1.0]), fine=None)
    fine = FineHistogram.for_reference(base)
    x = np.concatenate([rng.normal(0.3, 2, 900), [np.nan, np.inf, -np.inf]])
    parts = [
        NumericProfile.from_array(p, edges=ref.edges, fine=fine.empty_like())
        for p in np.array_split(x, 3)
    ]
    whole = NumericProfile.from_array(x, edges=ref.edges, fine=fine.empty_like())
    assert whole.fine is not None and whole.fine.total == 900  # NaN and inf stay out
    table = profiles_to_arrow([("x", p) for p in parts])
    assert [profile_from_row(r) for r in table.to_pylist()] == parts
    merged = merge_rows(table, ["feature"])
    assert merged == [(("x",), whole)]
    # a profile without the histogram leaves the columns null and merges without one
    plain = profiles_to_arrow([("x", NumericProfile.from_array(x, edges=ref.edges))] * 2)
    assert plain.column("fine_bins").null_count == 2
    assert merge_rows(plain, ["feature"])[0][1].fine is None

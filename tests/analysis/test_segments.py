"""Segments (issue 20 item 6): drift, percentiles and performance per scanner, subgroup gaps.

A fleet of five scanners whose baselines differ; in the analysis period one of
them (Agfa) drifts. The overall profile dilutes it; the segment catches it.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import polars as pl
import pytest

from mlmon.analysis.lake import Lake
from mlmon.analysis.subgroups import newcombe_interval
from mlmon.edge.ingest import WindowAccumulator
from mlmon.errors import ConfigError, SchemaError
from mlmon.lake.references import load_reference, save_reference
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import (
    build_reference,
    performance_segments,
    profile_frame,
    profile_windows,
)
from mlmon.profiles.kinds import OTHER
from mlmon.profiles.performance import PerformanceSpec
from mlmon.profiles.schema import Schema
from tests import nannyml_data

SCANNERS = ("GE", "Siemens", "Philips", "Toshiba", "Agfa")
#: Each scanner's own baseline mean of the intensity feature (they differ in the reference).
MEANS = {"GE": 0.0, "Siemens": 0.4, "Philips": -0.3, "Toshiba": 0.2, "Agfa": -0.1}
T0 = datetime(2026, 10, 1, tzinfo=UTC)


def _records(rng: np.random.Generator, n: int, *, drift: float = 0.0, start: datetime = T0):
    scanner = rng.choice(SCANNERS, n)
    mean = np.array([MEANS[s] for s in scanner])
    shift = np.where(scanner == "Agfa", drift, 0.0)
    label = rng.random(n) < 0.3
    # Agfa's positives score lower in the analysis period: its recall falls
    pos_score = np.where(scanner == "Agfa", 0.65 - 0.25 * (drift > 0), 0.65)
    score = np.clip(np.where(label, pos_score, 0.35) + rng.normal(0, 0.15, n), 0, 1)
    return pl.DataFrame(
        {
            "timestamp": [
                start + timedelta(seconds=int(s)) for s in np.sort(rng.integers(0, 86400 * 2, n))
            ],
            "intensity": rng.normal(mean + shift, 1.0),
            "kvp": rng.choice([100.0, 120.0], n),
            "scanner": scanner,
            "label": np.where(label, "1", "0"),
            "score": score,
        }
    )


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory):
    rng = np.random.default_rng(20)
    base = _records(rng, 10_000)
    schema = Schema.from_dict(
        {
            "features": [
                {"name": "intensity", "kind": "numeric"},
                {"name": "kvp", "kind": "numeric"},
            ],
            "segments": ["scanner"],
            "ignore": ["label", "score"],
        }
    )
    spec = PerformanceSpec.make("binary", classes=["0", "1"])
    ref = build_reference(base, schema, model="ct", performance=spec, k=5)
    current = _records(rng, 10_000, drift=0.7, start=T0 + timedelta(days=7))
    root = tmp_path_factory.mktemp("segments")
    writer = LakeWriter(str(root / "lake"), collector_id="t")
    writer.write_reference("ct", ref)
    writer.write_performance_reference("ct", ref)
    acc = WindowAccumulator(ref, window=timedelta(hours=1))
    acc.add(current)
    acc.flush(writer, "ct", source="batch")
    span = {"start": T0 + timedelta(days=7), "end": T0 + timedelta(days=9)}
    perf = performance_segments(current, ref)
    writer.write_segment_performance("ct", perf, ref, **span, batch_id="b1")
    preds = performance_segments(current, ref, role="predictions")
    writer.write_segment_performance("ct", preds, ref, **span, role="predictions")
    return {"ref": ref, "current": current, "root": root, "lake": Lake(str(root / "lake"))}


def test_one_drifting_scanner_is_flagged_for_it_alone(fleet):
    lake = fleet["lake"]
    methods = ["psi", "jensen_shannon", "hellinger"]
    overall = lake.drift("ct", by="all", methods=methods, features=["intensity"])
    assert overall.height == 3 and not overall.get_column("drifted").any()
    per = lake.drift("ct", by="all", methods=methods, features=["intensity"], segment="scanner")
    for m in methods:
        rows = per.filter(pl.col("method") == m)
        flagged = dict(zip(rows.get_column("segment"), rows.get_column("drifted"), strict=True))
        assert flagged == {f"scanner={s}": s == "Agfa" for s in SCANNERS}, m
    # each segment is compared with the reference's profile of the same scanner (their
    # baselines differ): a quiet scanner is close to 0, not just under the threshold
    ge = per.filter((pl.col("segment") == "scanner=GE") & (pl.col("method") == "psi"))
    assert ge.get_column("value")[0] < 0.05
    one = lake.drift(
        "ct", by="all", methods=["psi"], features=["intensity"], segment="scanner=Agfa"
    )
    assert one.get_column("segment").to_list() == ["scanner=Agfa"]
    agfa = per.filter((pl.col("segment") == "scanner=Agfa") & (pl.col("method") == "psi"))
    assert one.get_column("value")[0] == pytest.approx(agfa.get_column("value")[0])


def test_segment_profiles_equal_profiling_the_segment_in_one_shot(fleet):
    """Merged hourly segment windows = one profile of the segment's raw records."""
    lake, ref, current = fleet["lake"], fleet["ref"], fleet["current"]
    merged = {f: p for _, _, f, p in lake.merged_profiles("ct", by="all")}
    assert merged["intensity"].count == current.height
    for s in SCANNERS:
        raw = profile_frame(current.filter(pl.col("scanner") == s), ref)
        segs = lake._profiles("ct", None, None, None, ["intensity"], None, f"scanner={s}")
        from mlmon.profiles.arrow import merge_rows

        ((_, prof),) = merge_rows(segs, ["segment"])
        want = raw.features["intensity"]
        assert prof.count == want.count
        np.testing.assert_array_equal(prof.bins, want.bins)
        assert prof.sum == pytest.approx(want.sum, rel=1e-12)
    # percentiles per segment come from the same merged sketches
    pct = lake.percentiles("intensity", (0.5,), model="ct", by="all", segment="scanner")
    assert pct.height == 5
    agfa = current.filter(pl.col("scanner") == "Agfa").get_column("intensity").to_numpy()
    got = pct.filter(pl.col("segment") == "scanner=Agfa").get_column("value")[0]
    assert got == pytest.approx(np.quantile(agfa, 0.5, method="lower"), abs=0.02)


def test_subgroup_gap_and_interval_equal_statsmodels(fleet):
    lake, current = fleet["lake"], fleet["current"]
    gaps = lake.subgroup_gaps("ct", segment="scanner")
    assert set(gaps.get_column("metric")) == {"recall", "false_positive_rate", "precision"}
    recall = gaps.filter(pl.col("metric") == "recall").row(0, named=True)
    assert recall["low_segment"] == "scanner=Agfa" and recall["segments"] == 5
    # oracle: the raw records' confusion counts, statsmodels' Newcombe interval
    pred = current.get_column("score").to_numpy() >= 0.5
    lab = current.get_column("label").to_numpy() == "1"
    counts = {}
    for s in SCANNERS:
        m = current.get_column("scanner").to_numpy() == s
        counts[s] = (int((pred & lab & m).sum()), int((lab & m).sum()))
    rates = {s: tp / n for s, (tp, n) in counts.items()}
    hi, lo = max(rates, key=rates.__getitem__), min(rates, key=rates.__getitem__)
    assert recall["high_segment"] == f"scanner={hi}"
    assert recall["gap"] == pytest.approx(rates[hi] - rates[lo], abs=1e-12)
    code = (
        "import json,sys; from statsmodels.stats.proportion import confint_proportions_2indep as c;"
        "a=json.loads(sys.argv[1]); print(json.dumps([float(v) for v in "
        "c(a[0],a[1],a[2],a[3],method='newcomb',compare='diff')]))"
    )
    arg = json.dumps([*counts[hi], *counts[lo]])
    done = subprocess.run(
        [str(nannyml_data.nannyml_python()), "-c", code, arg],
        capture_output=True, text=True, check=True, env={"NML_DISABLE_USAGE_LOGGING": "1"},
    )  # fmt: skip
    lower, upper = json.loads(done.stdout)
    assert (recall["lower"], recall["upper"]) == pytest.approx((lower, upper), abs=1e-12)
    assert recall["lower"] > 0  # the planted gap is real: its interval excludes 0
    assert newcombe_interval(*counts[hi], *counts[lo]) == pytest.approx((lower, upper), abs=1e-12)
    # realized performance per segment from the same rows
    perf = lake.performance("ct", by=None, metrics=["recall"], segment="scanner")
    got = dict(zip(perf.get_column("segment"), perf.get_column("realized"), strict=True))
    assert got == pytest.approx({f"scanner={s}": r for s, r in rates.items()}, abs=1e-12)
    # label-free estimates per segment (its predictions rows) and alerts against the reference
    alerts = dict(zip(perf.get_column("segment"), perf.get_column("alert"), strict=True))
    assert alerts == {f"scanner={s}": s == "Agfa" for s in SCANNERS}
    ge = perf.filter(pl.col("segment") == "scanner=GE").row(0, named=True)
    assert ge["lower"] <= ge["realized"] <= ge["upper"]
    agfa = perf.filter(pl.col("segment") == "scanner=Agfa").row(0, named=True)
    assert agfa["estimated"] < agfa["reference"] - 0.1  # the scores alone show the fall
    with pytest.raises(ConfigError, match="column alone"):
        lake.subgroup_gaps("ct", segment="scanner=GE")


def test_small_segments_take_no_part_in_a_gap(fleet):
    lake = fleet["lake"]
    gaps = lake.subgroup_gaps("ct", segment="scanner", min_count=10**6)
    assert gaps.get_column("segments").to_list() == [0, 0, 0]
    assert gaps.get_column("gap").is_nan().all()


def test_lake_round_trip_plain_duckdb_and_reference_file(fleet, tmp_path):
    root, ref = fleet["root"], fleet["ref"]
    glob = f"{root}/lake/v1/segment_profiles/**/*.parquet"
    got = duckdb.sql(
        f"SELECT segment_value, sum(count) FROM read_parquet('{glob}', hive_partitioning=true) "
        "WHERE feature = 'intensity' GROUP BY 1 ORDER BY 1"
    ).fetchall()
    current = fleet["current"]
    want = sorted(current.group_by("scanner").len().rows())
    assert got == want
    # each record once in profiles, whatever the segments
    n = duckdb.sql(
        f"SELECT sum(count) FROM read_parquet('{root}/lake/v1/profiles/**/*.parquet') "
        "WHERE feature = 'intensity'"
    ).fetchall()
    assert n == [(current.height,)]
    save_reference(ref, tmp_path / "r.parquet")
    back = load_reference(tmp_path / "r.parquet")
    assert back.reference_id == ref.reference_id
    assert back.schema.segments == ref.schema.segments
    assert sorted(back.segment_profiles) == sorted(ref.segment_profiles)
    lake_ref = fleet["lake"].reference(ref.reference_id, model="ct")
    assert lake_ref.profiles.keys() == ref.profiles.keys()
    assert lake_ref.segment_profiles["scanner=GE"]["intensity"].count == (
        ref.segment_profiles["scanner=GE"]["intensity"].count
    )


def test_values_outside_the_allow_list_never_reach_the_lake(tmp_path):
    rng = np.random.default_rng(3)
    base = _records(rng, 2_000).with_columns(
        pl.when(pl.int_range(pl.len()) == 0)
        .then(pl.lit("CANARY-PATIENT-NAME"))
        .otherwise(pl.col("scanner"))
        .alias("scanner")
    )
    schema = Schema.from_dict(
        {"features": [{"name": "intensity", "kind": "numeric"}],
         "segments": [{"name": "scanner", "allowed": ["GE", "Siemens"]}], "ignore": ["label", "score"]}
    )  # fmt: skip
    ref = build_reference(base, schema)
    assert ref.schema.segments[0].allowed == ("GE", "Siemens")
    # a learned vocabulary drops the value seen once
    learned = build_reference(base, Schema.from_dict({**schema.to_dict(), "segments": ["scanner"]}))
    assert "CANARY-PATIENT-NAME" not in (learned.schema.segments[0].allowed or ())
    writer = LakeWriter(str(tmp_path / "lake"), collector_id="t")
    writer.write_reference("m", learned)
    writer.write_reference("m", ref)
    for w in profile_windows(base, ref, window=timedelta(days=1)):
        assert set(w.profile.segments) <= {"scanner=GE", "scanner=Siemens", f"scanner={OTHER}"}
        writer.write_window("m", w, ref)
    for path in (tmp_path / "lake").rglob("*.parquet"):
        assert b"CANARY-PATIENT-NAME" not in path.read_bytes()
    lake = Lake(str(tmp_path / "lake"))
    assert set(lake.segments("m").get_column("segment")) == {
        "scanner=GE", "scanner=Siemens", f"scanner={OTHER}"
    }  # fmt: skip


def test_old_lake_and_bad_segment_declarations(tmp_path):
    rng = np.random.default_rng(4)
    base = _records(rng, 500)
    plain = build_reference(base.drop("scanner"), Schema.from_dict(
        {"features": [{"name": "intensity", "kind": "numeric"}], "ignore": ["label", "score"]}))  # fmt: skip
    assert "segments" not in plain.schema.to_dict()  # reference ids of old schemas unchanged
    writer = LakeWriter(str(tmp_path / "lake"), collector_id="t")
    writer.write_reference("m", plain)
    for w in profile_windows(base, plain, window=timedelta(days=1)):
        assert w.profile.segments == {}
        writer.write_window("m", w, plain)
    lake = Lake(str(tmp_path / "lake"))
    assert lake.drift("m", by="all").height > 0
    seg = lake.drift("m", by="all", segment="scanner")
    assert seg.height == 0 and "segment" in seg.columns
    assert lake.segments("m").height == 0
    with pytest.raises(SchemaError, match="lacks feature column"):
        ref = build_reference(base, Schema.from_dict(
            {"features": [{"name": "intensity", "kind": "numeric"}], "segments": ["scanner"],
             "ignore": ["label", "score"]}))  # fmt: skip
        profile_frame(base.drop("scanner"), ref)
    with pytest.raises(SchemaError, match="segments\\[0\\]"):
        Schema.from_dict({"features": [{"name": "x", "kind": "numeric"}], "segments": [{}]})
    with pytest.raises(SchemaError, match="without '='"):
        Schema.from_dict({"features": [{"name": "x", "kind": "numeric"}], "segments": ["a=b"]})
    with pytest.raises(SchemaError, match="segment column"):
        Schema.from_dict(
            {"features": [{"name": "x", "kind": "numeric"}], "segments": ["timestamp"]}
        )


def test_cli_segment_options(fleet, tmp_path, capsys):
    """`reference build --segment`, `drift --segment`, `performance --segment --gaps` in process."""
    from mlmon.cli import main

    data = tmp_path / "base.csv"
    _records(np.random.default_rng(9), 600).drop("timestamp", "label", "score").write_csv(data)
    assert main(["reference", "build", "--data", str(data), "--model", "ct", "--segment",
                 "scanner", "--out", str(tmp_path / "ref.parquet")]) == 0  # fmt: skip
    ref = load_reference(tmp_path / "ref.parquet")
    assert ref.schema.segment_names == ("scanner",)
    assert sorted(ref.schema.segments[0].allowed or ()) == sorted(SCANNERS)
    capsys.readouterr()
    lake = ["--lake", str(fleet["root"] / "lake"), "--model", "ct", "--by", "all"]
    assert main(["drift", *lake, "--methods", "psi", "--segment", "scanner", "--format", "json",
                 "--only-drifted"]) == 0  # fmt: skip
    rows = json.loads(capsys.readouterr().out)
    assert {(r["segment"], r["feature"]) for r in rows} == {("scanner=Agfa", "intensity")}
    assert main(["performance", *lake, "--segment", "scanner", "--gaps", "--format", "json"]) == 0
    gaps = {r["metric"]: r for r in json.loads(capsys.readouterr().out)}
    assert gaps["recall"]["low_segment"] == "scanner=Agfa" and gaps["recall"]["lower"] > 0
    assert main(["performance", *lake, "--gaps"]) == 2
    assert "--segment" in capsys.readouterr().err


def test_report_section_folds_small_segments_and_shows_the_gap(fleet, tmp_path):
    """The report lists segments with drift and the subgroup gaps; a segment of fewer than
    SHOWN_MIN_COUNT records is folded (neither its records nor its drift shown)."""
    from mlmon.reports.context import collect, load, save
    from mlmon.reports.render import render_html

    start, end = T0 + timedelta(days=7), T0 + timedelta(days=9)
    ctx = collect(fleet["lake"], ["ct"], start, end)
    m = ctx.models[0]
    assert m.segments is not None and m.subgroup_gaps is not None
    drifted = dict(zip(m.segments["segment"], m.segments["drifted_features"], strict=True))
    assert "intensity" in drifted["scanner=Agfa"]
    # (Wasserstein on the two-valued kvp may flag a scanner by chance: its share moved 7 points)
    assert all("intensity" not in drifted[f"scanner={s}"] for s in SCANNERS if s != "Agfa")
    assert any("scanner=Agfa" in r for r in m.status_reasons)
    html = render_html(load(save(ctx, tmp_path / "ctx")))
    assert "<h3>Segments</h3>" in html and "Newcombe" in html
    # a small segment: 3 Agfa records among 200
    rng = np.random.default_rng(5)
    small = _records(rng, 400, start=start).filter(pl.col("scanner") != "Agfa").head(200)
    agfa = _records(rng, 400, start=start).filter(pl.col("scanner") == "Agfa").head(3)
    writer = LakeWriter(str(tmp_path / "small"), collector_id="t")
    writer.write_reference("ct", fleet["ref"])
    acc = WindowAccumulator(fleet["ref"], window=timedelta(days=1))
    acc.add(pl.concat([small, agfa]))
    acc.flush(writer, "ct", source="batch")
    lake = Lake(str(tmp_path / "small"))
    assert lake.segments("ct").filter(pl.col("segment") == "scanner=Agfa")["rows"].to_list() == [3]
    m = collect(lake, ["ct"], start, end).models[0]
    assert m.segments is not None
    assert "scanner=Agfa" not in m.segments["segment"].to_list()
    folded = m.segments.filter(pl.col("records").is_null())
    assert folded.height == 1 and "1 segment(s)" in folded["segment"][0]
    html = render_html(collect(lake, ["ct"], start, end))
    assert "scanner=Agfa" not in html


def test_segments_follow_windows_and_versions(fleet):
    """Per (window, version), the segments of a column add up to the window's records and
    equal profiling that window's segment records in one go (missing versions included)."""
    ref = fleet["ref"]
    df = fleet["current"].head(3000)
    df = df.with_columns(
        pl.Series("model_version", np.random.default_rng(1).choice(["1", "2", "-"], df.height))
    ).with_columns(pl.col("model_version").replace("-", None))
    windows = list(profile_windows(df, ref, window=timedelta(hours=12)))
    assert {w.version for w in windows} == {"1", "2", None}
    for w in windows:
        assert sum(s.rows for s in w.profile.segments.values()) == w.profile.rows
        ts = df.get_column("timestamp")
        in_w = df.filter(
            (ts >= w.start) & (ts < w.end)
            & (pl.col("model_version").eq_missing(pl.lit(w.version, pl.String)))
        )  # fmt: skip
        for key, seg in w.profile.segments.items():
            raw = profile_frame(in_w.filter(pl.col("scanner") == key.split("=", 1)[1]), ref)
            assert seg.rows == raw.rows
            assert seg.features["intensity"].count == raw.features["intensity"].count
            np.testing.assert_array_equal(
                seg.features["intensity"].bins, raw.features["intensity"].bins
            )


def test_batched_writes_carry_the_segments(fleet, tmp_path):
    """``LakeWriter.write_windows`` (the edge's and `mlmon profile`'s flush) writes the same
    segment objects and rows as ``write_window`` one window at a time."""
    ref = fleet["ref"]
    windows = list(profile_windows(fleet["current"].head(2000), ref, window=timedelta(hours=6)))
    one = LakeWriter(str(tmp_path / "one"), collector_id="c")
    singles = [r for w in windows for r in one.write_window("ct", w, ref, source="batch")]
    many = LakeWriter(str(tmp_path / "many"), collector_id="c")
    batched = many.write_windows("ct", windows, ref, source="batch")

    def keys(recs):
        return [(r.table, r.path.split("/v1/", 1)[1], r.rows) for r in recs]

    assert keys(batched) == keys(singles)
    assert sum(r.table == "segment_profiles" for r in batched) == len(windows)
    a = (
        Lake(str(tmp_path / "one"))
        .read("segment_profiles")
        .sort("window_start", "segment_value", "feature")
    )
    b = (
        Lake(str(tmp_path / "many"))
        .read("segment_profiles")
        .sort("window_start", "segment_value", "feature")
    )
    assert a.equals(b)

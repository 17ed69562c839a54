"""Decisions and classes (issue 19 item 6): the model's logged decisions are its predictions,
and multiclass classifiers get label-free (CBPE-style) estimates, from mergeable profiles.

Oracle data: NannyML's synthetic binary and multiclass datasets (tests/nannyml_data.py), whose
records carry the model's own decision ``y_pred`` beside its scores. Realized values are
scikit-learn's on the raw records. The comparison with NannyML's own CBPE (13 s of NannyML)
is in benchmarks/bench_cbpe_multiclass.py, with its figures in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest
from sklearn import metrics as skm

from mlmon.analysis.lake import Lake
from mlmon.analysis.performance import MulticlassCalibration, calibration, estimate, realized
from mlmon.errors import SchemaError
from mlmon.lake.writer import LakeWriter, performance_row
from mlmon.profiles.frame import build_reference
from mlmon.profiles.performance import (
    PerformanceProfile,
    PerformanceSpec,
    decision_index,
    performance_from_row,
    performance_to_row,
)
from mlmon.profiles.schema import Schema
from tests import nannyml_data

MC = ("prepaid_card", "highstreet_card", "upmarket_card")
MC_SCORES = [f"y_pred_proba_{c}" for c in MC]
THRESHOLD_METRICS = ("accuracy", "precision", "recall", "f1", "specificity")
#: Within the first half of NannyML's multiclass analysis period (no concept drift there),
#: each chunk's estimate lies this close to the realized value (measured: at most 0.006).
ESTIMATE_TOL = 0.015


def _sklearn(y: np.ndarray, pred: np.ndarray, k: int) -> dict[str, float]:
    labels = np.arange(k)
    cm = skm.confusion_matrix(y, pred, labels=labels).astype(np.float64)
    tp = np.diag(cm)
    tn = cm.sum() - cm.sum(axis=0) - cm.sum(axis=1) + tp
    spec = tn / (cm.sum() - cm.sum(axis=1))
    avg = "binary" if k == 2 else "macro"
    return {
        "accuracy": skm.accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred, average=avg),
        "recall": skm.recall_score(y, pred, average=avg),
        "f1": skm.f1_score(y, pred, average=avg),
        "specificity": float(spec[1]) if k == 2 else float(spec.mean()),
    }


@pytest.fixture(scope="module")
def binary() -> tuple[pl.DataFrame, pl.DataFrame]:
    reference, analysis, targets = nannyml_data.load("binary")
    return reference, analysis.join(targets, on="id", how="left")


@pytest.fixture(scope="module")
def multiclass() -> tuple[pl.DataFrame, pl.DataFrame]:
    reference, analysis, targets = nannyml_data.load("multiclass")
    return reference, analysis.join(targets, on="id", how="left")


def _binary_ref(reference: pl.DataFrame, decision: str | None = "y_pred") -> PerformanceProfile:
    ref = build_reference(
        reference, Schema.infer(reference.select("distance_from_office", "tenure")),
        performance=PerformanceSpec.make("binary"), label_column="work_home_actual",
        score_columns="y_pred_proba", decision_column=decision,
    )  # fmt: skip
    assert ref.performance is not None
    return ref.performance


def _mc_spec() -> PerformanceSpec:
    return PerformanceSpec.make("multiclass", classes=MC)


def _mc_ref(reference: pl.DataFrame) -> PerformanceProfile:
    ref = build_reference(
        reference, Schema.infer(reference.select("app_behavioral_score", "acq_channel")),
        performance=_mc_spec(), label_column="y_true", score_columns=MC_SCORES,
        decision_column="y_pred",
    )  # fmt: skip
    assert ref.performance is not None
    return ref.performance


def test_binary_realized_uses_the_logged_decisions(
    binary: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    reference, _ = binary
    y = reference.get_column("work_home_actual").to_numpy()
    y_pred = reference.get_column("y_pred").to_numpy()
    rule = (reference.get_column("y_pred_proba").to_numpy() >= 0.5).astype(int)
    assert np.count_nonzero(y_pred != rule) > 0  # the model decided otherwise on some rows
    ours = realized(_binary_ref(reference))
    want = _sklearn(y, y_pred, 2)
    for m in THRESHOLD_METRICS:
        assert ours[m] == pytest.approx(want[m], abs=1e-12), m
    # without the decision column the rule decides, and accuracy is that of the rule
    old = realized(_binary_ref(reference, decision=None))
    assert old["accuracy"] == pytest.approx(skm.accuracy_score(y, rule), abs=1e-12)
    assert old["accuracy"] != pytest.approx(ours["accuracy"], abs=1e-6)


def test_multiclass_realized_uses_the_logged_decisions(
    multiclass: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    reference, _ = multiclass
    spec = _mc_spec()
    y, _ = spec.class_index(reference.get_column("y_true").to_numpy())
    pred, _ = spec.class_index(reference.get_column("y_pred").to_numpy())
    ours = realized(_mc_ref(reference))
    want = _sklearn(y, pred, 3)
    for m in THRESHOLD_METRICS:
        assert ours[m] == pytest.approx(want[m], abs=1e-12), m
    auc = skm.roc_auc_score(y, reference.select(MC_SCORES).to_numpy(), multi_class="ovr")
    assert ours["roc_auc"] == pytest.approx(auc, abs=0.005)  # on binned scores


def test_multiclass_estimate_close_to_realized(
    multiclass: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    reference, analysis = multiclass
    spec = _mc_spec()
    cal = calibration(_mc_ref(reference))
    assert isinstance(cal, MulticlassCalibration)
    size = 6000
    errors: dict[str, list[float]] = {}
    for start in range(0, analysis.height // 2, size):  # the first half: calibration holds
        part = analysis.slice(start, size)
        scores = part.select(MC_SCORES).to_numpy()
        dec, _ = decision_index(spec, part.get_column("y_pred"), "y_pred")
        est = estimate(PerformanceProfile.from_predictions(spec, scores, dec), cal, draws=300)
        y, _ = spec.class_index(part.get_column("y_true").to_numpy())
        want = _sklearn(y, dec, 3)
        want["roc_auc"] = skm.roc_auc_score(y, scores, multi_class="ovr")
        assert set(est) == {*THRESHOLD_METRICS, "roc_auc"}
        for m, (value, lo, hi) in est.items():
            assert abs(value - want[m]) <= ESTIMATE_TOL, (start, m, value, want[m])
            assert lo <= value <= hi
            errors.setdefault(m, []).append(abs(value - want[m]))
    assert len(errors["accuracy"]) == 5


def test_binary_estimate_uses_the_decisions(binary: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    """CBPE with y_pred: each row's expected outcome is its calibrated probability against the
    decision taken, not against score >= 0.5."""
    reference, analysis = binary
    spec = PerformanceSpec.make("binary")
    ref = _binary_ref(reference)
    cal = calibration(ref)
    assert cal is not None
    part = analysis.slice(0, 5000)
    s = part.get_column("y_pred_proba").to_numpy()
    dec, _ = decision_index(spec, part.get_column("y_pred"), "y_pred")
    with_dec = estimate(PerformanceProfile.from_predictions(spec, s, dec), cal, draws=100)
    rule = estimate(PerformanceProfile.from_predictions(spec, s), cal, draws=100)
    # the expected accuracy by hand, from the same calibration at each bin's mean score
    prof = PerformanceProfile.from_predictions(spec, s, dec)
    n = prof.hist_all[0]
    mean = np.divide(prof.score_sum_all[0], n, out=np.zeros(len(n)), where=n > 0)
    rate = np.clip(cal(mean), 0, 1)
    hp = prof.hist_pred[:, 0, :]
    want = float((hp[1] * rate + hp[0] * (1 - rate)).sum() / n.sum())
    assert with_dec["accuracy"][0] == pytest.approx(want, abs=1e-12)
    assert np.count_nonzero(dec != (s >= 0.5)) > 0
    assert with_dec["accuracy"][0] != pytest.approx(rule["accuracy"][0], abs=1e-9)
    assert with_dec["roc_auc"][0] == pytest.approx(rule["roc_auc"][0], abs=1e-12)  # scores only


def _windows(frame: pl.DataFrame, sizes: list[int]) -> list[pl.DataFrame]:
    bounds = np.cumsum([0, *sizes])
    return [frame.slice(int(a), int(b - a)) for a, b in itertools.pairwise(bounds)]


def _profiles(spec: PerformanceSpec, part: pl.DataFrame) -> tuple[PerformanceProfile, ...]:
    scores = part.select(MC_SCORES).to_numpy()
    dec, _ = decision_index(spec, part.get_column("y_pred"), "y_pred")
    y, _ = spec.class_index(part.get_column("y_true").to_numpy())
    return (
        PerformanceProfile.from_predictions(spec, scores, dec),
        PerformanceProfile.from_labels(spec, y, scores, decisions=dec),
    )


def test_merged_windows_equal_one_shot(multiclass: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    reference, analysis = multiclass
    spec = _mc_spec()
    cal = calibration(_mc_ref(reference))
    assert cal is not None
    frame = analysis.slice(0, 9000)
    one_pred, one_lab = _profiles(spec, frame)
    merged_pred = merged_lab = None
    for part in _windows(frame, [1, 2500, 17, 3000, 482, 3000]):
        p, lab = _profiles(spec, part)
        merged_pred = p if merged_pred is None else merged_pred.merge(p)
        merged_lab = lab if merged_lab is None else merged_lab.merge(lab)
    assert merged_pred == one_pred and merged_lab == one_lab
    assert merged_pred is not None and merged_lab is not None
    assert merged_pred.count_decided == 9000 and merged_lab.labelled_decided == 9000
    # threshold metrics are of counts (exact); estimates and sums are float sums (1e-12)
    got, want = estimate(merged_pred, cal, draws=200), estimate(one_pred, cal, draws=200)
    assert got.keys() == want.keys()
    for m in want:
        assert got[m] == pytest.approx(want[m], rel=1e-12, abs=1e-12), m
    real_got, real_want = realized(merged_lab), realized(one_lab)
    assert real_got == pytest.approx(real_want, rel=1e-12)
    assert all(real_got[m] == real_want[m] for m in THRESHOLD_METRICS)


def test_lake_round_trip_keeps_decisions_and_multiclass_estimates(
    tmp_path, multiclass: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    reference, analysis = multiclass
    spec = _mc_spec()
    ref = build_reference(
        reference, Schema.infer(reference.select("app_behavioral_score")), model="cards",
        performance=spec, label_column="y_true", score_columns=MC_SCORES, decision_column="y_pred",
    )  # fmt: skip
    writer = LakeWriter(str(tmp_path / "lake"), collector_id="t", day_rollups=False)
    writer.write_performance_reference("cards", ref)
    day = datetime(2026, 11, 2, tzinfo=UTC)
    frame = analysis.slice(0, 4000)
    for i, part in enumerate(_windows(frame, [1500, 1500, 1000])):
        start = day + timedelta(hours=i)
        for role, prof in zip(("predictions", "labels"), _profiles(spec, part), strict=True):
            row = performance_row(
                prof, role=role, reference_id=ref.reference_id, collector_id="t",
                start=start, end=start + timedelta(hours=1), version=None, batch_id=f"{role}{i}",
            )  # fmt: skip
            writer.write_table(
                "performance", "cards", pl.DataFrame([row], infer_schema_length=None),
                start, start + timedelta(hours=1), part=f"{role}-{i}",
            )  # fmt: skip
    lake = Lake(str(tmp_path / "lake"))
    assert lake.performance_reference("cards", ref.reference_id) == ref.performance
    out = lake.performance("cards", by=None, metrics=[*THRESHOLD_METRICS, "roc_auc"])
    assert out.height == 6
    pred, lab = _profiles(spec, frame)
    cal = calibration(ref.performance)  # type: ignore[arg-type]
    assert cal is not None
    est = estimate(pred.merge(lab), cal)
    real = realized(lab)
    for r in out.iter_rows(named=True):
        assert r["estimated"] == pytest.approx(est[r["metric"]][0], abs=1e-12)
        assert r["realized"] == pytest.approx(real[r["metric"]], abs=1e-12)
        assert r["count_total"] == 4000 and r["count_labelled"] == 4000
    [(_, _, merged)] = lake.merged_performance("cards")
    assert merged.count_decided == 4000 and merged.hist_pred.sum() == 4000 * 3


def test_profiles_without_decisions_read_as_before(
    binary: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    """A lake row written before decisions (no hist_pred columns) is read with the rule, and
    merges with new rows: the old rows' predictions follow score >= threshold, the new ones
    their decisions."""
    reference, analysis = binary
    spec = PerformanceSpec.make("binary")
    cal = calibration(_binary_ref(reference))
    assert cal is not None
    part = analysis.slice(0, 4000)
    s = part.get_column("y_pred_proba").to_numpy()
    dec, _ = decision_index(spec, part.get_column("y_pred"), "y_pred")
    new_keys = ("hist_pred", "hist_pred_labelled", "count_decided", "labelled_decided")
    old_row = {
        k: v
        for k, v in performance_to_row(PerformanceProfile.from_predictions(spec, s[:2000])).items()
        if k not in new_keys
    }
    old = performance_from_row(old_row)
    assert old.hist_pred.sum() == 0 and old.count_total == 2000
    rule_only = estimate(PerformanceProfile.from_predictions(spec, s[:2000]), cal, draws=100)
    assert estimate(old, cal, draws=100) == rule_only
    mixed = old.merge(PerformanceProfile.from_predictions(spec, s[2000:], dec[2000:]))
    rule_and_dec = np.concatenate([(s[:2000] >= 0.5).astype(np.int64), dec[2000:]])
    want = PerformanceProfile.from_predictions(spec, s, rule_and_dec)
    got, exp = estimate(mixed, cal, draws=100), estimate(want, cal, draws=100)
    for m in THRESHOLD_METRICS:
        assert got[m][0] == pytest.approx(exp[m][0], abs=1e-12)


@pytest.mark.parametrize(
    ("values", "what"),
    [
        (pl.Series(["prepaid_card", "platinum_card-SECRET"]), "not among the classes"),
        (pl.Series([0.73, 0.21]), "fractional numbers"),
        (pl.Series([[1], [2]]), "has type"),
        (pl.Series([True, False]), "booleans"),
    ],
)
def test_bad_decision_column_names_the_column_never_values(values: pl.Series, what: str) -> None:
    with pytest.raises(SchemaError) as err:
        decision_index(_mc_spec(), values, "y_pred")
    msg = str(err.value)
    assert "'y_pred'" in msg and what in msg
    assert "SECRET" not in msg and "0.73" not in msg


def test_bad_decision_column_in_reference_build(binary: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    reference, _ = binary
    bad = reference.head(200).with_columns(
        pl.when(pl.col("id") == 5).then(7).otherwise(pl.col("y_pred")).alias("y_pred")
    )
    with pytest.raises(SchemaError, match=r"decision column 'y_pred': 1 value\(s\)") as err:
        _binary_ref(bad)
    assert "7" not in str(err.value).replace("'y_pred'", "")
    missing = reference.head(50).drop("y_pred")
    with pytest.raises(SchemaError, match="y_pred"):
        _binary_ref(missing)


def test_binary_decisions_of_any_label_type() -> None:
    spec = PerformanceSpec.make("binary", classes=("no", "yes"))
    idx, bad = decision_index(spec, pl.Series([True, False, None]), "d")
    assert idx.tolist() == [1, 0, -1] and bad == 0
    spec01 = PerformanceSpec.make("binary")
    idx, _ = decision_index(spec01, pl.Series([1.0, 0.0, float("nan"), None]), "d")
    assert idx.tolist() == [1, 0, -1, -1]
    idx, bad = decision_index(spec01, pl.Series([1, 3]), "d", strict=False)
    assert idx.tolist() == [1, -1] and bad == 1


def test_cli_reference_build_with_decisions(
    tmp_path, capsys, multiclass: tuple[pl.DataFrame, pl.DataFrame]
) -> None:
    from mlmon.cli import main
    from mlmon.lake.references import load_reference

    reference, _ = multiclass
    data = tmp_path / "baseline.parquet"
    reference.head(3000).write_parquet(data)
    out = tmp_path / "ref.parquet"
    common = ["reference", "build", "--data", str(data), "--model", "cards", "--out", str(out),
              "--task", "multiclass", "--classes", ",".join(MC), "--target", "y_true",
              "--score-columns", ",".join(MC_SCORES), "--ignore", "id"]  # fmt: skip
    assert main([*common, "--decision", "y_pred"]) == 0
    ref = load_reference(out)
    assert ref.performance is not None and ref.performance.labelled_decided == 3000
    assert isinstance(calibration(ref.performance), MulticlassCalibration)
    assert main([*common, "--decision", "y_prd"]) == 2
    err = capsys.readouterr().err
    assert "--decision 'y_prd': no such column" in err and "Traceback" not in err
    no_task = [a for a in common if a not in ("--task", "multiclass")]
    assert main([*no_task, "--decision", "y_pred"]) == 2
    assert "add --task" in capsys.readouterr().err
    bad = tmp_path / "bad.parquet"
    reference.head(300).with_columns(pl.lit("gold_card").alias("y_pred")).write_parquet(bad)
    assert main([*common[:3], str(bad), *common[4:], "--decision", "y_pred"]) == 4  # data error
    err = capsys.readouterr().err
    assert "decision column 'y_pred': 300 value(s) are not among the classes" in err
    assert "gold_card" not in err


def _edge_run(tmp_path, name: str, corrupt: int = 0) -> dict[str, Any]:
    """The NannyML dataset's first 6,000 analysis records through a real collector (JSONL
    stream, prediction store, labels joined from a file); ``corrupt`` rows get a decision
    that is no class."""
    import json

    from mlmon.edge.collector import Collector
    from mlmon.edge.config import load_config
    from mlmon.lake.references import load_reference, save_reference

    reference, analysis, targets = nannyml_data.load(name)
    if name == "multiclass":
        label, scores, spec = "y_true", MC_SCORES, _mc_spec()
        feats = ["app_behavioral_score", "acq_channel"]
    else:
        label, scores, spec = "work_home_actual", ["y_pred_proba"], PerformanceSpec.make("binary")
        feats = ["distance_from_office", "tenure"]
    ref = build_reference(
        reference, Schema.infer(reference.select(feats)), model="m", performance=spec,
        label_column=label, score_columns=scores, decision_column="y_pred",
    )  # fmt: skip
    save_reference(ref, tmp_path / "ref.parquet")
    loaded = load_reference(tmp_path / "ref.parquet").performance
    assert loaded is not None and loaded.spec.decision_column == "y_pred"
    assert loaded.spec.score_columns == tuple(scores)
    # 6,000 records, one every 150 s: 11 daily windows
    start = datetime(2026, 9, 1, tzinfo=UTC)
    records = analysis.head(6000).with_columns(
        pl.Series("timestamp", [start + timedelta(seconds=150 * i) for i in range(6000)]),
        pl.format("req-{}", pl.col("id")).alias("request_id"),
    )
    if corrupt:
        records = records.with_columns(
            pl.when(pl.int_range(pl.len()) < corrupt)
            .then(pl.lit("gold_card-SECRET"))
            .otherwise(pl.col("y_pred").cast(pl.String))
            .alias("y_pred")
        )
    stream = tmp_path / "stream"
    stream.mkdir()
    records.select(*feats, *scores, "y_pred", "request_id", "timestamp").with_columns(
        pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
    ).write_ndjson(stream / "records.jsonl")
    cfg = {
        "collector_id": "edge-decisions", "lake": {"uri": str(tmp_path / "lake")},
        "hmac_key": {"env": "MLMON_HMAC_KEY"}, "state_dir": str(tmp_path / "state"),
        "window": "1d", "metrics": None,
        "models": [{"name": "m", "reference": str(tmp_path / "ref.parquet"),
                    "streams": [{"path": str(stream), "format": "jsonl"}],
                    "performance": {"store_predictions": True, "label_horizon": "60d"}}],
    }  # fmt: skip
    (tmp_path / "edge.yaml").write_text(json.dumps(cfg))
    c = Collector(
        load_config(tmp_path / "edge.yaml"), clock=lambda: datetime(2026, 10, 5, tzinfo=UTC)
    )
    c.run_once()
    truth = records.join(targets, on="id").rename({label: "label"})
    truth.select(
        "request_id", "label", (pl.col("timestamp") + pl.duration(days=20)).alias("event_time")
    ).write_parquet(tmp_path / "labels.parquet")
    result = c.performance.join_file("m", tmp_path / "labels.parquet")
    c.flush_spool()
    s = records.select(scores).to_numpy()
    dec, bad = decision_index(spec, records.get_column("y_pred"), "y_pred", strict=False)
    assert bad == corrupt
    y, _ = spec.class_index(truth.get_column("label").cast(pl.String).to_numpy())
    return {
        "lake": Lake(str(tmp_path / "lake")), "result": result, "spec": spec, "y": y, "dec": dec,
        "scores": s if spec.task == "multiclass" else s[:, 0], "ref": ref.performance,
    }  # fmt: skip


@pytest.mark.parametrize("name", ["binary", "multiclass"])
def test_edge_uses_decisions_and_class_scores(tmp_path, monkeypatch, name: str) -> None:
    """The edge reads the reference's score and decision columns from JSONL records: each
    window's estimate uses the decisions (multiclass: the class scores), and labels joined
    through the prediction store give realized metrics of the decisions (scikit-learn)."""
    monkeypatch.setenv("MLMON_HMAC_KEY", "k" * 32)
    run = _edge_run(tmp_path, name)
    assert run["result"].matched == 6000, run["result"].summary()
    spec, dec = run["spec"], run["dec"]
    out = run["lake"].performance("m", by=None, metrics=[*THRESHOLD_METRICS, "roc_auc"])
    got = {r["metric"]: r for r in out.to_dicts()}
    cal = calibration(run["ref"])
    assert cal is not None
    want_est = estimate(PerformanceProfile.from_predictions(spec, run["scores"], dec), cal)
    want_real = _sklearn(run["y"], dec, spec.k)
    for m in THRESHOLD_METRICS:
        assert got[m]["estimated"] == pytest.approx(want_est[m][0], abs=1e-9), m
        assert got[m]["realized"] == pytest.approx(want_real[m], abs=1e-12), m
        assert got[m]["count_total"] == 6000 and got[m]["count_labelled"] == 6000
    assert got["roc_auc"]["estimated"] == pytest.approx(want_est["roc_auc"][0], abs=1e-9)
    # the store kept the scores: ROC AUC of the joined labels on the binned scores
    want_prof = PerformanceProfile.from_labels(spec, run["y"], run["scores"], decisions=dec)
    assert got["roc_auc"]["realized"] == pytest.approx(realized(want_prof)["roc_auc"], abs=1e-12)
    [(_, _, merged)] = run["lake"].merged_performance("m")
    assert merged.count_decided == 6000 and merged.labelled_decided == 6000
    assert merged.hist_pred_labelled.sum() == 6000 * spec.score_classes


def test_edge_decisions_that_are_no_class_cost_only_their_rows(
    tmp_path, monkeypatch, caplog
) -> None:
    """Records whose decision is not a class: counted in the log by column (never the value);
    their rows' estimate falls back to the highest score; their labels are counted as
    bad_prediction; every other row is used as usual."""
    import logging

    monkeypatch.setenv("MLMON_HMAC_KEY", "k" * 32)
    caplog.set_level(logging.WARNING)
    run = _edge_run(tmp_path, "multiclass", corrupt=10)
    spec, dec = run["spec"], run["dec"]
    result = run["result"]
    assert result.matched == 5990 and result.bad == {"bad_prediction": 10}, result.summary()
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "not among the classes" in logged and "y_pred" in logged
    assert "SECRET" not in logged
    [(_, _, merged)] = run["lake"].merged_performance("m")
    assert merged.count_total == 6000 and merged.count_decided == 5990
    cal = calibration(run["ref"])
    assert cal is not None
    want_est = estimate(PerformanceProfile.from_predictions(spec, run["scores"], dec), cal)
    out = run["lake"].performance("m", by=None, metrics=list(THRESHOLD_METRICS))
    ok = dec >= 0
    want_real = _sklearn(run["y"][ok], dec[ok], spec.k)
    for r in out.iter_rows(named=True):
        assert r["estimated"] == pytest.approx(want_est[r["metric"]][0], abs=1e-9)
        assert r["realized"] == pytest.approx(want_real[r["metric"]], abs=1e-12)

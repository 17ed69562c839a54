"""Delayed labels joined at the edge: store, join, performance rows, and the lake's answers.

Realized metrics from the lake are compared with scikit-learn on the raw rows
of the same windows: threshold metrics exact, ROC AUC within its binning bound.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn import metrics as skm

from mlmon.analysis.lake import Lake
from mlmon.analysis.performance import binning_bounds
from mlmon.cli import main
from mlmon.edge.collector import Collector
from mlmon.edge.config import load_config
from mlmon.edge.labels import _bloom_build, _bloom_contains
from mlmon.errors import SchemaError
from mlmon.lake.references import load_reference, save_reference
from mlmon.profiles.frame import Reference, build_reference
from mlmon.profiles.kinds import OTHER
from mlmon.profiles.performance import PerformanceSpec
from mlmon.profiles.schema import Schema

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "data" / "fixtures"
KEY = "k" * 32
DAYS = ["2026-10-01", "2026-10-02", "2026-10-03"]


def _schema() -> Schema:
    import yaml

    return Schema.from_dict(yaml.safe_load((FIX / "schema.yaml").read_text()))


def _labelled(df: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Outcomes drawn from the fixture model's score (a calibrated model)."""
    rng = np.random.default_rng(seed)
    return df.with_columns(
        pl.Series("label", (rng.random(df.height) < df.get_column("score").to_numpy()).astype(int))
    )


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLMON_HMAC_KEY", KEY)


def _setup(
    tmp_path: Path, *, store: bool = True, horizon: str = "60d", segments: bool = False
) -> tuple[Path, pl.DataFrame]:
    ref_df = _labelled(pl.read_parquet(FIX / "reference.parquet"), 1)
    spec = PerformanceSpec.make("binary", classes=("0", "1"), thresholds=(0.2,), bins=50)
    seg = {"segments": ["ward"], "bands": {"age": [0, 18, 40, 65]}} if segments else {}
    ref = build_reference(
        ref_df, _schema(), model="risk", performance=spec, label_column="label", **seg
    )
    save_reference(ref, tmp_path / "ref.parquet")
    stream = tmp_path / "stream"
    stream.mkdir()
    frames = []
    for d in DAYS:
        df = pl.read_parquet(FIX / "inference" / f"{d}.parquet")
        frames.append(df)
        df.with_columns(pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")).write_ndjson(
            stream / f"{d}.jsonl"
        )
    perf = {"store_predictions": store, "label_horizon": horizon, "time_column": "event_time"}
    cfg = {
        "collector_id": "edge-labels",
        "lake": {"uri": str(tmp_path / "lake")},
        "hmac_key": {"env": "MLMON_HMAC_KEY"},
        "state_dir": str(tmp_path / "state"),
        "window": "6h",
        "metrics": None,
        "models": [
            {
                "name": "risk",
                "reference": str(tmp_path / "ref.parquet"),
                "streams": [{"path": str(stream), "format": "jsonl"}],
                "performance": perf,
            }
        ],
    }
    (tmp_path / "edge.yaml").write_text(json.dumps(cfg))
    return tmp_path / "edge.yaml", pl.concat(frames)


def _labels_file(path: Path, rows: pl.DataFrame, seed: int) -> pl.DataFrame:
    lab = _labelled(rows, seed).select(
        "request_id",
        "label",
        (pl.col("timestamp") + pl.duration(days=20)).alias("event_time"),
    )
    lab.write_parquet(path)
    return lab


def test_labels_join_into_performance_equal_to_sklearn(tmp_path: Path) -> None:
    cfg_path, records = _setup(tmp_path)
    c = Collector(load_config(cfg_path), clock=lambda: datetime(2026, 10, 5, tzinfo=UTC))
    c.run_once()
    store_bytes = c.metrics.prediction_store_bytes.labels("risk")._value.get()
    assert store_bytes > 0
    # labels arrive in two pieces, weeks later, for most records
    labelled = records.sample(fraction=0.8, seed=3)
    first, second = labelled.head(4000), labelled.tail(labelled.height - 4000)
    lab1 = _labels_file(tmp_path / "labels-1.parquet", first, 7)
    lab2 = _labels_file(tmp_path / "labels-2.parquet", second, 8)
    r1 = c.performance.join_file("risk", tmp_path / "labels-1.parquet")
    r2 = c.performance.join_file("risk", tmp_path / "labels-2.parquet")
    assert (r1.matched, r2.matched) == (first.height, second.height)
    assert r1.unknown_id == r1.late == r1.duplicate_in_batch == 0
    # a re-run of the same file writes nothing twice
    assert c.performance.join_file("risk", tmp_path / "labels-1.parquet").skipped
    c.flush_spool()

    lake = Lake(str(tmp_path / "lake"))
    out = lake.performance("risk", "2026-10-01", "2026-10-04", by="day")
    truth = pl.concat([lab1, lab2]).join(
        records.select("request_id", "score", "timestamp"), on="request_id"
    )
    for day in DAYS:
        t = truth.filter(pl.col("timestamp").dt.date() == datetime.fromisoformat(day).date())
        y, s = t.get_column("label").to_numpy(), t.get_column("score").to_numpy()
        pred = (s >= 0.2).astype(int)
        got = {
            r["metric"]: r
            for r in out.filter(
                pl.col("period").dt.date() == t.get_column("timestamp").dt.date()[0]
            ).to_dicts()
        }
        assert got["accuracy"]["realized"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
        assert got["precision"]["realized"] == pytest.approx(
            skm.precision_score(y, pred), abs=1e-12
        )
        assert got["recall"]["realized"] == pytest.approx(skm.recall_score(y, pred), abs=1e-12)
        assert got["brier"]["realized"] == pytest.approx(skm.brier_score_loss(y, s), rel=1e-9)
        assert got["accuracy"]["count_labelled"] == len(y)
        day_total = records.filter(
            pl.col("timestamp").dt.date() == t.get_column("timestamp").dt.date()[0]
        ).height
        assert got["accuracy"]["count_total"] == day_total
        spec = load_reference(tmp_path / "ref.parquet").performance.spec  # type: ignore[union-attr]
        bins = spec.bin_of(s)
        pos = np.bincount(bins[y == 1], minlength=spec.n_bins).astype(float)
        neg = np.bincount(bins[y == 0], minlength=spec.n_bins).astype(float)
        lo, hi = binning_bounds(pos, neg)["roc_auc"]
        assert lo - 1e-12 <= skm.roc_auc_score(y, s) <= hi + 1e-12
        assert got["roc_auc"]["realized"] == pytest.approx(skm.roc_auc_score(y, bins), abs=1e-12)
        # the estimate and its band exist for every day; the realized value is near it
        assert got["accuracy"]["lower"] <= got["accuracy"]["estimated"] <= got["accuracy"]["upper"]
    # the calibration curve and the labelled fraction come back too
    curve = lake.calibration_curve("risk", "2026-10-01", "2026-10-04")
    assert set(curve.get_column("source")) == {"period", "reference"}
    batches = lake.read("label_batches", model="risk")
    assert sorted(batches.get_column("matched").to_list()) == sorted([first.height, second.height])


def test_labels_join_per_segment_at_the_edge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The collector (as `mlmon edge once`), then `mlmon edge labels`: per-segment rows (ward, age band)
    equal scikit-learn on each segment's raw rows; gaps and estimates per segment from the
    edge's lake alone; the stored and written segment values are allow-listed labels only."""
    cfg_path, records = _setup(tmp_path, segments=True)
    canary = "CANARY-WARD-PATIENT-88"  # a ward value outside the allow-list
    stream = tmp_path / "stream"
    for f in sorted(stream.glob("*.jsonl")):
        day = pl.read_ndjson(f).with_columns(
            pl.when(pl.int_range(pl.len()) % 997 == 0).then(pl.lit(canary)).otherwise("ward")
            .alias("ward")
        )  # fmt: skip
        day.write_ndjson(f)
    records = records.with_columns(
        pl.when(pl.int_range(pl.len()).over(pl.col("timestamp").dt.date()) % 997 == 0)
        .then(pl.lit(canary)).otherwise("ward").alias("ward")
    )  # fmt: skip
    Collector(load_config(cfg_path)).run_once()  # as `mlmon edge once`; wall clock
    labelled = records.sample(fraction=0.7, seed=5)
    lab = _labels_file(tmp_path / "l.parquet", labelled, 9)
    assert (
        main(["edge", "labels", "--config", str(cfg_path), "--file", str(tmp_path / "l.parquet")])
        == 0
    )
    capsys.readouterr()
    for path in [*(tmp_path / "lake").rglob("*"), *(tmp_path / "state").rglob("*")]:
        if path.is_file():
            assert canary.encode() not in path.read_bytes(), path.name
    lake = Lake(str(tmp_path / "lake"))
    ref = load_reference(tmp_path / "ref.parquet")
    wards = set(ref.schema.segments[0].allowed or ())
    coded = records.with_columns(
        pl.when(pl.col("ward").is_in(list(wards))).then("ward").otherwise(pl.lit("__other__"))
        .alias("ward"),
        pl.when(pl.col("age").is_null() | pl.col("age").is_nan()).then(pl.lit("missing"))
        .when(pl.col("age") < 0).then(pl.lit("<0")).when(pl.col("age") < 18).then(pl.lit("0-17"))
        .when(pl.col("age") < 40).then(pl.lit("18-39")).when(pl.col("age") < 65)
        .then(pl.lit("40-64")).otherwise(pl.lit("65+")).alias("age_band"),
    )  # fmt: skip
    truth = lab.select("request_id", "label").join(coded, on="request_id")
    for segment in ("ward", "age_band"):
        got = lake.performance("risk", by="all", segment=segment)
        seen = set()
        for (value,), t in truth.partition_by(segment, as_dict=True).items():
            key = f"{segment}={value}"
            seen.add(key)
            rows = {r["metric"]: r for r in got.filter(pl.col("segment") == key).to_dicts()}
            y, s = t.get_column("label").to_numpy(), t.get_column("score").to_numpy()
            pred = (s >= 0.2).astype(int)
            assert rows["accuracy"]["count_labelled"] == len(y)
            assert rows["accuracy"]["realized"] == pytest.approx(
                skm.accuracy_score(y, pred), abs=1e-12
            )
            assert rows["recall"]["realized"] == pytest.approx(skm.recall_score(y, pred), abs=1e-12)
            # every prediction of the segment is counted when its window closes (estimates)
            assert rows["accuracy"]["count_total"] == coded.filter(pl.col(segment) == value).height
            assert np.isfinite(rows["accuracy"]["estimated"])
        assert set(got.get_column("segment")) == seen
        # the edge published the segments' own calibrations; the others fall back to overall
        own = {k for k in ref.segment_performance if k.startswith(segment + "=")}
        assert own and own < seen
        for key, how in got.select("segment", "calibration").unique().iter_rows():
            assert how == ("segment" if key in own else "overall"), key
    assert f"ward={OTHER}" in _wards(lake)
    gaps = lake.subgroup_gaps("risk", segment="ward")
    recall = gaps.filter(pl.col("metric") == "recall").row(0, named=True)
    assert recall["lower"] <= recall["gap"] <= recall["upper"] and recall["segments"] >= 5


def _wards(lake: Lake) -> set[str]:
    return set(lake.performance("risk", by="all", segment="ward").get_column("segment"))


def test_bad_and_late_labels_are_counted_not_guessed(tmp_path: Path) -> None:
    cfg_path, records = _setup(tmp_path, horizon="10d")
    c = Collector(load_config(cfg_path), clock=lambda: datetime(2026, 10, 5, tzinfo=UTC))
    c.run_once()
    rows = records.head(50)
    lab = (
        _labelled(rows, 3)
        .select("request_id", "label")
        .with_columns(pl.lit("2026-11-01T00:00:00Z").alias("event_time"))
    )
    extra = pl.DataFrame(
        {
            "request_id": [
                "never-seen-1",
                "never-seen-2",
                rows["request_id"][0],
                rows["request_id"][1],
                None,
            ],
            "label": [1, 0, 1, 7, 1],
            "event_time": ["2026-11-01T00:00:00Z"] * 4 + ["2026-11-02T00:00:00Z"],
        }
    )
    pl.concat([lab, extra], how="vertical_relaxed").write_csv(tmp_path / "labels.csv")
    r = c.performance.join_file("risk", tmp_path / "labels.csv")
    assert r.unknown_id == 2
    assert r.missing == 1
    assert r.duplicate_in_batch == 2  # ids 0 and 1 repeated: the last record wins
    assert r.unknown_class == 1  # the last record of id 1 has class 7
    assert r.matched == 49
    # a second batch labelling the same ids is counted, the first label kept
    # (id 1's last record had an unknown class, so id 1 was not labelled yet)
    lab.head(10).write_parquet(tmp_path / "again.parquet")
    again = c.performance.join_file("risk", tmp_path / "again.parquet")
    assert (again.already_labelled, again.matched) == (9, 1)
    # the store expires after the horizon; labels after that are "late", not "unknown"
    store = c.performance.stores["risk"]
    assert store.expire(datetime(2026, 11, 1, tzinfo=UTC)) > 0
    records.slice(100, 30).select("request_id").with_columns(
        pl.lit(1).alias("label"), pl.lit("2026-11-01T00:00:00Z").alias("event_time")
    ).write_parquet(tmp_path / "late.parquet")
    late = c.performance.join_file("risk", tmp_path / "late.parquet")
    assert late.late == 30 and late.matched == 0


def test_label_files_with_bad_columns_or_times_get_clear_errors(tmp_path: Path) -> None:
    cfg_path, _ = _setup(tmp_path)
    c = Collector(load_config(cfg_path))
    pl.DataFrame({"accession": ["a"], "label": [1]}).write_parquet(tmp_path / "wrong.parquet")
    with pytest.raises(SchemaError, match=r"wrong.parquet.*no id column 'request_id'.*2 columns"):
        c.performance.join_file("risk", tmp_path / "wrong.parquet")
    # a file without a header line: its first row's values are the column names; never echoed
    (tmp_path / "headless.csv").write_text("MRN-00731234,1\nMRN-00731235,0\n")
    with pytest.raises(SchemaError, match=r"headless.csv.*no id column") as err:
        c.performance.join_file("risk", tmp_path / "headless.csv")
    assert "MRN" not in str(err.value)
    # a naive time costs its row only (issue 17): counted under missing, by reason
    pl.DataFrame(
        {"request_id": ["a", "b"], "label": [1, 0],
         "event_time": ["2026-11-01T00:00:00", "2026-11-01T00:00:00Z"]}
    ).write_parquet(tmp_path / "naive.parquet")  # fmt: skip
    got = c.performance.join_file("risk", tmp_path / "naive.parquet")
    assert got.bad == {"bad_time": 1} and got.missing == 1 and got.unknown_id == 1


def test_no_prediction_leaves_the_edge(tmp_path: Path) -> None:
    """The store lives on the edge volume; the lake holds no request id, hashed or not."""
    cfg_path, records = _setup(tmp_path)
    c = Collector(load_config(cfg_path), clock=lambda: datetime(2026, 10, 5, tzinfo=UTC))
    c.run_once()
    _labels_file(tmp_path / "l.parquet", records.head(500), 1)
    c.performance.join_file("risk", tmp_path / "l.parquet")
    c.flush_spool()
    from mlmon.governance.deid import hmac_id

    needles = [records["request_id"][0], hmac_id(KEY.encode(), records["request_id"][0])[:32]]
    for f in (tmp_path / "lake").rglob("*"):
        if f.is_file():
            blob = f.read_bytes()
            for n in needles:
                assert n.encode() not in blob, f"{n} in {f}"
            assert bytes.fromhex(needles[1]) not in blob
    assert (tmp_path / "state" / "predictions").exists()


def test_bloom_filter_has_no_false_negatives_and_few_false_positives() -> None:
    rng = np.random.default_rng(0)
    ids = pl.Series([rng.bytes(16) for _ in range(20_000)], dtype=pl.Binary)
    other = pl.Series([rng.bytes(16) for _ in range(20_000)], dtype=pl.Binary)
    bloom = _bloom_build(ids)
    assert _bloom_contains(bloom, ids).all()
    assert _bloom_contains(bloom, other).mean() < 0.02


def test_cli_edge_labels_and_performance(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg_path, records = _setup(tmp_path)
    # the wall clock, like the `mlmon edge labels` below: the predictions are October
    # 2026's, stored today, so they join on any date
    Collector(load_config(cfg_path)).run_once()
    _labels_file(tmp_path / "l.parquet", records, 2)
    assert (
        main(["edge", "labels", "--config", str(cfg_path), "--file", str(tmp_path / "l.parquet")])
        == 0
    )
    assert f"{records.height} matched" in capsys.readouterr().out
    rc = main(["performance", "--lake", str(tmp_path / "lake"), "--model", "risk", "--by", "day",
               "--format", "json"])  # fmt: skip
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["metric"] for r in rows} >= {"accuracy", "roc_auc", "precision"}
    assert all(r["count_labelled"] > 0 for r in rows)


def test_watched_folder_and_labels_that_carry_the_score(tmp_path: Path) -> None:
    """Labels with the model's score and prediction time need no store; the folder is read once."""
    cfg_path, records = _setup(tmp_path, store=False)
    cfg = json.loads(cfg_path.read_text())
    folder = tmp_path / "labels-in"
    folder.mkdir()
    cfg["models"][0]["performance"].update(
        labels_folder=str(folder), score_column="score", prediction_time_column="predicted_at"
    )
    cfg_path.write_text(json.dumps(cfg))
    rows = _labelled(records.head(1000), 4).select(
        "request_id", "label", "score", pl.col("timestamp").alias("predicted_at")
    )
    rows.write_parquet(folder / "outcomes-1.parquet")
    c = Collector(load_config(cfg_path), clock=lambda: datetime(2026, 10, 5, tzinfo=UTC))
    first = c.run_once()
    second = c.run_once()
    assert not first.errors and not second.errors
    c.flush_spool()
    lake = Lake(str(tmp_path / "lake"))
    batches = lake.read("label_batches", model="risk")
    assert batches.height == 1 and batches["matched"][0] == 1000
    got = lake.performance("risk", by="all", metrics=["accuracy"])
    y, s = rows["label"].to_numpy(), rows["score"].to_numpy()
    assert got["realized"][0] == pytest.approx(skm.accuracy_score(y, s >= 0.2), abs=1e-12)
    assert got["count_labelled"][0] == 1000


@pytest.mark.parametrize("task", ["regression", "multiclass"])
def test_regression_and_multiclass_labels_join_exactly(tmp_path: Path, task: str) -> None:
    from mlmon.edge.labels import LabelJoinConfig, join_labels
    from mlmon.lake.writer import LakeWriter

    rng = np.random.default_rng(9)
    n = 3000
    if task == "regression":
        y = rng.normal(40, 5, n)
        pred = y + rng.normal(0.5, 2, n)
        spec = PerformanceSpec.make("regression")
        labels = [float(v) for v in y]
    else:
        classes = ("low", "mid", "high")
        spec = PerformanceSpec.make("multiclass", classes=classes)
        yi = rng.integers(0, 3, n)
        pi = np.where(rng.random(n) < 0.7, yi, rng.integers(0, 3, n))
        labels = [classes[i] for i in yi]
        pred = np.array([classes[i] for i in pi])
    ref_df = pl.DataFrame({"x": rng.normal(size=500), "label": labels[:500], "score": pred[:500]})
    ref = build_reference(ref_df, performance=spec, label_column="label")
    ts = datetime(2026, 10, 1, tzinfo=UTC) + pl.Series(
        rng.integers(0, 2 * 86400, n) * 1_000_000
    ).cast(pl.Duration("us"))
    frame = pl.DataFrame(
        {"request_id": [f"r{i}" for i in range(n)], "label": labels, "score": pred,
         "predicted_at": ts}
    )  # fmt: skip
    writer = LakeWriter(str(tmp_path / "lake"), collector_id="t")
    cfg = LabelJoinConfig(score_column="score", prediction_time_column="predicted_at")
    r = join_labels(frame, model="m", reference=ref, secret=KEY.encode(), writer=writer, cfg=cfg,
                    window=timedelta(hours=1), batch_id="b1", source="labels.parquet")  # fmt: skip
    assert r.matched == n
    got = {
        row["metric"]: row["realized"]
        for row in Lake(str(tmp_path / "lake")).performance("m", by="all").to_dicts()
    }
    if task == "regression":
        assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, pred), rel=1e-9)
        assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)), rel=1e-9)
        assert got["r2"] == pytest.approx(skm.r2_score(y, pred), rel=1e-9)
    else:
        yl, pl_ = np.array(labels), pred
        assert got["accuracy"] == pytest.approx(skm.accuracy_score(yl, pl_), abs=1e-12)
        assert got["f1"] == pytest.approx(skm.f1_score(yl, pl_, average="macro"), abs=1e-12)


def _calibrated_binary_reference() -> tuple[
    np.random.Generator, np.ndarray, PerformanceSpec, Reference
]:
    """A reference of 20,000 calibrated binary scores: (the rng, the scores, spec, reference)."""
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, 20_000)
    p = 1 / (1 + np.exp(-3 * x))
    y = (rng.random(x.size) < p).astype(int)
    spec = PerformanceSpec.make("binary", bins=50)
    ref = build_reference(pl.DataFrame({"x": x, "score": p, "label": y}), performance=spec)
    return rng, p, spec, ref


def test_estimate_alerts_fire_when_a_window_looks_worse_than_the_reference() -> None:
    from mlmon.edge.performance import estimate_alerts
    from mlmon.profiles.performance import PerformanceProfile

    rng, p, spec, ref = _calibrated_binary_reference()
    now = datetime(2026, 10, 5, tzinfo=UTC)
    same = PerformanceProfile.from_predictions(spec, p[:1000])
    assert estimate_alerts(ref, same, now) == []
    # a window of undecided cases (scores near 0.5): estimated accuracy about 0.55
    hard = PerformanceProfile.from_predictions(spec, rng.uniform(0.4, 0.6, 1000))
    rules = {a["rule"] for a in estimate_alerts(ref, hard, now)}
    assert "performance_estimate:accuracy" in rules
    # too few predictions: no alert on chance
    assert (
        estimate_alerts(ref, PerformanceProfile.from_predictions(spec, p[:50] * 0 + 0.5), now) == []
    )


def test_labels_from_a_read_only_s3_prefix(tmp_path: Path, s3_server) -> None:
    """The labels task lists and reads an S3 prefix with the reader role (list + get only)."""
    from tests.s3server import BUCKET

    cfg_path, records = _setup(tmp_path)
    prefix = s3_server.unique_prefix()
    lab = _labels_file(tmp_path / "outcomes.parquet", records.head(800), 5)
    s3_server.boto3_client("admin").put_object(
        Bucket=BUCKET,
        Key=f"{prefix}/outcomes.parquet",
        Body=(tmp_path / "outcomes.parquet").read_bytes(),
    )
    cfg = json.loads(cfg_path.read_text())
    cfg["models"][0]["performance"].update(
        labels_folder=f"s3://{BUCKET}/{prefix}",
        labels_storage_options=s3_server.storage_options("reader", prefix=prefix),
    )
    cfg_path.write_text(json.dumps(cfg))
    c = Collector(load_config(cfg_path), clock=lambda: datetime(2026, 10, 5, tzinfo=UTC))
    report = c.run_once()
    assert not report.errors, report.errors
    c.flush_spool()
    batches = Lake(str(tmp_path / "lake")).read("label_batches", model="risk")
    assert batches["matched"].to_list() == [lab.height]
    assert not list(Path(tempfile.gettempdir()).glob("mlmon-labels-*"))  # no copy left


# -- the horizon is a retention limit: it counts from when the edge stored a prediction --------
class _Clock:
    """A clock the test moves: no sleeping, no dependence on today's date."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _store_files(tmp_path: Path, kind: str) -> list[Path]:
    return sorted((tmp_path / "state" / "predictions" / "risk" / kind).glob("date=*/*.parquet"))


def test_a_backfill_joins_and_the_horizon_counts_from_when_the_edge_stored_it(
    tmp_path: Path,
) -> None:
    """October 2026's predictions, read by the edge half a year later (a backfill), join their
    labels until ``label_horizon`` after they were stored; later they are late, and nothing is
    kept longer than the horizon."""
    cfg_path, records = _setup(tmp_path, horizon="60d")
    stored = datetime(2027, 4, 1, 12, tzinfo=UTC)  # months after every prediction's own time
    clock = _Clock(stored)
    c = Collector(load_config(cfg_path), clock=clock)
    c.run_once()
    c.run_once()  # the labels task's scheduled expiry: nothing was stored long enough ago
    horizon = c.performance.stores["risk"].horizon
    assert horizon == timedelta(days=60)
    assert _store_files(tmp_path, "predictions")
    first, second, third = records.slice(0, 3000), records.slice(3000, 2000), records.slice(5000)

    clock.now = stored + horizon - timedelta(seconds=1)
    _labels_file(tmp_path / "first.parquet", first, 1)
    r1 = c.performance.join_file("risk", tmp_path / "first.parquet")
    assert (r1.matched, r1.late, r1.unknown_id) == (first.height, 0, 0)
    assert not r1.joined_nothing and r1.explain() == []

    clock.now = stored + horizon + timedelta(seconds=1)
    c.run_once()
    assert _store_files(tmp_path, "predictions") == []  # gone once the horizon has passed
    assert _store_files(tmp_path, "labelled")  # the marks were stored later: they stay longer
    _labels_file(tmp_path / "second.parquet", second, 2)
    r2 = c.performance.join_file("risk", tmp_path / "second.parquet")
    assert (r2.matched, r2.late, r2.unknown_id) == (0, second.height, 0)
    assert r2.joined_nothing
    assert r2.explain()[0].startswith(f"{second.height} late: Ids whose prediction had expired")

    # expired ids are remembered one more horizon, then the store holds nothing of them
    clock.now = stored + 2 * horizon + timedelta(days=2)
    c.run_once()
    assert _store_files(tmp_path, "predictions") == _store_files(tmp_path, "labelled") == []
    assert not list((tmp_path / "state" / "predictions" / "risk" / "expired").glob("*.bloom"))
    _labels_file(tmp_path / "third.parquet", third.head(500), 3)
    r3 = c.performance.join_file("risk", tmp_path / "third.parquet")
    assert (r3.matched, r3.late, r3.unknown_id) == (0, 0, 500)

    c.flush_spool()
    got = Lake(str(tmp_path / "lake")).performance("risk", by="all", metrics=["accuracy"])
    assert got["count_labelled"][0] == first.height
    batches = Lake(str(tmp_path / "lake")).read("label_batches", model="risk").sort("received_at")
    assert batches["matched"].to_list() == [first.height, 0, 0]
    assert batches["late"].to_list() == [0, second.height, 0]


def test_a_prediction_store_written_by_the_previous_layout_still_loads(tmp_path: Path) -> None:
    """Before the horizon counted from storage, the store wrote predictions named by when they
    were stored (unchanged), labelled ids named by batch only and Bloom filters named by
    prediction date. The store reads all three and expires the old marks by their file time."""
    from mlmon.edge.labels import LabelJoinConfig, PredictionStore, join_labels
    from mlmon.governance.deid import hmac_ids
    from mlmon.lake.writer import LakeWriter

    def id16(names: list[str]) -> pl.Series:
        return pl.Series("id", hmac_ids(KEY.encode(), names)).str.slice(0, 32).str.decode("hex")

    rng = np.random.default_rng(5)
    seen = [f"r{i}" for i in range(300)]
    model_dir = tmp_path / "state" / "risk"
    day = model_dir / "predictions" / "date=2026-10-01"
    day.mkdir(parents=True)
    stored = datetime(2026, 10, 2, 3, 4, 5, 678901, tzinfo=UTC)
    pl.DataFrame(
        {"id": id16(seen), "window_us": [int(datetime(2026, 10, 1, 6, tzinfo=UTC).timestamp() * 1e6)] * 300,
         "model_version": pl.Series([None] * 300, dtype=pl.String), "prediction": rng.random(300)}
    ).write_parquet(day / f"{stored:%Y%m%dT%H%M%S%f}-4242-1.parquet")  # fmt: skip
    old_mark = model_dir / "labelled" / "date=2026-10-01" / "0123456789abcdef.parquet"
    old_mark.parent.mkdir(parents=True)
    pl.DataFrame({"id": id16(seen[:100])}).write_parquet(old_mark)
    marked = datetime(2026, 10, 20, tzinfo=UTC)
    os.utime(old_mark, (marked.timestamp(), marked.timestamp()))
    expired_names = [f"old{i}" for i in range(50)]
    old_bloom = model_dir / "expired" / "2026-10-15_date=2026-08-01.bloom"
    old_bloom.parent.mkdir(parents=True)
    _bloom_build(id16(expired_names)).tofile(old_bloom)
    (model_dir / "batches.json").write_text(json.dumps({"0123456789abcdef": {"matched": 100}}))

    clock = _Clock(datetime(2026, 11, 1, tzinfo=UTC))
    store = PredictionStore(tmp_path / "state", timedelta(days=60), clock=clock)
    assert "0123456789abcdef" in store.joined_batches("risk")
    spec = PerformanceSpec.make("binary", classes=("0", "1"))
    ref = build_reference(
        pl.DataFrame({"x": rng.random(500), "score": rng.random(500),
                      "label": rng.integers(0, 2, 500)}), performance=spec,
    )  # fmt: skip
    never = [f"never{i}" for i in range(10)]
    names = seen[:200] + expired_names + never
    labels = pl.DataFrame({"request_id": names, "label": rng.integers(0, 2, len(names))})
    r = join_labels(labels, model="risk", reference=ref, secret=KEY.encode(),
                    writer=LakeWriter(str(tmp_path / "lake"), collector_id="t"),
                    cfg=LabelJoinConfig(), window=timedelta(hours=6), batch_id="b2",
                    source="labels.parquet", store=store)  # fmt: skip
    assert r.already_labelled == 100  # the old marks count
    assert r.matched == 200 - 100  # the old predictions join
    assert r.late == len(expired_names)  # the old Bloom filter is read (no false negatives)
    assert r.unknown_id == len(never)

    # expiry: the old predictions by the stamp in their name, the old marks by their file time
    clock.now = stored + timedelta(days=60, seconds=1)
    assert store.expire() == 1
    assert not list(day.parent.glob("date=*/*.parquet")) and old_mark.exists()
    clock.now = marked + timedelta(days=60, seconds=1)
    assert store.expire() == 1  # the old mark; the new ones were written on 2026-11-01
    assert not old_mark.exists()
    assert len(list((model_dir / "labelled").glob("date=*/*.parquet"))) == 1
    assert not old_bloom.exists()  # expired on 2026-10-15: forgotten one horizon later
    assert len(list((model_dir / "expired").glob("*.bloom"))) == 1  # today's expiry is kept


# -- outputs that tell the truth ---------------------------------------------------------------
def test_cli_edge_labels_says_why_nothing_joined_and_exits_6(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlmon.cli import EXIT_UNJOINED, build_parser

    assert EXIT_UNJOINED == 6  # documented in `mlmon --help` and `mlmon edge labels --help`
    cfg_path, records = _setup(tmp_path)
    # stored long before any day this test runs on; `mlmon edge labels` uses the wall clock
    Collector(load_config(cfg_path), clock=lambda: datetime(2000, 1, 1, tzinfo=UTC)).run_once()
    late = _labels_file(tmp_path / "late.parquet", records.head(700), 1)
    argv = ["edge", "labels", "--config", str(cfg_path), "--file"]
    assert main([*argv, str(tmp_path / "late.parquet")]) == EXIT_UNJOINED
    cap = capsys.readouterr()
    assert f"{late.height} records, 0 matched into 0 window(s); late {late.height}," in cap.out
    assert f"\n  {late.height} late: Ids whose prediction had expired" in cap.out
    assert "late.parquet joined a prediction" in cap.err and "label_horizon is 60d" in cap.err
    assert f"exit {EXIT_UNJOINED}" in cap.err
    # ids this edge never saw: unknown, with their reason
    pl.DataFrame({"request_id": ["a1", "a2", "a3"], "label": [0, 1, 1]}).write_parquet(
        tmp_path / "strangers.parquet"
    )
    assert main([*argv, str(tmp_path / "strangers.parquet")]) == EXIT_UNJOINED
    assert "\n  3 unknown_id: Ids with no stored prediction" in capsys.readouterr().out
    # a file joined before is not "nothing joined"
    assert main([*argv, str(tmp_path / "late.parquet")]) == 0
    assert "was already joined" in capsys.readouterr().out
    for args, doc in ((["edge", "labels", "--help"], "6 a file held records but none joined"),
                      (["--help"], "6 ``edge labels`` (and ``demo``): label records arrived")):  # fmt: skip
        with pytest.raises(SystemExit):
            build_parser().parse_args(args)
        assert doc in " ".join(capsys.readouterr().out.split())


def test_cli_edge_labels_names_what_did_not_join_when_some_did(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg_path, records = _setup(tmp_path)
    Collector(load_config(cfg_path)).run_once()
    known = _labels_file(tmp_path / "known.parquet", records.head(400), 1)
    strangers = pl.DataFrame({"request_id": [f"s{i}" for i in range(25)], "label": [1] * 25})
    pl.concat([known.drop("event_time"), strangers], how="vertical_relaxed").write_parquet(
        tmp_path / "mixed.parquet"
    )
    argv = ["edge", "labels", "--config", str(cfg_path), "--file", str(tmp_path / "mixed.parquet")]
    rc = main(argv)
    out = capsys.readouterr().out
    assert rc == 0
    assert f"{known.height + strangers.height} records, {known.height} matched" in out
    assert f"\n  {strangers.height} unknown_id: " in out and " late: " not in out


def test_estimate_alerts_fire_once_and_resolve_through_the_alert_state(tmp_path) -> None:
    """A window that looks worse fires the estimate alert once; later bad windows write nothing
    more; a window that looks like the reference again resolves it; a window too small to judge
    changes nothing (the collector feeds estimate_conditions to its AlertState)."""
    from mlmon.edge.alerts import AlertState
    from mlmon.edge.performance import estimate_conditions
    from mlmon.profiles.performance import PerformanceProfile

    rng, p, spec, ref = _calibrated_binary_reference()
    state = AlertState(tmp_path / "alerts.json")
    hard = PerformanceProfile.from_predictions(spec, rng.uniform(0.4, 0.6, 1000))
    good = PerformanceProfile.from_predictions(spec, p[:1000])
    tiny = PerformanceProfile.from_predictions(spec, p[:50] * 0 + 0.5)
    t0 = datetime(2026, 10, 5, tzinfo=UTC)

    def changes(prof: PerformanceProfile, hour: int) -> list[tuple[str, str]]:
        t = t0 + timedelta(hours=hour)
        rows = state.update("m", estimate_conditions(ref, prof, scope="stream"), t, t)
        return sorted((r["rule"], r["state"]) for r in rows)

    fired = changes(hard, 0)
    assert ("performance_estimate:accuracy", "firing") in fired
    assert all(s == "firing" for _, s in fired)
    assert changes(hard, 1) == []
    assert estimate_conditions(ref, tiny) == [] and changes(tiny, 2) == []
    assert changes(good, 3) == [(rule, "resolved") for rule, _ in fired]
    assert changes(good, 4) == []


def test_labels_that_carry_the_score_and_the_segment_join_per_segment(tmp_path: Path) -> None:
    """Without a prediction store, labels carrying the score take their segment from their
    own segment columns (allow-listed at the join: a foreign value is __other__, unwritten);
    labels without the column give overall rows only."""
    from mlmon.edge.labels import LabelJoinConfig, join_labels
    from mlmon.lake.writer import LakeWriter

    rng = np.random.default_rng(11)
    n = 3000
    site = rng.choice(["north", "south", "east"], n)
    score = rng.random(n)
    y = (rng.random(n) < np.where(site == "east", 0.5, score)).astype(int)
    ref_df = pl.DataFrame({"x": rng.normal(size=n), "score": score, "label": y, "site": site})
    spec = PerformanceSpec.make("binary", bins=20)
    ref = build_reference(ref_df, performance=spec, segments=["site"], k=5)
    site_in = site.astype(object)
    site_in[::500] = "CANARY-SITE-Z9"
    ts = datetime(2026, 10, 1, tzinfo=UTC) + pl.Series(rng.integers(0, 86400, n) * 1_000_000).cast(
        pl.Duration("us")
    )
    frame = pl.DataFrame(
        {"request_id": [f"r{i}" for i in range(n)], "label": y, "score": score,
         "predicted_at": ts, "site": site_in.tolist()}
    )  # fmt: skip
    writer = LakeWriter(str(tmp_path / "lake"), collector_id="t")
    cfg = LabelJoinConfig(score_column="score", prediction_time_column="predicted_at")
    join_labels(frame, model="m", reference=ref, secret=KEY.encode(), writer=writer, cfg=cfg,
                window=timedelta(hours=6), batch_id="b1", source="l.parquet")  # fmt: skip
    join_labels(frame.drop("site").with_columns(pl.col("request_id") + "-2"), model="m2",
                reference=ref, secret=KEY.encode(), writer=writer, cfg=cfg,
                window=timedelta(hours=6), batch_id="b2", source="l2.parquet")  # fmt: skip
    for f in (tmp_path / "lake").rglob("*.parquet"):
        assert b"CANARY-SITE" not in f.read_bytes()
    lake = Lake(str(tmp_path / "lake"))
    got = lake.performance("m", by="all", segment="site", metrics=["accuracy"])
    codes = np.where(np.isin(site_in, ["north", "south", "east"]), site_in, OTHER)
    assert dict(zip(got["segment"], got["count_labelled"], strict=True)) == {
        f"site={v}": int((codes == v).sum()) for v in set(codes)
    }
    east = got.filter(pl.col("segment") == "site=east")["realized"][0]
    m = codes == "east"
    assert east == pytest.approx(skm.accuracy_score(y[m], score[m] >= 0.5), abs=1e-12)
    assert lake.performance("m2", by="all", segment="site").height == 0
    assert lake.performance("m2", by="all").height > 0
    # a segment column of lists (a hostile labels file) is no value of the list: __other__
    nested = frame.head(50).with_columns(pl.col("site").map_elements(lambda v: [v],
                                         return_dtype=pl.List(pl.String)))  # fmt: skip
    r = join_labels(nested.with_columns(pl.col("request_id") + "-3"), model="m3", reference=ref,
                    secret=KEY.encode(), writer=writer, cfg=cfg, window=timedelta(hours=6),
                    batch_id="b3", source="l3.parquet")  # fmt: skip
    assert r.matched == 50
    got = lake.performance("m3", by="all", segment="site", metrics=["accuracy"])
    assert got.select("segment", "count_labelled").rows() == [(f"site={OTHER}", 50)]

"""The rules read the same figures as ``mlmon.Lake``; version checks; the ``run`` loop."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from mlmon.alerting import deliver, load_config, run
from mlmon.alerting.rules import evaluate
from mlmon.analysis.lake import Lake
from mlmon.lake.schema import _WINDOW, TABLES, UTC_TS, Column, Table, register_table
from tests.alerting.conftest import NOW, HttpReceiver, LakeData, write_config


def test_drift_and_latency_figures_are_the_lakes(tmp_path: Path, lake: LakeData):
    lake.window("risk-model", NOW - timedelta(minutes=30), shift=20, latency_scale=60)
    lake.window("calm-model", NOW - timedelta(minutes=30))
    cfg = load_config(
        write_config(
            tmp_path,
            lake.root,
            [{"type": "webhook", "url": "http://127.0.0.1:9/"}],
            rules={
                "drift": {"period": "6h", "methods": ["psi"]},
                "latency": {"period": "6h", "objective_ms": 200, "quantile": 0.95},
            },
        )
    )
    reader = Lake(str(lake.root))
    findings, problems = evaluate(reader, cfg, NOW)
    assert problems == []
    by = {(f.rule, f.model): f for f in findings}
    for model in ("risk-model", "calm-model"):
        expected = reader.drift(model, NOW - timedelta(hours=6), NOW, by=None, methods=["psi"])
        psi = expected.filter(pl.col("feature") == "age").row(0, named=True)
        f = by[("drift:psi", model)]
        assert (f.value, f.threshold, f.holds) == (psi["value"], psi["threshold"], psi["drifted"])
        p95 = reader.percentiles(
            "latency_ms", q=(0.95,), model=model, start=NOW - timedelta(hours=6), end=NOW, by=None
        ).item(0, "value")
        lat = by[("latency_objective", model)]
        assert (lat.value, lat.holds) == (p95, p95 > 200)
    assert by[("drift:psi", "risk-model")].holds and not by[("drift:psi", "calm-model")].holds
    assert by[("latency_objective", "risk-model")].holds
    assert not by[("latency_objective", "calm-model")].holds


@pytest.fixture
def version_checks_table() -> Iterator[None]:
    """The registry watch's table (branch i22-registry), its columns the rule reads."""
    added = "version_checks" not in TABLES
    if added:
        register_table(
            Table(
                "version_checks",
                "test stand-in: the columns of the registry watch's table that the rule reads",
                (
                    *_WINDOW,
                    Column("checked_at", UTC_TS, "", nullable=False),
                    Column("check_id", pa.string(), "", nullable=False),
                    Column("candidate_version", pa.string(), ""),
                    Column("trigger", pa.string(), "", nullable=False),
                    Column("outcome", pa.string(), "", nullable=False),
                    Column("candidate_pass_rate", pa.float64(), ""),
                    Column("champion_pass_rate", pa.float64(), ""),
                    Column("latency_ratio", pa.float64(), ""),
                ),
            )
        )
    try:
        yield
    finally:
        if added:
            del TABLES["version_checks"]


def _check(lake: LakeData, at, version: str, outcome: str, rate: float) -> None:
    lake.n += 1
    rows = pl.DataFrame(
        {
            "window_start": [at],
            "window_end": [at],
            "collector_id": ["registry-watch"],
            "checked_at": [at],
            "check_id": [f"c{lake.n}"],
            "candidate_version": [version],
            "trigger": ["version_created"],
            "outcome": [outcome],
            "candidate_pass_rate": [rate],
            "champion_pass_rate": [1.0],
            "latency_ratio": [1.4],
        }
    )
    lake.writer.write_table("version_checks", "risk-model", rows, at, at, part=f"v{lake.n}")


def test_a_failed_version_check_fires_and_a_passing_recheck_resolves(
    tmp_path: Path, lake: LakeData, receiver: HttpReceiver, version_checks_table: None
):
    lake.window("risk-model", NOW - timedelta(minutes=30))
    _check(lake, NOW - timedelta(minutes=20), "7", "fail", 0.6)
    cfg = load_config(
        write_config(
            tmp_path,
            lake.root,
            [{"name": "ops", "type": "webhook", "url": receiver.url}],
            rules={"version_checks": {}},
        )
    )
    assert deliver(cfg, now=NOW).delivered == 1
    [alert] = receiver.bodies()[0]["alerts"]
    assert (alert["rule"], alert["subject"], alert["severity"]) == (
        "version_check",
        "7",
        "critical",
    )
    assert alert["summary"] == (
        "candidate version 7 failed its replication test against the champion (golden pass "
        "rate 60.0% vs the champion's 100.0%, median latency 1.40x the champion's)"
    )
    _check(lake, NOW + timedelta(minutes=5), "7", "error", 0.0)  # nothing decided: no change
    assert deliver(cfg, now=NOW + timedelta(minutes=8)).delivered == 0
    _check(lake, NOW + timedelta(minutes=10), "7", "pass", 1.0)
    assert deliver(cfg, now=NOW + timedelta(minutes=20)).resolved == 1
    assert receiver.bodies()[1]["alerts"][0]["state"] == "resolved"


def test_the_run_loop_retries_until_the_receiver_accepts(
    tmp_path: Path, lake: LakeData, receiver: HttpReceiver
):
    from datetime import UTC, datetime

    lake.golden("risk-model", datetime.now(UTC) - timedelta(minutes=1), passed=0, failed=4)
    receiver.statuses = [500]
    cfg = load_config(
        write_config(
            tmp_path,
            lake.root,
            [{"name": "ops", "type": "webhook", "url": receiver.url}],
            retry={"min": "1s", "max": "2s"},
            interval="1h",
        )
    )
    stop = threading.Event()
    delivered = threading.Event()
    passes = []

    def on_pass(result) -> None:
        passes.append(result)
        if result.delivered:
            delivered.set()
            stop.set()

    t = threading.Thread(target=run, args=(cfg, stop), kwargs={"on_pass": on_pass})
    t.start()
    try:
        assert delivered.wait(60)
    finally:
        stop.set()
        t.join(30)
    assert passes[0].failed == 1
    assert len(receiver.requests) == 2
    assert len({r.json()["id"] for r in receiver.requests}) == 1


def _performance_lake(root: Path, model: str, rng, informative: bool) -> None:
    from mlmon.lake.writer import LakeWriter
    from mlmon.profiles.frame import build_reference
    from mlmon.profiles.performance import PerformanceProfile, PerformanceSpec, performance_to_row

    spec = PerformanceSpec.make("binary", bins=50)
    x = rng.normal(0, 1, 20_000)
    p = 1 / (1 + np.exp(-(1.7 * x - 0.4)))
    y = (rng.random(x.size) < p).astype(int)
    ref = build_reference(pl.DataFrame({"x": x, "score": p, "label": y}), performance=spec)
    writer = LakeWriter(str(root), collector_id="t", day_rollups=False)
    writer.write_performance_reference(model, ref)
    for day in range(3):
        x = rng.normal(0, 1, 2000)
        y = (rng.random(x.size) < 1 / (1 + np.exp(-(1.7 * x - 0.4)))).astype(int)
        z = x if informative else rng.normal(0, 1, x.size)  # scores that know nothing
        s = 1 / (1 + np.exp(-(1.7 * z - 0.4)))
        prof = PerformanceProfile.from_predictions(spec, s).merge(
            PerformanceProfile.from_labels(spec, y, s)
        )
        start = NOW - timedelta(days=3 - day)
        row = {"model_version": "1", "window_start": start, "window_end": start + timedelta(days=1),
               "collector_id": "t", "reference_id": ref.reference_id, "role": "labels",
               "batch_id": "b", **performance_to_row(prof)}  # fmt: skip
        writer.write_table("performance", model, pl.DataFrame([row], infer_schema_length=None),
                           start, start + timedelta(days=1), part=f"d{day}")  # fmt: skip


def test_performance_outside_its_band_fires_as_lake_performance_says(tmp_path: Path):
    rng = np.random.default_rng(7)
    root = tmp_path / "lake"
    _performance_lake(root, "good-model", rng, informative=True)
    _performance_lake(root, "blind-model", rng, informative=False)
    cfg = load_config(
        write_config(
            tmp_path,
            root,
            [{"type": "webhook", "url": "http://127.0.0.1:9/"}],
            rules={"performance": {"period": "7d", "metrics": ["roc_auc"]}},
        )
    )
    reader = Lake(str(root))
    findings, problems = evaluate(reader, cfg, NOW)
    assert problems == []
    by = {f.model: f for f in findings}
    for model in ("good-model", "blind-model"):
        expected = reader.performance(
            model, NOW - timedelta(days=7), NOW, by=None, metrics=["roc_auc"]
        ).row(0, named=True)
        f = by[model]
        assert (f.subject, f.value, f.holds) == ("roc_auc", expected["realized"], expected["alert"])
        assert f.summary.startswith(f"roc_auc measured {expected['realized']:.3g} vs reference ")
    assert by["blind-model"].holds and not by["good-model"].holds


def test_a_wall_clock_stepped_back_does_not_hold_a_queued_message(
    tmp_path: Path, lake: LakeData, receiver: HttpReceiver
):
    from mlmon.alerting.deliver import pause

    lake.golden("risk-model", NOW - timedelta(minutes=5), passed=0, failed=5)
    receiver.statuses = [500]
    cfg = load_config(
        write_config(tmp_path, lake.root, [{"name": "ops", "type": "webhook", "url": receiver.url}])
    )
    assert deliver(cfg, now=NOW).failed == 1  # next attempt at NOW + 30 s
    # the clock steps back a day: NOW + 30 s lies further ahead than retry.max (10 min)
    r = deliver(cfg, now=NOW - timedelta(days=1), evaluate_rules=False)
    assert (r.delivered, r.queued) == (1, 0)
    stop = threading.Event()
    assert pause(stop, 0.05) is False
    stop.set()
    assert pause(stop, 3600) is True  # returns at once once stopped


def test_missing_data_fires_for_models_that_stopped_or_are_expected_not_for_a_reference(
    tmp_path: Path, lake: LakeData, receiver: HttpReceiver
):
    lake.writer.write_reference("registered-model", lake.reference)  # a reference, no data yet
    lake.writer.write_reference("awaited-model", lake.reference)
    lake.window("live-model", NOW - timedelta(minutes=30))
    lake.window("stopped-model", NOW - timedelta(days=3))
    lake.golden("long-gone-model", NOW - timedelta(days=20), passed=3, failed=0)
    cfg = load_config(
        write_config(
            tmp_path,
            lake.root,
            [{"name": "ops", "type": "webhook", "url": receiver.url}],
            rules={"missing_data": {"missing_after": "2h", "expect": ["await*", "new-model"]}},
        )
    )
    findings, problems = evaluate(Lake(str(lake.root)), cfg, NOW)
    assert problems == []
    holds = {f.model: f.holds for f in findings}
    assert holds == {
        "registered-model": False,  # only a reference: nothing is missing
        "awaited-model": True,  # only a reference, but expected
        "new-model": True,  # expected, nothing in the lake at all
        "live-model": False,
        "stopped-model": True,  # had data 3 days ago
        "long-gone-model": True,  # had data, none in the rule's 7 days
    }
    result = deliver(cfg, now=NOW)
    assert result.started == 4
    told = {a["model"] for body in receiver.bodies() for a in body["alerts"]}
    assert told == {"awaited-model", "new-model", "stopped-model", "long-gone-model"}

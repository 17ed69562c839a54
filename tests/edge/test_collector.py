"""The collector end to end: a real model server, golden checks, a log stream, a local lake."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from mlmon.analysis.lake import Lake
from mlmon.edge.collector import Collector
from mlmon.edge.config import load_config
from mlmon.lake.references import save_reference
from mlmon.profiles.frame import build_reference
from mlmon.profiles.schema import Schema
from tests.edge.servers import start_server

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "data" / "fixtures"
KEY = "h" * 32


def _schema() -> Schema:
    import yaml

    return Schema.from_dict(yaml.safe_load((FIX / "schema.yaml").read_text()))


def _stream_files(folder: Path, days: list[str]) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for d in days:
        df = pl.read_parquet(FIX / "inference" / f"{d}.parquet")
        for i, part in enumerate(df.iter_slices(1000)):
            part.with_columns(
                pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
            ).write_ndjson(folder / f"{d}-{i:02d}.jsonl")
            n += part.height
    return n


def _config(
    tmp_path: Path,
    endpoint: str | None,
    stream: Path,
    schedule: str = "every 1m",
    window: str = "6h",
) -> Path:
    ref = build_reference(pl.read_parquet(FIX / "reference.parquet"), _schema(), model="risk-model")
    save_reference(ref, tmp_path / "ref.parquet")
    model = {"name": "risk-model", "reference": str(tmp_path / "ref.parquet"),
             "streams": [{"path": str(stream), "format": "jsonl", "kind": "tabular", "schedule": schedule}]}  # fmt: skip
    if endpoint:
        model["endpoint"] = {
            "url": endpoint,
            "protocol": "oip_v2",
            "model_name": "risk",
            "timeout": "2s",
        }
        model["golden"] = {"file": str(FIX / "golden.jsonl"), "schedule": "every 1m"}
    cfg = {
        "collector_id": "edge-test",
        "lake": {"uri": str(tmp_path / "lake")},
        "hmac_key": {"env": "MLMON_HMAC_KEY"},
        "state_dir": str(tmp_path / "state"),
        "window": window,
        "allow_http": True,
        "metrics": {"port": 0},
        "models": [model],
    }
    p = tmp_path / "edge.yaml"
    p.write_text(json.dumps(cfg))
    return p


@pytest.fixture
def model_server():
    srv = start_server(["--protocol", "oip_v2", "--model-version", "1.0"])
    yield srv
    srv.stop()


def test_collector_cycle_writes_golden_latency_profiles_drift_and_alerts(
    tmp_path, model_server, monkeypatch
):
    monkeypatch.setenv("MLMON_HMAC_KEY", KEY)
    n = _stream_files(tmp_path / "logs", ["2026-10-03", "2026-10-04"])
    c = Collector(load_config(_config(tmp_path, model_server.url, tmp_path / "logs"), env={}))
    report = c.run_once()
    assert report.errors == []
    assert report.golden_checks == 20 and report.golden_passed == 20
    assert report.records == n
    lake = Lake(str(tmp_path / "lake"))
    golden = lake.read("golden", model="risk-model")
    assert (
        golden.height == 20
        and golden["passed"].all()
        and golden["model_version"].unique().to_list() == ["1.0"]
    )
    assert lake.sql("SELECT sum(count) AS n FROM profiles WHERE feature = 'age'")["n"][0] == n
    probe_lat = lake.sql("SELECT sum(count) AS n FROM latency WHERE source = 'probe'")["n"][0]
    assert probe_lat == 20
    drift = lake.drift("risk-model", by="day", methods=["psi"])
    flagged = set(drift.filter(pl.col("drifted"))["feature"])
    assert flagged == {"age", "ward", "score"}  # the planted drift (score follows age)

    # whole days come from the collector's own day rollups
    def names(start: str, end: str) -> list[str]:
        files = lake.files("profiles", model="risk-model", start=start, end=end, rollup=True)
        return [f.rsplit("/", 1)[-1] for f in files]

    for day, next_day in (("2026-10-03", "2026-10-04"), ("2026-10-04", "2026-10-05")):
        partial = names(day, f"{day}T23:59:59.999999+00:00")  # a partial day: the windows
        assert partial and not any(n.startswith("day-") for n in partial)
        assert names(day, next_day) == [f"day-{c.config.collector_id}.parquet"]
    # the state volume keeps the rollups of recent days (here: today's probe latency); the
    # October days are past its 35-day horizon and were kept only while the cycle ran
    kept = [p.stem for p in (c.state_dir / "rollups" / "latency" / "risk-model").iterdir()]
    assert len(kept) == 1
    assert abs((date.fromisoformat(kept[0]) - datetime.now(UTC).date()).days) <= 1
    alerts = lake.read("alerts", model="risk-model")
    assert set(alerts["rule"]) == {"drift:psi"} and set(alerts["feature"]) >= {"age"}

    from mlmon.governance.audit import verify

    audit = verify(str(tmp_path / "lake"))
    assert audit.ok and audit.records > 20, audit  # config loaded, objects written, endpoint probed

    # the second cycle reads nothing new: exactly once
    again = c.run_once()
    assert again.records == 0
    assert (
        Lake(str(tmp_path / "lake")).sql(
            "SELECT sum(count) AS n FROM profiles WHERE feature='age'"
        )["n"][0]
        == n
    )
    exposition = c.metrics.exposition().decode()
    assert (
        'mlmon_edge_records_total{model="risk-model",source="stream"} ' + f"{float(n)}"
        in exposition
    )
    assert "mlmon_edge_buffer_bytes 0.0" in exposition


def test_failing_endpoint_becomes_alert_not_crash(tmp_path, monkeypatch):
    monkeypatch.setenv("MLMON_HMAC_KEY", KEY)
    (tmp_path / "logs").mkdir()
    c = Collector(load_config(_config(tmp_path, "http://127.0.0.1:9", tmp_path / "logs"), env={}))
    report = c.run_once()
    assert report.errors == [] and report.golden_checks == 20 and report.golden_passed == 0
    alerts = Lake(str(tmp_path / "lake")).read("alerts", model="risk-model")
    assert (
        alerts["rule"].to_list() == ["endpoint_unreachable"] and alerts["severity"][0] == "critical"
    )


def test_bucket_outage_spools_then_flushes_in_order(tmp_path, monkeypatch):
    monkeypatch.setenv("MLMON_HMAC_KEY", KEY)
    n = _stream_files(tmp_path / "logs", ["2026-10-01"])
    cfg = load_config(_config(tmp_path, None, tmp_path / "logs"), env={})
    c = Collector(cfg)
    import mlmon.edge.spool as spool_module
    from mlmon.errors import LakeUnreachable

    real = spool_module.put_object

    def down(storage, path, data):
        raise LakeUnreachable("simulated outage")

    monkeypatch.setattr(spool_module, "put_object", down)
    report = c.run_once()
    assert report.errors == [] and report.records == n
    assert len(c.spool) > 0 and c.metrics.buffer_objects._value.get() == len(c.spool)
    assert not (tmp_path / "lake").exists()
    monkeypatch.setattr(spool_module, "put_object", real)
    c.flush_spool(force=True)  # now: the breaker would wait out its back-off first
    assert len(c.spool) == 0
    assert (
        Lake(str(tmp_path / "lake")).sql(
            "SELECT sum(count) AS n FROM profiles WHERE feature='age'"
        )["n"][0]
        == n
    )


def test_kill_9_mid_stream_loses_nothing_and_counts_nothing_twice(tmp_path):
    """A real `mlmon edge run` process, SIGKILLed while it works, then restarted."""
    n = _stream_files(tmp_path / "logs", ["2026-10-01", "2026-10-02", "2026-10-03", "2026-10-04"])
    cfg = _config(tmp_path, None, tmp_path / "logs", schedule="every 0.2s", window="1h")
    env = {**os.environ, "MLMON_HMAC_KEY": KEY}
    cmd = [sys.executable, "-m", "mlmon.cli", "edge", "run", "--config", str(cfg)]
    for delay in (1.2, 0.6):
        proc = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    done = subprocess.run(
        [sys.executable, "-m", "mlmon.cli", "edge", "once", "--config", str(cfg)], env=env, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lake_dir = tmp_path / "lake"
    leftovers = [p for p in lake_dir.rglob("*") if p.name.startswith(".tmp-")]
    assert leftovers == []
    lake = Lake(str(lake_dir))
    total = lake.sql("SELECT sum(count) + sum(nulls) AS n FROM profiles WHERE feature = 'bmi'")[
        "n"
    ][0]
    assert total == n
    assert lake.read("profiles", model="risk-model")["window_start"].n_unique() == 96
    assert (
        timedelta(hours=1)
        == (lake.read("profiles")["window_end"] - lake.read("profiles")["window_start"])[0]
    )

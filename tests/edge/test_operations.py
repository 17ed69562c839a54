"""Operational truth: exit codes, /healthz, last_success, alert state changes, probe latency
and SIGTERM, with real `mlmon edge` processes and real servers on 127.0.0.1.

Servers: the demo model server (answers right, or 503 every other time: ``--fault flaky``),
a golden set with wrong expectations (answers "wrong"), a port nobody listens on
(refuses), ``tests.edge.blackhole`` (accepts and never answers: hangs), and a moto S3
server for a bucket that comes back. Each is started and stopped by its own pid.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from mlmon.analysis.lake import Lake
from mlmon.edge.collector import Collector
from mlmon.edge.config import load_config
from mlmon.edge.http import HttpSettings, make_client
from mlmon.edge.lifecycle import ONCE_EXIT_CODES, SHUTDOWN_DEADLINE_S
from mlmon.edge.protocols import Endpoint, probe
from mlmon.lake.references import save_reference
from mlmon.profiles.frame import build_reference
from tests.edge.servers import RunningServer, start_server
from tests.edge.test_collector import _schema

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "data" / "fixtures"
KEY = "h" * 32
ENV = {**os.environ, "MLMON_HMAC_KEY": KEY}
ROW = {"age": 70, "bmi": 30.5, "creatinine": 1.2, "heart_rate": 88}
BUCKET = "mlmon-ops"
KMS = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"


# -- helpers ------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _reference(folder: Path) -> Path:
    path = folder / "ref.parquet"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        ref = build_reference(
            pl.read_parquet(FIX / "reference.parquet"), _schema(), model="risk-model"
        )
        save_reference(ref, path)
    return path


def _edge_yaml(
    folder: Path,
    model: dict[str, Any],
    *,
    lake: dict[str, Any] | None = None,
    metrics_port: int | None = None,
    window: str = "1h",
) -> Path:
    """An edge.yaml for one model ``risk-model`` with its own lake and state in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    cfg: dict[str, Any] = {
        "collector_id": "edge-ops",
        "lake": lake or {"uri": str(folder / "lake")},
        "hmac_key": {"env": "MLMON_HMAC_KEY"},
        "state_dir": str(folder / "state"),
        "window": window,
        "allow_http": True,
        "models": [{"name": "risk-model", "reference": str(_reference(folder.parent)), **model}],
    }
    if metrics_port is not None:
        cfg["metrics"] = {"host": "127.0.0.1", "port": metrics_port}
    path = folder / "edge.yaml"
    path.write_text(json.dumps(cfg))
    return path


def _golden(
    url: str,
    golden: Path = FIX / "golden.jsonl",
    timeout: str = "2s",
    retries: int = 0,
    every: str = "1m",
) -> dict[str, Any]:
    return {
        "endpoint": {"url": url, "protocol": "oip_v2", "model_name": "risk",
                     "timeout": timeout, "retries": retries, "backoff": "50ms"},
        "golden": {"file": str(golden), "schedule": f"every {every}"},
    }  # fmt: skip


def _wrong_golden(folder: Path) -> Path:
    """The fixture golden set with every expected score off by 0.5: the model answers 'wrong'."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "golden-wrong.jsonl"
    lines = []
    for line in (FIX / "golden.jsonl").read_text().splitlines():
        rec = json.loads(line)
        rec["expected"] = round(rec["expected"] + 0.5, 4)
        lines.append(json.dumps(rec))
    path.write_text("\n".join(lines) + "\n")
    return path


def _once(cfg: Path, env: dict[str, str] = ENV) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "mlmon.cli", "edge", "once", "--config", str(cfg)],
        env=env, capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"exit {done.returncode}; stderr:\n{done.stderr[-3000:]}"
    return done.returncode, json.loads(lines[-1])


def _spawn(sub: str, cfg: Path, env: dict[str, str] = ENV) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mlmon.cli", "edge", sub, "--config", str(cfg)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _read_until(server: RunningServer, text: str, timeout: float = 60.0) -> None:
    """Wait until the server prints a line starting with ``text`` (the blackhole's ``accepted``)."""
    assert server.proc.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(server.proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if sel.select(timeout=0.2) and server.proc.stdout.readline().startswith(text):
                return
    raise AssertionError(f"the server printed no {text!r} line within {timeout:g} s")


def _poll(url: str, check: Any, timeout: float = 90.0) -> Any:
    """GET ``url`` until ``check(response)`` is truthy; return that value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = httpx.get(url, timeout=2)
            value = check(last)
            if value:
                return value
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} never met the check; last answer: {last and last.text[:2000]}")


def _gauge(metrics: str, name: str, **labels: str) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    series = f"{name}{{{want}}}" if labels else name
    m = re.search(rf"^{re.escape(series)} (\S+)$", metrics, re.M)
    return float(m.group(1)) if m else None


@pytest.fixture
def server() -> Any:
    """Start servers by module and arguments; each is stopped by its pid after the test."""
    started: list[RunningServer] = []

    def start(*args: str, module: str = "mlmon.demo.model_server") -> RunningServer:
        srv = start_server(list(args), module)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


# -- exit codes of `edge once` --------------------------------------------------------------
def test_edge_once_exit_codes_for_golden_outcomes(tmp_path, server):
    ok = server("--protocol", "oip_v2")
    hang = server(module="tests.edge.blackhole")
    refused = f"http://127.0.0.1:{_free_port()}"

    code, out = _once(_edge_yaml(tmp_path / "pass", _golden(ok.url)))
    assert (code, out["golden_passed"], out["golden_failed"]) == (0, 20, [])

    wrong = _golden(ok.url, golden=_wrong_golden(tmp_path / "files"))
    code, out = _once(_edge_yaml(tmp_path / "wrong", wrong))
    assert (code, out["golden_passed"], out["golden_failed"]) == (1, 0, ["risk-model"])
    assert out["errors"] == [] and out["spooled_objects"] == 0

    code, out = _once(_edge_yaml(tmp_path / "refused", _golden(refused)))
    assert (code, out["golden_checks"], out["golden_failed"]) == (1, 20, ["risk-model"])

    # every probe times out
    code, out = _once(_edge_yaml(tmp_path / "hang", _golden(hang.url, timeout="200ms")))
    assert (code, out["golden_checks"], out["golden_passed"]) == (1, 20, 0)
    golden = Lake(str(tmp_path / "hang" / "lake")).read("golden", model="risk-model")
    assert set(golden["error_kind"]) == {"timeout"}


def test_edge_once_exits_6_when_a_task_fails(tmp_path, server):
    ok = server("--protocol", "oip_v2")
    refused = f"http://127.0.0.1:{_free_port()}"
    batch = {"kind": "http", "schedule": "every 1h", "trigger_url": f"{refused}/jobs",
             "poll_url": f"{refused}/jobs/{{job_id}}", "timeout": "5s"}  # fmt: skip
    code, out = _once(_edge_yaml(tmp_path / "batch", {**_golden(ok.url), "batch": batch}))
    assert code == 6, out
    assert out["golden_failed"] == [] and out["batch_runs"] == 1
    assert [e.split(":", 1)[0] for e in out["errors"]] == ["risk-model/batch"]


def test_edge_once_exits_3_when_the_bucket_is_unreachable(tmp_path, server):
    refused = f"http://127.0.0.1:{_free_port()}"
    bucket = f"http://127.0.0.1:{_free_port()}"
    lake = {"uri": f"s3://{BUCKET}/lake", "sse_kms_key_id": KMS,
            "storage_options": {"endpoint_url": bucket, "client_kwargs": {"region_name": "us-east-1"},
                                "config_kwargs": {"retries": {"max_attempts": 1}}}}  # fmt: skip
    env = {**ENV, "AWS_ACCESS_KEY_ID": "ops", "AWS_SECRET_ACCESS_KEY": "ops-secret"}
    # the endpoint refuses too: the lake comes first in the table
    code, out = _once(_edge_yaml(tmp_path / "s3", _golden(refused), lake=lake), env)
    assert code == 3, out
    assert out["golden_failed"] == ["risk-model"] and out["spooled_objects"] > 0
    spooled = sorted((tmp_path / "s3" / "state" / "spool").glob("*.bin"))
    assert len(spooled) == out["spooled_objects"]


def test_exit_codes_are_documented_in_help_and_readme():
    done = subprocess.run(
        [sys.executable, "-m", "mlmon.cli", "edge", "once", "--help"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0 and ONCE_EXIT_CODES in done.stdout
    readme = (ROOT / "README.md").read_text()
    for line in ONCE_EXIT_CODES.splitlines()[1:]:
        assert line.strip() in readme, line


# -- /healthz, last_success and alert state changes in `edge run` -------------------------------
def test_healthz_last_success_and_alerts_follow_the_endpoint(tmp_path, server):
    port, metrics_port = _free_port(), _free_port()
    url = f"http://127.0.0.1:{port}"
    cfg = _edge_yaml(tmp_path / "edge", _golden(url, timeout="500ms", every="1s"),
                     metrics_port=metrics_port)  # fmt: skip
    base = f"http://127.0.0.1:{metrics_port}"
    proc = _spawn("run", cfg)
    try:
        # the endpoint is down: degraded, with the reason; no success, one firing alert
        health = _poll(f"{base}/healthz", lambda r: r.json()["status"] == "degraded" and r)
        assert health.status_code == 200
        [reason] = health.json()["reasons"]
        assert reason.startswith(f"risk-model/golden: endpoint {url} unreachable: none of 20")
        assert "connect=20" in reason
        metrics = httpx.get(f"{base}/metrics").text
        labels = {"model": "risk-model", "task": "golden"}
        assert _gauge(metrics, "mlmon_edge_last_success_timestamp_seconds", **labels) is None
        firing = {"model": "risk-model", "rule": "endpoint_unreachable"}
        assert _gauge(metrics, "mlmon_edge_alerts_firing", **firing) == 1.0
        time.sleep(2.5)  # more cycles while still down

        # the endpoint comes up on that port: ok, last_success advances, the alert resolves
        up = server("--protocol", "oip_v2", "--port", str(port))
        _poll(f"{base}/healthz", lambda r: r.json() == {"status": "ok", "reasons": []})
        metrics = httpx.get(f"{base}/metrics").text
        success = _gauge(metrics, "mlmon_edge_last_success_timestamp_seconds", **labels)
        assert success is not None and success > time.time() - 60
        assert _gauge(metrics, "mlmon_edge_alerts_firing", **firing) == 0.0

        # down again: degraded, and last_success stays where it was
        up.stop()
        _poll(f"{base}/healthz", lambda r: r.json()["status"] == "degraded")
        time.sleep(2.5)
        metrics = httpx.get(f"{base}/metrics").text
        later = _gauge(metrics, "mlmon_edge_last_success_timestamp_seconds", **labels)
        assert later is not None and later <= success + 2.0  # at most one success in flight
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=SHUTDOWN_DEADLINE_S + 5)
        finally:
            _stop(proc)
    assert proc.returncode == 0, proc.stderr.read()[-3000:] if proc.stderr else ""
    alerts = Lake(str(tmp_path / "edge" / "lake")).read("alerts", model="risk-model")
    rows = alerts.filter(pl.col("rule") == "endpoint_unreachable").sort("raised_at")
    # golden ran every second, many times down: one row per change, none per cycle
    assert rows["state"].to_list() == ["firing", "resolved", "firing"]
    assert rows["message"][1].startswith("resolved: endpoint answered 20 of 20")
    # a run cut in half by the stop may also fire golden_pass_rate: its rows alternate too
    for (rule,), group in alerts.sort("raised_at").group_by("rule", maintain_order=True):
        states = group["state"].to_list()
        assert states == ["firing", "resolved"] * (len(states) // 2) + ["firing"] * (
            len(states) % 2
        ), (rule, states)


def test_healthz_degraded_while_the_bucket_is_unreachable_then_ok(tmp_path, server):
    ok = server("--protocol", "oip_v2")
    s3_port, metrics_port = _free_port(), _free_port()
    lake = {"uri": f"s3://{BUCKET}/lake", "sse_kms_key_id": KMS, "retry_max": "2s",
            "storage_options": {"endpoint_url": f"http://127.0.0.1:{s3_port}",
                                "client_kwargs": {"region_name": "us-east-1"},
                                "config_kwargs": {"retries": {"max_attempts": 1}}}}  # fmt: skip
    env = {**ENV, "AWS_ACCESS_KEY_ID": "ops", "AWS_SECRET_ACCESS_KEY": "ops-secret"}
    cfg = _edge_yaml(tmp_path / "edge", _golden(ok.url, every="2s"), lake=lake,
                     metrics_port=metrics_port)  # fmt: skip
    base = f"http://127.0.0.1:{metrics_port}"
    proc = _spawn("run", cfg, env)
    moto = None
    try:
        health = _poll(f"{base}/healthz", lambda r: r.json()["status"] == "degraded" and r.json())
        [reason] = health["reasons"]
        assert re.match(
            r"lake: lake unreachable since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ, [1-9]\d* objects "
            r"\(\d+ bytes\) spooled; next attempt in \d+ s; last error: LakeUnreachable",
            reason,
        ), reason
        labels = {"model": "risk-model", "task": "golden"}
        metrics = httpx.get(f"{base}/metrics").text
        assert _gauge(metrics, "mlmon_edge_last_success_timestamp_seconds", **labels) is None
        assert _gauge(metrics, "mlmon_edge_degraded", component="lake") == 1.0

        # the bucket comes up (moto, no IAM) on that port
        moto = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        endpoint = f"http://127.0.0.1:{s3_port}"
        _poll(f"{endpoint}/moto-api/", lambda r: r.status_code < 500, timeout=60)
        import boto3

        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="ops", aws_secret_access_key="ops-secret")  # fmt: skip
        s3.create_bucket(Bucket=BUCKET)
        _poll(f"{base}/healthz", lambda r: r.json() == {"status": "ok", "reasons": []})
        # the spool drains; a golden run every 2 s may put new objects in the write-behind
        # spool at any moment, so wait for an empty spool rather than read it once
        metrics = _poll(
            f"{base}/metrics", lambda r: _gauge(r.text, "mlmon_edge_buffer_objects") == 0.0 and r
        ).text
        assert _gauge(metrics, "mlmon_edge_degraded", component="lake") == 0.0
        # the next golden run's objects reach the lake at once: a success
        _poll(
            f"{base}/metrics",
            lambda r: _gauge(r.text, "mlmon_edge_last_success_timestamp_seconds", **labels),
        )
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
        assert any("/golden/" in k for k in keys) and any("/references/" in k for k in keys)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=SHUTDOWN_DEADLINE_S + 5)
        finally:
            _stop(proc)
            if moto is not None:
                os.kill(moto.pid, signal.SIGTERM)
                moto.wait(timeout=10)
    assert proc.returncode == 0


# -- alerts: drift fires once and resolves -----------------------------------------------------
def _jsonl(folder: Path, name: str, frame: pl.DataFrame) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    frame.with_columns(pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")).write_ndjson(
        folder / name
    )
    return frame.height


def test_drift_alerts_fire_once_and_resolve_when_the_drift_clears(tmp_path, monkeypatch):
    monkeypatch.setenv("MLMON_HMAC_KEY", KEY)
    logs = tmp_path / "logs"
    # 3 October is like the reference; from 4 October age, ward and score drift (6 h windows)
    for day in ("2026-10-03", "2026-10-04"):
        _jsonl(logs, f"{day}.jsonl", pl.read_parquet(FIX / "inference" / f"{day}.parquet"))
    stream = {"streams": [{"path": str(logs), "format": "jsonl", "kind": "tabular"}]}
    cfg = load_config(_edge_yaml(tmp_path / "edge", stream, window="6h"), env={})
    Collector(cfg).run_once()
    lake = Lake(str(tmp_path / "edge" / "lake"))
    first = lake.read("alerts", model="risk-model")
    # four drifted windows on 4 October, one firing row per feature (not one per window)
    assert sorted(first["feature"]) == ["age", "score", "ward"]
    assert set(first["state"]) == {"firing"} and set(first["rule"]) == {"drift:psi"}
    assert first["window_start"].dt.date().cast(pl.String).unique().to_list() == ["2026-10-04"]

    # a new process (as `edge once` is) remembers what fires: more drifted data, no new row
    _jsonl(logs, "2026-10-05.jsonl", pl.read_parquet(FIX / "inference" / "2026-10-05.parquet"))
    Collector(cfg).run_once()
    assert Lake(str(tmp_path / "edge" / "lake")).read("alerts").height == 3

    # 7 October looks like 3 October again: the drift clears, one resolved row per feature
    calm = pl.read_parquet(FIX / "inference" / "2026-10-03.parquet").with_columns(
        pl.col("timestamp") + timedelta(days=4)
    )
    _jsonl(logs, "2026-10-07.jsonl", calm)
    Collector(cfg).run_once()
    alerts = Lake(str(tmp_path / "edge" / "lake")).read("alerts").sort("raised_at", "feature")
    resolved = alerts.filter(pl.col("state") == "resolved")
    assert sorted(resolved["feature"]) == ["age", "score", "ward"]
    assert resolved["window_start"].dt.date().cast(pl.String).unique().to_list() == ["2026-10-07"]
    assert all(m.startswith("resolved: ") and "within threshold" in m for m in resolved["message"])
    assert (resolved["value"] <= resolved["threshold"]).all()
    assert alerts.height == 6


# -- latency: the answered attempt only; failures are not latencies ------------------------------
def test_probe_latency_is_the_answered_attempt_without_retries_and_backoff(server):
    flaky = server("--protocol", "oip_v2", "--fault", "flaky")  # 503, then 200, alternately
    settings = HttpSettings(timeout_s=2.0, retries=1, backoff_s=0.6, allow_http=True)
    ep = Endpoint(url=flaky.url, protocol="oip_v2", model_name="risk", settings=settings)
    with make_client(settings) as client:
        t0 = time.monotonic()
        r = probe(client, ep, ROW)
        wall_ms = (time.monotonic() - t0) * 1000
    assert r.ok and r.status_code == 200
    # the back-off after the 503 is at least 0.6 s * 0.5 (jitter): the probe took that long...
    assert wall_ms >= 300
    # ...but its latency is the answered attempt only
    assert r.latency_ms <= wall_ms - 300


def test_failed_probes_are_failures_not_latencies(tmp_path, server, monkeypatch):
    monkeypatch.setenv("MLMON_HMAC_KEY", KEY)
    hang = server(module="tests.edge.blackhole")
    cfg = load_config(
        _edge_yaml(tmp_path / "hang", _golden(hang.url, timeout="200ms", retries=1)), env={}
    )
    report = Collector(cfg).run_once()
    assert (report.golden_checks, report.golden_passed) == (20, 0)
    lake = Lake(str(tmp_path / "hang" / "lake"))
    golden = lake.read("golden", model="risk-model")
    assert golden["latency_ms"].null_count() == 20 and set(golden["error_kind"]) == {"timeout"}
    # no answer, no latency: nothing to take a p50 of (was ~600 ms of timeouts and back-off)
    assert lake.files("latency", model="risk-model") == []

    # half the probes answer (flaky, no retry): 10 latencies, 10 errors
    flaky = server("--protocol", "oip_v2", "--fault", "flaky")
    cfg = load_config(_edge_yaml(tmp_path / "flaky", _golden(flaky.url, retries=0)), env={})
    report = Collector(cfg).run_once()
    assert (report.golden_checks, report.golden_passed) == (20, 10)
    lake = Lake(str(tmp_path / "flaky" / "lake"))
    golden = lake.read("golden", model="risk-model")
    answered = golden.filter(pl.col("passed"))
    assert answered["latency_ms"].null_count() == 0
    assert golden.filter(~pl.col("passed"))["latency_ms"].null_count() == 10
    lat = lake.read("latency", model="risk-model").filter(pl.col("source") == "probe")
    assert (int(lat["count"].sum()), int(lat["errors"].sum())) == (10, 10)
    assert float(lat["max"].max()) == pytest.approx(float(answered["latency_ms"].max()))


# -- SIGTERM ------------------------------------------------------------------------------------
def test_sigterm_aborts_in_flight_probes_of_edge_run_within_the_bound(tmp_path, server):
    hang = server(module="tests.edge.blackhole")
    # default timeout (5 s) and retries (2): 20 samples would take more than 5 minutes
    model = _golden(hang.url)
    del model["endpoint"]["timeout"], model["endpoint"]["retries"]
    cfg = _edge_yaml(tmp_path / "edge", model, metrics_port=_free_port())
    proc = _spawn("run", cfg)
    try:
        _read_until(hang, "accepted")  # a probe is in flight
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGTERM)
        t0 = time.monotonic()
        proc.wait(timeout=SHUTDOWN_DEADLINE_S + 20)
        elapsed = time.monotonic() - t0
        print(f"SIGTERM to exit: {elapsed:.2f} s")
    finally:
        _stop(proc)
    stderr = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 0, stderr[-3000:]  # a clean stop, not the deadline's cut-off
    assert elapsed < SHUTDOWN_DEADLINE_S, elapsed
    assert "task abandoned: stopping" in stderr
    lake = Lake(str(tmp_path / "edge" / "lake"))
    assert lake.files("golden", model="risk-model") == []  # an unfinished run is not written


def test_sigterm_stops_edge_once_mid_probe_with_exit_143(tmp_path, server):
    hang = server(module="tests.edge.blackhole")
    model = _golden(hang.url)
    del model["endpoint"]["timeout"], model["endpoint"]["retries"]
    proc = _spawn("once", _edge_yaml(tmp_path / "edge", model))
    try:
        _read_until(hang, "accepted")
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGTERM)
        t0 = time.monotonic()
        out, err = proc.communicate(timeout=SHUTDOWN_DEADLINE_S + 20)
        elapsed = time.monotonic() - t0
        print(f"SIGTERM to exit: {elapsed:.2f} s")
    finally:
        _stop(proc)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert elapsed < SHUTDOWN_DEADLINE_S, elapsed
    summary = json.loads(out.splitlines()[-1])
    assert summary["stopped"] is True and summary["golden_checks"] == 0


def test_a_hanging_bucket_is_cut_off_at_the_shutdown_deadline(tmp_path, server):
    ok = server("--protocol", "oip_v2")
    bucket = server(module="tests.edge.blackhole")  # every PUT hangs (botocore waits 60 s)
    lake = {"uri": f"s3://{BUCKET}/lake", "sse_kms_key_id": KMS,
            "storage_options": {"endpoint_url": bucket.url, "client_kwargs": {"region_name": "us-east-1"},
                                "config_kwargs": {"retries": {"max_attempts": 1}}}}  # fmt: skip
    env = {**ENV, "AWS_ACCESS_KEY_ID": "ops", "AWS_SECRET_ACCESS_KEY": "ops-secret"}
    proc = _spawn("once", _edge_yaml(tmp_path / "edge", _golden(ok.url), lake=lake), env)
    try:
        _read_until(bucket, "accepted")  # a PUT is in flight
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGTERM)
        t0 = time.monotonic()
        _, err = proc.communicate(timeout=SHUTDOWN_DEADLINE_S + 30)
        elapsed = time.monotonic() - t0
        print(f"SIGTERM to exit: {elapsed:.2f} s")
    finally:
        _stop(proc)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "exiting now: shutdown deadline passed" in err
    # the documented bound, plus a little for a loaded machine (never the 60 s of the PUT)
    assert SHUTDOWN_DEADLINE_S - 1 <= elapsed < SHUTDOWN_DEADLINE_S + 5, elapsed

"""Bucket outages do not stall the edge: bounded attempts, a circuit breaker, exit code 3,
/healthz reasons, and nothing lost or doubled once the bucket is back.

Real components on 127.0.0.1, each stopped by its own pid: the moto S3 server with IAM enforced
(``s3_server``; the edge has the shipped PutObject-only policy), ``tests.edge.tcpproxy`` in front
of it (the network path to the bucket: stopping it takes the bucket away, objects and users
stay), ``tests.edge.blackhole`` on the proxy's port (a bucket that accepts and never answers),
demo model servers, and real ``mlmon edge once`` / ``edge run`` processes.
"""

from __future__ import annotations

import io
import json
import os
import re
import selectors
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import polars as pl

from mlmon.edge.lifecycle import EXIT_LAKE, SHUTDOWN_DEADLINE_S
from tests.edge.servers import RunningServer
from tests.edge.test_operations import (
    ENV,
    FIX,
    ROOT,
    _edge_yaml,
    _free_port,
    _gauge,
    _golden,
    _once,
    _poll,
    _reference,
    _stop,
)
from tests.s3server import BUCKET, MotoServer

KMS = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
# short bounds so the tests do not wait on time-outs; the defaults are 3 s, 15 s, 2 attempts
FAST = {"connect_timeout": "1s", "read_timeout": "1s", "attempts": 2,
        "retry_min": "1s", "retry_max": "2s"}  # fmt: skip


def _accepted(server: RunningServer, quiet_s: float = 0.5) -> int:
    """How many connections the blackhole has accepted so far (its last ``accepted N`` line)."""
    assert server.proc.stdout is not None
    fd = server.proc.stdout.fileno()
    text = ""
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while sel.select(timeout=quiet_s):
            chunk = os.read(fd, 65536).decode()
            if not chunk:
                break
            text += chunk
    counts = re.findall(r"^accepted (\d+)$", text, re.M)
    server.seen = int(counts[-1]) if counts else getattr(server, "seen", 0)  # type: ignore[attr-defined]
    return int(server.seen)  # type: ignore[attr-defined]


def small_golden(folder: Path, n: int = 5) -> Path:
    """The first ``n`` samples of the fixture golden set: shorter runs, same checks."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"golden-{n}.jsonl"
    lines = (FIX / "golden.jsonl").read_text().splitlines()[:n]
    path.write_text("\n".join(lines) + "\n")
    return path


def _audit(log: Path) -> list[dict[str, Any]]:
    """The audit records the edge logged (one JSON line each, logger ``mlmon.audit``)."""
    out = []
    for line in log.read_text().splitlines():
        if line.startswith("{") and '"mlmon.audit"' in line:
            out.append(json.loads(line)["audit"])
    return out


def test_edge_once_with_a_hanging_bucket_tries_once_spools_the_rest_and_exits_3(
    tmp_path, model_server
):
    ok = model_server("--protocol", "oip_v2")
    hole = model_server(module="tests.edge.blackhole")
    lake = {"uri": f"s3://{BUCKET}/lake", "sse_kms_key_id": KMS, **FAST,
            "storage_options": {"endpoint_url": hole.url,
                                "client_kwargs": {"region_name": "us-east-1"}}}  # fmt: skip
    env = {**ENV, "AWS_ACCESS_KEY_ID": "ops", "AWS_SECRET_ACCESS_KEY": "ops-secret"}
    code, out = _once(
        _edge_yaml(tmp_path / "edge", _golden(ok.url, small_golden(tmp_path)), lake=lake), env
    )
    assert code == EXIT_LAKE == out["exit_code"] == 3, out
    assert out["golden_failed"] == [] and out["errors"] == []
    spooled = sorted((tmp_path / "edge" / "state" / "spool").glob("*.bin"))
    assert len(spooled) == out["spooled_objects"] >= 5
    # the first PUT tried twice (attempts: 2) and opened the breaker; every later object went to
    # the spool without a connection; the end of the cycle tried the bucket once more (2 attempts)
    assert _accepted(hole) == 4


def test_edge_run_keeps_golden_schedules_through_an_outage_and_loses_nothing(
    tmp_path, model_server, s3_server: MotoServer
):
    prefix = s3_server.unique_prefix()
    key, secret = s3_server.credentials("edge", prefix)
    proxy = model_server("--to", f"127.0.0.1:{s3_server.port}", module="tests.edge.tcpproxy")
    s3_port = int(proxy.url.rsplit(":", 1)[1])
    urls = {}
    models = []
    for name in ("risk-a", "risk-b"):  # two models: neither stalls the other
        srv = model_server("--protocol", "oip_v2")
        urls[srv.url] = name
        models.append({"name": name, "reference": str(_reference(tmp_path)),
                       **_golden(srv.url, small_golden(tmp_path), every="1s")})  # fmt: skip
    metrics_port = _free_port()
    cfg = {
        "collector_id": "edge-outage", "state_dir": str(tmp_path / "state"), "window": "1h",
        "hmac_key": {"env": "MLMON_HMAC_KEY"}, "allow_http": True,
        "metrics": {"host": "127.0.0.1", "port": metrics_port}, "models": models,
        "lake": {"uri": f"s3://{BUCKET}/{prefix}", "sse_kms_key_id": KMS, **FAST,
                 "storage_options": {"endpoint_url": proxy.url,
                                     "client_kwargs": {"region_name": "us-east-1"}}},
    }  # fmt: skip
    path = tmp_path / "edge.yaml"
    path.write_text(json.dumps(cfg))
    env = {**ENV, "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}
    log = tmp_path / "edge.log"
    base = f"http://127.0.0.1:{metrics_port}"

    def probes(metrics: str, model: str) -> float:
        return sum(
            _gauge(metrics, "mlmon_edge_probes_total", model=model, outcome=r) or 0.0
            for r in ("passed", "failed")
        )

    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlmon.cli", "edge", "run", "--config", str(path)],
            env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
    try:
        _poll(f"{base}/metrics", lambda r: all(probes(r.text, m) >= 5 for m in urls.values()))
        _poll(f"{base}/healthz", lambda r: r.json() == {"status": "ok", "reasons": []})

        # the bucket goes away: refused first, then it hangs (accepts, never answers)
        proxy.stop()
        hole = model_server("--port", str(s3_port), module="tests.edge.blackhole")
        reason = _poll(
            f"{base}/healthz",
            lambda r: next((x for x in r.json()["reasons"] if x.startswith("lake: ")), None),
        )
        assert re.match(
            r"lake: lake unreachable since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ, \d+ objects \(\d+ "
            r"bytes\) spooled; next attempt in \d+ s; last error: LakeUnreachable",
            reason,
        ), reason
        before = {m: probes(httpx.get(f"{base}/metrics").text, m) for m in urls.values()}
        # golden probes of both models keep their 1 s schedule while the bucket hangs: ten
        # more runs each (with writes that waited on the bucket, one run took 2+ s per object)
        metrics = _poll(
            f"{base}/metrics",
            lambda r: all(probes(r.text, m) >= before[m] + 50 for m in urls.values()) and r.text,
        )
        down = httpx.get(f"{base}/healthz").json()
        assert any(x.startswith("lake: lake unreachable since") for x in down["reasons"]), down
        spooled = _gauge(metrics, "mlmon_edge_buffer_objects")
        assert spooled is not None and spooled >= 20
        # the objects went to the spool without a connection each: only the breaker's probes
        assert _accepted(hole) < spooled / 2

        # the bucket comes back: the spool drains, /healthz is ok again
        hole.stop()
        model_server("--to", f"127.0.0.1:{s3_server.port}", "--port", str(s3_port),
                     module="tests.edge.tcpproxy")  # fmt: skip
        _poll(
            f"{base}/healthz",
            lambda r: r.json() == {"status": "ok", "reasons": []},
            timeout=120,
        )
        _poll(f"{base}/metrics", lambda r: _gauge(r.text, "mlmon_edge_buffer_objects") == 0.0)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=SHUTDOWN_DEADLINE_S + 5)
        finally:
            _stop(proc)
    assert proc.returncode == 0, log.read_text()[-3000:]

    # exact counts: every golden run the edge recorded is in the bucket once, with its rows
    records = _audit(log)
    runs: dict[str, int] = {}
    checks: dict[str, int] = {}
    for r in records:
        if r["action"] == "endpoint_probed":
            model = urls[r["target"]]
            runs[model] = runs.get(model, 0) + 1
            checks[model] = checks.get(model, 0) + r["details"]["checks"]
    written = {r["target"] for r in records if r["action"] == "object_written"}
    s3 = s3_server.boto3_client("admin")
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    leftover = [
        json.loads(p.read_text())["path"] for p in (tmp_path / "state" / "spool").glob("*.json")
    ]
    assert not written - {f"{BUCKET}/{k}" for k in keys} - set(leftover)
    for model in urls.values():
        golden = [k for k in keys if f"/golden/model={model}/" in k]
        assert len(golden) == runs[model] >= 11, (model, len(golden), runs[model])
        frames = [
            pl.read_parquet(io.BytesIO(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read()))
            for k in golden
        ]
        rows = pl.concat(frames)
        assert rows.height == checks[model] == 5 * runs[model]
        assert rows.unique(["checked_at", "sample_id_hmac"]).height == rows.height  # no doubles
    # and every object is SSE-KMS encrypted with the configured key
    for k in keys:
        head = s3.head_object(Bucket=BUCKET, Key=k)
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", KMS), k

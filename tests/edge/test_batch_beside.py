"""A batch wait runs beside the other tasks, and SIGTERM ends it (issue 18 item 4).

Real ``mlmon edge run``/``edge once`` processes, the demo model server (a real local
model server answering the golden probes) and, as the only stand-in, the loopback
Kubernetes API server of ``tests/edge/test_batch.py`` (no cluster is available here):
its Job never finishes, like a long batch run (the shipped ``timeout`` is 1 h).

Before: the batch wait blocked every other task (no golden probe fired while a Job
ran), ``/healthz`` said nothing of it, and the manifests' grace period was the only
bound on SIGTERM. The grace period asserted here is the one the manifests set.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlmon.analysis.lake import Lake
from mlmon.edge.lifecycle import EXIT_OK
from tests.edge.servers import start_server
from tests.edge.test_batch import BASE, _kube_api, _Service
from tests.edge.test_operations import (
    _edge_yaml,
    _free_port,
    _golden,
    _poll,
    _spawn,
    _stop,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def model_url() -> Any:
    """The demo model server (OIP v2) on 127.0.0.1, stopped by its pid after the test."""
    srv = start_server(["--protocol", "oip_v2"], "mlmon.demo.model_server")
    yield srv.url
    srv.stop()


def _grace(manifest: str, *path: str) -> int:
    """``terminationGracePeriodSeconds`` of the pod spec in ``deploy/k8s/base/<manifest>``."""
    doc: Any = yaml.safe_load((ROOT / "deploy" / "k8s" / "base" / manifest).read_text())
    for key in path:
        doc = doc[key]
    return int(doc["spec"]["terminationGracePeriodSeconds"])


def _wait_for(check: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not seen within {timeout:g} s")


def _model(model_url: str, api_url: str) -> dict[str, Any]:
    batch = {"kind": "kubernetes", "schedule": "every 1h", "api_url": api_url,
             "namespace": "models", "cronjob": "golden-batch"}  # fmt: skip
    return {**_golden(model_url, every="1s"), "batch": batch}


def _created(svc: Any) -> str:
    [job] = [b for m, p, b, _ in svc.requests if m == "POST" and p == f"{BASE}/jobs"]
    return str(job["metadata"]["name"])


def _posted(svc: Any) -> bool:
    return any(m == "POST" and p == f"{BASE}/jobs" for m, p, _, _ in list(svc.requests))


def test_golden_probes_keep_firing_while_a_batch_job_runs_and_sigterm_ends_the_wait(
    tmp_path, model_url
):
    grace = _grace("deployment.yaml", "spec", "template")
    port = _free_port()
    with _Service(_kube_api({}, polls_before_end=10**9)) as api:
        cfg = _edge_yaml(tmp_path / "edge", _model(model_url, api.url), metrics_port=port)
        proc = _spawn("run", cfg)
        try:
            _wait_for(lambda: _posted(api), "the Job created")
            lake = Lake(str(tmp_path / "edge" / "lake"))
            before = len(lake.files("golden", model="risk-model"))
            # the Job runs on (it never ends here); golden runs keep their 1 s schedule
            _wait_for(lambda: len(lake.files("golden", model="risk-model")) >= before + 2,
                      "golden runs during the batch wait")  # fmt: skip
            health = _poll(f"http://127.0.0.1:{port}/healthz",
                           lambda r: r.json() if r.json().get("running") else None)  # fmt: skip
            assert health["running"][0].startswith(
                "risk-model/batch: batch job of models/cronjobs/golden-batch running since "
            ), health
            assert not any("batch" in reason for reason in health["reasons"]), health
            assert proc.poll() is None
            os.kill(proc.pid, signal.SIGTERM)
            _, err = proc.communicate(timeout=grace)  # within the manifests' grace period
        finally:
            _stop(proc)
    assert proc.returncode == EXIT_OK, err[-3000:]  # a clean stop, not the deadline's cut-off
    with pytest.raises(ProcessLookupError):
        os.kill(proc.pid, 0)
    # the abandoned wait is a record (kept on the state volume until the next start flushes it)
    audit_dir = tmp_path / "edge" / "state" / "audit"
    head = json.loads((audit_dir / "audit-head-edge-ops.json").read_text())
    journal = (audit_dir / "audit-open-edge-ops.jsonl").read_text().splitlines()
    opened = head["open"] + [json.loads(line) for line in journal]
    [rec] = [r for r in opened if r["action"] == "batch_triggered"]
    assert (rec["target"], rec["outcome"]) == ("models/cronjobs/golden-batch", "stopped")
    assert rec["details"]["job"] == _created(api) and rec["details"]["duration_s"] > 0


def test_sigterm_during_the_batch_wait_of_edge_once_exits_143(tmp_path, model_url):
    grace = _grace("cronjob-edge-once.yaml", "spec", "jobTemplate", "spec", "template")
    with _Service(_kube_api({}, polls_before_end=10**9)) as api:
        proc = _spawn("once", _edge_yaml(tmp_path / "edge", _model(model_url, api.url)))
        try:
            _wait_for(lambda: _posted(api), "the Job created")
            os.kill(proc.pid, signal.SIGTERM)
            out, err = proc.communicate(timeout=grace)
        finally:
            _stop(proc)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    with pytest.raises(ProcessLookupError):
        os.kill(proc.pid, 0)
    summary = json.loads(out.splitlines()[-1])
    assert summary["stopped"] is True and summary["golden_checks"] > 0  # probes ran beside it
    [rec] = [r for f in sorted((tmp_path / "edge" / "lake" / "audit").rglob("*.jsonl"))
             for r in map(json.loads, f.read_text().splitlines())
             if r.get("action") == "batch_triggered"]  # fmt: skip
    assert (rec["target"], rec["outcome"]) == ("models/cronjobs/golden-batch", "stopped")
    assert rec["details"]["job"] == _created(api)
    assert rec["details"]["reason"] == "wait abandoned: stopping"

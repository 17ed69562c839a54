"""Batch triggers against real HTTP services on 127.0.0.1.

No Kubernetes cluster exists here: the Kubernetes adapter is tested against a
loopback HTTP server that implements the Kubernetes API contract for exactly
the endpoints it may use (GET one CronJob, POST a Job, GET that Job), and the
test asserts that nothing else is requested.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlmon.edge.batch import HttpJobAdapter, KubernetesJobAdapter
from mlmon.edge.http import HttpSettings

LOOPBACK = HttpSettings(timeout_s=2, retries=0, allow_http=True)


class _Service:
    def __init__(self, handler_factory):
        self.requests: list[tuple[str, str, dict | None]] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_factory(self))
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(routes):
    def factory(service):
        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                return

            def _go(self, method):
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n)) if n else None
                service.requests.append((method, self.path, body))
                code, answer = routes(service, method, self.path, body)
                data = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._go("GET")

            def do_POST(self):
                self._go("POST")

            def do_DELETE(self):
                self._go("DELETE")

        return H

    return factory


@pytest.mark.parametrize(("final", "expected"), [("SUCCEEDED", "succeeded"), ("FAILED", "failed")])
def test_http_job_service(final, expected):
    polls = {"n": 0}

    def routes(svc, method, path, body):
        if method == "POST" and path == "/jobs/golden-run":
            return 201, {"job": {"id": "j-17"}}
        if method == "GET" and path == "/jobs/j-17":
            polls["n"] += 1
            state = "RUNNING" if polls["n"] < 3 else final
            return 200, {
                "state": {"phase": state},
                "outputs": {"uri": "s3://bucket/golden/out.parquet"},
            }
        return 404, {}

    with _Service(_handler(routes)) as svc:
        adapter = HttpJobAdapter(
            f"{svc.url}/jobs/golden-run", f"{svc.url}/jobs/{{job_id}}", status_path="state.phase",
            job_id_path="job.id", outputs_path="outputs.uri", poll_interval_s=0.01, settings=LOOPBACK,
            success=("succeeded",), failure=("failed",),
        )  # fmt: skip
        run = adapter.trigger_and_wait()
    assert run.status == expected and run.job_id == "j-17"
    if expected == "succeeded":
        assert run.outputs_location == "s3://bucket/golden/out.parquet"
    assert [m for m, _, _ in svc.requests] == ["POST", "GET", "GET", "GET"]


def test_http_job_service_down_or_slow_is_reported_not_raised():
    run = HttpJobAdapter(
        "http://127.0.0.1:9/t", "http://127.0.0.1:9/{job_id}", settings=LOOPBACK
    ).trigger_and_wait()
    assert run.status == "error" and "trigger failed" in run.error

    def routes(svc, method, path, body):
        return (201, {"id": "x"}) if method == "POST" else (200, {"status": "running"})

    with _Service(_handler(routes)) as svc:
        run = HttpJobAdapter(f"{svc.url}/t", f"{svc.url}/{{job_id}}", poll_interval_s=0.01, timeout_s=0.2,
                             settings=LOOPBACK).trigger_and_wait()  # fmt: skip
    assert run.status == "timeout"


CRONJOB = {
    "apiVersion": "batch/v1",
    "kind": "CronJob",
    "metadata": {"name": "golden-batch", "namespace": "models", "uid": "3f1c-uid"},
    "spec": {
        "schedule": "0 2 * * *",
        "jobTemplate": {
            "metadata": {"labels": {"app": "risk-batch"}},
            "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
                     "containers": [{"name": "batch", "image": "registry.local/risk-batch:1.4"}]}}},
        },
    },
}  # fmt: skip


def test_kubernetes_adapter_follows_the_api_contract_and_touches_nothing_else():
    state = {"polls": 0}

    def routes(svc, method, path, body):
        base = "/apis/batch/v1/namespaces/models"
        if method == "GET" and path == f"{base}/cronjobs/golden-batch":
            return 200, CRONJOB
        if method == "POST" and path == f"{base}/jobs":
            return 201, {**body, "metadata": {**body["metadata"], "uid": "job-uid"}}
        if method == "GET" and path.startswith(f"{base}/jobs/golden-batch-mlmon-"):
            state["polls"] += 1
            return 200, {"status": {"active": 1} if state["polls"] < 2 else {"succeeded": 1}}
        return 403, {"kind": "Status", "reason": "Forbidden"}

    with _Service(_handler(routes)) as svc:
        k8s = KubernetesJobAdapter(
            "models", "golden-batch", api_url=svc.url, poll_interval_s=0.01, settings=LOOPBACK
        )
        run = k8s.trigger_and_wait(now=datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    assert run.status == "succeeded" and run.job_id == "golden-batch-mlmon-20261123080000"
    methods_paths = [(m, p) for m, p, _ in svc.requests]
    assert methods_paths[0] == ("GET", "/apis/batch/v1/namespaces/models/cronjobs/golden-batch")
    assert methods_paths[1] == ("POST", "/apis/batch/v1/namespaces/models/jobs")
    assert all(m == "GET" and p.endswith(run.job_id) for m, p in methods_paths[2:])
    job = svc.requests[1][2]
    assert job["kind"] == "Job" and job["spec"] == CRONJOB["spec"]["jobTemplate"]["spec"]
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "CronJob",
        "golden-batch",
        "3f1c-uid",
        True,
    )
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert job["metadata"]["labels"] == {"app": "risk-batch"}

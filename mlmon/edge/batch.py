"""Trigger the ONE designated batch job for golden runs, and wait for it.

Two adapters, each able to start exactly one configured job and read its
status, and nothing else:

* :class:`HttpJobAdapter`: a job service with a trigger URL (POST) and a poll
  URL (``{job_id}`` filled in), a dotted status path in the answers, and the
  values meaning success or failure.
* :class:`KubernetesJobAdapter`: creates a Job from one named CronJob's
  ``spec.jobTemplate`` in one namespace, as ``kubectl create job --from=cronjob/NAME``
  does, and polls that Job. The Role in ``deploy/`` allows ``get`` on that
  CronJob and ``create``/``get`` on Jobs; the adapter never lists or touches
  other Jobs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from mlmon.edge.http import HttpSettings, check_url, make_client, request_with_retries
from mlmon.edge.protocols import extract
from mlmon.errors import EdgeError

__all__ = ["BatchRun", "HttpJobAdapter", "KubernetesJobAdapter", "adapter_from_config"]


@dataclass(frozen=True)
class BatchRun:
    job_id: str | None
    status: str  # succeeded | failed | timeout | error
    duration_s: float
    outputs_location: str | None = None
    error: str | None = None


@dataclass
class HttpJobAdapter:
    trigger_url: str
    poll_url: str
    status_path: str = "status"
    job_id_path: str = "id"
    outputs_path: str | None = None
    success: tuple[str, ...] = ("succeeded", "success", "completed", "done")
    failure: tuple[str, ...] = ("failed", "error", "cancelled")
    poll_interval_s: float = 2.0
    timeout_s: float = 3600.0
    settings: HttpSettings = field(default_factory=HttpSettings)

    def trigger_and_wait(self) -> BatchRun:
        """Start the job, poll until it ends or times out; never raises for job trouble."""
        t0 = time.monotonic()
        check_url(self.trigger_url, self.settings, "batch trigger_url")
        check_url(self.poll_url, self.settings, "batch poll_url")
        with make_client(self.settings) as client:
            try:
                r = request_with_retries(client, "POST", self.trigger_url, self.settings)
                r.raise_for_status()
                job_id = str(extract(r.json(), self.job_id_path))
            except (httpx.HTTPError, ValueError, EdgeError) as exc:
                return BatchRun(
                    None,
                    "error",
                    time.monotonic() - t0,
                    error=f"trigger failed: {type(exc).__name__}",
                )
            url = self.poll_url.replace("{job_id}", job_id)
            while True:
                try:
                    r = request_with_retries(client, "GET", url, self.settings)
                    r.raise_for_status()
                    body = r.json()
                    status = str(extract(body, self.status_path)).lower()
                except (httpx.HTTPError, ValueError, EdgeError) as exc:
                    return BatchRun(
                        job_id,
                        "error",
                        time.monotonic() - t0,
                        error=f"poll failed: {type(exc).__name__}",
                    )
                if status in self.success or status in self.failure:
                    outputs = None
                    if self.outputs_path:
                        try:
                            outputs = str(extract(body, self.outputs_path))
                        except EdgeError:
                            outputs = None
                    ok = status in self.success
                    return BatchRun(
                        job_id, "succeeded" if ok else "failed", time.monotonic() - t0, outputs
                    )
                if time.monotonic() - t0 > self.timeout_s:
                    return BatchRun(job_id, "timeout", time.monotonic() - t0)
                time.sleep(self.poll_interval_s)


@dataclass
class KubernetesJobAdapter:
    """Create a Job from one CronJob template (``kubectl create job --from=cronjob/NAME``)."""

    namespace: str
    cronjob: str
    api_url: str = "https://kubernetes.default.svc"
    poll_interval_s: float = 5.0
    timeout_s: float = 3600.0
    settings: HttpSettings = field(default_factory=HttpSettings)

    @property
    def _base(self) -> str:
        return f"{self.api_url.rstrip('/')}/apis/batch/v1/namespaces/{self.namespace}"

    def job_from_cronjob(self, cronjob: dict[str, Any], now: datetime) -> dict[str, Any]:
        """The Job body: the CronJob's jobTemplate, owned by the CronJob, marked as manual."""
        template = cronjob["spec"]["jobTemplate"]
        meta = cronjob["metadata"]
        name = f"{self.cronjob}-mlmon-{now.strftime('%Y%m%d%H%M%S')}"[:63]
        labels = dict(template.get("metadata", {}).get("labels", {}))
        annotations = dict(template.get("metadata", {}).get("annotations", {}))
        annotations["cronjob.kubernetes.io/instantiate"] = "manual"
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "CronJob",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": template["spec"],
        }

    def trigger_and_wait(self, now: datetime | None = None) -> BatchRun:
        t0 = time.monotonic()
        check_url(self.api_url, self.settings, "kubernetes api_url")
        with make_client(self.settings) as client:
            try:
                r = request_with_retries(
                    client, "GET", f"{self._base}/cronjobs/{self.cronjob}", self.settings
                )
                r.raise_for_status()
                body = self.job_from_cronjob(r.json(), now or datetime.now(UTC))
                r = request_with_retries(
                    client, "POST", f"{self._base}/jobs", self.settings, json=body
                )
                r.raise_for_status()
                job = r.json()["metadata"]["name"]
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                return BatchRun(
                    None,
                    "error",
                    time.monotonic() - t0,
                    error=f"create failed: {type(exc).__name__}",
                )
            while True:
                try:
                    r = request_with_retries(
                        client, "GET", f"{self._base}/jobs/{job}", self.settings
                    )
                    r.raise_for_status()
                    status = r.json().get("status", {})
                except (httpx.HTTPError, ValueError) as exc:
                    return BatchRun(
                        job,
                        "error",
                        time.monotonic() - t0,
                        error=f"poll failed: {type(exc).__name__}",
                    )
                if status.get("succeeded"):
                    return BatchRun(job, "succeeded", time.monotonic() - t0)
                if status.get("failed") and not status.get("active"):
                    return BatchRun(job, "failed", time.monotonic() - t0)
                if time.monotonic() - t0 > self.timeout_s:
                    return BatchRun(job, "timeout", time.monotonic() - t0)
                time.sleep(self.poll_interval_s)


def adapter_from_config(
    cfg: Any, *, allow_http: bool = False
) -> HttpJobAdapter | KubernetesJobAdapter:
    """Build the adapter of a :class:`~mlmon.edge.config.BatchConfig`."""
    timeout = cfg.timeout.total_seconds()
    if cfg.kind == "http":
        return HttpJobAdapter(
            trigger_url=cfg.trigger_url, poll_url=cfg.poll_url, status_path=cfg.status_path,
            outputs_path=cfg.outputs_path, timeout_s=timeout, settings=HttpSettings(allow_http=allow_http),
        )  # fmt: skip
    token_file = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    ca_file = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
    from pathlib import Path

    token = Path(token_file).read_text().strip() if Path(token_file).exists() else None
    ca = Path(ca_file) if Path(ca_file).exists() else None
    return KubernetesJobAdapter(
        namespace=cfg.namespace, cronjob=cfg.cronjob, api_url=cfg.api_url, timeout_s=timeout,
        settings=HttpSettings(ca_bundle=ca, bearer_token=token, allow_http=allow_http),
    )  # fmt: skip

"""Edge observability: Prometheus metrics, ``/metrics`` and ``/healthz``, JSON log lines.

``GET /healthz`` answers JSON ``{"status": ..., "reasons": [...]}``:

===========  ====  ==================================================================
status       HTTP  meaning
===========  ====  ==================================================================
ok           200   every task's last run succeeded and nothing waits in the spool
degraded     200   the collector runs, but something it depends on is in trouble:
                   an endpoint that did not answer, a bucket that did not take the
                   objects (they wait in the spool), a task that failed; one reason
                   per component (``risk-model/golden: ...``, ``lake: ...``)
unhealthy    503   the collector itself is broken (restarting it may help)
===========  ====  ==================================================================

While a batch job runs (it runs beside the other tasks), the answer also has
``"running": ["risk-model/batch: batch job of models/cronjobs/risk-batch running
since ..."]``; a running job is not a reason to be degraded, a failed one is.

Degraded answers 200 on purpose: Kubernetes' liveness probe reads ``/healthz``,
and restarting the collector does not bring a model endpoint or a bucket back.
Alert on ``status`` or on ``mlmon_edge_degraded`` instead.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from mlmon.edge.serve import HttpServer, ServeSettings, respond, unauthorized

__all__ = ["EdgeMetrics", "JsonFormatter", "MetricsServer"]


class EdgeMetrics:
    """The collector's metrics, in a registry of its own (no global state)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.probes = Counter(
            "mlmon_edge_probes", "Golden-sample probes sent.", ["model", "outcome"], registry=r
        )
        self.probe_failures = Counter(
            "mlmon_edge_probe_failures",
            "Failed probes by error kind.",
            ["model", "error_kind"],
            registry=r,
        )
        self.records = Counter(
            "mlmon_edge_records", "Inference records profiled.", ["model", "source"], registry=r
        )
        self.bad_records = Counter(
            "mlmon_edge_bad_records",
            "Records skipped, by reason (content never logged).",
            ["model", "reason"],
            registry=r,
        )
        self.windows = Counter(
            "mlmon_edge_windows_written", "Windows written to the lake.", ["model"], registry=r
        )
        self.objects = Counter(
            "mlmon_edge_objects_written", "Objects PUT to the lake.", ["table"], registry=r
        )
        self.batch_runs = Counter(
            "mlmon_edge_batch_runs", "Batch jobs triggered.", ["model", "status"], registry=r
        )
        self.buffer_bytes = Gauge(
            "mlmon_edge_buffer_bytes", "Bytes waiting in the spool.", registry=r
        )
        self.buffer_objects = Gauge(
            "mlmon_edge_buffer_objects", "Objects waiting in the spool.", registry=r
        )
        self.buffer_dropped = Gauge(
            "mlmon_edge_buffer_dropped", "Objects refused by a full spool.", registry=r
        )
        self.prediction_store_bytes = Gauge(
            "mlmon_edge_prediction_store_bytes",
            "Disk used by the local prediction store for delayed labels.",
            ["model"],
            registry=r,
        )
        self.labels = Counter(
            "mlmon_edge_labels",
            "Label records by outcome (matched, late, unknown_id, duplicate_in_batch, ...).",
            ["model", "outcome"],
            registry=r,
        )
        self.samples_rows = Counter(
            "mlmon_edge_samples_rows",
            "Opt-in de-identified sample rows by outcome (written, suppressed, capped).",
            ["model", "outcome"],
            registry=r,
        )
        self.last_success = Gauge(
            "mlmon_edge_last_success_timestamp_seconds",
            "Last successful run of a task: no error, every probe answered, all it wrote in the lake.",
            ["model", "task"],
            registry=r,
        )
        self.degraded = Gauge(
            "mlmon_edge_degraded",
            "1 while a component (model/task, or lake) is in trouble; /healthz says why.",
            ["component"],
            registry=r,
        )
        self.alerts_firing = Gauge(
            "mlmon_edge_alerts_firing", "Alerts firing now.", ["model", "rule"], registry=r
        )
        self.started = time.time()
        self.healthy = True
        self._problems: dict[str, str] = {}
        self._activities: dict[str, str] = {}
        self._lock = threading.Lock()

    def set_activity(self, component: str, activity: str | None) -> None:
        """Record what ``component`` is busy with now, for /healthz's ``running`` (None: done)."""
        with self._lock:
            if activity is None:
                self._activities.pop(component, None)
            else:
                self._activities[component] = activity

    def set_problem(self, component: str, problem: str | None) -> None:
        """Record what is wrong with ``component`` now (None: nothing, it recovered)."""
        with self._lock:
            if problem is None:
                self._problems.pop(component, None)
            else:
                self._problems[component] = problem
        self.degraded.labels(component).set(0 if problem is None else 1)

    def health(self) -> dict[str, Any]:
        """The body of ``/healthz``: status ``ok``, ``degraded`` or ``unhealthy``, and the reasons."""
        with self._lock:
            reasons = [f"{c}: {p}" for c, p in sorted(self._problems.items())]
            running = [f"{c}: {a}" for c, a in sorted(self._activities.items())]
        status = "unhealthy" if not self.healthy else "degraded" if reasons else "ok"
        doc: dict[str, Any] = {"status": status, "reasons": reasons}
        if running:
            doc["running"] = running
        return doc

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """``GET /metrics`` (Prometheus text) and ``GET /healthz``, served by uvicorn.

    On a loopback port by default. With a bearer token configured, ``/metrics``
    needs it (401 otherwise) and ``/healthz`` without it answers its status
    code and ``{"status": ...}`` only (the reasons name endpoints and buckets);
    a Kubernetes probe then reads the status code. TLS, client certificates and
    the bounds of :class:`~mlmon.edge.serve.ServeSettings` apply to both paths.
    """

    def __init__(
        self,
        metrics: EdgeMetrics,
        host: str = "127.0.0.1",
        port: int = 9108,
        settings: ServeSettings | None = None,
    ) -> None:
        self.metrics = metrics
        self.settings = settings if settings is not None else ServeSettings(host=host, port=port)
        self.server = HttpServer(self, self.settings, "metrics")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """The ASGI application."""
        if scope["type"] != "http":
            return
        authorized = self.settings.authorized(scope)
        path = scope["path"]
        if scope["method"] not in ("GET", "HEAD"):
            await respond(send, 405, b"GET only\n")
        elif path == "/healthz":
            health = self.metrics.health()
            code = 503 if health["status"] == "unhealthy" else 200
            doc = health if authorized else {"status": health["status"]}
            await respond(send, code, json.dumps(doc).encode(), b"application/json")
        elif not authorized:
            await unauthorized(send)
        elif path == "/metrics":
            await respond(send, 200, self.metrics.exposition(), CONTENT_TYPE_LATEST.encode())
        else:
            await respond(send, 404, b"not found\n")

    @property
    def port(self) -> int:
        return self.server.port

    def start(self) -> MetricsServer:
        """Start serving; raises EdgeError when the address or the TLS files are unusable."""
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message and any ``extra=`` fields."""

    _STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for k, v in vars(record).items():
            if k not in self._STANDARD and not k.startswith("_"):
                out[k] = v
        if record.exc_info and record.exc_info[0] is not None:
            out["error"] = record.exc_info[0].__name__
        return json.dumps(out, default=str)

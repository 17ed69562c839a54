"""Edge observability: Prometheus metrics, ``/metrics`` and ``/healthz``, JSON log lines."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

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
            "Last successful run of a task.",
            ["model", "task"],
            registry=r,
        )
        self.started = time.time()
        self.healthy = True

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """``GET /metrics`` (Prometheus text) and ``GET /healthz`` on a loopback port by default."""

    def __init__(self, metrics: EdgeMetrics, host: str = "127.0.0.1", port: int = 9108) -> None:
        self.metrics = metrics
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    body, ctype, code = outer.metrics.exposition(), CONTENT_TYPE_LATEST, 200
                elif self.path == "/healthz":
                    ok = outer.metrics.healthy
                    body = json.dumps({"status": "ok" if ok else "unhealthy"}).encode()
                    ctype, code = "application/json", 200 if ok else 503
                else:
                    body, ctype, code = b"not found\n", "text/plain", 404
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # no access log noise
                return

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="mlmon-metrics", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


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

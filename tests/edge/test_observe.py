"""/metrics and /healthz over real HTTP on 127.0.0.1; JSON log lines."""

from __future__ import annotations

import json
import logging

import httpx

from mlmon.edge.observe import EdgeMetrics, JsonFormatter, MetricsServer


def test_metrics_and_health_endpoints():
    m = EdgeMetrics()
    m.records.labels("risk-model", "stream").inc(42)
    m.buffer_bytes.set(1234)
    server = MetricsServer(m, "127.0.0.1", 0).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        text = httpx.get(f"{base}/metrics").text
        assert 'mlmon_edge_records_total{model="risk-model",source="stream"} 42.0' in text
        assert "mlmon_edge_buffer_bytes 1234.0" in text
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok", "reasons": []}
        # degraded: still 200 (a restart would not bring an endpoint back), with the reasons
        m.set_problem("risk-model/golden", "endpoint https://m unreachable")
        m.set_problem("lake", "bucket unreachable: 3 objects wait in the spool")
        r = httpx.get(f"{base}/healthz")
        assert r.status_code == 200
        assert r.json() == {
            "status": "degraded",
            "reasons": [
                "lake: bucket unreachable: 3 objects wait in the spool",
                "risk-model/golden: endpoint https://m unreachable",
            ],
        }
        assert 'mlmon_edge_degraded{component="lake"} 1.0' in httpx.get(f"{base}/metrics").text
        m.set_problem("lake", None)
        m.set_problem("risk-model/golden", None)
        assert httpx.get(f"{base}/healthz").json()["status"] == "ok"
        assert 'mlmon_edge_degraded{component="lake"} 0.0' in httpx.get(f"{base}/metrics").text
        m.healthy = False
        assert httpx.get(f"{base}/healthz").status_code == 503
        assert httpx.get(f"{base}/healthz").json()["status"] == "unhealthy"
        assert httpx.get(f"{base}/nope").status_code == 404
    finally:
        server.stop()


def test_json_log_lines_carry_extra_fields():
    rec = logging.LogRecord(
        "mlmon.edge", logging.WARNING, __file__, 1, "alert %s", ("drift:psi",), None
    )
    rec.model = "risk-model"
    line = json.loads(JsonFormatter().format(rec))
    assert (
        line["message"] == "alert drift:psi"
        and line["model"] == "risk-model"
        and line["level"] == "warning"
    )
    assert line["time"].endswith("+00:00")

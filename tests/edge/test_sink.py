"""The CloudEvents sink over real HTTP on 127.0.0.1: binary and structured mode, joins, refusals."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

import httpx
import polars as pl
import pytest

from mlmon.edge.sink import CloudEventSink

SECRET = b"k" * 32


@pytest.fixture
def sink():
    got: list[pl.DataFrame] = []
    lock = threading.Lock()

    def collect(frame):
        with lock:
            got.append(frame)

    s = CloudEventSink(
        ["age", "ward"], SECRET, collect, flush_seconds=0.05, max_body_bytes=10_000
    ).start()
    s.got = got
    yield s
    s.stop()


def _binary(client, url, eid, kind, body, t):
    return client.post(url, content=json.dumps(body), headers={
        "ce-id": eid, "ce-type": f"org.kubeflow.serving.inference.{kind}", "ce-specversion": "1.0",
        "ce-source": "http://risk-predictor", "ce-time": t, "content-type": "application/json"})  # fmt: skip


def _wait_rows(sink, n, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(f.height for f in sink.got) >= n:
            return pl.concat(sink.got)
        time.sleep(0.02)
    raise AssertionError(f"expected {n} rows, got {sum(f.height for f in sink.got)}")


def test_binary_and_structured_events_are_joined(sink, caplog):
    url = f"http://127.0.0.1:{sink.port}/"
    with httpx.Client() as c, caplog.at_level(logging.DEBUG):
        r = _binary(
            c,
            url,
            "MRN-0042",
            "request",
            {"instances": [{"age": 71, "ward": "ICU"}]},
            "2026-10-01T10:00:00Z",
        )
        assert r.status_code == 202
        r = _binary(
            c, url, "MRN-0042", "response", {"predictions": [0.7]}, "2026-10-01T10:00:00.040Z"
        )
        assert r.status_code == 202
        for kind, data in (("request", {"inputs": [{"name": "age", "shape": [1], "datatype": "FP64", "data": [50]},
                                                    {"name": "ward", "shape": [1], "datatype": "BYTES", "data": ["ED"]}]}),
                           ("response", {"model_version": "7", "outputs": [{"name": "p", "shape": [1], "datatype": "FP64", "data": [0.2]}]})):  # fmt: skip
            event = {"specversion": "1.0", "id": "ev-2", "type": f"org.kubeflow.serving.inference.{kind}",
                     "source": "x", "time": "2026-10-01T10:00:01Z", "data": data}  # fmt: skip
            r = c.post(
                url,
                content=json.dumps(event),
                headers={"content-type": "application/cloudevents+json"},
            )
            assert r.status_code == 202
    df = _wait_rows(sink, 2).sort("age")
    assert df["age"].to_list() == [50, 71]
    assert df["prediction"].to_list() == [0.2, 0.7]
    assert df["latency_ms"][1] == pytest.approx(40.0)
    assert df["model_version"][0] == "7"
    assert "MRN-0042" not in df.write_csv() and "MRN-0042" not in caplog.text


def test_malformed_oversized_and_chunked_are_refused(sink):
    url = f"http://127.0.0.1:{sink.port}/"
    with httpx.Client() as c:
        assert (
            c.post(
                url, content=b"{nope", headers={"ce-id": "1", "ce-type": "x.request"}
            ).status_code
            == 400
        )
        assert (
            c.post(url, content=b"{}", headers={"content-type": "application/json"}).status_code
            == 400
        )
        assert (
            c.post(
                url, content=b"x" * 20_000, headers={"ce-id": "2", "ce-type": "x.request"}
            ).status_code
            == 413
        )
    with socket.create_connection(("127.0.0.1", sink.port)) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 411")
    assert sink.bad_records["bad_json"] == 2


def test_sustains_many_events_and_counts_all(sink):
    """A short loopback burst (the throughput benchmark is benchmarks/bench_sink.py)."""
    n = 2000
    req = json.dumps({"instances": [{"age": 60, "ward": "ED"}]}).encode()
    resp = json.dumps({"predictions": [0.5]}).encode()
    payload = b""
    for i in range(n):
        for kind, body in ((b"request", req), (b"response", resp)):
            payload += (b"POST / HTTP/1.1\r\nHost: x\r\nce-id: e%d\r\nce-type: org.kubeflow.serving.inference.%s\r\n"
                        b"ce-time: 2026-10-01T10:00:00Z\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                        % (i, kind, len(body))) + body  # fmt: skip
    with socket.create_connection(("127.0.0.1", sink.port)) as s:
        s.sendall(payload)
        s.settimeout(10)
        got = b""
        while got.count(b"202 Accepted") < 2 * n:
            chunk = s.recv(1 << 16)
            assert chunk, "connection closed early"
            got += chunk
    assert _wait_rows(sink, n).height == n
    assert sink.events == 2 * n

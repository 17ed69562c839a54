"""The CloudEvents sink over real HTTP on 127.0.0.1: binary and structured mode, joins, refusals."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import polars as pl
import pytest

from mlmon.edge.checkpoint import StreamState
from mlmon.edge.sink import CloudEventSink, into_states
from mlmon.governance.deid import hmac_id
from mlmon.profiles.frame import build_reference
from mlmon.profiles.schema import FeatureSpec, Schema

SECRET = b"k" * 32
CANARIES = ["MRN-0042", "jane.doe@example.org", "Jane Doe"]


@pytest.fixture(scope="module")
def reference():
    rng = np.random.default_rng(0)
    base = pl.DataFrame({"age": rng.normal(60, 10, 500), "ward": rng.choice(["ED", "ICU"], 500)})
    return build_reference(
        base, Schema([FeatureSpec("age", "numeric"), FeatureSpec("ward", "categorical")]), k=1
    )


class Collected:
    def __init__(self) -> None:
        self.frames: list[tuple[str, pl.DataFrame]] = []
        self.lock = threading.Lock()

    def __call__(self, model: str, frame: pl.DataFrame) -> None:
        with self.lock:
            self.frames.append((model, frame))

    def rows(self, model: str | None = None) -> pl.DataFrame:
        with self.lock:
            got = [f for m, f in self.frames if model is None or m == model]
        return pl.concat(got) if got else pl.DataFrame()


@pytest.fixture
def sink(reference):
    got = Collected()
    s = CloudEventSink(
        {"risk": reference}, SECRET, got, flush_seconds=0.05, max_body_bytes=10_000
    ).start()
    s.got = got
    yield s
    s.stop()


def _binary(client, url, eid, kind, body, t, **headers):
    return client.post(url, content=json.dumps(body), headers={
        "ce-id": eid, "ce-type": f"org.kubeflow.serving.inference.{kind}", "ce-specversion": "1.0",
        "ce-source": "http://risk-predictor", "ce-time": t, "content-type": "application/json",
        **headers})  # fmt: skip


def _structured(client, url, eid, kind, data, t="2026-10-01T10:00:01Z"):
    event = {"specversion": "1.0", "id": eid, "type": f"org.kubeflow.serving.inference.{kind}",
             "source": "x", "time": t, "data": data}  # fmt: skip
    return client.post(
        url, content=json.dumps(event), headers={"content-type": "application/cloudevents+json"}
    )


def test_binary_and_structured_events_are_joined(sink, caplog):
    url = f"http://127.0.0.1:{sink.port}/"
    v2_req = {"inputs": [{"name": "age", "shape": [1], "datatype": "FP64", "data": [50]},
                         {"name": "ward", "shape": [1], "datatype": "BYTES", "data": ["ED"]}]}  # fmt: skip
    v2_resp = {"model_name": "risk", "model_version": "7",
               "outputs": [{"name": "p", "shape": [1], "datatype": "FP64", "data": [0.2]}]}  # fmt: skip
    with httpx.Client() as c, caplog.at_level(logging.DEBUG):
        r = _binary(c, url, "MRN-0042", "request", {"instances": [{"age": 71, "ward": "ICU", "name": "Jane Doe"}]},
                    "2026-10-01T10:00:00Z", **{"ce-inferenceservicename": "risk"})  # fmt: skip
        assert r.status_code == 202
        r = _binary(
            c, url, "MRN-0042", "response", {"predictions": [0.7]}, "2026-10-01T10:00:00.040Z"
        )
        assert r.status_code == 202
        assert _structured(c, url, "ev-2", "response", v2_resp).status_code == 202  # response first
        assert _structured(c, url, "ev-2", "request", v2_req).status_code == 202
    sink.flush()
    df = sink.got.rows("risk").sort("age")
    assert df["age"].to_list() == [50.0, 71.0]
    assert df["ward"].to_list() == ["ED", "ICU"]
    assert df["prediction"].to_list() == pytest.approx([0.2, 0.7])
    assert df["latency_ms"].to_list() == pytest.approx([0.0, 40.0])
    assert df["model_version"].to_list() == ["7", None]
    assert df["timestamp"].to_list()[1] == datetime(2026, 10, 1, 10, tzinfo=UTC)
    assert df["request_id_hmac"].to_list()[1] == hmac_id(SECRET, "MRN-0042")
    assert "name" not in df.columns
    assert sink.counters()["events"] == 4 and sink.counters()["pending"] == 0
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert not any(c in text for c in CANARIES)


def test_malformed_events_answer_400_and_are_counted_never_logged(sink, caplog):
    url = f"http://127.0.0.1:{sink.port}/"
    with httpx.Client() as c, caplog.at_level(logging.DEBUG):
        bad_json = c.post(url, content=b"{MRN-0042", headers={"ce-id": "a", "ce-type": "org.kubeflow.serving.inference.request"})  # fmt: skip
        no_id = c.post(
            url, content=b"{}", headers={"ce-type": "org.kubeflow.serving.inference.request"}
        )
        structured = c.post(url, content=b"[jane.doe@example.org", headers={"content-type": "application/cloudevents+json"})  # fmt: skip
        naive = _binary(c, url, "n", "request", {"instances": [[1, "ED"]]}, "2026-10-01T10:00:00")
        ping = _binary(c, url, "p", "ping", {}, "2026-10-01T10:00:00Z")
        assert (
            _binary(
                c, url, "w", "request", {"instances": [[1, 2, 3]]}, "2026-10-01T10:00:00Z"
            ).status_code
            == 202
        )
        wrong = _binary(c, url, "w", "response", {"predictions": [1]}, "2026-10-01T10:00:00Z")
        get = c.get(url)
    answers = (bad_json, no_id, structured, naive, ping, wrong)
    assert [r.status_code for r in answers] == [400] * 6
    assert [r.json()["error"] for r in answers] == ["bad_json", "missing_field", "bad_json",
                                                   "naive_timestamp", "unknown_event_type",
                                                   "bad_tensor"]  # fmt: skip
    assert "ce-time" in naive.json()["detail"] and "ce-id" in no_id.json()["detail"]
    assert not any(c in r.text for r in answers for c in CANARIES)  # the field, never the content
    assert get.status_code == 404
    assert dict(sink.bad_records) == {"bad_json": 2, "missing_field": 1, "naive_timestamp": 1,
                                      "unknown_event_type": 1, "bad_tensor": 1}  # fmt: skip
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert not any(c in text for c in CANARIES)


def test_too_large_body_gets_413_and_no_length_gets_411(sink):
    url = f"http://127.0.0.1:{sink.port}/"
    with httpx.Client() as c:
        r = c.post(url, content=b"x" * 20_000, headers={"ce-id": "big", "ce-type": "org.kubeflow.serving.inference.request"})  # fmt: skip
    assert r.status_code == 413
    with socket.create_connection(("127.0.0.1", sink.port), timeout=5) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        assert s.recv(1024).startswith(b"HTTP/1.1 411")
    assert sink.bad_records["too_large"] == 1


def test_unmatched_requests_expire_and_models_are_routed(reference, tmp_path):
    got = Collected()
    states = {
        m: StreamState(reference, tmp_path / m, window=timedelta(hours=1)) for m in ("a", "b")
    }
    into = into_states(states)

    def both(model, frame):
        into(model, frame)
        got(model, frame)

    with CloudEventSink({"a": reference, "b": ["age", "ward"]}, SECRET, both,
                        flush_seconds=0.05, pending_seconds=0.2) as s, httpx.Client() as c:  # fmt: skip
        url = f"http://127.0.0.1:{s.port}/"
        for model, eid in (("a", "1"), ("b", "2")):
            for kind, body in (
                ("request", {"instances": [[60, "ED"]]}),
                ("response", {"predictions": [0.5]}),
            ):
                r = _binary(
                    c,
                    url,
                    eid,
                    kind,
                    body,
                    "2026-10-01T10:00:00Z",
                    **{"ce-inferenceservicename": model},
                )
                assert r.status_code == 202
        r = _binary(c, url, "3", "request", {"instances": [[60, "ED"]]}, "2026-10-01T10:00:00Z",
                    **{"ce-inferenceservicename": "unknown"})  # fmt: skip
        assert r.status_code == 400
        assert _binary(c, url, "4", "request", {"instances": [[60, "ED"]]}, "2026-10-01T10:00:00Z",
                       **{"ce-inferenceservicename": "a"}).status_code == 202  # fmt: skip
        deadline = time.monotonic() + 5
        while s.bad_records["unmatched"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        s.flush()
        assert s.bad_records["unmatched"] == 1 and s.bad_records["unknown_model"] == 1
    assert got.rows("a").height == 1 and got.rows("b").height == 1
    assert states["a"].open_windows[0].profile.rows == 1


def test_throughput_every_event_sent_is_counted(reference):
    """A short bounded load (the full benchmark is benchmarks/bench_sink.py)."""
    got = Collected()
    n_conn, batch, rounds = 2, 200, 10
    with CloudEventSink({"risk": reference}, SECRET, got, batch_rows=2000) as s:

        def client(conn: int) -> None:
            with socket.create_connection(("127.0.0.1", s.port), timeout=30) as sock:
                for k in range(rounds):
                    out = []
                    for i in range(batch):
                        eid = f"c{conn}-{k}-{i}".encode()
                        for kind, body in ((b"request", b'{"instances": [[61.5, "ED"]]}'),
                                           (b"response", b'{"predictions": [0.25]}')):  # fmt: skip
                            out.append(
                                b"POST / HTTP/1.1\r\nHost: x\r\nce-id: %s\r\nce-specversion: 1.0\r\n"
                                b"ce-type: org.kubeflow.serving.inference.%s\r\nce-time: 2026-10-01T10:00:00Z\r\n"
                                b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                                % (eid, kind, len(body), body)
                            )  # fmt: skip
                    sock.sendall(b"".join(out))
                    answers = b""
                    while answers.count(b"\r\n\r\n") < 2 * batch:
                        chunk = sock.recv(1 << 16)
                        assert chunk, "sink closed the connection"
                        answers += chunk
                    assert answers.count(b" 202 ") == 2 * batch

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client, args=(c,)) for c in range(n_conn)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        s.flush()
        elapsed = time.perf_counter() - t0
    sent = n_conn * batch * rounds
    assert got.rows().height == sent
    assert s.counters()["events"] == 2 * sent and s.counters()["pending"] == 0
    print(f"sink: {2 * sent / elapsed:,.0f} CloudEvents/s ({sent / elapsed:,.0f} inferences/s)")


def test_the_write_ahead_log_holds_features_and_predictions_only(reference, tmp_path):
    """What waits on disk is the HMAC of the id and the model's fields: no other payload field."""
    got = Collected()
    wal = tmp_path / "wal"
    with CloudEventSink({"risk": reference}, SECRET, got, wal_dir=wal) as s, httpx.Client() as c:
        url = f"http://127.0.0.1:{s.port}/"
        req = {"instances": [{"age": 71, "ward": "ICU", "name": "Jane Doe", "mail": "jane.doe@example.org"}]}  # fmt: skip
        assert (
            _binary(c, url, "MRN-0042", "request", req, "2026-10-01T10:00:00Z").status_code == 202
        )
        resp = {"predictions": [0.7], "id": "MRN-0042", "explanation": "Jane Doe, 71",
                "model_version": "Jane Doe's model"}  # fmt: skip
        assert (
            _binary(c, url, "MRN-0042", "response", resp, "2026-10-01T10:00:01Z").status_code == 202
        )
        text = b"".join(p.read_bytes() for p in wal.glob("wal-*.log")).decode()
    assert '"age":71' in text and '"predictions":[0.7]' in text
    assert hmac_id(SECRET, "MRN-0042") in text
    assert not any(c in text for c in CANARIES)
    assert "explanation" not in text and "mail" not in text
    assert got.rows("risk")["request_id_hmac"].to_list() == [hmac_id(SECRET, "MRN-0042")]
    assert got.rows("risk")["model_version"].to_list()[0].startswith("h:")  # HMACed, as in the lake

"""The sink and /metrics as a hostile network sees them: real TLS and real sockets on 127.0.0.1.

TLS with a throw-away CA (tests/edge/pki.py), client certificates, the bearer token, plain HTTP
to a TLS port, idle and trickling connections, hundreds of idle connections against the thread
count, and the config check that refuses an exposed listener without TLS and a credential.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import threading
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from mlmon.edge.config import load_config
from mlmon.edge.observe import EdgeMetrics, MetricsServer
from mlmon.edge.serve import ServeSettings
from mlmon.edge.sink import CloudEventSink
from mlmon.errors import ConfigError
from mlmon.profiles.frame import build_reference
from mlmon.profiles.schema import FeatureSpec, Schema
from tests.edge.pki import _cert, _write

SECRET = b"k" * 32
TOKEN = b"tok-" + b"9" * 28
HEADERS = {"ce-id": "e1", "ce-type": "org.kubeflow.serving.inference.request",
           "ce-specversion": "1.0", "ce-source": "t", "ce-time": "2026-10-01T10:00:00Z",
           "content-type": "application/json"}  # fmt: skip
BODY = json.dumps({"instances": [[61.0, "ED"]]})


@pytest.fixture(scope="module")
def reference():
    rng = np.random.default_rng(0)
    base = pl.DataFrame({"age": rng.normal(60, 10, 200), "ward": rng.choice(["ED", "ICU"], 200)})
    return build_reference(
        base, Schema([FeatureSpec("age", "numeric"), FeatureSpec("ward", "categorical")]), k=1
    )


def _stranger(folder: Path) -> tuple[Path, Path]:
    """A client certificate signed by a CA the server does not trust."""
    key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("stranger CA", key, ca=True)
    cli_key = ec.generate_private_key(ec.SECP256R1())
    cli = _cert("intruder", cli_key, ca, key, usage=[ExtendedKeyUsageOID.CLIENT_AUTH])
    cert, key_path = _write(folder, "stranger", cli, cli_key)
    assert key_path is not None
    return cert, key_path


def _ctx(ca: Path, cert: tuple[Path, Path] | None) -> ssl.SSLContext:
    """A client's TLS context: trust ``ca``, present ``cert`` (certificate, key) if given."""
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx


def _tls(pki, **kw) -> ServeSettings:
    return ServeSettings(
        tls_cert=pki.server_cert, tls_key=pki.server_key, client_ca=pki.ca, token=TOKEN, **kw
    )


def test_sink_over_tls_needs_a_client_certificate_and_the_token(pki, reference, tmp_path):
    got: list[pl.DataFrame] = []
    sink = CloudEventSink({"risk": reference}, SECRET, lambda m, df: got.append(df),
                          settings=_tls(pki), flush_seconds=0.05)  # fmt: skip
    url = None
    with sink:
        url = f"https://127.0.0.1:{sink.port}/"
        auth = {"authorization": "Bearer " + TOKEN.decode()}
        with httpx.Client(verify=_ctx(pki.ca, (pki.client_cert, pki.client_key))) as c:
            assert c.post(url, content=BODY, headers={**HEADERS, **auth}).status_code == 202
            no_token = c.post(url, content=BODY, headers={**HEADERS, "ce-id": "e2"})
            wrong = c.post(url, content=BODY, headers={**HEADERS, "ce-id": "e3",
                           "authorization": "Bearer " + "x" * len(TOKEN)})  # fmt: skip
            short = c.post(url, content=BODY, headers={**HEADERS, "ce-id": "e4",
                           "authorization": "Bearer x"})  # fmt: skip
            basic = c.post(url, content=BODY, headers={**HEADERS, "ce-id": "e5",
                           "authorization": "Basic " + TOKEN.decode()})  # fmt: skip
        for r in (no_token, wrong, short, basic):
            assert r.status_code == 401
            assert r.headers["www-authenticate"] == "Bearer"
            assert TOKEN.decode() not in r.text
        # no client certificate, or one from a CA the server does not trust: no answer at all
        stranger = _stranger(tmp_path)
        for cert in (None, stranger):
            with httpx.Client(verify=_ctx(pki.ca, cert)) as c, pytest.raises(httpx.TransportError):
                c.post(url, content=BODY, headers={**HEADERS, "ce-id": "e6", **auth})
        # plain HTTP to the TLS port: no answer either
        with httpx.Client() as c, pytest.raises(httpx.TransportError):
            c.post(url.replace("https", "http"), content=BODY, headers={**HEADERS, **auth})
        # a client that does not trust the server's CA refuses it
        distrust = _ctx(pki.other_ca, (pki.client_cert, pki.client_key))
        with httpx.Client(verify=distrust) as c, pytest.raises(httpx.ConnectError):
            c.post(url, content=BODY, headers={**HEADERS, **auth})
        assert sink.counters()["events"] == 1  # only the authenticated event got in
        assert sink.counters()["pending"] == 1


def test_a_tls_client_that_never_says_hello_is_cut_off_at_the_read_timeout(pki, reference):
    """asyncio's own TLS handshake timeout is 60 s; the listener's read timeout bounds it."""
    settings = _tls(pki, read_timeout_s=1.0, idle_timeout_s=1.0)
    sink = CloudEventSink({"risk": reference}, SECRET, lambda m, df: None, settings=settings)
    with sink, socket.create_connection(("127.0.0.1", sink.port), timeout=10) as sock:
        assert _closed_by_peer(sock)  # within 30 s, not 60


def test_metrics_over_tls_with_the_token_healthz_says_only_the_status_without_it(pki):
    metrics = EdgeMetrics()
    metrics.set_problem("lake", "bucket s3://secret-bucket-name unreachable")
    server = MetricsServer(metrics, settings=_tls(pki, port=0)).start()
    try:
        base = f"https://127.0.0.1:{server.port}"
        auth = {"authorization": "Bearer " + TOKEN.decode()}
        with httpx.Client(verify=_ctx(pki.ca, (pki.client_cert, pki.client_key))) as c:
            ok = c.get(f"{base}/metrics", headers=auth)
            assert ok.status_code == 200 and "mlmon_edge_degraded" in ok.text
            assert c.get(f"{base}/metrics").status_code == 401
            assert (
                c.get(f"{base}/metrics", headers={"authorization": "Bearer nope"}).status_code
                == 401
            )
            bare = c.get(f"{base}/healthz")
            assert bare.status_code == 200 and bare.json() == {"status": "degraded"}
            full = c.get(f"{base}/healthz", headers=auth).json()
            assert full["reasons"] == ["lake: bucket s3://secret-bucket-name unreachable"]
            assert c.get(f"{base}/nothing", headers=auth).status_code == 404
            assert c.post(f"{base}/metrics", headers=auth).status_code == 405
        with httpx.Client() as c, pytest.raises(httpx.TransportError):
            c.get(f"http://127.0.0.1:{server.port}/metrics", headers=auth)
    finally:
        server.stop()


def _os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _closed_by_peer(sock: socket.socket) -> bool:
    """True when the server closes the connection (read returns EOF or a reset)."""
    sock.settimeout(30)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_idle_connections_cost_no_thread_and_are_closed_after_the_idle_timeout(reference):
    """300 idle connections to the sink and 100 to /metrics: no new thread; all closed later."""
    settings = ServeSettings(idle_timeout_s=1.0, read_timeout_s=1.0)
    sink = CloudEventSink({"risk": reference}, SECRET, lambda m, df: None, settings=settings)
    server = MetricsServer(EdgeMetrics(), settings=settings)
    with sink:
        server.start()
        try:
            idle: list[socket.socket] = []
            py_before, os_before = threading.active_count(), _os_threads()
            for port, n in ((sink.port, 300), (server.port, 100)):
                idle += [
                    socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(n)
                ]
            # a request head that trickles in and never ends (slowloris)
            slow = socket.create_connection(("127.0.0.1", sink.port), timeout=10)
            slow.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")
            # still serving while they wait
            r = httpx.post(f"http://127.0.0.1:{sink.port}/", content=BODY, headers=HEADERS)
            assert r.status_code == 202
            assert httpx.get(f"http://127.0.0.1:{server.port}/healthz").status_code == 200
            assert threading.active_count() == py_before
            assert _os_threads() == os_before
            # a keep-alive connection that answered one request and then says nothing
            kept = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert kept.recv(4096).startswith(b"HTTP/1.1 200")
            for s in (*idle, slow, kept):
                assert _closed_by_peer(s)
                s.close()
        finally:
            server.stop()


def test_an_oversized_request_head_is_refused(reference):
    """A head that grows past max_header_bytes without ending is answered 400 and closed."""
    settings = ServeSettings(max_header_bytes=4096)
    with CloudEventSink({"risk": reference}, SECRET, lambda m, df: None, settings=settings) as s:
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nx-pad: " + b"p" * 6000)
            assert sock.recv(4096).startswith(b"HTTP/1.1 400")
            assert _closed_by_peer(sock)
        assert s.counters()["events"] == 0


def test_a_slow_body_gets_408_and_the_connection_cap_answers_503(reference):
    settings = ServeSettings(read_timeout_s=0.5, max_connections=5)
    with CloudEventSink({"risk": reference}, SECRET, lambda m, df: None, settings=settings) as s:
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"{" * 10)
            assert sock.recv(4096).startswith(b"HTTP/1.1 408")
            assert _closed_by_peer(sock)
        idle = [socket.create_connection(("127.0.0.1", s.port), timeout=10) for _ in range(5)]
        try:
            r = httpx.post(f"http://127.0.0.1:{s.port}/", content=BODY, headers=HEADERS)
            assert r.status_code == 503
        finally:
            for sock in idle:
                sock.close()
        assert s.counters()["events"] == 0


EDGE = """
collector_id: edge-1
lake: {uri: file:///tmp/lake}
hmac_key: {env: MLMON_HMAC_KEY}
state_dir: state
models:
  - name: risk-model
    reference: ref.parquet
"""


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ("metrics: {host: 0.0.0.0}", "metrics"),
        ("metrics: {host: 10.1.2.3, tls_cert: c.pem, tls_key: k.pem}", "metrics"),
        ("metrics: {host: 0.0.0.0, token: {file: t}}", "metrics"),
    ],
)
def test_an_exposed_metrics_listener_without_tls_and_a_credential_is_refused(
    tmp_path, section, field
):
    path = tmp_path / "edge.yaml"
    path.write_text(EDGE + section + "\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    msg = str(err.value)
    assert f"edge.yaml: {field}:" in msg and "allow_insecure_bind" in msg
    assert "not a loopback address" in msg


def test_an_exposed_sink_needs_tls_and_a_token_or_the_explicit_opt_out(tmp_path):
    path = tmp_path / "edge.yaml"
    path.write_text(EDGE + "    sink: {host: 0.0.0.0, tls_cert: c.pem, tls_key: k.pem}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    assert "models[0].sink:" in str(err.value) and "no bearer token (token)" in str(err.value)
    path.write_text(EDGE + "    sink: {host: 0.0.0.0, tls_cert: c.pem, tls_key: k.pem, token: {file: t}}\n"
                    "metrics: {host: 0.0.0.0, allow_insecure_bind: true}\n")  # fmt: skip
    cfg = load_config(path, env={})
    sink = cfg.models[0].sink
    assert sink is not None and sink.tls_cert == tmp_path / "c.pem"  # relative to the file
    assert sink.token is not None and sink.token.file == tmp_path / "t"
    assert cfg.metrics is not None and cfg.metrics.allow_insecure_bind
    path.write_text(EDGE + "    sink: {tls_key: k.pem}\n")
    with pytest.raises(ConfigError, match="tls_cert and tls_key go together"):
        load_config(path, env={})


def test_the_token_is_read_from_its_secret_file_and_never_shown(tmp_path, pki, reference):
    token_file = tmp_path / "token"
    token_file.write_bytes(TOKEN + b"\n")
    path = tmp_path / "edge.yaml"
    path.write_text(EDGE + f"metrics: {{tls_cert: {pki.server_cert}, tls_key: {pki.server_key}, "
                    f"token: {{file: {token_file}}}}}\n")  # fmt: skip
    cfg = load_config(path, env={})
    assert cfg.metrics is not None
    settings = cfg.metrics.serve_settings(0, "metrics")
    assert settings.token == TOKEN and TOKEN.decode() not in repr(settings)
    token_file.write_bytes(b"short")
    with pytest.raises(ConfigError, match="metrics: the bearer token is shorter") as err:
        cfg.metrics.serve_settings(0, "metrics")
    assert "short" not in str(err.value).replace("shorter", "")
    server = MetricsServer(EdgeMetrics(), settings=ServeSettings(tls_cert=pki.server_cert,
                                                                  tls_key=pki.ca))  # fmt: skip
    with pytest.raises(Exception, match="metrics cannot listen") as bad:
        server.start()
    assert isinstance(bad.value.__cause__, ssl.SSLError | OSError)


def test_the_collector_serves_its_sink_with_the_configured_tls_and_token(
    tmp_path, pki, reference, monkeypatch
):
    from mlmon.edge.collector import Collector
    from mlmon.lake.references import save_reference

    monkeypatch.setenv("MLMON_HMAC_KEY", "h" * 32)
    save_reference(reference, tmp_path / "ref.parquet")
    (tmp_path / "token").write_bytes(TOKEN)
    path = tmp_path / "edge.yaml"
    path.write_text(
        EDGE.replace("file:///tmp/lake", str(tmp_path / "lake"))
        + f"    sink: {{host: 0.0.0.0, port: 0, tls_cert: {pki.server_cert}, "
        f"tls_key: {pki.server_key}, token: {{file: token}}}}\n"
        "metrics: null\naudit: false\n"
    )
    collector = Collector(load_config(path, env={}))
    collector.start_sinks()
    try:
        sink = collector.sinks["risk-model"]
        url = f"https://127.0.0.1:{sink.port}/"
        with httpx.Client(verify=_ctx(pki.ca, None)) as c:
            ok = c.post(url, content=BODY, headers={**HEADERS, "authorization": "Bearer " + TOKEN.decode()})  # fmt: skip
            assert ok.status_code == 202
            assert c.post(url, content=BODY, headers=HEADERS).status_code == 401
        with httpx.Client() as c, pytest.raises(httpx.TransportError):
            c.post(url.replace("https", "http"), content=BODY, headers=HEADERS)
    finally:
        collector.stop_sinks()
    assert sink.counters()["events"] == 1

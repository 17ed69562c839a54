"""Real receivers on 127.0.0.1 for the alert tests, and a small lake written by the real writer.

- :class:`HttpReceiver`: a threaded HTTP server that records every request and answers with
  the status codes it is told (or holds a request until released);
- an SMTP server (aiosmtpd) with STARTTLS or implicit TLS and a throw-away CA;
- a real Alertmanager (Debian's ``prometheus-alertmanager``) per session, stopped by its pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import yaml

from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import Window, build_reference, profile_frame
from mlmon.profiles.schema import FeatureSpec, Schema
from tests.edge.pki import pki  # noqa: F401  (the fixture)

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
CANARY = "CANARY-7f3a-MRN-998877"
SCHEMA = Schema(features=(FeatureSpec("age", "numeric"),), latency="latency_ms", version=None)


# -- the lake ----------------------------------------------------------------------------
class LakeData:
    """Writes golden outcomes, windows (profiles + latency) into a real lake folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.writer = LakeWriter(str(root), collector_id="test-edge", day_rollups=False)
        rng = np.random.default_rng(22)
        base = pl.DataFrame({"age": rng.normal(50, 10, 4000), "latency_ms": rng.gamma(4, 20, 4000)})
        self.reference = build_reference(base, SCHEMA, model="risk-model")
        self._refs: set[str] = set()
        self.rng = rng
        self.n = 0

    def golden(
        self,
        model: str,
        end: datetime,
        passed: int,
        failed: int,
        kind: str = "connect",
        length: timedelta = timedelta(minutes=10),
    ):
        start = end - length
        n = passed + failed
        self.n += 1
        rows = pl.DataFrame(
            {
                "model_version": [CANARY] * n,
                "window_start": [start] * n,
                "window_end": [end] * n,
                "collector_id": ["test-edge"] * n,
                "checked_at": [end - timedelta(minutes=1)] * n,
                "sample_id_hmac": [f"{CANARY}-{i}" for i in range(n)],
                "passed": [True] * passed + [False] * failed,
                "error_kind": [None] * passed + [kind] * failed,
                "latency_ms": [12.5] * n,
                "status_code": [200] * passed + [None] * failed,
            },
            schema_overrides={
                "window_start": pl.Datetime("us", "UTC"),
                "window_end": pl.Datetime("us", "UTC"),
                "checked_at": pl.Datetime("us", "UTC"),
                "status_code": pl.Int32,
            },
        )
        self.writer.write_table("golden", model, rows, start, end, part=f"g{self.n}")

    def window(
        self, model: str, end: datetime, *, shift: float = 0.0, latency_scale: float = 20, n=800
    ):
        if model not in self._refs:
            self.writer.write_reference(model, self.reference)
            self._refs.add(model)
        frame = pl.DataFrame(
            {
                "age": self.rng.normal(50 + shift, 10, n),
                "latency_ms": self.rng.gamma(4, latency_scale, n),
            }
        )
        prof = profile_frame(frame, self.reference)
        self.n += 1
        w = Window(end - timedelta(hours=1), end, None, prof)
        self.writer.write_window(model, w, self.reference, part=f"w{self.n}")


@pytest.fixture
def lake(tmp_path: Path) -> LakeData:
    return LakeData(tmp_path / "lake")


def write_config(folder: Path, lake_root: Path, receivers: list[dict[str, Any]], **extra) -> Path:
    doc: dict[str, Any] = {
        "lake": str(lake_root),
        "state_dir": str(folder / "state"),
        "dashboard_url": "https://mlmon.example.org",
        "rules": {"golden": {"period": "1h", "min_pass_rate": 0.9}},
        "receivers": receivers,
        "retry": {"min": "30s", "max": "10m"},
        "timeout": "5s",
    }
    doc.update(extra)
    path = folder / "alerts.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


# -- an HTTP receiver ---------------------------------------------------------------------
@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    url: str
    requests: list[Request] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered in order, then 200
    hold: threading.Event | None = None  # when set: requests wait for it
    arrived: threading.Event = field(default_factory=threading.Event)

    def bodies(self, path: str | None = None) -> list[Any]:
        return [r.json() for r in self.requests if path is None or r.path == path]


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    state: dict[str, HttpReceiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            rec = state["r"]
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            rec.arrived.set()
            if rec.hold is not None:
                rec.hold.wait(30)
            rec.requests.append(Request(self.path, dict(self.headers.items()), body))
            status = rec.statuses.pop(0) if rec.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state["r"] = HttpReceiver(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["r"]
    finally:
        if state["r"].hold is not None:
            state["r"].hold.set()
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- SMTP (aiosmtpd) ----------------------------------------------------------------------
@dataclass
class Smtp:
    port: int
    messages: list[Any]
    ca: Path
    mode: str


@contextlib.contextmanager
def _smtp(mode: str, pki) -> Iterator[Smtp]:  # noqa: F811
    from aiosmtpd.controller import Controller

    messages: list[Any] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            messages.append((session.ssl is not None, envelope))
            return "250 OK"

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    port = free_port()
    if mode == "starttls":  # the server refuses mail before STARTTLS
        ctrl = Controller(
            Handler(), hostname="127.0.0.1", port=port, tls_context=ctx, require_starttls=True
        )
    else:
        ctrl = Controller(
            Handler(), hostname="127.0.0.1", port=port, ssl_context=ctx, server_hostname="127.0.0.1"
        )
    ctrl.start()
    try:
        yield Smtp(port, messages, pki.ca, mode)
    finally:
        ctrl.stop()


@pytest.fixture(params=["starttls", "tls"])
def smtp_server(request: pytest.FixtureRequest, pki) -> Iterator[Smtp]:  # noqa: F811
    with _smtp(request.param, pki) as s:
        yield s


@pytest.fixture
def smtp_starttls(pki) -> Iterator[Smtp]:  # noqa: F811
    with _smtp("starttls", pki) as s:
        yield s


# -- a real Alertmanager -----------------------------------------------------------------
@dataclass
class Alertmanager:
    url: str

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        q = "&".join(f"filter={k}%3D%22{v}%22" for k, v in filters.items())
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts?{q}", timeout=5) as resp:
            return json.loads(resp.read())


@pytest.fixture(scope="session")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alertmanager]:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        pytest.fail("prometheus-alertmanager is not installed; run scripts/bootstrap.sh as root")
    d = tmp_path_factory.mktemp("alertmanager")
    (d / "am.yml").write_text(
        yaml.safe_dump({"route": {"receiver": "null"}, "receivers": [{"name": "null"}]})
    )
    port, cport = free_port(), free_port()
    log = open(d / "am.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={d / 'am.yml'}",
            f"--storage.path={d / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            f"--cluster.advertise-address=127.0.0.1:{cport}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"alertmanager exited: {(d / 'am.log').read_text()[-2000:]}")
                time.sleep(0.1)
        else:
            pytest.fail("alertmanager did not become ready")
        yield Alertmanager(url)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()

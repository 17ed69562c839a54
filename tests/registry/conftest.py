"""A real MLflow tracking server with its model registry, behind a recording proxy.

``mlflow_server`` (session): ``mlflow server --app-name basic-auth`` on a sqlite
store on 127.0.0.1, started in its own process group and stopped by its pid
(its uvicorn child is in that group). The set-up writes through MLflow's own
client as the admin: model ``risk`` with versions 1 (tag
``mlmon.endpoint_version=1.0``, alias ``champion``) and 2 (tag ``2.0``, alias
``challenger``); users ``reader`` (default READ) and ``outsider`` (DENY on ``risk``).

``registry_url`` (per test): the URL of an in-process proxy in front of that
server that records every request; after the test it asserts that mlmon sent
only GETs (or MLflow's read-only search POSTs).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pytest

from mlmon.registry.mlflow_rest import READ_ONLY_POSTS, RegistryAuth
from tests.edge.servers import model_server
from tests.servers.real import FEATURES, FIX, Server, mlflow_serve, train, training_data

__all__ = ["model_server"]

ADMIN = ("admin", "admin-pass-1234")
READER = ("reader", "reader-pass-1234")
OUTSIDER = ("outsider", "outsider-pass-1234")
STARTUP_TIMEOUT_S = 90.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _mlflow_bin() -> str:
    exe = Path(sys.executable).with_name("mlflow")
    if not exe.exists():
        found = shutil.which("mlflow")
        if not found:
            raise RuntimeError("mlflow is not installed; `.venv/bin/pip install mlflow flask-wtf`")
        return found
    return str(exe)


@dataclass
class MlflowServer:
    url: str
    proc: subprocess.Popen[bytes]
    run_ids: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        """SIGTERM the server's process group (led by its own pid); SIGKILL after 10 s."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError):  # the uvicorn child shares the group
            os.killpg(self.proc.pid, signal.SIGKILL)


def _populate(url: str) -> dict[str, str]:
    from mlflow import MlflowClient
    from mlflow.server import get_app_client

    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = ADMIN
    try:
        client = MlflowClient(url)
        exp = client.create_experiment("risk-training")
        runs = {}
        client.create_registered_model("risk", tags={"team": "cardiology"})
        for n, endpoint_version, alias in (("1", "1.0", "champion"), ("2", "2.0", "challenger")):
            run = client.create_run(exp)
            runs[n] = run.info.run_id
            mv = client.create_model_version(
                "risk",
                source=f"runs:/{run.info.run_id}/model",
                run_id=run.info.run_id,
                tags={"mlmon.endpoint_version": endpoint_version},
            )
            assert mv.version == n
            client.set_registered_model_alias("risk", alias, n)
        client.create_registered_model("untagged")
        run = client.create_run(exp)
        runs["untagged-1"] = run.info.run_id
        client.create_model_version(
            "untagged", source=f"runs:/{run.info.run_id}/m", run_id=run.info.run_id
        )
        auth = get_app_client("basic-auth", tracking_uri=url)
        auth.create_user(*READER)
        auth.create_user(*OUTSIDER)
        auth.grant_user_permission(OUTSIDER[0], "registered_model", "risk", "DENY")
        return runs
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    root = tmp_path_factory.mktemp("mlflow")
    (root / "auth.ini").write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{root}/auth.db\n"
        f"admin_username = {ADMIN[0]}\nadmin_password = {ADMIN[1]}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "auth_cache_ttl_seconds = 300\n"  # else every request runs PBKDF2 (about 1 s here)
    )
    port = _free_port()
    env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_AUTH_CONFIG_PATH": str(root / "auth.ini"),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "mlmon-test-only",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen(
        [_mlflow_bin(), "server", "--app-name", "basic-auth",
         "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
         "--default-artifact-root", str(root / "artifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root, start_new_session=True,
    )  # fmt: skip
    server = MlflowServer(f"http://127.0.0.1:{port}", proc)
    try:
        import mlflow.server  # noqa: F401 (imported while the server starts, for _populate)

        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"mlflow server did not come up on port {port}:\n"
                    + (root / "server.log").read_text()[-3000:]
                )
            try:
                if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        server.run_ids = _populate(server.url)
        yield server
    finally:
        server.stop()
        log.close()


@dataclass
class RecordingProxy:
    """Forwards to the MLflow server and records ``(method, path, authorization)``."""

    target: str
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.httpd is not None
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> RecordingProxy:
        proxy = self
        host, port = self.target.removeprefix("http://").split(":")

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.requests.append(
                    (self.command, self.path.split("?", 1)[0], self.headers.get("Authorization"))
                )
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "content-length", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()

    def writes(self) -> list[tuple[str, str]]:
        """Requests that are neither GET nor an allowed read-only search POST."""
        return [
            (m, p)
            for m, p, _ in self.requests
            if not (m == "GET" or (m == "POST" and p in READ_ONLY_POSTS))
        ]


@pytest.fixture(scope="session")
def _proxy(mlflow_server: MlflowServer) -> Iterator[RecordingProxy]:
    proxy = RecordingProxy(mlflow_server.url).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def proxy(_proxy: RecordingProxy) -> Iterator[RecordingProxy]:
    """The recording proxy, emptied for this test; after it: no write request was sent."""
    _proxy.requests.clear()
    yield _proxy
    assert _proxy.writes() == [], f"mlmon sent write requests to the registry: {_proxy.writes()}"


@pytest.fixture
def registry_url(proxy: RecordingProxy) -> str:
    return proxy.url


@pytest.fixture
def reader_auth() -> RegistryAuth:
    return RegistryAuth(username=READER[0], password=READER[1])


# -- registered model ``clf``: three versions, each served by a real MLflow scoring server --------
# (session scope: the servers start once per run, on the worker of the xdist group
# "mlflow-registry"; tests/registry/test_served_versions.py and test_candidate.py share them)
def _other_model() -> object:
    """The same pipeline trained on another label: class 1 = score above its 70th percentile."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, _ = training_data()
    df = pl.read_parquet(FIX / "reference.parquet").drop_nulls(list(FEATURES))
    score = df["score"].to_numpy()
    y = (score > np.quantile(score, 0.7)).astype(int)
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)


@dataclass
class Served:
    endpoints: dict[str, Server]  # registered version -> its scoring server
    models: dict[str, object]


@pytest.fixture(scope="session")
def served(
    mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    import mlflow
    import mlflow.sklearn
    import sklearn
    from mlflow import MlflowClient

    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = ADMIN
    models = {"1": train(), "2": train(), "3": _other_model()}
    x, _ = training_data()
    example = pl.DataFrame(x[:2], schema=list(FEATURES), orient="row").to_pandas()
    try:
        mlflow.set_tracking_uri(mlflow_server.url)
        client = MlflowClient(mlflow_server.url)
        exp = client.create_experiment("clf-training")
        for version, model in models.items():
            with mlflow.start_run(experiment_id=exp):
                info = mlflow.sklearn.log_model(
                    model, name="model", registered_model_name="clf", input_example=example,
                    pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
                )  # fmt: skip
            assert str(info.registered_model_version) == version
        client.set_registered_model_alias("clf", "champion", "1")
    finally:
        mlflow.set_tracking_uri(None)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    env = {"MLFLOW_TRACKING_URI": mlflow_server.url, "MLFLOW_TRACKING_USERNAME": READER[0],
           "MLFLOW_TRACKING_PASSWORD": READER[1]}  # fmt: skip
    endpoints: dict[str, Server] = {}
    try:
        for version in models:  # launched together: their start-ups overlap
            folder = tmp_path_factory.mktemp(f"clf-{version}")
            endpoints[version] = mlflow_serve(
                f"models:/clf/{version}", folder, f"clf-{version}", env, wait=False
            )
        for server in endpoints.values():
            server.wait_ready()
        yield Served(endpoints, models)
    finally:
        for server in endpoints.values():
            server.stop()

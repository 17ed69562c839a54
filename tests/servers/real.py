"""The real model servers users run, on 127.0.0.1, each started once per test session.

=========  ===========================================  ==================================
fixture    server                                       environment
=========  ===========================================  ==================================
kserve     KServe's Python ModelServer (V1 and V2)      tests/servers/kserve/.venv
mlserver   MLServer + its scikit-learn runtime (V2)     tests/servers/mlserver/.venv
mlflow_*   ``mlflow models serve --env-manager local``  mlmon's own .venv (dev extras)
=========  ===========================================  ==================================

Each serves the same scikit-learn pipeline (:func:`train`), trained here on the
fixture data and saved with joblib (KServe, MLServer) or MLflow's sklearn flavour.
Every server is started in its own process group, waited for on its readiness URL
and stopped by its own pid at the end of the session. KServe and MLServer pin
packages that clash with mlmon's, so they live in their own locked environments
(``scripts/test-servers.sh``); when one is missing the fixture fails with the
command that creates it (never a skip).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "data" / "fixtures"
FEATURES = ("age", "bmi", "creatinine", "heart_rate")
STARTUP_TIMEOUT_S = 120.0
SETUP_COMMAND = "scripts/test-servers.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A started model server: its process (leader of its own group) and base URL."""

    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    ready_url: str = ""

    def wait_ready(self) -> Server:
        """Wait until ``ready_url`` answers 200; stop the server and fail with its log if it
        exits or is not ready within STARTUP_TIMEOUT_S."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"{self.name} did not become ready at {self.ready_url} within "
                    f"{STARTUP_TIMEOUT_S:g} s (exit code {self.proc.poll()}):\n"
                    f"{self.log.read_text()[-3000:]}"
                )
            try:
                if httpx.get(self.ready_url, timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)

    def stop(self) -> None:
        """SIGTERM the server's own process group (led by its pid); SIGKILL after 15 s."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError):  # children the server left in its group
            os.killpg(self.proc.pid, signal.SIGKILL)


def launch(name: str, cmd: list[str], ready_url: str, url: str, workdir: Path,
           env: dict[str, str] | None = None) -> Server:  # fmt: skip
    """Start ``cmd`` in its own session; :meth:`Server.wait_ready` waits for ``ready_url``.

    Launch several, then wait for each: their start-ups overlap."""
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True,
            env={**os.environ, **(env or {})},
        )  # fmt: skip
    return Server(name, url, proc, log, ready_url)


def start(name: str, cmd: list[str], ready_url: str, url: str, workdir: Path,
          env: dict[str, str] | None = None) -> Server:  # fmt: skip
    """Start ``cmd`` in its own session and wait until ``ready_url`` answers 200."""
    return launch(name, cmd, ready_url, url, workdir, env).wait_ready()


def server_python(server: str, exe: str = "python") -> Path:
    """The interpreter (or script) of a server's own environment; fails with the fix."""
    path = ROOT / "tests" / "servers" / server / ".venv" / "bin" / exe
    if not path.exists():
        pytest.fail(
            f"the {server} test environment is missing ({path} does not exist); create it with "
            f"`{SETUP_COMMAND}` (or `.uv/bin/uv sync --locked --project tests/servers/{server}`)",
            pytrace=False,
        )
    return path


# -- the model -----------------------------------------------------------------------------
def training_data() -> tuple[np.ndarray, np.ndarray]:
    df = pl.read_parquet(FIX / "reference.parquet").drop_nulls(list(FEATURES))
    x = df.select(FEATURES).to_numpy().astype(float)
    score = df["score"].to_numpy()
    return x, (score > np.median(score)).astype(int)


def train() -> object:
    """A scaler + logistic regression pipeline: class 1 = score above the median."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = training_data()
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)


@dataclass
class TrainedModel:
    model: object
    joblib_dir: Path  # model.joblib

    def predict(self, rows: list[dict[str, float]]) -> list[int]:
        x = np.array([[r[f] for f in FEATURES] for r in rows], dtype=float)
        return [int(v) for v in self.model.predict(x)]  # type: ignore[attr-defined]

    def proba1(self, rows: list[dict[str, float]]) -> list[float]:
        x = np.array([[r[f] for f in FEATURES] for r in rows], dtype=float)
        return [float(p[1]) for p in self.model.predict_proba(x)]  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    import joblib

    folder = tmp_path_factory.mktemp("sklearn-model")
    model = train()
    joblib.dump(model, folder / "model.joblib")
    return TrainedModel(model, folder)


def golden_rows(n: int = 8, seed: int = 11) -> list[dict[str, float]]:
    """Rows of the fixture data (both classes), as the golden set's inputs."""
    x, y = training_data()
    rng = np.random.default_rng(seed)
    idx = np.concatenate(
        [rng.choice(np.flatnonzero(y == 0), n // 2), rng.choice(np.flatnonzero(y == 1), n // 2)]
    )
    return [{f: float(v) for f, v in zip(FEATURES, x[i], strict=True)} for i in idx]


# -- the servers ---------------------------------------------------------------------------
def _launch_kserve(model: TrainedModel, folder: Path) -> Server:
    """KServe's ModelServer serving ``risk`` (V1 and V2) with ``predict``."""
    python = server_python("kserve")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [str(python), str(ROOT / "tests" / "servers" / "kserve" / "serve.py"),
           "--model_dir", str(model.joblib_dir), "--model_name", "risk",
           "--http_port", str(port)]  # fmt: skip
    return launch("kserve", cmd, f"{url}/v2/health/ready", url, folder)


def _launch_mlserver(model: TrainedModel, folder: Path) -> Server:
    """MLServer with ``mlserver_sklearn.SKLearnModel`` serving ``risk`` version ``7``."""
    exe = server_python("mlserver", "mlserver")
    shutil.copy(model.joblib_dir / "model.joblib", folder / "model.joblib")
    port = free_port()
    settings = {"host": "127.0.0.1", "http_port": port, "grpc_port": free_port(),
                "metrics_endpoint": None, "parallel_workers": 0}  # fmt: skip
    (folder / "settings.json").write_text(json.dumps(settings))
    spec = {"name": "risk", "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib", "version": "7"}}  # fmt: skip
    (folder / "model-settings.json").write_text(json.dumps(spec))
    url = f"http://127.0.0.1:{port}"
    return launch("mlserver", [str(exe), "start", str(folder)], f"{url}/v2/models/risk/ready",
                  url, folder)  # fmt: skip


def _launch_mlflow(model: TrainedModel, folder: Path, predict_fn: str) -> Server:
    name = "mlflow" if predict_fn == "predict" else "mlflow-proba"
    return mlflow_serve(
        save_mlflow_model(model.model, folder, predict_fn), folder, name, wait=False
    )


@pytest.fixture(scope="session")
def real_servers(
    trained_model: TrainedModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Server | str]]:
    """The four servers below, all launched on the first use of any (their start-ups overlap);
    each fixture waits for its own. A server that could not be launched (its environment is
    missing) holds the message its fixture fails with. All are stopped by their pids at the end."""
    launchers: dict[str, Callable[[Path], Server]] = {
        "kserve": lambda d: _launch_kserve(trained_model, d),
        "mlserver": lambda d: _launch_mlserver(trained_model, d),
        "mlflow-serve": lambda d: _launch_mlflow(trained_model, d, "predict"),
        "mlflow-proba": lambda d: _launch_mlflow(trained_model, d, "predict_proba"),
    }
    launched: dict[str, Server | str] = {}
    try:
        for name, launch_one in launchers.items():
            try:
                launched[name] = launch_one(tmp_path_factory.mktemp(name))
            except pytest.fail.Exception as exc:
                launched[name] = str(exc)
        yield launched
    finally:
        for server in launched.values():
            if isinstance(server, Server):
                server.stop()


def _ready(launched: dict[str, Server | str], name: str) -> Server:
    server = launched[name]
    if isinstance(server, str):
        pytest.fail(server, pytrace=False)
    return server.wait_ready()


@pytest.fixture(scope="session")
def kserve(real_servers: dict[str, Server | str]) -> Server:
    """KServe's ModelServer serving ``risk`` (V1 and V2) with ``predict``."""
    return _ready(real_servers, "kserve")


@pytest.fixture(scope="session")
def mlserver(real_servers: dict[str, Server | str]) -> Server:
    """MLServer with ``mlserver_sklearn.SKLearnModel`` serving ``risk`` version ``7``."""
    return _ready(real_servers, "mlserver")


@pytest.fixture(scope="session")
def mlflow_scoring(real_servers: dict[str, Server | str]) -> Server:
    """MLflow's scoring server of the pipeline (``predict``: class labels)."""
    return _ready(real_servers, "mlflow-serve")


@pytest.fixture(scope="session")
def mlflow_proba(real_servers: dict[str, Server | str]) -> Server:
    """MLflow's scoring server of the pipeline logged with ``pyfunc_predict_fn="predict_proba"``."""
    return _ready(real_servers, "mlflow-proba")


def mlflow_serve(
    model_uri: str | Path,
    workdir: Path,
    name: str = "mlflow",
    env: dict[str, str] | None = None,
    *,
    wait: bool = True,
) -> Server:
    """``mlflow models serve --env-manager local`` of a saved model (a folder or a
    ``models:/name/version`` URI, with ``MLFLOW_TRACKING_URI`` in ``env``), on 127.0.0.1
    (``wait=False``: launched only; call ``wait_ready()``)."""
    bindir = Path(sys.executable).parent
    exe = bindir / "mlflow"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [str(exe), "models", "serve", "-m", str(model_uri), "--env-manager", "local",
           "-h", "127.0.0.1", "-p", str(port), "--workers", "1"]  # fmt: skip
    # the scoring server execs uvicorn from PATH: the venv's bin must be on it
    env = {"PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(env or {})}  # fmt: skip
    server = launch(name, cmd, f"{url}/ping", url, workdir, env)
    return server.wait_ready() if wait else server


def save_mlflow_model(model: object, folder: Path, predict_fn: str = "predict") -> Path:
    import mlflow.sklearn
    import sklearn

    x, _ = training_data()
    path = folder / f"model-{predict_fn}"
    example = pl.DataFrame(x[:2], schema=list(FEATURES), orient="row").to_pandas()
    mlflow.sklearn.save_model(
        model, path, input_example=example, pyfunc_predict_fn=predict_fn,
        pip_requirements=[f"scikit-learn=={sklearn.__version__}"],  # no requirement inference
    )  # fmt: skip
    return path

"""The server's compute workers (mlmon/server/compute.py): the same figures as in process, and
no worker outlives its server (stopped with it; exits when the server is killed)."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mlmon.errors import ConfigError, LakeError
from mlmon.server.config import AuthSettings, ProxySettings, ServerConfig, TokenEntry
from mlmon.server.data import Data, parse_query
from tests.server.lake import RISK, SEPSIS
from tests.server.live import ROOT, alive, free_port, workers_of

pytestmark = pytest.mark.xdist_group("server")


def _same(a: object, b: object) -> None:
    assert type(a) is type(b)
    if isinstance(a, pl.DataFrame):
        assert isinstance(b, pl.DataFrame)
        assert_frame_equal(a, b)
    elif dataclasses.is_dataclass(a) and not isinstance(a, type):
        for f in dataclasses.fields(a):
            _same(getattr(a, f.name), getattr(b, f.name))
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    else:
        assert a == b


def test_figures_from_workers_equal_the_figures_in_process(server_lake: Path) -> None:
    signin = AuthSettings("token", (TokenEntry("ann", "0" * 64, ("cardiology",)),),
                          ProxySettings(secret="proxy-secret"))  # fmt: skip
    config = ServerConfig(lake=str(server_lake), host="0.0.0.0", compute_processes=2, auth=signin)
    remote, local = Data(config), Data(dataclasses.replace(config, compute_processes=0))
    remote.start()
    answers: list[object] = []
    askers: list[threading.Thread] = []
    try:
        assert remote.pool is not None and len(remote.pool.pids) == 2
        # the workers never see a request: they get no sign-in settings (tokens, proxy secret)
        assert remote.pool.config.auth == AuthSettings() and remote.config.auth == signin
        assert remote.pool.config.host == "127.0.0.1"  # (auth none is refused elsewhere)
        pids = remote.pool.pids
        local.start()
        assert local.pool is None
        for params in ({"range": "custom", "start": "2026-10-01", "end": "2026-10-06"},
                       {"range": "custom", "start": "2026-10-01", "end": "2026-10-06",
                        "version": "1.1"}):  # fmt: skip
            q = parse_query(params, datetime(2026, 10, 7, tzinfo=UTC))
            models = [RISK, SEPSIS]
            rows = remote.overview(models, q)
            assert all(r.records and r.drifted for r in rows)  # figures to compare
            _same(rows, local.overview(models, q))
            for m in models:
                for figure in ("model_page", "versions", "data_quality"):
                    _same(getattr(remote, figure)(m, q), getattr(local, figure)(m, q))
                _same(remote.model_page(m, q, "psi"), local.model_page(m, q, "psi"))
        with pytest.raises(ConfigError, match="method must be one of"):  # raised in the worker
            remote.model_page(RISK, q, "no-such-method")
        # each model is computed by one worker, both workers took one
        assert sorted(remote.pool._owner.values()) == [0, 1]
        # a worker killed (OOM, a crash) is replaced and the task sent again
        dead = remote.pool.pids[remote.pool._owner[SEPSIS]]
        os.kill(dead, signal.SIGKILL)
        week = parse_query({"range": "custom", "start": "2026-10-01", "end": "2026-10-07",
                            "by": "week"}, datetime(2026, 10, 7, tzinfo=UTC))  # fmt: skip
        _same(remote.model_page(SEPSIS, week), local.model_page(SEPSIS, week))
        assert dead not in remote.pool.pids and len(remote.pool.pids) == 2
        pids = [*pids, *remote.pool.pids]

        # stopped with tasks queued: every request waiting for a figure gets an answer
        def ask(day: int) -> None:
            hour = parse_query({"range": "custom", "start": f"2026-10-0{day}", "by": "hour",
                                "end": f"2026-10-0{day + 1}"}, datetime(2026, 10, 7, tzinfo=UTC))  # fmt: skip
            try:
                answers.append(remote.model_page(RISK, hour))
            except LakeError as exc:
                answers.append(exc)

        askers += [threading.Thread(target=ask, args=(d,)) for d in range(1, 6)]
        for t in askers:
            t.start()
    finally:
        remote.stop()
        local.stop()
    for t in askers:
        t.join(timeout=60)
    assert len(answers) == 5 and not any(t.is_alive() for t in askers)
    assert remote.pool is None and not any(alive(p) for p in pids)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_workers_exit_with_the_server(server_lake: Path, tmp_path: Path, sig: int) -> None:
    """SIGINT (Ctrl-C): the server stops its workers by their pids as it shuts down; SIGKILL
    (a crash): no shutdown runs, the workers see their stdin close and exit. (SIGTERM: the
    live server's end, tests/server/live.py.)"""
    from tests.server.conftest import write_config

    config = write_config(tmp_path, server_lake, {"mode": "none"}, compute={"processes": 2})
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlmon.cli", "server", "--config", str(config), "--port", str(port)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "mlmon server did not answer within 60 s"
            time.sleep(0.1)
        if sig == signal.SIGKILL:  # a crash after work was done
            page = httpx.get(f"http://127.0.0.1:{port}/models/{RISK}", timeout=60)
            assert page.status_code == 200
        workers = workers_of(proc.pid)
        assert len(workers) == 2
        for w in workers:
            assert b"mlmon.server.compute" in Path(f"/proc/{w}/cmdline").read_bytes()
        os.kill(proc.pid, sig)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 15
        while any(alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(w) for w in workers)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        for w in workers:  # only if the test failed above: never leave one behind
            if alive(w):
                os.kill(w, signal.SIGKILL)

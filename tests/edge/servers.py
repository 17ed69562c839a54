"""Real HTTP servers for edge tests: subprocesses on 127.0.0.1, stopped by their own pid.

``start_server(args)`` runs ``python -m mlmon.demo.model_server --host 127.0.0.1
--port 0 ARGS``, waits for its ``listening on URL`` line (the server picked a
free port and printed it) and returns the URL. The ``model_server`` fixture
starts any number of them and stops each in a finalizer, by its process id.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 30.0


@dataclass
class RunningServer:
    """A started server: its process and the URL it printed."""

    proc: subprocess.Popen[str]
    url: str

    def stop(self) -> None:
        """SIGTERM this server's own pid; SIGKILL it if it has not exited after 5 s."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_server(args: list[str], module: str = "mlmon.demo.model_server") -> RunningServer:
    """Start ``python -m module --host 127.0.0.1 --port 0 args`` and wait until it listens."""
    # stderr goes to a file, not a pipe, so it can never fill up and block the server;
    # the child keeps its own descriptor when ours is closed
    with tempfile.TemporaryFile(mode="w+") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=ROOT,
        )
        assert proc.stdout is not None
        line = ""
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + READY_TIMEOUT_S
            while not line and time.monotonic() < deadline and proc.poll() is None:
                if sel.select(timeout=0.1):
                    line = proc.stdout.readline()
        if not line.startswith("listening on "):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
            stderr.seek(0)
            raise RuntimeError(
                f"{module} {' '.join(args)} did not print 'listening on' within "
                f"{READY_TIMEOUT_S:g} s; stdout {line!r}, stderr:\n{stderr.read()}"
            )
    return RunningServer(proc, line.split("listening on ", 1)[1].strip())


@pytest.fixture
def model_server(request: pytest.FixtureRequest) -> Callable[..., RunningServer]:
    """Start real model servers (``model_server("--protocol", "mlflow")``), stopped after the test."""

    def start(*args: str, module: str = "mlmon.demo.model_server") -> RunningServer:
        server = start_server(list(args), module)
        request.addfinalizer(server.stop)
        return server

    return start

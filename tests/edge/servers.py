"""Real HTTP servers for edge tests: subprocesses on 127.0.0.1, stopped by their own pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RunningServer:
    proc: subprocess.Popen[str]
    url: str

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


def start_server(args: list[str], module: str = "mlmon.demo.model_server") -> RunningServer:
    """Start ``python -m module args`` and wait for its ``listening on URL`` line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(
            f"server did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}"
        )
    return RunningServer(proc, line.split("listening on ", 1)[1].strip())

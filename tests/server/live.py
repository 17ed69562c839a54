"""ONE real ``mlmon server`` process (uvicorn on 127.0.0.1, token sign-in, two teams, a reports
folder) per test session, shared by tests/server/test_browser.py and test_real_server.py.

It is started in its own process group and stopped by its pid (SIGTERM) at the end of the
session; the stop is checked there: a clean exit, no traceback on stderr, and every audit record a
test asked for (:meth:`LiveServer.expect_audit`) in the segments flushed at shutdown (the periodic
flush is set to an hour, so the shutdown flush is the only one that can write them).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.server.lake import RISK, SEPSIS

ROOT = Path(__file__).resolve().parents[2]
START, END = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 7, tzinfo=UTC)


def workers_of(pid: int) -> list[int]:
    """The child processes of ``pid`` (a server's compute workers)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie no parent has reaped yet has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_reports(folder: Path, lake: Path) -> dict[str, str]:
    """Three rendered reports as ``mlmon report`` / ``mlmon schedule run`` lay them out:
    cardiology's (PDF and HTML), the ICU's (HTML) and one covering both teams (HTML)."""
    from mlmon.reports.context import collect
    from mlmon.reports.render import render

    made = {}
    for key, models, formats, start in (
        ("monthly/2026-10/risk_2026-10", [RISK], ("html", "pdf"), START),
        ("adhoc/sepsis_2026-10-01", [SEPSIS], ("html",), START),
        ("adhoc/both_2026-10-03", [RISK, SEPSIS], ("html",), datetime(2026, 10, 3, tzinfo=UTC)),
    ):
        out = folder / key.rsplit("/", 1)[0]
        stem = key.rsplit("/", 1)[1]
        ctx = collect(str(lake), models, start, END, title=f"Report {stem}")
        ctx.save(out / f"{stem}-context")
        render(ctx, out, formats, stem=stem)
        made[stem] = key
    return made


def write_alerts(folder: Path, lake: Path) -> Path:
    """An alert delivery over the server's lake (its receiver takes no model: nothing is sent)."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    doc = {
        "lake": str(lake),
        "state_dir": str(folder / "state"),
        "dashboard_url": "https://mlmon.example.org",
        "rules": {"drift": {"period": "24h", "methods": ["psi"]}},  # 3 features drift on Oct 6
        "receivers": [{"type": "webhook", "url": "http://127.0.0.1:9/", "models": ["none"]}],
        "audit": {"uri": str(folder / "audit")},
    }
    (folder / "alerts.yaml").write_text(yaml.safe_dump(doc))
    return folder / "alerts.yaml"


def deliver_once(alerts: Path) -> None:
    """One delivery pass: the firing state whose alerts the model page's buttons act on."""
    from mlmon.alerting import deliver, load_config

    result = deliver(load_config(alerts), now=END)
    assert result.started > 0, result.line()


@dataclass
class LiveServer:
    base: str
    folder: Path  # server.yaml, tokens, audit-lake/, reports/, stderr.log
    reports: dict[str, str]  # stem -> key of each rendered report
    audit_expected: set[tuple[str, str, str]] = field(default_factory=set)

    def expect_audit(self, principal: str, target: str, outcome: str) -> None:
        """Check at shutdown that this (principal, target, outcome) record was flushed."""
        self.audit_expected.add((principal, target, outcome))

    def audit_records(self) -> list[dict[str, object]]:
        seg = sorted(
            (self.folder / "audit-lake" / "audit" / "mlmon-server").glob("segment-*.jsonl")
        )
        return [json.loads(line) for s in seg for line in s.read_text().splitlines()]


def live_server_session(
    tmp_path_factory: pytest.TempPathFactory, lake: Path
) -> Iterator[LiveServer]:
    """The body of the session fixture ``live_server`` (tests/server/conftest.py)."""
    from tests.server.conftest import write_config

    d = tmp_path_factory.mktemp("live-server")
    audit = {"uri": str(d / "audit-lake"), "state_dir": str(d / "state"), "flush_every": "1h"}
    alerts = write_alerts(d / "alerts", lake)
    config = write_config(
        d, lake, {"mode": "token"}, reports=str(d / "reports"), audit=audit,
        alerts={"config": str(alerts)}, operator_groups=["cardiology"],
        compute={"processes": 2},  # figures computed by worker processes (mlmon.server.compute)
    )  # fmt: skip
    port = free_port()
    stderr = (d / "stderr.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlmon.cli", "server", "--config", str(config), "--port", str(port)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr, text=True, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    workers: list[int] = []
    try:
        # rendered while the server starts (it lists the folder on the first /reports request)
        server = LiveServer(base, d, write_reports(d / "reports", lake))
        deliver_once(alerts)
        deadline = time.monotonic() + 60  # 2 shared cores
        while True:
            assert proc.poll() is None, (d / "stderr.log").read_text()[-3000:]
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("mlmon server did not answer /healthz within 60 s")
            time.sleep(0.1)
        workers = workers_of(proc.pid)  # its compute workers, started before the port answers
        assert len(workers) == 2, workers
        yield server
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
            stderr.close()
    err = (d / "stderr.log").read_text()
    # the workers were stopped with the server (by their pids, at lifespan end)
    assert not any(alive(w) for w in workers), [w for w in workers if alive(w)]
    # uvicorn shuts down gracefully (lifespan end: the audit flush), then re-raises the signal
    assert proc.returncode in (0, -signal.SIGTERM), err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    flushed = {
        (r["details"]["principal"], r["target"], r["outcome"])  # type: ignore[index]
        for r in server.audit_records()
    }
    assert server.audit_expected <= flushed, server.audit_expected - flushed

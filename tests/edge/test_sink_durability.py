"""The sink loses nothing it acknowledged and counts nothing twice: SIGTERM and SIGKILL of a real
`mlmon edge run` at several points, restarted after each, counted exactly in the lake.

Each inference is one batched CloudEvents request (its request and response events), answered 202
only once its events are in the write-ahead log on disk. Inference ``i`` is stamped in a window of
its own (1-minute windows, a day ago), so the lake says for each inference whether it landed and
how often. An acknowledged inference must be there exactly once; the one request in flight at a
kill (sent, never answered) may be there once or not at all; nothing may be there twice.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pytest

from mlmon.analysis.lake import Lake
from mlmon.edge.lifecycle import SHUTDOWN_DEADLINE_S
from mlmon.edge.wal import WriteAheadLog
from mlmon.lake.references import save_reference
from mlmon.profiles.frame import build_reference
from mlmon.profiles.schema import FeatureSpec, Schema

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "MLMON_HMAC_KEY": "d" * 32}
BATCH = "application/cloudevents-batch+json"

pytestmark = pytest.mark.xdist_group("sink-durability")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _setup(tmp_path: Path, port: int) -> Path:
    rng = np.random.default_rng(3)
    base = pl.DataFrame({"age": rng.normal(60, 10, 300), "ward": rng.choice(["ED", "ICU"], 300)})
    ref = build_reference(
        base, Schema([FeatureSpec("age", "numeric"), FeatureSpec("ward", "categorical")]), k=1
    )
    save_reference(ref, tmp_path / "ref.parquet")
    cfg = {
        "collector_id": "edge-wal",
        "lake": {"uri": str(tmp_path / "lake")},
        "hmac_key": {"env": "MLMON_HMAC_KEY"},
        "state_dir": str(tmp_path / "state"),
        "window": "1m",
        "lateness": "1s",
        "audit": False,
        "metrics": None,
        "models": [{"name": "risk", "reference": str(tmp_path / "ref.parquet"),
                    "sink": {"port": port, "commit_every": "500ms"}}],
    }  # fmt: skip
    path = tmp_path / "edge.yaml"
    path.write_text(json.dumps(cfg))
    return path


class Sender:
    """Sends inference i = next, next+1, ... one request each; records what was acknowledged."""

    def __init__(self, port: int, start: datetime) -> None:
        self.url = f"http://127.0.0.1:{port}/"
        self.start = start
        self.next = 0
        self.acked: set[int] = set()
        self.unknown: set[int] = set()  # sent, no answer (the process died meanwhile)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def body(self, i: int) -> bytes:
        t = self.start + timedelta(minutes=i)
        events = [
            {"specversion": "1.0", "id": f"inf-{i}", "source": "t", "time": t.isoformat(),
             "type": "org.kubeflow.serving.inference.request",
             "data": {"instances": [{"age": 40 + i % 50, "ward": "ED" if i % 2 else "ICU"}]}},
            {"specversion": "1.0", "id": f"inf-{i}", "source": "t",
             "time": (t + timedelta(milliseconds=20)).isoformat(),
             "type": "org.kubeflow.serving.inference.response",
             "data": {"predictions": [0.5], "model_version": "3"}},
        ]  # fmt: skip
        return json.dumps(events).encode()

    def _run(self) -> None:
        with httpx.Client(timeout=30) as c:
            while not self._stop.is_set():
                i = self.next
                self.next += 1
                try:
                    r = c.post(self.url, content=self.body(i), headers={"content-type": BATCH})
                except httpx.TransportError:
                    self.unknown.add(i)
                    return
                assert r.status_code == 202, r.text
                self.acked.add(i)

    def begin(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def until(self, n: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < n:
            assert time.monotonic() < deadline, f"only {len(self.acked)} acknowledged"
            assert self._thread is not None and self._thread.is_alive(), "sender stopped"
            time.sleep(0.005)

    def end(self) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(60)


def _spawn(cfg: Path, port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlmon.cli", "edge", "run", "--config", str(cfg)],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the sink never listened"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.05)


def _per_window(lake_dir: Path, start: datetime) -> dict[int, int]:
    """Inference index -> rows in the lake for its window."""
    if not lake_dir.exists():
        return {}
    df = Lake(str(lake_dir)).sql(
        "SELECT window_start, sum(count) + sum(nulls) AS n FROM profiles "
        "WHERE feature = 'age' GROUP BY window_start"
    )
    out = {}
    for ws, n in zip(df["window_start"].to_list(), df["n"].to_list(), strict=True):
        out[round((ws.astimezone(UTC) - start).total_seconds() / 60)] = int(n)
    return out


def _check(counts: dict[int, int], sender: Sender, *, complete: bool) -> None:
    """Never twice; only what was sent; every acknowledged one there when ``complete``."""
    assert all(n == 1 for n in counts.values()), {i: n for i, n in counts.items() if n != 1}
    assert set(counts) <= sender.acked | sender.unknown
    if complete:
        missing = sender.acked - set(counts)
        assert not missing, f"{len(missing)} acknowledged inferences lost: {sorted(missing)[:10]}"


def _wal_bytes(state: Path) -> int:
    return sum(p.stat().st_size for p in (state / "sinks" / "risk" / "wal").glob("wal-*.log"))


def test_sigterm_and_sigkill_lose_no_acknowledged_event_and_count_none_twice(tmp_path):
    port = _free_port()
    cfg = _setup(tmp_path, port)
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=1)
    sender = Sender(port, start)
    plan: list[tuple[signal.Signals, int]] = [
        (signal.SIGTERM, 40),  # mid-stream, requests in flight
        (signal.SIGKILL, 25),
        (signal.SIGKILL, 1),  # right after the restart's replay
    ]
    procs: list[subprocess.Popen[str]] = []
    try:
        for sig, n in plan:
            proc = _spawn(cfg, port)
            procs.append(proc)
            sender.begin()
            sender.until(len(sender.acked) + n)
            os.kill(proc.pid, sig)
            t0 = time.monotonic()
            _, err = proc.communicate(timeout=60)
            sender.end()
            if sig == signal.SIGTERM:
                assert time.monotonic() - t0 < SHUTDOWN_DEADLINE_S
                assert proc.returncode == 0, err[-3000:]
                assert "accepted events written and committed at stop" in err
                # before any restart: every acknowledged inference is written and committed
                _check(_per_window(tmp_path / "lake", start), sender, complete=True)
                assert _wal_bytes(tmp_path / "state") == 0  # nothing left to replay
            else:
                assert proc.returncode == -signal.SIGKILL
                _check(_per_window(tmp_path / "lake", start), sender, complete=False)
        # the last run replays what the kills left, takes more, and is SIGTERMed mid-stream
        proc = _spawn(cfg, port)
        procs.append(proc)
        sender.begin()
        sender.until(len(sender.acked) + 30)
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        sender.end()
        assert proc.returncode == 0, err[-3000:]
        assert "events replayed from the write-ahead log" in err
        assert _wal_bytes(tmp_path / "state") == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    counts = _per_window(tmp_path / "lake", start)
    _check(counts, sender, complete=True)
    assert len(sender.acked) >= sum(n for _, n in plan) + 30
    assert len(counts) - len(sender.acked) <= len(sender.unknown)
    print(f"acknowledged {len(sender.acked)}, in flight at a kill {len(sender.unknown)}, "
          f"in the lake {sum(counts.values())}")  # fmt: skip


def test_a_torn_tail_is_ignored_and_replay_resumes_where_the_commit_left_off(tmp_path):
    wal = WriteAheadLog(tmp_path)
    wal.sync(wal.append([{"n": 1}, {"n": 2}]))
    segment = wal.rotate()
    wal.sync(wal.append([{"n": 3}]))
    wal.close()
    with open(tmp_path / f"wal-{segment:010d}.log", "ab") as fh:
        fh.write(b'0badc0de {"n": 4}\n{"n": 5')  # a record with a wrong checksum, a torn one
    again = WriteAheadLog(tmp_path)  # a new process appends to a new segment
    assert again.segment == segment + 1
    assert [r["n"] for _, r in again.replay(0)] == [1, 2, 3]
    assert [r["n"] for _, r in again.replay(segment)] == [3]
    again.drop_before(segment)
    assert again.segments() == [segment, segment + 1]


def test_a_failed_window_write_holds_back_commits_and_a_restart_writes_everything(
    tmp_path, monkeypatch
):
    """A window write that fails (a full spool, a broken disk) must not be skipped by a later
    commit: commits are held back (and /healthz says why) until a restart replays the log."""
    from mlmon.edge.collector import Collector, CycleReport
    from mlmon.edge.config import load_config

    monkeypatch.setenv("MLMON_HMAC_KEY", "d" * 32)
    cfg = load_config(_setup(tmp_path, 0), env={})
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=1)
    first = Collector(cfg)
    first.start_sinks()
    sender = Sender(first.sinks["risk"].port, start)
    task = next(t for t in first.tasks if t.kind == "sink")
    state_dir = tmp_path / "state" / "sinks" / "risk"

    def send(n: int) -> None:
        with httpx.Client() as c:
            for _ in range(n):
                i = sender.next
                sender.next += 1
                r = c.post(sender.url, content=sender.body(i), headers={"content-type": BATCH})
                assert r.status_code == 202
                sender.acked.add(i)

    def broken(*args: object, **kwargs: object) -> int:
        raise OSError("the lake's disk is gone")

    try:
        send(5)
        first._run_task(task, datetime.now(UTC), CycleReport())  # written and committed
        send(10)
        with monkeypatch.context() as m:
            m.setattr(first, "write_windows", broken)
            report = CycleReport()
            first._run_task(task, datetime.now(UTC), report)
        assert report.errors and "OSError" in report.errors[0]
        send(10)
        first._run_task(task, datetime.now(UTC), CycleReport())
        assert "held back" in first.metrics.health()["reasons"][0]
        assert len(_per_window(tmp_path / "lake", start)) == 15  # 10 not written
        generation = json.loads((state_dir / "checkpoint.json").read_text())["generation"]
    finally:
        first.stop_sinks()
    # nothing was committed past the failed write, at stop either
    assert json.loads((state_dir / "checkpoint.json").read_text())["generation"] == generation
    second = Collector(cfg)  # a restart: replays the log from the last commit
    second.start_sinks()
    try:
        second._run_task(next(t for t in second.tasks if t.kind == "sink"), datetime.now(UTC),
                         CycleReport())  # fmt: skip
    finally:
        second.stop_sinks()
    counts = _per_window(tmp_path / "lake", start)
    _check(counts, sender, complete=True)
    assert len(counts) == 25

"""A backlog commits in bounded steps: a collector killed more often than one pass takes still finishes.

Real ``mlmon edge once`` / ``mlmon edge run`` processes read a backlog of eight
files (one committed step per file: ``commit_every_records``). Each run is
killed (SIGKILL, or SIGTERM) as soon as it has committed one step beyond where
it started, so no run ever reads the whole backlog; yet every kill keeps the
progress made, and after the last run the lake holds every record exactly
once. No clock is moved (libfaketime makes timed lock waits hang).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from mlmon.analysis.lake import Lake
from mlmon.lake.references import save_reference
from mlmon.profiles.frame import build_reference
from mlmon.profiles.schema import FeatureSpec, Schema

MODEL = "backlog"
KEY = "b" * 32
ROOT = Path(__file__).resolve().parents[2]
FILES, PER_FILE = 8, 800


def _backlog(logs: Path) -> int:
    rng = np.random.default_rng(17)
    t0 = datetime(2026, 10, 1, tzinfo=UTC)
    for i in range(FILES):
        secs = np.sort(rng.integers(i * 3600, (i + 1) * 3600, PER_FILE))
        pl.DataFrame(
            {
                "timestamp": [(t0 + timedelta(seconds=int(s))).isoformat() for s in secs],
                "age": rng.normal(60, 12, PER_FILE).round(1),
                "ward": rng.choice(["ED", "ICU", "W3"], PER_FILE),
                "request_id": [f"MRN-{i}-{j}" for j in range(PER_FILE)],
            }
        ).write_ndjson(logs / f"{i:03d}.jsonl")
    return FILES * PER_FILE


def _setup(tmp_path: Path) -> tuple[Path, int]:
    logs = tmp_path / "logs"
    logs.mkdir()
    total = _backlog(logs)
    rng = np.random.default_rng(0)
    base = pl.DataFrame({"age": rng.normal(60, 12, 500), "ward": rng.choice(["ED", "ICU"], 500)})
    schema = Schema([FeatureSpec("age", "numeric"), FeatureSpec("ward", "categorical")])
    save_reference(build_reference(base, schema, model=MODEL, k=1), tmp_path / "ref.parquet")
    cfg = {
        "collector_id": "backlog-edge",
        "lake": {"uri": (tmp_path / "lake").as_uri()},
        "hmac_key": {"env": "MLMON_HMAC_KEY"},
        "state_dir": str(tmp_path / "state"),
        "window": "10m",
        "lateness": "0s",
        "metrics": None,
        "models": [
            {
                "name": MODEL,
                "reference": str(tmp_path / "ref.parquet"),
                "streams": [
                    {
                        "path": str(logs),
                        "format": "jsonl",
                        "commit_every_records": PER_FILE,
                        "schedule": "every 1s",
                    }
                ],
            }
        ],
    }
    (tmp_path / "edge.yaml").write_text(json.dumps(cfg))
    return tmp_path / "edge.yaml", total


def _committed(tmp_path: Path) -> int:
    """Bytes of the backlog committed: files done plus the offsets reached."""
    path = tmp_path / "state" / "streams" / f"{MODEL}-0" / "checkpoint.json"
    if not path.exists():
        return 0
    doc = json.loads(path.read_text())
    pos = doc["positions"][str(tmp_path / "logs")]
    sizes = {p.name: p.stat().st_size for p in (tmp_path / "logs").iterdir()}
    return sum(sizes[n] for n in pos["done"]) + sum(pos["offsets"].values())


def _start(cfg: Path, command: str) -> subprocess.Popen[str]:
    env = {**os.environ, "MLMON_HMAC_KEY": KEY, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "mlmon.cli", "edge", command, "--config", str(cfg)],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _kill_after_one_step(
    tmp_path: Path, proc: subprocess.Popen[str], sig: signal.Signals, delay: float
) -> tuple[int, str]:
    before = _committed(tmp_path)
    try:
        while _committed(tmp_path) <= before:  # wait for one committed step of this run
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.01)
        time.sleep(delay)  # land somewhere in the next read / write / commit
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    return proc.returncode, out


def test_a_backlog_killed_every_step_still_finishes_exactly_once(tmp_path: Path) -> None:
    cfg, total = _setup(tmp_path)
    size = sum(p.stat().st_size for p in (tmp_path / "logs").iterdir())
    progress = [0]
    runs = [
        ("once", signal.SIGKILL, 0.0),
        ("once", signal.SIGTERM, 0.01),
        ("run", signal.SIGKILL, 0.03),
        ("run", signal.SIGTERM, 0.0),
    ]
    for command, sig, delay in runs:
        rc, out = _kill_after_one_step(tmp_path, _start(cfg, command), sig, delay)
        progress.append(_committed(tmp_path))
        assert progress[-1] > progress[-2], (command, sig)  # the kill kept the step committed
        assert progress[-1] < size  # and no run read the whole backlog
        if sig == signal.SIGKILL:
            assert rc == -signal.SIGKILL
        elif command == "once":  # stopped after committing its step; says so
            assert rc == 143 and json.loads(out.strip().splitlines()[-1])["stopped"] is True
        else:
            assert rc == 0
    done = _start(cfg, "once")
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err[-3000:]
    assert _committed(tmp_path) == size

    lake_dir = tmp_path / "lake"
    profiles = Lake(lake_dir.as_uri()).read("profiles", model=MODEL)
    age = profiles.filter(pl.col("feature") == "age")
    assert int((age["count"] + age["nulls"]).sum()) == total  # no loss, no double count
    ward = profiles.filter(pl.col("feature") == "ward")
    assert int(ward["count"].sum()) == total
    assert age["window_start"].n_unique() == FILES * 6  # 10-minute windows over 8 hours
    # a SIGKILL in the middle of a local write can leave its temporary `.tmp-*.part` file (never
    # renamed into place); readers see only `*.parquet`, so the counts above are exact regardless
    assert [p for p in lake_dir.rglob("*.parquet") if p.name.startswith(".tmp-")] == []
    assert (
        "MRN-"
        not in (tmp_path / "state" / "streams" / f"{MODEL}-0" / "checkpoint.json").read_text()
    )

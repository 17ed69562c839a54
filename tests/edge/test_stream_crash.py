"""kill -9 in the middle of a stream: a real process reads, writes windows to a lake, commits.

This file is also the child program (``python test_stream_crash.py STATE LOGS REF LAKE``):
it reads the folder batch by batch with the documented protocol (read, close
windows, write them with :class:`LakeWriter`, commit) and prints ``committed N``
after every commit. The test kills it with SIGKILL twice at different points,
restarts it, and checks the lake: every record counted exactly once, late
records in their own parts, no object that is not complete Parquet.
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

WINDOW = timedelta(minutes=30)
MODEL = "crash-model"


def child(state: str, logs: str, ref_path: str, lake: str) -> None:
    from mlmon.edge.checkpoint import StreamState
    from mlmon.edge.streams import FileStream
    from mlmon.lake.references import load_reference
    from mlmon.lake.writer import LakeWriter

    ref = load_reference(ref_path)
    writer = LakeWriter(lake, collector_id="crash-edge", k_anonymity=1)
    st = StreamState(ref, state, window=WINDOW, lateness=timedelta(0))
    stream = FileStream(logs, "tabular", st, b"s" * 32, batch_bytes=8_000)
    n = 0
    while True:
        added = stream.read(max_batches=1)
        final = added == 0
        # with nothing left to read, close every window (wall clock far ahead)
        now = datetime(2100, 1, 1, tzinfo=UTC) if final else None
        for w, part in stream.closed_windows(now):
            writer.write_window(MODEL, w, ref, source="stream", part=part)
        stream.commit()
        n += 1
        print(f"committed {n} added {added}", flush=True)
        if final:
            print("done", flush=True)
            return
        time.sleep(0.02)


# -- the test ---------------------------------------------------------------------------------
def _records(logs: Path) -> int:
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(11)
    t0 = datetime(2026, 10, 1, tzinfo=UTC)
    total = 0
    for i in range(4):
        n = 1500
        secs = np.sort(rng.integers(i * 5400, (i + 1) * 5400, n))
        if i == 3:  # late data: a slice of this file belongs to windows written long ago
            secs[:100] = rng.integers(0, 3600, 100)
        df = pl.DataFrame(
            {
                "timestamp": [(t0 + timedelta(seconds=int(s))).isoformat() for s in secs],
                "age": rng.normal(60, 12, n).round(1),
                "ward": rng.choice(["ED", "ICU", "W3"], n),
                "latency_ms": rng.gamma(2, 15, n).round(2),
                "request_id": [f"MRN-{i}-{j}" for j in range(n)],
            }
        )
        df.write_ndjson(logs / f"{i:03d}.jsonl")
        total += n
    return total


def _run_until(args: list[str], kill_after: int | None) -> str:
    proc = subprocess.Popen(
        [sys.executable, __file__, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    last = ""
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            last = line.strip()
            if kill_after is not None and last.startswith(f"committed {kill_after} "):
                time.sleep(0.01)  # land somewhere in the next read / write / commit
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(30)
                return last
        proc.wait(60)
        assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
        return last
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)


def test_sigkill_mid_stream_loses_nothing_and_counts_nothing_twice(tmp_path):
    import numpy as np
    import polars as pl

    from mlmon.analysis.lake import Lake
    from mlmon.lake.references import save_reference
    from mlmon.profiles.frame import build_reference
    from mlmon.profiles.schema import FeatureSpec, Schema

    logs = tmp_path / "logs"
    logs.mkdir()
    total = _records(logs)
    rng = np.random.default_rng(0)
    base = pl.DataFrame(
        {"age": rng.normal(60, 12, 500), "ward": rng.choice(["ED", "ICU", "W3"], 500)}
    )
    schema = Schema([FeatureSpec("age", "numeric"), FeatureSpec("ward", "categorical")])
    ref_path = tmp_path / "ref.parquet"
    save_reference(build_reference(base, schema, model=MODEL, k=1), ref_path)
    lake = tmp_path / "lake"
    args = [str(tmp_path / "state"), str(logs), str(ref_path), lake.as_uri()]

    assert _run_until(args, kill_after=3).startswith("committed 3")
    assert _run_until(args, kill_after=9).startswith("committed 9")
    assert _run_until(args, kill_after=None) == "done"

    profiles = Lake(lake.as_uri()).read("profiles", model=MODEL)
    age = profiles.filter(pl.col("feature") == "age")
    assert int((age["count"] + age["nulls"]).sum()) == total
    ward = profiles.filter(pl.col("feature") == "ward")
    assert int(ward["count"].sum()) == total
    assert age.height > 10  # many windows, some with late parts
    objects = [p for p in lake.rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert objects and all(p.suffix == ".parquet" for p in objects)
    assert any("-late1" in p.name for p in objects)  # the late records: a part of their own
    for p in objects:  # every visible object is complete Parquet
        pl.read_parquet(p)
    state = json.loads((tmp_path / "state" / "checkpoint.json").read_text())
    assert "MRN-" not in json.dumps(state)


if __name__ == "__main__":
    child(*sys.argv[1:5])

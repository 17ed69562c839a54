"""Issue 17 benchmark: CPU seconds to parse JSONL log lines into flat records (no profiling).

    python -m benchmarks.bench_stream_parse [--rows 100000] [--poison-every 0]

Writes ``--rows`` bench records (25 features, timestamp, request id) as one
JSONL file, then times ``FileStream.batches()`` (read, validate, HMAC, conform)
three times and reports the fastest, in CPU seconds of the process (polars'
threads included). ``--poison-every N`` replaces every N-th line with a record
whose ``num_00`` is a bool, so each batch goes through the strict parser line by
line instead of the polars fast path.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from benchmarks.common import make_frame
from mlmon.edge.streams import FileStream, StreamState
from mlmon.profiles.frame import build_reference

T0 = datetime(2026, 10, 1, tzinfo=UTC)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--poison-every", type=int, default=0)
    args = ap.parse_args()
    ref = build_reference(make_frame(5_000, seed=1))
    with tempfile.TemporaryDirectory() as d:
        logs = Path(d) / "logs"
        logs.mkdir()
        df = make_frame(args.rows, seed=10)
        secs = np.sort(np.random.default_rng(0).uniform(0, 86400, args.rows))
        ts = pl.Series("timestamp", [T0 + timedelta(seconds=float(s)) for s in secs])
        df = df.with_columns(
            ts.dt.cast_time_unit("us").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"),
            pl.Series("request_id", [f"req-{j}" for j in range(args.rows)]),
        )
        lines = [json.dumps(r) for r in df.to_dicts()]
        if args.poison_every:
            for i in range(0, len(lines), args.poison_every):
                lines[i] = json.dumps({**json.loads(lines[i]), "num_00": True})
        (logs / "00.jsonl").write_text("\n".join(lines) + "\n")
        runs, n = [], 0
        for i in range(3):
            state = StreamState(ref, Path(d) / f"st{i}", window=timedelta(minutes=5))
            s = FileStream(logs, "tabular", state, b"b" * 32, settle=timedelta(0))
            t = time.process_time()
            n = sum(f.height for f in s.batches())
            runs.append(time.process_time() - t)
    print(json.dumps({"rows": args.rows, "poison_every": args.poison_every, "kept": n,
                      "cpu_s": round(min(runs), 2),
                      "us_per_record": round(1e6 * min(runs) / args.rows, 1)}))  # fmt: skip


if __name__ == "__main__":
    main()

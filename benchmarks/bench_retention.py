"""Issue 18 benchmark: what keeping a reference in use costs ``mlmon retention plan``.

    python -m benchmarks.bench_retention [--windows 2000] [--s3]

One model, one reference past its retention and ``windows`` drift windows within retention
(5-minute windows, written by :class:`LakeWriter`). ``plan`` reads the kept windows'
``reference_id`` newest first until each expired reference is found: when the newest window
names it, one read; when no window names it (an unused reference), a read of every kept
window of its model. Reports the plan time of both, and the same plan with the ``references``
table not expiring (no reference to look for: the listing alone). ``--s3`` runs it on the moto
S3 server (tests/s3server.py, IAM enforced: the edge role writes, the maintenance role plans),
started and stopped here.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pyarrow as pa

from mlmon.governance.retention import plan
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import build_reference


def _fill(lake: str, opts: dict[str, Any] | None, windows: int, name_it: bool) -> None:
    w = LakeWriter(lake, collector_id="edge-1", storage_options=opts, day_rollups=False)
    now = datetime.now(UTC)
    ref = build_reference(pl.DataFrame({"age": [1.0, 2.0, 3.0] * 4}), model="risk", k=1,
                          created_at=now - timedelta(days=187))  # fmt: skip
    w.write_reference("risk", ref)
    rid = ref.reference_id if name_it else "another-reference"
    for i in range(windows):
        at = now - timedelta(days=1) - timedelta(minutes=5 * i)
        drift = pa.table({"window_start": [at], "window_end": [at + timedelta(minutes=5)],
                          "collector_id": ["edge-1"], "reference_id": [rid], "feature": ["age"],
                          "method": ["psi"], "value": [0.1]})  # fmt: skip
        w.write_table("drift", "risk", drift, at, at + timedelta(minutes=5))


def _time(lake: str, opts: dict[str, Any] | None, **kw: Any) -> tuple[float, int]:
    t0 = time.perf_counter()
    p = plan(lake, storage_options=opts, **kw)
    return time.perf_counter() - t0, len(p.in_use)


def run(make_lake: Any, windows: int) -> None:
    rows = []
    for name_it in (True, False):
        lake, writer, opts = make_lake()
        _fill(lake, writer, windows, name_it)
        _time(lake, opts)  # warm-up: imports, connections
        t_ref, kept = _time(lake, opts)
        t_list, _ = _time(lake, opts, days={"references": 100_000})
        rows.append((name_it, t_ref, kept, t_list))
    print("| windows | reference | plan s | kept in use | plan s, references not due |")
    print("|---|---|---|---|---|")
    for name_it, t_ref, kept, t_list in rows:
        what = "named by the newest window" if name_it else "named by no window"
        print(f"| {windows} | {what} | {t_ref:.2f} | {kept} | {t_list:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=int, default=2000)
    ap.add_argument("--s3", action="store_true", help="on the moto S3 server (IAM enforced)")
    args = ap.parse_args()
    if not args.s3:
        with tempfile.TemporaryDirectory() as tmp:
            n = iter(range(10))
            run(lambda: (f"{tmp}/lake{next(n)}", None, None), args.windows)
        return
    from tests.s3server import BUCKET, MotoServer

    with MotoServer() as server:

        def make() -> tuple[str, dict[str, Any], dict[str, Any]]:
            prefix = server.unique_prefix()
            return (f"s3://{BUCKET}/{prefix}", server.storage_options("edge", prefix=prefix),
                    server.storage_options("maintenance", prefix=prefix))  # fmt: skip

        run(make, args.windows)


if __name__ == "__main__":
    main()

"""Issue 19 item 8: profiling many windows at once, time and peak memory.

    python -m benchmarks.bench_many_windows [--rows 50000] [--days 1200] [--repeat 3]
    python -m benchmarks.bench_many_windows --memory [--rows 1000000]
    python -m benchmarks.bench_many_windows --end-to-end [--before DIR] [--repeat 1]
    python -m benchmarks.bench_many_windows --edge-path
    python -m benchmarks.bench_many_windows --phases

Time: ``--rows`` records (25 features + latency, ``benchmarks.common.make_frame``)
spread over ``--days`` days and profiled into daily windows, by
:func:`mlmon.profiles.frame.profile_windows` and by ``main``'s algorithm before
issue 19 (a sorted copy of the frame, then :func:`profile_frame` per window;
:func:`legacy_profile_windows` below), in the same process on the same data;
best of ``--repeat``. Their profiles are checked equal before timing.

Memory (``--memory``): the records are written to Parquet once; then each case
runs in a fresh process that reads them, resets its peak RSS
(``/proc/self/clear_refs``) and profiles: ``one-window`` (every row in one
window), ``windows-N`` (N windows, this code) and ``legacy-windows-N`` (the
old algorithm); ``-ordered`` sorts the records by time first (the usual
case at the edge). Windows are consumed one at a time and dropped, as the
edge writes them. The figure is the peak RSS (``VmHWM``) while profiling,
and the frame alone is reported as ``frame_mib``.

End to end (``--end-to-end``): the records are written to Parquet and the reference
saved, then ``mlmon profile records.parquet --window 1d`` runs as a shell user runs it (a
fresh ``python -m mlmon.cli`` process: imports, reading, profiling, per-window drift and
every lake object written), with and without ``--no-drift``; ``--before DIR`` runs the
same commands with the code in DIR first on ``PYTHONPATH`` (e.g. ``git archive main``
unpacked there), in the same run. Wall time and CPU time (user + system of the command,
which a machine shared with other work changes less), best of ``--repeat``; the two lakes'
rows per table are checked equal.

Phases (``--phases``): what ``mlmon profile --window 1d`` does, step by step, in a fresh
process on the same records: imports, reading and profiling, the drift rows of all windows
(``drift_table_many``), ``write_windows`` (building the tables, Parquet encoding on two
threads, the PUTs) and the rollups; CPU time of the process (all threads) and wall time per
step, and the CPU time of the encoding and of the PUTs inside ``write_windows``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from benchmarks.common import make_frame, peak_rss_mib
from mlmon.profiles.frame import (
    Reference,
    Window,
    build_reference,
    profile_frame,
    profile_windows,
    utc_timestamps,
)

T0 = datetime(2023, 1, 1, tzinfo=UTC)
DAY_US = 86_400_000_000


def legacy_profile_windows(
    frame: pl.DataFrame, reference: Reference, *, window: timedelta
) -> Iterator[Window]:
    """``profile_windows`` as it was on main before issue 19 (timestamp checks left out)."""
    schema = reference.schema
    ts = utc_timestamps(frame, schema.timestamp)
    step_us = int(window.total_seconds() * 1_000_000)
    start_us = (ts.dt.epoch("us") // step_us) * step_us
    version = (
        frame.get_column(schema.version).cast(pl.String)
        if schema.version and schema.version in frame.columns
        else pl.Series([None] * frame.height, dtype=pl.String)
    )
    keyed = frame.with_columns(
        start_us.alias("__mlmon_window"), version.alias("__mlmon_version")
    ).sort("__mlmon_window", "__mlmon_version", nulls_last=True)
    for (w, v), part in keyed.group_by(["__mlmon_window", "__mlmon_version"], maintain_order=True):
        start = datetime.fromtimestamp(int(w) / 1e6, UTC)  # type: ignore[arg-type]
        yield Window(
            start, start + window, None if v is None else str(v), profile_frame(part, reference)
        )


def records(rows: int, days: int, seed: int = 2) -> pl.DataFrame:
    rng = np.random.default_rng(seed + 1)
    offsets = rng.integers(0, days * DAY_US, rows)
    ts = pl.Series("timestamp", offsets + int(T0.timestamp() * 1e6)).cast(pl.Datetime("us"))
    return make_frame(rows, seed=seed, shift=0.2).with_columns(ts.dt.replace_time_zone("UTC"))


def reference() -> Reference:
    return build_reference(make_frame(100_000, seed=1))


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def speed(rows: int, days: int, repeat: int) -> dict:
    ref = reference()
    df = records(rows, days)
    step = timedelta(days=1)
    new = list(profile_windows(df, ref, window=step))
    old = list(legacy_profile_windows(df, ref, window=step))
    assert [(w.start, w.version, w.profile.rows) for w in new] == [
        (w.start, w.version, w.profile.rows) for w in old
    ]
    for a, b in zip(new, old, strict=True):
        assert a.profile.features == b.profile.features and a.profile.latency == b.profile.latency
    t_new = best(lambda: list(profile_windows(df, ref, window=step)), repeat)
    t_old = best(lambda: list(legacy_profile_windows(df, ref, window=step)), repeat)
    return {
        "rows": rows,
        "windows": len(new),
        "main_s": round(t_old, 3),
        "this_s": round(t_new, 3),
        "main_ms_per_window": round(1000 * t_old / len(new), 2),
        "this_ms_per_window": round(1000 * t_new / len(new), 2),
        "speedup": round(t_old / t_new, 1),
    }


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def memory_case(path: str, case: str) -> dict:
    """One case in this (fresh) process: read, reset the peak, profile, report the peak."""
    ref = reference()
    ordered = case.endswith("-ordered")
    df = pl.read_parquet(path.replace(".parquet", "-ordered.parquet") if ordered else path)
    if case == "one-window":
        df = df.with_columns(pl.lit(T0).dt.replace_time_zone("UTC").alias("timestamp"))
    n = 1 if case == "one-window" else int(case.split("-")[-2 if ordered else -1])
    step = timedelta(days=1)
    if n > 1:  # n windows of equal length over the day range of the data
        step = timedelta(microseconds=DAY_US * 10 // n)
    gc.collect()
    base = peak_rss_mib()
    _reset_peak()
    after_reset = peak_rss_mib()
    fn = legacy_profile_windows if case.startswith("legacy") else profile_windows
    t = time.perf_counter()
    windows = rows = 0
    for w in fn(df, ref, window=step):  # consumed as the edge does: one window at a time
        windows += 1
        rows += w.profile.rows
    elapsed = time.perf_counter() - t
    peak = peak_rss_mib()
    assert rows == df.height
    return {
        "case": case,
        "windows": windows,
        "frame_mib": round(df.estimated_size() / 2**20, 1),
        "rss_before_mib": round(after_reset, 1),
        "peak_rss_mib": round(peak, 1),
        "load_peak_mib": round(base, 1),
        "seconds": round(elapsed, 2),
    }


def memory(rows: int, cases: list[str]) -> list[dict]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "records.parquet")
        df = records(rows, 10)
        df.write_parquet(path)
        df.sort("timestamp").write_parquet(path.replace(".parquet", "-ordered.parquet"))
        del df
        for case in cases:
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_many_windows", "--case", case, path],
                capture_output=True,
                text=True,
                check=True,
            )
            out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    one = out[0]["peak_rss_mib"]
    for r in out:
        r["peak_vs_one_window"] = round(r["peak_rss_mib"] / one, 3)
    return out


def _profile_cli(code: str, lake: Path, rec: Path, ref: Path, drift: bool) -> tuple[float, float]:
    """One ``mlmon profile`` run with the code in ``code`` (its folder is the cwd, which
    ``python -m`` puts first on the path)."""
    env = dict(os.environ, PYTHONPATH=code)
    args = [sys.executable, "-m", "mlmon.cli", "profile", str(rec), "--reference", str(ref),
            "--model", "m", "--lake", str(lake), "--window", "1d", "--quiet"]  # fmt: skip
    if not drift:
        args.append("--no-drift")
    shutil.rmtree(lake, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(args, env=env, cwd=code, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _table_rows(lake: Path) -> dict[str, int]:
    import duckdb

    out = {}
    con = duckdb.connect()
    for t in ("profiles", "latency", "drift"):
        if (lake / "v1" / t).exists():
            glob = f"{lake}/v1/{t}/**/*.parquet"
            q = f"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning = true)"
            one = con.execute(q).fetchone()
            out[t] = int(one[0]) if one else 0
    return out


def end_to_end(rows: int, days: int, repeat: int, before: str | None) -> list[dict]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        from mlmon.lake.references import save_reference

        rec, ref = Path(tmp) / "records.parquet", Path(tmp) / "ref.parquet"
        records(rows, days).write_parquet(rec)
        save_reference(reference(), ref)
        for drift in (True, False):
            row: dict = {"rows": rows, "days": days, "drift": drift}
            lakes = {}
            for name, code in (("before", before), ("this", str(Path.cwd()))):
                if code is None:
                    continue
                lake = Path(tmp) / f"lake-{name}"
                runs = [_profile_cli(code, lake, rec, ref, drift) for _ in range(repeat)]
                row[f"{name}_s"] = round(min(r[0] for r in runs), 2)
                row[f"{name}_cpu_s"] = round(min(r[1] for r in runs), 2)  # user + sys
                row[f"{name}_objects"] = sum(1 for _ in lake.rglob("*.parquet"))
                lakes[name] = _table_rows(lake)
            if before is not None:
                assert lakes["before"] == lakes["this"], lakes
                row["speedup"] = round(row["before_s"] / row["this_s"], 1)
                row["cpu_speedup"] = round(row["before_cpu_s"] / row["this_cpu_s"], 1)
            row["table_rows"] = lakes["this"]
            out.append(row)
    return out


_PHASES = r"""
import json, sys, tempfile, threading, time
c0, w0 = time.process_time(), time.perf_counter()
from datetime import timedelta
import mlmon.cli  # noqa: F401  (what the command imports)
from mlmon.edge.ingest import WindowAccumulator, drift_table_many, read_records
from mlmon.lake import writer as W
from mlmon.lake.references import load_reference
out = {}
def mark(name, c, w):
    out[name] = [round(time.process_time() - c, 2), round(time.perf_counter() - w, 2)]
    return time.process_time(), time.perf_counter()
c, w = mark("imports", c0, w0)
ref = load_reference(sys.argv[2])
acc = WindowAccumulator(ref, window=timedelta(days=1))
for b in read_records(sys.argv[1]):
    acc.add(b)
c, w = mark("read + profile", c, w)
ws = acc.pop()
batches = [ws[i:i + 2048] for i in range(0, len(ws), 2048)]
drift = [drift_table_many(ref, [x.profile for x in b]) for b in batches]
c, w = mark("drift rows", c, w)
spent = {"encode": 0.0, "put": 0.0}
lock = threading.Lock()
encode = W.window_parquet_bytes
def timed_encode(t):
    a = time.thread_time(); b = encode(t)
    with lock:
        spent["encode"] += time.thread_time() - a
    return b
W.window_parquet_bytes = timed_encode
put = W.put_object
def timed_put(st, path, blob):
    a = time.thread_time(); r = put(st, path, blob)
    with lock:
        spent["put"] += time.thread_time() - a
    return r
lw = W.LakeWriter(tempfile.mkdtemp(dir=sys.argv[3]), collector_id="c", put=timed_put)
n = 0
for b, d in zip(batches, drift):
    n += len(lw.write_windows("m", b, ref, source="batch", drift_rows=d))
c, w = mark("write_windows", c, w)
n += len(lw.write_rollups())
mark("write_rollups", c, w)
out["objects"] = n
out["encode_cpu"] = round(spent["encode"], 2)
out["put_cpu"] = round(spent["put"], 2)
print(json.dumps(out))
"""


def phases() -> dict:
    """``mlmon profile``'s steps in a fresh process: [CPU s, wall s] each (see the module)."""
    with tempfile.TemporaryDirectory() as tmp:
        from mlmon.lake.references import save_reference

        rec, ref = Path(tmp) / "records.parquet", Path(tmp) / "ref.parquet"
        records(50_000, 1200).write_parquet(rec)
        save_reference(reference(), ref)
        done = subprocess.run(
            [sys.executable, "-c", _PHASES, str(rec), str(ref), tmp],
            check=True, capture_output=True, text=True, cwd=Path.cwd(),
        )  # fmt: skip
        return json.loads(done.stdout.strip().splitlines()[-1])


def edge_path(windows: int = 150) -> dict:
    """The edge's normal flush: one 5-minute window at a time (``write_window``, its drift
    rows, ``write_rollups``), CPU ms per window; run it with each code base to compare."""
    from mlmon.edge.ingest import WindowAccumulator, drift_rows
    from mlmon.lake.writer import LakeWriter

    ref = reference()
    acc = WindowAccumulator(ref, window=timedelta(minutes=5))
    acc.add(records(20_000, 1))
    ws = acc.pop()[:windows]
    with tempfile.TemporaryDirectory() as d:
        w = LakeWriter(d, collector_id="edge")
        t = time.process_time()
        for x in ws:
            w.write_window("m", x, ref, source="stream", drift_rows=drift_rows(ref, x.profile))
            w.write_rollups()
        cpu = time.process_time() - t
    return {"windows": len(ws), "cpu_ms_per_window": round(1000 * cpu / len(ws), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int)
    ap.add_argument("--days", type=int, default=1200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--memory", action="store_true")
    ap.add_argument(
        "--cases",
        default="one-window,windows-10,windows-240,windows-14400,windows-14400-ordered,"
        "legacy-windows-240,legacy-windows-14400",
    )
    ap.add_argument("--end-to-end", action="store_true", help="time `mlmon profile` as a command")
    ap.add_argument("--before", help="with --end-to-end: a folder with the old code to compare")
    ap.add_argument("--edge-path", action="store_true", help="the edge's one-window flush")
    ap.add_argument("--phases", action="store_true", help="`mlmon profile` step by step")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("path", nargs="?", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        print(json.dumps(memory_case(args.path, args.case)))
    elif args.edge_path:
        print(json.dumps(edge_path()))
    elif args.phases:
        print(json.dumps(phases()))
    elif args.end_to_end:
        for r in end_to_end(args.rows or 50_000, args.days, args.repeat, args.before):
            print(json.dumps(r))
    elif args.memory:
        for r in memory(args.rows or 1_000_000, args.cases.split(",")):
            print(json.dumps(r))
    else:
        print(json.dumps(speed(args.rows or 50_000, args.days, args.repeat)))


if __name__ == "__main__":
    main()

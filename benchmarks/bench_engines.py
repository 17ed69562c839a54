"""Profiling one dataset with Spark local[2], Ray (2 CPUs) and the single-process path.

    python -m benchmarks.bench_engines --rows 1000000 [--files 4] [--engines single,spark,ray]
        [--spark-batch 10000]

Data: benchmarks.common's 25 features (20 numeric, 5 categorical) + latency, over 24 hourly
windows, written once as ``--files`` Parquet files, 250,000 rows at a time (the parent never
holds more: 10M rows need no 10M-row frame). ``--spark-batch`` sets Spark's
``spark.sql.execution.arrow.maxRecordsPerBatch``. Each path runs in its own process (``--run``);
this parent samples the peak resident memory of that process and all its descendants (Spark's
JVM and Python workers, Ray's raylet and workers) with psutil every 0.2 s. Timings exclude
starting Spark or Ray (reported apart): they are the profile call, read to merged windows.
Also checks the three give the same windows (rows per window, counts per feature).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from benchmarks.common import make_frame

T0 = datetime(2026, 10, 1, tzinfo=UTC)


def _write_data(folder: Path, rows: int, files: int, chunk: int = 250_000) -> Path:
    """Write ``files`` Parquet files once, ``chunk`` rows at a time (one row group each).

    Streaming: the parent never holds more than one chunk (~55 MB for 250k rows), whatever
    ``rows`` is. File ``i`` covers the i-th part of the 24 hours, its chunks consecutive
    sub-ranges of it, timestamps sorted within each chunk.
    """
    import pyarrow.parquet as pq

    data = folder / "records"
    data.mkdir()
    per = rows // files
    span_us = int(24 * 3600e6 / files)
    for i in range(files):
        start_us = int((T0 + timedelta(hours=24 * i / files)).timestamp() * 1e6)
        n_chunks = -(-per // chunk)
        writer = None
        for c in range(n_chunks):
            n = min(chunk, per - c * chunk)
            df = make_frame(n, seed=10 + 1000 * i + c)
            rng = np.random.default_rng(1000 * i + c)
            lo = start_us + span_us * c // n_chunks
            us = lo + np.sort(rng.integers(0, span_us // n_chunks, n))
            df = df.with_columns(
                pl.Series("timestamp", us).cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
                pl.lit("1").alias("model_version"),
            )
            t = df.to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(data / f"part-{i:03d}.parquet", t.schema)
            writer.write_table(t)
            del df, t
        if writer is not None:
            writer.close()
    return data


def _summary(windows: list) -> list:
    return [
        [w.start.isoformat(), w.profile.rows, [p.count for p in w.profile.features.values()]]
        for w in windows
    ]


def _run(kind: str, data: Path, ref_path: Path, spark_batch: int) -> dict:
    from mlmon.lake.references import load_reference

    ref = load_reference(ref_path)
    t0 = time.perf_counter()
    if kind == "single":
        from mlmon.edge.ingest import WindowAccumulator, read_records

        started = time.perf_counter()
        acc = WindowAccumulator(ref, window=timedelta(hours=1))
        for f in sorted(data.glob("*.parquet")):
            for batch in read_records(f):
                acc.add(batch)
        windows = acc.pop()
    elif kind == "spark":
        from pyspark.sql import SparkSession

        import mlmon.spark

        os.environ["PYSPARK_PYTHON"] = sys.executable
        spark = (
            SparkSession.builder.master("local[2]")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.driver.memory", "2g")
            .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(spark_batch))
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
        started = time.perf_counter()
        windows = mlmon.spark.profile(spark.read.parquet(str(data)), ref, model="m").windows
    else:
        import ray

        import mlmon.ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        started = time.perf_counter()
        windows = mlmon.ray.profile(ray.data.read_parquet(str(data)), ref, model="m").windows
    done = time.perf_counter()
    rows = sum(w.profile.rows for w in windows)
    return {
        "kind": kind,
        "loadavg_end": os.getloadavg()[0],
        "startup_s": started - t0,
        "profile_s": done - started,
        "rows": rows,
        "windows": _summary(windows),
    }


def _measure(kind: str, data: Path, ref_path: Path, spark_batch: int) -> dict:
    import psutil

    load = os.getloadavg()[0]
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_engines", "--run", kind,
         "--data", str(data), "--ref", str(ref_path), "--spark-batch", str(spark_batch)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.2)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, _ = proc.communicate()
    stop.set()
    th.join()
    if proc.returncode:
        raise SystemExit(f"{kind} failed with exit code {proc.returncode}")
    res = json.loads(out.strip().splitlines()[-1])
    res["peak_rss_mib"] = peak / 2**20
    res["loadavg_start"] = load
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--run", choices=("single", "spark", "ray"))
    ap.add_argument("--data")
    ap.add_argument("--ref")
    ap.add_argument("--engines", default="single,spark,ray")
    ap.add_argument(
        "--spark-batch", type=int, default=10_000,
        help="spark.sql.execution.arrow.maxRecordsPerBatch (Spark's default: 10,000)",
    )  # fmt: skip
    args = ap.parse_args()
    if args.run:
        print(json.dumps(_run(args.run, Path(args.data), Path(args.ref), args.spark_batch)))
        return
    from mlmon.lake.references import save_reference
    from mlmon.profiles.frame import build_reference

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t_write = time.perf_counter()
        data = _write_data(folder, args.rows, args.files)
        size = sum(f.stat().st_size for f in data.glob("*.parquet"))
        print(f"data: {args.rows:,} rows in {args.files} files, {size / 2**20:.0f} MiB, "
              f"written in {time.perf_counter() - t_write:.1f}s", flush=True)  # fmt: skip
        ref_path = folder / "ref.parquet"
        save_reference(build_reference(make_frame(50_000, seed=1)), ref_path)
        results = {}
        for k in args.engines.split(","):
            results[k] = _measure(k, data, ref_path, args.spark_batch)
            r = results[k]
            print(
                f"{k}: profile {r['profile_s']:.1f}s, peak {r['peak_rss_mib']:.0f} MiB", flush=True
            )
    base = results.get("single")
    for k, r in results.items():
        rate = r["rows"] / r["profile_s"]
        line = (
            f"{k:6s} rows={r['rows']:,} startup={r['startup_s']:.1f}s profile={r['profile_s']:.2f}s "
            f"rows/s={rate:,.0f} peak_rss={r['peak_rss_mib']:.0f}MiB "
            f"load1={r['loadavg_start']:.1f}->{r['loadavg_end']:.1f}"
        )
        if base is not None:
            line += f" throughput_vs_single={rate / (base['rows'] / base['profile_s']):.2f}"
            line += f" same_windows={r['windows'] == base['windows']}"
        print(line)


if __name__ == "__main__":
    main()

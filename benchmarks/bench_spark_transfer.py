"""Where Spark's time goes: moving the records into the Python workers vs profiling them.

    python -m benchmarks.bench_spark_transfer

One Spark local[2] session over benchmarks.bench_engines' 1M-row data (4 Parquet files):
a ``mapInArrow`` that only counts the rows it is handed (the cost of reading Parquet in the
JVM and shipping Arrow batches to the Python workers), run twice, then
``mlmon.spark.profile`` of the same DataFrame, then the count again. Wall times per job and
the load average; the first job also starts the Python workers.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.bench_engines import _write_data
from benchmarks.common import make_frame


def main() -> None:
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    import mlmon.spark
    from mlmon.profiles.frame import build_reference

    def count(batches: Iterator[Any]) -> Iterator[Any]:  # nested: pickled by value
        import pyarrow as pa

        n = 0
        for b in batches:
            n += b.num_rows
        yield pa.RecordBatch.from_pylist([{"n": n}])

    tmp = Path(tempfile.mkdtemp(prefix="bench-spark-"))
    try:
        data = _write_data(tmp, 1_000_000, 4)
        ref = build_reference(make_frame(50_000, seed=1))
        spark = (
            SparkSession.builder.master("local[2]")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.driver.memory", "2g")
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
        df = spark.read.parquet(str(data))
        print("partitions", df.rdd.getNumPartitions(), flush=True)
        jobs = [
            ("count-only mapInArrow", lambda: df.mapInArrow(count, "n long").toArrow()),
            ("count-only again", lambda: df.mapInArrow(count, "n long").toArrow()),
            ("mlmon.spark.profile", lambda: mlmon.spark.profile(df, ref, model="m")),
            ("count-only after", lambda: df.mapInArrow(count, "n long").toArrow()),
        ]
        for label, job in jobs:
            t0 = time.perf_counter()
            job()
            print(label, f"{time.perf_counter() - t0:.1f}s", os.getloadavg()[0], flush=True)
        spark.stop()
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()

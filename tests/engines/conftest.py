"""One local Spark session and one local Ray runtime per test worker, each in its own xdist group."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """Real PySpark in local[2] mode (Java 17); the executors run this interpreter and this checkout."""
    import pyspark.sql as pyspark_sql  # in the dev extra: a missing install fails, never skips

    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    session = (
        pyspark_sql.SparkSession.builder.master("local[2]")
        .appName("mlmon-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.driver.memory", "768m")
        # short jobs on 2 shared cores: C1 only (no C2 compile threads), one GC thread
        .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
        .config("spark.sql.session.timeZone", "Asia/Kolkata")  # not UTC: windows must still be UTC
        .config("spark.python.worker.reuse", "true")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


@pytest.fixture(scope="session")
def ray_runtime() -> Iterator[Any]:
    """A local Ray runtime with 2 CPUs, shut down at the end of the session."""
    import ray  # in the dev extra: a missing install fails, never skips

    os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
    # the workers import this checkout through the PYTHONPATH they inherit (a runtime_env
    # would start workers of its own beside the ones ray.init prestarts)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=200 * 1024 * 1024,
    )
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    try:
        yield ray
    finally:
        ray.shutdown()

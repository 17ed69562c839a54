"""mlmon.spark.profile on real PySpark (local[2], Java 17) equals single-process profiling."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import mlmon.spark
from mlmon.errors import SchemaError
from mlmon.lake.writer import LakeWriter
from tests.engines import data

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("spark")]


def _spark_frame(spark: Any, df: pl.DataFrame, tmp_path: Path, name: str) -> Any:
    path = tmp_path / f"{name}.parquet"
    df.write_parquet(path)
    return spark.read.parquet(str(path))


def test_many_partitions_per_window_equal_one_process(spark: Any, tmp_path: Path) -> None:
    df = data.records(6000, 7)
    ref = data.reference()
    want = data.single_process(df, ref, timedelta(hours=1))
    sdf = _spark_frame(spark, df, tmp_path, "records").repartition(
        6
    )  # every hour in every partition
    assert sdf.rdd.getNumPartitions() == 6
    got = mlmon.spark.profile(sdf, ref, model=data.MODEL, window="1h")
    assert got.rows == df.height
    assert len(got.windows) > 30  # hours x versions
    data.assert_same_windows(got.windows, want)


def test_skewed_partitions_and_lake_drift_equal_mlmon_profile(spark: Any, tmp_path: Path) -> None:
    """One partition holds most rows, others a handful or none; the lakes give the same drift."""
    from pyspark.sql import functions as F

    df = data.records(5000, 11)
    ref = data.reference()
    step = timedelta(hours=6)
    sdf = _spark_frame(spark, df, tmp_path, "records")
    # partition 0: every row with x > 1 (most), 1-3: the rest by hash, several empty at 8
    key = F.when(F.col("x") > 1, F.lit(0)).otherwise(F.pmod(F.hash("y"), F.lit(3)) + 1)
    skewed = sdf.repartition(8, key)
    sizes = skewed.rdd.glom().map(len).collect()
    assert max(sizes) > 0.6 * df.height and sizes.count(0) >= 1
    spark_lake, one_lake = tmp_path / "spark-lake", tmp_path / "one-lake"
    writer = LakeWriter(f"file://{spark_lake}", collector_id="spark")
    writer.write_reference(data.MODEL, ref)
    res = mlmon.spark.profile(skewed, ref, model=data.MODEL, window=step, lake=writer)
    assert res.written and {r.table for r in res.written} >= {"profiles", "latency", "drift"}
    data.assert_same_windows(res.windows, data.single_process(df, ref, step))
    data.write_single(one_lake, df, ref, step)
    got, want = data.lake_drift(spark_lake), data.lake_drift(one_lake)
    assert want.height > 0
    assert_frame_equal(got, want, check_exact=False, rel_tol=1e-12, abs_tol=1e-12)


def test_naive_timestamps_are_refused_with_the_column_named(spark: Any, tmp_path: Path) -> None:
    df = data.records(200, 3).with_columns(pl.col("timestamp").dt.replace_time_zone(None))
    sdf = (
        _spark_frame(spark, df, tmp_path, "naive")
        .selectExpr("*", "CAST(timestamp AS TIMESTAMP_NTZ) AS ts_ntz")
        .drop("timestamp")
        .withColumnRenamed("ts_ntz", "timestamp")
    )
    with pytest.raises(Exception, match="naive datetimes") as info:
        mlmon.spark.profile(sdf, data.reference(), model=data.MODEL)
    assert "timestamp" in str(info.value)


def test_missing_feature_columns_are_named_before_any_task(spark: Any, tmp_path: Path) -> None:
    sdf = _spark_frame(spark, data.records(50, 4).drop("k", "c"), tmp_path, "partial")
    with pytest.raises(SchemaError, match="Spark DataFrame has no column 'k', 'c'"):
        mlmon.spark.profile(sdf, data.reference(), model=data.MODEL)

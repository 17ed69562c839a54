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
    """One partition holds most rows, others a handful or none; the lakes give the same drift.

    The reference has segment columns: every window's segment profiles are the same as
    single-process ones, and so is the drift per segment from ``segment_profiles``.
    """
    from pyspark.sql import functions as F

    df = data.records(5000, 11)
    ref = data.reference(segments=True)
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
    tables = {"profiles", "latency", "drift", "segment_profiles"}
    assert res.written and {r.table for r in res.written} >= tables
    want_windows = data.single_process(df, ref, step)
    assert all(w.profile.segments for w in want_windows)
    data.assert_same_windows(res.windows, want_windows)
    data.write_single(one_lake, df, ref, step)
    segments = ref.schema.segment_names
    got, want = data.lake_drift(spark_lake, segments), data.lake_drift(one_lake, segments)
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


def test_executors_get_no_lake_uri_writer_or_secret(
    spark: Any, s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the driver needs lake credentials (docs/security.md).

    The lake is real S3 (moto, IAM enforced) written with the edge role's credentials, given
    to the driver's writer only. Every command Spark pickles for its Python workers is
    recorded as the bytes it ships (``_prepare_for_python_RDD``, the real function, called
    through): the profiler's command holds the reference and the window, and neither the
    secret, the key id, the lake's URI, a writer nor storage options; the environment Spark
    ships to the workers holds none of them either, nor does a worker's own environment.
    """
    import pyspark.core.rdd as spark_rdd

    from tests.s3server import BUCKET

    shipped: list[tuple[bytes, dict[str, str]]] = []
    original = spark_rdd._prepare_for_python_RDD

    def record(sc: Any, command: Any) -> Any:
        out = original(sc, command)
        shipped.append((bytes(out[0]), dict(out[2])))
        return out

    monkeypatch.setattr(spark_rdd, "_prepare_for_python_RDD", record)
    prefix = s3_server.unique_prefix()
    options = s3_server.storage_options("edge", sse_kms_key_id=s3_server.kms_key_arn, prefix=prefix)
    uri = f"s3://{BUCKET}/{prefix}"
    writer = LakeWriter(uri, collector_id="spark", storage_options=options)
    ref = data.reference()
    writer.write_reference(data.MODEL, ref)
    df = data.records(300, 17)
    res = mlmon.spark.profile(
        _spark_frame(spark, df, tmp_path, "records"), ref, model=data.MODEL, window="1d",
        lake=writer,
    )  # fmt: skip
    assert res.rows == df.height and {r.table for r in res.written} >= {"profiles", "drift"}
    profiler = [(c, env) for c, env in shipped if b"PartialProfiler" in c]
    assert len(profiler) == 1  # the command itself, not a broadcast handle to it
    command, env = profiler[0]
    assert b"mlmon.engines.partials" in command
    secrets = [options["key"], options["secret"], prefix, uri, "LakeWriter", "storage_options",
               "endpoint_url", "s3fs"]  # fmt: skip
    for text in secrets:
        assert text.encode() not in command, text
        assert all(text not in f"{k}={v}" for k, v in env.items()), text

    def worker_environment(batches: Any) -> Any:
        import os

        import pyarrow as pa

        for _ in batches:
            pass
        text = "\n".join(f"{k}={v}" for k, v in os.environ.items())
        yield pa.RecordBatch.from_pylist([{"env": text}])

    env_text = spark.range(1).mapInArrow(worker_environment, "env string").first()[0]
    assert "PATH=" in env_text  # a real worker's environment
    for text in (options["key"], options["secret"], prefix):
        assert text not in env_text

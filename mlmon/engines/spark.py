"""Profile a Spark DataFrame of inference records into the lake (``mlmon[spark]``).

Every executor runs :func:`~mlmon.profiles.frame.profile_windows` on the Arrow
batches of its partitions (``DataFrame.mapInArrow``) and emits one serialised
partial profile per partition; the driver collects them (a few KB per window and
feature, never records), merges them per window and writes them with the same
:class:`~mlmon.lake.writer.LakeWriter` as ``mlmon profile``. Only the driver needs
lake credentials.

Example::

    from pyspark.sql import SparkSession
    import mlmon.spark
    from mlmon.lake.references import load_reference

    spark = SparkSession.builder.getOrCreate()
    df = spark.read.parquet("s3://scores/2026-12-05/")
    mlmon.spark.profile(df, load_reference("ref.parquet"), model="risk",
                        window="1h", lake="s3://metrics/lake")
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mlmon.engines.common import EngineResult, finish, parse_window, record_columns
from mlmon.engines.partials import PAYLOAD, merge_partials, partial_batches
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import Reference, Window

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

__all__ = ["partial_windows", "profile"]


def partial_windows(
    df: DataFrame, reference: Reference, *, window: timedelta | str = "1h"
) -> list[Window]:
    """Profile ``df`` in Spark's executors and merge on the driver; returns the windows, writes nothing."""
    step = parse_window(window)
    needed = record_columns(reference, list(df.columns), "the Spark DataFrame")
    ref = reference

    def work(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        yield from partial_batches(batches, ref, step)

    out = df.select(*needed).mapInArrow(work, f"{PAYLOAD} binary")
    payloads = out.toArrow().column(PAYLOAD).to_pylist()
    return merge_partials(payloads, reference)


def profile(
    df: DataFrame,
    reference: Reference,
    *,
    model: str,
    window: timedelta | str = "1h",
    lake: str | LakeWriter | None = None,
    collector_id: str = "spark",
    storage_options: dict[str, Any] | None = None,
    source: str = "batch",
    with_drift: bool = True,
) -> EngineResult:
    """Profile a Spark DataFrame of inference records and write its windows to ``lake``.

    Equal to ``mlmon profile`` of the same records in one process: the same windows,
    counts and sketches, sums up to the order of additions. With ``lake=None`` the
    windows are returned and nothing is written.
    """
    windows = partial_windows(df, reference, window=window)
    return finish(
        windows, reference, model=model, lake=lake, collector_id=collector_id,
        storage_options=storage_options, source=source, with_drift=with_drift,
    )  # fmt: skip

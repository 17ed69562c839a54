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

import io
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mlmon.analysis.drift import method
from mlmon.analysis.thresholds import Thresholds
from mlmon.engines.common import EngineResult, finish, profile_partials
from mlmon.engines.partials import PAYLOAD, PartialProfiler, deserialise
from mlmon.errors import SchemaError
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import Reference, Window

if TYPE_CHECKING:  # pragma: no cover
    import polars as pl
    from pyspark.sql import DataFrame

__all__ = ["drift", "partial_windows", "profile"]


def partial_windows(
    df: DataFrame, reference: Reference, *, window: timedelta | str = "1h"
) -> list[Window]:
    """Profile ``df`` in Spark's executors and merge on the driver; returns the windows, writes nothing."""

    def run(columns: list[str], profiler: PartialProfiler) -> list[bytes]:
        out = df.select(*columns).mapInArrow(profiler.batches, f"{PAYLOAD} binary")
        return out.toArrow().column(PAYLOAD).to_pylist()

    return profile_partials(reference, window, list(df.columns), "the Spark DataFrame", run)


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


def drift(
    profiles: DataFrame,
    references: Mapping[str, Reference],
    *,
    by: str = "day",
    methods: list[str] | None = None,
    thresholds: Thresholds | Mapping[str, Any] | None = None,
) -> pl.DataFrame:
    """Drift per period recomputed in Spark from the lake's ``profiles`` rows (one model's).

    ``profiles`` is the ``profiles`` table of ``mlmon lake ddl --engine spark`` (filtered to
    one model, and to a time range if wanted); ``references`` maps its ``reference_id`` values
    to references (``Lake.reference``). Spark groups the rows by reference and feature; each
    group's windows are merged per period with the lake's ``merge_rows`` and compared with the
    reference in the executors, as ``Lake.drift`` does in one process: the same rows (period,
    feature, method, value, threshold, drifted, count, reference_id). Periods are UTC.

    ``thresholds`` are ``Lake.drift``'s (``{"psi": 0.2, "age": {"js": 0.1}}`` or a
    :class:`~mlmon.analysis.thresholds.Thresholds`): they override the references'
    data-driven thresholds, which override the methods' defaults. They are checked on the
    driver (an unknown method or feature is refused before any task runs).
    """
    import polars as pl

    from mlmon.analysis.periods import period_expr

    for m in methods or ():
        method(m)
    th = Thresholds.parse(thresholds)
    refs = dict(references)
    missing = sorted(
        r[0] for r in profiles.select("reference_id").distinct().collect() if r[0] not in refs
    )
    if missing:
        raise SchemaError(f"profiles name references {missing} that were not given")
    period_expr(by)  # an unknown period is refused on the driver
    if th.features:
        for ref in refs.values():
            th.check_features(ref)

    def work(batch: pa.Table) -> pa.Table:
        from mlmon.analysis.drift import drift_between
        from mlmon.profiles.arrow import merge_rows

        df = pl.from_arrow(batch)
        assert isinstance(df, pl.DataFrame)
        df = df.with_columns(pl.col("window_start").dt.convert_time_zone("UTC"))
        df = df.with_columns(period_expr(by))
        out = []
        for (period, ref_id, feature), current in merge_rows(
            df, ["period", "reference_id", "feature"]
        ):
            ref = refs[ref_id]
            base = ref.profiles.get(feature)
            if base is None:
                continue
            per = th.for_feature(feature, ref.drift_thresholds.get(feature))
            for r in drift_between(base, current, methods, per):
                out.append({"period": period, "feature": feature, **r,
                            "count": current.count, "reference_id": ref_id})  # fmt: skip
        sink = io.BytesIO()
        t = pa.Table.from_pylist(out) if out else pa.table({})
        with pa.ipc.new_stream(sink, t.schema) as w:
            w.write_table(t)
        return pa.table({PAYLOAD: pa.array([sink.getvalue()], pa.binary())})

    cols = [c for c in profiles.columns if c not in ("model", "date")]
    out = (
        profiles.select(*cols)
        .groupBy("reference_id", "feature")
        .applyInArrow(work, f"{PAYLOAD} binary")
    )
    frames: list[pl.DataFrame] = []
    for blob in out.toArrow().column(PAYLOAD).to_pylist():
        t = deserialise(blob)
        if t.num_rows:
            f = pl.from_arrow(t)
            assert isinstance(f, pl.DataFrame)
            frames.append(f)
    if not frames:
        return pl.DataFrame()
    res = pl.concat(frames, how="diagonal_relaxed")
    assert isinstance(res, pl.DataFrame)
    return res.sort("period", "feature", "method")

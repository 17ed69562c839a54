"""Profile a Ray Dataset of inference records into the lake (``mlmon[ray]``).

``Dataset.map_batches`` (``batch_format="pyarrow"``) runs
:func:`~mlmon.profiles.frame.profile_windows` on the Arrow blocks in Ray's
workers; each batch yields one serialised partial profile, the driver merges them
per window and writes them with :class:`~mlmon.lake.writer.LakeWriter`. Only the
driver needs lake credentials.

Example::

    import ray, mlmon.ray
    ds = ray.data.read_parquet("s3://scores/2026-12-05/")
    mlmon.ray.profile(ds, reference, model="risk", window="1h", lake="s3://metrics/lake")
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mlmon.engines.common import EngineResult, finish, profile_partials
from mlmon.engines.partials import PAYLOAD, PartialProfiler
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import Reference, Window

if TYPE_CHECKING:  # pragma: no cover
    from ray.data import Dataset

__all__ = ["partial_windows", "profile"]

#: Rows per ``map_batches`` call: large enough that a partial (a few KB per window and
#: feature) is small next to the records it summarises.
BATCH_ROWS = 262_144


def partial_windows(
    ds: Dataset,
    reference: Reference,
    *,
    window: timedelta | str = "1h",
    batch_size: int = BATCH_ROWS,
) -> list[Window]:
    """Profile ``ds`` in Ray's workers and merge on the driver; returns the windows, writes nothing."""

    def run(columns: list[str], profiler: PartialProfiler) -> list[bytes]:
        out = ds.select_columns(columns).map_batches(
            profiler.table, batch_format="pyarrow", batch_size=batch_size, zero_copy_batch=True
        )
        payloads: list[bytes] = []
        for b in out.iter_batches(batch_format="pyarrow", batch_size=None):
            assert isinstance(b, pa.Table)
            payloads.extend(b.column(PAYLOAD).to_pylist())
        return payloads

    return profile_partials(reference, window, list(ds.columns()), "the Ray Dataset", run)


def profile(
    ds: Dataset,
    reference: Reference,
    *,
    model: str,
    window: timedelta | str = "1h",
    lake: str | LakeWriter | None = None,
    collector_id: str = "ray",
    storage_options: dict[str, Any] | None = None,
    source: str = "batch",
    with_drift: bool = True,
    batch_size: int = BATCH_ROWS,
) -> EngineResult:
    """Profile a Ray Dataset of inference records and write its windows to ``lake``.

    Equal to ``mlmon profile`` of the same records in one process: the same windows,
    counts and sketches, sums up to the order of additions. With ``lake=None`` the
    windows are returned and nothing is written.
    """
    windows = partial_windows(ds, reference, window=window, batch_size=batch_size)
    return finish(
        windows, reference, model=model, lake=lake, collector_id=collector_id,
        storage_options=storage_options, source=source, with_drift=with_drift,
    )  # fmt: skip

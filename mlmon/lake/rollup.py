"""Day rollups: a partition's window profiles merged into one profile per day.

Written by compaction next to the compacted windows, so queries by day,
week, month or for a whole period read one small object per day instead of
every 5-minute window. Queries by hour, or for partial days, still read the
windows.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pyarrow as pa

from mlmon.profiles.arrow import merge_rows, profiles_to_arrow

__all__ = ["ROLLUP_GROUPS", "rollup_rows"]

#: Tables that get day rollups, and the columns that keep rows apart within a day.
ROLLUP_GROUPS: dict[str, tuple[str, ...]] = {
    "profiles": ("model_version", "reference_id", "feature"),
    "latency": ("model_version", "source", "feature"),
}
_SUMMED = {"profiles": "rows", "latency": "errors"}


def rollup_rows(
    table_name: str, data: pl.DataFrame, day_start: datetime, day_end: datetime
) -> pa.Table:
    """Merge a day's window rows of ``table_name`` into one row per group."""
    keys = list(ROLLUP_GROUPS[table_name])
    summed = _SUMMED[table_name]
    # a window's row count repeats on each of its feature rows: count each window once
    windows = data.unique(
        ["window_start", "window_end", "collector_id", "model_version", *keys[:-1]]
    )
    extra = windows.group_by(keys[:-1]).agg(pl.col(summed).fill_null(0).sum())
    merged = merge_rows(data, keys)
    rows = profiles_to_arrow([(key[-1], prof) for key, prof in merged])
    n = rows.num_rows
    meta = pl.DataFrame(
        [dict(zip(keys, key, strict=True)) for key, _ in merged],
        schema={k: data.schema[k] for k in keys},
    )
    meta = meta.join(extra, on=keys[:-1], how="left", nulls_equal=True)
    for name in [*keys[:-1], summed]:
        rows = rows.append_column(name, meta.get_column(name).to_arrow())
    stamp = pa.timestamp("us", tz="UTC")
    rows = rows.append_column("window_start", pa.array([day_start] * n, stamp))
    rows = rows.append_column("window_end", pa.array([day_end] * n, stamp))
    return rows.append_column("collector_id", pa.array(["rollup"] * n, pa.string()))

"""Records per (day, model version) from day rollups: :func:`mlmon.reports.context.window_counts`
without reading every 5-minute window.

A writer's day rollup names, in its metadata, the window objects it holds (``mlmon.covers``),
and those names start with each window's start and end. When a rollup holds one model version
only, that version's earliest start and latest end on that day are the earliest and latest of
the covered names, and its records are the rollup's ``rows``: the same figures as reading the
windows, from one object and the listing. A day whose rollup holds several versions, or two
objects of one window (a late part), is read from its windows, as are partial days and windows
no rollup covers.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import polars as pl

from mlmon.lake.layout import DAY_ROLLUP, LEGACY_DAY_ROLLUP
from mlmon.reports.context import day_version_counts

__all__ = ["rollup_counts"]

_NAME = re.compile(r"^(\d{8}T\d{6}(?:\d{6})?Z)-(\d{8}T\d{6}(?:\d{6})?Z)-")
_SCHEMA: dict[str, Any] = {
    "day": pl.Datetime("us", "UTC"),
    "version": pl.String,
    "first_seen": pl.Datetime("us", "UTC"),
    "last_seen": pl.Datetime("us", "UTC"),
    "count": pl.Int64,
}


def _stamp(text: str) -> datetime:
    text = text if len(text) == 22 else text[:-1] + "000000Z"
    return datetime.strptime(text, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)


def _bounds(covers: set[str]) -> tuple[datetime, datetime] | None:
    """Earliest start and latest end of the covered windows; None when a name does not start
    with its window or two objects share one window (read that day's windows instead)."""
    seen: set[tuple[str, str]] = set()
    for name in covers:
        m = _NAME.match(name)
        if m is None or (m.group(1), m.group(2)) in seen:
            return None
        seen.add((m.group(1), m.group(2)))
    if not seen:
        return None
    return _stamp(min(a for a, _ in seen)), _stamp(max(b for _, b in seen))


def _windows(lake: Any, files: list[str], start: datetime, end: datetime) -> pl.DataFrame:
    if not files:
        return pl.DataFrame(schema=_SCHEMA)
    lf = pl.scan_parquet(files) if lake.storage.is_local else None
    if lf is None:  # through fsspec: the reader's own dataset
        lf = pl.scan_pyarrow_dataset(lake._dataset("profiles", files))
    rows = lf.select("window_start", "window_end", "collector_id", "model_version", "rows")
    rows = rows.filter((pl.col("window_start") >= start) & (pl.col("window_start") < end))
    return day_version_counts(rows).collect().cast(_SCHEMA)  # type: ignore[arg-type]


def _rollup_rows(lake: Any, paths: list[str]) -> pl.DataFrame:
    cols = ["window_start", "model_version", "reference_id", "feature", "rows"]
    if lake.storage.is_local:
        return pl.scan_parquet(paths, include_file_paths="path").select("path", *cols).collect()
    return pl.concat(  # through fsspec, one object at a time (the path is not in the rows)
        [
            pl.scan_pyarrow_dataset(lake._dataset("profiles", [p]))
            .select(cols)
            .collect()
            .with_columns(pl.lit(p).alias("path"))
            for p in paths
        ]
    )


def rollup_counts(lake: Any, model: str, start: datetime, end: datetime) -> pl.DataFrame:
    """``window_counts(lake, model, start, end)``, reading one-version day rollups instead of
    their windows (see the module's docstring); ``lake`` is a :class:`~mlmon.analysis.lake.Lake`."""
    windows = lake.files("profiles", model=model, start=start, end=end)
    rolled = [
        f
        for f in lake.files("profiles", model=model, start=start, end=end, rollup=True)
        if DAY_ROLLUP.match(f.rsplit("/", 1)[-1]) or LEGACY_DAY_ROLLUP.match(f.rsplit("/", 1)[-1])
    ]
    taken: dict[str, tuple[set[str], tuple[datetime, datetime]]] = {}
    for path in rolled:
        covers = lake._rollup_covers(path)
        bounds = _bounds(covers)
        if bounds is not None:
            taken[path] = (covers, bounds)
    parts: list[pl.DataFrame] = []
    if taken:
        rows = _rollup_rows(lake, list(taken))
        for (path,), one in rows.group_by("path"):
            versions = one.get_column("model_version").unique()
            covers, (first, last) = taken[str(path)]
            if versions.len() != 1:  # several versions in one day: read its windows
                del taken[str(path)]
                continue
            # a rollup repeats each (version, reference) group's records on every feature row
            count = int(
                one.group_by("reference_id").agg(pl.col("rows").fill_null(0).first())["rows"].sum()
            )
            parts.append(
                pl.DataFrame(
                    {
                        "day": [one["window_start"][0]],
                        "version": [versions[0]],
                        "first_seen": [first],
                        "last_seen": [last],
                        "count": [count],
                    },
                    schema=_SCHEMA,
                )
            )
    covered = {
        (path.rsplit("/", 2)[-2], name) for path, (covers, _) in taken.items() for name in covers
    }
    rest = [w for w in windows if tuple(w.rsplit("/", 2)[-2:]) not in covered]
    parts.append(_windows(lake, rest, start, end))
    return (
        pl.concat(parts)
        .group_by("day", "version")
        .agg(
            pl.col("first_seen").min(),
            pl.col("last_seen").max(),
            pl.col("count").sum().cast(pl.Int64),
        )
        .sort("day", "version", nulls_last=True)
    )

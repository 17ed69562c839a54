"""Day rollups: a partition's window profiles merged into one profile per day.

Two writers make them, so queries by day, week, month or for a whole period
read one small object per day instead of every 5-minute window (queries by
hour, or for partial days, still read the windows):

* compaction (a reader-side job) writes one next to the compacted windows;
* every :class:`~mlmon.lake.writer.LakeWriter` (the edge included) keeps
  :class:`DayRollups` of the windows it wrote itself and PUTs them as
  ``v1/rollups/{table}/model=/date=/day-{collector_id}.parquet`` (beside the
  table, never inside it: see :mod:`mlmon.lake.layout`). Such an object
  names, in its Parquet metadata (``mlmon.covers``), exactly the window
  objects it holds, so a reader reads it plus whatever it does not cover
  (a window written after it, or after an edge restart without its state):
  never a window twice, never one missed. No listing or reading of the lake
  is needed, so the edge's write-only credentials suffice.

A day whose only window object is the whole UTC day (daily windows) gets no
rollup: it would be a copy of that window and save no read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from mlmon.lake.layout import day_rollup_name
from mlmon.profiles.arrow import merge_rows, profiles_to_arrow

__all__ = ["COVERS_KEY", "ROLLUP_GROUPS", "DayRollups", "day_rollup_name", "rollup_rows"]

#: A day's pending window tables are merged into its rollup once there are this many.
_FOLD_AFTER = 256

#: Parquet metadata key of an edge day rollup: a JSON list of the object names it holds.
COVERS_KEY = b"mlmon.covers"

#: Tables that get day rollups, and the columns that keep rows apart within a day.
ROLLUP_GROUPS: dict[str, tuple[str, ...]] = {
    "profiles": ("model_version", "reference_id", "feature"),
    "latency": ("model_version", "source", "feature"),
    "segment_profiles": ("model_version", "reference_id", "segment", "segment_value", "feature"),
}
_SUMMED = {"profiles": "rows", "latency": "errors", "segment_profiles": "rows"}


def rollup_rows(
    table_name: str, data: pl.DataFrame, day_start: datetime, day_end: datetime
) -> pa.Table:
    """Merge a day's window rows of ``table_name`` into one row per group."""
    keys = list(ROLLUP_GROUPS[table_name])
    summed = _SUMMED[table_name]
    # an object's row count repeats on each of its feature rows: count it on one feature
    # only (two objects of one window, e.g. a late part, both count)
    group, feature = keys[:-1], keys[-1]
    first = pl.col(feature) == pl.col(feature).min().over(group)
    extra = data.filter(first).group_by(group).agg(pl.col(summed).fill_null(0).sum())
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


@dataclass
class _Day:
    rows: pa.Table | None = None  # the rollup so far (merged)
    covers: list[str] = field(default_factory=list)
    new: list[pa.Table] = field(default_factory=list)  # window rows not merged yet
    new_names: list[str] = field(default_factory=list)
    whole_day: bool = False  # the one new window spans the whole day


class DayRollups:
    """The day rollups of one writer's own windows, brought up to date on each :meth:`take`.

    Parameters
    ----------
    state_dir
        Where each day's rollup and the names it covers are kept between runs
        (the edge's state volume); ``None`` keeps them in memory only, so a new
        process starts the day's rollup afresh (windows it does not cover are
        still read one by one).
    keep_days
        Days before the newest one seen whose rollups stay in memory and in
        ``state_dir``. A window for an older day (a backfill of old logs) starts
        that day's rollup afresh, so the rollup then covers fewer windows and the
        others are read one by one: slower, never wrong.
    """

    def __init__(self, state_dir: str | os.PathLike[str] | None = None, keep_days: int = 35):
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.keep_days = keep_days
        self._days: dict[tuple[str, str, date], _Day] = {}
        self._dirty: set[tuple[str, str, date]] = set()
        self._newest: date | None = None

    def _state_path(self, key: tuple[str, str, date]) -> Path | None:
        if self.state_dir is None:
            return None
        table_name, model, day = key
        return self.state_dir / table_name / model / f"{day.isoformat()}.parquet"

    def _load(self, key: tuple[str, str, date]) -> _Day:
        path = self._state_path(key)
        if path is None or not path.exists():
            return _Day()
        try:
            tbl = pq.read_table(path)
        except (OSError, pa.ArrowException):  # a damaged state file: start the day afresh
            return _Day()
        covers = json.loads((tbl.schema.metadata or {}).get(COVERS_KEY, b"[]"))
        return _Day(tbl.replace_schema_metadata(None), list(covers))

    def add(
        self,
        table_name: str,
        model: str,
        day: date,
        name: str,
        rows: pa.Table,
        *,
        whole_day: bool = False,
    ) -> None:
        """Count a window object ``name`` (its rows as written) into its day's rollup.

        ``whole_day``: the window is exactly the UTC day. A day whose rollup would
        hold only such a window gets none (:meth:`take` skips it): it would copy the
        window and save no read (daily windows, e.g. ``mlmon profile --window 1d``).
        """
        if table_name not in ROLLUP_GROUPS:
            return
        if self._newest is None or day > self._newest:
            self._newest = day
        key = (table_name, model, day)
        d = self._days.get(key)
        if d is None:
            d = self._days[key] = self._load(key)
        if name in d.covers or name in d.new_names:  # a retried PUT of the same window
            return
        d.whole_day = whole_day and not d.new and d.rows is None
        d.new.append(rows)
        d.new_names.append(name)
        self._dirty.add(key)
        if len(d.new) >= _FOLD_AFTER:  # bound the memory of a writer that rarely takes
            self._fold(key, d)

    @staticmethod
    def _fold(key: tuple[str, str, date], d: _Day) -> None:
        """Merge the day's new window rows into its rollup."""
        table_name, _model, day = key
        parts = ([d.rows] if d.rows is not None else []) + d.new
        data = pl.concat([pl.DataFrame(p) for p in parts], how="diagonal_relaxed", rechunk=False)
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        d.rows = rollup_rows(table_name, data, start, start + timedelta(days=1))
        d.covers = sorted({*d.covers, *d.new_names})
        d.new, d.new_names = [], []

    def take(self) -> list[tuple[str, str, date, pa.Table]]:
        """The rollups changed since the last call, as ``(table, model, day, rows)``.

        ``rows`` carries the covered object names in its schema metadata under
        :data:`COVERS_KEY`; with a ``state_dir`` each is also saved there.
        """
        out = []
        for key in sorted(self._dirty):
            d = self._days.get(key)
            if d is None:
                continue
            if d.rows is None and len(d.new) == 1 and d.whole_day:
                continue  # the rollup would be a copy of its one window: the window is read
            if d.new:
                self._fold(key, d)
            if d.rows is None:
                continue
            table_name, model, day = key
            tagged = d.rows.replace_schema_metadata({COVERS_KEY: json.dumps(d.covers).encode()})
            path = self._state_path(key)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                pq.write_table(tagged, tmp)
                os.replace(tmp, path)
            out.append((table_name, model, day, tagged))
        self._dirty.clear()
        if self._newest is not None:  # forget days past the horizon, in memory and on disk
            horizon = self._newest - timedelta(days=self.keep_days)
            for k in [k for k in self._days if k[2] < horizon]:
                del self._days[k]
            if self.state_dir is not None and self.state_dir.exists():
                for f in self.state_dir.glob("*/*/*.parquet"):
                    try:
                        old = date.fromisoformat(f.stem) < horizon
                    except ValueError:
                        continue
                    if old:
                        f.unlink(missing_ok=True)
        return out

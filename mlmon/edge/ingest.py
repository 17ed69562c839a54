"""Records to windows to lake objects: shared by ``mlmon profile`` and the edge's streams.

Records arrive in batches; :class:`WindowAccumulator` splits each batch by
window of prediction time and model version and merges it into that
window's profile, so a window that spans batches is written once, whole.
Memory is one batch plus one small profile per open window.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from mlmon.analysis.drift import (
    DriftColumns,
    drift_between,
    drift_columns_many,
    drift_features_many,
)
from mlmon.analysis.thresholds import Thresholds
from mlmon.errors import ConfigError, SchemaError
from mlmon.lake.writer import DriftRows, LakeWriter, WriteRecord
from mlmon.profiles.frame import (
    OpenWindows,
    Reference,
    Window,
    WindowProfile,
    profile_windows,
    to_polars,
    utc_timestamps,
)

__all__ = [
    "FORMATS",
    "INCOMPLETE",
    "Chunks",
    "WindowAccumulator",
    "chunk_windows",
    "drift_rows",
    "drift_rows_many",
    "drift_table_many",
    "read_records",
    "record_format",
]

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}  # fmt: skip


#: Windows written per :meth:`LakeWriter.write_windows` call when flushing (bounds memory).
_WRITE_BATCH = 2048


def record_format(path: str | os.PathLike[str]) -> str:
    suffix = Path(path).suffix.lower()
    try:
        return FORMATS[suffix]
    except KeyError as exc:
        raise SchemaError(
            f"{path}: unknown record file type {suffix!r}; use one of {', '.join(sorted(FORMATS))}"
        ) from exc


def read_records(
    path: str | os.PathLike[str], *, batch_rows: int = 250_000
) -> Iterator[pl.DataFrame]:
    """Yield batches of records from a Parquet, CSV or JSONL file.

    Raises
    ------
    SchemaError
        The file cannot be parsed; the message names the file.
    """
    fmt = record_format(path)
    p = os.fspath(path)
    try:
        if fmt == "parquet":
            pf = pq.ParquetFile(p)
            for batch in pf.iter_batches(batch_size=batch_rows):
                yield pl.from_arrow(pa.Table.from_batches([batch]))  # type: ignore[misc]
            return
        lf = pl.scan_csv(p) if fmt == "csv" else pl.scan_ndjson(p, infer_schema_length=10_000)
        yield from lf.collect_batches(chunk_size=batch_rows)
    except (pa.ArrowInvalid, pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise SchemaError(f"{p}: cannot read {fmt} records: {exc}") from exc


def drift_rows(
    reference: Reference,
    profile: WindowProfile,
    methods: Any = None,
    thresholds: Thresholds | None = None,
) -> list[dict[str, Any]]:
    """Drift of one window against the reference, as rows of the ``drift`` table.

    Thresholds: ``thresholds`` (per feature, then per method), then the
    reference's data-driven ones, then the methods' defaults.
    """
    th = thresholds or Thresholds()
    rows = []
    for name, current in profile.features.items():
        ref = reference.profiles[name]
        per = th.for_feature(name, reference.drift_thresholds.get(name))
        for r in drift_between(ref, current, methods, per):
            rows.append({"feature": name, **r, "count": current.count})
    return rows


def drift_rows_many(
    reference: Reference,
    profiles: list[WindowProfile],
    methods: Any = None,
    thresholds: Thresholds | None = None,
) -> list[list[dict[str, Any]]]:
    """:func:`drift_rows` of many windows: one list of rows per window, in the same order.

    Each feature's drift is computed for all windows at once
    (:func:`mlmon.analysis.drift.drift_between_many`); the rows are those of
    :func:`drift_rows` on each window (KS p-values within 1e-14, every other value equal).
    """
    if not profiles:
        return []
    names = list(profiles[0].features)
    if any(list(p.features) != names for p in profiles):  # not one feature set: one by one
        return [drift_rows(reference, p, methods, thresholds) for p in profiles]
    th = thresholds or Thresholds()
    out: list[list[dict[str, Any]]] = [[] for _ in profiles]
    features = [
        (
            reference.profiles[name],
            [p.features[name] for p in profiles],
            th.for_feature(name, reference.drift_thresholds.get(name)),
        )
        for name in names
    ]
    for name, (_, currents, _), per_window in zip(
        names, features, drift_features_many(features, methods), strict=True
    ):
        for rows, cur, dest in zip(per_window, currents, out, strict=True):
            dest.extend({"feature": name, **r, "count": cur.count} for r in rows)
    return out


def drift_table_many(
    reference: Reference,
    profiles: list[WindowProfile],
    methods: Any = None,
    thresholds: Thresholds | None = None,
) -> DriftRows:
    """:func:`drift_rows_many` as one Arrow table (what :meth:`LakeWriter.write_windows`
    writes), built from the arrays of :func:`~mlmon.analysis.drift.drift_columns_many`
    without a dict per row: the same rows, in the same order, with the same values."""
    names = list(profiles[0].features) if profiles else []
    if not profiles or any(list(p.features) != names for p in profiles):
        rows = [drift_rows(reference, p, methods, thresholds) for p in profiles]
        flat = [r for d in rows for r in d]
        keys = list(dict.fromkeys(k for d in rows if d for k in d[0]))
        return DriftRows(
            pa.Table.from_pydict({k: [r.get(k) for r in flat] for k in keys}),
            [len(d) for d in rows],
        )
    th = thresholds or Thresholds()
    features = [
        (
            reference.profiles[name],
            [p.features[name] for p in profiles],
            th.for_feature(name, reference.drift_thresholds.get(name)),
        )
        for name in names
    ]
    slots: list[tuple[str, DriftColumns, np.ndarray]] = []
    for name, (_, currents, _), per_method in zip(
        names, features, drift_columns_many(features, methods), strict=True
    ):
        count = np.array([c.count for c in currents], dtype=np.int64)
        slots += [(name, cols, count) for cols in per_method]
    w, s = len(profiles), len(slots)
    if s == 0:
        return DriftRows(pa.table({}), [0] * w)

    def grid(get: Any) -> np.ndarray:  # window-major: window i's slots, then window i + 1's
        return np.stack([get(slot) for slot in slots], axis=1).ravel()

    def masked(get: Any, has: Any) -> pa.Array:
        return pa.array(grid(get), mask=~grid(has))

    tile = pa.array(np.tile(np.arange(s, dtype=np.int64), w))
    thresholds_ = [c.threshold for _, c, _ in slots]
    table = pa.table(
        {
            "feature": pa.array([n for n, _, _ in slots], pa.string()).take(tile),
            "method": pa.array([c.method for _, c, _ in slots], pa.string()).take(tile),
            "value": grid(lambda x: x[1].value),
            "threshold": pa.array(thresholds_).take(tile),
            "drifted": grid(lambda x: x[1].drifted),
            "statistic": masked(lambda x: x[1].statistic, lambda x: x[1].has_statistic),
            "dof": masked(lambda x: x[1].dof, lambda x: x[1].has_dof),
            "p_value": masked(lambda x: x[1].p_value, lambda x: x[1].has_p_value),
            "count": grid(lambda x: x[2]),
        }
    )
    return DriftRows(table, [s] * w)


#: What :func:`chunk_windows` does with the last chunk when it has fewer than ``rows`` records
#: (NannyML's ``SizeBasedChunker(incomplete=...)``; ``keep`` is its default and ours).
INCOMPLETE = {
    "keep": "the last chunk is kept with fewer records",
    "drop": "the records of the last chunk are not profiled",
    "append": "the records of the last chunk join the chunk before it (which then has more)",
}


@dataclass(frozen=True)
class Chunks:
    """Row-count chunks as windows, with their ``part`` labels and what was left out."""

    windows: list[Window]
    parts: list[str]
    chunks: int
    dropped: int


def chunk_windows(
    data: Any, reference: Reference, *, rows: int, incomplete: str = "keep"
) -> Chunks:
    """Split records into chunks of ``rows`` records in timestamp order and profile each.

    NannyML's ``chunk_size``: the records are ordered by time (records with the same
    timestamp keep their order), chunk ``i`` holds records ``i*rows`` to
    ``(i+1)*rows - 1``, and the last, smaller chunk is kept, dropped or appended to
    the chunk before it as ``incomplete`` says (:data:`INCOMPLETE`; with fewer than
    ``rows`` records in all there is one chunk, which ``drop`` drops).
    A chunk becomes a window from its first timestamp to just after its last
    (``window_end`` is exclusive: last + 1 microsecond), split by model version like
    every window; its objects carry ``part`` ``chunk{i}``, so two chunks with the
    same bounds (many records at one instant) never share a key. The window lives
    in the ``date=`` partition of its first record, and retention removes it whole
    with that day.

    Raises
    ------
    ConfigError
        ``rows`` below 1 or an unknown ``incomplete``.
    SchemaError, TimestampError
        As :func:`~mlmon.profiles.frame.profile_windows`.
    """
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise ConfigError(f"chunk rows must be a whole number >= 1, got {rows!r}")
    if incomplete not in INCOMPLETE:
        raise ConfigError(
            f"incomplete {incomplete!r} is not one of {', '.join(INCOMPLETE)} "
            "(what to do with a last chunk of fewer records)"
        )
    frame = to_polars(data)
    if frame.height == 0:
        return Chunks([], [], 0, 0)
    column = reference.schema.timestamp
    epoch = utc_timestamps(frame, column).dt.epoch("us").to_numpy()
    order = np.argsort(epoch, kind="stable")
    if not bool(np.all(order[1:] > order[:-1])):  # not already in time order
        frame = frame[pl.Series(order)]
        epoch = epoch[order]
    n = frame.height
    full, rest = divmod(n, rows)
    chunk = np.arange(n, dtype=np.int64) // rows
    dropped = 0
    if rest and incomplete == "drop":
        dropped, n = rest, n - rest
        frame, epoch, chunk = frame.head(n), epoch[:n], chunk[:n]
    elif rest and incomplete == "append" and full:
        chunk[full * rows :] = full - 1
    if n == 0:
        return Chunks([], [], 0, dropped)
    n_chunks = int(chunk[-1]) + 1
    first = np.searchsorted(chunk, np.arange(n_chunks), side="left")
    last = np.searchsorted(chunk, np.arange(n_chunks), side="right") - 1
    # profile_windows groups the records by window of their timestamp: give chunk i the
    # timestamps of second i (the chunks are then its one-second windows, in order)
    seconds = pl.Series(column, chunk * 1_000_000).cast(pl.Datetime("us", "UTC"))
    windows, parts = [], []
    for w in profile_windows(frame.with_columns(seconds), reference, window=timedelta(seconds=1)):
        i = int(w.start.timestamp())
        start = _EPOCH + timedelta(microseconds=int(epoch[first[i]]))
        end = _EPOCH + timedelta(microseconds=int(epoch[last[i]]) + 1)
        windows.append(Window(start, end, w.version, w.profile))
        parts.append(f"chunk{i}")
    return Chunks(windows, parts, n_chunks, dropped)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class WindowAccumulator(OpenWindows):
    """Merge batches into per-(window, version) profiles until they are flushed to the lake."""

    def flush(
        self,
        writer: LakeWriter,
        model: str,
        *,
        closed_before: datetime | None = None,
        source: str = "stream",
        methods: Any = None,
        with_drift: bool = True,
    ) -> list[WriteRecord]:
        """Write the windows (all, or those closed before ``closed_before``), then the day rollups.

        Windows go to :meth:`LakeWriter.write_windows` ``_WRITE_BATCH`` at a time: the
        same objects and rows as writing them one by one, built once per batch.
        """
        out: list[WriteRecord] = []
        windows = self.pop(closed_before=closed_before)
        batches = -(-len(windows) // _WRITE_BATCH)
        size = -(-len(windows) // batches) if batches else 0  # batches of equal size
        for i in range(0, len(windows), max(size, 1)):
            batch = windows[i : i + size]
            drift = (
                drift_table_many(self.reference, [w.profile for w in batch], methods)
                if with_drift
                else None
            )
            out.extend(
                writer.write_windows(model, batch, self.reference, source=source, drift_rows=drift)
            )
        out.extend(writer.write_rollups())
        return out

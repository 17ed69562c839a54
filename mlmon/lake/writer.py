"""The append-only lake writer: deterministic keys, one PUT per object.

It never lists, reads or deletes, so the edge can run with credentials that
allow only ``s3:PutObject`` on its prefix. A retried write of the same
window builds the same bytes under the same key, so retries are idempotent
and a crash never leaves a partial object visible.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from mlmon.errors import ConfigError, TimestampError
from mlmon.lake.freetext import VersionGuard
from mlmon.lake.layout import (
    STATISTICS_COLUMNS,
    WINDOW_CODEC,
    day_rollup_name,
    partition,
    rollup_prefix,
)
from mlmon.lake.rollup import DayRollups
from mlmon.lake.schema import SCHEMA_VERSION, table
from mlmon.lake.storage import Storage, open_storage, put_object
from mlmon.profiles.arrow import profiles_to_arrow
from mlmon.profiles.frame import Reference, Window, WindowProfile
from mlmon.profiles.multivariate import MULTIVARIATE
from mlmon.profiles.performance import PerformanceProfile, performance_to_row

__all__ = [
    "DriftRows",
    "LakeWriter",
    "WriteRecord",
    "check_name",
    "parquet_bytes",
    "reference_rows",
    "window_parquet_bytes",
]

#: :meth:`LakeWriter.write_windows` encodes objects on two threads from this many on.
_THREADED_ENCODE = 16
#: Objects encoded per thread task by ``write_windows`` (few tasks, PUTs start early).
_ENCODE_RUN = 32
#: Windows whose tables ``write_windows`` builds at a time (encoded while the next are built).
_BUILD_RUN = 128

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_name(value: str, what: str) -> str:
    """Model names and collector ids become path segments: keep them to a safe alphabet."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise ConfigError(
            f"{what} {value!r} is not usable in lake paths; use 1-128 characters from "
            "letters, digits, '.', '_' and '-', starting with a letter or digit"
        )
    return value


def _utc(ts: datetime, what: str) -> datetime:
    if ts.tzinfo is None:
        raise TimestampError(f"{what} {ts.isoformat()} is naive; pass a UTC-aware datetime")
    return ts.astimezone(UTC)


def _stamp(ts: datetime) -> str:
    return ts.strftime("%Y%m%dT%H%M%S") + (f"{ts.microsecond:06d}" if ts.microsecond else "") + "Z"


@dataclass(frozen=True)
class WriteRecord:
    """What one PUT wrote: for logs and the audit trail (never the content)."""

    table: str
    path: str
    bytes: int
    sha256: str
    rows: int


def _is_whole_day(start: datetime, end: datetime) -> bool:
    """A window that is exactly one UTC day (its day rollup would be the window itself)."""
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
    return start == midnight and end == midnight + timedelta(days=1)


def parquet_bytes(data: pa.Table) -> bytes:
    """Serialise deterministically (same table -> same bytes): zstd, every column's
    statistics (day rollups, compacted objects, saved references)."""
    buf = io.BytesIO()
    # no dictionary pages: these objects are small (one window), where dictionaries cost more
    # than they save (measured: 10% smaller files, 25-55% less time with zstd alone)
    pq.write_table(data, buf, compression="zstd", write_statistics=True, use_dictionary=False)
    return buf.getvalue()


def window_parquet_bytes(data: pa.Table) -> bytes:
    """Serialise one window object deterministically (same table -> same bytes).

    :data:`~mlmon.lake.layout.WINDOW_CODEC` and statistics only on the columns readers
    filter on (:data:`~mlmon.lake.layout.STATISTICS_COLUMNS`): a window object is a few
    rows, where the per-column fixed cost of zstd and of min/max statistics on list
    columns is most of the encoding time (``benchmarks/RESULTS.md``, issue 19). No Arrow
    schema in the footer (``ARROW:schema``): the Parquet types give the same Arrow types
    back (timestamps in UTC, lists of ``element``), and it is a fifth of a small file.
    """
    names = set(data.schema.names)
    stats = [c for c in STATISTICS_COLUMNS if c in names]
    buf = pa.BufferOutputStream()  # a native buffer: no GIL while pyarrow writes to it
    pq.write_table(
        data, buf, compression=WINDOW_CODEC, write_statistics=stats, use_dictionary=False,
        store_schema=False,
    )  # fmt: skip
    return bytes(buf.getvalue())


def reference_rows(reference: Reference) -> pa.Table:
    """The ``references`` table rows of a reference (latency included as its own row)."""
    items: list[tuple[str, Any]] = list(reference.profiles.items())
    if reference.latency is not None and reference.schema.latency:
        items.append((reference.schema.latency, reference.latency))
    mv = reference.multivariate
    if mv is not None:
        items.append((MULTIVARIATE, mv.profile))
    rows = profiles_to_arrow(items)
    n_overall = rows.num_rows
    seg_names: list[str | None] = [None] * n_overall
    seg_values: list[str | None] = [None] * n_overall
    if reference.segment_profiles:  # each segment's reference profiles, after the overall rows
        parts = [rows]
        for key in sorted(reference.segment_profiles):
            name, _, value = key.partition("=")
            part = profiles_to_arrow(list(reference.segment_profiles[key].items()))
            seg_names += [name] * part.num_rows
            seg_values += [value] * part.num_rows
            parts.append(part)
        rows = pa.concat_tables(parts)
    n = rows.num_rows
    extra = {
        "segment": pa.array(seg_names, pa.string()),
        "segment_value": pa.array(seg_values, pa.string()),
        "reference_id": pa.array([reference.reference_id] * n, pa.string()),
        "created_at": pa.array([reference.created_at] * n, pa.timestamp("us", tz="UTC")),
        "rows": pa.array([reference.rows] * n, pa.int64()),
        "schema_json": pa.array([json.dumps(reference.schema.to_dict(), sort_keys=True)] * n),
        "drift_thresholds_json": pa.array(
            [
                json.dumps(reference.drift_thresholds[f], sort_keys=True)
                if f in reference.drift_thresholds
                else None
                for f in rows.column("feature").to_pylist()
            ],
            pa.string(),
        ),
        "binning": pa.array(
            [reference.binning.get(f) for f in rows.column("feature").to_pylist()],
            pa.string(),
        ),
    }
    if mv is not None:
        model_json = json.dumps(mv.to_dict(), sort_keys=True)
        extra["multivariate_json"] = pa.array(
            [model_json if f == MULTIVARIATE else None for f in rows.column("feature").to_pylist()],
            pa.string(),
        )
    for name, arr in extra.items():
        rows = rows.append_column(name, arr)
    return table("references").conform(rows)


def segment_rows(prof: WindowProfile) -> pa.Table:
    """The ``segment_profiles`` rows of a window profile's segments (no window columns yet).

    A segment key ``"scanner=GE"`` is split into ``segment`` and ``segment_value``;
    values are allow-listed by the reference (anything else was profiled as ``__other__``).
    """
    parts = []
    for key in sorted(prof.segments):
        seg = prof.segments[key]
        name, _, value = key.partition("=")
        rows = profiles_to_arrow(list(seg.features.items()))
        n = rows.num_rows
        rows = rows.append_column("segment", pa.array([name] * n, pa.string()))
        rows = rows.append_column("segment_value", pa.array([value] * n, pa.string()))
        rows = rows.append_column("rows", pa.array([seg.rows] * n, pa.int64()))
        parts.append(rows)
    return pa.concat_tables(parts)


def performance_row(
    prof: PerformanceProfile,
    *,
    role: str,
    reference_id: str,
    collector_id: str,
    start: datetime,
    end: datetime,
    version: str | None,
    batch_id: str | None = None,
) -> dict[str, Any]:
    """One ``performance`` table row: the window columns, the role and the profile's fields."""
    return {
        "model_version": version,
        "window_start": start,
        "window_end": end,
        "collector_id": collector_id,
        "reference_id": reference_id,
        "role": role,
        "batch_id": batch_id,
        **performance_to_row(prof),
    }


@dataclass(frozen=True)
class DriftRows:
    """The drift rows of many windows as one table: window ``i``'s ``counts[i]`` rows
    follow window ``i - 1``'s. Columns: those of a :func:`~mlmon.edge.ingest.drift_rows`
    row (the ``drift`` table's columns but the window's own)."""

    table: pa.Table
    counts: Sequence[int]


class _EncodePool:
    """Two threads that encode window objects (Parquet encoding releases the GIL) and
    hash them; the writer PUTs them, in order, on its own thread.

    Runs of objects are taken lowest window first, so a window's last objects (its drift
    rows, queued after the others) are encoded before the objects of later windows and
    the PUTs, in window order, start early.
    """

    def __init__(self, threads: int = 2) -> None:
        self._queue: queue.PriorityQueue[tuple[int, int, int, Any]] = queue.PriorityQueue()
        self._seq = 0
        self._threads = [
            threading.Thread(target=self._work, name="mlmon-encode", daemon=True)
            for _ in range(threads)
        ]
        for t in self._threads:
            t.start()

    def submit(
        self,
        jobs: list[list[tuple[str, pa.Table, str]]],
        blobs: list[list[Any]],
        phase: int,
        offset: int = 0,
    ) -> None:
        """Queue each window's jobs ``(table, rows, path)``, in runs of about
        ``_ENCODE_RUN`` objects; each job's future is appended to its window's list in
        ``blobs`` (window ``offset + i`` for ``jobs[i]``)."""
        run: list[tuple[pa.Table, Future[tuple[bytes, str]]]] = []
        first = 0
        for i, mine in enumerate(jobs):
            if not run:
                first = offset + i
            for job in mine:
                fut: Future[tuple[bytes, str]] = Future()
                blobs[offset + i].append(fut)
                run.append((job[1], fut))
            if len(run) >= _ENCODE_RUN or i == len(jobs) - 1:
                if run:
                    self._seq += 1
                    self._queue.put((first, phase, self._seq, run))
                run = []

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item[3] is None:
                return
            for data, fut in item[3]:
                if not fut.set_running_or_notify_cancel():
                    continue
                try:
                    blob = window_parquet_bytes(data)
                    fut.set_result((blob, hashlib.sha256(blob).hexdigest()))
                except BaseException as exc:  # handed to the PUT loop
                    fut.set_exception(exc)

    def close(self) -> None:
        """Stop the threads once they are idle (queued runs left are dropped)."""
        while True:
            try:
                _, _, _, run = self._queue.get_nowait()
            except queue.Empty:
                break
            for _, fut in run or []:
                fut.cancel()
        for _ in self._threads:
            self._queue.put((1 << 62, 0, 0, None))
        for t in self._threads:
            t.join()


class LakeWriter:
    """Write lake tables under ``{root}/v1/{table}/model=/date=/``.

    Parameters
    ----------
    lake
        Lake URI (``file://...``, a path, ``s3://bucket/prefix``) or an open :class:`Storage`.
    collector_id
        Id of this writer; part of every key, so two collectors never overwrite each other.
    storage_options
        Filesystem options (see :func:`mlmon.lake.storage.open_storage`).
    k_anonymity
        Kept so existing callers and ``edge.yaml`` files keep working; it no longer
        changes what is written. Windows are written with exact counts of the
        allow-listed categories (values outside the allow-list are ``__other__``, as in
        the reference), so merged periods give exactly the drift of their raw records;
        small counts are suppressed where counts are shown or exported (reports, see
        ``docs/security.md``, "Exact categorical counts").
    on_write
        Called with a :class:`WriteRecord` after every successful PUT (audit hook).
    put
        The transport: ``put(storage, path, data)``; default :func:`put_object`. The edge
        passes its on-disk spool here so writes survive a bucket outage.
    versions
        The :class:`~mlmon.lake.freetext.VersionGuard` every ``model_version`` passes
        before it is written or used in a key: a value that is not a version string is
        replaced by its keyed hash (the edge passes one with its HMAC key) or, with the
        default unkeyed guard, dropped.
    day_rollups
        Keep a day rollup of the ``profiles`` and ``latency`` windows this writer writes
        and PUT it with :meth:`write_rollups` (see :mod:`mlmon.lake.rollup`): ``True``
        keeps them in memory, a folder keeps them there between runs (the edge's
        state volume), ``False`` writes none.
    """

    def __init__(
        self,
        lake: str | Storage,
        *,
        collector_id: str,
        storage_options: dict[str, Any] | None = None,
        k_anonymity: int = 5,
        on_write: Callable[[WriteRecord], None] | None = None,
        put: Callable[[Storage, str, bytes], object] = put_object,
        day_rollups: bool | str | os.PathLike[str] = True,
        versions: VersionGuard | None = None,
    ) -> None:
        self.storage = lake if isinstance(lake, Storage) else open_storage(lake, storage_options)
        self.collector_id = check_name(collector_id, "collector id")
        if k_anonymity < 1:
            raise ConfigError(f"k_anonymity must be >= 1, got {k_anonymity}")
        self.k_anonymity = k_anonymity
        self.on_write = on_write
        self._put = put
        self.versions = versions if versions is not None else VersionGuard()
        self.rollups: DayRollups | None = None
        if day_rollups is not False:
            self.rollups = DayRollups(None if day_rollups is True else day_rollups)

    def object_path(
        self,
        table_name: str,
        model: str,
        window_start: datetime,
        window_end: datetime,
        *,
        part: str | None = None,
    ) -> str:
        """The deterministic key of one (table, model, window, collector[, part]) object."""
        table(table_name)
        check_name(model, "model name")
        start, end = _utc(window_start, "window_start"), _utc(window_end, "window_end")
        name = f"{_stamp(start)}-{_stamp(end)}-{self.collector_id}"
        if part:
            name += f"-{part}"
        return self.storage.path(
            f"v{SCHEMA_VERSION}",
            table_name,
            f"model={model}",
            f"date={start.date().isoformat()}",
            f"{name}.parquet",
        )

    def write_table(
        self,
        table_name: str,
        model: str,
        rows: pa.Table | pl.DataFrame,
        window_start: datetime,
        window_end: datetime,
        *,
        part: str | None = None,
    ) -> WriteRecord:
        """Conform ``rows`` to the table's schema and PUT them as one object."""
        data = rows.to_arrow() if isinstance(rows, pl.DataFrame) else rows
        data = table(table_name).conform(data)
        data = self.versions.table(data, f"the {table_name} rows of model {model}")
        return self._put_rows(table_name, model, data, window_start, window_end, part)

    def _write(
        self,
        table_name: str,
        path: str,
        data: pa.Table,
        blob: bytes | None = None,
        *,
        digest: str | None = None,
    ) -> WriteRecord:
        blob = window_parquet_bytes(data) if blob is None else blob
        self._put(self.storage, path, blob)
        if digest is None:
            digest = hashlib.sha256(blob).hexdigest()
        rec = WriteRecord(table_name, path, len(blob), digest, data.num_rows)
        if self.on_write is not None:
            self.on_write(rec)
        return rec

    def write_rollups(self) -> list[WriteRecord]:
        """PUT the day rollups that changed since the last call (after their windows).

        They go to ``v1/rollups/{table}/model=/date=/day-{collector}.parquet``, outside
        the table's own prefix, so a glob over the table never meets them.
        """
        if self.rollups is None:
            return []
        out = []
        for table_name, model, day, rows in self.rollups.take():
            path = self.storage.path(
                rollup_prefix(table_name), partition(model, day), day_rollup_name(self.collector_id)
            )
            data = table(table_name).conform(rows).replace_schema_metadata(rows.schema.metadata)
            out.append(self._write(table_name, path, data, parquet_bytes(data)))
        return out

    def _window_columns(self, data: pa.Table, window: Window, **extra: Any) -> pa.Table:
        n = data.num_rows
        cols = {
            "model_version": pa.array([self.versions(window.version)] * n, pa.string()),
            "window_start": pa.array([window.start] * n, pa.timestamp("us", tz="UTC")),
            "window_end": pa.array([window.end] * n, pa.timestamp("us", tz="UTC")),
            "collector_id": pa.array([self.collector_id] * n, pa.string()),
        }
        for k, v in extra.items():
            cols[k] = pa.array([v] * n)
        for name, arr in cols.items():
            data = data.append_column(name, arr)
        return data

    def _version_part(self, version: str | None) -> str | None:
        version = self.versions(version)  # a key never hashes a value the lake would not take
        if version is None:
            return None
        return "v" + hashlib.sha256(version.encode()).hexdigest()[:10]

    def write_window(
        self,
        model: str,
        window: Window,
        reference: Reference,
        *,
        source: str = "stream",
        drift_rows: Iterable[dict[str, Any]] | None = None,
        errors: int = 0,
        part: str | None = None,
    ) -> list[WriteRecord]:
        """Write one window: feature profiles (exact allow-listed counts), latency and, if given, drift rows.

        The key carries ``source``, the model version and ``part``, so a collector's
        stream, batch and probe windows, two versions served at once, and a late
        part of an already written window never share a key.
        """
        part = "-".join(p for p in (source, self._version_part(window.version), part) if p)
        # Exact allow-listed counts, never folded per window: folding a 5-minute window
        # (k=5 at 40 records a day) put every count into __other__ and made every
        # merged month drift (issue 19). Small counts are protected where shown.
        prof = window.profile
        out = []
        items: list[tuple[str, Any]] = list(prof.features.items())
        if (
            prof.multivariate is not None
        ):  # merged like any numeric feature (see Lake.multivariate_drift)
            items.append((MULTIVARIATE, prof.multivariate))
        rows = profiles_to_arrow(items)
        rows = self._window_columns(
            rows, window, reference_id=reference.reference_id, rows=prof.rows
        )
        out.append(self.write_table("profiles", model, rows, window.start, window.end, part=part))
        if prof.segments:  # one object for all segments of the window (see segment_rows)
            seg = self._window_columns(
                segment_rows(prof), window, reference_id=reference.reference_id
            )
            out.append(
                self.write_table(
                    "segment_profiles", model, seg, window.start, window.end, part=part
                )
            )
        if prof.latency is not None and prof.latency.total > 0:
            lat = profiles_to_arrow([(reference.schema.latency or "latency_ms", prof.latency)])
            lat = self._window_columns(lat, window, source=source, errors=errors)
            out.append(self.write_table("latency", model, lat, window.start, window.end, part=part))
        if drift_rows is not None:
            d = pa.Table.from_pylist(list(drift_rows))
            if d.num_rows:
                d = self._window_columns(d, window, reference_id=reference.reference_id)
                out.append(self.write_table("drift", model, d, window.start, window.end, part=part))
        return out

    def write_windows(
        self,
        model: str,
        windows: Sequence[Window],
        reference: Reference,
        *,
        source: str = "stream",
        drift_rows: Sequence[Iterable[dict[str, Any]] | None] | DriftRows | None = None,
        parts: Sequence[str | None] | None = None,
    ) -> list[WriteRecord]:
        """Write many windows: the same objects, keys and rows as :meth:`write_window` on each.

        Each table's rows are built and conformed once for all the windows, then cut
        into one object per window (a window's objects stay in its own ``date=``
        partition, so retention and rollups see exactly what per-window writes give).
        The objects are PUT in the order :meth:`write_window` would PUT them.
        ``drift_rows`` holds each window's drift rows (or None), aligned with ``windows``,
        or all of them as one :class:`DriftRows`. ``parts`` holds each window's ``part``
        of :meth:`write_window` (or None), aligned with ``windows``.

        From a few windows on, the objects are encoded and hashed on two threads (Parquet
        encoding releases the GIL) while this thread PUTs the finished ones in order. (The
        drift rows are not computed meanwhile, nor the PUTs made on the threads: on two
        shared cores neither measured faster; ``benchmarks/RESULTS.md``.)
        """
        windows = list(windows)
        if not windows:
            return []
        if parts is not None and len(parts) != len(windows):
            raise ValueError(f"{len(parts)} parts for {len(windows)} windows")
        extra = parts if parts is not None else [None] * len(windows)
        keys = [
            "-".join(p for p in (source, self._version_part(w.version), x) if p)
            for w, x in zip(windows, extra, strict=True)
        ]
        ref_id = reference.reference_id
        threaded = len(windows) * 3 >= _THREADED_ENCODE
        pool = _EncodePool() if threaded else None
        jobs: list[list[tuple[str, pa.Table, str]]] = []
        blobs: list[list[Any]] = [[] for _ in windows]  # per window: its objects' blobs
        try:
            # profiles, segments and latency, _BUILD_RUN windows at a time: the first are
            # encoded while the next are built
            step = _BUILD_RUN if pool is not None else len(windows)
            for lo in range(0, len(windows), step):
                built = self._profile_jobs(
                    model, windows[lo : lo + step], keys[lo : lo + step], reference, source
                )
                jobs += built
                if pool is not None:
                    pool.submit(built, blobs, 0, lo)
            # drift: the windows' rows, in one table
            drift_jobs: list[list[tuple[str, pa.Table, str]]] = [[] for _ in windows]
            drift = self._drift_table(drift_rows, windows, ref_id, model)
            if drift is not None:
                data, n_drift = drift
                at = 0
                for i, n in enumerate(n_drift):
                    if n:
                        w = windows[i]
                        path = self.object_path("drift", model, w.start, w.end, part=keys[i])
                        drift_jobs[i].append(("drift", data.slice(at, n), path))
                        at += n
            if pool is not None:
                pool.submit(drift_jobs, blobs, 1)
            out: list[WriteRecord] = []
            # the records in write_window's order: each window's profiles, segments,
            # latency, drift, PUT in that order on this thread
            for i, w in enumerate(windows):
                mine = jobs[i] + drift_jobs[i]
                got: list[tuple[bytes, str | None]] = (
                    [b.result() for b in blobs[i]]
                    if pool is not None
                    else [(window_parquet_bytes(j[1]), None) for j in mine]
                )
                for (t, piece, path), (blob, digest) in zip(mine, got, strict=True):
                    out.append(
                        self._put_rows(
                            t,
                            model,
                            piece,
                            w.start,
                            w.end,
                            None,
                            blob=blob,
                            path=path,
                            digest=digest,
                        )
                    )
        finally:
            if pool is not None:
                pool.close()
        return out

    def _profile_jobs(
        self,
        model: str,
        windows: list[Window],
        keys: list[str],
        reference: Reference,
        source: str,
    ) -> list[list[tuple[str, pa.Table, str]]]:
        """Each window's ``profiles``, ``segment_profiles`` and ``latency`` objects, as
        ``(table, rows, path)``: every table built and conformed once for the windows."""
        ref_id = reference.reference_id
        # profiles: one row per (window, feature)
        # (and the multivariate reconstruction errors, as write_window writes them)
        items = [
            [*w.profile.features.items()]
            + (
                [(MULTIVARIATE, w.profile.multivariate)]
                if w.profile.multivariate is not None
                else []
            )
            for w in windows
        ]
        n_feat = [len(i) for i in items]
        prof = profiles_to_arrow(f for i in items for f in i)
        prof = self._many_window_columns(
            prof, windows, n_feat, reference_id=[ref_id] * len(windows),
            rows=[w.profile.rows for w in windows],
        )  # fmt: skip
        prof = self._conformed("profiles", model, prof)
        # latency: one row per window that has latencies
        has_lat = [w.profile.latency is not None and w.profile.latency.total > 0 for w in windows]
        lat_windows = [w for w, h in zip(windows, has_lat, strict=True) if h]
        lat = None
        if lat_windows:
            name = reference.schema.latency or "latency_ms"
            lat = profiles_to_arrow((name, w.profile.latency) for w in lat_windows)  # type: ignore[misc]
            lat = self._many_window_columns(
                lat, lat_windows, [1] * len(lat_windows), source=[source] * len(lat_windows),
                errors=[0] * len(lat_windows),
            )  # fmt: skip
            lat = self._conformed("latency", model, lat)
        jobs: list[list[tuple[str, pa.Table, str]]] = [[] for _ in windows]
        at = {"profiles": 0, "latency": 0}

        def cut(table_name: str, data: pa.Table, n: int, i: int) -> None:
            w = windows[i]
            path = self.object_path(table_name, model, w.start, w.end, part=keys[i])
            jobs[i].append((table_name, data.slice(at[table_name], n), path))
            at[table_name] += n

        for i, w in enumerate(windows):
            cut("profiles", prof, n_feat[i], i)
            if w.profile.segments:  # as write_window: the window's segments in one object
                seg = self._window_columns(segment_rows(w.profile), w, reference_id=ref_id)
                seg = self._conformed("segment_profiles", model, seg)
                path = self.object_path("segment_profiles", model, w.start, w.end, part=keys[i])
                jobs[i].append(("segment_profiles", seg, path))
            if has_lat[i] and lat is not None:
                cut("latency", lat, 1, i)
        return jobs

    def _drift_table(
        self,
        given: Sequence[Iterable[dict[str, Any]] | None] | DriftRows | None,
        windows: list[Window],
        ref_id: str,
        model: str,
    ) -> tuple[pa.Table, list[int]] | None:
        """The drift rows of ``windows`` as one conformed table, and each window's row count."""
        if given is None:
            return None
        if isinstance(given, DriftRows):
            data, n_drift = given.table, list(given.counts)
            if len(n_drift) != len(windows):
                raise ValueError(f"{len(n_drift)} drift row lists for {len(windows)} windows")
        else:
            if len(given) != len(windows):
                raise ValueError(f"{len(given)} drift row lists for {len(windows)} windows")
            lists = [list(d) if d is not None else [] for d in given]
            n_drift = [len(d) for d in lists]
            flat = [r for d in lists for r in d]
            if not flat:
                return None
            names = list(dict.fromkeys(k for d in lists if d for k in d[0]))
            data = pa.Table.from_pydict({k: [r.get(k) for r in flat] for k in names})
        if data.num_rows == 0:
            return None
        if data.num_rows != sum(n_drift):
            raise ValueError(f"{data.num_rows} drift rows, {sum(n_drift)} counted for the windows")
        dw = [w for w, n in zip(windows, n_drift, strict=True) if n]
        data = self._many_window_columns(
            data, dw, [n for n in n_drift if n], reference_id=[ref_id] * len(dw)
        )
        return self._conformed("drift", model, data), n_drift

    def _conformed(self, table_name: str, model: str, data: pa.Table) -> pa.Table:
        data = table(table_name).conform(data)
        return self.versions.table(data, f"the {table_name} rows of model {model}")

    def _put_rows(
        self,
        table_name: str,
        model: str,
        data: pa.Table,
        window_start: datetime,
        window_end: datetime,
        part: str | None,
        *,
        blob: bytes | None = None,
        path: str | None = None,
        digest: str | None = None,
    ) -> WriteRecord:
        """PUT conformed rows (``blob``: already encoded) as one window object; count them
        into the day rollup. ``path``: its key, when already made; ``digest``: the blob's
        SHA-256, when already computed."""
        if path is None:
            path = self.object_path(table_name, model, window_start, window_end, part=part)
        rec = self._write(table_name, path, data, blob, digest=digest)
        if self.rollups is not None and window_end > window_start:
            name = path.rsplit("/", 1)[-1]
            start = _utc(window_start, "")
            whole_day = _is_whole_day(start, _utc(window_end, ""))
            self.rollups.add(table_name, model, start.date(), name, data, whole_day=whole_day)
        return rec

    def _many_window_columns(
        self, data: pa.Table, windows: Sequence[Window], counts: Sequence[int], **extra: list[Any]
    ) -> pa.Table:
        """:meth:`_window_columns` for consecutive runs of rows, ``counts[i]`` rows per window."""
        reps = np.asarray(counts, dtype=np.int64)

        def repeat(values: list[Any], type_: pa.DataType | None = None) -> pa.Array:
            arr = pa.array(values, type_)
            return arr.take(pa.array(np.repeat(np.arange(len(values)), reps)))

        stamp = pa.timestamp("us", tz="UTC")
        cols = {
            "model_version": repeat([self.versions(w.version) for w in windows], pa.string()),
            "window_start": repeat([w.start for w in windows], stamp),
            "window_end": repeat([w.end for w in windows], stamp),
            "collector_id": repeat([self.collector_id] * len(windows), pa.string()),
        }
        for k, v in extra.items():
            cols[k] = repeat(v)
        for name, arr in cols.items():
            data = data.append_column(name, arr)
        return data

    def write_latency(
        self,
        model: str,
        window: Window,
        *,
        source: str,
        errors: int = 0,
        part: str | None = None,
        metric: str = "latency_ms",
    ) -> WriteRecord | None:
        """Write only a window's latency profile (probes: no feature profiles)."""
        lat = window.profile.latency
        if lat is None or lat.total == 0:
            return None
        rows = self._window_columns(
            profiles_to_arrow([(metric, lat)]), window, source=source, errors=errors
        )
        vpart = self._version_part(window.version)
        key = "-".join(p for p in (source, vpart, part) if p)
        return self.write_table("latency", model, rows, window.start, window.end, part=key)

    def write_reference(self, model: str, reference: Reference) -> WriteRecord:
        """Write a reference into the ``references`` table."""
        rows = reference_rows(reference)
        return self.write_table(
            "references",
            model,
            rows,
            reference.created_at,
            reference.created_at,
            part=f"ref-{reference.reference_id}",
        )

    def write_segment_performance(
        self,
        model: str,
        profiles: dict[str, PerformanceProfile],
        reference: Reference,
        *,
        start: datetime,
        end: datetime,
        version: str | None = None,
        role: str = "labels",
        batch_id: str | None = None,
    ) -> WriteRecord | None:
        """Write performance profiles per segment (``"scanner=GE"`` -> profile) as one object
        of ``segment_performance`` (see :func:`mlmon.profiles.frame.performance_segments`)."""
        rows = []
        for key in sorted(profiles):
            name, _, value = key.partition("=")
            row = performance_row(
                profiles[key], role=role, reference_id=reference.reference_id,
                collector_id=self.collector_id, start=start, end=end, version=version,
                batch_id=batch_id,
            )  # fmt: skip
            rows.append({**row, "segment": name, "segment_value": value})
        if not rows:
            return None
        part = "-".join(p for p in (role, self._version_part(version), batch_id) if p)
        return self.write_table(
            "segment_performance",
            model,
            pl.DataFrame(rows, infer_schema_length=None),
            start,
            end,
            part=check_name(part, "batch id") if batch_id else part,
        )

    def write_performance_reference(self, model: str, reference: Reference) -> WriteRecord | None:
        """Write the reference's labelled performance profile as the ``reference`` row of
        ``performance`` (calibration curve and baseline metrics); None when it has none."""
        if reference.performance is None:
            return None
        row = performance_row(
            reference.performance, role="reference", reference_id=reference.reference_id,
            collector_id=self.collector_id, start=reference.created_at, end=reference.created_at,
            version=None, batch_id="reference",
        )  # fmt: skip
        if reference.segment_performance:  # segments calibrated on their own labels
            self.write_segment_performance(
                model, reference.segment_performance, reference, start=reference.created_at,
                end=reference.created_at, role="reference",
                batch_id=f"ref-{reference.reference_id}",
            )  # fmt: skip
        return self.write_table(
            "performance",
            model,
            pl.DataFrame([row], infer_schema_length=None),
            reference.created_at,
            reference.created_at,
            part=f"ref-{reference.reference_id}",
        )

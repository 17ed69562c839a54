"""Partial window profiles: what each engine worker emits and what the driver merges.

A worker folds the record batches of its partition into one profile per
(window, model version), exactly as :class:`mlmon.edge.ingest.WindowAccumulator`
does, and serialises them as one Arrow IPC stream in the lake's profile row form
(:func:`~mlmon.profiles.arrow.profiles_to_arrow`) plus the window's columns. The
driver concatenates every worker's rows and merges them per window, feature and
role with :func:`~mlmon.profiles.arrow.merge_rows` (the lake's own merge), so the
result equals profiling all records in one process: counts and sketches exactly,
sums up to the order of floating-point additions.

Pure: no engine and no I/O is imported here.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pyarrow as pa

from mlmon.analysis.drift import drift_between
from mlmon.analysis.thresholds import Thresholds
from mlmon.errors import ProfileError
from mlmon.lake.writer import LakeWriter, WriteRecord
from mlmon.profiles.arrow import merge_rows, profiles_to_arrow
from mlmon.profiles.frame import OpenWindows, Reference, Window, WindowProfile
from mlmon.profiles.kinds import NumericProfile

__all__ = [
    "PAYLOAD",
    "PartialAccumulator",
    "PartialProfiler",
    "deserialise",
    "merge_partials",
    "write_windows",
]

#: Name of the single binary column a worker emits (one Arrow IPC stream per row).
PAYLOAD = "mlmon_partial"
#: Roles of a partial row: a feature, the latency metric, the multivariate reconstruction error.
_FEATURE, _LATENCY, _MULTIVARIATE = "feature", "latency", "multivariate"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(ts: datetime) -> int:
    return (ts - _EPOCH) // timedelta(microseconds=1)


class PartialAccumulator(OpenWindows):
    """Fold record batches into one profile per (window, version); serialise them for the driver."""

    def table(self) -> pa.Table | None:
        """Every open window as profile rows with ``window_start`` (us), ``version``, ``segment``,
        ``role``, ``rows``: the overall profile (``segment`` ``""``), then each segment's
        (``segment`` ``"scanner=GE"``, as :attr:`WindowProfile.segments` keys them)."""
        parts = []
        for (start, version), w in sorted(
            self._open.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")
        ):
            start_us, window_us = _us(start), _us(w.end) - _us(start)
            profiles = [("", w.profile), *sorted(w.profile.segments.items())]
            for segment, wp in profiles:
                t = self._rows(wp)
                n = t.num_rows
                t = t.append_column("window_start_us", pa.array([start_us] * n, pa.int64()))
                t = t.append_column("window_us", pa.array([window_us] * n, pa.int64()))
                t = t.append_column("version", pa.array([version] * n, pa.string()))
                t = t.append_column("segment", pa.array([segment] * n, pa.string()))
                # the profile's record count, on its first row only (summed by the driver)
                t = t.append_column("rows", pa.array([wp.rows] + [0] * (n - 1), pa.int64()))
                parts.append(t)
        return pa.concat_tables(parts) if parts else None

    def _rows(self, wp: WindowProfile) -> pa.Table:
        """One window profile's features, latency and reconstruction error as profile rows."""
        items: list[tuple[str, Any]] = list(wp.features.items())
        roles = [_FEATURE] * len(items)
        if wp.latency is not None and wp.latency.total > 0:
            items.append((self.reference.schema.latency or "latency_ms", wp.latency))
            roles.append(_LATENCY)
        if wp.multivariate is not None:
            items.append(("multivariate", wp.multivariate))
            roles.append(_MULTIVARIATE)
        t = profiles_to_arrow(items)
        return t.append_column("role", pa.array(roles, pa.string()))

    def serialise(self) -> bytes | None:
        """The open windows as one Arrow IPC stream (None when no record was added)."""
        t = self.table()
        if t is None:
            return None
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, t.schema) as w:
            w.write_table(t)
        return sink.getvalue()


def partial_batches(
    batches: Iterable[pa.RecordBatch], reference: Reference, window: timedelta
) -> Iterable[pa.RecordBatch]:
    """The worker function: fold a partition's batches, yield one payload row (or none)."""
    acc = PartialAccumulator(reference, window)
    for b in batches:
        if b.num_rows:
            acc.add(b)
    blob = acc.serialise()
    if blob is not None:
        yield pa.RecordBatch.from_arrays([pa.array([blob], pa.binary())], names=[PAYLOAD])


@dataclass(frozen=True)
class PartialProfiler:
    """What an engine ships to its executors or workers: the reference and the window, nothing else.

    No lake URI, writer, storage options or credentials: the workers read records and emit
    partial profiles; only the driver writes the lake (docs/security.md).
    """

    reference: Reference
    window: timedelta

    def batches(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """Spark's ``mapInArrow`` function: a partition's batches in, one payload row out."""
        yield from partial_batches(batches, self.reference, self.window)

    def table(self, batch: pa.Table) -> pa.Table:
        """Ray's ``map_batches`` function: one Arrow batch in, its payload row (or none) out."""
        out = list(partial_batches(batch.to_batches(), self.reference, self.window))
        if not out:
            return pa.table({PAYLOAD: pa.array([], pa.binary())})
        return pa.Table.from_batches(out)


def deserialise(blob: bytes) -> pa.Table:
    with pa.ipc.open_stream(pa.py_buffer(blob)) as r:
        return r.read_all()


def merge_partials(payloads: Iterable[bytes], reference: Reference) -> list[Window]:
    """Merge workers' partial profiles into one :class:`Window` per (window, version), in order."""
    tables = [deserialise(b) for b in payloads if b]
    if not tables:
        return []
    t = pa.concat_tables(tables)
    keys = ["window_start_us", "window_us", "version", "segment"]
    merged = merge_rows(t, [*keys, "role", "feature"])
    counts = pl.from_arrow(t.select([*keys, "rows"]))
    assert isinstance(counts, pl.DataFrame)
    rows_df = counts.group_by(keys).agg(pl.col("rows").sum())
    rows = {(r[0], r[1], r[2], r[3]): int(r[4]) for r in rows_df.iter_rows()}
    per: dict[tuple[int, int, str | None], dict[str, dict[str, dict[str, Any]]]] = {}
    for (start_us, window_us, version, segment, role, feature), prof in merged:
        by_role = per.setdefault((start_us, window_us, version), {}).setdefault(segment, {})
        by_role.setdefault(role, {})[feature] = prof
    out = []
    for key in sorted(per, key=lambda k: (k[0], k[2] or "")):  # as WindowAccumulator.pop
        start_us, window_us, version = key
        profiles = {
            segment: _window_profile(roles, rows[(*key, segment)], reference, start_us)
            for segment, roles in per[key].items()
        }
        overall = profiles.pop("")
        wp = replace(overall, segments={k: profiles[k] for k in sorted(profiles)})
        start = _EPOCH + timedelta(microseconds=start_us)
        out.append(Window(start, start + timedelta(microseconds=window_us), version, wp))
    return out


def _window_profile(
    roles: dict[str, dict[str, Any]], rows: int, reference: Reference, start_us: int
) -> WindowProfile:
    names = list(reference.schema.names)
    feats = roles.get(_FEATURE, {})
    if sorted(feats) != sorted(names):
        raise ProfileError(
            f"partial profiles of window {start_us}us name features {sorted(feats)}, "
            f"the reference {sorted(names)}; every worker must profile with the same reference"
        )
    lat = next(iter(roles.get(_LATENCY, {}).values()), None)
    mv = next(iter(roles.get(_MULTIVARIATE, {}).values()), None)
    if lat is None:
        lat = reference.empty_window().latency
    assert lat is None or isinstance(lat, NumericProfile)
    assert mv is None or isinstance(mv, NumericProfile)
    return WindowProfile({n: feats[n] for n in names}, lat, rows, mv)


def drift_rows(
    reference: Reference,
    profile: WindowProfile,
    methods: Any = None,
    thresholds: Thresholds | None = None,
) -> list[dict[str, Any]]:
    """Drift of one window against the reference (the rows ``mlmon profile`` writes)."""
    th = thresholds or Thresholds()
    rows = []
    for name, current in profile.features.items():
        per = th.for_feature(name, reference.drift_thresholds.get(name))
        for r in drift_between(reference.profiles[name], current, methods, per):
            rows.append({"feature": name, **r, "count": current.count})
    return rows


def write_windows(
    writer: LakeWriter,
    model: str,
    windows: Sequence[Window],
    reference: Reference,
    *,
    source: str = "batch",
    methods: Any = None,
    with_drift: bool = True,
) -> list[WriteRecord]:
    """Write merged windows as ``mlmon profile`` does (profiles, latency, drift, day rollups)."""
    out: list[WriteRecord] = []
    for w in windows:
        drift = drift_rows(reference, w.profile, methods) if with_drift else None
        out.extend(writer.write_window(model, w, reference, source=source, drift_rows=drift))
    out.extend(writer.write_rollups())
    return out

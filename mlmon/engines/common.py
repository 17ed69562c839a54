"""What the Spark and Ray drivers share: the window argument and the write to the lake."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from mlmon.durations import parse_duration
from mlmon.engines.partials import PartialProfiler, merge_partials, write_windows
from mlmon.errors import SchemaError
from mlmon.lake.writer import LakeWriter, WriteRecord
from mlmon.profiles.frame import Reference, Window

__all__ = ["EngineResult", "finish", "parse_window", "profile_partials", "record_columns"]


def parse_window(window: timedelta | str) -> timedelta:
    """``"5m"``, ``"1h"``, ``"1d"`` or a timedelta (positive); see :mod:`mlmon.durations`."""
    return parse_duration(window, "window", positive=True)


def record_columns(reference: Reference, available: list[str], what: str) -> list[str]:
    """The columns the workers need, checked on the driver before any task runs.

    Raises
    ------
    SchemaError
        A feature or the timestamp column is missing; names the columns and the dataset.
    """
    s = reference.schema
    needed = [s.timestamp, *s.names]
    missing = [c for c in needed if c not in available]
    if missing:
        raise SchemaError(
            f"{what} has no column {', '.join(repr(c) for c in missing)} of the reference's schema; "
            f"its columns: {', '.join(available)}"
        )
    missing = [c for c in s.segment_columns if c not in available]
    if missing:
        raise SchemaError(
            f"{what} has no segment column {', '.join(repr(c) for c in missing)} of the "
            f"reference; its columns: {', '.join(available)}"
        )
    needed += s.segment_columns
    needed += [c for c in (s.version, s.latency) if c and c in available]
    return list(dict.fromkeys(needed))


#: How an engine runs the profiler over the records' ``columns``: the payloads it collects.
Run = Callable[[list[str], PartialProfiler], Iterable[bytes]]


def profile_partials(
    reference: Reference, window: timedelta | str, available: list[str], what: str, run: Run
) -> list[Window]:
    """The driver's side of every engine: check the window and the columns before any task
    runs, let the engine ``run`` the :class:`PartialProfiler` in its workers, merge the
    payloads it collects into one window per (window, version)."""
    profiler = PartialProfiler(reference, parse_window(window))
    columns = record_columns(reference, available, what)
    return merge_partials(run(columns, profiler), reference)


@dataclass
class EngineResult:
    """The merged windows and what was written for them (nothing when no lake was given)."""

    windows: list[Window]
    written: list[WriteRecord] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(w.profile.rows for w in self.windows)


def finish(
    windows: list[Window],
    reference: Reference,
    *,
    model: str,
    lake: str | LakeWriter | None,
    collector_id: str,
    storage_options: dict[str, Any] | None,
    source: str,
    with_drift: bool,
) -> EngineResult:
    if lake is None:
        return EngineResult(windows)
    writer = (
        lake
        if isinstance(lake, LakeWriter)
        else LakeWriter(lake, collector_id=collector_id, storage_options=storage_options)
    )
    written = write_windows(writer, model, windows, reference, source=source, with_drift=with_drift)
    return EngineResult(windows, written)

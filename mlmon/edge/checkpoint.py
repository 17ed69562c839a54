"""Exactly-once stream state on the edge's own volume: read positions and open windows.

The collector drives every stream through one protocol::

    read a batch  ->  StreamState.add (profile into open windows)
                  ->  StreamState.closed_windows  ->  write (or spool) them
                  ->  StreamState.commit

:class:`Checkpoint` is the on-disk part: one JSON file (read positions per
source, the event-time watermark, which windows were already written) and,
next to it, one Parquet file with the *partial profiles of the windows that
are still open* (profile rows as in the lake, never a raw record). Both are
written atomically (temporary file, ``fsync``, ``os.replace``, directory
``fsync``); the Parquet file carries the commit's generation in its name and
the JSON file names it, so a crash at any instant leaves either the old or the
new pair visible, never a mix.

Why the open windows are saved too: a window can receive records from
several reads (an hourly window, a stream read every minute). If a restart
kept only the read positions, the window would be rebuilt from the records
after the last position alone, and written without the earlier ones.
Restoring its partial profile makes it continue exactly.

Why a crash between writing and committing is harmless: windows are written
whole, under keys that depend only on (table, model, window, version,
collector, part). After a crash the stream restarts from the last commit: the
same records are read again into the same restored windows, the same windows
close, and their objects are rewritten under the same keys with the same
counts. No record is lost and none is counted twice. (Float sums can differ in
their last bits if a file grew and the batch boundaries moved; counts,
histograms and sketches are exact.)

Late records, for a window that was already written, are written as a
separate numbered part (``late1``, ``late2``, ...) so that nothing written is
ever replaced by less; the count of parts written per window is part of the
committed state, so a replay after a crash produces the same part labels.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from mlmon.errors import ConfigError, EdgeError
from mlmon.lake.freetext import VersionGuard
from mlmon.profiles.arrow import profile_from_row, profiles_to_arrow
from mlmon.profiles.frame import (
    Reference,
    Window,
    WindowProfile,
    merge_windows,
    profile_windows,
    to_polars,
    utc_timestamps,
)
from mlmon.profiles.kinds import NumericProfile

__all__ = ["CHECKPOINT_VERSION", "Checkpoint", "CheckpointState", "StreamState"]

log = logging.getLogger("mlmon.edge.checkpoint")

#: Version of the checkpoint files; a checkpoint of another version is refused.
CHECKPOINT_VERSION = 1
_JSON = "checkpoint.json"
_STAMP = pa.timestamp("us", tz="UTC")
#: How long the count of parts written is kept per window (then pruned).
KEEP_WRITTEN = timedelta(days=35)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file in the same folder, fsync, replace."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


@dataclass(frozen=True)
class CheckpointState:
    """What one commit saves.

    Attributes
    ----------
    positions
        Per source (e.g. a stream folder), JSON-able read positions: files fully
        consumed, byte offset or row count reached in files being read.
    windows
        Open windows' partial profiles.
    written
        ``"{window_start}|{version}" -> parts written``, for late parts.
    watermark
        Newest record time seen (UTC), or None.
    reference_id
        Reference the open windows were profiled against.
    generation
        Commit counter (0 before the first commit).
    """

    positions: Mapping[str, Any] = field(default_factory=dict)
    windows: tuple[Window, ...] = ()
    written: Mapping[str, int] = field(default_factory=dict)
    watermark: datetime | None = None
    reference_id: str | None = None
    generation: int = 0


def _windows_to_arrow(windows: tuple[Window, ...]) -> pa.Table | None:
    tables = []
    for w in windows:
        items: list[tuple[str, Any]] = list(w.profile.features.items())
        roles = ["feature"] * len(items)
        if w.profile.latency is not None:
            items.append(("__latency__", w.profile.latency))
            roles.append("latency")
        if w.profile.multivariate is not None:
            items.append(("__multivariate__", w.profile.multivariate))
            roles.append("multivariate")
        if not items:  # a window without features: keep its row count
            items.append(("__rows__", NumericProfile(edges=np.array([0.0, 1.0]))))
            roles.append("rows")
        seg_keys: list[str | None] = [None] * len(items)
        seg_rows: list[int | None] = [None] * len(items)
        for key in sorted(w.profile.segments):  # per-segment profiles of the open window
            seg = w.profile.segments[key]
            items += list(seg.features.items())
            roles += ["segment"] * len(seg.features)
            seg_keys += [key] * len(seg.features)
            seg_rows += [seg.rows] * len(seg.features)
        t = profiles_to_arrow(items)
        n = t.num_rows
        t = t.append_column("role", pa.array(roles, pa.string()))
        t = t.append_column("segment", pa.array(seg_keys, pa.string()))
        t = t.append_column("segment_rows", pa.array(seg_rows, pa.int64()))
        t = t.append_column("window_start", pa.array([w.start] * n, _STAMP))
        t = t.append_column("window_end", pa.array([w.end] * n, _STAMP))
        t = t.append_column("model_version", pa.array([w.version] * n, pa.string()))
        t = t.append_column("rows", pa.array([w.profile.rows] * n, pa.int64()))
        tables.append(t)
    return pa.concat_tables(tables) if tables else None


def _windows_from_frame(df: pl.DataFrame) -> tuple[Window, ...]:
    out: dict[tuple[datetime, datetime, str | None], dict[str, Any]] = {}
    for row in df.iter_rows(named=True):
        key = (row["window_start"], row["window_end"], row["model_version"])
        w = out.setdefault(
            key, {"features": {}, "latency": None, "multivariate": None, "rows": int(row["rows"])}
        )
        if row["role"] == "feature":
            w["features"][row["feature"]] = profile_from_row(row)
        elif row["role"] == "segment" and row.get("segment"):
            seg = w.setdefault("segments", {}).setdefault(
                row["segment"], ({}, int(row.get("segment_rows") or 0))
            )
            seg[0][row["feature"]] = profile_from_row(row)
        elif row["role"] == "latency":
            w["latency"] = profile_from_row(row)
        elif row["role"] == "multivariate":
            w["multivariate"] = profile_from_row(row)
    return tuple(
        Window(
            s.astimezone(UTC),
            e.astimezone(UTC),
            v,
            WindowProfile(
                w["features"],
                w["latency"],
                w["rows"],
                w["multivariate"],
                {k: WindowProfile(f, rows=r) for k, (f, r) in w.get("segments", {}).items()},
            ),
        )
        for (s, e, v), w in out.items()
    )


class Checkpoint:
    """The committed state of one stream, in a folder on the edge's own volume.

    Parameters
    ----------
    directory
        Folder for ``checkpoint.json`` and ``open-<generation>.parquet``;
        created if missing. One folder per stream (or sink) and model.

    Examples
    --------
    >>> import tempfile
    >>> cp = Checkpoint(tempfile.mkdtemp())
    >>> cp.load().generation
    0
    >>> cp.commit(CheckpointState(positions={"logs": {"done": ["a.jsonl"]}})).generation
    1
    >>> cp.load().positions["logs"]["done"]
    ['a.jsonl']
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"checkpoint folder {self.dir} cannot be created ({exc}); "
                "mount a writable volume for the edge's state"
            ) from exc

    @property
    def path(self) -> Path:
        return self.dir / _JSON

    def load(self) -> CheckpointState:
        """The last committed state (an empty state if nothing was committed).

        Raises
        ------
        EdgeError
            The checkpoint exists but cannot be read (the message names the file).
        """
        if not self.path.exists():
            return CheckpointState()
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            if doc.get("version") != CHECKPOINT_VERSION:
                raise EdgeError(
                    f"{self.path}: checkpoint version {doc.get('version')!r}, expected "
                    f"{CHECKPOINT_VERSION}; move the folder away to start the stream afresh"
                )
            windows: tuple[Window, ...] = ()
            if doc.get("open"):
                windows = _windows_from_frame(pl.read_parquet(self.dir / doc["open"]))
            wm = doc.get("watermark")
            return CheckpointState(
                positions=doc.get("positions", {}),
                windows=windows,
                written={str(k): int(v) for k, v in doc.get("written", {}).items()},
                watermark=datetime.fromisoformat(wm) if wm else None,
                reference_id=doc.get("reference_id"),
                generation=int(doc.get("generation", 0)),
            )
        except EdgeError:
            raise
        except (OSError, ValueError, KeyError, pl.exceptions.PolarsError) as exc:
            raise EdgeError(
                f"{self.path}: cannot read the stream checkpoint ({type(exc).__name__}); "
                "restore the folder from a backup or move it away to re-read the stream from the start"
            ) from exc

    def commit(self, state: CheckpointState) -> CheckpointState:
        """Atomically save ``state`` as the next generation and return it with that generation.

        Call it only after the windows closed since the last commit were
        written (or spooled) durably.
        """
        gen = state.generation + 1
        open_name = None
        table = _windows_to_arrow(state.windows)
        if table is not None:
            open_name = f"open-{gen:010d}.parquet"
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink, compression="zstd")
            atomic_write(self.dir / open_name, sink.getvalue().to_pybytes())
        doc = {
            "version": CHECKPOINT_VERSION,
            "generation": gen,
            "reference_id": state.reference_id,
            "watermark": state.watermark.isoformat() if state.watermark else None,
            "positions": state.positions,
            "written": dict(state.written),
            "open": open_name,
        }
        atomic_write(self.path, json.dumps(doc, indent=1, sort_keys=True).encode("utf-8"))
        for old in self.dir.glob("open-*.parquet"):
            if old.name != open_name:
                old.unlink(missing_ok=True)
        return CheckpointState(
            state.positions, state.windows, state.written, state.watermark, state.reference_id, gen
        )


def _key(w: Window) -> str:
    return f"{w.start.isoformat()}|{w.version or ''}"


class StreamState:
    """Open windows plus read positions of one stream, restored from and saved to a :class:`Checkpoint`.

    Thread-safe: the HTTP sink adds rows from its own thread while the
    collector closes windows and commits from another.

    Parameters
    ----------
    reference
        The model's reference (bin edges, vocabularies, timestamp column).
    state_dir
        The checkpoint folder (see :class:`Checkpoint`).
    window
        Window length; windows are aligned to the UNIX epoch.
    lateness
        A window closes once its end is at or before the newest record time
        (the watermark) minus ``lateness``, or, when :meth:`closed_windows` is
        given ``now``, before ``now - lateness``.

    Raises
    ------
    ConfigError
        The checkpoint holds open windows profiled against another reference.

    Examples
    --------
    >>> import tempfile, polars as pl
    >>> from datetime import datetime, UTC
    >>> from mlmon.profiles.frame import build_reference
    >>> from mlmon.profiles.schema import FeatureSpec, Schema
    >>> ref = build_reference(pl.DataFrame({"x": [1.0, 2.0]}), Schema([FeatureSpec("x", "numeric")]))
    >>> st = StreamState(ref, tempfile.mkdtemp(), window=timedelta(hours=1), lateness=timedelta(0))
    >>> ts = [datetime(2026, 10, 1, 10, 5, tzinfo=UTC), datetime(2026, 10, 1, 11, 1, tzinfo=UTC)]
    >>> st.add(pl.DataFrame({"x": [1.5, 2.5], "timestamp": ts}))
    2
    >>> [(w.start.hour, part) for w, part in st.closed_windows()]
    [(10, None)]
    >>> st.commit()
    """

    def __init__(
        self,
        reference: Reference,
        state_dir: str | os.PathLike[str],
        *,
        window: timedelta = timedelta(minutes=5),
        lateness: timedelta = timedelta(minutes=1),
    ) -> None:
        if window <= timedelta(0):
            raise ConfigError(f"stream window must be positive, got {window}")
        if lateness < timedelta(0):
            raise ConfigError(f"stream lateness must not be negative, got {lateness}")
        self.reference = reference
        self.window = window
        self.lateness = lateness
        self.checkpoint = Checkpoint(state_dir)
        self._lock = threading.RLock()
        saved = self.checkpoint.load()
        if saved.windows and saved.reference_id not in (None, reference.reference_id):
            raise ConfigError(
                f"{self.checkpoint.path}: {len(saved.windows)} open window(s) were profiled against "
                f"reference {saved.reference_id} but the model now uses {reference.reference_id}; "
                "run the old configuration until its windows close, or delete the folder's "
                "open-*.parquet and the 'open' entry to drop them"
            )
        self._open: dict[tuple[datetime, str | None], Window] = {
            (w.start, w.version): w for w in saved.windows
        }
        #: Every record's ``model_version`` passes it before anything (windows, observers,
        #: the checkpoint on disk) sees the record; the collector gives it the HMAC key.
        self.versions = VersionGuard()
        #: Called with every non-empty flat-record frame added (labels store, samples):
        #: observers see raw records in memory only and must not keep them.
        self.observers: list[Callable[[pl.DataFrame], None]] = []
        #: Per-source read positions; sources update them, :meth:`commit` saves them.
        self.positions: dict[str, Any] = dict(saved.positions)
        self.written: dict[str, int] = dict(saved.written)
        self.watermark: datetime | None = saved.watermark
        self.generation = saved.generation
        if saved.generation:
            log.info(
                "stream state restored",
                extra={"state": str(self.checkpoint.dir), "generation": saved.generation,
                       "open_windows": len(self._open)},
            )  # fmt: skip

    @property
    def dir(self) -> Path:
        return self.checkpoint.dir

    def __len__(self) -> int:
        return len(self._open)

    @property
    def open_windows(self) -> list[Window]:
        """The windows still open, in (start, version) order."""
        with self._lock:
            return [self._open[k] for k in sorted(self._open, key=lambda k: (k[0], k[1] or ""))]

    def add(self, frame: Any) -> int:
        """Profile flat records into their open windows; returns the number of records added.

        Raises
        ------
        SchemaError
            A feature column is missing or has the wrong type (see
            :func:`mlmon.profiles.frame.profile_frame`).
        """
        df = to_polars(frame)
        if df.height == 0:
            return 0
        if self.reference.schema.version:
            where = f"the records of {self.checkpoint.dir}"
            df = self.versions.frame(df, where, self.reference.schema.version)
        windows = list(profile_windows(df, self.reference, window=self.window))
        for observe in self.observers:
            observe(df)
        top = utc_timestamps(df, self.reference.schema.timestamp).max()
        assert isinstance(top, datetime)  # profile_windows refused missing timestamps
        top = top.astimezone(UTC)
        with self._lock:
            n = merge_windows(self._open, windows)
            if self.watermark is None or top > self.watermark:
                self.watermark = top
        return n

    def closed_windows(self, now: datetime | None = None) -> list[tuple[Window, str | None]]:
        """Remove and return the windows that closed, each with its part label.

        A window closes when its end is at or before ``watermark - lateness``
        (event time) or, if ``now`` is given, ``now - lateness`` (wall clock;
        use it when every record available has been read, so a quiet stream's
        last window still closes). The label is ``None`` the first time a
        window is written and ``late1``, ``late2``... for records that arrive
        after it was written.
        """
        with self._lock:
            horizons = []
            if self.watermark is not None:
                horizons.append(self.watermark - self.lateness)
            if now is not None:
                if now.tzinfo is None:
                    raise ConfigError("closed_windows(now=...) must be timezone-aware (UTC)")
                horizons.append(now.astimezone(UTC) - self.lateness)
            if not horizons:
                return []
            horizon = max(horizons)
            keys = sorted(
                (k for k, w in self._open.items() if w.end <= horizon),
                key=lambda k: (k[0], k[1] or ""),
            )
            out: list[tuple[Window, str | None]] = []
            for k in keys:
                w = self._open.pop(k)
                n = self.written.get(_key(w), 0)
                self.written[_key(w)] = n + 1
                out.append((w, None if n == 0 else f"late{n}"))
            # forget part counts of long-closed windows; a window that old and not in the
            # table gets a label no first write uses, so it never replaces a written object
            cutoff = (horizon - KEEP_WRITTEN).isoformat()
            self.written = {k: v for k, v in self.written.items() if k.split("|", 1)[0] >= cutoff}
            for i, (w, part) in enumerate(out):
                if part is None and w.end <= horizon - KEEP_WRITTEN:
                    out[i] = (w, f"late-g{self.generation + 1}")
            return out

    def state(self) -> CheckpointState:
        """A snapshot of what :meth:`commit` would save."""
        with self._lock:
            return CheckpointState(
                positions=json.loads(json.dumps(self.positions)),
                windows=tuple(self.open_windows),
                written=dict(self.written),
                watermark=self.watermark,
                reference_id=self.reference.reference_id,
                generation=self.generation,
            )

    def commit(self) -> None:
        """Save positions, open windows and part counts atomically.

        Call it only after the windows returned by :meth:`closed_windows` were
        written or spooled durably.
        """
        with self._lock:
            saved = self.checkpoint.commit(self.state())
            self.generation = saved.generation

"""Inference log streams read exactly once, with a checkpoint on the edge's own volume.

A :class:`FileStream` reads new records from a read-only folder (JSONL, CSV
or Parquet files, in any of the record formats of :mod:`mlmon.edge.records`)
into a :class:`StreamState`, which merges them into per-window profiles.

Exactly once, across crashes (``kill -9`` included)::

    read new records  ->  profile into open windows  ->  write closed windows  ->  commit

:meth:`StreamState.commit` atomically saves the read positions *and* the
partial profiles of the windows still open (a Parquet file of profile rows,
never a raw record). A crash before the commit restarts from the previous
commit: the same records are read again into the same restored windows, and
the windows written in between are rewritten under the same keys with the
same content. A window that receives records after it was written (late
data) is written again as a separate, numbered part, so nothing already
written is overwritten with less.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from mlmon.edge.ingest import WindowAccumulator
from mlmon.edge.records import BadRecords, ParseContext, parse_records
from mlmon.errors import ConfigError
from mlmon.governance.deid import hmac_ids
from mlmon.profiles.arrow import merge_rows, profiles_to_arrow
from mlmon.profiles.frame import Reference, Window, WindowProfile
from mlmon.profiles.kinds import NumericProfile

__all__ = ["FileStream", "StreamState", "open_stream"]

log = logging.getLogger("mlmon.edge.streams")
_SUFFIXES = {"jsonl": (".jsonl", ".ndjson", ".json"), "csv": (".csv",), "parquet": (".parquet",)}
_OFFSET = re.compile(r"(Z|[+-]\d\d:?\d\d)$")


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class StreamState:
    """Open windows and read positions of one stream, persisted by :meth:`commit`."""

    def __init__(
        self,
        reference: Reference,
        state_dir: str | os.PathLike[str],
        *,
        window: timedelta = timedelta(minutes=5),
        lateness: timedelta = timedelta(minutes=1),
    ) -> None:
        self.reference = reference
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.lateness = lateness
        self.acc = WindowAccumulator(reference, window=window)
        self.positions: dict[str, Any] = {}
        self.written: dict[str, int] = {}
        self.generation = 0
        self._load()

    # -- persistence --------------------------------------------------------------------
    @property
    def _checkpoint(self) -> Path:
        return self.dir / "checkpoint.json"

    def _load(self) -> None:
        if not self._checkpoint.exists():
            return
        state = json.loads(self._checkpoint.read_text())
        self.positions = state.get("positions", {})
        self.written = state.get("written", {})
        self.generation = int(state.get("generation", 0))
        open_file = state.get("open")
        if open_file:
            rows = pl.read_parquet(self.dir / open_file)
            for (start, end, version, _ref, feature), prof in merge_rows(
                rows, ["window_start", "window_end", "model_version", "reference_id", "feature"]
            ):
                key = (start, version)
                w = self.acc._open.get(key)
                if w is None:
                    w = Window(start, end, version, WindowProfile({}, None, 0))
                feats = dict(w.profile.features)
                latency = w.profile.latency
                n = w.profile.rows
                if feature == "__latency__":
                    latency = prof if isinstance(prof, NumericProfile) else latency
                elif feature == "__rows__":
                    n = prof.count
                else:
                    feats[feature] = prof
                self.acc._open[key] = Window(start, end, version, WindowProfile(feats, latency, n))
        log.info(
            "stream state restored", extra={"open_windows": len(self.acc), "state": str(self.dir)}
        )

    def commit(self) -> None:
        """Atomically save positions and the open windows' partial profiles."""
        self.generation += 1
        name = None
        tables = []
        for w in self.acc._open.values():
            items: list[tuple[str, Any]] = list(w.profile.features.items())
            if w.profile.latency is not None:
                items.append(("__latency__", w.profile.latency))
            items.append(("__rows__", NumericProfile(edges=_EDGES, count=w.profile.rows)))
            t = profiles_to_arrow(items)
            n = t.num_rows
            stamp = pa.timestamp("us", tz="UTC")
            t = t.append_column("window_start", pa.array([w.start] * n, stamp))
            t = t.append_column("window_end", pa.array([w.end] * n, stamp))
            t = t.append_column("model_version", pa.array([w.version] * n, pa.string()))
            t = t.append_column(
                "reference_id", pa.array([self.reference.reference_id] * n, pa.string())
            )
            tables.append(t)
        if tables:
            name = f"open-{self.generation:08d}.parquet"
            buf = pa.BufferOutputStream()
            pq.write_table(pa.concat_tables(tables), buf)
            _atomic_write(self.dir / name, buf.getvalue().to_pybytes())
        state = {
            "generation": self.generation,
            "positions": self.positions,
            "written": self.written,
            "open": name,
        }
        _atomic_write(self._checkpoint, json.dumps(state, indent=1, default=str).encode())
        for old in self.dir.glob("open-*.parquet"):
            if old.name != name:
                old.unlink(missing_ok=True)

    # -- windows ------------------------------------------------------------------------
    def add(self, frame: pl.DataFrame) -> int:
        return self.acc.add(frame) if frame.height else 0

    def closed_windows(self, now: datetime) -> list[tuple[Window, str | None]]:
        """Windows that ended before ``now - lateness``, each with its late-part label."""
        out = []
        for w in self.acc.pop(closed_before=now - self.lateness):
            key = f"{w.start.isoformat()}|{w.version}"
            n = self.written.get(key, 0)
            self.written[key] = n + 1
            out.append((w, None if n == 0 else f"late{n}"))
        horizon = (now - timedelta(days=14)).isoformat()
        self.written = {k: v for k, v in self.written.items() if k.split("|", 1)[0] >= horizon}
        return out


#: Edges of the marker row that carries a window's record count (``__rows__``) in the state file.
_EDGES = np.array([0.0, 1.0])


@dataclass
class FileStream:
    """New records from a folder of log files, read in name order, exactly once."""

    path: Path
    file_format: str
    kind: str
    state: StreamState
    secret: bytes
    request_id_column: str | None = "request_id"
    batch_rows: int = 200_000
    bad_records: BadRecords = field(default_factory=BadRecords)

    def _files(self) -> list[Path]:
        if not self.path.exists():
            raise ConfigError(
                f"stream folder {self.path} does not exist (mount it read-only on the edge)"
            )
        suffixes = _SUFFIXES[self.file_format]
        return sorted(p for p in self.path.iterdir() if p.is_file() and p.name.endswith(suffixes))

    def read(self) -> int:
        """Profile every record not read before; returns the number of records added."""
        done = set(self.state.positions.get("done", []))
        offsets: dict[str, int] = self.state.positions.setdefault("offsets", {})
        added = 0
        for f in self._files():
            if f.name in done:
                continue
            start = offsets.get(f.name, 0)
            frame, consumed = self._read_file(f, start)
            added += self.state.add(frame)
            if self.file_format == "parquet":
                done.add(f.name)
                offsets.pop(f.name, None)
            else:
                offsets[f.name] = start + consumed
        self.state.positions["done"] = sorted(done)
        return added

    def _read_file(self, f: Path, skip: int) -> tuple[pl.DataFrame, int]:
        ctx = ParseContext(
            self.state.reference.schema.names,
            self.secret,
            self.request_id_column,
            self.bad_records,
            f.name,
        )
        if self.kind == "tabular":
            return self._read_tabular(f, skip, ctx)
        records: list[dict[str, Any]] = []
        consumed = 0
        if self.file_format == "jsonl":
            with open(f, encoding="utf-8", errors="replace") as fh:
                for i, line in enumerate(fh):
                    if i < skip:
                        continue
                    if not line.endswith("\n"):
                        break  # a line still being written: read it next time
                    consumed += 1
                    if not line.strip():
                        continue
                    try:
                        records.append(json.loads(line))
                    except ValueError:
                        self.bad_records.skip("bad_json", f"{f.name}:{i + 1}")
        else:
            df = pl.read_parquet(f) if self.file_format == "parquet" else pl.read_csv(f)
            df = df.slice(skip)
            consumed = df.height
            records = df.to_dicts()
        return parse_records(self.kind, records, ctx), consumed

    def _read_tabular(self, f: Path, skip: int, ctx: ParseContext) -> tuple[pl.DataFrame, int]:
        """Vectorised path for flat records (no per-record Python except the id HMAC)."""
        if self.file_format == "parquet":
            df = pl.read_parquet(f)
        elif self.file_format == "csv":
            df = pl.read_csv(f, infer_schema_length=10_000)
        else:
            text = f.read_bytes()
            complete = text[: text.rfind(b"\n") + 1]  # leave a line still being written
            lines = complete.split(b"\n")
            df = _ndjson(lines[skip:-1], f, self.bad_records)
            return self._flatten(df, ctx), len(lines) - 1 - skip
        df = df.slice(skip)
        return self._flatten(df, ctx), df.height

    def _flatten(self, df: pl.DataFrame, ctx: ParseContext) -> pl.DataFrame:
        if df.height == 0:
            return df
        if "timestamp" not in df.columns:
            self.bad_records.update({"missing_timestamp": df.height})
            log.warning(
                "records without timestamps skipped", extra={"count": df.height, "where": ctx.where}
            )
            return df.clear()
        ts = df.get_column("timestamp")
        if ts.dtype == pl.String:
            ok = ts.str.contains(_OFFSET.pattern) & ts.is_not_null()
            parsed = ts.str.to_datetime(time_unit="us", time_zone="UTC", strict=False)
            ok = ok & parsed.is_not_null()
        elif isinstance(ts.dtype, pl.Datetime) and ts.dtype.time_zone is not None:
            parsed = ts.dt.convert_time_zone("UTC").dt.cast_time_unit("us")
            ok = parsed.is_not_null()
        else:
            ok = pl.Series([False] * df.height)
            parsed = pl.Series([None] * df.height, dtype=pl.Datetime("us", "UTC"))
        bad = int((~ok).sum())
        if bad:
            self.bad_records.update({"naive_timestamp": bad})
            log.warning(
                "records with naive or bad timestamps skipped",
                extra={"count": bad, "where": ctx.where},
            )
        df = df.with_columns(parsed.alias("timestamp")).filter(ok)
        rid = self.request_id_column
        ids = df.get_column(rid).cast(pl.String).to_list() if rid and rid in df.columns else None
        cols = [c for c in self.state.reference.schema.names if c in df.columns]
        out = df.select(
            *cols,
            pl.col("timestamp"),
            (pl.col("latency_ms") if "latency_ms" in df.columns else pl.lit(None))
            .cast(pl.Float64)
            .alias("latency_ms"),
            (pl.col("model_version") if "model_version" in df.columns else pl.lit(None))
            .cast(pl.String)
            .alias("model_version"),
        )
        if ids is not None:
            out = out.with_columns(
                pl.Series("request_id_hmac", hmac_ids(self.secret, ids), dtype=pl.String)
            )
        return out

    def closed_windows(self, now: datetime) -> list[tuple[Window, str | None]]:
        return self.state.closed_windows(now)

    def commit(self) -> None:
        self.state.commit()


def _ndjson(lines: list[bytes], f: Path, bad: BadRecords) -> pl.DataFrame:
    if not lines:
        return pl.DataFrame()
    try:
        return pl.read_ndjson(b"\n".join(lines), infer_schema_length=10_000)
    except pl.exceptions.PolarsError:
        pass
    good = []  # slow path: find the malformed lines, count them, keep the rest
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            json.loads(line)
            good.append(line)
        except ValueError:
            bad.skip("bad_json", f"{f.name}:{i + 1}")
    return pl.read_ndjson(b"\n".join(good), infer_schema_length=10_000) if good else pl.DataFrame()


def open_stream(
    cfg: Any,
    *,
    reference: Reference,
    secret: bytes,
    state_dir: str | os.PathLike[str],
    window: timedelta,
    lateness: timedelta,
) -> FileStream:
    """A :class:`FileStream` for a :class:`~mlmon.edge.config.StreamConfig`."""
    from mlmon.edge.records import STREAM_FORMATS

    if cfg.kind not in STREAM_FORMATS:
        raise ConfigError(
            f"stream kind {cfg.kind!r} is unknown; use one of {', '.join(sorted(STREAM_FORMATS))}"
        )
    state = StreamState(reference, state_dir, window=window, lateness=lateness)
    return FileStream(Path(cfg.path), cfg.format, cfg.kind, state, secret, cfg.request_id_column)

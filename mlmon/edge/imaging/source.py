"""DICOM instances into windows, exactly once: the folder source and what every source shares.

An imaging source reads new instances (a folder's new files, a PACS's new
instances), turns each into a flat feature row (:func:`read_instance`) stamped
with the time the edge received it, and adds the rows to a
:class:`~mlmon.edge.checkpoint.StreamState`; the collector writes the closed
windows and then commits, like any stream (``read``, ``closed_windows``,
``commit``, ``bad_records``). The committed state holds, besides the open
windows' partial profiles, HMAC tokens (16 hex digits of HMAC-SHA256) of the
instances already read and of the studies and series already seen: never a
file name, a UID or a pixel.

Why the receive time and not the acquisition date: dates are identifying
and not allow-listed; the window an image lands in is when the edge saw it.

``study_first_instance`` and ``series_first_instance`` are 1 for the first
instance of a study (series) this collector sees and 0 after: their sums over
any window count distinct new studies (series), and they merge like every
other profile.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from mlmon.edge.checkpoint import StreamState
from mlmon.edge.imaging.attributes import AttributeSpec, check_attributes
from mlmon.edge.imaging.dicom import (
    SERIES_PREFIX,
    Instance,
    add_series_features,
    imaging_features,
    read_instance,
)
from mlmon.edge.streams import BadRecords
from mlmon.errors import SchemaError
from mlmon.governance.deid import hmac_id
from mlmon.profiles.frame import Reference

__all__ = [
    "FolderSource",
    "ImagingSource",
    "NotMatching",
    "SourceUnavailable",
    "instances_frame",
    "open_imaging",
]

log = logging.getLogger("mlmon.edge.imaging")

_TOKEN = 16  # hex digits of the HMAC kept in the state (64 bits: collisions negligible)


class SourceUnavailable(Exception):
    """An instance could not be fetched: leave it unread (and stop the read if ``stop``)."""

    def __init__(self, reason: str, *, stop: bool = True) -> None:
        super().__init__(reason)
        self.stop = stop


class NotMatching(Exception):
    """A fetched instance does not match the source's filters exactly: marked read, not profiled."""


def instances_frame(
    instances: Sequence[Instance], kinds: dict[str, str], received: datetime | None = None
) -> pl.DataFrame:
    """Feature rows as a frame: numeric columns Float64, categorical String (+ ``timestamp``)."""
    data: dict[str, pl.Series] = {}
    for name, kind in kinds.items():
        dtype = pl.Float64 if kind == "numeric" else pl.String
        data[name] = pl.Series(name, [i.row.get(name) for i in instances], dtype, strict=False)
    if received is not None:
        data["timestamp"] = pl.Series(
            "timestamp", [received] * len(instances), pl.Datetime("us", "UTC")
        )
    return pl.DataFrame(data)


class ImagingSource:
    """What the folder and DICOMweb sources share: the window state and the exactly-once tokens."""

    kind = "imaging"

    def __init__(
        self,
        cfg: Any,
        reference: Reference,
        secret: bytes,
        state_dir: str | os.PathLike[str],
        *,
        window: timedelta = timedelta(minutes=5),
        lateness: timedelta = timedelta(minutes=1),
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.cfg = cfg
        self.specs: tuple[AttributeSpec, ...] = check_attributes(
            cfg.attributes, options=getattr(cfg, "profile_options", ())
        )
        self.secret = secret
        self.clock = clock or (lambda: datetime.now(UTC))
        self.state = StreamState(reference, state_dir, window=window, lateness=lateness)
        kinds = imaging_features(self.specs, pixels=cfg.pixels, series=True)
        names = reference.schema.names
        missing = [n for n in names if n not in kinds]
        if missing:
            raise SchemaError(
                f"the reference has features an imaging source does not produce: {', '.join(missing)}; "
                "build the reference with `mlmon reference dicom` and the same attributes"
            )
        self.kinds = {n: kinds[n] for n in names}
        # the series-level twins the reference has (built with `--series`): filled per series
        self._series_names = [n for n in names if n.startswith(SERIES_PREFIX)]
        pos = self.state.positions.setdefault("imaging", {})
        for k in ("done", "studies", "series"):
            pos.setdefault(k, {})
        self._pos = pos
        self.bad_records = BadRecords()
        self.counts: dict[str, int] = {}

    # -- exactly once ---------------------------------------------------------------------
    def token(self, value: str) -> str:
        return hmac_id(self.secret, value)[:_TOKEN]

    def is_done(self, token: str) -> bool:
        return token in self._pos["done"]

    def _first(self, kind: str, h: str | None) -> float | None:
        if h is None:
            return None
        t = h[:_TOKEN]
        if t in self._pos[kind]:
            return 0.0
        self._pos[kind][t] = 1
        return 1.0

    def _items(self) -> Iterator[tuple[str, Callable[[], Instance]]]:
        """(token, read) of new instances, oldest first; subclasses implement it."""
        raise NotImplementedError

    def _count(self, token: str, inst: Instance) -> bool:
        """Mark ``token`` read; False if ``inst`` must not be counted (a folder's rewrite)."""
        self._pos["done"][token] = 1
        return True

    def read(self) -> int:
        """Read new instances (at most ``max_instances_per_read``) into open windows."""
        now = self.clock()
        got: list[Instance] = []
        for token, load in self._items():
            try:
                inst = load()
            except SourceUnavailable as exc:  # counted by the source; the instance stays unread
                if exc.stop:
                    break
                continue
            except NotMatching:  # outside the configured query: never fetched again
                self._pos["done"][token] = 1
                continue
            if not self._count(token, inst):
                continue
            inst.row["study_first_instance"] = self._first("studies", inst.study)
            inst.row["series_first_instance"] = self._first("series", inst.series)
            add_series_features(inst.row, self._series_names)
            self.counts[inst.status] = self.counts.get(inst.status, 0) + 1
            if inst.status != "ok":
                self.bad_records[inst.status] += 1
            got.append(inst)
            if len(got) >= self.cfg.max_instances_per_read:
                break
        if not got:
            return 0
        frame = instances_frame(got, self.kinds, now)
        del got  # no pixel array was kept; the rows go now too
        return self.state.add(frame)

    def closed_windows(self, now: datetime | None = None) -> list[Any]:
        return self.state.closed_windows(now)

    def commit(self) -> None:
        self.state.commit()


class FolderSource(ImagingSource):
    """Part-10 files under a read-only local folder (any depth), each read once."""

    kind = "folder"

    def __init__(self, cfg: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(cfg, *args, **kwargs)
        self.root = Path(cfg.folder)

    def _items(self) -> Iterator[tuple[str, Callable[[], Instance]]]:
        if not self.root.is_dir():
            self.bad_records.skip("folder_missing", "imaging folder")
            return
        now = time.time()
        horizon = now - self.cfg.settle.total_seconds()
        found = []
        self._keys: dict[str, str] = {}
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                p = Path(dirpath) / name
                try:
                    st = p.stat()
                except OSError:
                    continue
                if st.st_mtime > horizon:
                    continue  # may still be being written; next read
                rel = p.relative_to(self.root).as_posix()
                token = self.token(rel)
                key = f"{st.st_size}:{st.st_mtime_ns}"
                prev = self._pos["done"].get(token)
                if prev == 1:  # read by an older release (no content key): keep it read
                    self._pos["done"][token] = key + ":"
                    continue
                if isinstance(prev, str) and prev.rsplit(":", 1)[0] == key:
                    continue  # unchanged since it was counted
                self._keys[token] = key
                found.append((st.st_mtime_ns, rel, token, p, st.st_mtime))
        found.sort()
        wait = self.cfg.partial_wait.total_seconds() if hasattr(self.cfg, "partial_wait") else 0.0
        for n, (_m, _rel, token, p, mtime) in enumerate(found):
            yield token, functools.partial(self._load, p, n, young=mtime > now - wait)

    def _count(self, token: str, inst: Instance) -> bool:
        """Count a file once: a rewrite holding the instance already counted here is not counted."""
        prev = self._pos["done"].get(token)
        sop = (inst.instance or "")[:_TOKEN]
        self._pos["done"][token] = f"{self._keys.get(token, '')}:{sop}"
        if isinstance(prev, str) and sop and prev.rsplit(":", 1)[-1] == sop:
            log.debug(
                "dicom file rewritten with the instance already counted",
                extra={"reason": "rewritten"},
            )
            return False
        return True

    def _load(self, path: Path, n: int, *, young: bool = False) -> Instance:
        try:
            inst = read_instance(path, self.specs, self.secret, pixels=self.cfg.pixels,
                                 where=f"{self.kind} file #{n}")  # fmt: skip
        except OSError:  # vanished or unreadable between listing and reading
            return Instance("not_dicom", {"read_status": "not_dicom"})
        partial = inst.status in ("truncated", "not_dicom") or inst.pixels_missing
        if young and partial:  # may still be being written
            raise SourceUnavailable("partial", stop=False)
        return inst


class PrefixSource(ImagingSource):
    """Part-10 objects under a read-only fsspec prefix (``s3://bucket/prefix``), each read once.

    Only lists and gets: the credential needs ``s3:ListBucket`` on the prefix and
    ``s3:GetObject`` on its objects. Objects younger than ``settle`` wait for the next read.
    """

    kind = "prefix"

    def __init__(self, cfg: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(cfg, *args, **kwargs)
        import fsspec

        self.fs, self.root = fsspec.core.url_to_fs(cfg.folder, **dict(cfg.storage_options))

    def _items(self) -> Iterator[tuple[str, Callable[[], Instance]]]:
        try:
            entries = self.fs.find(self.root, detail=True)
        except FileNotFoundError:
            self.bad_records.skip("folder_missing", "imaging prefix")
            return
        except OSError:
            self.bad_records.skip("prefix_unreadable", "imaging prefix")
            return
        horizon = time.time() - self.cfg.settle.total_seconds()
        found = []
        for path, info in entries.items():
            stamp = next((info[k] for k in ("LastModified", "mtime", "last_modified")
                          if info.get(k) is not None), None)  # fmt: skip
            if stamp is not None and hasattr(stamp, "timestamp"):
                mtime = stamp.timestamp()
            else:
                mtime = float(stamp or 0)
            if mtime > horizon:
                continue
            rel = path[len(self.root) :].lstrip("/")
            token = self.token(rel)
            if not self.is_done(token):
                found.append((mtime, rel, token, path))
        found.sort()
        for n, (_m, _rel, token, path) in enumerate(found):
            yield token, functools.partial(self._load, path, n)

    def _load(self, path: str, n: int) -> Instance:
        where = f"{self.kind} object #{n}"
        try:
            data = self.fs.cat_file(path)
        except OSError:  # vanished or unreadable between listing and reading
            return Instance("not_dicom", {"read_status": "not_dicom"})
        return read_instance(data, self.specs, self.secret, pixels=self.cfg.pixels, where=where)


def open_imaging(
    cfg: Any, reference: Reference, secret: bytes, state_dir: Any, **kwargs: Any
) -> ImagingSource:
    """The source an :class:`~mlmon.edge.imaging.config.ImagingConfig` describes."""
    if cfg.dicomweb is not None:
        from mlmon.edge.imaging.dicomweb import DicomWebSource

        return DicomWebSource(cfg, reference, secret, state_dir, **kwargs)
    if "://" in cfg.folder and not cfg.folder.startswith("file://"):
        return PrefixSource(cfg, reference, secret, state_dir, **kwargs)
    return FolderSource(cfg, reference, secret, state_dir, **kwargs)

"""An index of the lake's objects, refreshed in the background, and the readers that use it.

The server lists the lake here, not per request: :class:`LakeIndex` keeps, for every table's
three prefixes (``v1/{table}``, ``v1/rollups/{table}``, ``v1/compacted/{table}``), each
``model=`` folder, each ``date=`` folder and each object's name, size and modification time.
:class:`IndexedLake` is a :class:`~mlmon.analysis.lake.Lake` whose listings come from the
index (so its answers are the ``Lake``'s answers on the objects the index has seen) and which
remembers what it read from immutable objects (a day rollup's ``mlmon.covers`` list, keyed by
the object's size and time; references).

A refresh lists the model folders of every prefix, then the date folders of every model, then
the objects of the newest two dates of each model and of any date folder not seen before (on a
local disk also of any date folder whose modification time changed): on S3 a handful of
``ListObjectsV2`` calls per model and table, not one per object. Every ``full_every``
refreshes, all date folders are listed again (on S3: late windows in older days, retention). A model whose listing changed gets a new generation number: the server's cache
keys carry it, so that model's cached figures are recomputed and no other model's are.

A refresh that fails (the lake unreachable) keeps the last listing: the server goes on
answering from it, and :attr:`LakeIndex.note` says since when the listing is old.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from mlmon.analysis.lake import Lake
from mlmon.errors import LakeError, LakeUnreachable
from mlmon.lake.layout import is_window, prefixes
from mlmon.lake.rollup import COVERS_KEY
from mlmon.lake.schema import TABLES
from mlmon.lake.storage import Storage
from mlmon.profiles.frame import Reference

__all__ = ["IndexedLake", "LakeIndex", "MirrorIndex", "Snapshot"]

log = logging.getLogger("mlmon.server.index")

_WINDOW_NAME = re.compile(r"^(\d{8}T\d{6}(?:\d{6})?Z)-(\d{8}T\d{6}(?:\d{6})?Z)-")

#: One object of a listing: name, size, modification time (seconds, or the S3 ETag).
Entry = tuple[str, int, Any]


@dataclass(frozen=True)
class Snapshot:
    """One complete listing of the lake (never changed once made; a refresh makes a new one).

    ``dirs`` maps a folder path (the storage's path, no scheme) to its children: sub-folder
    names (``model=...``, ``date=...``) or object entries. ``generations`` counts, per model,
    the refreshes that changed its objects.
    """

    dirs: dict[str, tuple[Entry, ...]] = field(default_factory=dict)
    generations: dict[str, int] = field(default_factory=dict)
    taken_at: datetime | None = None


class LakeIndex:
    """The lake's object listing, refreshed by :meth:`refresh` (and :meth:`start`'s thread).

    Parameters
    ----------
    storage
        The lake's storage (:attr:`mlmon.lake.reader.LakeStore.storage`).
    every
        Seconds between background refreshes.
    full_every
        Every this many refreshes, every date folder is listed again (not only the newest).
    on_change
        Called with the models whose objects changed after each refresh that changed some.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        every: float = 10.0,
        full_every: int = 30,
        on_change: Callable[[set[str]], None] | None = None,
    ) -> None:
        self.storage = storage
        self.every = every
        self.full_every = max(1, full_every)
        self.on_change = on_change
        self.snapshot = Snapshot()
        self.error: str | None = None
        self.failed_since: datetime | None = None
        self.refreshes = 0
        #: Refreshes that changed any object (lake-wide cached answers carry it).
        self.refreshes_changed = 0
        self._lock = threading.Lock()  # one refresh at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.roots = {
            p: self.storage.path(p) for t in TABLES for p in prefixes(t)
        }  # prefix -> folder

    # -- listing -----------------------------------------------------------------------
    def _ls(self, path: str) -> tuple[Entry, ...] | None:
        """Children of one folder (None: the folder does not exist)."""
        if self.storage.is_local:
            try:
                with os.scandir(path) as it:
                    out: list[Entry] = []
                    for e in it:
                        if e.is_dir():  # a folder's time changes when an entry is added
                            out.append((e.name + "/", 0, e.stat().st_mtime_ns))
                        else:
                            st = e.stat()
                            out.append((e.name, st.st_size, st.st_mtime_ns))
            except (FileNotFoundError, NotADirectoryError):
                return None
            except OSError as exc:
                raise LakeUnreachable(f"cannot list {path}: {exc.strerror or exc}") from exc
            return tuple(sorted(out))
        try:
            found = self.storage.fs.ls(path, detail=True, refresh=True)
        except FileNotFoundError:
            return None
        except PermissionError as exc:
            raise LakeError(
                f"not allowed to list {self.storage.url(path)}: {exc}; reading needs list+get"
            ) from exc
        except Exception as exc:  # botocore's connection errors are not OSErrors
            raise LakeUnreachable(
                f"cannot list {self.storage.url(path)}: {exc}; check the endpoint and network"
            ) from exc
        out = []
        for info in found:
            name = str(info["name"]).rstrip("/").rsplit("/", 1)[-1]
            if info.get("type") == "directory":
                out.append((name + "/", 0, 0))
            else:
                stamp = info.get("ETag") or info.get("LastModified") or info.get("mtime")
                out.append((name, int(info.get("size") or 0), str(stamp)))
        return tuple(sorted(out))

    def refresh(self, *, full: bool | None = None) -> set[str]:
        """List the lake again; return the models whose objects changed.

        Raises
        ------
        LakeUnreachable, LakeError
            The listing failed; the previous snapshot stays in use (and :attr:`note` says so).
        """
        with self._lock:
            try:
                changed = self._refresh(full)
            except (LakeError, OSError) as exc:
                if self.failed_since is None:
                    self.failed_since = datetime.now(UTC)
                self.error = str(exc)
                raise
            self.error, self.failed_since = None, None
            self.refreshes += 1
            if changed:
                self.refreshes_changed += 1
        if changed and self.on_change is not None:
            self.on_change(changed)
        return changed

    def _refresh(self, full: bool | None) -> set[str]:
        old = self.snapshot
        first = old.taken_at is None
        full = first or (full if full is not None else self.refreshes % self.full_every == 0)
        dirs: dict[str, tuple[Entry, ...]] = {}
        changed: set[str] = set()
        seen_models: set[str] = set()
        for root in self.roots.values():
            models = self._ls(root)
            if models is None:
                continue
            dirs[root] = models
            for mname, _, _ in models:
                if not mname.startswith("model=") or not mname.endswith("/"):
                    continue
                model = mname[6:-1]
                seen_models.add(model)
                mdir = f"{root}/{mname[:-1]}"
                dates = self._ls(mdir) or ()
                dirs[mdir] = dates
                if dates != old.dirs.get(mdir):
                    changed.add(model)
                day_dirs = [e for e in dates if e[0].endswith("/")]
                recent = {e[0] for e in day_dirs[-2:]}
                known = set(old.dirs.get(mdir, ()))
                for entry in day_dirs:
                    d = entry[0]
                    ddir = f"{mdir}/{d[:-1]}"
                    before = old.dirs.get(ddir)
                    # local folders carry their time: a changed one is listed again
                    if full or d in recent or before is None or entry not in known:
                        now = self._ls(ddir) or ()
                        if now != before:
                            changed.add(model)
                        dirs[ddir] = now
                    else:
                        dirs[ddir] = before
        gone = {m for m in old.generations if m not in seen_models}
        changed |= gone
        gens = {m: g for m, g in old.generations.items() if m in seen_models}
        for m in seen_models:
            gens.setdefault(m, 0)
        if not first:
            for m in changed & seen_models:
                gens[m] = old.generations.get(m, 0) + 1
        self.snapshot = Snapshot(dirs, gens, datetime.now(UTC))
        return set() if first else changed

    # -- reading the snapshot ----------------------------------------------------------
    def covers(self, path: str) -> bool:
        """Whether ``path`` lies below one of the indexed prefixes."""
        return any(path == r or path.startswith(r + "/") for r in self.roots.values())

    def children(self, path: str) -> list[str] | None:
        """Names below ``path`` as ``os.listdir`` gives them (None: not an indexed path)."""
        snap = self.snapshot
        if snap.taken_at is None or not self.covers(path):
            return None
        return [n.rstrip("/") for n, _, _ in snap.dirs.get(path.rstrip("/"), ())]

    def entry(self, path: str) -> Entry | None:
        """The listing's entry of one object (its size and time), or None."""
        folder, _, name = path.rpartition("/")
        for e in self.snapshot.dirs.get(folder, ()):
            if e[0] == name:
                return e
        return None

    def newest_window_end(self, table_name: str, model: str) -> datetime | None:
        """The latest window end among ``model``'s window objects of ``table_name``, from their names.

        A window object's name starts with its window's start and end
        (``20261101T000000Z-20261101T000500Z-...``, microseconds when there are some), the
        same values as its rows' ``window_start`` and ``window_end``.

        Raises
        ------
        ValueError
            An object name does not start that way (read the rows instead).
        """
        snap = self.snapshot
        root = self.roots[prefixes(table_name)[0]]
        mdir = f"{root}/model={model}"
        newest = ""
        for d, _, _ in snap.dirs.get(mdir, ()):
            for name, _, _ in snap.dirs.get(f"{mdir}/{d.rstrip('/')}", ()):
                if not is_window(name):
                    continue
                m = _WINDOW_NAME.match(name)
                if m is None:
                    raise ValueError(f"object name {name[:80]!r} does not start with its window")
                end = m.group(2)
                end = end if len(end) == 22 else end[:-1] + "000000Z"
                newest = max(newest, end)
        if not newest:
            return None
        return datetime.strptime(newest, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)

    def generation(self, model: str) -> int:
        """How many refreshes changed ``model``'s objects (0 for a model never seen)."""
        return self.snapshot.generations.get(model, 0)

    @property
    def note(self) -> str | None:
        """A plain sentence when the listing is old because refreshing it fails, else None."""
        if self.error is None or self.failed_since is None:
            return None
        taken = self.snapshot.taken_at
        when = f"{taken:%Y-%m-%d %H:%M} UTC" if taken else "never"
        return (
            f"The lake could not be listed since {self.failed_since:%Y-%m-%d %H:%M} UTC; "
            f"figures are from the objects seen at {when} (the server log has the error)."
        )

    # -- the background thread ---------------------------------------------------------
    def start(self) -> None:
        """Refresh every :attr:`every` seconds in a daemon thread until :meth:`stop`."""

        def loop() -> None:
            while not self._stop.wait(self.every):
                try:
                    self.refresh()
                except (LakeError, OSError) as exc:
                    log.warning("lake index not refreshed (%s); serving the last listing", exc)
                except Exception:  # never let the thread die: the server would go stale silently
                    log.exception("lake index refresh failed; serving the last listing")

        self._stop.clear()
        self._thread = threading.Thread(target=loop, name="mlmon-lake-index", daemon=True)
        self._thread.start()

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called (background work should end)."""
        return self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


class MirrorIndex(LakeIndex):
    """A compute worker's copy of the server's listing (:mod:`mlmon.server.compute`), model by
    model: it never lists the lake; :meth:`update` puts in what the server's index saw."""

    def __init__(self, config: Any) -> None:
        options = dict(config.storage_options) or None
        super().__init__(Lake(config.lake, options).storage, every=config.index_every or 10.0)

    def update(self, model: str, generation: int, dirs: dict[str, tuple[Entry, ...]]) -> None:
        """Replace ``model``'s listing (and the prefixes' model lists) by the server's."""
        old = self.snapshot
        heads = [f"{r}/model={model}" for r in self.roots.values()]
        kept = {
            k: v
            for k, v in old.dirs.items()
            if not any(k == h or k.startswith(h + "/") for h in heads)
        }
        kept.update(dirs)
        gens = {**old.generations, model: generation}
        self.snapshot = Snapshot(kept, gens, datetime.now(UTC))

    def refresh(self, *, full: bool | None = None) -> set[str]:
        return set()

    def start(self) -> None:
        return None


class IndexedLake(Lake):
    """A :class:`~mlmon.analysis.lake.Lake` that lists from a :class:`LakeIndex`.

    One per thread (the server gives each worker thread its own); the index and the
    caches of rollup covers and references are shared and safe to share.
    """

    def __init__(
        self,
        uri: str,
        storage_options: dict[str, Any] | None,
        index: LakeIndex,
        shared: dict[Any, Any],
    ) -> None:
        super().__init__(uri, storage_options)
        self.index = index
        self._shared = shared  # (kind, ...) -> value, shared by every thread's reader

    def _listdir(self, path: str) -> list[str]:
        names = self.index.children(path)
        return super()._listdir(path) if names is None else names

    def _tree(self, mdir: str) -> dict[str, list[str]]:
        if not self.index.covers(mdir):
            return super()._tree(mdir)
        return {
            d: self._listdir(f"{mdir}/{d}") for d in self._listdir(mdir) if d.startswith("date=")
        }

    def files(
        self,
        table_name: str,
        *,
        model: str | None = None,
        start: Any = None,
        end: Any = None,
        rollup: bool = False,
    ) -> list[str]:
        """The objects to read, kept per (table, model, range) until the model's objects change:
        one status or page asks for the same list several times (each read of each figure)."""
        if model is None or self.index.snapshot.taken_at is None:
            return super().files(table_name, model=model, start=start, end=end, rollup=rollup)
        key = ("files", table_name, model, start, end, rollup, self.index.generation(model))
        hit = self._shared.get(key)
        if hit is None:
            hit = tuple(super().files(table_name, model=model, start=start, end=end, rollup=rollup))
            self._shared[key] = hit
        return [f for f in hit if f not in self._quarantine]

    #: Bytes of profile rows kept for reuse (least recently used dropped first).
    ROWS_BYTES = 64 * 2**20

    def scan(
        self,
        table_name: str,
        *,
        model: str | None = None,
        start: Any = None,
        end: Any = None,
        rollup: bool = False,
    ) -> pl.LazyFrame:
        """The day rollups' profile rows of (model, range) read once until the model's objects
        change: a status and a page read them five times (drift for the range and by period,
        data quality, the top features' distributions, multivariate drift), each then
        filtered by version or feature in memory. Other scans are the lake's own."""
        if (
            table_name != "profiles"
            or not rollup
            or model is None
            or self.index.snapshot.taken_at is None
        ):
            return super().scan(table_name, model=model, start=start, end=end, rollup=rollup)
        key = (model, start, end, self.index.generation(model))
        rows: OrderedDict[Any, pl.DataFrame] = self._shared.setdefault(
            "profile-rows", OrderedDict()
        )
        lock: threading.Lock = self._shared.setdefault("profile-rows-lock", threading.Lock())
        with lock:
            hit = rows.get(key)
            if hit is not None:  # the scan itself (its file list, the frame) is not built again
                rows.move_to_end(key)
                return hit.lazy()
        lf = super().scan(table_name, model=model, start=start, end=end, rollup=rollup)
        try:
            df = lf.collect()
        except Exception:  # a corrupt object: the reader's own fallback names it
            return lf
        with lock:
            rows[key] = df
            size = sum(int(v.estimated_size()) for v in rows.values())
            while len(rows) > 1 and size > self.ROWS_BYTES:
                size -= int(rows.popitem(last=False)[1].estimated_size())
        return df.lazy()

    def _rollup_covers(self, path: str) -> set[str]:
        entry = self.index.entry(path)
        key = ("covers", path, entry)
        hit = self._shared.get(key)
        if hit is None or entry is None:
            with self.storage.fs.open(path, "rb") as fh:
                meta = pq.read_schema(fh).metadata or {}
            hit = frozenset(json.loads(meta[COVERS_KEY]))
            if entry is not None:
                self._shared[key] = hit
        return set(hit)

    def _read_manifest(self, path: str) -> dict[str, Any]:
        entry = self.index.entry(path)
        key = ("manifest", path, entry)
        hit = self._shared.get(key)
        if hit is None or entry is None:
            hit = super()._read_manifest(path)
            if entry is not None:
                self._shared[key] = hit
        return hit

    def reference(self, reference_id: str, *, model: str | None = None) -> Reference:
        if model is None:
            return super().reference(reference_id, model=model)
        key = ("reference", model, reference_id, self.index.generation(model))
        hit = self._shared.get(key)
        if hit is None:
            hit = super().reference(reference_id, model=model)
            self._shared[key] = hit
        return hit

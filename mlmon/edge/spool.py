"""An on-disk spool for lake objects while the bucket is unavailable.

When a PUT fails because the lake cannot be reached (or refuses the write),
the object's bytes go to ``state_dir/spool/`` under a sequence number; the
next write (or :meth:`Spool.flush`) sends the spooled objects first, in order,
so the lake receives windows in the order they closed. The spool is bounded
(``max_bytes``): when full, new objects are refused with :class:`SpoolFull`
and counted, rather than silently filling the edge's volume.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from mlmon.errors import EdgeError, LakeError
from mlmon.lake.storage import Storage, put_object

__all__ = ["Spool", "SpoolFull"]

log = logging.getLogger("mlmon.edge.spool")
_SEQ = re.compile(r"^\d{12}$")


class SpoolFull(EdgeError):
    """The lake is unreachable and the spool has no room left for this object."""


@dataclass(frozen=True)
class _Entry:
    seq: int
    path: str
    size: int
    blob: Path


class Spool:
    """Write-through to the lake, falling back to disk; use as ``LakeWriter(put=spool.put)``."""

    def __init__(self, folder: str | os.PathLike[str], *, max_bytes: int) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.dropped = 0
        self._lock = threading.Lock()
        self._entries = self._scan()

    def _scan(self) -> list[_Entry]:
        """The spooled objects, oldest first.

        Only files named as the spool names them (``{seq:012d}.json`` / ``.bin``) are
        read or removed; anything else in the folder is left alone.
        """
        entries = []
        for meta in sorted(self.folder.glob("*.json")):
            if not _SEQ.match(meta.stem):
                continue
            blob = meta.with_suffix(".bin")
            if not blob.exists():  # a crash between the two renames: the object was never spooled
                meta.unlink()
                continue
            info = json.loads(meta.read_text())
            entries.append(_Entry(int(meta.stem), info["path"], blob.stat().st_size, blob))
        for stray in self.folder.glob("*.bin"):
            if _SEQ.match(stray.stem) and not stray.with_suffix(".json").exists():
                stray.unlink()
        return entries

    @property
    def size_bytes(self) -> int:
        return sum(e.size for e in self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def _store(self, path: str, data: bytes) -> None:
        if self.size_bytes + len(data) > self.max_bytes:
            self.dropped += 1
            raise SpoolFull(
                f"lake unreachable and the spool at {self.folder} is full "
                f"({self.size_bytes} of {self.max_bytes} bytes); object {path} was not kept. "
                "Restore access to the bucket or raise buffer_max_bytes."
            )
        seq = (self._entries[-1].seq + 1) if self._entries else 1
        blob = self.folder / f"{seq:012d}.bin"
        meta = self.folder / f"{seq:012d}.json"
        for target, content in ((blob, data), (meta, json.dumps({"path": path}).encode())):
            tmp = target.with_suffix(".tmp")
            with open(tmp, "wb") as fh:
                fh.write(content)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        self._entries.append(_Entry(seq, path, len(data), blob))
        log.warning(
            "lake unreachable: spooled %s (%d bytes, %d objects waiting)",
            path,
            len(data),
            len(self),
        )

    def flush(self, storage: Storage) -> int:
        """Send spooled objects in order; stop at the first failure. Returns how many were sent."""
        sent = 0
        with self._lock:
            while self._entries:
                e = self._entries[0]
                put_object(storage, e.path, e.blob.read_bytes())
                e.blob.with_suffix(".json").unlink()
                e.blob.unlink()
                self._entries.pop(0)
                sent += 1
        if sent:
            log.info("spool flushed %d objects to the lake", sent)
        return sent

    def put(self, storage: Storage, path: str, data: bytes) -> None:
        """Write ``data`` at ``path``; spool it when the lake cannot take it now."""
        try:
            if self._entries:
                self.flush(storage)
            put_object(storage, path, data)
        except LakeError as exc:
            log.error("lake write failed (%s); spooling", type(exc).__name__)
            with self._lock:
                self._store(path, data)

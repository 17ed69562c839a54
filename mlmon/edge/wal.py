"""A write-ahead log on the edge's state volume: what the sink acknowledged survives a crash.

Segments ``wal-<n>.log`` in one folder; each record is one line
``<crc32 hex> <json>\\n``. Appends go to the newest segment (a new one per
process: an old segment may end in a torn line and is only read);
:meth:`WriteAheadLog.sync` makes everything appended so far durable
(``fsync``) and many waiting writers share one ``fsync`` (group commit).
:meth:`WriteAheadLog.rotate` starts the next segment; :meth:`WriteAheadLog.drop_before`
deletes segments once what they hold is committed elsewhere.

Reading stops at the first line of a segment whose checksum does not match or
that has no newline: a crash in the middle of an append leaves such a tail, and
that record was never acknowledged (acknowledgement waits for the ``fsync``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlmon.errors import ConfigError

__all__ = ["WriteAheadLog"]

log = logging.getLogger("mlmon.edge.wal")
_SEGMENT = re.compile(r"^wal-(\d{10})\.log$")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WriteAheadLog:
    """Append-only JSON records in numbered segment files under ``directory``.

    Examples
    --------
    >>> import tempfile
    >>> wal = WriteAheadLog(tempfile.mkdtemp())
    >>> wal.sync(wal.append([{"a": 1}]))
    >>> n = wal.rotate()
    >>> [r for _, r in wal.replay(0)]
    [{'a': 1}]
    >>> wal.drop_before(n)
    1
    >>> [r for _, r in wal.replay(0)]
    []
    >>> wal.close()
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"write-ahead log folder {self.dir} cannot be created ({exc.strerror}); "
                "mount a writable volume at state_dir"
            ) from exc
        self._lock = threading.Lock()  # appends and the file object
        self._sync_lock = threading.Lock()  # one fsync or rotation at a time
        self.written = 0  # bytes appended, over all segments of this process
        self.synced = 0  # bytes known durable
        existing = self.segments()
        self.segment = (existing[-1] + 1) if existing else 1
        self._file = self._open(self.segment)

    def _path(self, n: int) -> Path:
        return self.dir / f"wal-{n:010d}.log"

    def _open(self, n: int) -> Any:
        fh = open(self._path(n), "ab")  # noqa: SIM115 - kept open for appends
        _fsync_dir(self.dir)
        return fh

    def segments(self) -> list[int]:
        """Numbers of the segment files present, ascending."""
        out = []
        for p in self.dir.iterdir():
            m = _SEGMENT.match(p.name)
            if m:
                out.append(int(m.group(1)))
        return sorted(out)

    def append(self, records: list[Any]) -> int:
        """Append JSON-able records (buffered); returns the ticket to pass to :meth:`sync`."""
        lines = []
        for rec in records:
            data = json.dumps(rec, separators=(",", ":"), default=str).encode()
            lines.append(b"%08x %s\n" % (zlib.crc32(data), data))
        blob = b"".join(lines)
        with self._lock:
            self._file.write(blob)
            self.written += len(blob)
            return self.written

    def sync(self, ticket: int | None = None) -> None:
        """Make every record appended up to ``ticket`` (default: all) durable."""
        with self._sync_lock:
            if ticket is not None and self.synced >= ticket:
                return  # another writer's fsync covered it
            with self._lock:
                self._file.flush()
                target = self.written
                fd = self._file.fileno()
            os.fsync(fd)  # appends go on into the buffer meanwhile
            self.synced = max(self.synced, target)

    def rotate(self) -> int:
        """Make everything durable, start the next segment, and return its number."""
        with self._sync_lock, self._lock:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self.synced = self.written
            self.segment += 1
            self._file = self._open(self.segment)
            return self.segment

    def drop_before(self, n: int) -> int:
        """Delete the segments numbered below ``n`` (never the one being appended to)."""
        dropped = 0
        for k in self.segments():
            if k < min(n, self.segment):
                self._path(k).unlink(missing_ok=True)
                dropped += 1
        if dropped:
            _fsync_dir(self.dir)
        return dropped

    def replay(self, start: int) -> Iterator[tuple[int, Any]]:
        """``(segment, record)`` for every intact record of the segments numbered ``start`` and up.

        The segment being appended to by this process is included (as far as
        it was flushed); a torn tail ends its segment's records.
        """
        for k in self.segments():
            if k < start:
                continue
            if k == self.segment:
                with self._lock:
                    self._file.flush()
            with open(self._path(k), "rb") as fh:
                for i, line in enumerate(fh):
                    rec = self._decode(line)
                    if rec is None:
                        log.warning(
                            "write-ahead log: torn record ends the segment (never acknowledged)",
                            extra={"segment": self._path(k).name, "line": i + 1},
                        )
                        break
                    yield k, rec

    @staticmethod
    def _decode(line: bytes) -> Any:
        if not line.endswith(b"\n") or len(line) < 10 or line[8:9] != b" ":
            return None
        data = line[9:-1]
        try:
            if int(line[:8], 16) != zlib.crc32(data):
                return None
            return json.loads(data)
        except ValueError:
            return None

    def close(self) -> None:
        with self._sync_lock, self._lock:
            if not self._file.closed:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
            self.synced = self.written

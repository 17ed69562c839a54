"""An on-disk spool for lake objects while the bucket is unavailable, behind a circuit breaker.

When a PUT fails because the lake cannot be reached (or refuses the write),
the object's bytes go to ``state_dir/spool/`` under a sequence number and the
:class:`Breaker` opens: from then on every new object goes to the spool at
once, without touching the network, so a bucket that is down costs the
collector's schedule nothing. The bucket is tried again with the oldest
spooled object (a real PUT, so no other permission is needed) after
``retry_min``, then after twice as long each time it fails, up to
``retry_max``. The first PUT that succeeds closes the breaker;
:meth:`Spool.flush` then sends the spooled objects in bounded steps, oldest
first, and new objects keep queueing behind them until the spool is empty,
so the lake receives windows in the order they closed. With ``write_behind``
(``mlmon edge run`` on S3) every object goes through the spool and a
background thread sends it, so the scheduler never waits on the bucket, up or
down. The spool is bounded
(``max_bytes``): when full, new objects are refused with :class:`SpoolFull`
and counted, rather than silently filling the edge's volume.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlmon.errors import EdgeError, LakeError
from mlmon.lake.storage import Storage, put_object

__all__ = ["Breaker", "Spool", "SpoolFull"]

log = logging.getLogger("mlmon.edge.spool")
_SEQ = re.compile(r"^\d{12}$")


class SpoolFull(EdgeError):
    """The lake is unreachable and the spool has no room left for this object."""


class Breaker:
    """Whether the bucket counts as down, and when to try it again (exponential back-off).

    Closed: PUTs go to the bucket. A failure opens it: the next attempt is allowed
    ``retry_min_s`` later, and each further failure doubles the wait, up to
    ``retry_max_s``. A success closes it and resets the wait.

    Examples
    --------
    >>> t = [0.0]
    >>> b = Breaker(retry_min_s=2, retry_max_s=5, clock=lambda: t[0])
    >>> b.failed("refused"); b.is_open, b.may_try()
    (True, False)
    >>> t[0] = 2.0; b.may_try()
    True
    >>> b.failed("refused"); b.failed("refused"); b.next_delay_s
    5
    >>> b.succeeded(); b.is_open
    False
    """

    def __init__(
        self,
        *,
        retry_min_s: float = 2.0,
        retry_max_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self._clock = clock
        self._lock = threading.Lock()
        self.is_open = False
        self.since: datetime | None = None  # wall time of the failure that opened it
        self.failures = 0  # consecutive failures
        self.last_error: str | None = None
        self.next_delay_s: float = retry_min_s
        self._next_try = 0.0

    def failed(self, error: str) -> None:
        with self._lock:
            if not self.is_open:
                self.is_open = True
                self.since = datetime.now(UTC)
                self.next_delay_s = self.retry_min_s
            else:
                self.next_delay_s = min(self.next_delay_s * 2, self.retry_max_s)
            self.failures += 1
            self.last_error = error
            self._next_try = self._clock() + self.next_delay_s

    def succeeded(self) -> None:
        with self._lock:
            if self.is_open:
                log.info(
                    "lake reachable again after %d failed attempts since %s",
                    self.failures,
                    self.since.isoformat(timespec="seconds") if self.since else "?",
                )
            self.is_open = False
            self.since = None
            self.failures = 0
            self.last_error = None
            self.next_delay_s = self.retry_min_s

    def may_try(self) -> bool:
        """Closed, or open and the back-off has passed."""
        return not self.is_open or self._clock() >= self._next_try

    def seconds_to_try(self) -> float:
        """How long until the next attempt is allowed (0 when closed or due)."""
        return 0.0 if not self.is_open else max(0.0, self._next_try - self._clock())


@dataclass(frozen=True)
class _Entry:
    seq: int
    path: str
    size: int
    blob: Path


class Spool:
    """Write-through to the lake, falling back to disk; use as ``LakeWriter(put=spool.put)``.

    Parameters
    ----------
    folder
        Where spooled objects wait (the edge's state volume).
    max_bytes
        The most the spool may hold; beyond it objects are refused (:class:`SpoolFull`).
    breaker
        The circuit breaker; a new one (2 s, doubling to 60 s) when not given.
    on_response
        Called with ``(path, answer)`` after every PUT the bucket took (the answer as
        :func:`~mlmon.lake.storage.put_object` returns it): the edge checks SSE headers here.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        max_bytes: int,
        breaker: Breaker | None = None,
        on_response: Callable[[str, dict[str, Any] | None], None] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.breaker = breaker or Breaker()
        self.on_response = on_response
        self.dropped = 0
        self.sent = 0  # objects the bucket took from the spool, ever (this process)
        self.sent_through = 0  # every object with a sequence number up to this has landed
        self._lock = threading.Lock()  # guards _entries and the files
        self._send = threading.Lock()  # one PUT at a time: keeps the lake's order
        self.wakeup = threading.Event()  # set when something is spooled
        self.write_behind = False  # see put()
        self.outage_since: datetime | None = None  # the breaker opened; cleared once drained
        self._entries = self._scan()
        self._next_seq = (self._entries[-1].seq + 1) if self._entries else 1
        self.sent_through = (self._entries[0].seq if self._entries else self._next_seq) - 1

    @property
    def stored_through(self) -> int:
        """The sequence number of the newest object stored (the lake has it once ``sent_through`` is there)."""
        with self._lock:
            return self._next_seq - 1

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
        with self._lock:
            return sum(e.size for e in self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def _store(self, path: str, data: bytes) -> None:
        with self._lock:
            size = sum(e.size for e in self._entries)
            if size + len(data) > self.max_bytes:
                self.dropped += 1
                raise SpoolFull(
                    f"lake unreachable and the spool at {self.folder} is full "
                    f"({size} of {self.max_bytes} bytes); object {path} was not kept. "
                    "Restore access to the bucket or raise buffer_max_bytes."
                )
            seq = self._next_seq
            self._next_seq += 1
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
            waiting = len(self._entries)
        self.wakeup.set()
        if self.breaker.is_open or not self.write_behind:
            log.warning(
                "lake unreachable: spooled %s (%d bytes, %d objects waiting)",
                path,
                len(data),
                waiting,
            )

    def _put(self, storage: Storage, path: str, data: bytes) -> None:
        """One PUT; the breaker learns the outcome. Raises the LakeError of a failure."""
        try:
            response = put_object(storage, path, data)
        except LakeError as exc:
            self.breaker.failed(f"{type(exc).__name__}: {exc}")
            if self.outage_since is None:
                self.outage_since = self.breaker.since
            raise
        self.breaker.succeeded()
        if self.on_response is not None:
            self.on_response(path, response)

    def flush(
        self,
        storage: Storage,
        *,
        max_objects: int | None = None,
        stop: threading.Event | None = None,
        force: bool = False,
    ) -> int:
        """Send spooled objects oldest first; stop at the first failure. Returns how many were sent.

        Parameters
        ----------
        max_objects
            Send at most this many (a bounded step); all when None.
        stop
            Checked between objects: when set, the flush ends after the PUT in flight.
        force
            Try now even while the breaker's back-off has not passed (``edge once`` at the end
            of its cycle: one attempt).

        Raises
        ------
        LakeError
            The PUT of the oldest object failed (it stays first in the spool; the breaker is
            open). Not raised when the breaker's back-off kept the flush from trying at all.
        """
        sent = 0
        with self._send:
            while self._entries and (max_objects is None or sent < max_objects):
                if stop is not None and stop.is_set():
                    break
                if not force and not self.breaker.may_try():
                    break
                force = False  # one forced attempt, then the breaker decides
                e = self._entries[0]
                self._put(storage, e.path, e.blob.read_bytes())
                with self._lock:
                    e.blob.with_suffix(".json").unlink()
                    e.blob.unlink()
                    self._entries.pop(0)
                    self.sent_through = e.seq
                sent += 1
                self.sent += 1
            if not self._entries:
                self.outage_since = None
        if sent:
            routine = self.write_behind and self.outage_since is None  # edge run's usual sending
            log.log(
                logging.DEBUG if routine else logging.INFO,
                "spool flushed %d objects to the lake (%d still waiting)",
                sent,
                len(self),
            )
        return sent

    def put(self, storage: Storage, path: str, data: bytes) -> bool:
        """Write ``data`` at ``path``; spool it when the lake cannot take it now.

        While the breaker is open, or older objects still wait in the spool, the object is
        spooled at once (no network). Otherwise one bounded PUT; if it fails the object is
        spooled and the breaker opens. Returns True when the bucket took the object.

        With ``write_behind`` (``edge run`` on S3) every object goes to the spool and a
        background thread sends it (:meth:`flush`): the scheduler never waits on the
        network. Then True means the bucket was not known to be down.

        Raises
        ------
        SpoolFull
            The object had to be spooled and the spool has no room for it.
        """
        if self.write_behind:
            if not self._entries and not self.breaker.is_open and len(data) > self.max_bytes:
                pass  # an object larger than the whole spool: sent directly, as without write-behind
            else:
                self._store(path, data)
                return not self.breaker.is_open
        if not self.breaker.is_open and not self._entries:
            with self._send:
                if not self.breaker.is_open and not self._entries:
                    try:
                        self._put(storage, path, data)
                        return True
                    except LakeError as exc:
                        log.error("lake write failed (%s); spooling", type(exc).__name__)
        self._store(path, data)
        return False

"""The durable outbox: which alerts fire, and the messages not yet delivered, in one file.

Everything the delivery must not forget lives in ``state_dir/outbox.json``,
rewritten whole on every change (a temporary file, ``fsync``, an atomic
rename, then an ``fsync`` of the folder): the alerts firing (so a restart
neither repeats nor misses a state change), the queued messages with their
attempts and next attempt time, and the send times each receiver's rate limit
counts. A state change and the messages it queues are written in the same
rename, so a process killed at any point (SIGKILL included) either did not
see the change (and sees it again on the next pass) or has its messages
queued. A message is removed only after its receiver accepted it: delivery is
at least once, and every message carries an idempotency key (its ``id``, from
the rule, model, subject, state and the time the alert started firing) that a
receiver can dedupe on.

The outbox is bounded (``outbox: {max_messages, max_bytes}`` of alerts.yaml):
when a pass would leave more, :meth:`Outbox.bound` drops the refreshes, the
resolved and the lower-severity messages first, oldest first, and the delivery
queues one notice per receiver saying how many were dropped and which firing
alerts they told of (docs/alerts.md, "A full outbox").

A lock file (``state_dir/lock``, ``flock``) keeps a second delivery process
off the same state.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mlmon.errors import ConfigError

__all__ = ["Message", "Outbox", "idempotency_key", "locked"]

FORMAT = 1
_SEVERITY = {"info": 0, "warning": 1, "critical": 2}


def idempotency_key(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


@dataclass
class Message:
    """One queued message: a receiver, a model and the alerts it tells about."""

    id: str
    receiver: str
    model: str
    kind: str  # "change", "refresh" (Alertmanager's re-send of firing alerts) or "notice"
    alerts: list[dict[str, Any]]
    created: str
    attempts: int = 0
    next_attempt: str = ""
    last_error: str = ""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """Hold the state folder's lock (one delivery process at a time); creates it (mode 700)."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(state_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ConfigError(
                f"{state_dir}: another `mlmon alerts` process holds this state folder; "
                "run one delivery per state_dir"
            ) from exc
        yield
    finally:
        os.close(fd)


class Outbox:
    """The state file of one delivery process (see the module docstring).

    Parameters
    ----------
    state_dir
        The delivery's own volume; created with mode 700.
    """

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.path = state_dir / "outbox.json"
        self.firing: dict[str, dict[str, Any]] = {}
        self.messages: list[Message] = []
        self.sent: dict[str, list[str]] = {}
        if self.path.exists():
            try:
                doc = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    f"{self.path}: the alert outbox is unreadable ({type(exc).__name__}); it was "
                    "not changed: move it aside to start with no alert firing"
                ) from exc
            self.firing = doc.get("firing", {})
            self.messages = [Message(**m) for m in doc.get("messages", [])]
            self.sent = doc.get("sent", {})

    def save(self) -> None:
        """Write everything at once: temporary file, fsync, atomic rename, fsync of the folder."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        doc = {
            "format": FORMAT,
            "firing": self.firing,
            "messages": [m.to_json() for m in self.messages],
            "sent": self.sent,
        }
        tmp = self.path.with_suffix(".tmp")
        data = json.dumps(doc, sort_keys=True, indent=1).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dfd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    # -- queue -------------------------------------------------------------------------
    def enqueue(
        self, receiver: str, model: str, alerts: list[dict[str, Any]], now: datetime, kind: str
    ) -> Message:
        """Queue ``alerts`` for ``receiver``, grouped with a queued, never-tried one of the model."""
        for m in self.messages:
            if m.receiver == receiver and m.model == model and m.kind == kind and not m.attempts:
                if kind == "refresh":
                    m.alerts = list(alerts)
                else:
                    have = {a["key"] for a in m.alerts}
                    m.alerts += [a for a in alerts if a["key"] not in have]
                m.id = idempotency_key(receiver, *sorted(a["key"] for a in m.alerts), m.created)
                return m
        created = _iso(now)
        msg = Message(
            idempotency_key(receiver, *sorted(a["key"] for a in alerts), created),
            receiver,
            model,
            kind,
            list(alerts),
            created,
            next_attempt=created,
        )
        self.messages.append(msg)
        return msg

    def due(
        self, receiver: str, now: datetime, longest_wait: timedelta | None = None
    ) -> list[Message]:
        """The messages of ``receiver`` whose next attempt has come.

        A next attempt more than ``longest_wait`` (the back-off's cap) ahead can only
        come from a wall clock stepped back since it was set: such a message is due now.
        """
        horizon = None if longest_wait is None else now + longest_wait
        out = []
        for m in self.messages:
            if m.receiver != receiver:
                continue
            at = datetime.fromisoformat(m.next_attempt)
            if at <= now or (horizon is not None and at > horizon):
                out.append(m)
        return out

    def delivered(self, msg: Message, now: datetime) -> None:
        self.messages = [m for m in self.messages if m.id != msg.id]
        if msg.kind == "change":
            self.sent.setdefault(msg.receiver, []).append(_iso(now))

    def failed(
        self, msg: Message, now: datetime, error: str, retry_min: timedelta, retry_max: timedelta
    ) -> timedelta:
        """Count a failed attempt; the next one waits ``retry_min * 2**(attempts-1)``, capped."""
        msg.attempts += 1
        wait = min(retry_max, retry_min * (2 ** min(msg.attempts - 1, 30)))
        msg.next_attempt = _iso(now + wait)
        msg.last_error = error
        return wait

    def bound(self, max_messages: int, max_bytes: int) -> list[Message]:
        """Drop queued messages until at most ``max_messages`` and ``max_bytes`` remain.

        Returns the dropped messages. The order: Alertmanager refreshes first (the next
        pass sends them again), then messages with no firing alert, then those whose
        firing alerts are of lower severity; within each, lower severity and then the
        oldest first. A ``notice`` (what was dropped) is never dropped. The size counted
        is each message's JSON, as the outbox file holds it.
        """
        sizes = {id(m): len(json.dumps(m.to_json(), sort_keys=True)) for m in self.messages}
        count, total = len(self.messages), sum(sizes.values())
        if count <= max_messages and total <= max_bytes:
            return []

        def order(m: Message) -> tuple[bool, bool, int, str]:
            firing = [a for a in m.alerts if a["state"] == "firing"]
            severity = max((_SEVERITY.get(a["severity"], 1) for a in firing or m.alerts), default=0)
            return (m.kind != "refresh", bool(firing), severity, m.created)

        dropped: list[Message] = []
        for m in sorted((m for m in self.messages if m.kind != "notice"), key=order):
            if count <= max_messages and total <= max_bytes:
                break
            dropped.append(m)
            count, total = count - 1, total - sizes[id(m)]
        gone = {id(m) for m in dropped}
        self.messages = [m for m in self.messages if id(m) not in gone]
        return dropped

    def notice(self, receiver: str, alert: dict[str, Any], now: datetime) -> Message:
        """Queue the receiver's one notice (replacing a queued one: there is one at a time)."""
        self.messages = [
            m for m in self.messages if not (m.receiver == receiver and m.kind == "notice")
        ]
        created = _iso(now)
        msg = Message(
            idempotency_key(receiver, "notice", alert["key"], str(alert["value"]), created),
            receiver,
            alert["model"],
            "notice",
            [alert],
            created,
            next_attempt=created,
        )
        self.messages.append(msg)
        return msg

    def rate_room(self, receiver: str, limit: int, per: timedelta, now: datetime) -> int:
        """How many more messages ``receiver`` may get now (its sends within ``per``)."""
        recent = [  # a send "ahead" of now (a clock stepped back) counts no longer than ``per``
            t
            for t in self.sent.get(receiver, [])
            if now - per < datetime.fromisoformat(t) <= now + per
        ]
        self.sent[receiver] = recent
        return max(0, limit - len(recent))

"""Silences and acknowledgements: an operator's word on alerts, honoured by the delivery, audited.

Kept in ``state_dir/silences.json`` (the delivery's volume), written whole with
``fsync`` and an atomic rename under its own lock, so the dashboard or the CLI
can add one while a delivery pass runs; the pass reads the file once.

- A **silence** (model pattern, optional rule and subject patterns, an end
  time, who and why) holds back the messages of matching alerts while it
  lasts. The alerts still change state; an alert still firing when the silence
  ends is then sent, and one that fired and cleared within it sends nothing. The
  resolve of an alert already announced is always sent, so no receiver is left
  with a firing alert that is over.
- An **acknowledgement** of a firing alert (``rule|model|subject``, who, a
  note) says someone is on it: the resolved message names who acknowledged
  it. It ends when the alert resolves.

Every change is one record of the hash-chained audit log (``mlmon.governance.audit``)
when ``audit`` (a factory of :class:`~mlmon.governance.audit.AuditLog`) is given:
action, target, who and until when; the reason and note are kept in the file, not
in the log. The log is opened, written and flushed under the silences lock, so the
dashboard and the CLI never fork the chain; a flush that fails (the bucket is down)
leaves the record in the chain's open segment on the volume, sent with the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from mlmon.errors import ConfigError, MlmonError

__all__ = ["Acknowledgement", "Silence", "Silences", "open_silences"]

log = logging.getLogger("mlmon.alerting")
_WHO = re.compile(r"^[A-Za-z0-9_.@+-]{1,128}$")


@dataclass(frozen=True)
class Silence:
    id: str
    model: str
    rule: str
    subject: str
    starts: str
    ends: str
    by: str
    reason: str

    def matches(self, alert: dict[str, Any], now: datetime) -> bool:
        if not datetime.fromisoformat(self.starts) <= now < datetime.fromisoformat(self.ends):
            return False
        return (
            fnmatch.fnmatchcase(alert["model"], self.model)
            and fnmatch.fnmatchcase(alert["rule"], self.rule)
            and fnmatch.fnmatchcase(alert.get("subject") or "", self.subject)
        )


@dataclass(frozen=True)
class Acknowledgement:
    key: str  # rule|model|subject of the firing alert
    by: str
    at: str
    note: str


def _check_who(by: str) -> str:
    if not _WHO.match(by):
        raise ConfigError(
            "the operator name must be 1-128 letters, digits or . _ @ + - (a user id, not free text)"
        )
    return by


class Silences:
    """The silences and acknowledgements of one delivery's ``state_dir``."""

    def __init__(self, state_dir: Path, audit: Any = None) -> None:
        self.dir = state_dir
        self.path = state_dir / "silences.json"
        self.audit = audit
        self.silences: list[Silence] = []
        self.acks: dict[str, Acknowledgement] = {}
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"{self.path}: the silences file is unreadable ({type(exc).__name__}); "
                "move it aside to drop every silence"
            ) from exc
        self.silences = [Silence(**s) for s in doc.get("silences", [])]
        self.acks = {a["key"]: Acknowledgement(**a) for a in doc.get("acks", [])}

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.dir / "silences.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._load()  # another writer may have changed it
            yield
            doc = {
                "silences": [asdict(s) for s in self.silences],
                "acks": [asdict(a) for a in self.acks.values()],
            }
            tmp = self.path.with_suffix(".tmp")
            wfd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(wfd, json.dumps(doc, indent=1, sort_keys=True).encode())
                os.fsync(wfd)
            finally:
                os.close(wfd)
            os.replace(tmp, self.path)
        finally:
            os.close(fd)

    def _audit(self, action: str, target: str, **details: Any) -> None:
        """Call inside :meth:`_changing` (its lock serialises the chain)."""
        if self.audit is None:
            return
        audit_log = self.audit()
        audit_log.record(action, target, "ok", **details)
        try:
            audit_log.flush()
        except (MlmonError, OSError) as exc:
            log.warning("alerts: audit segment not written (%s); sent with the next flush", exc)

    def note(self, action: str, target: str, **details: Any) -> None:
        """One audit record of the delivery's own (an outbox drop), under the same lock."""
        with self._changing():
            self._audit(action, target, **details)

    def silence(
        self,
        model: str,
        ends: datetime,
        *,
        by: str,
        reason: str,
        now: datetime,
        rule: str = "*",
        subject: str = "*",
    ) -> Silence:
        """Hold back the messages of matching alerts until ``ends``."""
        _check_who(by)
        if ends <= now:
            raise ConfigError(f"silence end {ends.isoformat()} is not after now; give a later end")
        sid = hashlib.sha256(
            f"{model}|{rule}|{subject}|{now.isoformat()}|{by}".encode()
        ).hexdigest()
        s = Silence(sid[:16], model, rule, subject, now.isoformat(), ends.isoformat(), by, reason)
        with self._changing():
            self.silences.append(s)
            self._audit(
                "alert_silence", f"{model}|{rule}|{subject}", principal=by, id=s.id, ends=s.ends
            )
        return s

    def expire(self, silence_id: str, *, by: str, now: datetime) -> Silence:
        """End a silence now."""
        _check_who(by)
        with self._changing():
            found = next((s for s in self.silences if s.id == silence_id), None)
            if found is None:
                raise ConfigError(
                    f"no silence with id {silence_id!r}; list them with `mlmon alerts status`"
                )
            self.silences = [
                s if s.id != silence_id else Silence(**{**asdict(s), "ends": now.isoformat()})
                for s in self.silences
            ]
            self._audit(
                "alert_unsilence",
                f"{found.model}|{found.rule}|{found.subject}",
                principal=by,
                id=silence_id,
            )
        return found

    def acknowledge(
        self, key: str, *, by: str, note: str, now: datetime, firing: set[str]
    ) -> Acknowledgement:
        """Acknowledge a firing alert (``rule|model|subject``)."""
        _check_who(by)
        if key not in firing:
            raise ConfigError(f"alert {key!r} is not firing; only a firing alert is acknowledged")
        ack = Acknowledgement(key, by, now.isoformat(), note)
        with self._changing():
            self.acks[key] = ack
            self._audit("alert_acknowledge", key, principal=by)
        return ack

    def active(self, now: datetime) -> list[Silence]:
        return [s for s in self.silences if datetime.fromisoformat(s.ends) > now]

    def silenced(self, alert: dict[str, Any], now: datetime) -> Silence | None:
        return next((s for s in self.silences if s.matches(alert, now)), None)

    def resolved(self, key: str) -> Acknowledgement | None:
        """Drop the acknowledgement of an alert that resolved; return it (for the message)."""
        if key not in self.acks:
            return None
        with self._changing():
            return self.acks.pop(key, None)


def open_silences(config: Any) -> Silences:
    """The silences of a delivery config, audited to its ``audit.uri`` (required for changes)."""
    from mlmon.governance.audit import AuditLog

    if config.audit_uri is None:
        raise ConfigError(
            "audit: missing; silences and acknowledgements are audited: add audit: {uri: ...} "
            "(the lake or bucket that keeps the audit log, PUT on audit/<actor>/ only)"
        )

    def audit_log() -> AuditLog:
        return AuditLog(
            config.audit_uri,
            config.state_dir / "audit",
            config.audit_actor,
            echo=False,
            storage_options=config.storage_options or None,
        )

    return Silences(config.state_dir, audit=audit_log)

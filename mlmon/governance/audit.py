"""A hash-chained, append-only audit log of every action mlmon takes.

Each :class:`AuditRecord` carries a sequence number, the UTC time, the actor,
the action, its target and outcome, a few non-secret details, the SHA-256 of
the previous record and its own SHA-256 (over its canonical JSON). Records go
into segments under ``{lake}/audit/{actor}/segment-{first_seq}.jsonl``,
written with the same write-only PUTs as the lake: the open segment is
re-written whole (same key, more records) on each flush. The chain head and the
records of the open segment live on the writer's own volume, so the edge
never reads the bucket.

With an Ed25519 key each segment ends with a seal line (format 2) naming the
actor, the segment's first and newest sequence numbers, the newest record's
hash, the time of the flush, the segment's capacity and whether it is full
(closed), signed over ``mlmon-audit-seal/2`` and its canonical JSON; so a
cut-off tail, a segment rolled back to an older sealed copy or a segment moved
under another name or actor is detected. Segments written before format
2 end with ``{"seal": <hash>, "signature": ..., "records": n}`` (the signature
over the hash alone); they are still read and verified.

A chain that verifies may still be incomplete: deleting the newest segment, or a
whole actor's folder, leaves a shorter chain that is valid. So :func:`verify`
also checks the chain against what the writer knows (its chain head,
:func:`read_head`, printed by ``mlmon edge audit-head``) or an expected actor
with a minimum sequence number (:class:`ChainHead`), and how recent the newest
seal is (``max_age``); it refuses an audit log with no records at all.

Retention (:mod:`mlmon.governance.retention`) retires an actor's oldest segments
behind a checkpoint, ``audit/{actor}/checkpoint-{N}.json``: the chain head and
count at the cut ("records 1..N, record N has hash H") and the seal of the
newest retired segment. A format-2 seal is signed by the writer's own key and
names the actor, N and H, so the checkpoint is signed without retention holding
a key; :func:`verify` checks it (with ``public_key``, the seal must verify) and
starts the actor's chain at ``(N + 1, H)`` instead of ``(1, GENESIS)``. Records
retired without a checkpoint are still "removed"; a checkpoint whose seal does
not verify, names another actor or another record is a problem.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from mlmon.errors import GovernanceError
from mlmon.lake.storage import Storage, open_storage, put_object

__all__ = [
    "ActorChain",
    "AuditLog",
    "AuditRecord",
    "ChainHead",
    "Checkpoint",
    "Retirement",
    "VerifyResult",
    "load_heads",
    "plan_retirement",
    "read_head",
    "verify",
]

log = logging.getLogger("mlmon.audit")
GENESIS = "0" * 64
#: Days the audit log is kept by default (``mlmon retention``); a checkpoint retiring records
#: sealed more recently than this is a problem for :func:`verify` unless told otherwise.
AUDIT_RETENTION_DAYS = 365
SEAL_VERSION = 2
_SEAL_DOMAIN = b"mlmon-audit-seal/2\n"
_SEGMENT = re.compile(r"segment-(\d{12})\.jsonl$")
_ACTOR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CHECKPOINT = re.compile(r"checkpoint-(\d{12})\.json$")
_HEAD_FILE = re.compile(r"audit-head-([A-Za-z0-9][A-Za-z0-9._-]{0,127})\.json$")


def _canonical(d: dict[str, Any]) -> bytes:
    return json.dumps(d, sort_keys=True, separators=(",", ":"), default=str).encode()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _seal_message(seal: dict[str, Any]) -> bytes:
    """What a format-2 seal's signature covers: every field but the signature."""
    return _SEAL_DOMAIN + _canonical({k: v for k, v in seal.items() if k != "signature"})


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    time: str
    actor: str
    action: str
    target: str
    outcome: str
    prev_hash: str
    details: dict[str, Any] = field(default_factory=dict)
    hash: str = ""

    def body(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("hash")
        return d

    def computed_hash(self) -> str:
        return hashlib.sha256(_canonical(self.body())).hexdigest()


class AuditLog:
    """Append audit records; flush them as segments to ``{lake}/audit/{actor}/``.

    Parameters
    ----------
    lake
        Lake URI or :class:`~mlmon.lake.storage.Storage` (write-only is enough).
    state_dir
        The writer's own volume: the chain head and the open segment's records.
    actor
        Who acts (collector id, user, service account); one chain per actor.
    signing_key
        Optional ``cryptography`` Ed25519 private key: each segment's seal is signed.
    segment_size
        Records per segment.
    echo
        Also print each record as a JSON log line (``mlmon.audit`` logger) for the
        cluster's audit tooling.
    put
        The transport (default one PUT); the edge passes its spool so audit
        segments wait on its volume while the bucket is down.

    Each record is appended as one line to ``{state_dir}/audit-open-{actor}.jsonl``; the
    chain head file ``{state_dir}/audit-head-{actor}.json`` takes the open records at each
    flush (the journal then starts again; a new writer replays it). The head file also keeps
    the newest *sealed* record (``sealed``: sequence number, hash, time, segment key),
    updated after each flush: what :func:`read_head` returns for ``verify``.
    """

    def __init__(
        self,
        lake: str | Storage,
        state_dir: str | os.PathLike[str],
        actor: str,
        *,
        signing_key: Any = None,
        segment_size: int = 500,
        echo: bool = True,
        storage_options: dict[str, Any] | None = None,
        put: Any = put_object,
    ) -> None:
        self.storage = lake if isinstance(lake, Storage) else open_storage(lake, storage_options)
        self._put = put
        if not _ACTOR.match(actor):
            raise GovernanceError(f"audit actor {actor!r} must be letters, digits, '.', '_' or '-'")
        self.actor = actor
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.signing_key = signing_key
        self.segment_size = segment_size
        self.echo = echo
        head = self._head_file
        state = json.loads(head.read_text()) if head.exists() else {}
        self.seq = int(state.get("seq", 0))
        self.last_hash = state.get("hash", GENESIS)
        self.last_time: str | None = state.get("time")
        self.segment_start = int(state.get("segment_start", 1))
        self.open_records: list[dict[str, Any]] = state.get("open", [])
        self.sealed: dict[str, Any] | None = state.get("sealed")
        if self.last_time is None and self.open_records:
            self.last_time = self.open_records[-1].get("time")
        self._replay_journal()

    @property
    def _head_file(self) -> Path:
        return self.dir / f"audit-head-{self.actor}.json"

    @property
    def _journal_file(self) -> Path:
        return self.dir / f"audit-open-{self.actor}.jsonl"

    def _replay_journal(self) -> None:
        """Add the records appended since the head file was last written.

        A record is one line, taken only when it continues the chain (the next sequence
        number, the previous hash); a line cut short by a crash ends the replay, and so does
        a record the head file already holds (a crash between writing the head and emptying
        the journal).
        """
        try:
            text = self._journal_file.read_text()
        except FileNotFoundError:
            return
        clean = text.endswith("\n") or not text
        for n, line in enumerate(text.splitlines(), 1):
            try:
                rec = json.loads(line)
                seq, prev, digest = int(rec["seq"]), rec["prev_hash"], rec["hash"]
            except (ValueError, TypeError, KeyError):
                log.warning("audit journal %s: line %d unreadable; replay stops there",
                            self._journal_file.name, n)  # fmt: skip
                clean = False
                break
            if seq <= self.seq:
                continue
            if seq != self.seq + 1 or prev != self.last_hash:
                log.warning("audit journal %s: line %d does not continue the chain; replay stops",
                            self._journal_file.name, n)  # fmt: skip
                clean = False
                break
            self.open_records.append(rec)
            self.seq, self.last_hash, self.last_time = seq, digest, rec.get("time")
        if not clean:  # the head takes what was replayed; the journal starts again, whole lines
            self._save_head()

    def _save_head(self) -> None:
        tmp = self._head_file.with_suffix(".tmp")
        state = {
            "actor": self.actor,
            "seq": self.seq,
            "hash": self.last_hash,
            "time": self.last_time,
            "segment_start": self.segment_start,
            "open": self.open_records,
            "sealed": self.sealed,
        }
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self._head_file)
        # the head holds every open record now: the journal starts again
        with self._journal_file.open("w"):
            pass

    def record(self, action: str, target: str, outcome: str = "ok", **details: Any) -> AuditRecord:
        """Append one record (kept on the local volume until :meth:`flush`)."""
        rec = AuditRecord(
            seq=self.seq + 1,
            time=_now(),
            actor=self.actor,
            action=action,
            target=target,
            outcome=outcome,
            prev_hash=self.last_hash,
            details=details,
        )
        rec = AuditRecord(**{**asdict(rec), "hash": rec.computed_hash()})
        self.seq, self.last_hash, self.last_time = rec.seq, rec.hash, rec.time
        self.open_records.append(asdict(rec))
        # one line appended, not the head file with every open record rewritten (a server
        # records every request: that grew with the open segment, up to 500 records a request)
        with self._journal_file.open("a") as fh:
            fh.write(json.dumps(asdict(rec), default=str) + "\n")
        if self.echo:
            log.info("audit", extra={"audit": asdict(rec)})
        if len(self.open_records) >= self.segment_size:
            self.flush()
        return rec

    def heartbeat(self, quiet: timedelta) -> AuditRecord | None:
        """Append a ``heartbeat`` record when nothing was recorded for ``quiet``.

        A writer that is alive then always has a recent record (and, after the
        next flush, a recent seal), so ``verify(max_age=...)`` tells a quiet writer
        from one whose newest segments were removed.
        """
        if self.last_time is not None:
            last = datetime.fromisoformat(self.last_time)
            if datetime.now(UTC) - last < quiet:
                return None
        return self.record("heartbeat", self.actor)

    def _segment_key(self, start: int) -> str:
        return self.storage.path("audit", self.actor, f"segment-{start:012d}.jsonl")

    def _seal(self, time: str) -> dict[str, Any]:
        last = self.open_records[-1]
        seal: dict[str, Any] = {
            "seal": last["hash"],
            "seal_version": SEAL_VERSION,
            "actor": self.actor,
            "segment_start": self.segment_start,
            "last_seq": last["seq"],
            "records": len(self.open_records),
            "capacity": self.segment_size,
            "closed": len(self.open_records) >= self.segment_size,
            "time": time,
        }
        seal["signature"] = base64.b64encode(self.signing_key.sign(_seal_message(seal))).decode()
        return seal

    def flush(self) -> str | None:
        """PUT the open segment (whole), sealed; start a new one when it is full."""
        if not self.open_records:
            return None
        now = _now()
        lines = [json.dumps(r, sort_keys=True, default=str) for r in self.open_records]
        if self.signing_key is not None:  # unsigned, a seal would prove nothing
            lines.append(json.dumps(self._seal(now), sort_keys=True))
        key = self._segment_key(self.segment_start)
        self._put(self.storage, key, ("\n".join(lines) + "\n").encode())
        last = self.open_records[-1]
        self.sealed = {"seq": last["seq"], "hash": last["hash"], "time": now, "segment": key}
        if len(self.open_records) >= self.segment_size:
            self.segment_start = self.seq + 1
            self.open_records = []
        self._save_head()
        return key


# --------------------------------------------------------------------------- chain heads


@dataclass(frozen=True)
class ChainHead:
    """What must be in an actor's chain: at least record ``seq`` (with ``hash``, when known).

    ``source`` says where the expectation came from (``--head FILE``,
    ``--expect-actor``), for the messages.
    """

    actor: str
    seq: int = 1
    hash: str | None = None
    time: str | None = None
    source: str = "the expected head"

    def to_json(self) -> dict[str, Any]:
        return {"actor": self.actor, "seq": self.seq, "hash": self.hash, "time": self.time}


def read_head(state_dir: str | os.PathLike[str], actor: str) -> ChainHead | None:
    """The newest record ``actor``'s writer sealed and handed to the lake, or None.

    ``state_dir`` is the writer's audit folder (the edge: ``{state_dir}/audit``).
    None when the writer has not flushed since it started keeping the sealed head.
    """
    path = Path(state_dir) / f"audit-head-{actor}.json"
    heads = load_heads(path)
    return heads[0] if heads else None


def load_heads(path: str | os.PathLike[str]) -> list[ChainHead]:
    """Chain heads from a file: ``mlmon edge audit-head`` output or a writer's head file.

    Accepts one head object (``{"actor", "seq", "hash", "time"}``), a list of them,
    ``{"heads": [...]}``, or the writer's own ``audit-head-{actor}.json`` (its
    ``sealed`` entry).

    Raises
    ------
    GovernanceError
        The file cannot be read or holds no chain head, naming the file and field.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except OSError as exc:
        raise GovernanceError(f"--head {p}: cannot read it ({exc.strerror})") from exc
    except ValueError as exc:
        raise GovernanceError(f"--head {p}: not JSON (line {getattr(exc, 'lineno', '?')})") from exc
    source = f"the chain head in {p.name}"
    if isinstance(data, dict) and "open" in data and "seq" in data:  # a writer's head file
        actor = data.get("actor")
        if actor is None:
            m = _HEAD_FILE.search(p.name)
            actor = m.group(1) if m else None
        sealed = data.get("sealed")
        if not actor or not isinstance(sealed, dict):
            if int(data.get("seq", 0)) == 0:
                return []
            raise GovernanceError(
                f"--head {p}: this chain head file has no 'sealed' entry (written by an older "
                "mlmon, or nothing was flushed yet); let the writer flush once, or pass "
                "--expect-actor NAME:MIN_SEQ"
            )
        data = {"actor": actor, **sealed}
    items = data.get("heads", data) if isinstance(data, dict) else data
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        raise GovernanceError(f"--head {p}: expected a chain head object or a list of them")
    heads = []
    for i, item in enumerate(items):
        try:
            actor, seq = item["actor"], int(item["seq"])
            digest = item.get("hash")
        except (KeyError, TypeError, ValueError) as exc:
            raise GovernanceError(
                f"--head {p}: entry {i} needs 'actor' and an integer 'seq' ({type(exc).__name__})"
            ) from exc
        if not isinstance(actor, str) or not _ACTOR.match(actor) or seq < 1:
            raise GovernanceError(f"--head {p}: entry {i} has an invalid 'actor' or 'seq' < 1")
        if digest is not None and not re.fullmatch(r"[0-9a-f]{64}", str(digest)):
            raise GovernanceError(f"--head {p}: entry {i} 'hash' is not a SHA-256 hex digest")
        heads.append(ChainHead(actor, seq, digest, item.get("time"), source))
    return heads


# --------------------------------------------------------------------------- verify


@dataclass
class ActorChain:
    """What verification found for one actor (sequence numbers and times, never content)."""

    actor: str
    segments: int = 0
    records: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    newest_time: str | None = None  # the newest seal's time, else the newest record's
    anchored_at: int | None = None  # the highest expected sequence number checked
    broken: bool = False
    retired: Checkpoint | None = None  # records 1..N retired by retention behind this checkpoint
    retired_signed: bool = False  # its seal's signature was checked with the public key

    def describe(self) -> str:
        retired = ""
        if self.retired is not None:
            how = (
                "checkpoint signed"
                if self.retired_signed
                else "checkpoint signature not checked (no public key)"
            )
            retired = (
                f"records 1..{self.retired.last_seq} retired by retention on "
                f"{self.retired.retired_on}, {how}"
            )
        if self.last_seq is None:
            if retired:
                return f"{self.actor}: {retired}; fully retired (no records after it)"
            return f"{self.actor}: no records"
        line = (
            f"{self.actor}: {retired + '; ' if retired else ''}records {self.first_seq}.."
            f"{self.last_seq} in {self.segments} segment(s), newest {self.newest_time}"
        )
        if self.anchored_at is not None:
            line += f"; complete up to the expected record {self.anchored_at}"
        else:
            line += "; completeness not checked (no head or --expect-actor)"
        return line


@dataclass
class VerifyResult:
    ok: bool
    records: int
    problems: list[str]
    actors: dict[str, ActorChain] = field(default_factory=dict)

    def __str__(self) -> str:
        details = "".join(f"\n  {a.describe()}" for a in self.actors.values() if not a.broken)
        retired = sum(a.retired.last_seq for a in self.actors.values() if a.retired)
        if self.ok:
            behind = f" ({retired} older retired by retention)" if retired else ""
            return f"audit chain OK: {self.records} records verified{behind}{details}"
        problems = "\n".join(f"  - {p}" for p in self.problems)
        return f"audit chain BROKEN:\n{problems}" + (f"\nverified:{details}" if details else "")


@dataclass
class _Segment:
    name: str
    start: int
    records: list[AuditRecord]
    seal: dict[str, Any] | None
    error: str | None = None

    @property
    def first(self) -> int | None:
        return self.records[0].seq if self.records else None

    @property
    def last(self) -> int | None:
        return self.records[-1].seq if self.records else None

    @property
    def seal_time(self) -> str | None:
        return self.seal.get("time") if self.seal else None

    @property
    def closed(self) -> bool | None:
        """Full and final (format 2), None when the seal does not say."""
        return self.seal.get("closed") if self.seal else None


def _read_segment(st: Storage, path: str) -> _Segment:
    name = path.rsplit("/", 1)[-1]
    m = _SEGMENT.search(name)
    start = int(m.group(1)) if m else 0
    with st.fs.open(path, "rb") as fh:
        raw = fh.read()
    try:
        lines = [ln for ln in raw.decode().splitlines() if ln.strip()]
    except UnicodeDecodeError:
        return _Segment(name, start, [], None, "not UTF-8 text")
    seal = None
    if lines:
        try:
            tail = json.loads(lines[-1])
        except ValueError:
            tail = None
        if isinstance(tail, dict) and "seal" in tail and "seq" not in tail:
            seal = tail
            lines.pop()
    records: list[AuditRecord] = []
    for n, line in enumerate(lines, start=1):
        try:
            rec = AuditRecord(**json.loads(line))
            int(rec.seq)
        except (ValueError, TypeError) as exc:
            return _Segment(
                name,
                start,
                records,
                seal,
                f"line {n} is not an audit record ({type(exc).__name__})",
            )
        records.append(rec)
    return _Segment(name, start, records, seal)


def _seal_version(seg: _Segment) -> int:
    return 0 if seg.seal is None else int(seg.seal.get("seal_version", 1))


def _chain_start(checkpoint: Checkpoint | None) -> tuple[int, str]:
    """Where an actor's chain starts: record 1 after the genesis hash, or after the
    retention checkpoint's record (the newest retired one)."""
    if checkpoint is None:
        return 1, GENESIS
    return checkpoint.last_seq + 1, checkpoint.hash


# --------------------------------------------------------------------------- retention


@dataclass(frozen=True)
class Checkpoint:
    """Records ``1..last_seq`` of ``actor`` were retired by retention; record ``last_seq``
    had ``hash``. ``seal`` is the seal of the newest retired segment (None when the log is
    unsigned): signed by the writer, it vouches for ``actor``, ``last_seq`` and ``hash``."""

    actor: str
    last_seq: int
    hash: str
    time: str | None  # the newest retired record's seal (or record) time
    retired_on: str  # the UTC date of the retention run
    segments: int  # segments retired by that run
    seal: dict[str, Any] | None = None
    name: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "checkpoint_version": 1,
            "actor": self.actor,
            "first_seq": 1,
            "last_seq": self.last_seq,
            "hash": self.hash,
            "time": self.time,
            "retired_on": self.retired_on,
            "segments": self.segments,
            "seal": self.seal,
        }

    @property
    def file_name(self) -> str:
        return f"checkpoint-{self.last_seq:012d}.json"


def _read_checkpoint(st: Storage, path: str, actor: str) -> Checkpoint | str:
    """The checkpoint at ``path``, or the problem with it (naming the file, never content)."""
    name = path.rsplit("/", 1)[-1]
    where = f"{actor}/{name}"
    try:
        with st.fs.open(path, "rb") as fh:
            data = json.loads(fh.read().decode())
        cp = Checkpoint(
            actor=str(data["actor"]),
            last_seq=int(data["last_seq"]),
            hash=str(data["hash"]),
            time=data.get("time"),
            retired_on=str(data.get("retired_on")),
            segments=int(data.get("segments", 0)),
            seal=data.get("seal"),
            name=name,
        )
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        return f"{where}: not a retention checkpoint ({type(exc).__name__})"
    if not isinstance(cp.seal, dict | None) or not isinstance(cp.time, str | None):
        return f"{where}: not a retention checkpoint (its seal or time is malformed)"
    if cp.actor != actor:
        return f"{where}: the checkpoint names another actor: moved between actors' folders"
    if cp.file_name != name or cp.last_seq < 1 or not re.fullmatch(r"[0-9a-f]{64}", cp.hash):
        return f"{where}: the checkpoint's record number or hash does not match its name"
    return cp


def _check_checkpoint(cp: Checkpoint, public_key: Any) -> str | None:
    """The checkpoint's problem, or None: its seal must vouch for actor, record and hash."""
    where = f"{cp.actor}/{cp.name}"
    seal = cp.seal
    if seal is None:
        if public_key is None:
            return None
        return f"{where}: the checkpoint carries no seal (the retired log was unsigned)"
    try:
        version = int(seal.get("seal_version", 1))
    except (TypeError, ValueError):
        return f"{where}: the checkpoint's seal is malformed"
    if version < 2:
        return f"{where}: the checkpoint's seal is format 1: it does not sign the record number"
    if (seal.get("actor"), seal.get("last_seq"), seal.get("seal")) != (
        cp.actor,
        cp.last_seq,
        cp.hash,
    ):
        return f"{where}: the checkpoint's seal is for another actor, record or hash"
    if public_key is not None:
        try:
            public_key.verify(base64.b64decode(seal.get("signature") or ""), _seal_message(seal))
        except Exception:
            return f"{where}: the checkpoint's seal signature does not verify"
    return None


def _newest_checkpoint(st: Storage, paths: list[str], actor: str) -> Checkpoint | str | None:
    found = sorted((p for p in paths if _CHECKPOINT.search(p)), key=lambda p: p.rsplit("/", 1)[-1])
    return _read_checkpoint(st, found[-1], actor) if found else None


@dataclass
class Retirement:
    """What retention retires of one actor: ``segments`` (paths, oldest first) behind
    ``checkpoint`` (written first, at ``checkpoint_path``); ``older`` checkpoints it replaces."""

    actor: str
    checkpoint: Checkpoint
    checkpoint_path: str
    segments: list[str]
    older: list[str]
    first_seq: int  # the first record this run retires


def plan_retirement(
    st: Storage, actor: str, before: date, today: date, *, active: bool = False
) -> Retirement | str | None:
    """The segments of ``actor`` whose newest seal (or record) is older than ``before``.

    Only a run of segments from the start of the chain (after any checkpoint) is
    retired, so the chain stays whole from the checkpoint on: full (closed) segments,
    and the last one even when open once its writer stopped (not when ``active``: the
    retention run's own actor, which is about to write). Returns None when nothing is
    due, or the reason nothing is retired (the chain does not verify, a segment sealed
    before format 2), naming segments and record numbers only.
    """
    folder = st.path("audit", actor)
    try:
        paths = list(st.fs.ls(folder, detail=False))
    except FileNotFoundError:
        return None
    cp = _newest_checkpoint(st, paths, actor)
    if isinstance(cp, str):
        return f"{cp}; nothing retired"
    cp_problem = _check_checkpoint(cp, None) if cp is not None else None
    if cp_problem:
        return f"{cp_problem}; nothing retired"
    segs = sorted(
        (_read_segment(st, p) for p in paths if _SEGMENT.search(p)), key=lambda s: s.start
    )
    _chain, problem = _walk(actor, segs, None, {}, cp)
    if problem:
        return f"{problem}; nothing retired (run `mlmon audit verify`)"
    retire: list[_Segment] = []
    for i, seg in enumerate(segs):
        if seg.last is None:
            break
        if cp is not None and seg.last <= cp.last_seq:  # left by an interrupted run
            retire.append(seg)
            continue
        if seg.seal is not None and _seal_version(seg) < 2:
            return (
                f"{actor}/{seg.name}: sealed before format 2 (its seal does not sign the "
                "record number): kept with every later segment, no checkpoint can be signed"
            )
        newest = seg.seal_time or seg.records[-1].time
        try:
            if datetime.fromisoformat(str(newest)).date() >= before:
                break
        except ValueError:
            return f"{actor}/{seg.name}: its seal time is not a time: kept with every later segment"
        if seg.closed is False and (i != len(segs) - 1 or active):
            break
        if seg.seal is None and seg.closed is None and i == len(segs) - 1 and active:
            break
        retire.append(seg)
    if not retire:
        return None
    last = retire[-1]
    if cp is not None and last.last is not None and last.last <= cp.last_seq:
        new = cp  # only leftovers of an interrupted run: the checkpoint is there already
    else:
        rec = last.records[-1]
        new = Checkpoint(
            actor=actor,
            last_seq=rec.seq,
            hash=rec.hash,
            time=last.seal_time or rec.time,
            retired_on=today.isoformat(),
            segments=len(retire),
            seal=last.seal,
        )
    older = [p for p in paths if _CHECKPOINT.search(p) and p.rsplit("/", 1)[-1] != new.file_name]
    first = cp.last_seq + 1 if cp is not None else 1
    return Retirement(
        actor,
        new,
        f"{folder}/{new.file_name}",
        [f"{folder}/{s.name}" for s in retire],
        older,
        first,
    )


def _check_seal(actor: str, seg: _Segment, public_key: Any) -> str | None:
    """The seal's problem, or None. With a key the seal must be there and signed."""
    where = f"{actor}/{seg.name}"
    seal = seg.seal
    if seal is None:
        if public_key is None:
            return None
        return f"{where}: segment is not sealed (unsigned or its tail was cut off)"
    version = seal.get("seal_version", 1)
    if public_key is not None:
        sig = seal.get("signature")
        if not sig:
            return f"{where}: segment's seal is not signed (written without a signing key)"
        try:
            message = bytes.fromhex(seal["seal"]) if version == 1 else _seal_message(seal)
            public_key.verify(base64.b64decode(sig), message)
        except Exception:
            return f"{where}: the segment's seal signature does not verify"
    if seal.get("seal") != (seg.records[-1].hash if seg.records else None):
        last = seg.last if seg.last is not None else seg.start - 1
        return f"{where}: records after {last} were cut off (the seal signs a later record)"
    if version >= 2:
        if seal.get("actor") != actor:
            return f"{where}: the seal names another actor: segment moved between actors"
        if seal.get("segment_start") != seg.start or seal.get("last_seq") != seg.last:
            return (
                f"{where}: the seal is for records {seal.get('segment_start')}.."
                f"{seal.get('last_seq')}, the segment holds {seg.first}..{seg.last}: "
                "segment renamed or reordered"
            )
    return None


def _out_of_place(seg: _Segment, segs: list[_Segment]) -> bool:
    """Records that cannot be this segment's, even with some of its first ones removed."""
    first = seg.first or 0
    if first < seg.start or any(s is not seg and s.first == seg.start for s in segs):
        return True
    return any(seg.start < s.start <= first for s in segs)


def _misplaced(actor: str, seg: _Segment, segs: list[_Segment]) -> str:
    """A segment holding records another segment's name promises: say which."""
    text = (
        f"{actor}/{seg.name} holds records {seg.first}..{seg.last} but its name says it "
        f"starts at record {seg.start}"
    )
    other = next((s for s in segs if s is not seg and s.first == seg.start), None)
    if other is None:
        return f"{text}: segments reordered or renamed"
    return (
        f"{text}: {other.name} (records {other.first}..{other.last}) is older than "
        f"{seg.name}, which comes first: rolled back or reordered (the two segments' "
        "contents were swapped)"
    )


def _walk(
    actor: str,
    segs: list[_Segment],
    public_key: Any,
    hashes: dict[int, str],
    checkpoint: Checkpoint | None = None,
) -> tuple[ActorChain, str | None]:
    """Walk one actor's segments in name order; the chain summary and the first problem.

    With a retention ``checkpoint`` the chain starts after its record; records at or
    before it still in the lake (a run cut short) are skipped, the checkpoint's own
    record must have its hash.
    """
    chain = ActorChain(actor, segments=len(segs), retired=checkpoint)
    expected_seq, prev = _chain_start(checkpoint)
    floor = checkpoint.last_seq if checkpoint is not None else 0
    before: _Segment | None = None
    for seg in segs:
        where = f"{actor}/{seg.name}"
        if seg.error:
            return chain, f"{where}: {seg.error}"
        if seg.records and _out_of_place(seg, segs):
            return chain, _misplaced(actor, seg, segs)
        for i, rec in enumerate(seg.records):
            if rec.seq <= floor and checkpoint is not None:
                if rec.seq == floor and rec.hash != checkpoint.hash:
                    return chain, (
                        f"{where}: record {rec.seq} has another hash than {actor}/"
                        f"{checkpoint.name}: the chain was rewritten (or the checkpoint is not "
                        "this log's)"
                    )
                continue
            chain.records += 1
            if rec.computed_hash() != rec.hash:
                return chain, f"{where}: record {rec.seq} was altered (its hash does not match its content)"  # fmt: skip
            if rec.actor != actor:
                return chain, (
                    f"{where}: record {rec.seq} was written by another actor: segments moved or "
                    "copied between actors' folders"
                )
            if rec.seq > expected_seq:
                later = {r.seq for r in seg.records[i + 1 :]}
                if expected_seq in later:
                    return chain, (
                        f"{where}: record {rec.seq} is out of order: it comes before record "
                        f"{expected_seq} (records reordered)"
                    )
                if i == 0 and before is not None and before.closed is False:
                    return chain, (
                        f"{actor}/{before.name} is older than {seg.name}: it was sealed open at "
                        f"record {before.last} ({before.seal_time}) yet {seg.name} follows: "
                        f"rolled back or reordered; records {expected_seq}..{rec.seq - 1} are missing"
                    )
                if i == 0:
                    return chain, (
                        f"{where}: record(s) {expected_seq}..{rec.seq - 1} were removed before "
                        f"record {rec.seq} (a segment starting at {expected_seq} is missing or cut)"
                    )
                return chain, f"{where}: record(s) {expected_seq}..{rec.seq - 1} were removed before record {rec.seq}"  # fmt: skip
            if rec.seq < expected_seq:
                return chain, f"{where}: record {rec.seq} is out of order or duplicated (expected {expected_seq})"  # fmt: skip
            if rec.prev_hash != prev:
                return chain, f"{where}: record {rec.seq} was inserted or replaced (its previous hash does not chain)"  # fmt: skip
            if chain.first_seq is None:
                chain.first_seq = rec.seq
            chain.last_seq = rec.seq
            hashes[rec.seq] = rec.hash
            expected_seq, prev = rec.seq + 1, rec.hash
        problem = _check_seal(actor, seg, public_key)
        if problem:
            return chain, problem
        if before is not None and _seal_version(before) >= 2 and seg.seal is None:
            return chain, (
                f"{where} has no seal though {actor}/{before.name} has one: its tail was cut "
                f"off after record {seg.last} (or it was replaced by an unsealed copy)"
            )
        if before is not None and _seal_version(before) >= 2 and _seal_version(seg) < 2:
            return chain, (
                f"{where} has an older seal format than {actor}/{before.name}: it is older "
                "than the segment before it: rolled back to a copy from before the upgrade"
            )
        if seg.records:
            newest = seg.seal_time or seg.records[-1].time
            chain.newest_time = max(newest, seg.records[-1].time)
        before = seg
    return chain, None


def _missing_tail(chain: ActorChain, last: _Segment | None, head: ChainHead, root_url: str) -> str:
    """Name what is missing when the lake's chain ends before ``head``."""
    actor = chain.actor
    if chain.last_seq is None and chain.retired is not None:
        return (
            f"{actor}: records 1..{chain.retired.last_seq} were retired by retention "
            f"(checkpoint {chain.retired.name}) and no segment follows, but {head.source} "
            f"says record {head.seq}: records {chain.retired.last_seq + 1}..{head.seq} are "
            "missing (segments after the checkpoint were deleted)"
        )
    if chain.last_seq is None or last is None:
        return (
            f"{actor}: no audit records under {root_url}/{actor}/, but {head.source} says "
            f"record {head.seq} was written: the actor's log was deleted"
        )
    gone = f"records {chain.last_seq + 1}..{head.seq} are missing"
    seal = last.seal or {}
    capacity = seal.get("capacity")
    if last.closed is None:  # a seal from before format 2 does not say whether it was full
        return (
            f"{actor}: the log ends with {last.name} at record {chain.last_seq}, but "
            f"{head.source} says record {head.seq}: the newest segment was deleted or rolled "
            f"back to an older copy; {gone}"
        )
    if last.closed is False:
        within = capacity is not None and head.seq < last.start + int(capacity)
        tail = "" if within else ", and the segments after it were deleted"
        return (
            f"{actor}/{last.name} ends at record {chain.last_seq} (sealed {last.seal_time}), "
            f"but {head.source} says record {head.seq}: the segment is older than the head: "
            f"rolled back to an older copy{tail}; {gone}"
        )
    return (
        f"{actor}: the log ends with {last.name} at record {chain.last_seq}, but "
        f"{head.source} says record {head.seq}: the newest segment(s) from "
        f"segment-{chain.last_seq + 1:012d}.jsonl on were deleted; {gone}"
    )


def _age(text: str | None, now: datetime) -> timedelta | None:
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return None
    return now - (t if t.tzinfo else t.replace(tzinfo=UTC))


def verify(
    lake: str | Storage,
    *,
    public_key: Any = None,
    storage_options: dict[str, Any] | None = None,
    expect: Iterable[ChainHead] = (),
    max_age: timedelta | Mapping[str, timedelta] | None = None,
    now: datetime | None = None,
    retention: timedelta | None = timedelta(days=AUDIT_RETENTION_DAYS),
) -> VerifyResult:
    """Recompute every actor's chain; name the first broken record and its segment.

    Parameters
    ----------
    lake
        Lake URI or storage; its ``audit/`` prefix is verified.
    public_key
        Ed25519 public key: every segment must carry a seal signed with its key.
    expect
        Chain heads that must be in the log (:func:`load_heads`, or
        ``ChainHead(actor, min_seq)``): an actor with no folder, or a chain ending
        before the head's record, or a different hash at it, is a problem.
    max_age
        The newest seal (or record) of each expected actor (every actor when
        none is expected) must be at most this old; or a limit per actor.
    now
        The time ``max_age`` is measured from (default: now).
    retention
        The audit retention ``mlmon retention apply`` runs with (default 365 days): a
        checkpoint retiring records sealed more recently retired them early (a holder of
        the bucket copying a newer seal into a checkpoint) and is a problem. None: not checked.

    Returns
    -------
    VerifyResult
        ``ok`` only when every chain verifies, every expectation holds and at
        least one record was found. Problems name actor, segment and sequence
        numbers, never a record's content.
    """
    st = lake if isinstance(lake, Storage) else open_storage(lake, storage_options)
    root = st.path("audit")
    root_url = st.url(root)
    now = now or datetime.now(UTC)
    expected: dict[str, list[ChainHead]] = {}
    for h in expect:
        expected.setdefault(h.actor, []).append(h)
    problems: list[str] = []
    retired_any = False
    try:
        found = sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in st.fs.ls(root, detail=False))
    except FileNotFoundError:
        found = []
    chains: dict[str, ActorChain] = {}
    total = 0
    for actor in sorted(set(found) | set(expected)):
        segs: list[_Segment] = []
        checkpoint: Checkpoint | str | None = None
        if actor in found:
            try:
                listed = list(st.fs.ls(f"{root}/{actor}", detail=False))
            except FileNotFoundError:
                listed = []
            paths = [p for p in listed if _SEGMENT.search(p)]
            segs = sorted((_read_segment(st, p) for p in paths), key=lambda s: s.start)
            checkpoint = _newest_checkpoint(st, listed, actor)
        if not segs and checkpoint is None and actor not in expected:
            continue  # an empty folder (or a stray file) nobody expects
        if isinstance(checkpoint, str):
            chains[actor] = ActorChain(actor, segments=len(segs), broken=True)
            problems.append(checkpoint)
            continue
        cp_problem = _check_checkpoint(checkpoint, public_key) if checkpoint else None
        if checkpoint is not None and not cp_problem and retention is not None:
            age = _age(checkpoint.time, now)
            if age is None or age < retention:
                cp_problem = (
                    f"{actor}/{checkpoint.name}: retires records 1..{checkpoint.last_seq} "
                    f"sealed {checkpoint.time}, younger than the audit retention of "
                    f"{retention.days} days: deleted before their time (if retention runs "
                    "with a shorter audit period, pass it: --audit-retention DAYS)"
                )
        if cp_problem:
            chains[actor] = ActorChain(actor, segments=len(segs), broken=True)
            problems.append(cp_problem)
            continue
        hashes: dict[int, str] = {}
        if checkpoint is not None:
            hashes[checkpoint.last_seq] = checkpoint.hash
            retired_any = True
        chain, problem = _walk(actor, segs, public_key, hashes, checkpoint)
        chain.retired_signed = checkpoint is not None and public_key is not None
        if checkpoint is not None and chain.newest_time is None:
            chain.newest_time = checkpoint.time
        chains[actor] = chain
        total += chain.records
        if problem:
            chain.broken = True
            problems.append(problem)
            continue
        last = segs[-1] if segs else None
        for head in sorted(expected.get(actor, []), key=lambda h: h.seq):
            if checkpoint is not None and head.seq <= checkpoint.last_seq:
                if head.seq == checkpoint.last_seq and head.hash not in (None, checkpoint.hash):
                    problems.append(
                        f"{actor}: record {head.seq} has another hash in {head.source} than in "
                        f"the checkpoint {checkpoint.name}: the chain was rewritten"
                    )
                    chain.broken = True
                    break
                chain.anchored_at = max(chain.anchored_at or 0, head.seq)
                continue  # retired by policy: the checkpoint vouches for it
            if chain.last_seq is None or chain.last_seq < head.seq:
                problems.append(_missing_tail(chain, last, head, root_url))
                chain.broken = True
                break
            if head.hash is not None and hashes.get(head.seq) not in (None, head.hash):
                problems.append(
                    f"{actor}: record {head.seq} has another hash than {head.source}: the chain "
                    "was rewritten from that record on (or the head belongs to another log)"
                )
                chain.broken = True
                break
            chain.anchored_at = max(chain.anchored_at or 0, head.seq)
    if isinstance(max_age, timedelta):
        max_age = dict.fromkeys(expected or chains, max_age)
    for actor, limit in sorted((max_age or {}).items()):
        found_chain = chains.get(actor)
        if found_chain is None or found_chain.broken:
            continue  # its missing records are named above
        age = _age(found_chain.newest_time, now)
        if age is None or age > limit:
            problems.append(
                f"{actor}: the newest seal is from {found_chain.newest_time}, older than the "
                f"maximum age {limit.total_seconds() / 3600:g}h: the writer stopped writing, or "
                "its newest segments were removed"
            )
    if total == 0 and not problems and not retired_any:
        problems.append(
            f"no audit records under {root_url}: an empty or deleted audit log verifies "
            "nothing; pass --head FILE (from `mlmon edge audit-head`) or --expect-actor "
            "NAME[:MIN_SEQ] to say which actors must be there"
        )
    return VerifyResult(not problems, total, problems, chains)

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

Retention (a later change) may retire the oldest segments behind a signed
checkpoint (the chain head and count at the cut). A closed segment's format-2
seal already is one: signed by the writer's own key, it says "actor A's record N
(the newest of segment S, full) has hash H", so retention needs no key of its own
and can keep the seal of the last segment it retires (e.g. as
``audit/{actor}/checkpoint-{N}.json``); a format-1 seal (the hash alone) cannot
serve. The walk in :func:`verify` starts from ``(1, GENESIS)`` in one place
(:func:`_chain_start`), which would start from ``(N + 1, H)`` after checking that
seal; every other check (continuity, seals, heads, freshness) looks only at the
segments that remain, so such a checkpoint needs no other change here.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mlmon.errors import GovernanceError
from mlmon.lake.storage import Storage, open_storage, put_object

__all__ = [
    "ActorChain",
    "AuditLog",
    "AuditRecord",
    "ChainHead",
    "VerifyResult",
    "load_heads",
    "read_head",
    "verify",
]

log = logging.getLogger("mlmon.audit")
GENESIS = "0" * 64
SEAL_VERSION = 2
_SEAL_DOMAIN = b"mlmon-audit-seal/2\n"
_SEGMENT = re.compile(r"segment-(\d{12})\.jsonl$")
_ACTOR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
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

    The chain head file ``{state_dir}/audit-head-{actor}.json`` also keeps the
    newest *sealed* record (``sealed``: sequence number, hash, time, segment key),
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

    @property
    def _head_file(self) -> Path:
        return self.dir / f"audit-head-{self.actor}.json"

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
        self._save_head()
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

    def describe(self) -> str:
        if self.last_seq is None:
            return f"{self.actor}: no records"
        line = (
            f"{self.actor}: records {self.first_seq}..{self.last_seq} in {self.segments} "
            f"segment(s), newest {self.newest_time}"
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
        if self.ok:
            return f"audit chain OK: {self.records} records verified{details}"
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


def _chain_start(actor: str) -> tuple[int, str]:
    """Where an actor's chain starts: record 1 after the genesis hash.

    A retention checkpoint (issue 18) moves this to the retired records' head.
    """
    return 1, GENESIS


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
    actor: str, segs: list[_Segment], public_key: Any, hashes: dict[int, str]
) -> tuple[ActorChain, str | None]:
    """Walk one actor's segments in name order; the chain summary and the first problem."""
    chain = ActorChain(actor, segments=len(segs))
    expected_seq, prev = _chain_start(actor)
    before: _Segment | None = None
    for seg in segs:
        where = f"{actor}/{seg.name}"
        if seg.error:
            return chain, f"{where}: {seg.error}"
        if seg.records and _out_of_place(seg, segs):
            return chain, _misplaced(actor, seg, segs)
        for i, rec in enumerate(seg.records):
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
    try:
        found = sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in st.fs.ls(root, detail=False))
    except FileNotFoundError:
        found = []
    chains: dict[str, ActorChain] = {}
    total = 0
    for actor in sorted(set(found) | set(expected)):
        segs: list[_Segment] = []
        if actor in found:
            try:
                paths = [p for p in st.fs.ls(f"{root}/{actor}", detail=False) if _SEGMENT.search(p)]
            except FileNotFoundError:
                paths = []
            segs = sorted((_read_segment(st, p) for p in paths), key=lambda s: s.start)
        if not segs and actor not in expected:
            continue  # an empty folder (or a stray file) nobody expects
        hashes: dict[int, str] = {}
        chain, problem = _walk(actor, segs, public_key, hashes)
        chains[actor] = chain
        total += chain.records
        if problem:
            chain.broken = True
            problems.append(problem)
            continue
        last = segs[-1] if segs else None
        for head in sorted(expected.get(actor, []), key=lambda h: h.seq):
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
    if total == 0 and not problems:
        problems.append(
            f"no audit records under {root_url}: an empty or deleted audit log verifies "
            "nothing; pass --head FILE (from `mlmon edge audit-head`) or --expect-actor "
            "NAME[:MIN_SEQ] to say which actors must be there"
        )
    return VerifyResult(not problems, total, problems, chains)

"""A hash-chained, append-only audit log of every action mlmon takes.

Each :class:`AuditRecord` carries a sequence number, the UTC time, the actor,
the action, its target and outcome, a few non-secret details, the SHA-256 of
the previous record and its own SHA-256 (over its canonical JSON). Records go
into segments under ``{lake}/audit/{actor}/segment-{first_seq}.jsonl``,
written with the same write-only PUTs as the lake: the open segment is
re-written whole (same key, more records) on each flush. The chain head and the
records of the open segment live on the writer's own volume, so the edge
never reads the bucket. With an Ed25519 key each segment ends with a seal
line signing its last hash, so a cut-off tail is detected too.

:func:`verify` recomputes the chain and names the first record that was
altered, removed, inserted or reordered, and its segment.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlmon.errors import GovernanceError
from mlmon.lake.storage import Storage, open_storage, put_object

__all__ = ["AuditLog", "AuditRecord", "VerifyResult", "verify"]

log = logging.getLogger("mlmon.audit")
GENESIS = "0" * 64
_SEGMENT = re.compile(r"segment-(\d{12})\.jsonl$")


def _canonical(d: dict[str, Any]) -> bytes:
    return json.dumps(d, sort_keys=True, separators=(",", ":"), default=str).encode()


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
        Optional ``cryptography`` Ed25519 private key: each segment is sealed.
    segment_size
        Records per segment.
    echo
        Also print each record as a JSON log line (``mlmon.audit`` logger) for the
        cluster's audit tooling.
    put
        The transport (default one PUT); the edge passes its spool so audit
        segments wait on its volume while the bucket is down.
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
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", actor):
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
        self.segment_start = int(state.get("segment_start", 1))
        self.open_records: list[dict[str, Any]] = state.get("open", [])

    @property
    def _head_file(self) -> Path:
        return self.dir / f"audit-head-{self.actor}.json"

    def _save_head(self) -> None:
        tmp = self._head_file.with_suffix(".tmp")
        state = {
            "seq": self.seq,
            "hash": self.last_hash,
            "segment_start": self.segment_start,
            "open": self.open_records,
        }
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self._head_file)

    def record(self, action: str, target: str, outcome: str = "ok", **details: Any) -> AuditRecord:
        """Append one record (kept on the local volume until :meth:`flush`)."""
        rec = AuditRecord(
            seq=self.seq + 1,
            time=datetime.now(UTC).isoformat(timespec="microseconds"),
            actor=self.actor,
            action=action,
            target=target,
            outcome=outcome,
            prev_hash=self.last_hash,
            details=details,
        )
        rec = AuditRecord(**{**asdict(rec), "hash": rec.computed_hash()})
        self.seq, self.last_hash = rec.seq, rec.hash
        self.open_records.append(asdict(rec))
        self._save_head()
        if self.echo:
            log.info("audit", extra={"audit": asdict(rec)})
        if len(self.open_records) >= self.segment_size:
            self.flush()
        return rec

    def _segment_key(self, start: int) -> str:
        return self.storage.path("audit", self.actor, f"segment-{start:012d}.jsonl")

    def flush(self) -> str | None:
        """PUT the open segment (whole); start a new one when it is full."""
        if not self.open_records:
            return None
        lines = [json.dumps(r, sort_keys=True, default=str) for r in self.open_records]
        if self.signing_key is not None:
            last = self.open_records[-1]["hash"]
            sig = base64.b64encode(self.signing_key.sign(bytes.fromhex(last))).decode()
            lines.append(
                json.dumps({"seal": last, "signature": sig, "records": len(self.open_records)})
            )
        key = self._segment_key(self.segment_start)
        self._put(self.storage, key, ("\n".join(lines) + "\n").encode())
        if len(self.open_records) >= self.segment_size:
            self.segment_start = self.seq + 1
            self.open_records = []
            self._save_head()
        return key


@dataclass
class VerifyResult:
    ok: bool
    records: int
    problems: list[str]

    def __str__(self) -> str:
        if self.ok:
            return f"audit chain OK: {self.records} records verified"
        return "audit chain BROKEN:\n" + "\n".join(f"  - {p}" for p in self.problems)


def verify(
    lake: str | Storage, *, public_key: Any = None, storage_options: dict[str, Any] | None = None
) -> VerifyResult:
    """Recompute every actor's chain; name the first broken record and its segment."""
    st = lake if isinstance(lake, Storage) else open_storage(lake, storage_options)
    root = st.path("audit")
    problems: list[str] = []
    total = 0
    try:
        actors = sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in st.fs.ls(root, detail=False))
    except FileNotFoundError:
        return VerifyResult(False, 0, [f"no audit log under {st.url(root)}"])
    for actor in actors:
        segs = sorted(p for p in st.fs.ls(f"{root}/{actor}", detail=False) if _SEGMENT.search(p))
        expected_seq, prev = 1, GENESIS
        broken = False
        for seg in segs:
            name = seg.rsplit("/", 1)[-1]
            with st.fs.open(seg, "rb") as fh:
                lines = [ln for ln in fh.read().decode().splitlines() if ln.strip()]
            seal = None
            if lines and '"seal"' in lines[-1]:
                seal = json.loads(lines.pop())
            last_hash = None
            for n, line in enumerate(lines, start=1):
                try:
                    rec = AuditRecord(**json.loads(line))
                except (ValueError, TypeError) as exc:
                    problems.append(f"{actor}/{name} line {n}: not an audit record ({exc})")
                    broken = True
                    break
                total += 1
                if rec.computed_hash() != rec.hash:
                    problems.append(
                        f"{actor}/{name}: record {rec.seq} was altered (its hash does not match its content)"
                    )
                elif rec.seq > expected_seq:
                    problems.append(
                        f"{actor}/{name}: record(s) {expected_seq}..{rec.seq - 1} were removed before record {rec.seq}"
                    )
                elif rec.seq < expected_seq:
                    problems.append(
                        f"{actor}/{name}: record {rec.seq} is out of order or duplicated (expected {expected_seq})"
                    )
                elif rec.prev_hash != prev:
                    problems.append(
                        f"{actor}/{name}: record {rec.seq} was inserted or replaced (its previous hash does not chain)"
                    )
                if problems and not broken:
                    broken = True
                    break
                expected_seq, prev, last_hash = rec.seq + 1, rec.hash, rec.hash
            if broken:
                break
            if public_key is not None:
                if seal is None:
                    problems.append(
                        f"{actor}/{name}: segment is not sealed (unsigned or its tail was cut off)"
                    )
                    break
                try:
                    public_key.verify(
                        base64.b64decode(seal["signature"]), bytes.fromhex(seal["seal"])
                    )
                except Exception:
                    problems.append(f"{actor}/{name}: the segment's seal signature does not verify")
                    break
                if seal["seal"] != last_hash:
                    problems.append(
                        f"{actor}/{name}: records after {expected_seq - 1} were cut off (the seal signs a later record)"
                    )
                    break
    return VerifyResult(not problems, total, problems)

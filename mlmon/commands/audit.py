"""``mlmon audit verify`` and ``mlmon edge audit-head``: is the audit log whole?

``audit verify`` recomputes every actor's hash chain and checks it against what
must be there: chain heads (``--head FILE``, printed by ``mlmon edge audit-head``
or the writer's own ``audit-head-{actor}.json``), expected actors with a minimum
sequence number (``--expect-actor NAME[:MIN_SEQ]``) and the age of the newest
seal (``--max-age``). Without a head or an expected actor it refuses to run
(exit 2), unless ``--chain-only`` says that a chain check alone is wanted: a
chain that verifies cannot show a deleted newest segment or actor folder.
Exit 0 when everything verifies, 1 naming what does not.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from mlmon.commands._common import storage_options as _storage_options
from mlmon.errors import ConfigError, GovernanceError

if TYPE_CHECKING:
    from mlmon.governance.audit import ChainHead

__all__ = [
    "add_audit_head_args",
    "add_verify_args",
    "cmd_audit_verify",
    "cmd_edge_audit_head",
]

EXIT_BROKEN = 1
_EXPECT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]{0,127})(?::(\d+))?$")

VERIFY_EPILOG = """\
what must be there (--head or --expect-actor, at least one; or --chain-only):
  --head FILE             a writer's chain head: `mlmon edge audit-head --config edge.yaml`
                          (or the file {state_dir}/audit/audit-head-{collector_id}.json);
                          the lake's chain must hold that record with that hash
  --expect-actor NAME[:MIN_SEQ]
                          this actor's folder must exist with at least record MIN_SEQ
and how recent (optional):
  --max-age [NAME=]DURATION
                          a bare DURATION for the actors of the --head files (the writers
                          that run all the time), NAME=DURATION for another one

retired by retention: `mlmon retention apply` retires an actor's oldest segments behind a
checkpoint (audit/{actor}/checkpoint-{N}.json, carrying the writer's signed seal); the chain
is checked from it on and the output says "records 1..N retired by retention on DATE". A
checkpoint sealed less than --audit-retention DAYS (default 365) ago is a problem.

exit codes: 0 verified; 1 broken or incomplete (each problem names actor, segment and
sequence numbers, never a record's content); 2 bad arguments, or nothing to check against.

a daily job:
  mlmon edge audit-head --config /etc/mlmon/edge.yaml > head-today.json   # on the edge
  mlmon audit verify s3://hospital-mlmon/lake --public-key audit-seal.pub.pem \\
      --head head-today.json --expect-actor maintenance --max-age 26h
"""


def _expectations(args: argparse.Namespace) -> list[ChainHead]:
    from mlmon.governance.audit import ChainHead, load_heads

    heads: list[ChainHead] = []
    for item in args.expect_actor or []:
        m = _EXPECT.match(item)
        if not m or (m.group(2) is not None and int(m.group(2)) < 1):
            raise ConfigError(
                f"--expect-actor {item!r} is not NAME or NAME:MIN_SEQ (MIN_SEQ a whole number "
                "from 1), e.g. --expect-actor edge-icu-1:940"
            )
        seq = int(m.group(2) or 1)
        heads.append(ChainHead(m.group(1), seq, source=f"--expect-actor {m.group(1)}:{seq}"))
    for path in args.head or []:
        try:
            found = load_heads(path)
        except GovernanceError as exc:
            raise ConfigError(str(exc)) from exc
        if not found:
            raise ConfigError(f"--head {path}: holds no chain head (the writer recorded nothing)")
        heads.extend(found)
    return heads


def _max_age(
    items: list[str] | None, expect: list[ChainHead], head_actors: list[str]
) -> timedelta | dict[str, timedelta] | None:
    """``--max-age [NAME=]DURATION``: a bare duration is for the actors of ``--head`` files
    (or, without any, for every expected actor, or every actor)."""
    if not items:
        return None
    from mlmon.edge.config import parse_duration

    limits: dict[str, timedelta] = {}
    bare: timedelta | None = None
    for item in items:
        name, sep, text = item.rpartition("=")
        try:
            age = parse_duration(text)
        except ValueError as exc:
            raise ConfigError(f"--max-age {exc}, e.g. 26h or edge-icu-1=26h") from exc
        if age <= timedelta(0):
            raise ConfigError(f"--max-age {item!r} must be longer than 0, e.g. 26h")
        if sep and not _EXPECT.match(name):
            raise ConfigError(f"--max-age {item!r}: {name!r} is not an actor name")
        if sep:
            limits[name] = age
        else:
            bare = age
    if bare is not None:
        if not head_actors and not expect and not limits:
            return bare  # every actor of the log
        for actor in head_actors or [h.actor for h in expect]:
            limits.setdefault(actor, bare)
    return limits


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from mlmon.governance.audit import AUDIT_RETENTION_DAYS, ChainHead, verify

    expect = _expectations(args)
    head_actors = [h.actor for h in expect if not h.source.startswith("--expect-actor")]
    max_age = _max_age(args.max_age, expect, head_actors)
    if isinstance(max_age, dict):
        known = {h.actor for h in expect}  # an actor given an age must be there
        expect += [ChainHead(a, 1, source=f"--max-age {a}=...") for a in max_age if a not in known]
    if not expect and not args.chain_only:
        raise ConfigError(
            "audit verify needs to know what must be there: pass --head FILE (from "
            "`mlmon edge audit-head --config edge.yaml`) or --expect-actor NAME[:MIN_SEQ] "
            "(repeatable), with --max-age 26h in a daily job; --chain-only checks the hash "
            "chain alone, which cannot see a deleted newest segment or actor folder"
        )
    public_key = None
    if args.public_key:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        try:
            public_key = load_pem_public_key(Path(args.public_key).read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"--public-key {args.public_key}: not a readable PEM public key ({exc})"
            ) from exc
    result = verify(
        args.uri,
        public_key=public_key,
        storage_options=_storage_options(args) or None,
        expect=expect,
        max_age=max_age,
        retention=timedelta(days=args.audit_retention or AUDIT_RETENTION_DAYS),
    )
    print(result)
    return 0 if result.ok else EXIT_BROKEN


def _retention_days(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days, at least 1")
    return int(text)


def add_verify_args(p: argparse.ArgumentParser) -> None:
    """The arguments of ``mlmon audit verify``."""
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = VERIFY_EPILOG
    p.add_argument("uri", help="lake URI (the audit/ prefix under it is verified)")
    p.add_argument("--public-key", help="Ed25519 public key (PEM): every segment must be sealed")
    p.add_argument(
        "--head",
        action="append",
        metavar="FILE",
        help="a writer's chain head (JSON from `mlmon edge audit-head`); repeatable",
    )
    p.add_argument(
        "--expect-actor",
        action="append",
        metavar="NAME[:MIN_SEQ]",
        help="this actor must have records, at least up to MIN_SEQ (default 1); repeatable",
    )
    p.add_argument(
        "--max-age",
        action="append",
        metavar="[NAME=]DURATION",
        help="the newest seal is at most this old, e.g. 26h: for the actors of --head files "
        "(without --head: every expected actor, or every actor); NAME=DURATION for one actor; "
        "repeatable",
    )
    p.add_argument(
        "--audit-retention",
        type=_retention_days,
        metavar="DAYS",
        help="the audit retention `mlmon retention apply` runs with (default: its default, "
        "365): a checkpoint retiring records sealed more recently is a problem",
    )
    p.add_argument(
        "--chain-only",
        action="store_true",
        help="check the hash chain alone, without a head or expected actor (cannot see a "
        "deleted newest segment or actor folder)",
    )
    p.add_argument("--storage-option", action="append", metavar="KEY=VALUE")


def cmd_edge_audit_head(args: argparse.Namespace) -> int:
    """Print the edge's audit chain head (newest sealed record) as one JSON line."""
    from mlmon.edge.config import load_config
    from mlmon.governance.audit import read_head

    config = load_config(args.config)
    if not config.audit:
        raise ConfigError(f"{config.source}: audit is off (audit: false); there is no chain head")
    folder = Path(config.state_dir) / "audit"
    try:
        head = read_head(folder, config.collector_id)
    except GovernanceError as exc:
        raise ConfigError(str(exc)) from exc
    if head is None:
        raise ConfigError(
            f"{folder}: no sealed audit chain head for {config.collector_id} yet (the edge has "
            "not flushed its audit log); run `mlmon edge once --config ...` or wait for a cycle"
        )
    pending = _spooled_segments(Path(config.state_dir) / "spool", config.collector_id)
    print(json.dumps({"format": "mlmon-audit-head/1", **head.to_json(), "spooled": pending}))
    if pending:
        print(
            f"mlmon: note: {pending} audit segment(s) of {config.collector_id} still wait in the "
            "spool (the bucket was unreachable): the lake reaches this head once they are sent",
            file=sys.stderr,
        )
    return 0


def _spooled_segments(spool: Path, actor: str) -> int:
    """Audit segments of ``actor`` waiting in the edge's spool (read only; 0 if unknown)."""
    n = 0
    for meta in spool.glob("*.json"):
        try:
            path = json.loads(meta.read_text()).get("path", "")
        except (OSError, ValueError, AttributeError):
            continue
        n += f"/audit/{actor}/segment-" in f"/{path}"
    return n


def add_audit_head_args(p: argparse.ArgumentParser) -> None:
    """The arguments of ``mlmon edge audit-head``."""
    p.add_argument("--config", required=True, help="edge.yaml")


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``audit verify`` (``edge audit-head`` is added with the edge commands in ``cli``)."""
    au = sub.add_parser("audit", help="the hash-chained audit log").add_subparsers(
        dest="sub", required=True
    )
    av = au.add_parser(
        "verify", help="recompute the audit chain and check it is whole; name what is not"
    )
    add_verify_args(av)
    av.set_defaults(func=cmd_audit_verify)
    ar = au.add_parser(
        "access-review",
        help="who used mlmon server since a date, as CSV (one line per principal)",
        description="The periodic access review: from the server's audit records, one CSV line\n"
        "per principal (first and last access, requests answered, refused, not found, rate\n"
        "limited, failed; models asked for; client addresses). Run 'mlmon audit verify' first.",
        epilog="example:\n  mlmon audit access-review --lake s3://bucket/lake --since 2026-10-01",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ar.add_argument(
        "--lake", required=True, help="the server's audit URI (audit.uri, default its lake)"
    )
    ar.add_argument("--since", required=True, help="first day, e.g. 2026-10-01 (UTC)")
    ar.add_argument("--until", help="day after the last, exclusive (default: now)")
    ar.add_argument("--actor", default="mlmon-server", help="the server's audit actor")
    ar.add_argument("--storage-option", action="append", metavar="KEY=VALUE")
    ar.set_defaults(func=_cmd_access_review)


def _cmd_access_review(args: argparse.Namespace) -> int:
    """``mlmon audit access-review``: the periodic access review (mlmon.server.access)."""
    from datetime import UTC, datetime

    from mlmon.server.access import access_review

    def day(text: str, flag: str) -> datetime:
        try:
            d = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ConfigError(f"{flag} {text!r} is not a date; use e.g. 2026-10-01") from exc
        return d.replace(tzinfo=UTC) if d.tzinfo is None else d

    review = access_review(args.lake, day(args.since, "--since"),
                           day(args.until, "--until") if args.until else None, actor=args.actor,
                           storage_options=_storage_options(args) or None)  # fmt: skip
    sys.stdout.write(review.write_csv())
    return 0

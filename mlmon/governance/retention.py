"""Retention: find what is past its retention and delete it, key by key.

Retention is by the ``date=`` partition (the UTC date of the window), per
table; defaults are 90 days for metric tables and 365 for ``audit/``.
:func:`plan` lists what is due; :func:`apply` deletes it with a maintenance
credential (list + get + delete on the prefix, put on ``audit/``; the edge never
holds delete), one ``DeleteObject`` per key so every refusal is reported by key:
S3's bulk delete answers 200 with per-key errors that s3fs ignores.

What is still in use stays: a ``references`` object past its retention is kept
while a window within retention (any table with a ``reference_id`` column) names
its reference, and so is a ``performance`` object holding only that reference's
own baseline row, and the ``segment_performance`` object of its segments' own
calibrations (:attr:`RetentionPlan.in_use`).

The audit log is retired by segment, never by a bucket rule: an actor's oldest
segments whose newest seal is past the ``audit`` retention are deleted behind a
checkpoint written first (``audit/{actor}/checkpoint-{N}.json``: the chain head
and count at the cut, carrying the writer's signed seal), so ``mlmon audit
verify`` starts the chain there and says what was retired by policy
(:func:`mlmon.governance.audit.plan_retirement`).

:func:`lifecycle_configuration` gives S3 lifecycle rules for the metric tables
for customers who prefer the bucket to expire objects itself (by object age,
not by partition date: a late or re-written object lives longer). It has no
rule for ``audit/``: a bucket rule would delete segments without a checkpoint,
and ``audit verify`` would rightly report the records removed.

Only lake objects are deleted: files directly in a ``model=.../date=.../``
partition of a table (or of its rollups and compactions) whose names mlmon's
writers and compaction use (``*.parquet``, ``_compacted.json``, an interrupted
write's ``.tmp-*.part``). Anything else found there (someone's notes, an
export) is listed in :attr:`RetentionPlan.skipped` and left in place.

An interrupted local write's ``.tmp-*.part`` older than an hour is deleted in any
partition, expired or not (:attr:`RetentionPlan.partial`): it is never data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from mlmon.errors import ConfigError, LakeError, LakeUnreachable, LakeWriteDenied
from mlmon.governance.audit import AUDIT_RETENTION_DAYS, Retirement, plan_retirement
from mlmon.lake.layout import prefixes, table_prefix
from mlmon.lake.schema import TABLES
from mlmon.lake.storage import (
    PARTIAL_WRITE,
    STALE_PARTIAL_S,
    Storage,
    open_storage,
    put_object,
)

__all__ = [
    "DEFAULT_DAYS",
    "NOT_BY_LIFECYCLE",
    "RetentionPlan",
    "apply",
    "check_days",
    "lifecycle_configuration",
    "parse_days",
    "plan",
]

DEFAULT_DAYS = {**{t: 90 for t in TABLES}, "audit": AUDIT_RETENTION_DAYS}
#: ``model=.../date=.../name`` below one of a table's prefixes; the name is checked by :data:`_LAKE_OBJECT`.
_PARTITION_FILE = re.compile(r"^model=([^/]+)/date=(\d{4}-\d{2}-\d{2})/([^/]+)$")
#: The object a reference's own rows are written to (``references``, and its baseline row of
#: ``performance``): ``...-ref-{reference_id}.parquet``.
_REF_PART = re.compile(r"-ref-([^/]+)\.parquet$")
_LAKE_OBJECT = re.compile(r"^(?:[^/]+\.parquet|_compacted\.json|\.tmp-[^/]*\.part)$")
#: What a bucket lifecycle rule must not expire, and why (``mlmon retention apply`` does).
NOT_BY_LIFECYCLE = {
    "audit": "a bucket rule would delete audit segments without a checkpoint and break the "
    "chain (retention apply retires them behind a signed checkpoint)",
    "references": "a bucket rule would delete a reference that windows still name (retention "
    "apply keeps it while in use)",
}
#: Most kept windows fetched together when looking for the references they name.
_BATCH = 64
#: Tables whose rows name a reference (kept windows keep it in use).
_NAMES_A_REFERENCE = tuple(
    t for t, tab in TABLES.items() if t != "references" and any(c.name == "reference_id" for c in tab.columns)
)  # fmt: skip


@dataclass
class RetentionPlan:
    """What :func:`apply` deletes (``objects``, ``audit``), and what it leaves in place.

    ``skipped`` are files in expired partitions that are not lake objects (not written
    by mlmon): they are never deleted; their partition folder stays. ``in_use`` are
    expired objects of a reference that a window within retention still names.
    ``audit`` retires each actor's oldest audit segments behind a checkpoint;
    ``audit_kept`` says why an actor's due segments stay (segment names, never content);
    ``unreadable`` are objects whose reference ids could not be read (what they name is
    kept). ``partial`` are interrupted local writes (``.tmp-*.part``) older than an hour
    in partitions within retention: never data, deleted too.
    """

    cutoff: dict[str, date]
    partitions: list[str] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)
    in_use: list[str] = field(default_factory=list)
    audit: list[Retirement] = field(default_factory=list)
    audit_kept: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)


def check_days(overrides: dict[str, Any] | None) -> dict[str, int]:
    """The retention days per table: the defaults with ``overrides``, each checked.

    Raises
    ------
    ConfigError
        A table that does not exist, or days that are not a whole number >= 1
        (naming the table).
    """
    days = dict(DEFAULT_DAYS)
    for t, d in (overrides or {}).items():
        if t not in DEFAULT_DAYS:
            raise ConfigError(
                f"retention: no table {t!r}; tables are {', '.join(sorted(DEFAULT_DAYS))}"
            )
        if isinstance(d, bool) or not isinstance(d, int) or d < 1:
            raise ConfigError(
                f"retention days for {t!r} must be a whole number of days, at least 1 "
                f"(got {d!r}); 0 would delete everything at once"
            )
        days[t] = d
    return days


def parse_days(items: Iterable[str]) -> dict[str, int]:
    """``--days TABLE=DAYS`` flags: the overrides only, each checked, messages naming the flag."""
    days: dict[str, int] = {}
    for item in items:
        t, sep, n = item.partition("=")
        t, n = t.strip(), n.strip()
        if not sep or not t:
            raise ConfigError(f"--days {item!r} is not TABLE=DAYS, e.g. profiles=90")
        if t not in DEFAULT_DAYS:
            raise ConfigError(
                f"--days {item!r}: no table {t!r}; tables are {', '.join(sorted(DEFAULT_DAYS))}"
            )
        if not n.isdigit() or int(n) < 1:
            raise ConfigError(
                f"--days {item!r}: the days for {t!r} must be a whole number of days, at "
                "least 1 (e.g. audit=365)"
            )
        days[t] = int(n)
    check_days(days)
    return days


def _denied(st: Storage, path: str, exc: Exception) -> LakeError:
    return LakeError(
        f"cannot list or read {st.url(path)}: access denied ({type(exc).__name__}); retention "
        "needs the maintenance role (list, read and delete on the lake, write on audit/)"
    )


def _find(st: Storage, root: str) -> dict[str, Any]:
    try:
        return dict(st.fs.find(root, detail=True))
    except FileNotFoundError:
        return {}
    except PermissionError as exc:
        raise _denied(st, root, exc) from exc
    except Exception as exc:  # OSError, and botocore's connection errors, which are not OSErrors
        raise LakeUnreachable(
            f"cannot list {st.url(root)}: {type(exc).__name__}; check the endpoint and the network"
        ) from exc


def _column(st: Storage, path: str, columns: list[str]) -> list[dict[str, Any]] | None:
    """Some columns of a Parquet object; [] when it has none of them, None when unreadable."""
    return _columns(st, [path], columns)[path]


def _columns(
    st: Storage, paths: list[str], columns: list[str]
) -> dict[str, list[dict[str, Any]] | None]:
    """:func:`_column` of several (small) objects, fetched together (concurrently on S3)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        got = st.fs.cat(paths, on_error="return") if paths else {}
    except PermissionError as exc:
        raise _denied(st, paths[0], exc) from exc
    out: dict[str, list[dict[str, Any]] | None] = {}
    for path in paths:
        data = got.get(path) if isinstance(got, dict) else None
        if isinstance(data, PermissionError):
            raise _denied(st, path, data) from data
        if not isinstance(data, bytes):  # gone since the listing, or not readable
            out[path] = None
            continue
        try:
            pf = pq.ParquetFile(io.BytesIO(data))
            names = [c for c in columns if c in pf.schema_arrow.names]
            out[path] = pf.read(columns=names).to_pylist() if names else []
        except (OSError, ValueError, pa.ArrowException):  # corrupt
            out[path] = None
    return out


def plan(
    lake: str | Storage,
    *,
    today: date | None = None,
    days: dict[str, int] | None = None,
    storage_options: dict[str, Any] | None = None,
    actor: str | None = None,
) -> RetentionPlan:
    """Partitions (and their objects) older than each table's retention, and audit segments.

    ``actor`` is the retention run's own audit actor: its open segment is never retired.

    Raises
    ------
    ConfigError
        Bad ``days`` (:func:`check_days`).
    LakeError
        The lake cannot be listed or read with this credential.
    """
    keep = check_days(days)
    st = lake if isinstance(lake, Storage) else open_storage(lake, storage_options)
    today = today or datetime.now(UTC).date()
    cutoff = {t: today - timedelta(days=d) for t, d in keep.items()}
    now = datetime.now(UTC)
    out = RetentionPlan(cutoff)
    refs: dict[str, list[tuple[str, Any, str]]] = {}  # reference objects past retention, by model
    perf_refs: dict[str, list[tuple[str, Any, str]]] = {}  # performance objects past retention
    kept_windows: dict[str, list[tuple[str, str]]] = {}  # model -> (date, path) of kept windows
    for t, limit in cutoff.items():
        if t == "audit":
            continue
        found = {}
        for sub in prefixes(t):  # the table, and its rollups and compactions beside it
            root = st.path(sub)
            found.update({p: (root, sub, i) for p, i in _find(st, root).items()})
        for path, (root, sub, info) in sorted(found.items()):
            m = _PARTITION_FILE.match(path.removeprefix(root + "/"))
            if m is None:  # not in a model=/date= partition: not a lake object
                continue
            model, day, name = m.groups()
            try:
                expired = date.fromisoformat(day) < limit
            except ValueError:  # date=2026-13-01: not a partition mlmon wrote
                expired = False
            if not expired:
                if PARTIAL_WRITE.match(name) and _older_than(info, now, STALE_PARTIAL_S):
                    out.partial.append(path)
                    continue
                if t in _NAMES_A_REFERENCE and sub == table_prefix(t) and name.endswith(".parquet"):
                    kept_windows.setdefault(model, []).append((day, path))
                continue
            if not _LAKE_OBJECT.match(name):
                out.skipped.append(path)
                continue
            if t == "references" and name.endswith(".parquet"):
                refs.setdefault(model, []).append((path, info, name))
                continue
            if (
                t in ("performance", "segment_performance")  # a reference's baseline rows
                and sub == table_prefix(t)
                and _REF_PART.search(name)
            ):
                perf_refs.setdefault(model, []).append((path, info, name))
                continue
            _add(out, path, info)
    _references_in_use(st, out, refs, perf_refs, kept_windows)
    for actor_name in _audit_actors(st):
        try:
            r = plan_retirement(st, actor_name, cutoff["audit"], today, active=actor_name == actor)
        except PermissionError as exc:
            raise _denied(st, st.path("audit", actor_name), exc) from exc
        if isinstance(r, str):
            out.audit_kept.append(r)
        elif r is not None:
            out.audit.append(r)
    return out


def _older_than(info: Any, now: datetime, seconds: float) -> bool:
    """The listed object was last modified more than ``seconds`` before ``now`` (False: unknown)."""
    when = info.get("mtime") or info.get("LastModified") or info.get("last_modified")
    if isinstance(when, int | float):
        return now.timestamp() - float(when) > seconds
    if isinstance(when, datetime):
        return (now - (when if when.tzinfo else when.replace(tzinfo=UTC))).total_seconds() > seconds
    return False


def _add(out: RetentionPlan, path: str, info: Any) -> None:
    folder = path.rsplit("/", 1)[0]
    if folder not in out.partitions:
        out.partitions.append(folder)
    out.objects.append(path)
    out.bytes += int(info.get("size") or 0)


def _references_in_use(
    st: Storage,
    out: RetentionPlan,
    refs: dict[str, list[tuple[str, Any, str]]],
    perf_refs: dict[str, list[tuple[str, Any, str]]],
    kept_windows: dict[str, list[tuple[str, str]]],
) -> None:
    """Keep the expired reference objects a kept window of the same model names.

    The model's kept windows are read newest first (their ``reference_id`` column, in
    batches fetched together) until every expired reference is found in use; an unused one
    costs a read of each. When a
    kept window cannot be read, what it names is unknown: every reference of the model
    stays (in ``in_use``), and so does an expired reference object that cannot be read.
    """
    for model in sorted(set(refs) | set(perf_refs)):
        holds: dict[str, set[str] | None] = {}  # path -> reference ids it holds (None: unreadable)
        for path, _info, _name in refs.get(model, []):
            rows = _column(st, path, ["reference_id"])
            holds[path] = None if rows is None else {r["reference_id"] for r in rows}
        for path, _info, name in perf_refs.get(model, []):
            m = _REF_PART.search(name)
            holds[path] = {m.group(1)} if m else set()
        open_ids = set().union(*(ids for ids in holds.values() if ids))
        used: set[str] = set()
        kept = [p for _day, p in sorted(kept_windows.get(model, []), reverse=True)]
        i, size = 0, 1  # the newest window usually names it: one read; then batches grow
        while i < len(kept) and open_ids - used:
            batch, i, size = kept[i : i + size], i + size, min(size * 4, _BATCH)
            for path, rows in _columns(st, batch, ["reference_id"]).items():
                if rows is None:  # cannot tell what it names: keep them all
                    used |= open_ids
                    out.unreadable.append(path)
                else:
                    used.update(r["reference_id"] for r in rows if r.get("reference_id"))
        for path, info, _name in refs.get(model, []) + perf_refs.get(model, []):
            ids = holds[path]
            if ids is None:
                out.unreadable.append(path)
                out.in_use.append(path)
            elif ids & used:
                out.in_use.append(path)
            else:
                _add(out, path, info)


def _audit_actors(st: Storage) -> list[str]:
    root = st.path("audit")
    try:
        listed = st.fs.ls(root, detail=True)
    except FileNotFoundError:
        return []
    except PermissionError as exc:
        raise _denied(st, root, exc) from exc
    return sorted(
        i["name"].rstrip("/").rsplit("/", 1)[-1] for i in listed if i.get("type") == "directory"
    )


def apply(
    lake: str | Storage, retention: RetentionPlan, *, storage_options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Delete every planned object one key at a time; report deleted and refused keys.

    Audit segments go only after their actor's checkpoint was written; when it is
    refused, that actor's segments are not touched (and the checkpoint key is named
    as refused). Every refusal is collected, none raises: the caller names them all.
    """
    st = lake if isinstance(lake, Storage) else open_storage(lake, storage_options)
    deleted, refused = [], []

    def rm(path: str) -> bool:
        try:
            st.fs.rm_file(path)
        except (PermissionError, OSError) as exc:
            refused.append({"key": path, "error": type(exc).__name__})
            return False
        deleted.append(path)
        return True

    for path in retention.objects:
        rm(path)
    for path in retention.partial:
        rm(path)
    checkpoints = []
    retired = 0
    for r in retention.audit:
        try:
            put_object(
                st, r.checkpoint_path, json.dumps(r.checkpoint.to_json(), sort_keys=True).encode()
            )
        except (LakeWriteDenied, PermissionError, OSError) as exc:
            refused.append({"key": r.checkpoint_path, "error": type(exc).__name__})
            continue
        checkpoints.append({"actor": r.actor, "last_seq": r.checkpoint.last_seq})
        retired += sum(rm(p) for p in r.segments)
        for old in r.older:
            rm(old)
    return {
        "deleted": len(deleted),
        "refused": refused,
        "ok": not refused,
        "partitions": len(retention.partitions),
        "audit_segments": retired,
        "checkpoints": checkpoints,
    }


def lifecycle_configuration(prefix: str, *, days: dict[str, int] | None = None) -> dict[str, Any]:
    """S3 lifecycle rules expiring each metric table's objects by object age.

    The body of ``PutBucketLifecycleConfiguration``: one rule per table and per prefix
    (the table, its rollups, its compactions), ``Filter.Prefix`` relative to the bucket
    (``""`` for a lake at the bucket root), ``Expiration.Days`` >= 1. There are no rules for
    ``audit/`` (a bucket rule deletes segments without the checkpoint ``mlmon retention
    apply`` writes, which ``audit verify`` would report as removed records) nor for
    ``references`` (a bucket rule cannot tell a reference windows still name; a long-running
    edge writes its reference once): ``mlmon retention apply`` retires those. Passing either
    in ``days`` is refused for that reason.
    """
    for t in NOT_BY_LIFECYCLE:
        if days and t in days:
            raise ConfigError(
                f"retention lifecycle: no lifecycle rule for {t!r}: {NOT_BY_LIFECYCLE[t]}; run "
                f"`mlmon retention apply --days {t}=N` for it"
            )
    keep = check_days(days)
    base = prefix.strip("/")
    rules = []
    for t, d in sorted(keep.items()):
        if t in NOT_BY_LIFECYCLE:
            continue
        for suffix, sub in zip(("", "-rollups", "-compacted"), prefixes(t), strict=True):
            key_prefix = f"{base}/{sub}/" if base else f"{sub}/"
            rules.append({"ID": f"mlmon-{t}{suffix}", "Filter": {"Prefix": key_prefix}, "Status": "Enabled",
                          "Expiration": {"Days": int(d)}})  # fmt: skip
    return {"Rules": rules}

"""Retention: find the partitions past their retention and delete them, key by key.

Retention is by the ``date=`` partition (the UTC date of the window), per
table; defaults are 90 days for metric tables and 365 for ``audit/``.
:func:`plan` lists what is due; :func:`apply` deletes it with a maintenance
credential (list + get + delete on the prefix; the edge never holds delete),
one ``DeleteObject`` per key so every refusal raises and is reported by key:
S3's bulk delete answers 200 with per-key errors that s3fs ignores.
:func:`lifecycle_configuration` gives the equivalent S3 lifecycle rules for
customers who prefer the bucket to expire objects itself (by object age, not
by partition date: a late or re-written object lives longer).

Only lake objects are deleted: files directly in a ``model=.../date=.../``
partition of a table (or of its rollups and compactions) whose names mlmon's
writers and compaction use (``*.parquet``, ``_compacted.json``, an interrupted
write's ``.tmp-*.part``). Anything else found there (someone's notes, an
export) is listed in :attr:`RetentionPlan.skipped` and left in place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from mlmon.lake.layout import prefixes
from mlmon.lake.schema import TABLES
from mlmon.lake.storage import Storage, open_storage

__all__ = ["DEFAULT_DAYS", "RetentionPlan", "apply", "lifecycle_configuration", "plan"]

DEFAULT_DAYS = {**{t: 90 for t in TABLES}, "audit": 365}
#: ``model=.../date=.../name`` below one of a table's prefixes; the name is checked by :data:`_LAKE_OBJECT`.
_PARTITION_FILE = re.compile(r"^model=[^/]+/date=(\d{4}-\d{2}-\d{2})/([^/]+)$")
_LAKE_OBJECT = re.compile(r"^(?:[^/]+\.parquet|_compacted\.json|\.tmp-[^/]*\.part)$")


@dataclass
class RetentionPlan:
    """What :func:`apply` deletes (``objects``), and what it leaves in place (``skipped``).

    ``skipped`` are files in expired partitions that are not lake objects (not written
    by mlmon): they are never deleted; their partition folder stays.
    """

    cutoff: dict[str, date]
    partitions: list[str] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)


def _days(overrides: dict[str, int] | None) -> dict[str, int]:
    days = dict(DEFAULT_DAYS)
    days.update(overrides or {})
    return days


def plan(lake: str | Storage, *, today: date | None = None, days: dict[str, int] | None = None,
         storage_options: dict[str, Any] | None = None) -> RetentionPlan:  # fmt: skip
    """Partitions (and their objects) older than each table's retention."""
    st = lake if isinstance(lake, Storage) else open_storage(lake, storage_options)
    today = today or datetime.now(UTC).date()
    keep = _days(days)
    cutoff = {t: today - timedelta(days=d) for t, d in keep.items()}
    out = RetentionPlan(cutoff)
    for t, limit in cutoff.items():
        if t == "audit":
            continue
        found = {}
        for sub in prefixes(t):  # the table, and its rollups and compactions beside it
            root = st.path(sub)
            try:
                found.update({p: (root, i) for p, i in st.fs.find(root, detail=True).items()})
            except FileNotFoundError:
                continue
        for path, (root, info) in sorted(found.items()):
            m = _PARTITION_FILE.match(path.removeprefix(root + "/"))
            if m is None:  # not in a model=/date= partition: not a lake object
                continue
            try:
                expired = date.fromisoformat(m.group(1)) < limit
            except ValueError:  # date=2026-13-01: not a partition mlmon wrote
                expired = False
            if not expired:
                continue
            if not _LAKE_OBJECT.match(m.group(2)):
                out.skipped.append(path)
                continue
            folder = path.rsplit("/", 1)[0]
            if folder not in out.partitions:
                out.partitions.append(folder)
            out.objects.append(path)
            out.bytes += int(info.get("size") or 0)
    return out


def apply(
    lake: str | Storage, retention: RetentionPlan, *, storage_options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Delete every planned object one key at a time; report deleted and refused keys."""
    st = lake if isinstance(lake, Storage) else open_storage(lake, storage_options)
    deleted, refused = [], []
    for path in retention.objects:
        try:
            st.fs.rm_file(path)
            deleted.append(path)
        except (PermissionError, OSError) as exc:
            refused.append({"key": path, "error": type(exc).__name__})
    return {
        "deleted": len(deleted),
        "refused": refused,
        "ok": not refused,
        "partitions": len(retention.partitions),
    }


def lifecycle_configuration(prefix: str, *, days: dict[str, int] | None = None) -> dict[str, Any]:
    """S3 lifecycle rules expiring each table's objects by object age (PutBucketLifecycleConfiguration body)."""
    keep = _days(days)
    rules = []
    for t, d in sorted(keep.items()):
        subs = (
            [("", "audit")]
            if t == "audit"
            else list(zip(("", "-rollups", "-compacted"), prefixes(t), strict=True))
        )
        for suffix, sub in subs:
            rules.append({"ID": f"mlmon-{t}{suffix}", "Filter": {"Prefix": f"{prefix.strip('/')}/{sub}/"}, "Status": "Enabled",
                          "Expiration": {"Days": int(d)}})  # fmt: skip
    return {"Rules": rules}

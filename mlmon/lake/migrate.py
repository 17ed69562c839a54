"""Moving a lake off the previous layout: delete the copies that sat inside table partitions.

Before :mod:`mlmon.lake.layout`, writers put their day rollups (``_day-{collector}.parquet``)
and compaction its objects (``_compacted-{gen}.parquet``, ``_rollup-{gen}.parquet``,
``_compacted.json``) in the table partitions themselves, so a plain ``read_parquet`` glob over a
table (duckdb) read those records two or three times. mlmon's readers never did, and still don't;
but outside readers need the objects gone. They are copies: every record they hold is in the
window objects beside them (compaction never deleted its sources), so removing them loses
nothing. The migration, in order:

1. upgrade mlmon on the edges and readers (new rollups go to ``v1/rollups/``);
2. ``mlmon lake compact`` with the reader role: days compacted the old way are compacted anew
   under ``v1/compacted/`` (readers keep their speed);
3. ``mlmon lake migrate`` with the maintenance role lists what it would delete;
   ``mlmon lake migrate --apply`` deletes it, one key at a time.

Only names of the previous layout directly in a ``{table}/model=/date=/`` partition are ever
deleted, and only when every window they say they hold is still there (``covers``): a copy whose
windows are gone may be the last copy of those records, so it is kept and reported.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mlmon.lake.layout import LEGACY_NAME, MANIFEST, is_window, table_prefix
from mlmon.lake.rollup import COVERS_KEY
from mlmon.lake.schema import TABLES
from mlmon.lake.storage import Storage, open_storage

__all__ = ["LegacyPlan", "plan_legacy", "remove_legacy"]

_PARTITION_FILE = re.compile(r"^model=[^/]+/date=\d{4}-\d{2}-\d{2}/([^/]+)$")


@dataclass
class LegacyPlan:
    """Objects of the previous layout: ``objects`` to delete, ``kept`` (with the reason) to keep."""

    objects: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)
    bytes: int = 0


def _covers(st: Storage, folder: str, name: str) -> list[str] | None:
    """The window names a legacy object says it holds; ``None`` when unreadable."""
    path = f"{folder}/{name}"
    try:
        if name == MANIFEST:
            with st.fs.open(path, "rb") as fh:
                return list(json.loads(fh.read())["covers"])
        if name.startswith("_day-"):
            with st.fs.open(path, "rb") as fh:
                return list(json.loads((pq.read_schema(fh).metadata or {})[COVERS_KEY]))
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException):
        return None
    return []  # _compacted-/_rollup- objects: checked through their manifest


def plan_legacy(
    lake: str | Storage, *, storage_options: dict[str, Any] | None = None
) -> LegacyPlan:
    """List the previous layout's objects in every table partition, and whether each may go.

    Needs list and get (the reader or maintenance role); changes nothing.
    """
    st = lake if isinstance(lake, Storage) else open_storage(lake, storage_options)
    out = LegacyPlan()
    for t in TABLES:
        root = st.path(table_prefix(t))
        try:
            found = st.fs.find(root, detail=True)
        except FileNotFoundError:
            continue
        folders: dict[str, dict[str, int]] = {}
        for path, info in found.items():
            m = _PARTITION_FILE.match(path.removeprefix(root + "/"))
            if m is not None:
                folder = path.rsplit("/", 1)[0]
                folders.setdefault(folder, {})[m.group(1)] = int(info.get("size") or 0)
        for folder, names in sorted(folders.items()):
            legacy = sorted(n for n in names if LEGACY_NAME.match(n))
            if not legacy:
                continue
            windows = {n for n in names if is_window(n)}
            manifest_ok = MANIFEST not in names or _holds(st, folder, MANIFEST, windows, out)
            for name in legacy:
                path = f"{folder}/{name}"
                if name.startswith(("_compacted-", "_rollup-")) and not manifest_ok:
                    out.kept[path] = f"its manifest {MANIFEST} names windows that are gone"
                    continue
                if name.startswith("_day-") and not _holds(st, folder, name, windows, out):
                    continue
                if name == MANIFEST and not manifest_ok:
                    continue
                out.objects.append(path)
                out.bytes += names[name]
    return out


def _holds(st: Storage, folder: str, name: str, windows: set[str], plan: LegacyPlan) -> bool:
    """Whether every window the legacy object ``name`` covers is still in the partition."""
    covers = _covers(st, folder, name)
    path = f"{folder}/{name}"
    if covers is None:
        plan.kept[path] = "unreadable, so what it holds cannot be checked"
        return False
    missing = sorted(set(covers) - windows)
    if missing:
        plan.kept[path] = (
            f"it holds {len(missing)} window(s) no longer in the partition (e.g. {missing[0]}); "
            "it may be their only copy"
        )
        return False
    return True


def remove_legacy(
    lake: str | Storage, legacy: LegacyPlan, *, storage_options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Delete the planned objects one key at a time (the maintenance role); report every refusal."""
    st = lake if isinstance(lake, Storage) else open_storage(lake, storage_options)
    deleted, refused = [], []
    for path in legacy.objects:
        if not LEGACY_NAME.match(path.rsplit("/", 1)[-1]):  # never anything else
            refused.append({"key": path, "error": "not an object of the previous layout"})
            continue
        try:
            st.fs.rm_file(path)
            deleted.append(path)
        except (PermissionError, OSError) as exc:
            refused.append({"key": path, "error": type(exc).__name__})
    return {"deleted": len(deleted), "refused": refused, "ok": not refused}

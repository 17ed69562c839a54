"""Where each kind of lake object lives, so that a plain glob over a table reads each record once.

::

    {root}/v1/{table}/model={m}/date={d}/{window key}.parquet       the records (the truth)
    {root}/v1/rollups/{table}/model={m}/date={d}/day-{collector}.parquet
                                                                     a writer's day rollup of
                                                                     its own windows (edge)
    {root}/v1/compacted/{table}/model={m}/date={d}/_compacted.json   compaction's manifest
    {root}/v1/compacted/{table}/model={m}/date={d}/compacted-{gen}.parquet
    {root}/v1/compacted/{table}/model={m}/date={d}/rollup-{gen}.parquet

A table's own prefix holds only window objects, so ``read_parquet('{root}/v1/{table}/**/*.parquet')``
in duckdb, Spark, Trino or Athena sees every record exactly once. Rollups and compactions are
copies kept for speed, in prefixes of their own that such a glob never meets; mlmon's readers use
them through the object names they cover (``mlmon.covers`` metadata, the manifest's ``covers``),
never by globbing them. Their names do not start with ``_`` because Hadoop-based engines (Spark,
Hive, Trino, Athena) and pyarrow's dataset discovery skip such files as hidden, and duckdb does not:
the old layout (``_day-*``, ``_compacted-*`` inside a table's partitions) was read once by the first
and twice by the second.

The edge's write-only role PUTs windows and its own day rollups (``v1/*``); the reader role may PUT
only under ``v1/compacted/`` (deploy/iam/reader.json).

Lakes written before this layout keep ``_day-{collector}.parquet``, ``_compacted-{gen}.parquet``,
``_rollup-{gen}.parquet`` and ``_compacted.json`` inside table partitions: mlmon's readers still
honour them (never counting a window twice), and :mod:`mlmon.lake.migrate` removes them.
"""

from __future__ import annotations

import re
from datetime import date

from mlmon.lake.schema import SCHEMA_VERSION

__all__ = [
    "COMPACTED",
    "LEGACY_NAME",
    "MANIFEST",
    "RESERVED",
    "ROLLUPS",
    "compacted_name",
    "compacted_prefix",
    "day_rollup_name",
    "is_window",
    "partition",
    "prefixes",
    "rollup_prefix",
    "table_prefix",
]

#: Prefix (under ``v{N}/``) of the writers' day rollups, one sub-folder per table.
ROLLUPS = "rollups"
#: Prefix (under ``v{N}/``) of compaction's objects and manifests, one sub-folder per table.
COMPACTED = "compacted"
#: Names under ``v{N}/`` that are not tables (a table may not take them).
RESERVED = frozenset({ROLLUPS, COMPACTED})
#: Compaction's manifest: which window objects its objects hold.
MANIFEST = "_compacted.json"

#: Compaction's own objects in a compacted partition (the only ones it ever deletes).
COMPACTED_OBJECT = re.compile(r"^(?:compacted|rollup)-\d{6}\.parquet$")
#: A writer's day rollup in a rollups partition.
DAY_ROLLUP = re.compile(r"^day-[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.parquet$")
#: Objects of the previous layout inside a table partition: copies of windows, never the only copy.
LEGACY_NAME = re.compile(
    r"^(?:_day-[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.parquet|_(?:compacted|rollup)-\d{6}\.parquet"
    r"|_compacted\.json)$"
)
LEGACY_DAY_ROLLUP = re.compile(r"^_day-[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.parquet$")


def table_prefix(table_name: str) -> str:
    """``v1/{table}``: the window objects, each record once."""
    return f"v{SCHEMA_VERSION}/{table_name}"


def rollup_prefix(table_name: str) -> str:
    """``v1/rollups/{table}``: writers' day rollups of their own windows."""
    return f"v{SCHEMA_VERSION}/{ROLLUPS}/{table_name}"


def compacted_prefix(table_name: str) -> str:
    """``v1/compacted/{table}``: compaction's objects and manifests."""
    return f"v{SCHEMA_VERSION}/{COMPACTED}/{table_name}"


def prefixes(table_name: str) -> tuple[str, str, str]:
    """Every prefix holding objects of ``table_name`` (retention and off-boarding cover all three)."""
    return table_prefix(table_name), rollup_prefix(table_name), compacted_prefix(table_name)


def partition(model: str, day: date) -> str:
    """``model={model}/date={YYYY-MM-DD}``, the same below every prefix."""
    return f"model={model}/date={day.isoformat()}"


def day_rollup_name(collector_id: str) -> str:
    """Object name of a writer's day rollup in a rollups partition."""
    return f"day-{collector_id}.parquet"


def compacted_name(kind: str, generation: int) -> str:
    """``compacted-000001.parquet`` (the windows) or ``rollup-000001.parquet`` (one row per day)."""
    return f"{kind}-{generation:06d}.parquet"


def is_window(name: str) -> bool:
    """A window object in a table partition (not a legacy rollup, manifest or temporary file)."""
    return name.endswith(".parquet") and not name.startswith((".", "_"))

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
    "STATISTICS_COLUMNS",
    "WINDOW_CODEC",
    "compacted_name",
    "compacted_prefix",
    "day_rollup_name",
    "is_window",
    "partition",
    "prefixes",
    "rollup_prefix",
    "table_prefix",
]

#: Parquet codec of window objects (``v{N}/{table}/``): a window object is a few rows, where
#: zstd's per-column cost is most of the encoding time for a few percent fewer bytes
#: (issue 19, ``benchmarks/RESULTS.md``). Day rollups and compacted objects use zstd.
WINDOW_CODEC = "snappy"
#: The columns of a window object with Parquet min/max statistics: those readers filter on
#: (mlmon's readers: ``window_start``; the SQL in docs: ``feature``, ``segment``...).
STATISTICS_COLUMNS = (
    "model_version",
    "window_start",
    "window_end",
    "collector_id",
    "reference_id",
    "feature",
    "method",
    "source",
    "role",
    "segment",
    "segment_value",
)
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


def markdown() -> list[str]:
    """The layout part of docs/lake.md: which prefix to read for what."""
    v = f"v{SCHEMA_VERSION}"
    return [
        f"Layout: `{{root}}/{v}/{{table}}/model={{model}}/date={{YYYY-MM-DD}}/{{key}}.parquet`. `model` and",
        "`date` (the UTC date of `window_start`) are hive partitions that readers add as columns.",
        "Keys are deterministic per (table, model, window, collector): a retried write replaces the",
        "same object with the same bytes. Writers only PUT; they never list, read or delete.",
        "(On a local lake a write goes to a `.tmp-*.part` file renamed when done; it is never",
        "data. One left by a killed writer is deleted, once over an hour old, by the next write",
        "to that folder and by `mlmon retention apply`.)",
        f"Window objects are Parquet with {WINDOW_CODEC} compression, no dictionary pages, no",
        "Arrow schema in the footer (the Parquet types read back as the same Arrow types), and",
        "min/max statistics on the columns readers filter on ("
        + ", ".join(f"`{c}`" for c in STATISTICS_COLUMNS)
        + "); day rollups and compacted objects use zstd with statistics on every column.",
        "",
        "## Which prefix to read for what",
        "",
        "| prefix | holds | read it |",
        "|---|---|---|",
        f"| `{v}/{{table}}/` | the table's window objects: **each record exactly once** | with any engine: a plain glob `{{root}}/{v}/{{table}}/**/*.parquet` (duckdb `read_parquet(..., hive_partitioning = true)`, Spark `spark.read.parquet`, a Trino/Athena external table on the folder partitioned by `model`, `date`) |",
        f"| `{v}/{ROLLUPS}/{{table}}/` | `day-{{collector}}.parquet`: a writer's day rollup of *its own* windows (`profiles`, `latency`), one merged row per (model_version, reference_id or source, feature), `window_start`/`window_end` the day's bounds; the window object names it holds are in its Parquet metadata (`mlmon.covers`); none for a day whose only window is the whole day (it would be a copy) | mlmon only, for speed: a rollup may hold only part of a day (a restart, a late window), so never sum it for totals |",
        f"| `{v}/{COMPACTED}/{{table}}/` | `mlmon lake compact`'s `compacted-{{gen}}.parquet` (a day's windows in one object), `rollup-{{gen}}.parquet` (its day rollup) and `{MANIFEST}` (the window names they hold) | mlmon only, through the manifest: an older generation may remain (the reader role cannot delete) |",
        "",
        "A glob over one table never meets the other two prefixes, and no object name in them starts",
        "with `_`, which Hadoop-based engines and pyarrow skip as hidden (duckdb does not), so every",
        "engine reads the same records. A glob over the whole lake (`v1/**`) mixes tables: don't.",
        "mlmon's own readers (`Lake`, `mlmon drift`, reports) read each window once, from a compacted",
        "object or a day rollup that holds it when there is one, else from the window itself.",
        "",
    ]


def migration_markdown() -> list[str]:
    """How a lake written by the previous layout is read and migrated (docs/lake.md)."""
    v = f"v{SCHEMA_VERSION}"
    return [
        "## Lakes written before this layout",
        "",
        "Earlier versions put day rollups (`_day-{collector}.parquet`) and compaction objects",
        "(`_compacted-{gen}.parquet`, `_rollup-{gen}.parquet`, `_compacted.json`) inside the table",
        "partitions, where a plain duckdb glob read those records again (6,000 rows a day for 3,000,",
        "12,000 after compaction). mlmon's readers honour them without counting a window twice; to",
        "make plain SQL right as well:",
        "",
        f"1. upgrade mlmon on the edges and readers (new day rollups go to `{v}/{ROLLUPS}/`);",
        "2. `mlmon lake compact --lake URI` with the reader role: days compacted the old way are",
        f"   compacted anew under `{v}/{COMPACTED}/`;",
        "3. `mlmon lake migrate --lake URI` (any role that lists) shows the old objects and which",
        "   may go; `mlmon lake migrate --lake URI --apply` with the maintenance role deletes them,",
        "   one key at a time. They are copies (compaction never deleted the windows it merged);",
        "   one whose windows are no longer all there is kept and named.",
        "",
    ]

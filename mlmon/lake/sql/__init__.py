"""SQL that ships with mlmon: duckdb macros for the lake's mergeable profiles, and the queries
``docs/lake.md`` shows a BI user (plain duckdb, no mlmon import).

``macros.sql`` defines ``mlmon_sum_counts``, ``mlmon_psi``, ``mlmon_jensen_shannon``,
``mlmon_hellinger``, ``mlmon_sketch_quantile`` and ``mlmon_shown_counts`` (small-count
protection for exported categorical counts); :class:`~mlmon.lake.reader.LakeStore` loads
it into every connection (so ``mlmon sql`` and ``Lake.sql`` have them) and ``mlmon sql --macros``
prints it to paste elsewhere. The ``queries/`` files are the examples of ``docs/lake.md``,
written against a lake at ``lake/`` (relative to where duckdb runs) and model ``risk``.
"""

from __future__ import annotations

from importlib import resources

__all__ = ["QUERIES", "macros", "query"]

#: The example queries of docs/lake.md, in the order shown: file stem -> title.
QUERIES = {
    "drift_per_day": "Drift per day",
    "latency_p95_per_week": "Latency percentiles per week",
    "firing_alerts": "Alerts firing now",
}


def macros() -> str:
    """The text of ``macros.sql`` (CREATE OR REPLACE MACRO statements)."""
    return resources.files(__name__).joinpath("macros.sql").read_text(encoding="utf-8")


def query(name: str) -> str:
    """The text of one example query of docs/lake.md (see :data:`QUERIES`)."""
    if name not in QUERIES:
        raise KeyError(f"no example query {name!r}; queries: {', '.join(QUERIES)}")
    return resources.files(__name__).joinpath("queries", f"{name}.sql").read_text(encoding="utf-8")


def markdown() -> list[str]:
    """The plain-SQL part of docs/lake.md: the macros and the example queries, verbatim."""
    out = [
        "## Plain SQL: duckdb without mlmon",
        "",
        "The queries below run in any duckdb >= 1.3 (CLI, DBeaver, a notebook) from the folder",
        "that holds the lake as `lake/`, for model `risk`; on S3 replace `lake/` with",
        "`s3://bucket/prefix/` (duckdb's httpfs, or `register_filesystem` with s3fs). Each reads",
        "one table's plain glob, so each record counts once, before and after `mlmon lake compact`.",
        'They give the numbers of `Lake.drift(by="day")` and `Lake.percentiles(by="week")`',
        "(`mlmon drift`, `mlmon percentiles`): `tests/lake/test_plain_sql.py` runs them in a",
        "process that never imports mlmon and compares, before and after compaction. Counts and",
        "sums merge with plain SQL; bins and sketches need the macros",
        "below (SQL has no element-wise list sum or sketch quantile): paste them first, or print",
        "them with `mlmon sql --macros`. `mlmon sql` and `Lake.sql` load them by themselves.",
        "Chi-square p-values, KS and Wasserstein need mlmon (`Lake.drift`).",
        "",
        "```sql",
        macros().rstrip("\n"),
        "```",
        "",
    ]
    for name, title in QUERIES.items():
        out += [f"### {title}", "", "```sql", query(name).rstrip("\n"), "```", ""]
    return out

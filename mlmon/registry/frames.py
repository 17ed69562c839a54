"""Registry versions as polars frames, joinable with the lake on ``model_version``.

:func:`registry_versions_frame` turns a model's registered versions into one
row each, keyed by the version string an endpoint serving it reports
(``model_version``, by the :class:`~mlmon.registry.base.AttributionRule`).
:func:`register_registry_versions` adds it to a lake's duckdb connection as the
view ``registry_versions``, so that::

    lake.sql("SELECT registered_version, count(*) FROM golden "
             "JOIN registry_versions USING (model_version) GROUP BY ALL")

attributes lake rows to registered versions. :func:`versions_table` is what
``mlmon versions`` prints: the registry's versions with what the lake saw of each.
"""

from __future__ import annotations

import polars as pl

from mlmon.lake.reader import LakeStore
from mlmon.registry.base import AttributionRule, ModelRegistry

__all__ = [
    "REGISTRY_VERSION_COLUMNS",
    "lake_versions",
    "register_registry_versions",
    "registry_versions_frame",
    "versions_table",
]

REGISTRY_VERSION_COLUMNS: dict[str, pl.DataType] = {
    "registered_model": pl.String(),
    "registered_version": pl.String(),
    "model_version": pl.String(),
    "aliases": pl.List(pl.String()),
    "run_id": pl.String(),
    "status": pl.String(),
    "created_at": pl.Datetime("us", "UTC"),
    "source": pl.String(),
}
"""Columns of :func:`registry_versions_frame`; ``model_version`` is the endpoint's version string."""


def registry_versions_frame(
    registry: ModelRegistry, model: str, rule: AttributionRule | None = None
) -> pl.DataFrame:
    """One row per registered version of ``model``, keyed by the endpoint version string.

    Parameters
    ----------
    registry
        A read-only registry (e.g. :class:`~mlmon.registry.mlflow_rest.MlflowRegistry`).
    model
        The registered model name.
    rule
        How endpoint version strings map to registered versions (default: ``auto``).

    Returns
    -------
    polars.DataFrame
        Columns :data:`REGISTRY_VERSION_COLUMNS`, newest version first. ``model_version``
        is null for a version that maps to no endpoint string under the rule.

    Raises
    ------
    UnknownModel
        The registry has no such model.
    RegistryError
        Two versions map to the same endpoint version string.
    """
    rule = rule or AttributionRule()
    versions = registry.versions(model)
    rule.table(versions)  # refuse ambiguous mappings before anyone joins on them
    rows = [
        {
            "registered_model": v.model,
            "registered_version": v.version,
            "model_version": rule.endpoint_version(v),
            "aliases": list(v.aliases),
            "run_id": v.run_id,
            "status": v.status,
            "created_at": v.created_at,
            "source": v.source,
        }
        for v in versions
    ]
    return pl.DataFrame(rows, schema=REGISTRY_VERSION_COLUMNS)


def register_registry_versions(
    lake: LakeStore, frame: pl.DataFrame, name: str = "registry_versions"
) -> None:
    """Add ``frame`` (from :func:`registry_versions_frame`) to ``lake.sql`` as the view ``name``."""
    lake.register_frame(name, frame)


_LAKE_VERSIONS = """
WITH seen AS (
    SELECT model_version, window_start, window_end, 'profiles' AS tbl, 0 AS n,
           0 AS checks, 0 AS passed FROM profiles WHERE model = $model
    UNION ALL
    SELECT model_version, window_start, window_end, 'latency', count, 0, 0
      FROM latency WHERE model = $model AND source <> 'probe'
    UNION ALL
    SELECT model_version, window_start, window_end, 'golden', 0, 1, passed::INT
      FROM golden WHERE model = $model
)
SELECT model_version,
       min(window_start) AS first_seen,
       max(window_end) AS last_seen,
       sum(n)::BIGINT AS requests,
       sum(checks)::BIGINT AS golden_checks,
       sum(passed)::BIGINT AS golden_passed,
       count(*)::BIGINT AS lake_rows
FROM seen GROUP BY model_version
"""

LAKE_VERSION_COLUMNS: dict[str, pl.DataType] = {
    "model_version": pl.String(),
    "first_seen": pl.Datetime("us", "UTC"),
    "last_seen": pl.Datetime("us", "UTC"),
    "requests": pl.Int64(),
    "golden_checks": pl.Int64(),
    "golden_passed": pl.Int64(),
    "lake_rows": pl.Int64(),
}


def lake_versions(lake: LakeStore, model: str) -> pl.DataFrame:
    """What the lake saw of each reported version of ``model``.

    Returns
    -------
    polars.DataFrame
        ``model_version``, ``first_seen`` (earliest window start), ``last_seen``
        (latest window end), ``requests`` (latencies observed in streams and
        batches), ``golden_checks``, ``golden_passed`` and ``lake_rows`` (rows of
        the profiles, latency and golden tables).
    """
    frame = lake.con.sql(_LAKE_VERSIONS, params={"model": model}).pl()
    return frame.cast(LAKE_VERSION_COLUMNS)


def versions_table(
    registry: ModelRegistry,
    model: str,
    *,
    lake: LakeStore | None = None,
    lake_model: str | None = None,
    rule: AttributionRule | None = None,
) -> pl.DataFrame:
    """The registry's versions of ``model``, with the lake's first/last seen and counts.

    Versions the lake saw that map to no registered version are listed too, with a
    null ``registered_version``, so an unregistered deployment shows up.

    Parameters
    ----------
    lake_model
        The lake's ``model=`` name when it differs from the registered name.
    """
    reg = registry_versions_frame(registry, model, rule).with_columns(
        pl.col("aliases").list.join(",").alias("aliases")
    )
    table = reg.select(
        "registered_version", "aliases", "run_id", "status", "created_at", "model_version"
    )
    if lake is None:
        return table
    seen = lake_versions(lake, lake_model or model)
    joined = table.join(seen, on="model_version", how="full", coalesce=True, nulls_equal=False)
    order = pl.col("registered_version").cast(pl.Int64, strict=False)
    return joined.sort(order, "model_version", descending=True, nulls_last=True)

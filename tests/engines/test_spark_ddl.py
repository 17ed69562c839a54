"""`mlmon lake ddl --engine spark` on real local Spark: Spark SQL over the lake equals ``Lake``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mlmon.analysis.lake import Lake
from mlmon.cli import main as mlmon_main
from mlmon.errors import ConfigError, UnknownNameError
from mlmon.lake.ddl import ddl, spark_queries
from tests.lake.test_plain_sql import (  # the 12-day lake docs/lake.md's duckdb queries are tested on
    MODEL,
    _check_drift,
    _check_percentiles,
    written,  # noqa: F401 (a fixture)
)

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("spark")]


def _statements(text: str) -> list[str]:
    """Split DDL into statements (each ends with ';', maybe followed by a comment)."""
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    return [s.strip() for s in re.split(r";[^\n]*\n", body) if s.strip()]


def _to_polars(rows: list[Any], columns: list[str]) -> pl.DataFrame:
    return pl.DataFrame([[str(v) if c in ("day", "week") else v for v, c in zip(r, columns, strict=True)] for r in rows], schema=columns, orient="row")  # fmt: skip


def test_spark_sql_over_the_generated_ddl_equals_lake(
    spark: Any,
    written: tuple[Path, Any, pl.DataFrame],  # noqa: F811 (the imported fixture)
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder, _, records = written
    lake_dir = folder / "lake"
    assert mlmon_main(["lake", "ddl", "--engine", "spark", "--lake", str(lake_dir),
                       "--database", "mlmon_t", "--tables", "profiles,latency,references"]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert f"LOCATION 'file://{lake_dir}/v1/profiles/'" in text
    for stmt in _statements(text):
        spark.sql(stmt)
    try:
        # every window object's rows, once (the rollups and the references' own prefix are apart)
        n = spark.sql(f"SELECT count(*) FROM mlmon_t.`profiles` WHERE model = '{MODEL}'").first()[0]
        assert n == Lake(str(lake_dir)).read("profiles", model=MODEL).height
        lake = Lake(str(lake_dir))
        for name, q in spark_queries(MODEL, "mlmon_t").items():
            df = spark.sql(q)
            got = _to_polars(df.collect(), df.columns)
            if name == "drift_per_day":
                _check_drift(got, lake)
            else:
                _check_percentiles(got, lake, records)
    finally:
        spark.sql("DROP DATABASE IF EXISTS mlmon_t CASCADE")


def test_ddl_for_trino_and_athena_point_at_each_table_prefix() -> None:
    athena = ddl("athena", "s3://bucket/lake", tables=["profiles"])
    assert "LOCATION 's3://bucket/lake/v1/profiles/'" in athena
    assert (
        "'projection.enabled' = 'true'" in athena
        and "'projection.model.type' = 'injected'" in athena
    )
    assert "'storage.location.template' = 's3://bucket/lake/v1/profiles/model=${model}/date=${date}/'" in athena  # fmt: skip
    enum = ddl("athena", "s3://bucket/lake", tables=["latency"], models=["risk", "triage"])
    assert "'projection.model.values' = 'risk,triage'" in enum
    trino = ddl("trino", "s3://bucket/lake", tables=["references"])
    assert 'CREATE TABLE IF NOT EXISTS mlmon."references"' in trino
    assert (
        "partitioned_by = ARRAY['model', 'date']" in trino and '"bin_counts" ARRAY(BIGINT)' in trino
    )
    with pytest.raises(ConfigError, match="unknown engine 'hive'"):
        ddl("hive", "s3://b")
    with pytest.raises(ConfigError, match="unknown lake table 'nope'"):
        ddl("spark", "s3://b", tables=["nope"])


def test_drift_recomputed_in_spark_equals_lake_drift(
    spark: Any,
    written: tuple[Path, Any, pl.DataFrame],  # noqa: F811 (the imported fixture)
) -> None:
    import mlmon.engines.spark

    lake_dir = written[0] / "lake"
    for stmt in _statements(
        ddl("spark", f"file://{lake_dir}", database="mlmon_d", tables=["profiles"])
    ):
        spark.sql(stmt)
    try:
        lake = Lake(str(lake_dir))
        rows = spark.table("mlmon_d.profiles").where(f"model = '{MODEL}'")
        ids = [r[0] for r in rows.select("reference_id").distinct().collect()]
        refs = {i: lake.reference(i, model=MODEL) for i in ids}
        for by in ("day", "week"):
            got = mlmon.engines.spark.drift(rows, refs, by=by)
            want = lake.drift(MODEL, by=by)
            assert want.height > 0
            got = got.select(want.columns).cast(dict(want.schema))  # type: ignore[arg-type]
            assert_frame_equal(got, want, check_exact=False, rel_tol=1e-9, abs_tol=1e-12)
        # per-call thresholds (per method, and per feature over it) as Lake.drift takes them
        feature = want.get_column("feature")[0]
        thresholds = {"psi": 0.001, feature: {"js": 0.0005}}
        want_th = lake.drift(MODEL, by="day", thresholds=thresholds)
        changed = want_th.join(want, on=["period", "feature", "method"]).filter(
            pl.col("threshold") != pl.col("threshold_right")
        )
        assert set(changed.get_column("method")) == {"psi", "jensen_shannon"}
        got = mlmon.engines.spark.drift(rows, refs, by="day", thresholds=thresholds)
        got = got.select(want_th.columns).cast(dict(want_th.schema))  # type: ignore[arg-type]
        assert_frame_equal(got, want_th, check_exact=False, rel_tol=1e-9, abs_tol=1e-12)
        with pytest.raises(UnknownNameError, match="no such feature"):  # on the driver
            mlmon.engines.spark.drift(rows, refs, thresholds={"nope": {"psi": 0.1}})
    finally:
        spark.sql("DROP DATABASE IF EXISTS mlmon_d CASCADE")

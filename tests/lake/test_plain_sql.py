"""Plain duckdb over the lake, as a BI user writes it (docs/lake.md), gives mlmon's numbers.

The queries and macros run in a separate Python process that imports duckdb and never mlmon,
over a lake written by the real writer (windows and day rollups), then again after
``mlmon lake compact``; each is compared with ``Lake`` on the same lake. A plain glob over each
table must count each record once, whatever mlmon wrote beside it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from mlmon.analysis.lake import Lake
from mlmon.cli import main as mlmon_main
from mlmon.edge.ingest import WindowAccumulator
from mlmon.lake import sql
from mlmon.lake.migrate import plan_legacy, remove_legacy
from mlmon.lake.writer import LakeWriter, WriteRecord
from mlmon.profiles.frame import build_reference

MODEL = "risk"  # the model the docs' queries name
T0 = datetime(2026, 10, 1, tzinfo=UTC)  # a Thursday: the first week is partial
DAYS = 12
TABLES = ("profiles", "latency", "alerts")

# Runs in the child: duckdb only. Prints one JSON object: query name -> {"columns", "rows"}.
_CHILD = r"""
import json, sys
import duckdb

job = json.load(sys.stdin)
con = duckdb.connect(config={"autoinstall_known_extensions": "false"})
con.execute("SET enable_progress_bar = false")
con.execute(job["macros"])
out = {}
for name, text in job["queries"].items():
    rel = con.sql(text)
    out[name] = {"columns": rel.columns, "rows": [list(r) for r in rel.fetchall()]}
leaked = sorted(m for m in sys.modules if m == "mlmon" or m.startswith("mlmon."))
print(json.dumps({"results": out, "mlmon_modules": leaked}, default=str))
"""


def _plain_duckdb(folder: Path, queries: dict[str, str]) -> dict[str, pl.DataFrame]:
    """Run ``queries`` (after the shipped macros) with plain duckdb in a fresh process in ``folder``."""
    job = json.dumps({"macros": sql.macros(), "queries": queries})
    done = subprocess.run(
        [sys.executable, "-I", "-c", _CHILD],  # -I: no cwd on sys.path, no PYTHON* variables
        input=job,
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["mlmon_modules"] == []  # the BI side never imported mlmon
    return {
        name: pl.DataFrame(r["rows"], schema=r["columns"], orient="row")
        for name, r in doc["results"].items()
    }


def _glob_counts(folder: Path) -> dict[str, int]:
    q = {
        t: f"SELECT count(*) AS n FROM read_parquet('lake/v1/{t}/**/*.parquet', hive_partitioning = true)"
        for t in TABLES
    }
    return {t: int(df["n"][0]) for t, df in _plain_duckdb(folder, q).items()}


def _records(rng: np.random.Generator, n: int, days: float, shift: float) -> pl.DataFrame:
    secs = np.sort(rng.uniform(0, days * 86400, n))
    return pl.DataFrame(
        {
            "timestamp": pl.Series(
                [T0 + timedelta(seconds=float(s)) for s in secs], dtype=pl.Datetime("us", "UTC")
            ),
            "age": rng.normal(50 + shift, 12, n),
            "ward": rng.choice(["icu", "er", "gen", "ped"], n, p=[0.2, 0.3, 0.4, 0.1]),
            "latency_ms": rng.lognormal(3 + shift / 20, 0.6, n),
            "model_version": ["1"] * n,
        }
    )


def _alert_rows(state: str, feature: str, start: datetime) -> pa.Table:
    ts = pa.timestamp("us", tz="UTC")
    return pa.table(
        {
            "model_version": ["1"],
            "window_start": pa.array([start], ts),
            "window_end": pa.array([start + timedelta(hours=1)], ts),
            "collector_id": ["edge-1"],
            "raised_at": pa.array([start + timedelta(hours=1)], ts),
            "rule": ["drift:psi"],
            "severity": ["warning"],
            "state": [state],
            "feature": [feature],
            "value": [0.3],
            "threshold": [0.2],
            "message": [f"{feature} drifted"],
        }
    )


@pytest.fixture
def written(tmp_path: Path) -> tuple[Path, list[WriteRecord], pl.DataFrame]:
    """A lake at tmp_path/lake: 12 days of two-hour windows (with day rollups) and alerts."""
    rng = np.random.default_rng(16)
    reference = build_reference(
        _records(rng, 4000, 1, 0.0).drop("timestamp", "model_version"), model=MODEL
    )
    records = _records(rng, 30_000, DAYS, shift=4.0)
    writer = LakeWriter(str(tmp_path / "lake"), collector_id="edge-1", k_anonymity=1)
    out = [writer.write_reference(MODEL, reference)]
    acc = WindowAccumulator(reference, window=timedelta(hours=2))
    acc.add(records)
    out += acc.flush(writer, MODEL)
    # alerts: age fires on days 2 and 5 and resolves on day 6; ward fires on day 9 and stays
    for day, state, feature in ((2, "firing", "age"), (5, "firing", "age"),
                                (6, "resolved", "age"), (9, "firing", "ward")):  # fmt: skip
        start = T0 + timedelta(days=day)
        rows = _alert_rows(state, feature, start)
        out.append(writer.write_table("alerts", MODEL, rows, start, start + timedelta(hours=1)))
    return tmp_path, out, records


def _window_rows(records: list[WriteRecord], table: str) -> int:
    return sum(r.rows for r in records if r.table == table and "/rollups/" not in r.path)


def _check_drift(sql_df: pl.DataFrame, lake: Lake) -> None:
    methods = ["psi", "jensen_shannon", "hellinger"]
    want = lake.drift(MODEL, by="day", methods=methods)
    assert want.height == DAYS * 2 * 3  # 12 days x (age, ward) x 3 methods
    wide = want.pivot(on="method", index=["period", "feature", "count"], values="value")
    got = sql_df.with_columns(pl.col("day").str.to_date()).sort("day", "feature")
    wide = wide.with_columns(pl.col("period").dt.date().alias("day")).sort("day", "feature")
    assert got["day"].to_list() == wide["day"].to_list()
    assert got["feature"].to_list() == wide["feature"].to_list()
    assert got["count"].to_list() == wide["count"].to_list()
    for m in methods:
        assert np.allclose(got[m].to_numpy(), wide[m].to_numpy(), rtol=1e-9, atol=1e-12), m
    assert max(got["psi"].filter(got["feature"] == "age")) > 0.05  # the planted shift shows


def _check_percentiles(sql_df: pl.DataFrame, lake: Lake, records: pl.DataFrame) -> None:
    want = lake.percentiles("latency_ms", (0.5, 0.95, 0.99), model=MODEL, by="week")
    got = sql_df.with_columns(pl.col("week").str.to_date()).sort("week")
    weeks = sorted({p.date() for p in want["period"]})
    assert got["week"].to_list() == weeks and len(weeks) == 3  # Mondays 28 Sep, 5 Oct, 12 Oct
    assert all(w.weekday() == 0 for w in weeks)
    for col, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        mine = want.filter(pl.col("quantile") == q).sort("period")
        assert got[col].to_list() == pytest.approx(mine["value"].to_list(), rel=1e-12), col
    # and both are within the sketch's 1% of the exact quantiles of the raw latencies
    raw = records.with_columns(pl.col("timestamp").dt.truncate("1w").dt.date().alias("week"))
    for row in got.iter_rows(named=True):
        lat = raw.filter(pl.col("week") == row["week"])["latency_ms"].to_numpy()
        exact = np.quantile(lat, 0.95, method="lower")
        assert abs(row["p95"] - exact) <= 0.01 * exact
        assert row["count"] == lat.size


def _check_alerts(sql_df: pl.DataFrame, lake: Lake) -> None:
    rows = lake.read("alerts", model=MODEL).sort("raised_at", "window_end")
    latest = rows.group_by("model", "rule", "feature").agg(pl.all().last())
    firing = latest.filter(pl.col("state") == "firing").sort("feature")
    assert firing["feature"].to_list() == ["ward"]  # age resolved on day 6
    assert sql_df["feature"].to_list() == firing["feature"].to_list()
    assert sql_df["rule"].to_list() == firing["rule"].to_list()
    raised = [datetime.fromisoformat(t) for t in sql_df["raised_at"]]
    assert raised == firing["raised_at"].to_list()


def _check_all(folder: Path, records: pl.DataFrame) -> None:
    got = _plain_duckdb(folder, {name: sql.query(name) for name in sql.QUERIES})
    lake = Lake(str(folder / "lake"))
    _check_drift(got["drift_per_day"], lake)
    _check_percentiles(got["latency_p95_per_week"], lake, records)
    _check_alerts(got["firing_alerts"], lake)


def test_plain_duckdb_counts_each_record_once_before_and_after_compaction(written):
    folder, out, _ = written
    lake_dir = folder / "lake"
    want = {t: _window_rows(out, t) for t in TABLES}
    assert want == {"profiles": DAYS * 12 * 2, "latency": DAYS * 12, "alerts": 4}
    assert any("/rollups/" in r.path for r in out)  # the writer did keep day rollups
    assert _glob_counts(folder) == want
    assert (
        mlmon_main(["lake", "compact", "--lake", str(lake_dir), "--tables", ",".join(TABLES)]) == 0
    )
    assert sorted(
        p.name for p in (lake_dir / "v1" / "compacted" / "profiles").rglob("*")
    ) == sorted(
        [f"date={(T0 + timedelta(days=d)).date()}" for d in range(DAYS)]
        + ["compacted-000001.parquet", "rollup-000001.parquet", "_compacted.json"] * DAYS
        + ["model=risk"]
    )
    assert _glob_counts(folder) == want
    # mlmon's own SQL views agree
    lake = Lake(str(lake_dir))
    for t, n in want.items():
        assert lake.sql(f'SELECT count(*) AS n FROM "{t}"')["n"][0] == n


def test_docs_queries_in_plain_duckdb_equal_lake_results_before_and_after_compaction(written):
    folder, _, records = written
    _check_all(folder, records)
    assert mlmon_main(["lake", "compact", "--lake", str(folder / "lake")]) == 0
    assert (folder / "lake" / "v1" / "compacted" / "latency").is_dir()
    _check_all(folder, records)


def test_the_docs_show_the_tested_queries_and_macros():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "lake.md").read_text()
    assert sql.macros().strip() in doc
    for name in sql.QUERIES:
        assert sql.query(name).strip() in doc
    assert "mlmon_sketch_quantile" in sql.macros() and "CREATE OR REPLACE MACRO" in sql.macros()


def test_mlmon_sql_prints_the_macros_to_paste(capsys):
    assert mlmon_main(["sql", "--macros"]) == 0
    assert capsys.readouterr().out == sql.macros()


def test_lake_sql_has_the_macros(written):
    folder, _, records = written
    lake = Lake(str(folder / "lake"))
    got = lake.sql(
        "SELECT mlmon_sketch_quantile(list(w), 0.95) AS p95, sum(count) AS n FROM latency AS w"
    )
    want = lake.percentiles("latency_ms", (0.95,), model=MODEL, by="all")
    assert got["p95"][0] == pytest.approx(want["value"][0], rel=1e-12)
    assert got["n"][0] == records.height
    assert lake.sql("SELECT mlmon_psi([1, 2, 3], [1, 2, 3]) AS v")["v"][0] == 0.0


def _legacy_copy(lake_dir: Path) -> int:
    """Put the previous layout's objects into the table partitions (as older mlmon wrote them)."""
    n = 0
    for t in ("profiles", "latency"):
        for f in (lake_dir / "v1" / "rollups" / t).rglob("day-*.parquet"):
            part = lake_dir / "v1" / t / f.parent.parent.name / f.parent.name
            shutil.copy(f, part / f"_{f.name}")
            n += 1
        for manifest in list((lake_dir / "v1" / "compacted" / t).rglob("_compacted.json")):
            doc = json.loads(manifest.read_text())
            part = lake_dir / "v1" / t / manifest.parent.parent.name / manifest.parent.name
            for key in ("data", "rollup"):
                shutil.copy(manifest.parent / doc[key], part / f"_{doc[key]}")
                doc[key] = f"_{doc[key]}"
            (part / "_compacted.json").write_text(json.dumps(doc))
            shutil.rmtree(manifest.parent)
            n += 3
    return n


def test_a_lake_of_the_previous_layout_is_read_once_by_mlmon_and_migrated(written, capsys):
    folder, out, records = written
    lake_dir = folder / "lake"
    Lake(str(lake_dir)).compact("profiles", model=MODEL)
    Lake(str(lake_dir)).compact("latency", model=MODEL)
    before = Lake(str(lake_dir)).drift(MODEL, by="day", methods=["psi"])
    assert _legacy_copy(lake_dir) > 0
    want = {t: _window_rows(out, t) for t in TABLES}
    plain = _glob_counts(folder)
    assert plain["profiles"] > want["profiles"]  # the old layout: plain SQL double-counts

    lake = Lake(str(lake_dir))  # mlmon never did: old objects are honoured, not added
    assert lake.drift(MODEL, by="day", methods=["psi"]).equals(before)
    assert lake.sql("SELECT count(*) AS n FROM profiles")["n"][0] == want["profiles"]
    assert lake.files("profiles", model=MODEL, start="2026-10-03", end="2026-10-04") == [
        str(lake_dir / "v1/profiles/model=risk/date=2026-10-03/_compacted-000001.parquet")
    ]

    # migrate: compaction anew in the new place, then the old copies go
    assert mlmon_main(["lake", "compact", "--lake", str(lake_dir), "--tables", "profiles"]) == 0
    plan = plan_legacy(str(lake_dir))
    assert len(plan.objects) == _count_legacy(lake_dir) and not plan.kept
    # a window gone from one partition: that day's old rollup may be its last copy, so it stays
    victim_day = lake_dir / "v1/latency/model=risk/date=2026-10-04"
    victim = sorted(p for p in victim_day.iterdir() if not p.name.startswith("_"))[0]
    kept_copy = victim.read_bytes()
    victim.unlink()
    plan = plan_legacy(str(lake_dir))
    assert sorted(Path(k).name for k in plan.kept) == ["_compacted-000001.parquet",
        "_compacted.json", "_day-edge-1.parquet", "_rollup-000001.parquet"]  # fmt: skip
    (victim_day / victim.name).write_bytes(kept_copy)
    notes = lake_dir / "v1/profiles/model=risk/date=2026-10-02/_notes.parquet"
    notes.write_bytes(b"someone's")  # not a name mlmon ever wrote: never deleted
    n_legacy = _count_legacy(lake_dir)
    assert mlmon_main(["lake", "migrate", "--lake", str(lake_dir)]) == 0  # a dry run
    assert _count_legacy(lake_dir) == n_legacy
    assert mlmon_main(["lake", "migrate", "--lake", str(lake_dir), "--apply"]) == 0
    assert f"deleted {n_legacy} object(s)" in capsys.readouterr().out
    assert _count_legacy(lake_dir) == 0 and notes.read_bytes() == b"someone's"
    assert remove_legacy(str(lake_dir), plan_legacy(str(lake_dir))) == {
        "deleted": 0, "refused": [], "ok": True}  # fmt: skip
    notes.unlink()
    assert _glob_counts(folder) == want
    _check_all(folder, records)


def _count_legacy(lake_dir: Path) -> int:
    from mlmon.lake.layout import LEGACY_NAME

    return sum(
        1 for t in TABLES for p in (lake_dir / "v1" / t).rglob("*") if LEGACY_NAME.match(p.name)
    )


def test_reserved_prefixes_are_not_table_names():
    from mlmon.errors import SchemaError
    from mlmon.lake.schema import Table, register_table

    for name in ("rollups", "compacted"):
        with pytest.raises(SchemaError, match=name):
            register_table(Table(name, "x", ()))


@pytest.mark.s3
def test_on_s3_with_least_privilege_each_table_glob_counts_each_record_once(
    s3_server, s3_prefix, tmp_path
):
    """Edge role writes windows and day rollups, reader role compacts; a plain duckdb glob over
    ``s3://.../v1/{table}/**`` (s3fs registered, as docs/lake.md says without httpfs) still
    counts each record once, and the docs' percentile query equals ``Lake.percentiles``."""
    import duckdb
    import s3fs

    from tests.s3server import BUCKET

    rng = np.random.default_rng(7)
    reference = build_reference(
        _records(rng, 2000, 1, 0.0).drop("timestamp", "model_version"), model=MODEL
    )
    records = _records(rng, 6000, 4, shift=2.0)
    uri = f"s3://{BUCKET}/{s3_prefix}"
    edge = s3_server.storage_options("edge", sse_kms_key_id=s3_server.kms_key_arn, prefix=s3_prefix)
    writer = LakeWriter(uri, collector_id="edge-1", storage_options=edge, k_anonymity=1)
    writer.write_reference(MODEL, reference)
    acc = WindowAccumulator(reference, window=timedelta(hours=2))
    acc.add(records)
    out = acc.flush(writer, MODEL)
    assert any("/v1/rollups/profiles/" in r.path for r in out)
    reader = s3_server.storage_options("reader", prefix=s3_prefix)
    lake = Lake(uri, reader)
    assert len(lake.compact("profiles", model=MODEL)) == 4
    assert len(lake.compact("latency", model=MODEL)) == 4

    con = duckdb.connect(config={"autoinstall_known_extensions": "false"})
    con.register_filesystem(s3fs.S3FileSystem(**reader))
    con.execute(sql.macros())
    for t in ("profiles", "latency"):
        n = con.sql(f"SELECT count(*) FROM read_parquet('{uri}/v1/{t}/**/*.parquet')").fetchall()
        assert n[0][0] == _window_rows(out, t)
    got = con.sql(sql.query("latency_p95_per_week").replace("'lake/", f"'{uri}/")).pl()
    want = Lake(uri, reader).percentiles("latency_ms", (0.95,), model=MODEL, by="week")
    assert got["p95"].to_list() == pytest.approx(want["value"].to_list(), rel=1e-12)
    assert got["count"].to_list() == want["count"].to_list()

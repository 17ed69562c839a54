"""Registry versions joined with a real lake; ``mlmon versions`` and ``mlmon registry check``.

The lake is written the way the edge writes it: golden checks run by
``run_golden`` against a real demo model server reporting version ``1.0``
(registered version 1, alias ``champion``), plus stream latencies.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mlmon.analysis.lake import Lake
from mlmon.cli import main
from mlmon.demo.model_server import FEATURES, score
from mlmon.edge.golden import load_golden_set, run_golden
from mlmon.edge.http import HttpSettings
from mlmon.edge.protocols import Endpoint
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import LATENCY_EDGES_MS, Window, WindowProfile
from mlmon.profiles.kinds import NumericProfile
from mlmon.registry import (
    MlflowRegistry,
    register_registry_versions,
    registry_versions_frame,
    versions_table,
)
from tests.registry.conftest import READER

# The real servers these tests start are session fixtures: one worker runs them all, so each
# server starts once per run (make test: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("mlflow-registry")

SECRET = "registry-test-hmac-key-0123456789"
T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
CASES = 6


def _golden_file(tmp: Path) -> Path:
    rng = np.random.default_rng(7)
    path = tmp / "golden.jsonl"
    lines = []
    for i in range(CASES):
        row = {"age": int(rng.integers(30, 90)), "bmi": round(float(rng.normal(27, 4)), 1),
               "creatinine": round(float(rng.uniform(0.6, 2.0)), 2),
               "heart_rate": int(rng.integers(55, 110))}  # fmt: skip
        assert set(row) == set(FEATURES)
        lines.append(json.dumps({"id": f"case-{i}", "inputs": row, "expected": score(row),
                                 "kind": "score", "abs_tol": 1e-3}))  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def _write_edge_windows(lake_uri: str, url: str, golden: Path, times: list[datetime]) -> None:
    """What the edge writes per window: golden outcomes and a stream latency profile."""
    ep = Endpoint(url, "oip_v2", "risk", HttpSettings(allow_http=True))
    samples = load_golden_set(golden)
    writer = LakeWriter(lake_uri, collector_id="edge-1")
    rng = np.random.default_rng(1)
    for now in times:
        frame = run_golden(None, ep, samples, SECRET.encode(), now=now)
        start, end = now, now + timedelta(minutes=5)
        rows = frame.with_columns(
            pl.lit(start).alias("window_start"),
            pl.lit(end).alias("window_end"),
            pl.lit("edge-1").alias("collector_id"),
        )
        writer.write_table("golden", "risk", rows, start, end, part="golden")
        version = frame.get_column("model_version")[0]
        lat = NumericProfile.from_array(rng.gamma(2, 10, 40), edges=LATENCY_EDGES_MS)
        window = Window(start, end, version, WindowProfile({}, latency=lat, rows=40))
        writer.write_latency("risk", window, source="stream")


@pytest.fixture
def lake_dir(tmp_path: Path, model_server) -> tuple[str, Path]:
    golden = _golden_file(tmp_path)
    lake_uri = (tmp_path / "lake").as_uri()
    prod = model_server("--protocol", "oip_v2", "--model-name", "risk", "--model-version", "1.0")
    _write_edge_windows(lake_uri, prod.url, golden, [T0, T0 + timedelta(hours=1)])
    old = model_server("--protocol", "oip_v2", "--model-name", "risk", "--model-version", "0.9")
    _write_edge_windows(lake_uri, old.url, golden, [T0 - timedelta(days=1)])
    return lake_uri, golden


def test_registry_versions_join_in_lake_sql(lake_dir, registry_url, reader_auth, mlflow_server):
    lake_uri, _ = lake_dir
    lake = Lake(lake_uri)
    with MlflowRegistry(registry_url, auth=reader_auth) as reg:
        frame = registry_versions_frame(reg, "risk")
    assert frame.get_column("model_version").to_list() == ["2.0", "1.0"]
    register_registry_versions(lake, frame)
    got = lake.sql(
        "SELECT registered_version, aliases, run_id, count(*) AS checks, "
        "sum(passed::INT) AS passed FROM golden JOIN registry_versions USING (model_version) "
        "GROUP BY ALL ORDER BY 1"
    )
    assert got.to_dicts() == [
        {"registered_version": "1", "aliases": ["champion"], "run_id": mlflow_server.run_ids["1"],
         "checks": 2 * CASES, "passed": 2 * CASES},
    ]  # fmt: skip
    lake.refresh()  # the view survives a refresh of the lake's tables
    n = lake.sql("SELECT count(*) AS n FROM golden LEFT JOIN registry_versions USING "
                 "(model_version) WHERE registered_version IS NULL")  # fmt: skip
    assert n.item() == CASES  # the unregistered 0.9 window


def test_register_frame_refuses_a_table_name(tmp_path):
    from mlmon.errors import LakeError

    with pytest.raises(LakeError, match="'golden': that is a lake table name"):
        Lake(tmp_path.as_uri()).register_frame("golden", pl.DataFrame({"a": [1]}))


def test_versions_table_with_lake(lake_dir, registry_url, reader_auth):
    lake_uri, _ = lake_dir
    with MlflowRegistry(registry_url, auth=reader_auth) as reg:
        table = versions_table(reg, "risk", lake=Lake(lake_uri))
    rows = {r["model_version"]: r for r in table.to_dicts()}
    assert table.get_column("registered_version").to_list() == ["2", "1", None]
    assert rows["2.0"]["first_seen"] is None and rows["2.0"]["lake_rows"] is None
    one = rows["1.0"]
    assert one["aliases"] == "champion"
    assert one["first_seen"] == T0
    assert one["last_seen"] == T0 + timedelta(hours=1, minutes=5)
    assert (one["golden_checks"], one["golden_passed"], one["requests"]) == (
        2 * CASES,
        2 * CASES,
        80,
    )
    assert rows["0.9"]["registered_version"] is None and rows["0.9"]["requests"] == 40


def test_cli_versions(lake_dir, registry_url, monkeypatch, capsys, mlflow_server):
    lake_uri, _ = lake_dir
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", READER[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", READER[1])
    assert (
        main(["versions", "--model", "risk", "--registry", registry_url, "--lake", lake_uri]) == 0
    )
    out = capsys.readouterr().out
    assert "champion" in out and "challenger" in out
    assert mlflow_server.run_ids["1"][:20] in out
    assert (
        main(["versions", "--model", "risk", "--registry", registry_url, "--format", "json"]) == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert [d["registered_version"] for d in data] == ["2", "1"]
    assert [d["status"] for d in data] == ["READY", "READY"]


def test_cli_versions_errors(registry_url, monkeypatch, capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["versions", "--model", "risk", "--registry", registry_url]) == 2
    assert "answered 401" in capsys.readouterr().err
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", READER[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", READER[1])
    assert main(["versions", "--model", "nope", "--registry", registry_url]) == 2
    assert "model 'nope' is not registered" in capsys.readouterr().err
    assert main(["versions", "--model", "risk"]) == 2
    assert "no registry given; pass --registry URL" in capsys.readouterr().err


# -- registry check -------------------------------------------------------------------------
def _check(lake_uri: str, golden: Path, endpoint: str, registry_url: str, *extra: str) -> list[str]:
    audit = () if "--state-dir" in extra else ("--no-audit",)
    return ["registry", "check", "--model", "risk", "--version", "2", "--endpoint", endpoint,
            "--golden", str(golden), "--lake", lake_uri, "--registry", registry_url,
            "--allow-http", "--model-name", "risk", "--retries", "0", *audit, *extra]  # fmt: skip


@pytest.fixture
def check_env(monkeypatch):
    monkeypatch.setenv("MLMON_HMAC_KEY", SECRET)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", READER[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", READER[1])


def test_check_passes_for_an_equal_candidate(
    lake_dir, registry_url, model_server, check_env, capsys, tmp_path
):
    lake_uri, golden = lake_dir
    cand = model_server("--protocol", "oip_v2", "--model-name", "risk", "--model-version", "2.0")
    audit = ("--state-dir", str(tmp_path / "state"), "--audit-lake", str(tmp_path / "audit-lake"))
    assert main(_check(lake_uri, golden, cand.url, registry_url, *audit)) == 0
    out = capsys.readouterr().out
    # the probe of the candidate endpoint is an audit record (issue 6: every action on the
    # customer's systems)
    from mlmon.governance.audit import verify

    assert verify(str(tmp_path / "audit-lake")).ok
    recs = [json.loads(line) for f in (tmp_path / "audit-lake" / "audit").rglob("*.jsonl")
            for line in f.read_text().splitlines()]  # fmt: skip
    checked = [r for r in recs if r["action"] == "registry_checked"]
    assert len(checked) == 1 and checked[0]["target"] == cand.url
    assert checked[0]["outcome"] == "pass" and checked[0]["details"]["candidate"] == "2"
    assert "baseline: registered version 1 (alias champion), endpoint version '1.0'" in out
    assert f"{2 * CASES} golden checks" in out
    assert out.count(" ok ") >= CASES
    assert "regressed 0" in out and "PASS" in out


def test_check_fails_for_a_failing_candidate(
    lake_dir, registry_url, model_server, check_env, capsys
):
    lake_uri, golden = lake_dir
    cand = model_server("--protocol", "oip_v2", "--model-name", "risk", "--model-version", "2.0",
                        "--fault", "http500")  # fmt: skip
    assert main(_check(lake_uri, golden, cand.url, registry_url)) == 1
    out = capsys.readouterr().out
    assert out.count("regressed") >= CASES
    assert "http_5xx" in out
    assert f"FAIL: {CASES} case(s) regressed" in out


def test_check_fails_on_shifted_outputs_and_shows_the_delta(
    lake_dir, registry_url, model_server, check_env, capsys
):
    lake_uri, golden = lake_dir
    cand = model_server("--protocol", "oip_v2", "--model-name", "risk", "--model-version", "2.0",
                        module="tests.registry.shifted_server")  # fmt: skip
    assert main(_check(lake_uri, golden, cand.url, registry_url)) == 1
    out = capsys.readouterr().out
    assert "mismatch" in out and "0.05" in out
    # tolerating every case as a regression lets it pass the case gate, not the pass-rate gate
    args = _check(lake_uri, golden, cand.url, registry_url, "--max-regressed-cases", str(CASES))
    assert main(args) == 1
    assert "FAIL: pass rate 0.0% is below production's 100.0%" in capsys.readouterr().out


def test_check_refuses_an_endpoint_serving_another_version(
    lake_dir, registry_url, model_server, check_env, capsys
):
    lake_uri, golden = lake_dir
    prod = model_server("--protocol", "oip_v2", "--model-name", "risk", "--model-version", "1.0")
    assert main(_check(lake_uri, golden, prod.url, registry_url)) == 2
    err = capsys.readouterr().err
    assert "reports version '1.0', which is registered version 1" in err
    assert "not the candidate 2" in err


def test_check_errors_name_what_to_fix(lake_dir, registry_url, model_server, check_env, capsys):
    lake_uri, golden = lake_dir
    cand = model_server("--protocol", "oip_v2", "--model-name", "risk", "--model-version", "2.0")
    base = _check(lake_uri, golden, cand.url, registry_url)
    assert main([*base, "--production-alias", "production"]) == 2
    assert "none of the production aliases production" in capsys.readouterr().err
    args = [a if a != "2" else "9" for a in base]
    assert main(args) == 2
    assert "no version '9'" in capsys.readouterr().err
    assert main([*base, "--baseline-version", "2"]) == 2
    assert "no golden checks of model 'risk' with model_version '2.0'" in capsys.readouterr().err
    other_key = _check(lake_uri, golden, cand.url, registry_url)
    import os

    os.environ["MLMON_HMAC_KEY"] = "another-key-of-enough-length-123"
    assert main(other_key) == 2
    assert "same HMAC key" in capsys.readouterr().err


def test_check_without_registry_uses_the_baseline_version_string(
    lake_dir, model_server, check_env, capsys
):
    lake_uri, golden = lake_dir
    cand = model_server("--protocol", "oip_v2", "--model-name", "risk", "--model-version", "2.0")
    args = ["registry", "check", "--no-audit", "--model", "risk", "--version", "2.0", "--endpoint", cand.url,
            "--golden", str(golden), "--lake", lake_uri, "--baseline-version", "1.0",
            "--allow-http", "--model-name", "risk"]  # fmt: skip
    assert main(args) == 0
    assert "baseline: version string '1.0'" in capsys.readouterr().out


def test_check_takes_endpoint_golden_and_key_from_the_edge_config(
    lake_dir, registry_url, model_server, check_env, capsys, tmp_path, monkeypatch
):
    lake_uri, golden = lake_dir
    cand = model_server("--protocol", "oip_v2", "--model-name", "risk", "--model-version", "2.0")
    monkeypatch.setenv("EDGE_KEY", SECRET)
    monkeypatch.delenv("MLMON_HMAC_KEY")
    config = tmp_path / "edge.yaml"
    config.write_text(
        f"collector_id: edge-1\nlake: {{uri: {lake_uri}}}\nhmac_key: {{env: EDGE_KEY}}\n"
        f"state_dir: {tmp_path / 'state'}\nallow_http: true\n"
        "models:\n  - name: risk\n    reference: ref.parquet\n"
        "    endpoint: {url: http://127.0.0.1:1, protocol: oip_v2, model_name: risk}\n"
        f"    golden: {{file: {golden}}}\n"
    )
    args = ["registry", "check", "--no-audit", "--model", "risk", "--version", "2", "--endpoint", cand.url,
            "--config", str(config), "--lake", lake_uri, "--registry", registry_url,
            "--retries", "0"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "PASS" in out and f"cases {CASES} (compared {CASES}" in out

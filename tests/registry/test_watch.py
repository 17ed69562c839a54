"""Registry watch (issue 22 item 1) against the session's real MLflow registry.

Each poll is the real ``mlmon registry watch --config ...`` (one pass, as a CronJob
runs it) through the recording proxy, which proves every request read-only. Changes
are made as the admin with MLflow's own client between polls; the lake's
``registry_events`` are read back with plain duckdb.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import numpy as np
import pytest

from mlmon.cli import main
from tests.registry.conftest import ADMIN, READER, MlflowServer, Served
from tests.servers.real import FEATURES, golden_rows

pytestmark = pytest.mark.xdist_group("mlflow-registry")


@contextmanager
def _admin(url: str) -> Iterator[object]:
    from mlflow import MlflowClient

    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = ADMIN
    try:
        yield MlflowClient(url)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def reader_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", READER[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", READER[1])


def _config(tmp: Path, registry: str, models: list[dict]) -> Path:
    cfg = {
        "registry": {"url": registry},
        "lake": {"uri": str(tmp / "lake")},
        "state_dir": str(tmp / "state"),
        "models": models,
    }
    path = tmp / "watch.yaml"
    path.write_text(json.dumps(cfg))  # JSON is YAML
    return path


def _events(lake: Path) -> list[tuple]:
    return duckdb.sql(
        "SELECT event, registered_version, previous_version, alias, stage, event_id, model "
        f"FROM read_parquet('{lake}/v1/registry_events/**/*.parquet', hive_partitioning = true) "
        "ORDER BY observed_at, event, registered_version"
    ).fetchall()


def test_watch_sees_a_new_version_and_an_alias_move_exactly_once(
    mlflow_server: MlflowServer, registry_url: str, reader_env: None, tmp_path: Path, capsys
) -> None:
    name = f"watched-{uuid.uuid4().hex[:8]}"
    with _admin(mlflow_server.url) as client:
        client.create_registered_model(name)  # type: ignore[attr-defined]
        client.create_model_version(name, source="s3://bucket/m1")  # type: ignore[attr-defined]
        client.set_registered_model_alias(name, "champion", "1")  # type: ignore[attr-defined]
    config = _config(tmp_path, registry_url, [{"name": name, "lake_model": "watched"}])
    lake = tmp_path / "lake"
    watch = ["registry", "watch", "--config", str(config)]

    assert main(watch) == 0
    first = _events(lake)
    assert [e[:4] for e in first] == [("alias_set", "1", None, "champion"),
                                      ("version_seen", "1", None, None)]  # fmt: skip
    assert all(e[6] == "watched" for e in first)
    assert main(watch) == 0  # nothing changed: nothing written
    assert _events(lake) == first

    with _admin(mlflow_server.url) as client:
        client.create_model_version(name, source="s3://bucket/m2")  # type: ignore[attr-defined]
        client.set_registered_model_alias(name, "champion", "2")  # type: ignore[attr-defined]
        client.transition_model_version_stage(name, "1", "Archived")  # type: ignore[attr-defined]
    assert main(watch) == 0
    assert main(watch) == 0  # and once more: each change exactly once
    new = _events(lake)[len(first) :]
    assert [e[:5] for e in new] == [
        ("alias_moved", "2", "1", "champion", None),
        ("stage_changed", "1", None, None, "Archived"),
        ("version_created", "2", None, None, "None"),
    ]
    ids = [e[5] for e in _events(lake)]
    assert len(set(ids)) == len(ids) == 5
    out = capsys.readouterr().out
    assert f"model {name}: 0 change(s)" in out and "alias_moved 1" in out

    # the state file is what makes it idempotent: without it the next run starts over
    (tmp_path / "state" / "registry-watch.json").unlink()
    assert main(watch) == 0
    again = _events(lake)[5:]
    assert sorted(e[0] for e in again) == ["alias_set", "version_seen", "version_seen"]

    # read-only: the audit log has one record per poll
    polls = [
        json.loads(line)
        for seg in (lake / "audit" / "registry-watch").glob("segment-*.jsonl")
        for line in seg.read_text().splitlines()
    ]
    assert sum(p.get("action") == "registry_polled" for p in polls) == 5


def test_watch_tests_a_version_a_candidate_alias_moves_to(
    served: Served, mlflow_server: MlflowServer, registry_url: str, reader_env: None,
    tmp_path: Path, capsys,
) -> None:  # fmt: skip
    rows = golden_rows(8, seed=5)
    x = np.array([[r[f] for f in FEATURES] for r in rows])
    labels = served.models["1"].predict(x).tolist()  # type: ignore[attr-defined]
    golden = tmp_path / "golden.jsonl"
    golden.write_text("".join(
        json.dumps({"id": f"g{i}", "inputs": r, "expected": int(y), "kind": "label"}) + "\n"
        for i, (r, y) in enumerate(zip(rows, labels, strict=True))
    ))  # fmt: skip
    test = {
        "champion_alias": "champion",
        "champion_endpoint": served.endpoints["1"].url,
        "candidate_endpoints": {v: served.endpoints[v].url for v in ("2", "3")},
        "golden": str(golden),
        "protocol": "mlflow",
        "retries": 0,
    }
    config = _config(tmp_path, registry_url, [{"name": "clf", "candidate_aliases": ["challenger"],
                                               "test": test}])  # fmt: skip
    cfg = json.loads(config.read_text())
    cfg["allow_http"] = True
    config.write_text(json.dumps(cfg))
    watch = ["registry", "watch", "--config", str(config)]
    assert main(watch) == 0  # the first poll: an inventory, no test
    assert not (tmp_path / "lake" / "v1" / "version_checks").exists()
    try:
        with _admin(mlflow_server.url) as client:
            client.set_registered_model_alias("clf", "challenger", "3")  # type: ignore[attr-defined]
        assert main(watch) == 0
        out = capsys.readouterr().out
        assert "testing version 3 (alias_set) against champion 1" in out and "FAIL:" in out
        assert main(watch) == 0  # no change, no second test
    finally:
        with _admin(mlflow_server.url) as client:
            client.delete_registered_model_alias("clf", "challenger")  # type: ignore[attr-defined]
    checks = duckdb.sql(
        "SELECT candidate_version, champion_version, champion_alias, trigger, outcome FROM "
        f"read_parquet('{tmp_path}/lake/v1/version_checks/**/*.parquet')"
    ).fetchall()
    assert checks == [("3", "1", "champion", "alias_set", "fail")]
    alerts = duckdb.sql(
        f"SELECT rule, state FROM read_parquet('{tmp_path}/lake/v1/alerts/**/*.parquet')"
    ).fetchall()
    assert alerts == [("version_check", "firing")]

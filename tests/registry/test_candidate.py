"""Replication test of a candidate version (issue 22 item 2), real registry and real servers.

Registered model ``clf`` (tests/registry/conftest.py, ``served``): versions 1 and 2
are the same pipeline, 3 one trained on another threshold; alias ``champion`` -> 1;
each served by its own ``mlflow models serve``. ``mlmon registry test-candidate``
sends the golden set to candidate and champion on the same inputs: 2 passes (exit
0), 3 fails (exit 1, a firing alert), a candidate whose endpoint is down cannot be
decided (exit 7). Results are read back from the lake's ``version_checks`` and
``alerts`` with plain duckdb, and from the audit log.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from mlmon.cli import main
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import build_reference
from mlmon.profiles.schema import FeatureSpec, Schema
from tests.registry.conftest import READER, Served
from tests.servers.real import FEATURES, free_port, golden_rows, training_data

pytestmark = pytest.mark.xdist_group("mlflow-registry")

CANARY = "Jane-Canary-MRN-0073"


def _golden(tmp: Path, model: object) -> tuple[Path, list[dict[str, float]]]:
    # distinctive input values (54.000123456, ...), so a leak of one would be found below
    rows = [{f: v + 1.23456e-4 for f, v in r.items()} for r in golden_rows(8, seed=5)]
    x = np.array([[r[f] for f in FEATURES] for r in rows])
    labels = model.predict(x).tolist()  # type: ignore[attr-defined]
    path = tmp / "golden.jsonl"
    path.write_text("".join(
        json.dumps({"id": f"{CANARY}-{i}", "inputs": r, "expected": int(y), "kind": "label"})
        + "\n" for i, (r, y) in enumerate(zip(rows, labels, strict=True))
    ))  # fmt: skip
    return path, rows


def _reference_with_prediction(lake: Path, model: object) -> str:
    """The lake's reference of ``clf``, with the model's output as feature ``prediction``."""
    x, _ = training_data()
    frame = pl.DataFrame(x, schema=list(FEATURES), orient="row").with_columns(
        pl.Series("prediction", model.predict(x).astype(float))  # type: ignore[attr-defined]
    )
    schema = Schema(tuple(FeatureSpec(f, "numeric") for f in (*FEATURES, "prediction")))
    ref = build_reference(frame, schema, model="clf")
    LakeWriter(str(lake), collector_id="ref-builder").write_reference("clf", ref)
    return ref.reference_id


@pytest.fixture
def reader_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", READER[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", READER[1])
    monkeypatch.delenv("MLMON_HMAC_KEY", raising=False)
    monkeypatch.delenv("MLMON_LAKE", raising=False)


def _args(tmp: Path, golden: Path, version: str, endpoint: str, champion: str, registry: str
          ) -> list[str]:  # fmt: skip
    return ["registry", "test-candidate", "--model", "clf", "--version", version,
            "--endpoint", endpoint, "--champion-endpoint", champion, "--golden", str(golden),
            "--protocol", "mlflow", "--allow-http", "--retries", "0", "--registry", registry,
            "--lake", str(tmp / "lake"), "--state-dir", str(tmp / "state")]  # fmt: skip


def _checks(lake: Path) -> list[dict]:
    rel = duckdb.sql(
        f"SELECT * FROM read_parquet('{lake}/v1/version_checks/**/*.parquet', "
        "hive_partitioning = true) ORDER BY checked_at"
    )
    return [dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()]


def _alerts(lake: Path) -> list[tuple]:
    if not (lake / "v1" / "alerts").exists():
        return []
    return duckdb.sql(
        f"SELECT rule, severity, state, model_version, message FROM read_parquet("
        f"'{lake}/v1/alerts/**/*.parquet', hive_partitioning = true) ORDER BY raised_at"
    ).fetchall()


def _audit(lake: Path) -> list[dict]:
    out = []
    for seg in sorted((lake / "audit" / "registry-test").glob("segment-*.jsonl")):
        out += [json.loads(line) for line in seg.read_text().splitlines()]
    return [r for r in out if r.get("action") == "version_checked"]


def test_candidate_pass_fail_and_endpoint_down(
    served: Served, registry_url: str, reader_env: None, tmp_path: Path, capsys, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    golden, rows = _golden(tmp_path, served.models["1"])
    ref_id = _reference_with_prediction(tmp_path / "lake", served.models["1"])
    champion = served.endpoints["1"].url
    lake = tmp_path / "lake"

    # 2 serves the same model: every case agrees, exit 0
    code = main(_args(tmp_path, golden, "2", served.endpoints["2"].url, champion, registry_url))
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "champion version 1 (alias champion)" in out.out and "PASS" in out.out
    (row,) = _checks(lake)
    assert (row["outcome"], row["trigger"], row["candidate_version"], row["champion_version"],
            row["champion_alias"]) == ("pass", "manual", "2", "1", "champion")  # fmt: skip
    assert (row["cases"], row["agreed"], row["disagreed"], row["candidate_errors"]) == (8, 8, 0, 0)
    assert row["candidate_pass_rate"] == row["champion_pass_rate"] == 1.0
    assert row["reference_id"] == ref_id and row["output_feature"] == "prediction"
    assert row["output_drift"] == 0.0 and row["reasons"] is None
    assert row["latency_ratio"] > 0 and row["model"] == "clf"
    assert _alerts(lake) == []

    # 3 answers differently where its threshold differs: exit 1, the reasons, a firing alert
    x = np.array([[r[f] for f in FEATURES] for r in rows])
    differ = int((served.models["3"].predict(x) != served.models["1"].predict(x)).sum())  # type: ignore[attr-defined]
    assert differ > 0
    code = main(_args(tmp_path, golden, "3", served.endpoints["3"].url, champion, registry_url))
    out = capsys.readouterr()
    assert code == 1, out.err
    assert f"FAIL: outputs differ in {differ} of 8 cases" in out.out
    row = _checks(lake)[-1]
    assert (row["outcome"], row["candidate_version"], row["disagreed"]) == ("fail", "3", differ)
    assert row["candidate_pass_rate"] == pytest.approx((8 - differ) / 8)
    assert row["output_drift"] is not None and row["output_drift"] > 0.0
    assert f"outputs differ in {differ} of 8 cases" in row["reasons"]
    ((rule, severity, state, version, message),) = _alerts(lake)
    assert (rule, severity, state, version) == ("version_check", "critical", "firing", "3")
    assert "candidate version 3 vs champion 1: fail" in message

    # the same failing candidate again: still firing, no second alert row
    assert main(_args(tmp_path, golden, "3", served.endpoints["3"].url, champion,
                      registry_url)) == 1  # fmt: skip
    assert len(_alerts(lake)) == 1 and len(_checks(lake)) == 3
    capsys.readouterr()

    # a candidate endpoint that is down: nothing decided, exit 7, outcome error
    down = f"http://127.0.0.1:{free_port()}"
    code = main(_args(tmp_path, golden, "2", down, champion, registry_url))
    out = capsys.readouterr()
    assert code == 7, out.err
    assert (
        "ERROR: the candidate's endpoint answered none of the 8 golden cases (connect)" in out.out
    )
    row = _checks(lake)[-1]
    assert (row["outcome"], row["candidate_errors"], row["champion_errors"]) == ("error", 8, 0)
    assert _alerts(lake)[-1][:3] == ("version_check", "warning", "firing")

    # every test is in the audit log, with its outcome
    audit = _audit(lake)
    assert [(r["outcome"], r["details"]["candidate"]) for r in audit] == [
        ("pass", "2"), ("fail", "3"), ("fail", "3"), ("error", "2")]  # fmt: skip
    assert all(r["details"]["champion"] == "1" for r in audit)

    # no golden input value or sample id in what was printed or logged, or in the lake
    said = out.out + out.err + caplog.text
    blobs = said + "".join(p.read_bytes().decode("latin-1") for p in lake.rglob("*") if p.is_file())
    needles = [CANARY, *(repr(v) for r in rows for v in r.values())]
    assert all(len(n) >= 9 for n in needles)
    assert not [n for n in needles if n in blobs]


def test_an_unknown_candidate_version_is_a_usage_error(
    served: Served, registry_url: str, reader_env: None, tmp_path: Path, capsys
) -> None:
    golden, _ = _golden(tmp_path, served.models["1"])
    args = _args(tmp_path, golden, "99", served.endpoints["2"].url, served.endpoints["1"].url,
                 registry_url)  # fmt: skip
    assert main(args) == 2
    assert "model 'clf' has no version '99'" in capsys.readouterr().err
    assert not (tmp_path / "lake").exists()


def test_an_unreachable_registry_exits_7(
    served: Served, reader_env: None, tmp_path: Path, capsys
) -> None:
    golden, _ = _golden(tmp_path, served.models["1"])
    args = _args(tmp_path, golden, "2", served.endpoints["2"].url, served.endpoints["1"].url,
                 f"http://127.0.0.1:{free_port()}")  # fmt: skip
    assert main(args) == 7
    assert "cannot reach the model registry" in capsys.readouterr().err

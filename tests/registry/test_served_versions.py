"""Version attribution end to end (issue 16): a real MLflow registry, real MLflow scoring servers.

Registered model ``clf`` (in the session's MLflow server, tests/registry/conftest.py)
gets three versions logged through MLflow's own client, each a scikit-learn
pipeline: 1 and 2 the same model, 3 one trained on another threshold. Alias
``champion`` points at 1. Each version is served by ``mlflow models serve -m
models:/clf/N`` (loaded from the registry). MLflow's scoring server reports no
version, so the edge's ``edge.yaml`` says which one it serves: the alias it follows
(``version_alias``, read-only) or the version (``model_version``). The collector's
golden and latency rows carry it, and ``mlmon registry check`` compares candidates
2 (passes) and 3 (fails) with what the lake recorded for the champion.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mlmon.analysis.lake import Lake
from mlmon.cli import main
from mlmon.edge.collector import Collector
from mlmon.edge.config import load_config
from mlmon.lake.references import save_reference
from mlmon.profiles.frame import build_reference
from mlmon.profiles.schema import FeatureSpec, Schema
from tests.registry.conftest import READER, Served
from tests.servers.real import FEATURES, FIX, golden_rows

# The real servers these tests start are session fixtures: one worker runs them all, so each
# server starts once per run (make test: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("mlflow-registry")

SECRET = "served-versions-hmac-key-0123456789"


def _golden(tmp: Path, model: object) -> Path:
    rows = golden_rows(8, seed=5)
    x = np.array([[r[f] for f in FEATURES] for r in rows])
    labels = model.predict(x).tolist()  # type: ignore[attr-defined]
    path = tmp / "golden.jsonl"
    path.write_text("".join(
        json.dumps({"id": f"case-{i}", "inputs": r, "expected": int(y), "kind": "label"}) + "\n"
        for i, (r, y) in enumerate(zip(rows, labels, strict=True))
    ))  # fmt: skip
    return path


def _edge_yaml(tmp: Path, endpoint: dict[str, object], golden: Path) -> Path:
    schema = Schema(tuple(FeatureSpec(f, "numeric") for f in FEATURES))
    ref = build_reference(pl.read_parquet(FIX / "reference.parquet"), schema, model="clf")
    save_reference(ref, tmp / "ref.parquet")
    cfg = {
        "collector_id": "edge-versions",
        "lake": {"uri": str(tmp / "lake")},
        "hmac_key": {"env": "MLMON_HMAC_KEY"},
        "state_dir": str(tmp / "state"),
        "allow_http": True,
        "metrics": None,
        "models": [{"name": "clf", "reference": str(tmp / "ref.parquet"),
                    "endpoint": {"protocol": "mlflow", "retries": 0, "timeout": "20s", **endpoint},
                    "golden": {"file": str(golden), "schedule": "every 1m"}}],
    }  # fmt: skip
    path = tmp / "edge.yaml"
    path.write_text(json.dumps(cfg))
    return path


@pytest.fixture
def reader_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLMON_HMAC_KEY", SECRET)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", READER[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", READER[1])


def _check(config: Path, lake: Path, endpoint: str, version: str, registry: str) -> list[str]:
    return ["registry", "check", "--no-audit", "--model", "clf", "--version", version,
            "--endpoint", endpoint, "--config", str(config), "--lake", str(lake),
            "--registry", registry]  # fmt: skip


def test_alias_attribution_and_registry_check_pass_and_fail(
    served: Served, registry_url: str, reader_env: None, tmp_path: Path, capsys
) -> None:
    golden = _golden(tmp_path, served.models["1"])
    alias = {"registry": registry_url, "model": "clf", "alias": "champion"}
    config = _edge_yaml(tmp_path, {"url": served.endpoints["1"].url, "version_alias": alias},
                        golden)  # fmt: skip
    report = Collector(load_config(config, env={})).run_once()
    assert report.golden_checks == 8 and report.golden_passed == 8
    lake = Lake(str(tmp_path / "lake"))
    golden_rows_ = lake.read("golden", model="clf")
    assert golden_rows_.get_column("model_version").to_list() == ["1"] * 8
    latency = lake.read("latency", model="clf")
    assert latency.height > 0 and latency.get_column("model_version").unique().to_list() == ["1"]

    # candidate 2 serves the same model: at least as good as the champion
    args = _check(config, tmp_path / "lake", served.endpoints["2"].url, "2", registry_url)
    assert main(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "baseline: registered version 1 (alias champion), endpoint version '1'" in out
    assert "cases 8 (compared 8, no baseline 0); regressed 0" in out and "PASS" in out

    # candidate 3 answers differently where its threshold differs: those cases regress
    x = np.array([[r[f] for f in FEATURES] for r in golden_rows(8, seed=5)])
    differ = int((served.models["3"].predict(x) != served.models["1"].predict(x)).sum())  # type: ignore[attr-defined]
    assert differ > 0
    args = _check(config, tmp_path / "lake", served.endpoints["3"].url, "3", registry_url)
    assert main(args) == 1
    out = capsys.readouterr().out
    assert f"regressed {differ}," in out and f"FAIL: {differ} case(s) regressed" in out


def test_declared_version_is_written_and_checked(
    served: Served, registry_url: str, reader_env: None, tmp_path: Path, capsys
) -> None:
    golden = _golden(tmp_path, served.models["1"])
    config = _edge_yaml(tmp_path, {"url": served.endpoints["1"].url, "model_version": "1"}, golden)
    Collector(load_config(config, env={})).run_once()
    lake = Lake(str(tmp_path / "lake"))
    assert lake.read("golden", model="clf").get_column("model_version").unique().to_list() == ["1"]
    args = _check(config, tmp_path / "lake", served.endpoints["2"].url, "2", registry_url)
    assert main(args) == 0
    assert "PASS" in capsys.readouterr().out


def test_an_unresolvable_alias_leaves_rows_unattributed(
    served: Served, registry_url: str, reader_env: None, tmp_path: Path, caplog
) -> None:
    golden = _golden(tmp_path, served.models["1"])
    alias = {"registry": registry_url, "model": "clf", "alias": "no-such-alias"}
    config = _edge_yaml(tmp_path, {"url": served.endpoints["1"].url, "version_alias": alias},
                        golden)  # fmt: skip
    report = Collector(load_config(config, env={})).run_once()
    assert report.golden_passed == 8
    rows = Lake(str(tmp_path / "lake")).read("golden", model="clf")
    assert rows.get_column("model_version").to_list() == [None] * 8
    assert "clf@no-such-alias could not be resolved (UnknownAlias)" in caplog.text

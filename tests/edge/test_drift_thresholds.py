"""edge.yaml drift thresholds (issue 19 item 3): per method and per feature, over the
reference's data-driven thresholds; bad names are refused at start, naming what is valid."""

from __future__ import annotations

import json

import polars as pl
import pytest

from mlmon.analysis.lake import Lake
from mlmon.analysis.thresholds import data_driven_thresholds
from mlmon.edge.collector import Collector
from mlmon.edge.config import load_config
from mlmon.errors import ConfigError
from mlmon.lake.references import save_reference
from mlmon.profiles.frame import build_reference
from tests.edge.test_collector import FIX, KEY, _schema, _stream_files


def _edge_yaml(tmp_path, thresholds) -> object:
    base = pl.read_parquet(FIX / "reference.parquet")
    ref = build_reference(base, _schema(), model="risk-model")
    ref = ref.with_drift_thresholds(data_driven_thresholds(base, ref))
    save_reference(ref, tmp_path / "ref.parquet")
    _stream_files(tmp_path / "logs", ["2026-10-03"])  # an undrifted day
    model = {"name": "risk-model", "reference": str(tmp_path / "ref.parquet"),
             "streams": [{"path": str(tmp_path / "logs"), "format": "jsonl", "kind": "tabular"}],
             "drift_thresholds": thresholds}  # fmt: skip
    cfg = {"collector_id": "edge-th", "lake": {"uri": str(tmp_path / "lake")},
           "hmac_key": {"env": "MLMON_HMAC_KEY"}, "state_dir": str(tmp_path / "state"),
           "window": "6h", "metrics": {"port": 0}, "models": [model]}  # fmt: skip
    p = tmp_path / "edge.yaml"
    p.write_text(json.dumps(cfg))
    return p, ref


def test_edge_yaml_thresholds_decide_the_windows_drift_and_alerts(tmp_path, monkeypatch):
    monkeypatch.setenv("MLMON_HMAC_KEY", KEY)
    path, ref = _edge_yaml(tmp_path, {"psi": 50.0, "ward": {"psi": 0.0}})
    c = Collector(load_config(path, env={}))
    assert c.run_once().errors == []
    lake = Lake(str(tmp_path / "lake"))
    drift = lake.read("drift", model="risk-model")
    psi = drift.filter(pl.col("method") == "psi")
    assert psi.height > 0
    for r in psi.iter_rows(named=True):  # edge.yaml: per feature over per method
        assert r["threshold"] == (0.0 if r["feature"] == "ward" else 50.0)
    js = drift.filter(pl.col("method") == "jensen_shannon")
    for r in js.iter_rows(named=True):  # not in edge.yaml: the reference's data-driven ones
        assert r["threshold"] == ref.drift_thresholds[r["feature"]]["jensen_shannon"]
    alerts = lake.read("alerts", model="risk-model")
    assert set(alerts["rule"]) == {"drift:psi"} and set(alerts["feature"]) == {"ward"}


@pytest.mark.parametrize(
    ("thresholds", "where", "message"),
    [
        ({"psy": 0.2}, "load", "'psy', which is not a drift method; methods: chi2, chi_square"),
        ({"age": {"js": 2.0}}, "load", "outside the range of jensen_shannon"),
        ({"agee": {"psi": 0.1}}, "start", "feature 'agee'"),
    ],
)
def test_edge_yaml_bad_thresholds_are_refused_naming_what_is_valid(
    tmp_path, monkeypatch, thresholds, where, message
):
    monkeypatch.setenv("MLMON_HMAC_KEY", KEY)
    path, ref = _edge_yaml(tmp_path, thresholds)
    with pytest.raises(ConfigError) as info:
        Collector(load_config(path, env={}))
    text = str(info.value)
    assert message in text and "drift_thresholds" in text
    if where == "start":
        assert ", ".join(sorted(ref.profiles)) in text

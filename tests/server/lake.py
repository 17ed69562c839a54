"""The lake the server tests read: two models written by the real edge collector against the
demo model server (fixture days 2026-10-01..06), one of them with delayed labels."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import yaml

from mlmon.demo.run import (
    FIXTURES,
    _outcomes,
    _start_model_server,
    _stop,
    _write_labels,
    _write_stream,
)
from mlmon.edge.collector import Collector
from mlmon.edge.config import load_config
from mlmon.lake.references import save_reference
from mlmon.profiles.frame import build_reference
from mlmon.profiles.performance import PerformanceSpec
from mlmon.profiles.schema import Schema

RISK, SEPSIS = "risk-model", "sepsis-model"


def build_server_lake(d: Path) -> Path:
    """Write the lake under ``d / "lake"`` (edge files beside it); returns the lake folder."""
    schema = Schema.from_dict(yaml.safe_load((FIXTURES / "schema.yaml").read_text()))
    baseline = pl.read_parquet(FIXTURES / "reference.parquet")
    spec = PerformanceSpec.make("binary", classes=("0", "1"), thresholds=(0.3,))
    for model in (RISK, SEPSIS):
        ref = build_reference(
            baseline.with_columns(_outcomes(baseline, seed=5)),
            schema,
            model=model,
            performance=spec if model == RISK else None,
            label_column="outcome" if model == RISK else None,
        )
        save_reference(ref, d / f"{model}.parquet")
    _write_stream(d / "log", FIXTURES)
    _write_labels(d / "labels", FIXTURES)
    proc, url = _start_model_server()

    def model(name: str) -> dict[str, object]:
        m: dict[str, object] = {
            "name": name,
            "reference": str(d / f"{name}.parquet"),
            "endpoint": {"url": url, "protocol": "oip_v2", "model_name": "risk", "timeout": "2s"},
            "golden": {"file": str(FIXTURES / "golden.jsonl")},
            "streams": [{"path": str(d / "log"), "format": "jsonl", "kind": "tabular"}],
        }
        if name == RISK:
            m["performance"] = {
                "store_predictions": True,
                "label_horizon": "60d",
                "labels_folder": str(d / "labels"),
                "label_column": "outcome",
            }
        return m

    cfg = {
        "collector_id": "edge-s",
        "lake": {"uri": str(d / "lake")},
        "hmac_key": {"env": "MLMON_SERVER_T_KEY"},
        "state_dir": str(d / "state"),
        "window": "6h",
        "allow_http": True,
        "metrics": None,
        "models": [model(RISK), model(SEPSIS)],
    }
    (d / "edge.yaml").write_text(yaml.safe_dump(cfg))
    os.environ["MLMON_SERVER_T_KEY"] = "s" * 32
    try:
        collector = Collector(
            load_config(d / "edge.yaml"), clock=lambda: datetime(2026, 10, 7, 12, tzinfo=UTC)
        )
        for _ in range(1):
            result = collector.run_once()
            if result.errors:
                raise RuntimeError(f"the edge run failed: {result.errors}")
    finally:
        _stop(proc)
    return d / "lake"

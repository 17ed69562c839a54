"""The lake the report tests read: six fixture days through the real collector and a real
model server, golden checks run on 2026-10-07 with one of 20 expected values made wrong."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import yaml

from mlmon.edge.collector import Collector
from mlmon.edge.config import load_config
from mlmon.lake.references import save_reference
from mlmon.profiles.frame import build_reference
from mlmon.profiles.schema import Schema
from tests.edge.servers import start_server

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "data" / "fixtures"
MODEL = "risk-model"


def build_fixture_lake(d: Path) -> Path:
    """Write the lake under ``d`` (with its edge config and inputs beside it); returns the lake."""
    schema = Schema.from_dict(yaml.safe_load((FIX / "schema.yaml").read_text()))
    ref = build_reference(pl.read_parquet(FIX / "reference.parquet"), schema, model=MODEL)
    save_reference(ref, d / "ref.parquet")
    lines = (FIX / "golden.jsonl").read_text().splitlines()
    bad = json.loads(lines[0])
    bad["expected"] = 0.99
    (d / "golden.jsonl").write_text("\n".join([json.dumps(bad), *lines[1:]]) + "\n")
    logs = d / "logs"
    logs.mkdir()
    for f in sorted((FIX / "inference").glob("*.parquet")):
        pl.read_parquet(f).with_columns(
            pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        ).write_ndjson(logs / f"{f.stem}.jsonl")
    server = start_server(["--protocol", "oip_v2", "--model-version", "1.0"])
    cfg = {"collector_id": "edge-r", "lake": {"uri": str(d / "lake")}, "hmac_key": {"env": "MLMON_T_KEY"},
           "state_dir": str(d / "state"), "window": "6h", "allow_http": True, "metrics": None,
           "models": [{"name": MODEL, "reference": str(d / "ref.parquet"),
                       "endpoint": {"url": server.url, "protocol": "oip_v2", "model_name": "risk"},
                       "golden": {"file": str(d / "golden.jsonl")},
                       "streams": [{"path": str(logs), "format": "jsonl"}]}]}  # fmt: skip
    (d / "edge.yaml").write_text(json.dumps(cfg))
    os.environ["MLMON_T_KEY"] = "k" * 32
    try:
        collector = Collector(
            load_config(d / "edge.yaml", env={}),
            clock=lambda: datetime(2026, 10, 7, 12, tzinfo=UTC),
        )
        assert collector.run_once().errors == []
    finally:
        server.stop()
    return d / "lake"

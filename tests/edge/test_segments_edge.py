"""Segments at the edge (issue 20 item 6): a real `mlmon edge once` writes per-segment profiles.

Each record is counted once per segment column, values outside the reference's
allow-list go to ``__other__`` (a planted canary never reaches the lake), and
the open windows a checkpoint keeps carry their segments across a restart.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import polars as pl
import yaml

from mlmon.analysis.lake import Lake
from mlmon.edge.checkpoint import _windows_from_frame, _windows_to_arrow
from mlmon.lake.references import save_reference
from mlmon.profiles.frame import build_reference, profile_windows
from mlmon.profiles.kinds import OTHER
from mlmon.profiles.schema import Schema

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "data" / "fixtures"
CANARY = "CANARY-WARD-7731-SMITH"


def _reference():
    d = yaml.safe_load((FIX / "schema.yaml").read_text())
    d["segments"] = ["ward", {"name": "sex", "allowed": ["F", "M"]}]
    return build_reference(pl.read_parquet(FIX / "reference.parquet"), Schema.from_dict(d))


def test_edge_once_writes_segment_profiles_without_foreign_values(tmp_path):
    ref = _reference()
    assert ref.schema.segments[0].allowed and CANARY not in ref.schema.segments[0].allowed
    save_reference(ref, tmp_path / "ref.parquet")
    df = pl.read_parquet(FIX / "inference" / "2026-10-01.parquet").head(3000)
    df = df.with_columns(
        pl.when(pl.int_range(pl.len()) % 500 == 0)
        .then(pl.lit(CANARY))
        .otherwise("ward")
        .alias("ward")
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    df.with_columns(pl.col("timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")).write_ndjson(
        logs / "part.jsonl"
    )
    cfg = {
        "collector_id": "edge-seg",
        "lake": {"uri": str(tmp_path / "lake")},
        "hmac_key": {"env": "MLMON_HMAC_KEY"},
        "state_dir": str(tmp_path / "state"),
        "window": "6h",
        "metrics": {"port": 0},
        "models": [{"name": "risk-model", "reference": str(tmp_path / "ref.parquet"),
                    "streams": [{"path": str(logs), "format": "jsonl", "kind": "tabular"}]}],
    }  # fmt: skip
    (tmp_path / "edge.yaml").write_text(json.dumps(cfg))
    env = {**os.environ, "MLMON_HMAC_KEY": "h" * 32}
    done = subprocess.run(
        [sys.executable, "-m", "mlmon.cli", "edge", "once", "--config", str(tmp_path / "edge.yaml")],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    for path in [*(tmp_path / "lake").rglob("*"), *(tmp_path / "state").rglob("*")]:
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path.name
    lake = Lake(str(tmp_path / "lake"))
    seg = lake.segments("risk-model").sort("segment")
    got = dict(seg.iter_rows())
    wards = df.get_column("ward").to_list()
    allowed = set(ref.schema.segments[0].allowed or ())
    want_w = pl.Series([w if w in allowed else OTHER for w in wards]).value_counts()
    assert {f"ward={k}": v for k, v in want_w.iter_rows()} == {
        k: v for k, v in got.items() if k.startswith("ward=")
    }
    assert got[f"ward={OTHER}"] >= 6  # the canaries, counted, never named
    assert sum(v for k, v in got.items() if k.startswith("sex=")) == df.height
    # the drift of each segment, from the lake alone
    per = lake.drift("risk-model", by="all", methods=["psi"], features=["bmi"], segment="ward")
    assert set(per.get_column("segment")) == set(k for k in got if k.startswith("ward="))


def test_open_windows_keep_their_segments_across_a_checkpoint():
    ref = _reference()
    df = pl.read_parquet(FIX / "inference" / "2026-10-01.parquet").head(500)
    windows = tuple(profile_windows(df, ref, window=timedelta(hours=6)))
    table = _windows_to_arrow(windows)
    assert table is not None
    back = _windows_from_frame(pl.from_arrow(table))  # type: ignore[arg-type]
    for w, b in zip(windows, back, strict=True):
        assert b.profile.segments.keys() == w.profile.segments.keys()
        for key, seg in w.profile.segments.items():
            assert b.profile.segments[key].rows == seg.rows
            assert b.profile.segments[key].features["bmi"] == seg.features["bmi"]

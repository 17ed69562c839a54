"""The bundled fixtures are what their script generates, and hold the drift they promise."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import polars as pl

FIX = Path(__file__).resolve().parents[1] / "data" / "fixtures"


def test_fixtures_regenerate_identically(tmp_path):
    spec = importlib.util.spec_from_file_location("make_fixtures", FIX / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    written = module.make(tmp_path)
    assert len(written) == 8
    for path in written:
        rel = path.relative_to(tmp_path)
        if path.suffix == ".jsonl":
            same = path.read_text() == (FIX / rel).read_text()
        else:
            same = pl.read_parquet(path).equals(pl.read_parquet(FIX / rel))
        assert same, f"{rel} differs: rerun make_fixtures.py"


def test_fixture_records_are_utc_with_nulls_and_versions():
    day = pl.read_parquet(FIX / "inference" / "2026-10-05.parquet")
    assert day.schema["timestamp"] == pl.Datetime("ms", "UTC")
    assert day["model_version"].unique().to_list() == ["1.1"]
    assert 0 < day["bmi"].null_count() < day.height * 0.1

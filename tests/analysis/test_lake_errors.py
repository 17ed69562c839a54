"""``Lake`` (and the CLI over it): an unknown model or an empty range is an error; latency by source.

The lake is written by the real writer: one fixture day profiled as ``mlmon profile``
does (source ``batch``), plus probe and stream latency windows with known values.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from mlmon.analysis.lake import LATENCY_SOURCES, Lake
from mlmon.edge.ingest import WindowAccumulator
from mlmon.errors import ConfigError, LakeError, MlmonError, UnknownNameError
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import LATENCY_EDGES_MS, Window, WindowProfile, build_reference
from mlmon.profiles.kinds import NumericProfile
from mlmon.profiles.schema import Schema

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "data" / "fixtures"
MODEL = "risk-model"
PROBE_DAY = datetime(2026, 10, 20, tzinfo=UTC)


@pytest.fixture(scope="module")
def lake_and_latencies(tmp_path_factory) -> tuple[str, np.ndarray, np.ndarray]:
    d = tmp_path_factory.mktemp("lake-errors")
    schema = Schema.from_dict(yaml.safe_load((FIX / "schema.yaml").read_text()))
    ref = build_reference(pl.read_parquet(FIX / "reference.parquet"), schema, model=MODEL)
    uri = (d / "lake").as_uri()
    writer = LakeWriter(uri, collector_id="edge-1")
    writer.write_reference(MODEL, ref)
    acc = WindowAccumulator(ref, window=timedelta(hours=6))
    acc.add(pl.read_parquet(sorted((FIX / "inference").glob("*.parquet"))[0]))
    acc.flush(writer, MODEL, source="batch")
    # probes answer fast, logged requests slowly: the two must not be mixed
    rng = np.random.default_rng(16)
    probe, stream = rng.gamma(2.0, 5.0, 400), rng.gamma(9.0, 40.0, 3000)
    for source, values in (("probe", probe), ("stream", stream)):
        lat = NumericProfile.from_array(values, edges=LATENCY_EDGES_MS)
        window = Window(PROBE_DAY, PROBE_DAY + timedelta(minutes=5), "1.0",
                        WindowProfile({}, latency=lat, rows=len(values)))  # fmt: skip
        writer.write_latency(MODEL, window, source=source)
    return uri, probe, stream


def _mlmon(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlmon.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)  # fmt: skip


def test_unknown_model_names_the_models_of_the_lake(lake_and_latencies):
    lake = Lake(lake_and_latencies[0])
    for call in (
        lambda: lake.drift("risk-modle", "2026-10-01", "2026-11-01"),
        lambda: lake.percentiles("latency_ms", model="risk-modle"),
        lambda: lake.performance("risk-modle"),
    ):
        with pytest.raises(UnknownNameError) as err:
            call()
        text = str(err.value)
        assert "'risk-modle' is not in the lake" in text
        assert "expected one of: risk-model" in text and "check the model name" in text
        assert isinstance(err.value, KeyError) and isinstance(err.value, MlmonError)
    assert lake.known_models() == [MODEL]


def test_a_known_model_with_nothing_in_the_range_is_empty_not_an_error(lake_and_latencies):
    lake = Lake(lake_and_latencies[0])
    assert lake.drift(MODEL, "2026-10-01", "2026-10-02").height > 0  # the data is there
    empty = lake.drift(MODEL, "2027-01-01", "2027-02-01")
    assert empty.height == 0 and "drifted" in empty.columns
    assert (
        lake.percentiles("latency_ms", model=MODEL, start="2027-01-01", end="2027-02-01").height
        == 0
    )


@pytest.mark.parametrize(
    ("start", "end"), [("2026-11-01", "2026-10-01"), ("2026-10-01", "2026-10-01")]
)
def test_start_not_before_end_is_a_config_error(lake_and_latencies, start, end):
    lake = Lake(lake_and_latencies[0])
    for call in (
        lambda: lake.drift(MODEL, start, end),
        lambda: lake.percentiles("latency_ms", model=MODEL, start=start, end=end),
        lambda: lake.performance(MODEL, start, end),
    ):
        with pytest.raises(
            ConfigError, match=f"start {start}T00:00:00\\+00:00 is not before end"
        ) as err:
            call()
        assert isinstance(err.value, ValueError) and "end is exclusive" in str(err.value)


def test_an_empty_lake_is_a_lake_error_naming_the_uri(tmp_path):
    lake = Lake(tmp_path.as_uri())
    with pytest.raises(LakeError, match=r"holds no data for any model.*check the lake URI"):
        lake.drift(MODEL, "2026-10-01", "2026-11-01")


def test_percentiles_by_source_match_numpy(lake_and_latencies):
    uri, probe, stream = lake_and_latencies
    lake = Lake(uri)
    day = {"start": PROBE_DAY, "end": PROBE_DAY + timedelta(days=1), "by": "all"}
    qs = (0.5, 0.95)
    for source, values in (("probe", probe), ("stream", stream)):
        got = lake.percentiles("latency_ms", qs, model=MODEL, source=source, **day)
        exact = np.quantile(values, qs, method="lower")
        assert got["count"].to_list() == [len(values)] * 2
        assert np.all(np.abs(got["value"].to_numpy() - exact) <= 0.01 * exact), (source, got)
    both = lake.percentiles("latency_ms", qs, model=MODEL, **day)
    assert both["count"][0] == len(probe) + len(stream)  # the default merges every source
    # a source with no rows is empty, never the features' values instead
    none = lake.percentiles("latency_ms", qs, model=MODEL, source="batch", **day)
    assert none.height == 0
    with pytest.raises(
        ConfigError, match="latency source 'probes' is unknown; expected one of probe"
    ):
        lake.percentiles("latency_ms", model=MODEL, source="probes")


def test_cli_percentiles_source(lake_and_latencies):
    uri, probe, stream = lake_and_latencies
    day = ["--start", "2026-10-20", "--end", "2026-10-21", "--by", "all", "--format", "json"]
    for source, values in (("probe", probe), ("stream", stream)):
        proc = _mlmon(
            "percentiles", "--lake", uri, "--model", MODEL, "--source", source, "--q", "0.95", *day
        )
        assert proc.returncode == 0, proc.stderr
        row = json.loads(proc.stdout)[0]
        exact = float(np.quantile(values, 0.95, method="lower"))
        assert row["count"] == len(values) and abs(row["value"] - exact) <= 0.01 * exact
    bad = _mlmon("percentiles", "--lake", uri, "--model", MODEL, "--source", "probes")
    assert bad.returncode == 2 and "invalid choice: 'probes'" in bad.stderr
    help_text = _mlmon("percentiles", "--help").stdout
    assert "--source {probe,stream,batch}" in help_text and "default: all merged" in help_text
    assert set(LATENCY_SOURCES) == {"probe", "stream", "batch"}


def test_cli_unknown_model_and_reversed_range_exit_2(lake_and_latencies):
    uri = lake_and_latencies[0]
    for cmd in ("drift", "percentiles", "performance"):
        proc = _mlmon(cmd, "--lake", uri, "--model", "risk-modle")
        assert proc.returncode == 2, (cmd, proc.stderr)
        assert "model 'risk-modle' is not in the lake" in proc.stderr
        assert "expected one of: risk-model" in proc.stderr and "Traceback" not in proc.stderr
    proc = _mlmon(
        "drift", "--lake", uri, "--model", MODEL, "--start", "2026-11-01", "--end", "2026-10-01"
    )
    assert proc.returncode == 2 and "is not before end" in proc.stderr
    ok = _mlmon(
        "drift", "--lake", uri, "--model", MODEL, "--start", "2027-01-01", "--end", "2027-02-01"
    )
    assert ok.returncode == 0, ok.stderr

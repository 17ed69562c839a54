"""Row-count chunks (issue 19 item 5): ``chunk_windows`` and ``mlmon profile --chunk-rows``.

NannyML's ``SizeBasedChunker`` (run in its own environment) is the oracle for which records
fall in which chunk, for each ``incomplete`` choice.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from mlmon.edge.ingest import INCOMPLETE, chunk_windows
from mlmon.errors import ConfigError
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import build_reference, profile_frame
from tests.nannyml_data import nannyml_python

T0 = datetime(2026, 5, 1, tzinfo=UTC)

_NANNYML = r"""
import json, sys
import pandas as pd
from nannyml.chunk import SizeBasedChunker

job = json.load(sys.stdin)
df = pd.DataFrame({"timestamp": pd.to_datetime(job["ts"], unit="us", utc=True), "x": job["x"]})
out = {}
for how in ("keep", "drop", "append"):
    chunker = SizeBasedChunker(chunk_size=job["rows"], incomplete=how, timestamp_column_name="timestamp")
    out[how] = [[len(c.data), float(c.data["x"].min()), float(c.data["x"].max()), float(c.data["x"].sum())]
                for c in chunker.split(df)]
print(json.dumps(out))
"""


def _records(n: int, seed: int = 3, *, distinct: bool = True) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    us = rng.choice(40 * 86_400_000_000, n, replace=False) if distinct else np.zeros(n, np.int64)
    return pl.DataFrame(
        {
            "timestamp": pl.Series(us + int(T0.timestamp() * 1e6)).cast(pl.Datetime("us", "UTC")),
            "x": rng.normal(10, 3, n),
            "ward": rng.choice(["a", "b", "c"], n),
        }
    )


@pytest.fixture(scope="module")
def reference():
    return build_reference(_records(500, seed=1).drop("timestamp"), model="m")


def test_chunks_are_nannyml_size_based_chunks(reference):
    records = _records(103)  # in no particular order; 103 = 10 chunks of 10 and 3 left
    job = {
        "ts": records["timestamp"].dt.epoch("us").to_list(),
        "x": records["x"].to_list(),
        "rows": 10,
    }
    done = subprocess.run(
        [str(nannyml_python()), "-c", _NANNYML], input=json.dumps(job), capture_output=True,
        text=True, timeout=120, check=True, env=dict(os.environ, NML_DISABLE_USAGE_LOGGING="1"),
    )  # fmt: skip
    oracle = json.loads(done.stdout)
    for how in INCOMPLETE:
        got = chunk_windows(records, reference, rows=10, incomplete=how)
        ours = [
            [w.profile.rows, p.min, p.max, p.sum]
            for w in got.windows
            for p in [w.profile.features["x"]]
        ]
        assert len(ours) == len(oracle[how]) == got.chunks, how
        for a, b in zip(ours, oracle[how], strict=True):
            assert a[:3] == b[:3] and a[3] == pytest.approx(b[3], rel=1e-12), how
        assert got.dropped == (3 if how == "drop" else 0)
    assert len(oracle["keep"]) == 11  # the oracle did see an incomplete chunk


def test_each_chunk_is_profiled_exactly_with_its_time_bounds(reference):
    records = _records(57)
    ordered = records.sort("timestamp")
    got = chunk_windows(records, reference, rows=20, incomplete="keep")
    assert got.parts == ["chunk0", "chunk1", "chunk2"] and got.chunks == 3
    for i, w in enumerate(got.windows):
        part = ordered.slice(20 * i, 20)
        assert w.profile.features == profile_frame(part, reference).features
        assert w.start == part["timestamp"][0]
        assert w.end == part["timestamp"][-1] + timedelta(microseconds=1)  # exclusive end
    appended = chunk_windows(records, reference, rows=20, incomplete="append")
    assert [w.profile.rows for w in appended.windows] == [20, 37]
    # fewer records than one chunk: one chunk, which drop drops
    assert [w.profile.rows for w in chunk_windows(records, reference, rows=100).windows] == [57]
    assert chunk_windows(records, reference, rows=100, incomplete="append").chunks == 1
    none = chunk_windows(records, reference, rows=100, incomplete="drop")
    assert none.windows == [] and none.dropped == 57


def test_chunks_at_one_instant_get_their_own_objects(reference, tmp_path):
    """Many records with one timestamp: chunks with equal bounds never overwrite each other."""
    records = _records(30, distinct=False)
    got = chunk_windows(records, reference, rows=10)
    assert len({(w.start, w.end) for w in got.windows}) == 1 and got.chunks == 3
    writer = LakeWriter(str(tmp_path / "lake"), collector_id="b")
    out = writer.write_windows("m", got.windows, reference, source="batch", parts=got.parts)
    profiles = {r.path for r in out if r.table == "profiles"}
    assert len(profiles) == 3


def test_chunk_settings_are_checked(reference):
    with pytest.raises(ConfigError, match="chunk rows must be a whole number >= 1"):
        chunk_windows(_records(5), reference, rows=0)
    with pytest.raises(ConfigError, match="'spill' is not one of keep, drop, append"):
        chunk_windows(_records(5), reference, rows=2, incomplete="spill")

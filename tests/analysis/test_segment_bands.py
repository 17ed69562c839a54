"""Banded segments and empty learned allow-lists (issue 20 item 6, follow-up).

A numeric column (age) declared with band edges becomes the segment ``age_band``
whose values are band labels only; the raw number never becomes a segment value.
A learned segment allow-list that comes out empty is warned about, naming the
column and never a value.
"""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from mlmon.cli import main
from mlmon.errors import SchemaError, SegmentWarning
from mlmon.lake.references import load_reference, save_reference
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import band_codes, build_reference, profile_frame, profile_windows
from mlmon.profiles.schema import Schema, SegmentSpec, band_labels

T0 = datetime(2026, 10, 1, tzinfo=UTC)
EDGES = [0, 18, 40, 65]


def _frame(ages: list[float | None]) -> pl.DataFrame:
    n = len(ages)
    return pl.DataFrame(
        {
            "timestamp": [T0 + timedelta(minutes=i) for i in range(n)],
            "x": np.linspace(0.0, 1.0, n),
            "age": pl.Series(ages, dtype=pl.Float64),
        }
    )


def test_band_labels_and_edge_cases():
    spec = SegmentSpec("age_band", column="age", bands=tuple(EDGES))
    assert spec.allowed == ("<0", "0-17", "18-39", "40-64", "65+", "missing")
    ages = [None, float("nan"), -0.5, 0.0, 17.99, 18.0, 39.0, 39.5, 40.0, 64.0, 65.0, 120.0]
    ages += [float("inf"), float("-inf")]
    got = band_codes(pl.Series("age", ages, dtype=pl.Float64), spec).to_list()
    assert got == ["missing", "missing", "<0", "0-17", "0-17", "18-39", "18-39", "18-39",
                   "40-64", "40-64", "65+", "65+", "65+", "<0"]  # fmt: skip
    # integers, and numbers written as text (a value that is no number is missing)
    text = pl.Series("age", [" 18", "65", "n/a", None, "-3"], dtype=pl.String)
    assert band_codes(text, spec).to_list() == ["18-39", "65+", "missing", "missing", "<0"]
    ints = pl.Series("age", [17, 18, 64, 65], dtype=pl.Int64)
    assert band_codes(ints, spec).to_list() == ["0-17", "18-39", "40-64", "65+"]
    # edges that are not whole numbers, and a band one wide
    assert band_labels((18.5, 25.0, 30.0)) == ("<18.5", "[18.5,25)", "[25,30)", "30+", "missing")
    assert band_labels((17, 18)) == ("<17", "17", "18+", "missing")


def test_raw_values_never_become_segments_python_yaml_and_cli(tmp_path, capsys):
    rng = np.random.default_rng(3)
    ages = [float(a) for a in rng.integers(-2, 100, 400)] + [float("nan")] * 7 + [18.0] * 5
    df = _frame(ages)
    by_py = build_reference(df, bands={"age": EDGES})
    by_yaml = build_reference(
        df,
        Schema.from_dict({"features": [{"name": "x", "kind": "numeric"}], "bands": {"age": EDGES}}),
    )
    full = {"name": "age_band", "column": "age", "bands": EDGES}
    by_entry = build_reference(
        df, Schema.from_dict({"features": [{"name": "x", "kind": "numeric"}], "segments": [full]})
    )
    (tmp_path / "data.parquet").write_bytes(b"")
    df.write_parquet(tmp_path / "data.parquet")
    rc = main(["reference", "build", "--data", str(tmp_path / "data.parquet"), "--out",
               str(tmp_path / "ref.parquet"), "--model", "m", "--band", "age=0,18,40,65"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    by_cli = load_reference(tmp_path / "ref.parquet")
    seg = by_py.schema.segments[-1]
    assert seg.name == "age_band" and seg.source == "age"
    for ref in (by_yaml, by_entry, by_cli):
        assert ref.schema.segments[-1] == seg
    assert by_yaml.reference_id == by_entry.reference_id
    # the reference file keeps the bands (the edge reads them from it)
    save_reference(by_py, tmp_path / "py.parquet")
    back = load_reference(tmp_path / "py.parquet")
    assert back.schema.segments[-1] == seg and back.reference_id == by_py.reference_id
    # profiled per band; a record on an edge is in the band the edge opens
    prof = profile_frame(df, back)
    counts = {k: w.rows for k, w in prof.segments.items() if k.startswith("age_band=")}
    arr = np.array(ages)
    assert counts["age_band=missing"] == 7
    assert counts["age_band=<0"] == int((arr < 0).sum())
    assert counts["age_band=18-39"] == int(((arr >= 18) & (arr < 40)).sum())
    assert counts["age_band=65+"] == int((arr >= 65).sum())
    assert sum(counts.values()) == df.height
    # the lake holds band labels only, never an age
    writer = LakeWriter(str(tmp_path / "lake"), collector_id="bands")
    writer.write_reference("m", back)
    for w in profile_windows(df, back, window=timedelta(hours=6)):
        writer.write_window("m", w, back)
    values = set(
        pl.read_parquet(tmp_path / "lake" / "v1" / "segment_profiles", hive_partitioning=True)
        .get_column("segment_value")
        .to_list()
    )
    assert values <= set(seg.allowed or ()) and "18-39" in values


def test_bad_band_declarations_are_named():
    df = _frame([1.0, 2.0, 3.0])
    with pytest.raises(SchemaError, match=r"'age_band' \(bands of column 'age'\).*increasing"):
        build_reference(df, bands={"age": [0, 40, 18]})
    with pytest.raises(SchemaError, match="at least one finite band edge"):
        build_reference(df, bands={"age": []})
    with pytest.raises(SchemaError, match="finite"):
        build_reference(df, bands={"age": [0, float("inf")]})
    with pytest.raises(SchemaError, match="band edges must be numbers"):
        Schema.from_dict({"features": [{"name": "x", "kind": "numeric"}],
                          "bands": {"age": ["young", "old"]}})  # fmt: skip
    with pytest.raises(SchemaError, match="'bands' must map a numeric column"):
        Schema.from_dict({"features": [{"name": "x", "kind": "numeric"}], "bands": [0, 18]})
    with pytest.raises(SchemaError, match=r"lacks feature column.*years"):
        build_reference(df, bands={"years": EDGES})
    with pytest.raises(SchemaError, match="declared in the schema and in bands="):
        build_reference(
            df,
            Schema.from_dict(
                {"features": [{"name": "x", "kind": "numeric"}], "bands": {"age": EDGES}}
            ),
            bands={"age": EDGES},
        )


def test_an_empty_learned_allow_list_is_warned_naming_the_column(tmp_path, capsys):
    canary = "CANARY-PATIENT-DOE"
    df = _frame([1.0] * 40).with_columns(
        pl.Series("site", [f"{canary}-{i}" for i in range(40)]),
        pl.Series("ward", ["A", "B"] * 20),
    )
    with pytest.warns(SegmentWarning) as caught:
        ref = build_reference(df, segments=["site", "ward"], k=5)
    assert len(caught) == 1  # ward's values are seen 20 times each: no warning for it
    msg = str(caught[0].message)
    assert "'site'" in msg and "empty" in msg and "allowed:" in msg and canary not in msg
    assert caught[0].filename == __file__  # points at the caller's line
    assert ref.schema.segments[0].allowed == ()
    with warnings.catch_warnings():  # a declared list, or a learned one with values: silent
        warnings.simplefilter("error", SegmentWarning)
        build_reference(df, segments=["ward"])
        build_reference(
            df,
            Schema.from_dict(
                {
                    "features": [{"name": "x", "kind": "numeric"}],
                    "segments": [{"name": "site", "allowed": []}],
                }
            ),
        )
    df.write_parquet(tmp_path / "d.parquet")
    rc = main(["reference", "build", "--data", str(tmp_path / "d.parquet"), "--out",
               str(tmp_path / "r.parquet"), "--model", "m", "--segment", "site"])  # fmt: skip
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "warning: segment column 'site'" in out.err and canary not in out.err + out.out
    assert json.dumps(load_reference(tmp_path / "r.parquet").schema.to_dict()).count(canary) == 0

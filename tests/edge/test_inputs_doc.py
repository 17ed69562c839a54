"""``docs/edge-inputs.md`` says what the code does: its examples run, its tables name the code's fields."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl

from mlmon.edge import golden, streams
from mlmon.edge.golden import load_golden_set
from mlmon.edge.streams import ParseContext, RawBatch, TabularFormat

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "edge-inputs.md").read_text()
SECRET = b"k" * 32


def _block(lang: str) -> str:
    found = re.findall(rf"```{lang}\n(.*?)```", DOC, re.S)
    assert len(found) == 1, lang
    return str(found[0])


def _table_names(heading: str) -> list[str]:
    """First-column names (in backticks) of the first table after a heading."""
    part = DOC.split(heading, 1)[1]
    rows = re.findall(r"^\| `([a-z_]+)`", part.split("\n\n|", 1)[-1].split("\n\n", 1)[0], re.M)
    return rows


def test_the_golden_example_loads_as_documented(tmp_path):
    path = tmp_path / "golden.jsonl"
    path.write_text(_block("jsonl"))
    samples = load_golden_set(path)
    assert [s.kind for s in samples] == ["score", "label", "score", "score"]
    assert samples[0].abs_tol == 0.001 and samples[3].rel_tol == 0.05
    assert samples[1].abs_tol == golden.DEFAULT_ABS_TOL and isinstance(samples[2].inputs, list)


def test_the_golden_table_lists_the_codes_fields_and_defaults():
    fields = _table_names("## The golden file")
    assert fields == ["id", "inputs", "expected", "kind", "abs_tol", "rel_tol"]
    assert set(golden.REQUIRED) == {f for f in fields if f"| `{f}`" in DOC and "| yes" in
                                    DOC.split(f"| `{f}`", 1)[1].split("\n", 1)[0]}  # fmt: skip
    assert (
        f"default `{golden.DEFAULT_ABS_TOL}`" in DOC
        and f"default `{golden.DEFAULT_REL_TOL}`" in DOC
    )
    assert all(f"`{k}`" in DOC for k in golden.KINDS)
    lake_columns = re.search(r"lake's `golden` table \((.*?)\)", DOC, re.S)
    assert lake_columns is not None
    assert re.findall(r"`(\w+)`", lake_columns.group(1)) == list(golden.GOLDEN_COLUMNS)


def test_the_stream_tables_name_every_format_column_and_reason():
    for kind in streams.STREAM_FORMATS:
        assert f"### `{kind}`" in DOC
    for fmt, suffixes in streams.FILE_FORMATS.items():
        assert f"`{fmt}` ({', '.join(f'`{s}`' for s in sorted(suffixes, key=DOC.find))})" in DOC
    assert _table_names("### What every format gives the profiler") == list(streams.REASONS)
    for reason, text in streams.REASONS.items():
        assert f"| `{reason}`" in DOC and text in DOC
    tabular = _table_names("### `tabular`")
    contract = ["timestamp", "prediction", "latency_ms", "model_version"]
    assert tabular == [*contract, "request_id"]


def test_the_tabular_example_is_a_record_the_edge_reads():
    record = json.loads(_block("json"))
    ctx = ParseContext(("age", "bmi", "ward"), SECRET, frozenset({"age", "bmi"}))
    frame = TabularFormat(ctx).parse(RawBatch("doc", 1, records=[record]))
    assert frame.height == 1 and not ctx.bad
    row = frame.row(0, named=True)
    assert list(frame.columns) == list(streams.flat_schema(ctx))
    assert row["ward"] == "ICU" and row["prediction"] == 0.12 and row["latency_ms"] == 18.4
    assert row["timestamp"].isoformat() == "2026-10-01T06:00:00.125000+00:00"
    assert row["request_id_hmac"] and "req-8812" not in str(row)
    naive = {**record, "timestamp": "2026-10-01T06:00:00"}
    assert TabularFormat(ctx).parse(RawBatch("doc", 1, records=[naive])).height == 0
    assert ctx.bad["naive_timestamp"] == 1
    assert frame.schema["age"] == pl.Float64


def test_readme_links_it_from_the_edge_section():
    readme = (ROOT / "README.md").read_text()
    edge = readme.split("## The edge collector", 1)[1].split("\n## ", 1)[0]
    assert "docs/edge-inputs.md" in edge

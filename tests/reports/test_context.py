"""The report context: validation, empty frames, worst-of status, save/load round trip."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mlmon.errors import SchemaError, TimestampError
from mlmon.reports.context import (
    FRAME_COLUMNS,
    OPTIONAL_FRAMES,
    Distribution,
    MethodInfo,
    ModelSection,
    ReportContext,
    load,
    save,
)
from tests.reports.synthetic import context, edge_case_context, model_section


def _assert_same(a: ReportContext, b: ReportContext) -> None:
    for name in ("title", "period_start", "period_end", "comparison_start", "comparison_end",
                 "generated_at", "lake_display", "mlmon_version", "methods", "data_handling"):  # fmt: skip
        assert getattr(a, name) == getattr(b, name), name
    assert len(a.models) == len(b.models)
    for ma, mb in zip(a.models, b.models, strict=True):
        for name in ("model", "status", "status_reasons", "notes", "golden_overall"):
            assert getattr(ma, name) == getattr(mb, name), name
        assert {k: (None if v is None or math.isnan(v) else v) for k, v in ma.latency_overall.items()} == mb.latency_overall  # fmt: skip
        for name, fa in ma.frames.items():
            fb = mb.frames[name]
            if fa is None:
                assert fb is None, name
            else:
                assert_frame_equal(fa, fb)
        assert [(d.feature, d.kind) for d in ma.distributions] == [
            (d.feature, d.kind) for d in mb.distributions
        ]
        for da, db in zip(ma.distributions, mb.distributions, strict=True):
            assert_frame_equal(da.frame, db.frame)


def test_save_load_round_trip(tmp_path):
    ctx = context()
    path = save(ctx, tmp_path / "ctx")
    assert path.name == "context.json"
    back = load(tmp_path / "ctx")
    _assert_same(ctx, back)
    assert back.models[0].performance is not None and back.models[1].performance is None
    assert back.period_start.tzinfo is not None
    assert back.models[0].volume.schema["period"] == pl.Datetime("us", "UTC")
    _assert_same(ctx, load(path))  # the json file itself works too
    _assert_same(ctx, ReportContext.load(ctx.save(tmp_path / "again").parent))


def test_round_trip_of_edge_cases_and_nan(tmp_path):
    ctx = edge_case_context()
    m = ModelSection("nan", latency_overall={"p50": math.nan, "p95": 1.0, "p99": None})
    ctx2 = context([*ctx.models, m])
    back = load(save(ctx2, tmp_path).parent)
    _assert_same(ctx2, back)
    assert back.models[-1].latency_overall == {"p50": None, "p95": 1.0, "p99": None}
    assert back.models[2].performance is not None and back.models[2].performance.height == 0
    json.loads((tmp_path / "context.json").read_text())  # strict JSON: no NaN tokens


def test_empty_frames_get_their_columns():
    m = ModelSection("m", drift=pl.DataFrame(), alerts=None)  # type: ignore[arg-type]
    for name, cols in FRAME_COLUMNS.items():
        frame = m.frames[name]
        if name in OPTIONAL_FRAMES:
            assert frame is None
            continue
        assert frame is not None and frame.height == 0 and list(frame.columns) == list(cols)
    assert m.records == 0


def test_frames_are_checked():
    with pytest.raises(SchemaError, match=r"model 'm'\.drift lacks column\(s\) threshold, drifted"):
        ModelSection("m", drift=pl.DataFrame({"feature": ["a"], "method": ["psi"], "value": [0.1],
                                              "count": [3]}))  # fmt: skip
    naive = pl.DataFrame({"period": [datetime(2026, 10, 1)], "count": [1]})
    with pytest.raises(TimestampError, match=r"volume\.period is a naive datetime"):
        ModelSection("m", volume=naive)
    with pytest.raises(SchemaError, match="status 'blue'"):
        ModelSection("m", status="blue")  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="label \\(or x\\), reference, current"):
        Distribution(
            "f", "numeric", pl.DataFrame({"bin": [1], "reference": [1.0], "current": [1.0]})
        )
    with pytest.raises(SchemaError, match="direction 'up'"):
        MethodInfo("psi", ("numeric",), 0.2, "up", "")  # type: ignore[arg-type]


def test_context_times_must_be_utc_aware():
    with pytest.raises(TimestampError, match=r"ReportContext\.period_start"):
        context(period_start=datetime(2026, 10, 1))
    with pytest.raises(SchemaError, match="both comparison_start and comparison_end"):
        context(comparison_end=None)
    with pytest.raises(SchemaError, match="is not after"):
        context(period_end=datetime(2026, 9, 1, tzinfo=UTC))


def test_overall_status_is_the_worst_model():
    green = ModelSection("a", status="green")
    grey = ModelSection("b", status="grey")
    assert context([green, grey]).overall_status == "green"
    assert context([grey]).overall_status == "grey"
    assert context([]).overall_status == "grey"
    assert context([green, model_section("c", drifted=("age",)), grey]).overall_status == "amber"
    assert context().overall_status == "red"


def test_frozen():
    m = ModelSection("a")
    with pytest.raises(AttributeError):
        m.status = "red"  # type: ignore[misc]


def test_load_explains_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="no report context here"):
        load(tmp_path)
    (tmp_path / "context.json").write_text(json.dumps({"format": "other", "version": 9}))
    with pytest.raises(SchemaError, match=r"expected format 'mlmon\.report_context' version 1"):
        load(tmp_path)

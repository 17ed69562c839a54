"""The report's performance part from a real lake: alerts and a changed calibration become reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from mlmon.analysis.lake import Lake
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import build_reference
from mlmon.profiles.performance import PerformanceProfile, PerformanceSpec, performance_to_row
from mlmon.reports.context import _performance

SPEC = PerformanceSpec.make("binary", bins=50)
T0 = datetime(2026, 10, 1, tzinfo=UTC)


def _lake(tmp_path, miscalibrate: float) -> Lake:
    rng = np.random.default_rng(4)
    x = rng.normal(0, 1, 20_000)
    p = 1 / (1 + np.exp(-(1.7 * x - 0.4)))
    y = (rng.random(x.size) < p).astype(int)
    ref = build_reference(pl.DataFrame({"x": x, "score": p, "label": y}), performance=SPEC)
    writer = LakeWriter(str(tmp_path / "lake"), collector_id="t")
    writer.write_performance_reference("m", ref)
    for day in range(7):
        x = rng.normal(0, 1, 2000)
        p_true = 1 / (1 + np.exp(-(1.7 * x - 0.4)))
        y = (rng.random(x.size) < p_true).astype(int)
        s = 1 / (1 + np.exp(-(1.7 * x - 0.4) * miscalibrate))
        prof = PerformanceProfile.from_predictions(SPEC, s).merge(
            PerformanceProfile.from_labels(SPEC, y, s)
        )
        start = T0 + timedelta(days=day)
        row = {"model_version": "1", "window_start": start, "window_end": start + timedelta(days=1),
               "collector_id": "t", "reference_id": ref.reference_id, "role": "labels",
               "batch_id": "b", **performance_to_row(prof)}  # fmt: skip
        writer.write_table("performance", "m", pl.DataFrame([row], infer_schema_length=None),
                           start, start + timedelta(days=1), part="day")  # fmt: skip
    return Lake(str(tmp_path / "lake"))


def test_a_calibrated_model_gives_no_reason(tmp_path) -> None:
    reasons: list[str] = []
    parts = _performance(
        _lake(tmp_path, 1.0), "m", T0, T0 + timedelta(days=7), status_reasons=reasons
    )
    assert parts["performance"] is not None and parts["performance"].height
    assert parts["calibration"] is not None and parts["calibration"].height
    assert reasons == []


def test_an_over_confident_model_is_named_in_the_status(tmp_path) -> None:
    reasons: list[str] = []
    _performance(_lake(tmp_path, 3.0), "m", T0, T0 + timedelta(days=7), status_reasons=reasons)
    assert any("no longer match the model's calibration" in r for r in reasons), reasons


def test_labels_that_joined_nothing_are_counted_and_explained(tmp_path) -> None:
    """A labels batch that arrived after the period and joined nothing: the report's status
    names it, and the performance section says how many records and why."""
    from mlmon.edge.labels import LabelJoinConfig, PredictionStore, join_labels
    from mlmon.reports.context import ModelSection, ReportContext
    from mlmon.reports.render import render_html

    lake = _lake(tmp_path, 1.0)
    rng = np.random.default_rng(8)
    ref = build_reference(pl.DataFrame({"x": rng.random(300), "score": rng.random(300),
                                        "label": rng.integers(0, 2, 300)}), performance=SPEC)  # fmt: skip
    arrived = T0 + timedelta(days=40)  # weeks after the period: labels come late
    store = PredictionStore(tmp_path / "state", timedelta(days=60), clock=lambda: arrived)
    n = 120
    labels = pl.DataFrame({"request_id": [f"x{i}" for i in range(n)], "label": [0, 1] * (n // 2)})
    writer = LakeWriter(str(tmp_path / "lake"), collector_id="t")
    join_labels(labels, model="m", reference=ref, secret=b"k" * 32, writer=writer,
                cfg=LabelJoinConfig(), window=timedelta(hours=1), batch_id="b-none",
                source="outcomes.parquet", store=store)  # fmt: skip
    reasons: list[str] = []
    end = T0 + timedelta(days=7)
    parts = _performance(lake, "m", T0, end, status_reasons=reasons)
    batches = parts["label_batches"]
    assert batches is not None and batches["records"].to_list() == [n]
    assert batches["matched"].to_list() == [0] and batches["unknown_id"].to_list() == [n]
    assert any(
        r.startswith(f"{n} label records arrived in 1 batch(es) and none joined a prediction "
                     f"({n} unknown_id)")
        for r in reasons
    ), reasons  # fmt: skip
    section = ModelSection("m", status="amber", status_reasons=reasons, **parts)
    ctx = ReportContext("r", T0, end, end, "file:///lake", "test", [section])
    page = " ".join(render_html(ctx).split())
    assert f"Labels: {n} records in 1 batch, 0 joined a prediction; the rest did not:" in page
    assert f"<li>{n} unknown_id: Ids with no stored prediction" in page
    assert "No label joined a prediction, so no realized performance can be shown" in page
    # a period that begins after the batch arrived does not show it
    later = _performance(lake, "m", end + timedelta(days=60), end + timedelta(days=67),
                         status_reasons=(none := []))  # fmt: skip
    assert later["label_batches"] is None and none == []

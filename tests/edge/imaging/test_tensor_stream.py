"""Image tensors in a logged KServe CloudEvents stream: statistics in the lake, the tensors nowhere."""

from __future__ import annotations

import base64
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from mlmon.analysis.lake import Lake
from mlmon.edge.collector import Collector
from mlmon.edge.config import load_config
from mlmon.edge.imaging.reference import build_imaging_reference
from mlmon.lake.references import save_reference
from tests.edge.imaging.synth import Acquisition, write_study


def test_logged_image_requests_become_image_statistics(tmp_path: Path) -> None:
    for s in range(3):
        write_study(
            tmp_path / "base", Acquisition(mean=1000 + 20 * s), instances=2, seed=s, name=f"b{s}"
        )
    ref, _ = build_imaging_reference(tmp_path / "base", model="xray", k=2)
    save_reference(ref, tmp_path / "ref.parquet")
    rng = np.random.default_rng(3)
    imgs = [(rng.random((24, 20)) * 4000).astype(np.uint16) for _ in range(3)]
    png = io.BytesIO()
    Image.fromarray(imgs[2]).save(png, format="PNG")
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = []
    for i, inputs in enumerate([
        [{"name": "img", "datatype": "UINT16", "shape": [2, 24, 20],
          "data": np.stack(imgs[:2]).reshape(-1).tolist()}],
        [{"name": "img", "datatype": "BYTES", "shape": [1],
          "data": [base64.b64encode(png.getvalue()).decode()]}],
    ]):  # fmt: skip
        n = inputs[0]["shape"][0]
        lines.append({"id": f"r{i}", "type": "org.kubeflow.serving.inference.request",
                      "time": "2026-10-05T09:00:00Z", "data": {"inputs": inputs}})  # fmt: skip
        lines.append({"id": f"r{i}", "type": "org.kubeflow.serving.inference.response",
                      "time": "2026-10-05T09:00:00.050Z",
                      "data": {"outputs": [{"name": "p", "datatype": "FP32", "shape": [n],
                                            "data": [0.5] * n}]}})  # fmt: skip
    (logs / "events.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    cfg = {
        "collector_id": "edge-x", "lake": {"uri": str(tmp_path / "lake")},
        "hmac_key": {"env": "MLMON_HMAC_KEY"}, "state_dir": str(tmp_path / "state"),
        "window": "1h", "lateness": "0s", "metrics": None, "k_anonymity": 1,
        "models": [{"name": "xray", "reference": str(tmp_path / "ref.parquet"),
                    "streams": [{"path": str(logs), "format": "jsonl", "kind": "kserve_cloudevents"}]}],
    }  # fmt: skip
    (tmp_path / "edge.yaml").write_text(json.dumps(cfg))
    col = Collector(
        load_config(tmp_path / "edge.yaml"), clock=lambda: datetime(2026, 10, 5, 12, tzinfo=UTC)
    )
    report = col.run_once()
    assert report.records == 3 and not report.errors
    prof = Lake(str(tmp_path / "lake")).read("profiles", model="xray")
    mean = prof.filter(pl.col("feature") == "image_mean").row(0, named=True)
    assert mean["count"] == 3
    assert mean["sum"] == pytest.approx(sum(float(im.mean()) for im in imgs), rel=1e-12)
    assert mean["max"] == max(float(im.mean()) for im in imgs)
    rows = prof.filter(pl.col("feature") == "image_rows").row(0, named=True)
    assert rows["min"] == rows["max"] == 24.0
    assert prof.filter(pl.col("feature") == "Manufacturer")["count"][0] == 0  # no DICOM header here

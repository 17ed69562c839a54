"""``notebooks/explore.ipynb`` under papermill: its chart is in the output itself, not loaded from a CDN."""

from __future__ import annotations

import base64
import io
import json
import re
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from PIL import Image

from mlmon.edge.ingest import WindowAccumulator
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import build_reference
from mlmon.profiles.schema import Schema

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "data" / "fixtures"
#: XML namespace names are identifiers, never fetched; any other URL would be.
NAMESPACES = ("http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink")


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> dict:
    """The notebook run by papermill on a real kernel over three fixture days."""
    import papermill

    d = tmp_path_factory.mktemp("explore")
    schema = Schema.from_dict(yaml.safe_load((FIX / "schema.yaml").read_text()))
    ref = build_reference(pl.read_parquet(FIX / "reference.parquet"), schema, model="risk-model")
    writer = LakeWriter(str(d / "lake"), collector_id="batch")
    writer.write_reference("risk-model", ref)
    acc = WindowAccumulator(ref, window=timedelta(hours=6))
    for f in sorted((FIX / "inference").glob("*.parquet"))[2:5]:  # days 3-5: drift starts on day 4
        acc.add(pl.read_parquet(f))
    acc.flush(writer, "risk-model", source="batch")
    out = d / "explore.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / "explore.ipynb"), str(out), kernel_name="python3",
                               progress_bar=False, cwd=str(d),
                               parameters={"lake_uri": str(d / "lake"), "model": "risk-model"})  # fmt: skip
    return json.loads(out.read_text())


def _outputs(nb: dict) -> list[dict]:
    return [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]


def _text(value: object) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def test_no_output_loads_anything_from_the_network(executed):
    outputs = _outputs(executed)
    assert outputs and not [o for o in outputs if o.get("output_type") == "error"]
    text = "\n".join(_text(v) for o in outputs for v in o.get("data", {}).values())
    text += "\n".join(_text(o.get("text", "")) for o in outputs)
    assert not re.search(r"<script[^>]*\bsrc=", text, re.I)
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", text))
    assert urls <= set(NAMESPACES), urls - set(NAMESPACES)  # e.g. cdn.jsdelivr.net/npm/vega


def test_the_chart_is_drawn_inline_as_svg_and_png(executed):
    chart = executed["cells"][-1]
    assert "alt.Chart" in _text(chart["source"])
    bundles = [
        o["data"]
        for o in chart["outputs"]
        if o.get("output_type") in ("display_data", "execute_result")
    ]
    assert len(bundles) == 1
    data = bundles[0]
    svg = _text(data["image/svg+xml"])
    assert svg.lstrip().startswith("<svg") and 'class="mark-line' in svg  # the lines are drawn
    for feature in ("age", "score", "ward"):  # the legend names the features
        assert f">{feature}</text>" in svg
    png = Image.open(io.BytesIO(base64.b64decode(_text(data["image/png"])))).convert("L")
    pixels = np.asarray(png)
    assert png.width > 300 and (pixels < 200).mean() > 0.005  # not a blank image
    assert "text/html" not in data and "application/javascript" not in data

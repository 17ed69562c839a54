"""The edge runs without the report stack: a whole `edge once` cycle never imports jinja2,
weasyprint, altair, vl-convert, papermill, nbformat or mlmon.reports (checked in the process's
sys.modules afterwards; the import-linter contract checks the code statically)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl

from mlmon.lake.references import save_reference
from mlmon.profiles.frame import build_reference

ROOT = Path(__file__).resolve().parents[2]

BLOCKER = """
import sys
from mlmon.cli import main
code = main(["edge", "once", "--config", sys.argv[1]])
report_stack = {"jinja2", "weasyprint", "altair", "vl_convert", "papermill", "nbformat", "mlmon.reports"}
print("IMPORTED", sorted(m for m in sys.modules if m.split(".")[0] in report_stack or m.startswith("mlmon.reports")))
sys.exit(code)
"""


def test_edge_cycle_never_imports_the_report_stack(tmp_path):
    ref = build_reference(pl.DataFrame({"x": [1.0, 2.0, 3.0, 4.0] * 10}))
    save_reference(ref, tmp_path / "ref.parquet")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.jsonl").write_text(
        "\n".join(json.dumps({"timestamp": f"2026-10-01T00:0{i}:00Z", "x": i}) for i in range(5))
        + "\n"
    )
    cfg = {"collector_id": "e", "lake": {"uri": str(tmp_path / "lake")}, "hmac_key": {"env": "K"},
           "state_dir": str(tmp_path / "s"), "metrics": None,
           "models": [{"name": "m", "reference": str(tmp_path / "ref.parquet"),
                       "streams": [{"path": str(logs), "format": "jsonl"}]}]}  # fmt: skip
    (tmp_path / "edge.yaml").write_text(json.dumps(cfg))
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKER, str(tmp_path / "edge.yaml")],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "K": "k" * 32}, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    report = json.loads(lines[-2])
    assert report["records"] == 5 and report["errors"] == []
    assert lines[-1] == "IMPORTED []"

"""The README's main command, end to end, as a newcomer runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pypdf import PdfReader

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_edge_lake_analysis_and_report(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mlmon.cli", "demo", "--lake", str(tmp_path / "lake")],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "edge cycle 1: golden 20/20 passed, 18000 records" in out
    assert "2026-10-04 ┆ age" in out and "2026-10-03 ┆ age" not in out
    pdf = tmp_path / "lake-report" / "risk-model_2026-10.pdf"
    assert pdf.exists() and (tmp_path / "lake-report" / "risk-model_2026-10.ipynb").exists()
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(pdf).pages).split())
    assert "risk-model" in text and "Drifted features: age" in text
    # delayed outcomes for days 1-4: realized and estimated side by side, in the output and the PDF
    assert "10800 outcomes arrived" in out
    perf = [line for line in out.splitlines() if "┆ accuracy" in line]
    assert len(perf) == 6 and "NaN" in perf[-1] and "NaN" not in perf[0]
    assert "Model performance" in text and "Labels have arrived for 10,800 of 18,000" in text
    assert "Calibration" in text

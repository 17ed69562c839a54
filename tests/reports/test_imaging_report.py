"""The monitoring report on an imaging lake names the acquisition attributes that changed (issue 8)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pypdf import PdfReader

from mlmon.reports.runner import run_report
from tests.edge.imaging.synth import DOSE_FEATURES, SCANNER_FEATURES, build_drift_lake


@pytest.fixture(scope="module")
def imaging_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    os.environ.setdefault("MLMON_HMAC_KEY", "imaging-test-hmac-key-0123456789")
    return build_drift_lake(tmp_path_factory.mktemp("imaging-report"))


def _drifted_line(text: str) -> set[str]:
    line = text.split("Drifted features:", 1)[1].split(" (", 1)[0]
    return {w.strip(" ,.") for w in line.split(",") if w.strip()}


# An imaging model records no latency: the report leaves that section empty.
def test_report_names_changed_acquisition_attributes(imaging_lake: Path, tmp_path: Path) -> None:
    start, end = datetime(2026, 10, 3, tzinfo=UTC), datetime(2026, 10, 7, tzinfo=UTC)
    done = run_report(str(imaging_lake), ["chest-ct"], start, end, str(tmp_path),
                      formats=("pdf", "html"))  # fmt: skip
    pdf = " ".join("\n".join(p.extract_text() for p in PdfReader(done["pdf"]).pages).split())
    html = Path(done["html"]).read_text()
    assert "Traceback" not in pdf
    named = _drifted_line(pdf)
    assert named == SCANNER_FEATURES | DOSE_FEATURES  # exactly the planted ones
    for attr in ("Manufacturer", "ConvolutionKernel", "KVP", "image_mean"):
        assert attr in named and attr in html
    unchanged = {"BodyPartExamined", "SliceThickness", "PixelSpacing_0", "Rows", "image_std"}
    assert not named & unchanged

    quiet = run_report(str(imaging_lake), ["chest-ct"], datetime(2026, 10, 1, tzinfo=UTC),
                       datetime(2026, 10, 3, tzinfo=UTC), str(tmp_path / "quiet"),
                       formats=("pdf",))  # fmt: skip
    text = " ".join("\n".join(p.extract_text() for p in PdfReader(quiet["pdf"]).pages).split())
    assert "Drifted features:" not in text or not _drifted_line(text) & (
        SCANNER_FEATURES | DOSE_FEATURES
    )

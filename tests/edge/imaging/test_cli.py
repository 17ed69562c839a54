"""``mlmon imaging reference`` and ``mlmon imaging check`` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mlmon.lake.references import load_reference
from tests.edge.imaging.synth import Acquisition, write_study


def _mlmon(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlmon.cli", *args], capture_output=True, text=True
    )


def test_reference_from_baseline_folder(tmp_path: Path) -> None:
    for s in range(3):
        write_study(
            tmp_path / "base", Acquisition(mean=1000 + 20 * s), instances=2, seed=s, name=f"s{s}"
        )
    (tmp_path / "base" / "readme.txt").write_text("not dicom")
    out = tmp_path / "ref.parquet"
    r = _mlmon("imaging", "reference", str(tmp_path / "base"), "-o", str(out), "--model", "ct",
               "--k", "2", "--attributes", "Modality,Manufacturer,KVP,NumberOfFrames")  # fmt: skip
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["files"] == 7 and summary["read_status"] == {"not_dicom": 1, "ok": 6}
    assert summary["left_out_no_values"] == ["NumberOfFrames"]
    ref = load_reference(out)
    assert {"Modality", "Manufacturer", "KVP", "image_mean", "read_status"} <= set(ref.schema.names)
    assert ref.model == "ct"


def test_reference_refuses_identifying_attribute_and_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    r = _mlmon("imaging", "reference", str(tmp_path / "empty"), "-o", str(tmp_path / "r.parquet"),
               "--attributes", "KVP,PatientID")  # fmt: skip
    assert r.returncode == 2
    assert (
        "PatientID is in PS3.15 Table E.1-1 (0010,0020) Patient ID: Basic Profile Z/D" in r.stderr
    )
    r = _mlmon("imaging", "reference", str(tmp_path / "empty"), "-o", str(tmp_path / "r.parquet"))
    assert r.returncode == 4 and "no readable DICOM instance among 0 files" in r.stderr


def test_check_names_the_rule() -> None:
    r = _mlmon("imaging", "check", "KVP", "PatientBirthDate", "(0011,1001)")
    assert r.returncode == 2
    assert "KVP: allowed" in r.stdout
    assert "PatientBirthDate: refused: PatientBirthDate has VR DA (a date)" in r.stdout
    assert "(0011,1001): refused: (0011,1001) is a private tag" in r.stdout
    r = _mlmon("imaging", "check", "StationName", "--profile-option", "retain_device_identity")
    assert r.returncode == 0 and "StationName: allowed" in r.stdout

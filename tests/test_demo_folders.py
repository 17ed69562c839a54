"""`mlmon demo --lake DIR` never deletes what the demo did not create."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CANARY = "PATIENT-CANARY-7731"


def _demo(lake: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlmon.cli", "demo", "--lake", str(lake), *extra],
                          capture_output=True, text=True, cwd=ROOT, timeout=300, stdin=subprocess.DEVNULL)  # fmt: skip


def test_demo_refuses_a_folder_it_did_not_create_and_changes_nothing(tmp_path):
    lake = tmp_path / "my-data"
    lake.mkdir()
    (lake / "notes.txt").write_text(CANARY)
    proc = _demo(lake)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"{lake} holds 1 entry mlmon did not write (notes.txt)" in proc.stderr
    assert "mlmon demo --lake OTHER" in proc.stderr
    assert CANARY not in proc.stderr + proc.stdout and "Traceback" not in proc.stderr
    assert (lake / "notes.txt").read_text() == CANARY
    assert sorted(p.name for p in lake.iterdir()) == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "my-data"
    ]  # no sibling work folders either

    # the same for the sibling folders the demo would fill
    work = tmp_path / ".lake-demo"
    work.mkdir()
    (work / "edge.yaml").write_text(CANARY)
    proc = _demo(tmp_path / "lake")
    assert (
        proc.returncode == 2
        and f"{work} holds 1 entry mlmon did not write (edge.yaml)" in proc.stderr
    )
    assert not (tmp_path / "lake").exists() and (work / "edge.yaml").read_text() == CANARY
    work.rename(tmp_path / "kept")
    report = tmp_path / "lake-report"
    report.mkdir()
    (report / "risk-model_2026-10.pdf").write_text(CANARY)  # a file under the report's name
    proc = _demo(tmp_path / "lake")
    assert proc.returncode == 2
    assert f"{report} holds 1 entry mlmon did not write (risk-model_2026-10.pdf)" in proc.stderr
    assert not (tmp_path / "lake").exists() and not work.exists()
    assert (report / "risk-model_2026-10.pdf").read_text() == CANARY


# Re-running on its own folders, with a user's files added, is tested with the clock moved five
# years ahead in tests/test_demo.py (one demo run proves both).

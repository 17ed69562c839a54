"""Issue 4 benchmark: monthly report wall time, one model and 20 models in one run.

    python -m benchmarks.bench_report

Uses the compacted 30-day lake of bench_drift_recompute (25 features, 5-minute
windows; built first if missing) and copies its model under 20 names. Times
the whole `mlmon report` command (process start, papermill kernel start,
lake reads, drift, charts, HTML and PDF) for one model, then for 20 models in
one run (one kernel, one notebook), and reports the per-model cost.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "benchmarks" / "data" / "lake30-compacted"
LAKE = ROOT / "benchmarks" / "data" / "lake-report"


def prepare() -> None:
    if not SRC.exists():
        subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_drift_recompute"], check=True, cwd=ROOT
        )
    if (LAKE / "_complete").exists():
        return
    shutil.rmtree(LAKE, ignore_errors=True)
    for table_dir in (SRC / "v1").iterdir():
        for i in range(20):
            src = table_dir / "model=bench"
            if src.exists():
                shutil.copytree(src, LAKE / "v1" / table_dir.name / f"model=bench-{i:02d}")
    (LAKE / "_complete").write_text("ok")


def timed(models: list[str], out: Path) -> float:
    cmd = [
        sys.executable,
        "-m",
        "mlmon.cli",
        "report",
        "--lake",
        str(LAKE),
        "--period",
        "2026-10",
        "--out",
        str(out),
    ]
    for m in models:
        cmd += ["--model", m]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    prepare()
    with tempfile.TemporaryDirectory() as d:
        one = [timed(["bench-00"], Path(d) / f"one{i}") for i in range(3)]
        many = timed([f"bench-{i:02d}" for i in range(20)], Path(d) / "many")
        pages = subprocess.run(
            ["pdfinfo", str(next((Path(d) / "many").glob("*.pdf")))], capture_output=True, text=True
        )
    n_pages = next(
        (line.split()[-1] for line in pages.stdout.splitlines() if line.startswith("Pages")), "?"
    )
    print(json.dumps({"one_model_s": [round(x, 2) for x in one], "one_model_median_s": round(sorted(one)[1], 2),
                      "twenty_models_s": round(many, 2), "per_model_s": round(many / 20, 2),
                      "twenty_model_pdf_pages": n_pages}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()

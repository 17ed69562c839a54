"""NannyML's synthetic datasets as polars frames: the oracle data of issue 19's tests.

They come from NannyML 0.13.1 in its own locked environment (benchmarks/nannyml/.venv, made by
scripts/test-servers.sh), exported once to benchmarks/data/nannyml/ and read from there after.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
NANNYML_PYTHON = ROOT / "benchmarks" / "nannyml" / ".venv" / "bin" / "python"
DATA = ROOT / "benchmarks" / "data" / "nannyml"
DATASETS = ("binary", "multiclass", "car_loan")
PARTS = ("reference", "analysis", "analysis_targets")


def nannyml_python() -> Path:
    """The NannyML environment's interpreter; fails with what to run when it is missing."""
    if not NANNYML_PYTHON.exists():
        raise RuntimeError(
            f"{NANNYML_PYTHON} is missing: run scripts/test-servers.sh (make setup does) to create it"
        )
    return NANNYML_PYTHON


def export() -> Path:
    """Export the datasets to benchmarks/data/nannyml/ unless every file is already there."""
    wanted = [DATA / f"{name}_{part}.parquet" for name in DATASETS for part in PARTS]
    if not all(path.exists() for path in wanted):
        env = dict(os.environ, NML_DISABLE_USAGE_LOGGING="1")
        subprocess.run(
            [
                str(nannyml_python()),
                str(ROOT / "benchmarks" / "nannyml" / "export_datasets.py"),
                str(DATA),
            ],
            check=True,
            env=env,
            stdout=sys.stderr,
        )
    return DATA


def load(name: str) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(reference, analysis, analysis_targets) of one of NannyML's synthetic datasets."""
    if name not in DATASETS:
        raise ValueError(f"unknown NannyML dataset {name!r}; known: {', '.join(DATASETS)}")
    data = export()
    reference, analysis, targets = (
        pl.read_parquet(data / f"{name}_{part}.parquet") for part in PARTS
    )
    return reference, analysis, targets

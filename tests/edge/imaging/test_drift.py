"""Issue 8 section 4: a planted scanner change and dose shift are flagged where planted, nowhere else."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from mlmon.analysis.lake import Lake
from tests.edge.imaging.synth import (
    DAYS,
    DOSE_FEATURES,
    DOSE_FROM,
    SCANNER_FEATURES,
    SCANNER_FROM,
    build_drift_lake,
)

METHODS = ["psi", "jensen_shannon", "ks", "wasserstein"]


@pytest.fixture(scope="module")
def drift_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import os

    os.environ.setdefault("MLMON_HMAC_KEY", "imaging-test-hmac-key-0123456789")
    return build_drift_lake(tmp_path_factory.mktemp("imaging-drift"))


def test_drift_table_flags_planted_changes_only(drift_lake: Path) -> None:
    drift = Lake(str(drift_lake)).drift("chest-ct", by="day", methods=METHODS)
    assert drift.height > 0
    flagged = (
        drift.filter(pl.col("drifted"))
        .with_columns(pl.col("period").dt.strftime("%Y-%m-%d").alias("day"))
        .group_by("day")
        .agg(pl.col("feature").unique())
    )
    by_day = {d: set(f) for d, f in flagged.iter_rows()}
    for day in DAYS:
        want = (SCANNER_FEATURES if day >= SCANNER_FROM else set()) | (
            DOSE_FEATURES if day >= DOSE_FROM else set()
        )
        assert by_day.get(day, set()) == want, day
    # the edge wrote the same verdicts per window into the drift table
    edge = Lake(str(drift_lake)).read("drift", model="chest-ct")
    edge_flagged = set(edge.filter(pl.col("drifted") & pl.col("method").is_in(METHODS))["feature"])
    assert edge_flagged == SCANNER_FEATURES | DOSE_FEATURES

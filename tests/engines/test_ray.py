"""mlmon.ray.profile on a real local Ray runtime equals single-process profiling."""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from polars.testing import assert_frame_equal

import mlmon.ray
from mlmon.lake.writer import LakeWriter
from tests.engines import data

pytestmark = [pytest.mark.ray, pytest.mark.xdist_group("ray")]


def test_ray_blocks_equal_one_process_and_lake_drift(ray_runtime: Any, tmp_path: Path) -> None:
    """Skewed blocks cut into batches (every hour split over several); same windows, same drift."""
    df = data.records(5000, 13)
    ref = data.reference()
    step = timedelta(hours=2)
    table = df.to_arrow()
    # blocks of very different sizes (3,000, 1,000, 450, 50, 500 rows), every hour in several
    cuts = [0, 3000, 4000, 4450, 4500, df.height]
    blocks = [table.slice(a, b - a) for a, b in itertools.pairwise(cuts)]
    ds = ray_runtime.data.from_arrow(blocks)
    assert ds.num_blocks() == len(blocks) == 5
    ray_lake, one_lake = tmp_path / "ray-lake", tmp_path / "one-lake"
    writer = LakeWriter(f"file://{ray_lake}", collector_id="ray")
    writer.write_reference(data.MODEL, ref)
    res = mlmon.ray.profile(ds, ref, model=data.MODEL, window=step, lake=writer, batch_size=1200)
    assert res.rows == df.height
    data.assert_same_windows(res.windows, data.single_process(df, ref, step))
    data.write_single(one_lake, df, ref, step)
    got, want = data.lake_drift(ray_lake), data.lake_drift(one_lake)
    assert want.height > 0
    assert_frame_equal(got, want, check_exact=False, rel_tol=1e-12, abs_tol=1e-12)

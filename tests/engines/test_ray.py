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


CANARY = "mlmon-canary-7f3c2e91d4b8"


def test_ray_blocks_equal_one_process_and_lake_drift(
    ray_runtime: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Skewed blocks cut into batches (every hour split over several); same windows, same drift.

    With segment columns: the same segment profiles and drift per segment. What Ray ships
    to its workers (the ``map_batches`` function and its closure, pickled as Ray pickles it)
    holds no lake URI, no writer and not the canary secret planted in the driver's lake
    options (docs/security.md).
    """
    given: list[Any] = []
    original = ray_runtime.data.Dataset.map_batches

    def record(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        given.append(fn)
        return original(self, fn, *args, **kwargs)

    monkeypatch.setattr(ray_runtime.data.Dataset, "map_batches", record)
    df = data.records(5000, 13)
    ref = data.reference(segments=True)
    step = timedelta(hours=2)
    table = df.to_arrow()
    # blocks of very different sizes (3,000, 1,000, 450, 50, 500 rows), every hour in several
    cuts = [0, 3000, 4000, 4450, 4500, df.height]
    blocks = [table.slice(a, b - a) for a, b in itertools.pairwise(cuts)]
    ds = ray_runtime.data.from_arrow(blocks)
    assert ds.num_blocks() == len(blocks) == 5
    ray_lake, one_lake = tmp_path / "ray-lake", tmp_path / "one-lake"
    # a local lake keeps but never uses its options: the canary stands for a secret
    writer = LakeWriter(
        f"file://{ray_lake}", collector_id="ray", storage_options={"secret": CANARY}
    )
    writer.write_reference(data.MODEL, ref)
    res = mlmon.ray.profile(ds, ref, model=data.MODEL, window=step, lake=writer, batch_size=1200)
    assert res.rows == df.height
    data.assert_same_windows(res.windows, data.single_process(df, ref, step))
    assert len(given) == 1
    shipped = ray_runtime.cloudpickle.dumps(given[0])
    assert b"PartialProfiler" in shipped and b"mlmon.engines.partials" in shipped
    for text in (CANARY, str(ray_lake), "LakeWriter", "storage_options"):
        assert text.encode() not in shipped, text
    assert CANARY not in str(ray_runtime.get_runtime_context().runtime_env)
    data.write_single(one_lake, df, ref, step)
    segments = ref.schema.segment_names
    got, want = data.lake_drift(ray_lake, segments), data.lake_drift(one_lake, segments)
    assert want.height > 0
    assert_frame_equal(got, want, check_exact=False, rel_tol=1e-12, abs_tol=1e-12)

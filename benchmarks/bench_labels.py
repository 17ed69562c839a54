"""Issue 7 benchmark: delayed labels joined at the edge.

    python -m benchmarks.bench_labels [--n 1000000]

A prediction store of ``n`` predictions (binary scores over 30 days of
5-minute windows) is filled through :class:`PredictionStore.add` in
stream-sized batches; then one labels file of ``n`` records (ids, labels,
event times) is joined: HMAC of every id, dedupe, lookup in the store, per
window performance profiles, Parquet rows written to a local lake. Reports
labels/second for the join (file read included) and the store's disk size
per million predictions.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from mlmon.edge.labels import LabelJoinConfig, PredictionStore, join_labels, read_label_file
from mlmon.governance.deid import hmac_ids
from mlmon.lake.writer import LakeWriter
from mlmon.profiles.frame import build_reference
from mlmon.profiles.performance import PerformanceSpec

SECRET = b"s" * 32


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    args = ap.parse_args()
    n = args.n
    rng = np.random.default_rng(0)
    start = datetime(2026, 10, 1, tzinfo=UTC)
    ts = start + pl.Series(rng.integers(0, 30 * 86400 * 10**6, n)).cast(pl.Duration("us"))
    score = rng.random(n)
    ids = [f"acc-{i:09d}" for i in range(n)]
    label = (rng.random(n) < score).astype(np.int64)
    ref_df = pl.DataFrame({"x": rng.normal(size=5000), "score": score[:5000],
                           "label": label[:5000]})  # fmt: skip
    spec = PerformanceSpec.make("binary", bins=100)
    ref = build_reference(ref_df, performance=spec, label_column="label")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = PredictionStore(root / "store", timedelta(days=60))
        t0 = time.perf_counter()
        hashed = hmac_ids(SECRET, ids)
        flat = pl.DataFrame({"request_id_hmac": hashed, "timestamp": ts, "prediction": score,
                             "model_version": ["1.0"] * n})  # fmt: skip
        for part in flat.iter_slices(50_000):
            store.add("risk", part, timedelta(minutes=5), "timestamp")
        t_store = time.perf_counter() - t0
        size = store.size_bytes()
        labels = pl.DataFrame({"request_id": ids, "label": label,
                               "event_time": ts + timedelta(days=20)}).sample(fraction=1.0, seed=1)  # fmt: skip
        labels.write_parquet(root / "labels.parquet")
        writer = LakeWriter(str(root / "lake"), collector_id="bench")
        t0 = time.perf_counter()
        frame, batch = read_label_file(root / "labels.parquet")
        result = join_labels(
            frame, model="risk", reference=ref, secret=SECRET, writer=writer,
            cfg=LabelJoinConfig(time_column="event_time"), window=timedelta(minutes=5),
            batch_id=batch, source="labels.parquet", store=store,
        )  # fmt: skip
        t_join = time.perf_counter() - t0
        assert result.matched == n, result.summary()
    print(f"predictions stored: {n:,} in {t_store:.2f} s ({n / t_store:,.0f}/s, HMAC included)")
    print(f"store on disk: {size / 1e6:.1f} MB = {size / 1e6 / (n / 1e6):.1f} MB per million")
    print(f"labels joined: {n:,} in {t_join:.2f} s = {n / t_join:,.0f} labels/s "
          f"({result.windows:,} windows, {len(result.objects)} objects)")  # fmt: skip


if __name__ == "__main__":
    main()

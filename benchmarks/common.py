"""Shared benchmark data: 25 features (20 numeric, 5 categorical, some nulls) plus latency."""

from __future__ import annotations

import resource
from pathlib import Path

import numpy as np
import polars as pl

N_NUM, N_CAT = 20, 5
CATS = [f"cat_{i}" for i in range(12)]


def make_frame(n: int, seed: int = 0, shift: float = 0.0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    cols: dict[str, object] = {}
    for i in range(N_NUM):
        x = rng.normal(10 * i + shift * (i % 3 == 0), 1 + i % 4, n)
        if i % 5 == 0:
            x[rng.random(n) < 0.02] = np.nan
        cols[f"num_{i:02d}"] = x
    for j in range(N_CAT):
        p = np.arange(1, len(CATS) + 1, dtype=float)[::-1]
        cols[f"cat_{j}"] = pl.Series(rng.choice(CATS, n, p=p / p.sum())).cast(pl.String)
    cols["latency_ms"] = rng.lognormal(3, 0.5, n)
    df = pl.DataFrame(cols)
    nan_cols = [f"num_{i:02d}" for i in range(0, N_NUM, 5)]
    return df.with_columns(pl.col(nan_cols).fill_nan(None))


def numeric_columns() -> list[str]:
    return [f"num_{i:02d}" for i in range(N_NUM)]


def peak_rss_mib() -> float:
    """This process's own peak resident memory (MiB).

    ``VmHWM`` from ``/proc/self/status`` where there is one: ``ru_maxrss`` of a
    child started by ``subprocess`` also counts the parent's memory, because
    Linux keeps the forked copy's high-water mark across ``exec`` (a child of a
    400 MB parent reports 413 MiB there and 14 MiB in ``VmHWM``).
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

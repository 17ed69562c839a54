"""Profiles as Arrow rows, and merging many rows at once.

One row per (window, feature); the same columns serve the lake's
``profiles``, ``references`` and ``latency`` tables (see
:mod:`mlmon.lake.schema`). Categorical counts use ``bin_counts`` aligned
with ``categories`` (the vocabulary, then ``__other__``), so binned drift
methods read both kinds alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from mlmon.errors import ProfileError
from mlmon.profiles.kinds import OTHER, CategoricalProfile, NumericProfile
from mlmon.profiles.sketch import QuantileSketch

__all__ = ["PROFILE_FIELDS", "merge_rows", "profile_from_row", "profiles_to_arrow"]

Profile = NumericProfile | CategoricalProfile

PROFILE_FIELDS: tuple[tuple[pa.Field, str], ...] = (
    (pa.field("feature", pa.string(), nullable=False), "Feature (or metric) name."),
    (pa.field("kind", pa.string(), nullable=False), "Profile kind: numeric or categorical."),
    (
        pa.field("count", pa.int64(), nullable=False),
        "Finite (numeric) or non-null (categorical) values.",
    ),
    (pa.field("nulls", pa.int64(), nullable=False), "Missing values (null)."),
    (pa.field("nans", pa.int64()), "NaN values (numeric), not in count, sums, bins or sketch."),
    (pa.field("pos_inf", pa.int64()), "+inf values (numeric), counted apart."),
    (pa.field("neg_inf", pa.int64()), "-inf values (numeric), counted apart."),
    (pa.field("sum", pa.float64()), "Sum of the finite values (numeric)."),
    (pa.field("sum_sq", pa.float64()), "Sum of squares of the finite values (numeric)."),
    (pa.field("min", pa.float64()), "Smallest finite value (numeric)."),
    (pa.field("max", pa.float64()), "Largest finite value (numeric)."),
    (pa.field("bin_edges", pa.list_(pa.float64())), "Reference bin edges e_0..e_{E-1} (numeric)."),
    (
        pa.field("bin_counts", pa.list_(pa.int64())),
        "Numeric: E+1 counts, (-inf,e_0), [e_0,e_1) ... [e_{E-2},e_{E-1}], (e_{E-1},inf). "
        "Categorical: one count per entry of categories.",
    ),
    (
        pa.field("categories", pa.list_(pa.string())),
        "Categorical: the allow-listed vocabulary then __other__.",
    ),
    (pa.field("sketch_alpha", pa.float64()), "Relative accuracy of the quantile sketch."),
    (
        pa.field("sketch_centre", pa.float64()),
        "Centre subtracted before sketching (reference median).",
    ),
    (pa.field("sketch_zero", pa.int64()), "Sketch: values within 1e-300 of the centre."),
    (
        pa.field("sketch_pos_index", pa.list_(pa.int32())),
        "Sketch: bucket indices above the centre.",
    ),
    (pa.field("sketch_pos_count", pa.list_(pa.int64())), "Sketch: counts for sketch_pos_index."),
    (
        pa.field("sketch_neg_index", pa.list_(pa.int32())),
        "Sketch: bucket indices below the centre.",
    ),
    (pa.field("sketch_neg_count", pa.list_(pa.int64())), "Sketch: counts for sketch_neg_index."),
)
_SCHEMA = pa.schema([f for f, _ in PROFILE_FIELDS])


def _row(name: str, p: Profile) -> dict[str, Any]:
    if isinstance(p, NumericProfile):
        s = p.sketch
        assert s is not None
        empty = p.count == 0
        return {
            "feature": name,
            "kind": "numeric",
            "count": p.count,
            "nulls": p.nulls,
            "nans": p.nans,
            "pos_inf": p.pos_inf,
            "neg_inf": p.neg_inf,
            "sum": p.sum,
            "sum_sq": p.sum_sq,
            "min": None if empty else p.min,
            "max": None if empty else p.max,
            "bin_edges": p.edges.tolist(),
            "bin_counts": p.bins.tolist(),
            "categories": None,
            "sketch_alpha": s.alpha,
            "sketch_centre": p.centre,
            "sketch_zero": s.zero,
            "sketch_pos_index": s.pos_index.tolist(),
            "sketch_pos_count": s.pos_count.tolist(),
            "sketch_neg_index": s.neg_index.tolist(),
            "sketch_neg_count": s.neg_count.tolist(),
        }
    if isinstance(p, CategoricalProfile):
        return {
            "feature": name,
            "kind": "categorical",
            "count": p.count,
            "nulls": p.nulls,
            "bin_counts": p.counts.tolist(),
            "categories": list(p.labels),
        }
    raise ProfileError(f"feature {name!r}: cannot store a {type(p).__name__} as a profile row")


def profiles_to_arrow(items: Iterable[tuple[str, Profile]]) -> pa.Table:
    """One Arrow row per ``(name, profile)``, with the columns of :data:`PROFILE_FIELDS`."""
    rows = [_row(n, p) for n, p in items]
    return pa.Table.from_pylist(rows, schema=_SCHEMA)


def profile_from_row(row: dict[str, Any]) -> Profile:
    """Rebuild a profile from one row (a dict with the :data:`PROFILE_FIELDS` keys)."""
    kind = row["kind"]
    if kind == "categorical":
        cats = list(row["categories"])
        if not cats or cats[-1] != OTHER:
            raise ProfileError(f"feature {row['feature']!r}: categories must end with {OTHER!r}")
        return CategoricalProfile(
            tuple(cats[:-1]), np.asarray(row["bin_counts"], dtype=np.int64), int(row["nulls"])
        )
    if kind == "numeric":
        sketch = QuantileSketch(
            float(row["sketch_alpha"]),
            np.asarray(row["sketch_pos_index"], dtype=np.int32),
            np.asarray(row["sketch_pos_count"], dtype=np.int64),
            np.asarray(row["sketch_neg_index"], dtype=np.int32),
            np.asarray(row["sketch_neg_count"], dtype=np.int64),
            int(row["sketch_zero"]),
        )
        count = int(row["count"])
        return NumericProfile(
            edges=np.asarray(row["bin_edges"], dtype=np.float64),
            centre=float(row["sketch_centre"]),
            alpha=sketch.alpha,
            count=count,
            nulls=int(row["nulls"]),
            nans=int(row["nans"] or 0),
            pos_inf=int(row["pos_inf"] or 0),
            neg_inf=int(row["neg_inf"] or 0),
            sum=float(row["sum"] or 0.0),
            sum_sq=float(row["sum_sq"] or 0.0),
            min=float(row["min"]) if count else np.inf,
            max=float(row["max"]) if count else -np.inf,
            bins=np.asarray(row["bin_counts"], dtype=np.int64),
            sketch=sketch,
        )
    raise ProfileError(f"feature {row.get('feature')!r}: unknown profile kind {kind!r}")


def _flat(col: pa.ChunkedArray | pa.Array, start: int, length: int, dtype: Any) -> np.ndarray:
    part = col.slice(start, length)
    if isinstance(part, pa.ChunkedArray):
        part = part.combine_chunks()
    return part.flatten().to_numpy(zero_copy_only=False).astype(dtype, copy=False)


def merge_rows(
    table: pa.Table | pl.DataFrame, keys: Sequence[str]
) -> list[tuple[tuple[Any, ...], Profile]]:
    """Merge profile rows that share ``keys`` (e.g. period and feature) into one profile each.

    Vectorised: rows are sorted once, then each group's list columns are
    flattened and added with numpy (bincount for sketches, a reshape-sum for
    bins). Groups must hold one kind and one reference (same edges or
    vocabulary); include ``reference_id`` in ``keys`` when a period can span
    references.

    Returns
    -------
    list of ``(key values, merged profile)``, in key order.
    """
    df = table if isinstance(table, pl.DataFrame) else pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    if df.height == 0:
        return []
    df = df.sort(list(keys), nulls_last=True)
    bounds = (
        df.select(list(keys))
        .with_row_index("__row")
        .group_by(list(keys), maintain_order=True)
        .agg(pl.col("__row").first().alias("start"), pl.len().alias("n"))
    )
    tbl = df.to_arrow()
    sums = df.select(
        [pl.col(c).fill_null(0) for c in ("count", "nulls")]
        + [
            pl.col(c).fill_null(0).cast(pl.Int64)
            for c in ("nans", "pos_inf", "neg_inf", "sketch_zero")
        ]
        + [pl.col(c).fill_null(0.0) for c in ("sum", "sum_sq")]
        + [pl.col("min").fill_null(np.inf), pl.col("max").fill_null(-np.inf)]
    )
    num = {c: sums.get_column(c).to_numpy() for c in sums.columns}
    kinds = df.get_column("kind").to_list()
    edges_col, bins_col, cats_col = tbl["bin_edges"], tbl["bin_counts"], tbl["categories"]
    out: list[tuple[tuple[Any, ...], Profile]] = []
    for rec in bounds.iter_rows(named=True):
        s, n = int(rec["start"]), int(rec["n"])
        key = tuple(rec[k] for k in keys)
        kind = kinds[s]
        sl = slice(s, s + n)
        bins_flat = _flat(bins_col, s, n, np.int64)
        if bins_flat.size % n:
            raise ProfileError(
                f"group {key}: profiles have different bin counts; group by reference_id"
            )
        bins = bins_flat.reshape(n, -1).sum(axis=0)
        if kind == "categorical":
            cats = cats_col[s].as_py()
            out.append(
                (key, CategoricalProfile(tuple(cats[:-1]), bins, int(num["nulls"][sl].sum())))
            )
            continue
        sketch = QuantileSketch.merge_arrays(
            float(tbl["sketch_alpha"][s].as_py()),
            _flat(tbl["sketch_pos_index"], s, n, np.int64),
            _flat(tbl["sketch_pos_count"], s, n, np.int64),
            _flat(tbl["sketch_neg_index"], s, n, np.int64),
            _flat(tbl["sketch_neg_count"], s, n, np.int64),
            int(num["sketch_zero"][sl].sum()),
        )
        out.append(
            (
                key,
                NumericProfile(
                    edges=np.asarray(edges_col[s].as_py(), dtype=np.float64),
                    centre=float(tbl["sketch_centre"][s].as_py()),
                    alpha=sketch.alpha,
                    count=int(num["count"][sl].sum()),
                    nulls=int(num["nulls"][sl].sum()),
                    nans=int(num["nans"][sl].sum()),
                    pos_inf=int(num["pos_inf"][sl].sum()),
                    neg_inf=int(num["neg_inf"][sl].sum()),
                    sum=float(num["sum"][sl].sum()),
                    sum_sq=float(num["sum_sq"][sl].sum()),
                    min=float(num["min"][sl].min()),
                    max=float(num["max"][sl].max()),
                    bins=bins,
                    sketch=sketch,
                ),
            )
        )
    return out

"""Issue 19 item 2: Wasserstein-1 and KS of numeric features against scipy on NannyML's datasets.

    python -m benchmarks.bench_discrete [--chunks 10]

Every numeric feature (and model score) of NannyML's three synthetic datasets
(``tests.nannyml_data``): the reference is profiled with
:func:`mlmon.profiles.frame.build_reference`, the analysis period is split into
``--chunks`` equal row-count chunks in timestamp order (NannyML's default
chunking) and each chunk is profiled with :func:`profile_frame`. Each cell's raw
W1 (``statistic`` of ``wasserstein``) and KS ``D`` are compared with
``scipy.stats.wasserstein_distance`` and ``ks_2samp`` on the raw rows, twice:
``quantile`` is the reference built as before issue 19 item 2
(``discrete_max=0``: reference-quantile bins and the sketch for every feature),
``discrete`` is the default (features with at most 50 distinct values profiled
per value). Prints one line per feature and a summary per mode as JSON.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import polars as pl
import scipy.stats as st

from mlmon.analysis.drift import drift_between
from mlmon.profiles.frame import build_reference, profile_frame
from mlmon.profiles.kinds import DISCRETE_MAX
from mlmon.profiles.schema import FeatureSpec, Schema
from tests import nannyml_data

#: Numeric columns NannyML's univariate drift looks at (features and the model's scores).
NUMERIC = {
    "binary": [
        "distance_from_office",
        "gas_price_per_litre",
        "public_transportation_cost",
        "tenure",
        "y_pred_proba",
    ],
    "multiclass": [
        "app_behavioral_score",
        "requested_credit_limit",
        "credit_bureau_score",
        "stated_income",
        "y_pred_proba_prepaid_card",
        "y_pred_proba_highstreet_card",
        "y_pred_proba_upmarket_card",
    ],
    "car_loan": [
        "car_value",
        "debt_to_income_ratio",
        "loan_length",
        "driver_tenure",
        "y_pred_proba",
    ],
}


def chunks(frame: pl.DataFrame, n: int) -> list[pl.DataFrame]:
    """``n`` equal row-count chunks in timestamp order (the last takes the remainder)."""
    frame = frame.sort("timestamp", maintain_order=True)
    size = frame.height // n
    return [frame.slice(i * size, size if i < n - 1 else frame.height - i * size) for i in range(n)]


def cells(n_chunks: int, discrete_max: int) -> list[dict[str, object]]:
    out = []
    for name, columns in NUMERIC.items():
        reference, analysis, _ = nannyml_data.load(name)
        schema = Schema(tuple(FeatureSpec(c, "numeric") for c in columns), latency=None)
        ref = build_reference(reference.select(columns), schema, discrete_max=discrete_max)
        for i, chunk in enumerate(chunks(analysis, n_chunks)):
            window = profile_frame(chunk.select(columns), ref)
            for c in columns:
                rows = {r["method"]: r for r in drift_between(ref.profiles[c], window.features[c])}
                r, x = (
                    reference[c].cast(pl.Float64).to_numpy(),
                    chunk[c].cast(pl.Float64).to_numpy(),
                )
                w1 = st.wasserstein_distance(r, x)
                ks = st.ks_2samp(r, x).statistic
                out.append(
                    {
                        "dataset": name,
                        "feature": c,
                        "chunk": i,
                        "distinct": int(np.unique(r).size),
                        "discrete": ref.profiles[c].support is not None,
                        "w1_rel_err": abs(rows["wasserstein"]["statistic"] - w1) / w1,
                        "w1_std_err": abs(rows["wasserstein"]["statistic"] - w1) / r.std(),
                        "ks_abs_err": abs(rows["ks"]["statistic"] - ks),
                    }
                )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=10)
    args = ap.parse_args()
    summary = {}
    for mode, discrete_max in (("quantile", 0), ("discrete", DISCRETE_MAX)):
        df = pl.DataFrame(cells(args.chunks, discrete_max))
        per_feature = (
            df.group_by("dataset", "feature", maintain_order=True)
            .agg(
                pl.col("distinct").first(),
                pl.col("discrete").first(),
                pl.col("w1_rel_err").max().alias("max_w1_rel_err"),
                (pl.col("w1_rel_err") > 0.02).sum().alias("cells_over_2pct"),
                pl.col("w1_std_err").max().alias("max_w1_err_in_std"),
                pl.col("ks_abs_err").max().alias("max_ks_abs_err"),
            )
            .sort("dataset", "feature")
        )
        print(f"## {mode} (discrete_max={discrete_max})")
        with pl.Config(tbl_rows=50, tbl_cols=12, tbl_width_chars=140, fmt_str_lengths=40):
            print(per_feature)
        discrete = df.filter(pl.col("discrete"))
        summary[mode] = {
            "cells": df.height,
            "max_w1_rel_err": df["w1_rel_err"].max(),
            "cells_over_2pct": int((df["w1_rel_err"] > 0.02).sum()),
            "max_w1_err_in_std": df["w1_std_err"].max(),
            "max_ks_abs_err": df["ks_abs_err"].max(),
            "discrete_cells": discrete.height,
            "discrete_max_w1_rel_err": discrete["w1_rel_err"].max() if discrete.height else None,
            "discrete_max_ks_abs_err": discrete["ks_abs_err"].max() if discrete.height else None,
        }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

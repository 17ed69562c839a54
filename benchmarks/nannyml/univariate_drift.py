"""NannyML 0.13's UnivariateDriftCalculator on one synthetic dataset: every cell as one JSON line.

Runs in NannyML's own environment (benchmarks/nannyml/.venv), on the Parquet files that
export_datasets.py wrote:

    NML_DISABLE_USAGE_LOGGING=1 benchmarks/nannyml/.venv/bin/python \\
        benchmarks/nannyml/univariate_drift.py DATA_DIR DATASET --chunk-size 5000 \\
        --continuous a,b --categorical c,d > cells.jsonl

One line per (period, chunk, feature, method): period (reference or analysis), chunk (index
within the period), start and end (row range within the period), feature, kind (continuous or
categorical), method, value, upper and lower threshold, alert.
"""

import argparse
import json
import math
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
warnings.filterwarnings("ignore")

import nannyml as nml  # noqa: E402
import pandas as pd  # noqa: E402

CONTINUOUS = ["jensen_shannon", "wasserstein", "hellinger", "kolmogorov_smirnov"]
CATEGORICAL = ["chi2", "jensen_shannon", "hellinger"]


def _num(v):
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) else v


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("dataset")
    ap.add_argument("--chunk-size", type=int)
    ap.add_argument("--chunk-number", type=int)
    ap.add_argument("--continuous", required=True)
    ap.add_argument("--categorical", required=True)
    args = ap.parse_args()
    reference = pd.read_parquet(args.data / f"{args.dataset}_reference.parquet")
    analysis = pd.read_parquet(args.data / f"{args.dataset}_analysis.parquet")
    continuous = [c for c in args.continuous.split(",") if c]
    categorical = [c for c in args.categorical.split(",") if c]
    calc = nml.UnivariateDriftCalculator(
        column_names=continuous + categorical,
        treat_as_categorical=categorical,
        treat_as_numerical=continuous,
        continuous_methods=CONTINUOUS,
        categorical_methods=CATEGORICAL,
        chunk_size=args.chunk_size,
        chunk_number=args.chunk_number,
    )
    calc.fit(reference)
    result = calc.calculate(analysis).to_df()
    out = sys.stdout
    for _, row in result.iterrows():
        period = row[("chunk", "chunk", "period")]
        for feature, methods, kind in (
            *((f, CONTINUOUS, "continuous") for f in continuous),
            *((f, CATEGORICAL, "categorical") for f in categorical),
        ):
            for method in methods:
                cell = {
                    "period": period,
                    "chunk": int(row[("chunk", "chunk", "chunk_index")]),
                    "start": int(row[("chunk", "chunk", "start_index")]),
                    "end": int(row[("chunk", "chunk", "end_index")]) + 1,
                    "feature": feature,
                    "kind": kind,
                    "method": method,
                    "value": _num(row[(feature, method, "value")]),
                    "upper": _num(row[(feature, method, "upper_threshold")]),
                    "lower": _num(row[(feature, method, "lower_threshold")]),
                    "alert": bool(row[(feature, method, "alert")]),
                }
                out.write(json.dumps(cell) + "\n")


if __name__ == "__main__":
    main()

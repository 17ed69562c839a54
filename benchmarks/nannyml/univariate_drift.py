"""NannyML 0.13's UnivariateDriftCalculator on datasets: every cell as one JSON line.

Runs in NannyML's own environment (benchmarks/nannyml/.venv), on Parquet files such as those
export_datasets.py wrote; the jobs are a JSON list (one NannyML import for all of them):

    NML_DISABLE_USAGE_LOGGING=1 benchmarks/nannyml/.venv/bin/python \\
        benchmarks/nannyml/univariate_drift.py '[{"data": "DIR", "dataset": "binary",
        "continuous": ["a"], "categorical": ["c"], "chunk_size": 5000}]' > cells.jsonl

Each job reads DIR/{dataset}_reference.parquet and DIR/{dataset}_analysis.parquet; optional
"constant": {method: upper} sets NannyML's ConstantThreshold for those methods and "label" names
the job in the output (default: the dataset). One line per
(dataset, period, chunk, feature, method): period (reference or analysis), chunk (index within
the period), start and end (row range within the period), feature, kind (continuous or
categorical), method, value, upper and lower threshold, alert.
"""

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


def run(job: dict, out) -> None:
    data = Path(job["data"])
    reference = pd.read_parquet(data / f"{job['dataset']}_reference.parquet")
    analysis = pd.read_parquet(data / f"{job['dataset']}_analysis.parquet")
    continuous, categorical = job["continuous"], job["categorical"]
    calc = nml.UnivariateDriftCalculator(
        column_names=continuous + categorical,
        treat_as_categorical=categorical,
        treat_as_numerical=continuous,
        continuous_methods=CONTINUOUS,
        categorical_methods=CATEGORICAL,
        chunk_size=job.get("chunk_size"),
        chunk_number=job.get("chunk_number"),
        thresholds={
            method: nml.thresholds.ConstantThreshold(upper=upper)
            for method, upper in (job.get("constant") or {}).items()
        }
        or None,
    )
    calc.fit(reference)
    result = calc.calculate(analysis).to_df()
    for _, row in result.iterrows():
        period = row[("chunk", "chunk", "period")]
        for feature, methods, kind in (
            *((f, CONTINUOUS, "continuous") for f in continuous),
            *((f, CATEGORICAL, "categorical") for f in categorical),
        ):
            for method in methods:
                cell = {
                    "dataset": job.get("label") or job["dataset"],
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


def main() -> None:
    for job in json.loads(sys.argv[1]):
        run(job, sys.stdout)


if __name__ == "__main__":
    main()

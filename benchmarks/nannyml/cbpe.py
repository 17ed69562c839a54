"""NannyML's CBPE on one of its synthetic datasets, per chunk, as JSON (the oracle of
benchmarks/bench_cbpe_multiclass.py and tests/analysis/test_decisions_multiclass.py).

Runs in NannyML's own environment (benchmarks/nannyml/.venv):
    NML_DISABLE_USAGE_LOGGING=1 benchmarks/nannyml/.venv/bin/python \
        benchmarks/nannyml/cbpe.py DATA_DIR {binary|multiclass} CHUNK_SIZE
Reads DATA_DIR/{name}_{reference,analysis,analysis_targets}.parquet (export_datasets.py)
and prints {"metrics": [...], "chunks": [{"start": i, "end": j, "estimated": {...},
"realized": {...}}]}: the analysis rows [i, j) of each chunk, in file order.
"""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")

import nannyml as nml
import pandas as pd

METRICS = ["roc_auc", "f1", "precision", "recall", "specificity", "accuracy"]


def main(data: Path, name: str, chunk_size: int) -> None:
    reference = pd.read_parquet(data / f"{name}_reference.parquet")
    analysis = pd.read_parquet(data / f"{name}_analysis.parquet")
    targets = pd.read_parquet(data / f"{name}_analysis_targets.parquet")
    if name == "multiclass":
        classes = ["prepaid_card", "highstreet_card", "upmarket_card"]
        kwargs = {
            "y_pred_proba": {c: f"y_pred_proba_{c}" for c in classes},
            "y_true": "y_true",
            "problem_type": "classification_multiclass",
        }
    else:
        kwargs = {
            "y_pred_proba": "y_pred_proba",
            "y_true": "work_home_actual",
            "problem_type": "classification_binary",
        }
    analysis = analysis.merge(targets, on="id", how="left")
    cbpe = nml.CBPE(y_pred="y_pred", metrics=METRICS, chunk_size=chunk_size, **kwargs)
    cbpe.fit(reference)
    res = cbpe.estimate(analysis).filter(period="analysis").to_df()
    chunks = []
    for _, row in res.iterrows():
        chunks.append(
            {
                "start": int(row[("chunk", "start_index")]),
                "end": int(row[("chunk", "end_index")]) + 1,
                "estimated": {m: float(row[(m, "value")]) for m in METRICS},
                "realized": {m: float(row[(m, "realized")]) for m in METRICS},
            }
        )
    json.dump({"metrics": METRICS, "chunks": chunks}, sys.stdout)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]))

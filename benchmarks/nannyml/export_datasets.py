"""Write NannyML's three synthetic datasets as Parquet, for mlmon's oracle tests and benchmarks.

Runs in NannyML's own environment (benchmarks/nannyml/.venv):
    NML_DISABLE_USAGE_LOGGING=1 benchmarks/nannyml/.venv/bin/python \
        benchmarks/nannyml/export_datasets.py OUT_DIR
Writes OUT_DIR/{binary,multiclass,car_loan}_{reference,analysis,analysis_targets}.parquet.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")

import nannyml as nml

LOADERS = {
    "binary": nml.load_synthetic_binary_classification_dataset,
    "multiclass": nml.load_synthetic_multiclass_classification_dataset,
    "car_loan": nml.load_synthetic_car_loan_dataset,
}


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, load in LOADERS.items():
        reference, analysis, targets = load()
        for part, frame in (
            ("reference", reference),
            ("analysis", analysis),
            ("analysis_targets", targets),
        ):
            tmp = (
                out / f".{name}_{part}.{os.getpid()}.parquet.tmp"
            )  # two test workers may export at once
            frame.to_parquet(tmp, index=False)
            tmp.replace(out / f"{name}_{part}.parquet")


if __name__ == "__main__":
    main(Path(sys.argv[1]))

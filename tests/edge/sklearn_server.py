"""A scikit-learn LogisticRegression trained on the fixtures, behind the demo server's protocols.

    python -m tests.edge.sklearn_server --protocol oip_v2 --port 0

Same server code as :mod:`mlmon.demo.model_server`, a real trained model
instead of the fixed coefficients: it answers class labels (0/1).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import polars as pl
from sklearn.linear_model import LogisticRegression

from mlmon.demo.model_server import FEATURES, main

FIX = Path(__file__).resolve().parents[2] / "data" / "fixtures"


def trained() -> LogisticRegression:
    """Fit on the reference fixture: label = score above its median."""
    df = pl.read_parquet(FIX / "reference.parquet").drop_nulls(list(FEATURES))
    x = df.select(FEATURES).to_numpy()
    y = (df["score"].to_numpy() > np.median(df["score"].to_numpy())).astype(int)
    return LogisticRegression(max_iter=1000).fit(x, y)


if __name__ == "__main__":
    model = trained()
    main(sys.argv[1:], model=lambda x: model.predict(x).tolist())

"""The demo model with every score shifted by +0.05: a candidate that regresses on outputs.

python -m tests.registry.shifted_server --protocol oip_v2 --port 0 --model-version 2.0
"""

from __future__ import annotations

import sys

import numpy as np

from mlmon.demo.model_server import main, predict


def shifted(x: np.ndarray) -> list[float]:
    return [round(p + 0.05, 4) for p in predict(x)]


if __name__ == "__main__":
    main(sys.argv[1:], model=shifted)

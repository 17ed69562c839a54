"""Multivariate drift of a period: its mean reconstruction error against the reference band.

The reference's PCA (:mod:`mlmon.profiles.multivariate`) gives every record a
reconstruction error; each window profile holds those errors as one numeric
profile, so a period's mean error is exact (``sum / count`` of the merged
profile) at any window size. A period drifted when its mean is outside the
band stored with the reference (mean of the reference's chunk means plus and
minus ``k`` standard deviations, NannyML's ``DataReconstructionDriftCalculator``
rule).
"""

from __future__ import annotations

import math
from typing import Any

from mlmon.profiles.kinds import NumericProfile
from mlmon.profiles.multivariate import MULTIVARIATE_LABEL, MultivariateModel

__all__ = ["multivariate_row"]


def multivariate_row(model: MultivariateModel, errors: NumericProfile) -> dict[str, Any]:
    """The drift of one period: mean error (NaN without records), band, alert, count, std.

    Examples
    --------
    >>> import numpy as np, polars as pl
    >>> from mlmon.profiles.frame import build_reference, profile_frame
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=400)
    >>> df = pl.DataFrame({"x": x, "y": x + rng.normal(size=400) / 4})
    >>> ref = build_reference(df, multivariate=True)
    >>> shifted = pl.DataFrame({"x": x, "y": -x})  # the same marginals, the correlation flipped
    >>> multivariate_row(ref.multivariate, profile_frame(shifted, ref).multivariate)["alert"]
    True
    """
    value = errors.mean if errors.count else math.nan
    std = errors.std if errors.count > 1 else math.nan
    return {
        "metric": MULTIVARIATE_LABEL,
        "value": value,
        "lower": model.lower,
        "upper": model.upper,
        "alert": model.alert(value),
        "count": errors.count,
        "std": std,
    }

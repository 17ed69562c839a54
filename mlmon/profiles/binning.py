"""How a reference bins its numeric features: reference quantiles, NannyML's rule, fixed edges.

The binned drift methods (PSI, Jensen-Shannon, Hellinger, chi-square on a
numeric feature) compare counts over the reference's bins, so their values
depend on the edges. :func:`build_reference(binning=...)
<mlmon.profiles.frame.build_reference>` chooses the rule; the edges (and the
rule's name) are stored with the reference, and every window is profiled into
the same bins.

==========  =====================================================================
rule        edges
==========  =====================================================================
quantiles   ``FeatureSpec.bins + 1`` reference quantiles, duplicates removed (default)
nannyml     ``np.histogram_bin_edges(reference, bins="doane")``, NannyML 0.13's rule
            for continuous Jensen-Shannon and Hellinger; from 10,000 finite reference
            values the feature also keeps NannyML's 10,000-bin equal-width histogram
            (:mod:`mlmon.profiles.fine`), so Wasserstein and KS equal its estimates
fixed       edges given per feature (``bin_edges={"age": [0, 18, 65, 120]}``)
==========  =====================================================================

Values outside the edges fall in two open overflow bins (empty in the
reference for ``quantiles`` and ``nannyml``), which gives NannyML's values:
it puts them in one extra bin, and a bin empty in the reference adds to
Jensen-Shannon and Hellinger in proportion to its mass however it is split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from mlmon.errors import ConfigError
from mlmon.profiles.fine import NANNYML_MIN_REFERENCE, FineHistogram

__all__ = ["BINNINGS", "binning_items", "check_binning", "check_edges", "reference_bins"]

#: Binning rules by name (``fixed`` is implied by ``bin_edges``).
BINNINGS = ("quantiles", "nannyml")


def check_edges(feature: str, edges: Sequence[float] | np.ndarray) -> np.ndarray:
    """Fixed edges as a float array: finite, strictly increasing, at least two."""
    try:
        arr = np.asarray([float(e) for e in edges], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bin edges of feature {feature!r}: expected numbers") from exc
    if arr.size < 2:
        raise ConfigError(
            f"bin edges of feature {feature!r}: give at least two edges, got {arr.size}"
        )
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"bin edges of feature {feature!r}: every edge must be finite")
    if not np.all(np.diff(arr) > 0):
        raise ConfigError(
            f"bin edges of feature {feature!r}: edges must be strictly increasing, "
            f"got {arr.tolist()[:20]}"
        )
    return arr


def check_binning(binning: str) -> str:
    if binning not in BINNINGS:
        raise ConfigError(
            f"binning {binning!r} is not a binning rule; rules: {', '.join(BINNINGS)} "
            "(fixed edges: bin_edges={feature: [edges]})"
        )
    return binning


def reference_bins(
    finite: np.ndarray,
    *,
    binning: str = "quantiles",
    fixed: Sequence[float] | np.ndarray | None = None,
    feature: str = "",
) -> tuple[np.ndarray, FineHistogram | None] | None:
    """Edges and fine histogram (``nannyml`` from 10,000 values, else None) of one feature.

    ``finite`` are the reference's finite values (at least one). None for
    ``quantiles`` without fixed edges: the caller's quantile rule applies.
    """
    if fixed is not None:
        return check_edges(feature, fixed), None
    if check_binning(binning) == "quantiles":
        return None
    edges = np.histogram_bin_edges(finite, bins="doane")
    fine = FineHistogram.for_reference(finite) if finite.size >= NANNYML_MIN_REFERENCE else None
    return edges, fine


def binning_items(
    bin_edges: Mapping[str, Sequence[float]] | None, numeric: Sequence[str]
) -> dict[str, np.ndarray]:
    """Validate ``bin_edges``: each names a numeric feature; edges as arrays."""
    out: dict[str, np.ndarray] = {}
    for name, edges in (bin_edges or {}).items():
        if name not in numeric:
            raise ConfigError(
                f"bin edges for {name!r}: not a numeric feature of the schema; "
                f"numeric features: {', '.join(numeric) or '(none)'}"
            )
        out[name] = check_edges(name, edges)
    return out

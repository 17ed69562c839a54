"""Multivariate drift from profiles: a PCA fitted on the reference and each record's reconstruction error.

The reference fits one :class:`MultivariateModel` on its records, as NannyML's
``DataReconstructionDriftCalculator`` does:

1. impute missing values: the reference mean (numeric; null, NaN and +/-inf
   are missing) or the reference's most frequent category (categorical);
2. encode each categorical feature as the relative frequency of its category in
   the (imputed) reference. Only the feature's vocabulary is encoded (its
   allow-list, or the learned categories capped at ``max_categories``); every
   other value, including one never seen, shares the frequency of ``__other__``
   in the reference (0 when the reference had none, NannyML's value for an
   unseen category);
3. standardise every column (reference mean and population std; a constant
   column keeps scale 1);
4. fit a PCA keeping the fewest components that explain more than
   ``n_components`` of the variance (a fraction, 0.65 by default) or exactly
   ``n_components`` components (an integer).

A record's *reconstruction error* is the Euclidean distance between its
standardised vector and its projection back from the components. Every
window profile carries the errors of its records as one numeric profile
(:data:`MULTIVARIATE`), which merges like any numeric feature, so the mean
error of any period is exact: the merged profile's ``sum / count``. The
reference band is the mean of the reference's chunk means plus and minus
``k`` standard deviations of them (NannyML's default, ``k = 3``, population
std); a period whose mean error is outside the band drifted.

What is stored is aggregates of the reference: means, standard deviations,
frequencies of the vocabulary's categories and the principal axes. The only
category names are the feature's vocabulary, which the reference profile
already stores; raw values outside it are never kept.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from mlmon.errors import ConfigError, SchemaError
from mlmon.profiles.kinds import CategoricalProfile, NumericProfile
from mlmon.profiles.sketch import DEFAULT_ALPHA

__all__ = [
    "MULTIVARIATE",
    "MULTIVARIATE_LABEL",
    "MultivariateModel",
    "display_name",
    "fit_multivariate",
]

#: Stored name of the reconstruction-error profile in the ``profiles`` and
#: ``references`` tables. Feature names starting with ``__mlmon_`` are refused by
#: :class:`~mlmon.profiles.schema.Schema`, so it never meets a user's column.
MULTIVARIATE = "__mlmon_reconstruction_error"
#: How readers and dashboards show :data:`MULTIVARIATE`.
MULTIVARIATE_LABEL = "multivariate: reconstruction error"

#: Bins of the reference's reconstruction-error profile (reference quantiles).
_ERROR_BINS = 10
#: Rows standardised and projected at a time by :meth:`MultivariateModel.errors`.
_ERROR_ROWS = 1 << 16
#: Multiply-adds of one product below which OpenBLAS keeps to one thread (measured: 4,096
#: rows x 25 features x 8 components stayed on one thread, 8,192 did not).
_BLAS_ONE_THREAD = 1 << 19


def display_name(feature: str) -> str:
    """The plain-words name of a stored feature or metric name (the reserved one only)."""
    return MULTIVARIATE_LABEL if feature == MULTIVARIATE else feature


@dataclass(frozen=True, eq=False)
class MultivariateModel:
    """The PCA fitted on a reference, its reference band and the reference's error profile.

    Build one with :func:`fit_multivariate` (``build_reference(multivariate=True)``
    does). Arrays are per feature in ``features`` order.

    Attributes
    ----------
    features
        The features used, in column order of the fitted matrix.
    kinds
        ``"numeric"`` or ``"categorical"`` per feature.
    fill
        Imputed value of a missing entry: the reference mean (numeric) or the
        frequency of the reference's most frequent category (categorical).
    categories
        Per categorical feature, its vocabulary (the reference profile's).
    frequencies
        Per categorical feature, the relative frequency of each vocabulary entry
        and then of ``__other__`` in the imputed reference.
    means, scales
        The standardisation.
    centre
        PCA mean of the standardised reference (close to 0).
    components
        ``(n_components, len(features))`` principal axes (rows, unit length).
    explained
        Explained variance ratio of each kept component.
    n_components
        The setting the components were chosen with (fraction or count).
    lower, upper
        The reference band of a period's mean error (``lower`` is clipped at 0).
    chunk_means
        Mean reconstruction error of each reference chunk (the band's basis).
    k
        Standard deviations of the band.
    profile
        Numeric profile of the reference records' errors (bins on its quantiles).
    """

    features: tuple[str, ...]
    kinds: tuple[str, ...]
    fill: np.ndarray
    categories: Mapping[str, tuple[str, ...]]
    frequencies: Mapping[str, np.ndarray]
    means: np.ndarray
    scales: np.ndarray
    centre: np.ndarray
    components: np.ndarray
    explained: np.ndarray
    n_components: float
    lower: float
    upper: float
    chunk_means: np.ndarray
    k: float
    profile: NumericProfile

    @functools.cached_property
    def _complement(self) -> np.ndarray:
        """``(len(features), d - k)`` orthonormal basis of the space the components leave out.

        A record's residual after projection onto the components is its projection onto
        this complement, so its error is ``|x @ complement|``: one small matrix product
        and no cancellation (``|x|^2 - |x C^T|^2`` would lose precision for records close
        to the components' subspace).
        """
        d = len(self.features)
        residual = np.eye(d) - self.components.T @ self.components  # a projection
        values, vectors = np.linalg.eigh(residual)
        keep = d - self.components.shape[0]
        return np.ascontiguousarray(vectors[:, values.size - keep :])

    # -- errors ---------------------------------------------------------------------
    def standardised(self, frame: pl.DataFrame) -> np.ndarray:
        """The imputed, encoded and standardised ``(rows, features)`` matrix of ``frame``."""
        x = np.empty((frame.height, len(self.features)), dtype=np.float64, order="F")
        for j, (name, kind) in enumerate(zip(self.features, self.kinds, strict=True)):
            col = frame.get_column(name)
            if kind == "numeric":
                v = col.cast(pl.Float64, strict=False).to_numpy()
                if v.dtype != np.float64:
                    v = v.astype(np.float64)
                v = np.where(np.isfinite(v), v, self.fill[j])
            else:
                v = _encode(col, self.categories[name], self.frequencies[name], self.fill[j])
            x[:, j] = (v - self.means[j]) / self.scales[j]
        return x

    def errors(self, frame: pl.DataFrame) -> np.ndarray:
        """Reconstruction error of every record of ``frame`` (one float per row).

        Vectorised: one matrix product per ``_ERROR_ROWS`` rows, so the working
        memory is bounded whatever the frame's size.
        """
        out = np.empty(frame.height, dtype=np.float64)
        basis = self._complement
        # row blocks small enough for BLAS to stay on one thread: a threaded product of a
        # tall, thin matrix was 10x slower on a busy 2-core machine than one thread
        block = max(64, min(4096, _BLAS_ONE_THREAD // max(1, basis.size)))
        for lo in range(0, frame.height, _ERROR_ROWS):
            xc = self.standardised(frame.slice(lo, _ERROR_ROWS))
            xc -= self.centre
            for b in range(0, xc.shape[0], block):
                residual = xc[b : b + block] @ basis  # coordinates of the residual
                out[lo + b : lo + b + residual.shape[0]] = np.sqrt(
                    np.einsum("ij,ij->i", residual, residual)
                )
        return out

    def profile_errors(self, errors: np.ndarray) -> NumericProfile:
        """The numeric profile of ``errors`` on the reference error profile's bins and sketch."""
        p = self.profile
        return NumericProfile.from_array(errors, edges=p.edges, centre=p.centre, alpha=p.alpha)

    def alert(self, mean_error: float) -> bool:
        """Whether a period's mean error is outside the reference band (NaN never alerts)."""
        if not math.isfinite(mean_error):
            return False
        return not self.lower <= mean_error <= self.upper

    # -- storage --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-able mapping (floats round-trip exactly through ``json``)."""
        return {
            "features": list(self.features),
            "kinds": list(self.kinds),
            "fill": self.fill.tolist(),
            "categories": {n: list(c) for n, c in self.categories.items()},
            "frequencies": {n: f.tolist() for n, f in self.frequencies.items()},
            "means": self.means.tolist(),
            "scales": self.scales.tolist(),
            "centre": self.centre.tolist(),
            "components": self.components.tolist(),
            "explained": self.explained.tolist(),
            "n_components": self.n_components,
            "lower": self.lower,
            "upper": self.upper,
            "chunk_means": self.chunk_means.tolist(),
            "k": self.k,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], profile: NumericProfile) -> MultivariateModel:
        """Rebuild a model from :meth:`to_dict` and the reference's error profile."""
        try:
            features = tuple(str(f) for f in d["features"])
            comps = np.asarray(d["components"], dtype=np.float64).reshape(-1, len(features))
            return cls(
                features=features,
                kinds=tuple(str(k) for k in d["kinds"]),
                fill=np.asarray(d["fill"], dtype=np.float64),
                categories={str(n): tuple(str(c) for c in v) for n, v in d["categories"].items()},
                frequencies={
                    str(n): np.asarray(v, dtype=np.float64) for n, v in d["frequencies"].items()
                },
                means=np.asarray(d["means"], dtype=np.float64),
                scales=np.asarray(d["scales"], dtype=np.float64),
                centre=np.asarray(d["centre"], dtype=np.float64),
                components=comps,
                explained=np.asarray(d["explained"], dtype=np.float64),
                n_components=float(d["n_components"]),
                lower=float(d["lower"]),
                upper=float(d["upper"]),
                chunk_means=np.asarray(d["chunk_means"], dtype=np.float64),
                k=float(d["k"]),
                profile=profile,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SchemaError(
                f"the reference's multivariate model (multivariate_json) is malformed: {exc}; "
                "rebuild the reference with `mlmon reference build --multivariate`"
            ) from exc


def _encode(col: pl.Series, vocab: tuple[str, ...], freqs: np.ndarray, fill: float) -> np.ndarray:
    """Frequency encoding: a vocabulary entry's frequency, ``__other__``'s for anything else."""
    if col.dtype != pl.String:
        col = col.cast(pl.String)
    other = float(freqs[len(vocab)])
    out = col.replace_strict(
        list(vocab), freqs[: len(vocab)].tolist(), default=other, return_dtype=pl.Float64
    ).to_numpy()
    if col.null_count():  # imputed with the reference's most frequent category
        out = np.where(col.is_null().to_numpy(), fill, out)
    return out


def _components_for(ratio: np.ndarray, n_components: float) -> int:
    """Components kept: an integer count, or the fewest explaining more than a fraction."""
    d = ratio.size
    if n_components >= 1:
        if n_components != int(n_components) or n_components > d:
            raise ConfigError(
                f"multivariate n_components {n_components} must be a fraction in (0, 1) or a "
                f"whole number of components from 1 to {d} (the number of features)"
            )
        return int(n_components)
    if not 0 < n_components < 1:
        raise ConfigError(
            f"multivariate n_components {n_components} must be a fraction in (0, 1) or a "
            f"whole number of components from 1 to {d}"
        )
    # scikit-learn's rule: the first count whose cumulative ratio exceeds the fraction
    return min(int(np.searchsorted(np.cumsum(ratio), n_components, side="right")) + 1, d)


def fit_multivariate(
    frame: pl.DataFrame,
    features: Sequence[str],
    profiles: Mapping[str, NumericProfile | CategoricalProfile],
    *,
    n_components: float = 0.65,
    chunks: int = 10,
    k: float = 3.0,
    alpha: float = DEFAULT_ALPHA,
) -> MultivariateModel:
    """Fit the reference PCA on ``frame`` and its band over ``chunks`` consecutive row chunks.

    Parameters
    ----------
    frame
        The reference records.
    features
        Feature columns to use (every feature of the schema, in its order).
    profiles
        The reference profiles of ``features``: a categorical feature's vocabulary
        is its profile's (allow-list, or learned and capped).
    n_components
        Fraction of variance the kept components explain (more than it), or a count.
    chunks
        Consecutive row chunks of the reference for the band (at least 2).
    k
        Standard deviations of the band around the chunks' mean.

    Raises
    ------
    SchemaError
        Fewer than 2 features or ``2 * chunks`` rows.
    ConfigError
        ``n_components`` is neither a fraction in (0, 1) nor a whole count of
        components up to the number of features, or ``k`` is negative.
    """
    names = tuple(features)
    if len(names) < 2:
        raise SchemaError(
            f"multivariate drift needs at least 2 features; the schema has {len(names)}"
        )
    if chunks < 2 or frame.height < 2 * chunks:
        raise SchemaError(
            f"multivariate drift: {frame.height} reference rows cannot make {chunks} chunks of at "
            "least 2 rows (the band needs at least 2 chunks); give fewer chunks or more rows"
        )
    if not math.isfinite(k) or k < 0:
        raise ConfigError(f"multivariate drift: k must be a finite number >= 0, got {k}")
    n = frame.height
    kinds: list[str] = []
    fill = np.empty(len(names))
    categories: dict[str, tuple[str, ...]] = {}
    frequencies: dict[str, np.ndarray] = {}
    means = np.empty(len(names))
    scales = np.empty(len(names))
    for j, name in enumerate(names):
        prof = profiles[name]
        col = frame.get_column(name)
        if isinstance(prof, CategoricalProfile):
            kinds.append("categorical")
            vocab = prof.categories
            # the reference profile counted this column: vocabulary, __other__, nulls
            counts = prof.counts.astype(np.float64)
            nulls = prof.nulls
            mode = int(np.argmax(counts))  # ties: the first in vocabulary order
            counts[mode] += nulls
            freqs = counts / n
            categories[name] = tuple(vocab)
            frequencies[name] = freqs
            fill[j] = freqs[mode]
            v = _encode(col, vocab, freqs, fill[j])
        else:
            kinds.append("numeric")
            v = col.cast(pl.Float64, strict=False).to_numpy().astype(np.float64, copy=False)
            finite = np.isfinite(v)
            if not finite.any():
                raise SchemaError(
                    f"reference column {name!r} has no finite values; multivariate drift "
                    "cannot impute it: drop it from the schema or provide data"
                )
            fill[j] = float(v[finite].mean())
            v = np.where(finite, v, fill[j])
        means[j] = float(v.mean())
        std = float(v.std())
        scales[j] = std if std > 10 * np.finfo(np.float64).eps * max(1.0, abs(means[j])) else 1.0
    empty = NumericProfile(edges=np.array([0.0, 1.0]))
    model = MultivariateModel(
        features=names,
        kinds=tuple(kinds),
        fill=fill,
        categories=categories,
        frequencies=frequencies,
        means=means,
        scales=scales,
        centre=np.zeros(len(names)),
        components=np.zeros((0, len(names))),
        explained=np.zeros(0),
        n_components=float(n_components),
        lower=0.0,
        upper=math.inf,
        chunk_means=np.zeros(0),
        k=float(k),
        profile=empty,
    )
    x = model.standardised(frame)
    centre = x.mean(axis=0)
    x -= centre
    _, sing, vt = np.linalg.svd(x, full_matrices=False)
    var = sing**2 / max(n - 1, 1)
    total = var.sum()
    ratio = var / total if total > 0 else np.full(var.size, 1.0 / var.size)
    kept = _components_for(ratio, n_components)
    model = _replace(model, centre=centre, components=vt[:kept].copy(), explained=ratio[:kept])
    err = model.errors(frame)
    bounds = np.linspace(0, n, chunks + 1).round().astype(int)
    chunk_means = np.array([err[a:b].mean() for a, b in itertools.pairwise(bounds)])
    mid, spread = float(chunk_means.mean()), float(chunk_means.std())
    edges = np.unique(np.quantile(err, np.linspace(0.0, 1.0, _ERROR_BINS + 1)))
    if edges.size < 2:
        edges = np.array([edges[0], np.nextafter(edges[0], np.inf)])
    profile = NumericProfile.from_array(err, edges=edges, centre=float(np.median(err)), alpha=alpha)
    return _replace(
        model,
        lower=max(0.0, mid - k * spread),
        upper=mid + k * spread,
        chunk_means=chunk_means,
        profile=profile,
    )


def _replace(model: MultivariateModel, **changes: Any) -> MultivariateModel:
    return dataclasses.replace(model, **changes)

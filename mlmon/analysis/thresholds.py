"""Drift thresholds per method and per feature, and data-driven thresholds from the reference.

Which threshold a (feature, method) result uses, first match wins:

1. the user's per-feature threshold (``{"age": {"js": 0.1}}``, ``--threshold age:js=0.1``);
2. the user's per-method threshold (``{"psi": 0.2}``, ``--threshold psi=0.2``);
3. the data-driven threshold stored with the reference (:func:`data_driven_thresholds`);
4. the method's default (:data:`mlmon.analysis.drift.METHODS`).

Data-driven thresholds follow NannyML: the reference is split into ``chunks``
consecutive row chunks, each method's value is computed for every chunk
against the rest of the reference (``leave_out=True``, the default; NannyML
compares with the whole reference, ``leave_out=False``), and the threshold is ``mean + k * std``
(population std, ``ddof=0``) clipped to the method's range. ``chunk_size`` cuts
NannyML's chunks instead (:func:`chunk_bounds`); with ``leave_out=False`` on a
reference built with ``binning="nannyml"`` the thresholds are NannyML 0.13's
defaults. P-value methods
(``chi_square``) keep their fixed threshold: a p-value is already calibrated
against sampling noise, and ``mean - k * std`` of p-values is below 0 (never
drifted).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from mlmon.analysis.drift import METHODS, method
from mlmon.errors import ConfigError, UnknownNameError
from mlmon.profiles.frame import Reference, profile_frame, to_polars

__all__ = ["ALIASES", "Thresholds", "chunk_bounds", "data_driven_thresholds", "method_name"]

#: Short names accepted wherever a method is named in thresholds.
ALIASES = {"js": "jensen_shannon", "chi2": "chi_square"}


def method_name(name: str) -> str:
    """The registered method id for ``name`` (an id or an alias of :data:`ALIASES`)."""
    full = ALIASES.get(name, name)
    method(full)  # raises UnknownNameError naming the registered methods
    return full


def _value(where: str, raw: Any, method_id: str) -> float:
    try:
        v = float(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"threshold {where}: expected a number, got {type(raw).__name__}"
        ) from exc
    lo, hi = METHODS[method_id].bounds
    if not math.isfinite(v) or not lo <= v <= hi:
        raise ConfigError(
            f"threshold {where}: {v} is outside the range of {method_id} [{lo}, {hi}]"
        )
    return v


@dataclass(frozen=True)
class Thresholds:
    """User thresholds: per method (all features) and per feature and method.

    Build one with :meth:`parse` from a mapping such as
    ``{"psi": 0.2, "age": {"js": 0.1}}`` (a method id or alias maps to a
    number; any other key is a feature mapping method to number), or with
    :meth:`from_cli` from ``["psi=0.2", "age:js=0.1"]``.
    """

    methods: Mapping[str, float] = field(default_factory=dict)
    features: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: Thresholds | Mapping[str, Any] | None) -> Thresholds:
        """Validate a threshold mapping; unknown methods are an error naming the valid ones."""
        if spec is None:
            return cls()
        if isinstance(spec, Thresholds):
            return spec
        methods: dict[str, float] = {}
        features: dict[str, dict[str, float]] = {}
        for key, raw in spec.items():
            if isinstance(raw, Mapping):
                per = features.setdefault(str(key), {})
                for m, v in raw.items():
                    mid = _method_for(str(m), f"of feature {key!r}")
                    per[mid] = _value(f"{key}:{m}", v, mid)
            else:
                mid = _method_for(str(key), "")
                methods[mid] = _value(str(key), raw, mid)
        return cls(methods, features)

    @classmethod
    def from_cli(cls, items: Iterable[str]) -> Thresholds:
        """Parse ``METHOD=VALUE`` and ``FEATURE:METHOD=VALUE`` items (``--threshold``)."""
        spec: dict[str, Any] = {}
        for item in items:
            target, sep, raw = item.partition("=")
            if not sep or not target or not raw:
                raise ConfigError(
                    f"--threshold {item!r}: expected METHOD=VALUE or FEATURE:METHOD=VALUE, "
                    "e.g. psi=0.2 or age:jensen_shannon=0.1"
                )
            try:
                value = float(raw)
            except ValueError as exc:
                raise ConfigError(f"--threshold {item!r}: {raw!r} is not a number") from exc
            feature, colon, name = target.rpartition(":")
            if colon:
                spec.setdefault(feature, {})[name] = value
            else:
                spec[name] = value
        return cls.parse(spec)

    def check_features(self, reference: Reference) -> None:
        """Every per-feature threshold names a feature of ``reference`` and a method for its kind."""
        for feature, per in self.features.items():
            prof = reference.profiles.get(feature)
            if prof is None:
                raise UnknownNameError(
                    f"threshold for feature {feature!r}: the reference {reference.reference_id} "
                    f"has no such feature; features: {', '.join(sorted(reference.profiles))}"
                )
            for mid in per:
                if prof.kind not in METHODS[mid].kinds:
                    valid = sorted(n for n, m in METHODS.items() if prof.kind in m.kinds)
                    raise ConfigError(
                        f"threshold {feature}:{mid}: {mid} does not apply to the {prof.kind} "
                        f"feature {feature!r}; methods for it: {', '.join(valid)}"
                    )

    def for_feature(
        self, feature: str, stored: Mapping[str, float] | None = None
    ) -> dict[str, float]:
        """The per-method thresholds of one feature: user feature > user method > stored."""
        return {**(stored or {}), **self.methods, **self.features.get(feature, {})}


def _method_for(name: str, where: str) -> str:
    try:
        return method_name(name)
    except UnknownNameError as exc:
        known = sorted([*METHODS, *ALIASES])
        raise UnknownNameError(
            f"threshold {where + ' ' if where else ''}names {name!r}, which is not a drift "
            f"method; methods: {', '.join(known)} (a per-feature threshold is "
            f"{{feature: {{method: value}}}} or FEATURE:METHOD=VALUE)"
        ) from exc


def data_driven_thresholds(
    df: Any,
    reference: Reference,
    *,
    chunks: int = 10,
    k: float = 3.0,
    methods: Iterable[str] | None = None,
    leave_out: bool = True,
    chunk_size: int | None = None,
) -> dict[str, dict[str, float]]:
    """NannyML-style thresholds from the reference data: ``mean + k * std`` over its chunks.

    Parameters
    ----------
    df
        The baseline records the reference was built from (polars, pandas or Arrow).
    reference
        The reference built from ``df``.
    chunks
        Consecutive row chunks (in ``df``'s row order) the reference is split into.
    k
        Standard deviations above the chunks' mean.
    methods
        Method ids (default: every registered method whose drift is "above" the threshold).
    leave_out
        Compare each chunk with the *other* chunks (profiled on the reference's
        bins), as a new window is compared with a reference it is not part of.
        ``False`` compares each chunk with the whole reference, itself included
        (NannyML's convention): the chunk then partly matches itself, the values
        are smaller than a fresh sample's and the thresholds too tight (on 10
        chunks of 2,000 normal rows, 46 of 160 method x feature checks of fresh
        undrifted samples alerted against 0-8 with ``True``).
    chunk_size
        Rows per chunk instead of ``chunks`` equal chunks: NannyML's
        ``chunk_size`` (see :func:`chunk_bounds`; its ``chunk_number=N`` is
        ``chunk_size=rows // N``). With ``leave_out=False`` and a reference built
        with ``binning="nannyml"``, the thresholds are NannyML 0.13's default
        ``StandardDeviationThreshold(std_lower_multiplier=None)`` (upper only).

    Returns
    -------
    dict
        ``{feature: {method: threshold}}``, clipped to each method's range.
    """
    frame = to_polars(df)
    if chunk_size is not None:
        bounds_list = chunk_bounds(frame.height, chunk_size=chunk_size)
        chunks = len(bounds_list)
    if chunks < 2:
        raise ConfigError(f"data-driven thresholds need at least 2 chunks, got {chunks}")
    if chunk_size is None and frame.height < 2 * chunks:
        raise ConfigError(
            f"data-driven thresholds: {frame.height} reference rows cannot make {chunks} chunks "
            "of at least 2 rows; give fewer chunks or more reference rows"
        )
    if not math.isfinite(k) or k < 0:
        raise ConfigError(f"data-driven thresholds: k must be a finite number >= 0, got {k}")
    names = [method_name(m) for m in methods] if methods is not None else list(METHODS)
    names = [n for n in names if METHODS[n].direction == "above"]
    values: dict[tuple[str, str], list[float]] = {}
    if chunk_size is None:
        bounds = np.linspace(0, frame.height, chunks + 1).round().astype(int)
        bounds_list = [(int(a), int(b)) for a, b in itertools.pairwise(bounds)]
    for lo, hi in bounds_list:
        window = profile_frame(frame.slice(int(lo), int(hi - lo)), reference)
        rest = None
        if leave_out:  # the other chunks, on the reference's bins and sketch centre
            others = pl.concat([frame.slice(0, int(lo)), frame.slice(int(hi))])
            rest = profile_frame(others, reference)
        for feature, current in window.features.items():
            ref = reference.profiles[feature] if rest is None else rest.features[feature]
            if current.count == 0 or ref.count == 0:
                continue
            for name in names:
                m = METHODS[name]
                if ref.kind in m.kinds:
                    values.setdefault((feature, name), []).append(m(ref, current))
    out: dict[str, dict[str, float]] = {}
    for (feature, name), vs in values.items():
        arr = np.asarray([v for v in vs if math.isfinite(v)])
        if arr.size < 2:
            continue
        lo_b, hi_b = METHODS[name].bounds
        t = float(np.clip(arr.mean() + k * arr.std(), lo_b, hi_b))
        out.setdefault(feature, {})[name] = t
    return out


def chunk_bounds(
    rows: int, *, chunk_size: int | None = None, chunk_number: int | None = None
) -> list[tuple[int, int]]:
    """Row ranges ``[start, end)`` of NannyML's size- or count-based chunks.

    ``chunk_size``: consecutive chunks of ``chunk_size`` rows, then one with the
    rest (NannyML's ``SizeBasedChunker(incomplete="keep")``). ``chunk_number``:
    the same with ``chunk_size = rows // chunk_number`` (``CountBasedChunker``;
    the rest becomes one more chunk). Give exactly one.

    Examples
    --------
    >>> chunk_bounds(10, chunk_size=4)
    [(0, 4), (4, 8), (8, 10)]
    >>> chunk_bounds(10, chunk_number=3)
    [(0, 3), (3, 6), (6, 9), (9, 10)]
    """
    if (chunk_size is None) == (chunk_number is None):
        raise ConfigError("give exactly one of chunk_size and chunk_number")
    if chunk_number is not None:
        if chunk_number < 1 or chunk_number > rows:
            raise ConfigError(
                f"chunk_number must be between 1 and the {rows} rows, got {chunk_number}"
            )
        chunk_size = rows // chunk_number
    assert chunk_size is not None
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be at least 1 row, got {chunk_size}")
    return [(a, min(a + chunk_size, rows)) for a in range(0, rows, chunk_size)]

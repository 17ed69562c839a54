"""Which columns of the inference records are features, and of what kind."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl

from mlmon.errors import SchemaError

__all__ = ["FeatureSpec", "Schema", "SegmentSpec", "band_labels", "band_segment"]

#: Feature names starting with this are mlmon's own metrics (e.g. the multivariate
#: reconstruction error), so a user's column can never clash with one.
RESERVED_PREFIX = "__mlmon_"

FeatureKind = Literal["numeric", "categorical"]
_KINDS = ("numeric", "categorical")


@dataclass(frozen=True)
class FeatureSpec:
    """One monitored feature.

    Parameters
    ----------
    name
        Column name in the inference records.
    kind
        ``"numeric"`` or ``"categorical"``.
    allowed
        Categorical allow-list. ``None`` learns it from the reference (the
        most frequent categories seen at least ``k`` times).
    bins
        Number of reference-quantile bins (numeric).
    centred
        Sketch ``value - reference median`` (numeric; see DESIGN.md). Turn
        off for positive heavy-tailed metrics such as latencies.
    """

    name: str
    kind: FeatureKind
    allowed: tuple[str, ...] | None = None
    bins: int = 10
    centred: bool = True

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise SchemaError(
                f"feature {self.name!r} has kind {self.kind!r}; expected one of {', '.join(_KINDS)}"
            )
        if self.bins < 1:
            raise SchemaError(f"feature {self.name!r}: bins must be >= 1, got {self.bins}")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.allowed is not None:
            d["allowed"] = list(self.allowed)
        if self.kind == "numeric":
            d["bins"] = self.bins
            d["centred"] = self.centred
        return d


@dataclass(frozen=True)
class SegmentSpec:
    """A segment column: records are profiled per value of it as well as overall.

    Parameters
    ----------
    name
        Column name in the inference records (scanner manufacturer, site, ward,
        an age band, sex). It need not be a feature.
    allowed
        The segment values kept (an allow-list, like a categorical feature's).
        ``None`` learns them from the reference with the rule of learned
        vocabularies (values seen at least ``k`` times); a
        :class:`~mlmon.profiles.frame.Reference` always holds the resolved list.
        Any other value, and a missing one, is profiled in the segment
        ``__other__``: a value outside the list never reaches the lake.
    column
        With ``bands``: the numeric column the bands are cut from (``age``); the
        segment is ``name`` (``age_band``) and its values are band labels only.
    bands
        Band edges of ``column``, strictly increasing finite numbers
        (``(0, 18, 40, 65)``): bands are ``[edge, next edge)``, labelled ``18-39``
        when every edge is a whole number (``[18.5,25)`` otherwise), ``<0`` below
        the first edge, ``65+`` from the last, and ``missing`` for a null, NaN or
        a value that is no number (see :func:`band_labels`). The raw value never
        becomes a segment.
    """

    name: str
    allowed: tuple[str, ...] | None = None
    column: str | None = None
    bands: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not self.name or "=" in self.name:
            raise SchemaError(
                f"segment column {self.name!r}: a segment column name must be non-empty and "
                "without '=' (segments are named column=value); rename the column"
            )
        if self.bands is None:
            if self.column is not None and self.column != self.name:
                raise SchemaError(
                    f"segment {self.name!r}: 'column' is for banded segments; add 'bands' "
                    "(e.g. bands: [0, 18, 40, 65]) or drop 'column'"
                )
            return
        where = f"segment {self.name!r} (bands of column {self.source!r})"
        try:
            edges = tuple(float(e) for e in self.bands)
        except (TypeError, ValueError) as exc:
            raise SchemaError(f"{where}: band edges must be numbers, e.g. [0, 18, 40, 65]") from exc
        if not edges or any(not math.isfinite(e) for e in edges):
            raise SchemaError(f"{where}: give at least one finite band edge, e.g. [0, 18, 40, 65]")
        if any(b <= a for a, b in itertools.pairwise(edges)):
            raise SchemaError(f"{where}: band edges must be strictly increasing")
        object.__setattr__(self, "bands", edges)
        object.__setattr__(self, "allowed", band_labels(edges))

    @property
    def source(self) -> str:
        """The records' column the segment is read from (``column`` for bands, else ``name``)."""
        return self.column or self.name

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name}
        if self.bands is not None:  # the labels follow from the edges
            d["column"] = self.source
            d["bands"] = list(self.bands)
        elif self.allowed is not None:
            d["allowed"] = list(self.allowed)
        return d


#: Band label of a null, NaN or non-numeric value of a banded segment's column.
BAND_MISSING = "missing"


def _edge_text(e: float) -> str:
    return str(int(e)) if float(e).is_integer() else f"{e:g}"


def band_labels(edges: tuple[float, ...]) -> tuple[str, ...]:
    """Labels of the bands of ``edges``: below the first, each ``[lo, hi)``, from the last, missing.

    Whole-number edges give ``lo-(hi-1)`` (ages in completed years: ``18-39``; a band one
    wide is its one value), others ``[lo,hi)``.

    Examples
    --------
    >>> band_labels((0, 18, 40, 65))
    ('<0', '0-17', '18-39', '40-64', '65+', 'missing')
    >>> band_labels((18.5, 25.0))
    ('<18.5', '[18.5,25)', '25+', 'missing')
    """
    whole = all(float(e).is_integer() for e in edges)
    out = [f"<{_edge_text(edges[0])}"]
    for lo, hi in itertools.pairwise(edges):
        if not whole:
            out.append(f"[{_edge_text(lo)},{_edge_text(hi)})")
        elif hi - lo == 1:
            out.append(_edge_text(lo))
        else:
            out.append(f"{_edge_text(lo)}-{_edge_text(hi - 1)}")
    out.append(f"{_edge_text(edges[-1])}+")
    out.append(BAND_MISSING)
    return tuple(out)


def band_segment(column: str, edges: Any) -> SegmentSpec:
    """The segment ``{column}_band`` of ``column`` cut at ``edges`` (``bands: {age: [...]}``)."""
    if isinstance(edges, str | bytes) or not hasattr(edges, "__iter__"):
        raise SchemaError(
            f"bands of column {column!r}: give a list of edges, e.g. {column}: [0, 18, 40, 65]"
        )
    return SegmentSpec(f"{column}_band", column=str(column), bands=tuple(edges))


_NUMERIC_DTYPES: tuple[type[pl.DataType], ...] = (pl.Float32, pl.Float64, pl.Int8, pl.Int16)
_NUMERIC_DTYPES += (pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64, pl.Decimal)
_CATEGORICAL_DTYPES = (pl.String, pl.Categorical, pl.Enum, pl.Boolean)


@dataclass(frozen=True)
class Schema:
    """The monitored features plus the roles of the non-feature columns.

    ``timestamp`` (prediction time, UTC), ``latency`` (ms, profiled into the
    ``latency`` table), ``version`` (the model version the record reports)
    and every column in ``ignore`` (request ids, payload blobs) are never
    profiled as features.
    """

    features: tuple[FeatureSpec, ...]
    timestamp: str = "timestamp"
    latency: str | None = "latency_ms"
    version: str | None = "model_version"
    ignore: tuple[str, ...] = field(default=("request_id",))
    #: Segment columns (:class:`SegmentSpec`): profiles per segment value as well as overall.
    segments: tuple[SegmentSpec, ...] = ()

    def __post_init__(self) -> None:
        seg = [s.name for s in self.segments]
        if len(set(seg)) != len(seg):
            raise SchemaError(f"segment columns listed twice in the schema: {', '.join(seg)}")
        roles = {self.timestamp, self.latency, self.version, *self.ignore} - {None}
        clash = sorted((set(seg) | {s.source for s in self.segments}) & roles)
        if clash:
            raise SchemaError(
                f"segment column(s) {', '.join(clash)} are also the timestamp, latency, version "
                "or an ignored column; a segment must be a column of its own"
            )
        names = [f.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SchemaError(f"features listed twice in the schema: {', '.join(dupes)}")
        if not names:
            raise SchemaError("the schema has no features; list at least one")
        reserved = [n for n in names if n.startswith(RESERVED_PREFIX)]
        if reserved:
            raise SchemaError(
                f"feature name(s) {', '.join(reserved)} start with {RESERVED_PREFIX!r}, which "
                "mlmon reserves for its own metrics; rename the column(s)"
            )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def feature(self, name: str) -> FeatureSpec:
        for f in self.features:
            if f.name == name:
                return f
        raise SchemaError(f"no feature {name!r} in the schema; features: {', '.join(self.names)}")

    @property
    def segment_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.segments)

    @property
    def segment_columns(self) -> tuple[str, ...]:
        """The records' columns segments are read from (a banded segment's numeric column)."""
        return tuple(dict.fromkeys(s.source for s in self.segments))

    def with_segments(self, segments: tuple[SegmentSpec, ...]) -> Schema:
        """This schema with ``segments`` (a segment column may be a feature as well)."""
        return Schema(
            self.features,
            self.timestamp,
            self.latency,
            self.version,
            self.ignore,
            tuple(segments),
        )

    @property
    def role_columns(self) -> tuple[str, ...]:
        cols = [self.timestamp, *self.ignore]
        if self.latency:
            cols.append(self.latency)
        if self.version:
            cols.append(self.version)
        return tuple(cols)

    @classmethod
    def infer(
        cls,
        df: pl.DataFrame,
        *,
        timestamp: str = "timestamp",
        latency: str | None = "latency_ms",
        version: str | None = "model_version",
        ignore: tuple[str, ...] = ("request_id",),
        categorical: tuple[str, ...] = (),
        bins: int = 10,
    ) -> Schema:
        """Infer features from dtypes: numbers are numeric, strings and booleans categorical.

        Raises
        ------
        SchemaError
            A column has a type mlmon cannot profile (lists, structs, binary...):
            list it in ``ignore`` or convert it.
        """
        roles = {timestamp, latency, version, *ignore} - {None}
        specs: list[FeatureSpec] = []
        for name, dtype in df.schema.items():
            if name in roles:
                continue
            if (
                name in categorical
                or isinstance(dtype, _CATEGORICAL_DTYPES)
                or dtype in _CATEGORICAL_DTYPES
            ):
                specs.append(FeatureSpec(name, "categorical"))
            elif dtype in _NUMERIC_DTYPES or isinstance(dtype, pl.Decimal):
                specs.append(FeatureSpec(name, "numeric", bins=bins))
            else:
                raise SchemaError(
                    f"column {name!r} has type {dtype}, which mlmon cannot profile; "
                    "add it to ignore=, or convert it to a number or a string"
                )
        return cls(tuple(specs), timestamp, latency, version, tuple(ignore))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "features": [f.to_dict() for f in self.features],
            "timestamp": self.timestamp,
            "latency": self.latency,
            "version": self.version,
            "ignore": list(self.ignore),
        }
        if self.segments:  # a schema without segments keeps its dict (and reference id)
            d["segments"] = [s.to_dict() for s in self.segments]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, source: str = "schema") -> Schema:
        """Build a schema from a mapping (a parsed YAML or JSON file)."""
        try:
            feats = d["features"]
        except (KeyError, TypeError) as exc:
            raise SchemaError(
                f"{source}: missing 'features' (a list of name/kind entries)"
            ) from exc
        specs = []
        for i, f in enumerate(feats):
            try:
                allowed = f.get("allowed")
                specs.append(
                    FeatureSpec(
                        name=str(f["name"]),
                        kind=f["kind"],
                        allowed=None if allowed is None else tuple(str(a) for a in allowed),
                        bins=int(f.get("bins", 10)),
                        centred=bool(f.get("centred", True)),
                    )
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise SchemaError(
                    f"{source}: features[{i}] needs 'name' and 'kind' (numeric|categorical): {exc}"
                ) from exc
        segments = []
        for i, g in enumerate(d.get("segments") or ()):
            try:
                if isinstance(g, str):
                    g = {"name": g}
                allowed = g.get("allowed")
                bands = g.get("bands")
                if bands is not None and "name" not in g and "column" in g:
                    g = {**g, "name": f"{g['column']}_band"}
                segments.append(
                    SegmentSpec(
                        str(g["name"]),
                        None
                        if allowed is None or bands is not None
                        else tuple(str(a) for a in allowed),
                        column=None if g.get("column") is None else str(g["column"]),
                        bands=None if bands is None else tuple(bands),
                    )
                )
            except (KeyError, TypeError, AttributeError) as exc:
                raise SchemaError(
                    f"{source}: segments[{i}] must be a column name or a mapping with 'name' "
                    f"(and optionally 'allowed', a list of values, or 'column' and 'bands'): {exc}"
                ) from exc
        bands_map = d.get("bands") or {}
        if not isinstance(bands_map, dict):
            raise SchemaError(
                f"{source}: 'bands' must map a numeric column to its band edges, "
                "e.g. bands: {age: [0, 18, 40, 65]}"
            )
        for col, edges in bands_map.items():
            segments.append(band_segment(str(col), edges))
        return cls(
            tuple(specs),
            segments=tuple(segments),
            timestamp=d.get("timestamp", "timestamp"),
            latency=d.get("latency", "latency_ms"),
            version=d.get("version", "model_version"),
            ignore=tuple(d.get("ignore", ("request_id",))),
        )

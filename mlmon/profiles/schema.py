"""Which columns of the inference records are features, and of what kind."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl

from mlmon.errors import SchemaError

__all__ = ["FeatureSpec", "Schema", "SegmentSpec"]

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
    """

    name: str
    allowed: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.name or "=" in self.name:
            raise SchemaError(
                f"segment column {self.name!r}: a segment column name must be non-empty and "
                "without '=' (segments are named column=value); rename the column"
            )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name}
        if self.allowed is not None:
            d["allowed"] = list(self.allowed)
        return d


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
        clash = sorted(set(seg) & roles)
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
                segments.append(
                    SegmentSpec(
                        str(g["name"]),
                        None if allowed is None else tuple(str(a) for a in allowed),
                    )
                )
            except (KeyError, TypeError, AttributeError) as exc:
                raise SchemaError(
                    f"{source}: segments[{i}] must be a column name or a mapping with 'name' "
                    f"(and optionally 'allowed', a list of values): {exc}"
                ) from exc
        return cls(
            tuple(specs),
            segments=tuple(segments),
            timestamp=d.get("timestamp", "timestamp"),
            latency=d.get("latency", "latency_ms"),
            version=d.get("version", "model_version"),
            ignore=tuple(d.get("ignore", ("request_id",))),
        )

"""Reference files: one Parquet file an edge reads from its own config volume."""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import UTC
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mlmon.errors import ProfileError, SchemaError
from mlmon.lake.writer import parquet_bytes, reference_rows
from mlmon.profiles.arrow import profile_from_row
from mlmon.profiles.frame import Reference
from mlmon.profiles.kinds import NumericProfile
from mlmon.profiles.multivariate import MULTIVARIATE, MultivariateModel
from mlmon.profiles.performance import performance_from_row, performance_to_row
from mlmon.profiles.schema import Schema

__all__ = ["load_reference", "reference_from_rows", "save_reference"]


def save_reference(reference: Reference, path: str | os.PathLike[str]) -> str:
    """Save a reference as one Parquet file (the ``references`` table layout).

    The file is written to a temporary name and renamed, so an edge never
    reads a half-written reference.
    """
    rows = reference_rows(reference)
    meta = {b"mlmon.model": (reference.model or "").encode()}
    if reference.performance is not None:
        meta[b"mlmon.performance"] = json.dumps(
            performance_to_row(reference.performance, columns=True)
        ).encode()
    if reference.segment_performance:  # the segments' own calibrations
        meta[b"mlmon.segment_performance"] = json.dumps(
            {
                key: performance_to_row(p, columns=True)
                for key, p in sorted(reference.segment_performance.items())
            }
        ).encode()
    rows = rows.replace_schema_metadata({**(rows.schema.metadata or {}), **meta})
    target = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(target))
    os.makedirs(folder, exist_ok=True)
    tmp = target + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(parquet_bytes(rows))
    os.replace(tmp, target)
    return target


def reference_from_rows(
    rows: pa.Table | list[dict[str, Any]], *, model: str | None = None
) -> Reference:
    """Rebuild a :class:`Reference` from its ``references`` rows."""
    records = rows.to_pylist() if isinstance(rows, pa.Table) else rows
    if not records:
        raise SchemaError("no reference rows to build a reference from")
    ids = {r["reference_id"] for r in records}
    if len(ids) != 1:
        raise SchemaError(f"rows mix references {sorted(ids)}; select one reference_id")
    first = records[0]
    schema = Schema.from_dict(json.loads(first["schema_json"]), source="reference schema_json")
    profiles: dict[str, Any] = {}
    latency = None
    multivariate = None
    thresholds: dict[str, dict[str, float]] = {}
    binning: dict[str, str] = {}
    segment_profiles: dict[str, dict[str, Any]] = {}
    for r in records:
        prof = profile_from_row(r)
        if r.get("segment") is not None:  # a segment's reference profile (older files: none)
            key = f"{r['segment']}={r.get('segment_value') or ''}"
            segment_profiles.setdefault(key, {})[r["feature"]] = prof
        elif r["feature"] in schema.names:
            profiles[r["feature"]] = prof
            if isinstance(prof, NumericProfile):  # references before it was stored: quantiles
                binning[r["feature"]] = r.get("binning") or "quantiles"
            if r.get("drift_thresholds_json"):
                raw = json.loads(r["drift_thresholds_json"])
                thresholds[r["feature"]] = {str(m): float(v) for m, v in raw.items()}
        elif r["feature"] == schema.latency and isinstance(prof, NumericProfile):
            latency = prof
        elif r["feature"] == MULTIVARIATE and r.get("multivariate_json"):
            if not isinstance(prof, NumericProfile):
                raise SchemaError(f"reference row {MULTIVARIATE} must be a numeric profile")
            try:
                spec = json.loads(r["multivariate_json"])
            except ValueError as exc:
                raise SchemaError(f"reference multivariate_json is not JSON: {exc}") from exc
            multivariate = MultivariateModel.from_dict(spec, prof)
    missing = [n for n in schema.names if n not in profiles]
    if missing:
        raise SchemaError(f"reference {first['reference_id']} lacks rows for {', '.join(missing)}")
    created = first["created_at"]
    return Reference(
        reference_id=first["reference_id"],
        schema=schema,
        profiles=profiles,
        created_at=created.astimezone(UTC),
        model=model,
        rows=int(first["rows"] or 0),
        latency=latency,
        drift_thresholds=thresholds,
        binning=binning,
        multivariate=multivariate,
        segment_profiles=segment_profiles,
    )


def load_reference(path: str | os.PathLike[str]) -> Reference:
    """Load a reference file written by :func:`save_reference`.

    Raises
    ------
    SchemaError
        The file is not a reference file (names the file and what is wrong).
    FileNotFoundError
        No file at ``path``.
    """
    target = os.fspath(path)
    try:
        # one file: ParquetFile (read_table goes through pyarrow.dataset, an import more)
        with pq.ParquetFile(target) as pf:
            t = pf.read()
    except FileNotFoundError:
        raise
    except (pa.ArrowInvalid, OSError) as exc:
        raise SchemaError(f"{target}: not a readable Parquet reference file ({exc})") from exc
    needed = {"reference_id", "schema_json", "feature", "kind"}
    if not needed <= set(t.column_names):
        raise SchemaError(
            f"{target}: not an mlmon reference (lacks {', '.join(sorted(needed - set(t.column_names)))}); "
            "build one with `mlmon reference build`"
        )
    meta = t.schema.metadata or {}
    model = meta.get(b"mlmon.model", b"").decode() or None
    try:
        ref = reference_from_rows(t, model=model)
        if b"mlmon.performance" in meta:
            perf = performance_from_row(json.loads(meta[b"mlmon.performance"]))
            ref = dataclasses.replace(ref, performance=perf)
        if b"mlmon.segment_performance" in meta:
            per = json.loads(meta[b"mlmon.segment_performance"])
            ref = dataclasses.replace(
                ref, segment_performance={k: performance_from_row(r) for k, r in per.items()}
            )
        return ref
    except (SchemaError, ProfileError, ValueError, KeyError) as exc:
        raise SchemaError(f"{target}: {exc}") from exc

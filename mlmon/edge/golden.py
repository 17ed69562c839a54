"""Golden-sample checks: known inputs with expected outputs, sent on a schedule.

A golden set is a local Parquet or JSONL file (on the edge's config volume)
with columns ``id``, ``inputs`` (a JSON object of feature values, or a list of
them), ``expected`` (label, number or list), and optionally ``kind``
(``label`` | ``score`` | ``regression``), ``abs_tol`` and ``rel_tol``. The
lake receives only the outcome of each check and the HMAC of the sample id.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import polars as pl

from mlmon.edge.protocols import Endpoint, client_for, probe
from mlmon.errors import ConfigError
from mlmon.governance.deid import hmac_id

__all__ = ["GOLDEN_COLUMNS", "GoldenSample", "compare", "load_golden_set", "run_golden"]

GOLDEN_COLUMNS = {
    "checked_at": pl.Datetime("us", "UTC"),
    "sample_id_hmac": pl.String,
    "passed": pl.Boolean,
    "error_kind": pl.String,
    "latency_ms": pl.Float64,
    "status_code": pl.Int32,
    "model_version": pl.String,
}
_KINDS = ("label", "score", "regression")


@dataclass(frozen=True)
class GoldenSample:
    id: str
    inputs: Any
    expected: Any
    kind: str = "score"
    abs_tol: float = 1e-6
    rel_tol: float = 1e-6


def _parse(path: Path, n: int, rec: dict[str, Any]) -> GoldenSample:
    where = f"{path}: record {n}"
    missing = [k for k in ("id", "inputs", "expected") if k not in rec or rec[k] is None]
    if missing:
        raise ConfigError(
            f"{where}: missing field(s) {', '.join(missing)}; each sample needs id, inputs, expected"
        )
    inputs = rec["inputs"]
    if isinstance(inputs, str):
        try:
            inputs = json.loads(inputs)
        except ValueError as exc:
            raise ConfigError(f"{where}: field 'inputs' is not valid JSON") from exc
    if not isinstance(inputs, dict | list) or not inputs:
        raise ConfigError(
            f"{where}: field 'inputs' must be an object of feature values (or a list of them)"
        )
    expected = rec["expected"]
    if isinstance(expected, str) and expected[:1] in "[{":
        expected = json.loads(expected)
    kind = rec.get("kind") or ("label" if isinstance(expected, str) else "score")
    if kind not in _KINDS:
        raise ConfigError(f"{where}: kind {kind!r} is not one of {', '.join(_KINDS)}")
    try:
        abs_tol = float(rec.get("abs_tol") if rec.get("abs_tol") is not None else 1e-6)
        rel_tol = float(rec.get("rel_tol") if rec.get("rel_tol") is not None else 1e-6)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: abs_tol and rel_tol must be numbers") from exc
    return GoldenSample(str(rec["id"]), inputs, expected, kind, abs_tol, rel_tol)


def load_golden_set(path: str | Path) -> list[GoldenSample]:
    """Read a golden set; errors name the file, the record (line) and the field."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"golden set {p} does not exist")
    records: list[dict[str, Any]] = []
    if p.suffix.lower() == ".parquet":
        try:
            records = pl.read_parquet(p).to_dicts()
        except Exception as exc:
            raise ConfigError(f"{p}: not a readable Parquet golden set: {exc}") from exc
    else:
        for i, line in enumerate(p.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as exc:
                raise ConfigError(f"{p}: line {i} is not valid JSON") from exc
            if not isinstance(rec, dict):
                raise ConfigError(f"{p}: line {i} is not a JSON object")
            records.append(rec)
    if not records:
        raise ConfigError(f"golden set {p} has no samples")
    return [_parse(p, i, r) for i, r in enumerate(records, start=1)]


def _close(got: Any, exp: Any, abs_tol: float, rel_tol: float) -> bool:
    try:
        g, e = float(got), float(exp)
    except (TypeError, ValueError):
        return False
    return math.isfinite(g) and abs(g - e) <= abs_tol + rel_tol * abs(e)


def compare(sample: GoldenSample, predictions: list[Any]) -> bool:
    """Does the endpoint's answer match the expected output?"""
    got: Any = predictions[0] if len(predictions) == 1 else predictions
    if isinstance(got, list) and len(got) == 1 and not isinstance(sample.expected, list):
        got = got[0]
    if sample.kind == "label":
        return str(got) == str(sample.expected)
    if isinstance(sample.expected, list):
        return (
            isinstance(got, list)
            and len(got) == len(sample.expected)
            and all(
                _close(g, e, sample.abs_tol, sample.rel_tol)
                for g, e in zip(got, sample.expected, strict=True)
            )
        )
    return _close(got, sample.expected, sample.abs_tol, sample.rel_tol)


def run_golden(
    endpoint: Endpoint,
    samples: list[GoldenSample],
    secret: bytes,
    *,
    now: datetime | None = None,
    client: httpx.Client | None = None,
) -> pl.DataFrame:
    """Send every sample; one row per check with the columns of the lake's ``golden`` table."""
    checked = now or datetime.now(UTC)
    own = client is None
    http = client_for(endpoint) if client is None else client
    rows = []
    try:
        for s in samples:
            r = probe(http, endpoint, s.inputs)
            passed = r.ok and compare(s, r.predictions)
            rows.append(
                {
                    "checked_at": checked,
                    "sample_id_hmac": hmac_id(secret, s.id),
                    "passed": passed,
                    "error_kind": None if passed else (r.error_kind or "mismatch"),
                    "latency_ms": r.latency_ms,
                    "status_code": r.status_code,
                    "model_version": r.model_version,
                }
            )
    finally:
        if own:
            http.close()
    return pl.DataFrame(rows, schema=GOLDEN_COLUMNS)

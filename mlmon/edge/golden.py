"""Golden-sample checks: known inputs with expected outputs, sent on a schedule.

A golden set is a local Parquet or JSONL file (on the edge's config volume),
one sample per row or line:

=========  ========  =====================================================================
column     required  meaning
=========  ========  =====================================================================
id         yes       the sample's id; only its HMAC is ever written
inputs     yes       one row ``{feature: value}`` or a list of rows (an object or JSON text)
expected   yes       a label, a number, or a list (one per row, or a score vector)
kind       no        ``label`` | ``score`` | ``regression``; default ``label`` for text
                     and booleans, ``score`` for numbers
abs_tol    no        absolute tolerance, default ``DEFAULT_ABS_TOL``
rel_tol    no        relative tolerance, default ``DEFAULT_REL_TOL``
=========  ========  =====================================================================

A ``label`` passes when the answer equals the expected label; a ``score`` or
``regression`` passes when ``|got - expected| <= abs_tol + rel_tol * |expected|``
for every element. The lake receives only the outcome of each check
(:data:`GOLDEN_COLUMNS`), never inputs, predictions or the sample id.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np
import polars as pl

from mlmon.edge.protocols import Endpoint, client_for, probe
from mlmon.errors import ConfigError, TimestampError
from mlmon.governance.deid import hmac_id

__all__ = [
    "DEFAULT_ABS_TOL",
    "DEFAULT_REL_TOL",
    "GOLDEN_COLUMNS",
    "GoldenSample",
    "compare",
    "load_golden_set",
    "run_golden",
]

GoldenKind = Literal["label", "score", "regression"]
KINDS: tuple[GoldenKind, ...] = ("label", "score", "regression")
DEFAULT_ABS_TOL = 1e-6
DEFAULT_REL_TOL = 1e-6
REQUIRED = ("id", "inputs", "expected")

GOLDEN_COLUMNS: dict[str, pl.DataType] = {
    "checked_at": pl.Datetime("us", "UTC"),
    "sample_id_hmac": pl.String(),
    "passed": pl.Boolean(),
    "error_kind": pl.String(),
    "latency_ms": pl.Float64(),
    "status_code": pl.Int32(),
    "model_version": pl.String(),
}
"""The columns of :func:`run_golden`'s frame, in order, with their types."""


@dataclass(frozen=True)
class GoldenSample:
    """One golden sample; ``inputs`` and ``expected`` stay in the edge's memory."""

    id: str
    inputs: dict[str, Any] | list[dict[str, Any]]
    expected: Any
    kind: GoldenKind = "score"
    abs_tol: float = DEFAULT_ABS_TOL
    rel_tol: float = DEFAULT_REL_TOL

    def __repr__(self) -> str:  # never print payloads in logs or tracebacks
        return f"GoldenSample(kind={self.kind!r}, abs_tol={self.abs_tol}, rel_tol={self.rel_tol})"


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _numeric(v: Any) -> bool:
    if isinstance(v, list):
        return bool(v) and all(_numeric(x) for x in v)
    return _is_number(v)


def _tolerance(rec: dict[str, Any], name: str, default: float, where: str) -> float:
    value = rec.get(name)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return default
    if not _is_number(value) or value < 0:
        raise ConfigError(
            f"{where}: field {name!r} is {value!r}; expected a number >= 0 (default {default})"
        )
    return float(value)


def _parse(rec: dict[str, Any], where: str) -> GoldenSample:
    missing = [k for k in REQUIRED if rec.get(k) is None]
    if missing:
        raise ConfigError(
            f"{where}: missing field(s) {', '.join(missing)}; each sample needs "
            f"{', '.join(REQUIRED)}"
        )
    inputs = rec["inputs"]
    if isinstance(inputs, str):
        try:
            inputs = json.loads(inputs)
        except ValueError as exc:
            raise ConfigError(
                f"{where}: field 'inputs' is text but not valid JSON ({exc}); "
                'expected an object such as {"f0": 1.5}'
            ) from exc
    rows = inputs if isinstance(inputs, list) else [inputs]
    if not rows or not all(isinstance(r, dict) and r for r in rows):
        raise ConfigError(
            f"{where}: field 'inputs' is {type(inputs).__name__}; expected an object of "
            "feature values (or a non-empty list of them)"
        )
    expected = rec["expected"]
    if isinstance(expected, str) and expected.lstrip()[:1] == "[":
        try:
            expected = json.loads(expected)
        except ValueError as exc:
            raise ConfigError(
                f"{where}: field 'expected' starts with '[' but is not a valid JSON list ({exc})"
            ) from exc
    kind = rec.get("kind")
    if kind is None:
        kind = "label" if isinstance(expected, str | bool) else "score"
    if kind not in KINDS:
        raise ConfigError(f"{where}: field 'kind' is {kind!r}; expected one of {', '.join(KINDS)}")
    if kind != "label" and not _numeric(expected):
        raise ConfigError(
            f"{where}: field 'expected' is {type(expected).__name__} but kind {kind!r} needs a "
            "finite number or a list of numbers; use kind 'label' for class labels"
        )
    return GoldenSample(
        id=str(rec["id"]),
        inputs=inputs,
        expected=expected,
        kind=kind,
        abs_tol=_tolerance(rec, "abs_tol", DEFAULT_ABS_TOL, where),
        rel_tol=_tolerance(rec, "rel_tol", DEFAULT_REL_TOL, where),
    )


def _read_parquet(p: Path) -> list[tuple[str, dict[str, Any]]]:
    try:
        frame = pl.read_parquet(p)
    except Exception as exc:  # polars/arrow raise several types for unreadable files
        raise ConfigError(f"{p}: not a readable Parquet golden set ({exc})") from exc
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ConfigError(
            f"{p}: missing column(s) {', '.join(missing)}; a golden set needs columns "
            f"{', '.join(REQUIRED)} (found {', '.join(frame.columns) or 'none'})"
        )
    return [(f"{p}: row {i}", rec) for i, rec in enumerate(frame.to_dicts(), start=1)]


def _read_jsonl(p: Path) -> list[tuple[str, dict[str, Any]]]:
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read the golden set as UTF-8 text ({exc})") from exc
    records = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as exc:
            raise ConfigError(
                f"{p}: line {i} is not valid JSON ({exc.args[0] if exc.args else exc}); "
                "expected one JSON object per line"
            ) from exc
        if not isinstance(rec, dict):
            raise ConfigError(
                f"{p}: line {i} is a JSON {type(rec).__name__}; expected one JSON object per line"
            )
        records.append((f"{p}: line {i}", rec))
    return records


def load_golden_set(path: str | Path) -> list[GoldenSample]:
    """Read and validate a golden set from Parquet (``.parquet``) or JSONL (any other suffix).

    Parameters
    ----------
    path
        The file on the edge's config volume.

    Returns
    -------
    list of GoldenSample
        In file order.

    Raises
    ------
    ConfigError
        The file is missing, unreadable, empty, lacks a required column, or a
        record is wrong; the message names the file, the line (JSONL) or row
        (Parquet) and the field.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "golden.jsonl"
    >>> _ = p.write_text('{"id": "g1", "inputs": {"f0": 1.0}, "expected": "yes"}\\n')
    >>> load_golden_set(p)[0].kind
    'label'
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"golden set {p} does not exist (or is not a file); check golden.file")
    records = _read_parquet(p) if p.suffix.lower() == ".parquet" else _read_jsonl(p)
    if not records:
        raise ConfigError(f"golden set {p} has no samples; add at least one line or row")
    samples: list[GoldenSample] = []
    first_seen: dict[str, str] = {}
    for where, rec in records:
        sample = _parse(rec, where)
        if sample.id in first_seen:
            raise ConfigError(
                f"{where}: field 'id' repeats the id of {first_seen[sample.id]}; "
                "golden sample ids must be unique"
            )
        first_seen[sample.id] = where
        samples.append(sample)
    return samples


def _labels_equal(got: Any, exp: Any) -> bool:
    if isinstance(got, list) and isinstance(exp, list):
        return len(got) == len(exp) and all(
            _labels_equal(g, e) for g, e in zip(got, exp, strict=True)
        )
    if isinstance(got, list) and len(got) == 1:
        return _labels_equal(got[0], exp)
    if got == exp and type(got) is not bool and type(exp) is not bool:
        return True
    return not isinstance(got, list) and str(got) == str(exp)


def compare(sample: GoldenSample, predictions: Sequence[Any]) -> bool:
    """Does the endpoint's answer match the sample's expected output?

    Parameters
    ----------
    sample
        The golden sample.
    predictions
        One prediction per input row, as :func:`~mlmon.edge.protocols.probe` returns.

    Returns
    -------
    bool
        Label equality for ``label``; ``|got - exp| <= abs_tol + rel_tol * |exp|``
        for every element for ``score`` and ``regression`` (same shape, finite).

    Examples
    --------
    >>> compare(GoldenSample("g", {"f0": 1}, 0.5, "score", abs_tol=0.01), [0.505])
    True
    """
    got: Any = predictions[0] if isinstance(sample.inputs, dict) else list(predictions)
    if sample.kind == "label":
        return _labels_equal(got, sample.expected)
    try:
        g = np.asarray(got, dtype=float)
        e = np.asarray(sample.expected, dtype=float)
    except (TypeError, ValueError):
        return False
    if g.shape != e.shape:
        g, e = g.squeeze(), e.squeeze()
        if g.shape != e.shape:
            return False
    if not np.all(np.isfinite(g)):
        return False
    return bool(np.all(np.abs(g - e) <= sample.abs_tol + sample.rel_tol * np.abs(e)))


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise TimestampError(
            f"run_golden: now={now!r} is not a timezone-aware datetime; pass e.g. datetime.now(UTC)"
        )
    return now.astimezone(UTC)


def run_golden(
    client: httpx.Client | None,
    endpoint: Endpoint,
    golden_set: Sequence[GoldenSample],
    secret: bytes,
    *,
    now: datetime | None = None,
    cancel: threading.Event | None = None,
) -> pl.DataFrame:
    """Send every golden sample to the endpoint; one row per check, outcome only.

    Parameters
    ----------
    client
        From :func:`~mlmon.edge.http.make_client`; ``None`` opens (and closes)
        one with the endpoint's settings.
    endpoint
        The model endpoint.
    golden_set
        From :func:`load_golden_set`.
    secret
        Customer-held HMAC key (at least 16 bytes) for the sample ids.
    now
        ``checked_at`` of every row (timezone-aware); default: the current time.
    cancel
        When set (the collector is stopping), no further sample is sent and
        the checks done so far are returned.

    Returns
    -------
    polars.DataFrame
        Columns :data:`GOLDEN_COLUMNS`: ``checked_at``, ``sample_id_hmac``,
        ``passed``, ``error_kind`` (null when passed; a probe error kind or
        ``mismatch``), ``latency_ms`` (the answered attempt only; null when the
        probe got no readable 2xx answer: a failure, not a latency),
        ``status_code``, ``model_version``. No input, prediction or sample id
        is in it.

    Raises
    ------
    ConfigError
        The secret is too short, or a sample's inputs cannot be sent with this protocol.
    TimestampError
        ``now`` is naive.
    """
    checked_at = _utc(now)
    ids = [hmac_id(secret, s.id) for s in golden_set]
    rows = []
    http = client_for(endpoint) if client is None else client
    try:
        for sample, sample_hmac in zip(golden_set, ids, strict=True):
            if cancel is not None and cancel.is_set():
                break
            r = probe(http, endpoint, sample.inputs)
            passed = r.ok and compare(sample, r.predictions)
            rows.append(
                {
                    "checked_at": checked_at,
                    "sample_id_hmac": sample_hmac,
                    "passed": passed,
                    "error_kind": None if passed else (r.error_kind or "mismatch"),
                    "latency_ms": r.latency_ms if r.ok else None,
                    "status_code": r.status_code,
                    "model_version": r.model_version,
                }
            )
    finally:
        if client is None:
            http.close()
    return pl.DataFrame(rows, schema=GOLDEN_COLUMNS)

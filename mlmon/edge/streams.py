"""Inference log streams: files of logged inferences turned into flat records, read exactly once.

A :class:`FileStream` reads new records from a read-only folder (a local
path, or any fsspec URI such as ``s3://bucket/logs/`` read with list/get
only) of JSONL, CSV or Parquet files, in one of the record formats of
:data:`STREAM_FORMATS`:

``tabular``
    Flat records already: feature columns, ``timestamp`` (UTC, with an
    offset), optional ``latency_ms``, ``model_version``, ``prediction`` and a
    request-id column that is HMACed.
``kserve_cloudevents``
    The KServe InferenceService logger's CloudEvents (one per line): a
    request and a response event per inference, joined by event id.
``sagemaker_capture``
    SageMaker Data Capture JSONL (``captureData.endpointInput`` /
    ``endpointOutput``, ``eventMetadata``).

Every format yields polars DataFrames of **flat records**, one row per
inference (see :func:`flat_schema`): the model's feature columns (numeric
features as Float64, categorical ones as String), ``prediction`` (the score
or label; for several outputs, the first output, and for a per-row vector
such as class probabilities, its first element), ``timestamp``
(``Datetime("us", "UTC")``), ``latency_ms`` (Float64, null when unknown),
``model_version`` (String, nullable) and ``request_id_hmac`` (the
HMAC-SHA256 of the request id, null when the record has none). A raw request
id never appears; other payload fields are dropped.

Malformed records are counted by reason (:data:`REASONS`) in
:class:`BadRecords` and skipped; a log line names the reason, the count and
the file, never the record's content.

Exactly once: the stream keeps its read positions (files fully consumed,
byte offset or row count reached in the others) in its
:class:`~mlmon.edge.checkpoint.StreamState`, which the collector commits only
after the closed windows were written (see :mod:`mlmon.edge.checkpoint`).
KServe requests still waiting for their response hold the committed offset
back, and the HMACs of the events already joined after that offset are
committed too, so after a restart those events are re-read but not counted
again.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Protocol

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from mlmon.edge.checkpoint import StreamState
from mlmon.errors import (
    ConfigError,
    DuplicateNameError,
    EdgeError,
    MlmonError,
    UnknownNameError,
)
from mlmon.governance.deid import hmac_id, hmac_ids
from mlmon.profiles.frame import Reference
from mlmon.profiles.kinds import NumericProfile

__all__ = [
    "FILE_FORMATS",
    "MAX_LINE_BYTES",
    "REASONS",
    "STREAM_FORMATS",
    "TIMESTAMP_FORMATS",
    "TS_MAX",
    "TS_MIN",
    "BadRecords",
    "CloudEvent",
    "CloudEventJoiner",
    "FileStream",
    "ParseContext",
    "RawBatch",
    "RecordFormat",
    "decode_json_line",
    "flat_schema",
    "open_stream",
    "parse_timestamps",
    "register_stream_format",
    "stream_format",
]

log = logging.getLogger("mlmon.edge.streams")

#: File formats and the name endings that select them.
FILE_FORMATS: dict[str, tuple[str, ...]] = {
    "jsonl": (".jsonl", ".ndjson", ".json"),
    "csv": (".csv",),
    "parquet": (".parquet", ".pq"),
}

#: Reasons a record is skipped (a format may add its own).
REASONS = {
    "bad_json": "a line is not valid JSON",
    "non_finite": "a NaN or Infinity literal (not JSON, though Python's json.dumps writes it)",
    "duplicate_key": "a JSON object with the same key twice",
    "too_deep": "JSON nested deeper than the parser's limit",
    "bad_encoding": "a line that is not UTF-8",
    "not_an_object": "a JSON value that is not an object (an array, a number, a string, null)",
    "empty_line": "an empty (or blank) line",
    "line_too_long": "a line longer than max_line_bytes (skipped without being read whole)",
    "truncated_line": "the last line of a file that stopped changing without its newline, not valid",
    "ragged_row": "a CSV row with more or fewer fields than the header",
    "bad_csv": "a CSV line that cannot be parsed (an unclosed quote, a NUL byte, a field over 128 KiB)",
    "bad_value": "a field of the wrong type (a bool, list or object where a number belongs, text "
    "that is not a number in a numeric field, a list or object where a text belongs)",
    "missing_field": "a required field (timestamp, id, type, captureData...) is absent",
    "naive_timestamp": "a timestamp without a UTC offset",
    "bad_timestamp": "a timestamp that cannot be parsed, of the wrong type, or outside "
    "1970-01-01 .. 2200-01-01 UTC",
    "bad_tensor": "inputs or outputs of an unexpected shape or type",
    "unmatched": "a request without its response (or a response without its request) past the timeout",
    "unknown_event_type": "a CloudEvent type that is neither a request nor a response",
    "unreadable_file": "a file that cannot be read (a Parquet file with a corrupt footer...), "
    "counted once when it stopped changing",
    "parse_error": "records of a batch whose parsing failed unexpectedly (a bug: please report)",
}

#: Timestamp encodings of ``tabular`` records (``streams[].timestamp_format``).
TIMESTAMP_FORMATS = ("iso8601", "epoch_s", "epoch_ms")
#: Record times outside [TS_MIN, TS_MAX) are ``bad_timestamp``.
TS_MIN = datetime(1970, 1, 1, tzinfo=UTC)
TS_MAX = datetime(2200, 1, 1, tzinfo=UTC)
#: Default longest line read; longer lines are ``line_too_long``.
MAX_LINE_BYTES = 16 * 1024 * 1024
_BOM = b"\xef\xbb\xbf"
_PLACES = 1000  # (reason, file, line) kept per stream for tests and diagnostics
_LINES_LOGGED = 20


# -- counters and context -----------------------------------------------------------------
class BadRecords(Counter[str]):
    """Skipped records by reason; a log line per batch names reason, count, file and lines only.

    ``places`` keeps the first :data:`_PLACES` ``(reason, file, line)`` of skipped
    records (line numbers are 1-based lines of text files, or row numbers of
    Parquet files; None where unknown). Never record content.
    """

    def __init__(self) -> None:
        super().__init__()
        self.places: list[tuple[str, str, int | None]] = []

    def skip(
        self, reason: str, where: str = "", n: int = 1, lines: Sequence[int] | None = None
    ) -> None:
        """Count ``n`` skipped records for ``reason``; never pass record content in ``where``."""
        if n <= 0:
            return
        self[reason] += n
        lines = list(lines or ())
        room = _PLACES - len(self.places)
        if room > 0:
            self.places.extend(
                (reason, where, ln)
                for ln in (lines or [None] * n)[:room]  # type: ignore[list-item]
            )
        extra: dict[str, Any] = {"reason": reason, "count": n, "where": where}
        if lines:
            extra["lines"] = lines[:_LINES_LOGGED]
        log.warning("skipped records", extra=extra)


@dataclass
class ParseContext:
    """What a record format needs: the features, their kinds, the HMAC secret, the counters.

    Parameters
    ----------
    features
        Feature names (columns of the flat records).
    secret
        HMAC key for request ids.
    numeric
        The features that are numeric (cast to Float64); the others are cast to String.
        ``None``: leave the inferred types.
    request_id_column
        Tabular records: the column holding the request id.
    bad
        Counter of skipped records.
    where
        A place for log lines (a file name), never content.
    timestamp_format
        Tabular records: how ``timestamp`` is written, one of :data:`TIMESTAMP_FORMATS`.
    outputs
        Model outputs kept beside the features (name: ``"num"`` for class scores,
        ``"pred"`` for the model's logged decision), from the reference's
        performance spec; never profiled as features.
    """

    features: Sequence[str]
    secret: bytes
    numeric: frozenset[str] | None = None
    request_id_column: str | None = "request_id"
    bad: BadRecords = field(default_factory=BadRecords)
    where: str = ""
    timestamp_format: str = "iso8601"
    outputs: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def for_reference(cls, reference: Reference, secret: bytes, **kwargs: Any) -> ParseContext:
        """A context with the reference's features and kinds, and its performance outputs."""
        names = tuple(reference.schema.names)
        numeric = frozenset(n for n in names if isinstance(reference.profiles[n], NumericProfile))
        outputs: dict[str, str] = {}
        if reference.performance is not None:
            spec = reference.performance.spec
            taken = {*names, "prediction", "score", *_CONTRACT}
            outputs = {c: "num" for c in spec.score_columns if c not in taken}
            if spec.decision_column and spec.decision_column not in taken:
                outputs[spec.decision_column] = "pred"
        kwargs.setdefault("outputs", outputs)
        return cls(names, secret, numeric, **kwargs)


_CONTRACT: dict[str, pl.DataType] = {
    "timestamp": pl.Datetime("us", "UTC"),
    "latency_ms": pl.Float64(),
    "model_version": pl.String(),
    "request_id_hmac": pl.String(),
}


def flat_schema(ctx: ParseContext, prediction: pl.DataType | None = None) -> dict[str, Any]:
    """The columns of a flat-record frame (features first; ``prediction`` Float64 by default)."""
    out: dict[str, Any] = {}
    for f in ctx.features:
        if ctx.numeric is None:
            out[f] = pl.Float64()
        else:
            out[f] = pl.Float64() if f in ctx.numeric else pl.String()
    if "prediction" not in out:
        out["prediction"] = prediction or pl.Float64()
    for name, kind in ctx.outputs.items():
        out.setdefault(name, pl.Float64() if kind == "num" else pl.String())
    out.update({c: t for c, t in _CONTRACT.items() if c not in out})
    return out


def _conform(df: pl.DataFrame, ctx: ParseContext) -> pl.DataFrame:
    """Select and cast to the flat-record contract (drops every other column)."""
    cols = []
    for f in ctx.features:
        dtype = df.schema.get(f)
        # absent, or a tensor where a value belongs: null
        col = pl.lit(None) if dtype is None or dtype.is_nested() else pl.col(f)
        want: pl.DataType = pl.Float64() if ctx.numeric is None or f in ctx.numeric else pl.String()
        if ctx.numeric is None and dtype is not None and not dtype.is_nested():
            want = dtype  # no kinds known: keep what was inferred
        if dtype == pl.String and want == pl.Float64:
            col = col.str.strip_chars().cast(pl.Float64, strict=False)
        else:
            col = col.cast(want, strict=False)
        cols.append(col.alias(f))
    pred = df.schema.get("prediction")
    if "prediction" in ctx.features:
        pass  # the model's reference profiles the prediction as a feature: that column serves
    elif pred is None or pred == pl.Null or pred.is_nested():
        cols.append(pl.lit(None, pl.Float64).alias("prediction"))
    elif pred.is_numeric() or pred == pl.Boolean:
        cols.append(pl.col("prediction").cast(pl.Float64))
    else:
        cols.append(pl.col("prediction").cast(pl.String))
    for name, kind in ctx.outputs.items():  # the reference's score and decision columns
        dtype = df.schema.get(name)
        if name in ctx.features or name == "prediction":
            continue
        if dtype is None or dtype == pl.Null or dtype.is_nested():
            cols.append(pl.lit(None, pl.Float64 if kind == "num" else pl.String).alias(name))
        elif kind == "num" or dtype.is_numeric() or dtype == pl.Boolean:
            cols.append(pl.col(name).cast(pl.Float64, strict=False))
        else:
            cols.append(pl.col(name).cast(pl.String, strict=False))
    for c, t in _CONTRACT.items():
        if c in ctx.features:
            continue
        cols.append((pl.col(c) if c in df.columns else pl.lit(None)).cast(t, strict=False).alias(c))
    return df.select(cols)


def _rows_to_frame(
    rows: list[dict[str, Any]],
    ctx: ParseContext,
    where: str = "",
    lines: Sequence[int] | None = None,
) -> pl.DataFrame:
    """Flat rows (dicts, UTC datetimes) to a conformed frame; rows with bad values are counted."""
    if not rows:
        return pl.DataFrame(schema=flat_schema(ctx))
    df, reasons = _typed_records(rows, ctx, raw_time=False)
    if any(r is not None for r in reasons):
        _count(ctx, reasons, where, lines)
        df = df.filter(pl.Series([r is None for r in reasons]))
    return _conform(df, ctx)


def _count(
    ctx: ParseContext, reasons: Sequence[str | None], where: str, lines: Sequence[int] | None
) -> None:
    """Count the rows with a reason, with their line numbers when known."""
    by: dict[str, list[int]] = {}
    for i, r in enumerate(reasons):
        if r is not None:
            by.setdefault(r, []).append(i)
    for r, idx in by.items():
        ctx.bad.skip(r, where, len(idx), [lines[i] for i in idx] if lines is not None else None)


# -- strict JSON lines ------------------------------------------------------------------------
class _Reject(ValueError):
    """A line or value refused for a reason (a :data:`REASONS` key)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _Reject("duplicate_key")
    return obj


def _constant(name: str) -> Any:
    raise _Reject("non_finite")


_DECODER = json.JSONDecoder(object_pairs_hook=_pairs, parse_constant=_constant)
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_CONTROL_RE = r"[\x00-\x08\x0b\x0c\x0e-\x1f]|\\u[dD][89a-fA-F]"
_KEY_RE = r'"(?:[^"\\]|\\.)*"\s*:'  # every key of a line (nested ones too)


def _strict(text: str) -> Any:
    """Decode ``text``; a ``\\ud800``-style escape must make a valid pair (else not UTF-8)."""
    value = _DECODER.decode(text)
    if _SURROGATE.search(text):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _Reject("bad_encoding") from exc
    return value


def decode_json_line(line: bytes) -> tuple[Any, str | None]:
    """``(value, None)`` for one strict JSON line, or ``(None, reason)``.

    Strict: UTF-8 only, no ``NaN``/``Infinity`` literals, no duplicate keys,
    no nesting deeper than the interpreter's recursion limit. One parser
    decides for every format, so what is counted is what is profiled.
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return None, "bad_encoding"
    if not text.strip():
        return None, "empty_line"
    try:
        return _strict(text), None
    except _Reject as exc:
        return None, exc.reason
    except RecursionError:
        return None, "too_deep"
    except ValueError:
        return None, "bad_json"


def _json_text(text: str | bytes, reason: str = "bad_tensor") -> Any:
    """Parse an embedded JSON body (a capture's ``data``); raises ``_Reject`` with the reason.

    ``reason`` is the one for text that is not JSON at all.
    """
    try:
        return _strict(text if isinstance(text, str) else text.decode("utf-8"))
    except _Reject:
        raise
    except RecursionError as exc:
        raise _Reject("too_deep") from exc
    except ValueError as exc:  # UnicodeDecodeError too
        raise _Reject(reason) from exc


# -- typed columns from decoded records -----------------------------------------------------
_NoneType = type(None)


def _num(v: Any) -> float | None:
    """A numeric field's value; raises ``_Reject('bad_value')`` for bools, lists, objects, text."""
    t = type(v)
    if t is float:
        return float(v)
    if v is None:
        return None
    try:
        if t is str:
            s = v.strip()
            return float(s) if s else None
        if _is_number(v):  # int, or a numpy number from a decoded tensor
            return float(v)
    except (ValueError, OverflowError) as exc:
        raise _Reject("bad_value") from exc
    raise _Reject("bad_value")


def _is_number(v: Any) -> bool:
    """A real number that is not a bool (Python's or numpy's)."""
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(
        v, bool | np.bool_
    )


def _text(v: Any) -> str | None:
    """A text field's value: scalars as text; raises ``_Reject('bad_value')`` for lists and objects."""
    t = type(v)
    if v is None:
        return None
    if t is str:
        return str(v)
    if t is bool or t is np.bool_:
        return "true" if v else "false"
    if _is_number(v):
        return str(v)
    raise _Reject("bad_value")


def _column(name: str, values: list[Any], kind: str, reasons: list[str | None]) -> pl.Series | None:
    """One validated column (None when no record has a value); bad rows get a reason."""
    types = set(map(type, values))
    if types <= {_NoneType}:
        return None
    if kind == "num":
        if types <= {float, _NoneType}:
            return pl.Series(name, values, pl.Float64)
        conv: Callable[[Any], Any] = _num
        dtype: pl.DataType = pl.Float64()
    elif kind == "text":
        if types <= {str, _NoneType}:
            return pl.Series(name, values, pl.String)
        conv, dtype = _text, pl.String()
    elif kind == "pred":
        values = [_first(v) if isinstance(v, list | dict) else v for v in values]
        numbers = any(_is_number(v) or isinstance(v, bool | np.bool_) for v in values)
        if not numbers:
            conv, dtype = _text, pl.String()
        else:
            texts = [v for v in values if type(v) is str and v.strip()]
            if texts:  # numbers and text: text that is no number is a bad value
                conv, dtype = _num, pl.Float64()
            else:
                return pl.Series(
                    name, [None if v is None else float(v) for v in values], pl.Float64
                )
    else:  # "any": no kinds known; scalars kept as inferred
        conv, dtype = _scalar, None  # type: ignore[assignment]
    out: list[Any] = []
    for i, v in enumerate(values):
        try:
            out.append(conv(v))
        except _Reject as exc:
            out.append(None)
            if reasons[i] is None:
                reasons[i] = exc.reason
    if dtype is None:
        try:
            return pl.Series(name, out, strict=False)
        except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError):
            return pl.Series(name, [_text(v) for v in out], pl.String)
    return pl.Series(name, out, dtype)


def _scalar(v: Any) -> Any:
    if isinstance(v, list | dict):
        raise _Reject("bad_value")
    return v


def _kinds(ctx: ParseContext) -> dict[str, str]:
    """The columns mlmon reads from a flat record and how each is validated."""
    kinds: dict[str, str] = {}
    for f in ctx.features:
        if ctx.numeric is None:
            kinds[f] = "any"
        else:
            kinds[f] = "num" if f in ctx.numeric else "text"
    kinds.setdefault("prediction", "pred")
    kinds.setdefault("score", "pred")
    for name, kind in ctx.outputs.items():
        kinds.setdefault(name, kind)
    kinds.setdefault("latency_ms", "num")
    kinds.setdefault("model_version", "text")
    if ctx.request_id_column:
        kinds.setdefault(ctx.request_id_column, "text")
    kinds.setdefault("request_id_hmac", "text")
    return kinds


def _typed_records(
    rows: Sequence[Mapping[str, Any]], ctx: ParseContext, *, raw_time: bool
) -> tuple[pl.DataFrame, list[str | None]]:
    """Decoded records to typed columns, and per row the reason it is unusable (or None).

    ``raw_time``: the ``timestamp`` is as logged (text, or a number with an epoch
    ``timestamp_format``) and parsed later; otherwise it is a UTC datetime already.
    """
    reasons: list[str | None] = [None] * len(rows)
    cols: list[pl.Series] = []
    for name, kind in _kinds(ctx).items():
        if name == "timestamp":
            continue
        s = _column(name, [r.get(name) for r in rows], kind, reasons)
        if s is not None:
            cols.append(s)
    ts = [r.get("timestamp") for r in rows]
    if not raw_time:
        cols.append(pl.Series("timestamp", ts, pl.Datetime("us", "UTC")))
    elif ctx.timestamp_format == "iso8601":
        for i, v in enumerate(ts):
            if v is not None and type(v) is not str:
                ts[i] = None
                reasons[i] = reasons[i] or "bad_timestamp"
        cols.append(pl.Series("timestamp", ts, pl.String))
    else:  # epoch seconds or milliseconds: numbers, or text that is a number
        out: list[float | None] = []
        for i, v in enumerate(ts):
            try:
                out.append(_num(v))
            except _Reject:
                out.append(None)
                reasons[i] = reasons[i] or "bad_timestamp"
        cols.append(pl.Series("timestamp", out, pl.Float64))
    return pl.DataFrame(cols), reasons


def _typed_frame(df: pl.DataFrame, ctx: ParseContext, where: str) -> tuple[pl.DataFrame, pl.Series]:
    """A columnar batch (CSV read as text, Parquet) validated like :func:`_typed_records`.

    Returns the typed columns mlmon reads (``timestamp`` as it came) and per row
    ``bad_value`` or null. A column of a type that cannot hold its field (a list
    or a bool where a number belongs) makes each of its non-null values bad; the
    file and column are named in the log.
    """
    exprs: list[pl.Expr] = []
    bad: list[pl.Expr] = []
    for name, kind in _kinds(ctx).items():
        dtype: Any = df.schema.get(name)
        if dtype is None or name == "timestamp":
            continue
        c = pl.col(name)
        wrong = c.is_not_null()
        if dtype == pl.Null:
            exprs.append(c)
            continue
        if kind == "pred":
            while isinstance(dtype, pl.List | pl.Array):  # a per-row vector: its first element
                c = c.list.first() if isinstance(dtype, pl.List) else c.arr.first()
                dtype = dtype.inner
            if isinstance(dtype, pl.Struct) and dtype.fields:
                c, dtype = c.struct.field(dtype.fields[0].name), dtype.fields[0].dtype
        if dtype.is_nested() or dtype in (pl.Binary, pl.Object):
            ok = False
        elif kind == "any":  # no kinds known: the type polars read
            exprs.append(c)
            continue
        elif kind in ("num", "pred") and (
            dtype.is_numeric() or (kind == "pred" and dtype == pl.Boolean)
        ):
            exprs.append(c.cast(pl.Float64).alias(name))
            continue
        elif kind in ("num", "pred") and dtype == pl.String:
            s = c.str.strip_chars()
            num = s.cast(pl.Float64, strict=False)
            text = s.is_not_null() & (s != "") & num.is_null()
            if kind == "pred":
                numbers = df.select(num.is_not_null().sum().alias("n")).item()
                if numbers == 0:  # labels: text
                    exprs.append(pl.when(s != "").then(s).alias(name))
                    continue
            exprs.append(num.alias(name))
            bad.append(text)
            continue
        elif kind == "num":
            ok = False
        else:
            exprs.append(c.cast(pl.String, strict=False).alias(name))
            continue
        if not ok:  # the whole column is of a type its field cannot take
            n = df.select(wrong.sum().alias("n")).item()
            if n:
                log.warning(
                    "column of the wrong type; its values are skipped",
                    extra={"where": where, "column": name, "dtype": str(dtype), "count": n},
                )
            exprs.append(pl.lit(None, pl.Float64 if kind != "text" else pl.String).alias(name))
            bad.append(wrong)
    reason = (
        pl.when(pl.any_horizontal(bad)).then(pl.lit("bad_value")).otherwise(pl.lit(None, pl.String))
        if bad
        else pl.lit(None, pl.String)
    )
    out = df.select(pl.int_range(pl.len()).alias("__row"), *exprs, reason.alias("__reason"))
    if "timestamp" in df.columns:
        out = out.with_columns(df.get_column("timestamp"))
    return out.drop("__row", "__reason"), out.get_column("__reason")


# -- timestamps -------------------------------------------------------------------------------
_OFFSET_RE = r"(?i)(z|[+-]\d\d:?\d\d)$"
_DATETIME_RE = r"^\d{4}-\d\d-\d\d([T ]\d\d:\d\d)?"  # naive only if it looks like a time
_TS_MIN_US = int(TS_MIN.timestamp() * 1_000_000)
_TS_MAX_US = int(TS_MAX.timestamp() * 1_000_000)


def _iso_one(value: str | None) -> datetime | None:
    """Python's ISO 8601 parser for the forms polars' RFC 3339 parser does not take."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def parse_timestamps(ts: pl.Series, fmt: str = "iso8601") -> tuple[pl.Series, pl.Series]:
    """UTC timestamps and, per row, the reason one is unusable (null when it is fine).

    Every row is parsed on its own (no format is inferred from the first value):
    ``iso8601`` text needs an offset (``Z`` or ``+02:00``; else ``naive_timestamp``);
    ``epoch_s`` / ``epoch_ms`` take numbers (or text that is a number). Times
    outside [:data:`TS_MIN`, :data:`TS_MAX`) are ``bad_timestamp``.
    """
    t = pl.DataFrame({"t": ts})
    dtype = ts.dtype
    missing = pl.col("t").is_null()
    naive = pl.lit(False)
    if fmt in ("epoch_s", "epoch_ms") and (dtype.is_numeric() or dtype == pl.String):
        v = pl.col("t")
        if dtype == pl.String:
            v = v.str.strip_chars()
            missing = missing | (v == "")
            v = v.cast(pl.Float64, strict=False)
        scale = 1_000_000 if fmt == "epoch_s" else 1_000
        us = v.cast(pl.Float64) * scale
        ok = us.is_finite() & (us >= _TS_MIN_US) & (us < _TS_MAX_US)
        parsed = pl.when(ok).then(us.cast(pl.Int64, strict=False)).cast(pl.Datetime("us", "UTC"))
    elif dtype == pl.String and fmt == "iso8601":
        s = pl.col("t").str.strip_chars()
        missing = missing | (s == "")
        naive = ~s.str.contains(_OFFSET_RE) & s.str.contains(_DATETIME_RE)
        parsed = s.str.to_datetime(
            format="%+", time_unit="us", time_zone="UTC", strict=False, exact=True
        )
        first = t.select(parsed.alias("p"), (~naive & ~missing).alias("offset"))
        retry = first.get_column("p").is_null() & first.get_column("offset").fill_null(False)
        if retry.any():  # e.g. minutes only, or a week date: Python's parser, row by row
            raw = ts.str.strip_chars()
            fixed = [_iso_one(raw[i]) if r else None for i, r in enumerate(retry.to_list())]
            again = pl.Series("p", fixed, pl.Datetime("us", "UTC"))
            parsed = pl.coalesce(parsed, pl.lit(again))
        parsed = pl.when(
            parsed.dt.epoch("us").is_between(_TS_MIN_US, _TS_MAX_US, closed="left")
        ).then(parsed)
    elif isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        parsed = pl.col("t").dt.convert_time_zone("UTC").dt.cast_time_unit("us")
        parsed = pl.when(
            parsed.dt.epoch("us").is_between(_TS_MIN_US, _TS_MAX_US, closed="left")
        ).then(parsed)
    elif isinstance(dtype, pl.Datetime):  # naive datetimes: mlmon cannot guess the zone
        parsed = pl.lit(None, pl.Datetime("us", "UTC"))
        naive = pl.lit(True)
    else:  # numbers without an epoch format, bools, lists...: the wrong type
        parsed = pl.lit(None, pl.Datetime("us", "UTC"))
    reason = (
        pl.when(missing)
        .then(pl.lit("missing_field"))
        .when(naive)
        .then(pl.lit("naive_timestamp"))
        .when(parsed.is_null())
        .then(pl.lit("bad_timestamp"))
        .otherwise(pl.lit(None, pl.String))
    )
    out = t.select(parsed.alias("p"), reason.alias("r"))
    return out.get_column("p"), out.get_column("r")


def _ts(value: Any) -> datetime | str:
    """A UTC datetime, or the reason it is not one."""
    if value is None or value == "":
        return "missing_field"
    if isinstance(value, datetime):
        parsed = value
    elif not isinstance(value, str):
        return "bad_timestamp"
    else:
        try:
            parsed = datetime.fromisoformat(
                value.strip().replace("Z", "+00:00").replace("z", "+00:00")
            )
        except ValueError:
            return "bad_timestamp"
    if parsed.tzinfo is None:
        return "naive_timestamp"
    try:
        utc = parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return "bad_timestamp"
    return utc if TS_MIN <= utc < TS_MAX else "bad_timestamp"


def _first(v: Any) -> Any:
    """The prediction of one row: a scalar, or the first element of a per-row vector."""
    while isinstance(v, list | tuple | dict):
        if isinstance(v, dict):  # e.g. {"score": 0.7} or {"label": "ICU"}: the first value
            v = next(iter(v.values()), None)
        elif not v:
            return None
        else:
            v = v[0]
    return v


# -- the record-format protocol and registry ------------------------------------------------
@dataclass(frozen=True)
class RawBatch:
    """Raw records of one file, as read: a columnar frame or decoded records with offsets.

    ``offsets[i]`` is where record ``i`` starts (a byte offset in text files,
    a row number in Parquet); ``lines[i]`` is its 1-based line (text files) or
    row (Parquet) number, for the log; ``end`` is the position after the batch.
    """

    source: str
    end: int
    frame: pl.DataFrame | None = None
    records: Sequence[Any] | None = None
    offsets: Sequence[int] | None = None
    lines: Sequence[int] | None = None


class RecordFormat(Protocol):
    """One stream's parser: raw batches in, flat-record frames out.

    ``columnar`` formats get whole frames (JSONL/CSV/Parquet read by polars);
    the others get decoded records with their offsets. A format that keeps
    records waiting across batches (a join) reports with :meth:`hold` the
    earliest offset per file it still needs, and saves what it must remember
    across a restart with :meth:`save` / :meth:`restore` (JSON-able, no raw
    content).
    """

    columnar: ClassVar[bool]

    def parse(self, batch: RawBatch) -> pl.DataFrame: ...

    def hold(self) -> dict[str, int]: ...

    def save(self, resume: Mapping[str, int]) -> dict[str, Any]: ...

    def restore(self, saved: Mapping[str, Any]) -> None: ...


class _Stateless:
    columnar: ClassVar[bool] = False

    def __init__(self, ctx: ParseContext) -> None:
        self.ctx = ctx

    def hold(self) -> dict[str, int]:
        return {}

    def save(self, resume: Mapping[str, int]) -> dict[str, Any]:
        return {}

    def restore(self, saved: Mapping[str, Any]) -> None:
        return None


# -- tabular ------------------------------------------------------------------------------
class TabularFormat(_Stateless):
    """Flat records: validate each field, HMAC the request-id column, require UTC timestamps.

    Gets decoded JSON records (JSONL) or a frame (CSV read as text, Parquet);
    every row is checked on its own and a bad one costs only itself.
    """

    columnar = True

    def parse(self, batch: RawBatch) -> pl.DataFrame:
        ctx = self.ctx
        lines = list(batch.lines) if batch.lines is not None else None
        if batch.frame is not None:
            if batch.frame.height == 0:
                return pl.DataFrame(schema=flat_schema(ctx))
            df, pre = _typed_frame(batch.frame, ctx, batch.source)
        else:
            recs = list(batch.records or ())
            if not recs:
                return pl.DataFrame(schema=flat_schema(ctx))
            df, reasons = _typed_records(recs, ctx, raw_time=True)
            pre = pl.Series("r", reasons, pl.String)
        if "timestamp" not in df.columns:
            ctx.bad.skip("missing_field", batch.source, df.height, lines)
            return pl.DataFrame(schema=flat_schema(ctx))
        parsed, ts_reason = parse_timestamps(df.get_column("timestamp"), ctx.timestamp_format)
        reasons_s = (
            pl.DataFrame({"a": pre, "b": ts_reason}).select(pl.coalesce("a", "b")).to_series()
        )
        bad = reasons_s.is_not_null()
        if bad.any():
            _count(ctx, reasons_s.to_list(), batch.source, lines)
        df = df.with_columns(parsed.alias("timestamp")).filter(~bad)
        if "score" in df.columns:  # a common alias of the prediction column
            if "prediction" not in df.columns:
                df = df.with_columns(pl.col("score").alias("prediction"))
            elif (
                df.schema["prediction"] == df.schema["score"] or df.schema["prediction"] == pl.Null
            ):
                df = df.with_columns(pl.coalesce("prediction", "score").alias("prediction"))
        rid = ctx.request_id_column
        if rid and rid in df.columns:
            ids = df.get_column(rid).cast(pl.String).to_list()
            df = df.with_columns(
                pl.Series("request_id_hmac", hmac_ids(ctx.secret, ids), dtype=pl.String)
            )
        elif "request_id_hmac" in df.columns:
            df = df.drop("request_id_hmac")  # never trust an upstream "hash"
        return _conform(df, ctx)


# -- SageMaker Data Capture ---------------------------------------------------------------
def _capture_payload(part: Any) -> tuple[str, str] | str:
    """``(kind, text)`` of an endpointInput/endpointOutput, kind json or csv; or a reason."""
    if not isinstance(part, dict) or "data" not in part:
        return "missing_field"
    data, enc = part["data"], str(part.get("encoding", "")).upper()
    ctype = str(part.get("observedContentType", "")).lower()
    if enc == "BASE64":
        try:
            data = base64.b64decode(data, validate=True).decode("utf-8")
        except (ValueError, TypeError, UnicodeDecodeError):
            return "bad_tensor"
    if not isinstance(data, str):
        return "bad_tensor"
    if enc == "JSON" or "json" in ctype:
        return "json", data
    if enc == "CSV" or "csv" in ctype or enc == "BASE64":
        return "csv", data
    return "bad_tensor"


def _feature_rows(body: Any, ctx: ParseContext) -> list[dict[str, Any]] | None:
    """Rows of features from a V1 body (``instances`` / list / dict) or a V2 ``inputs`` body."""
    if isinstance(body, dict):
        if "instances" in body:
            return _instances(body["instances"], ctx)
        inputs = body.get("inputs")
        if isinstance(inputs, list) and inputs and all(isinstance(t, dict) for t in inputs):
            return _v2_inputs(inputs, ctx)
        if inputs is not None:
            return _instances(inputs, ctx)
        if any(f in body for f in ctx.features):
            return _instances([body], ctx)
        return None
    return _instances(body, ctx)


def _instances(instances: Any, ctx: ParseContext) -> list[dict[str, Any]] | None:
    if not isinstance(instances, list) or not instances:
        return None
    k = len(ctx.features)
    if not isinstance(instances[0], dict | list) and len(instances) == k:
        instances = [instances]  # a single row given flat
    out = []
    for inst in instances:
        if isinstance(inst, dict):
            out.append({f: inst.get(f) for f in ctx.features})
        elif isinstance(inst, list) and len(inst) == k:
            out.append(dict(zip(ctx.features, inst, strict=True)))
        else:
            return None
    return out


def _v2_inputs(inputs: list[dict[str, Any]], ctx: ParseContext) -> list[dict[str, Any]] | None:
    """Open Inference Protocol tensors: one 1-D tensor per feature, or one [n, k] tensor."""
    if "image_mean" in ctx.features:  # image tensors become their statistics (docs/imaging.md)
        from mlmon.edge.imaging.tensors import image_rows

        images = image_rows(inputs, ctx.features)
        if images is not None:
            return images
    by_name = {t.get("name"): t for t in inputs}
    feats = list(ctx.features)
    if feats and set(feats) <= set(by_name):
        cols = {}
        for f in feats:
            data = by_name[f].get("data")
            if not isinstance(data, list):
                return None
            cols[f] = [_first(v) if isinstance(v, list) else v for v in data]
        sizes = {len(v) for v in cols.values()}
        if len(sizes) != 1:
            return None
        return [{f: cols[f][i] for f in feats} for i in range(sizes.pop())]
    t = inputs[0]
    data, shape = t.get("data"), t.get("shape")
    if not isinstance(data, list) or not isinstance(shape, list) or not shape:
        return None
    k = len(feats)
    flat = _flatten(data)
    if flat is None:
        return None
    if len(shape) == 1 and shape[0] == k and len(flat) == k:
        return [dict(zip(feats, flat, strict=True))]
    if len(shape) == 2 and shape[1] == k and len(flat) == shape[0] * k:
        return [dict(zip(feats, flat[i * k : (i + 1) * k], strict=True)) for i in range(shape[0])]
    return None


def _flatten(data: list[Any]) -> list[Any] | None:
    if not data or not isinstance(data[0], list):
        return data
    out: list[Any] = []
    for row in data:
        if not isinstance(row, list):
            return None
        out.extend(row)
    return out


def _predictions(body: Any, n: int) -> list[Any] | None:
    """``n`` predictions from a V1 (``predictions``) or V2 (``outputs``, first tensor) body."""
    if isinstance(body, dict):
        if "predictions" in body:
            preds = body["predictions"]
        elif isinstance(body.get("outputs"), list) and body["outputs"]:
            out = body["outputs"][0]
            if not isinstance(out, dict) or not isinstance(out.get("data"), list):
                return None
            data, shape = out["data"], out.get("shape")
            if (
                isinstance(shape, list)
                and len(shape) == 2
                and not (data and isinstance(data[0], list))
                and shape[0] == n
                and len(data) == n * shape[1]
            ):  # flat [n, k] tensor: the first element of each row
                return [data[i * shape[1]] for i in range(n)]
            preds = data
        elif len(body) == 1:  # e.g. {"score": 0.7} for a single row
            preds = list(body.values())
        else:
            return None
    else:
        preds = body
    if not isinstance(preds, list):
        preds = [preds]
    if len(preds) != n:
        return None
    return [_first(p) for p in preds]


def _csv_value(v: str) -> float | str:
    """A CSV cell as a number when it is one (a score), else the text (a label)."""
    try:
        return float(v)
    except ValueError:
        return v.strip()


def _csv_rows(text: str) -> list[list[str]]:
    return [r for r in csv.reader(io.StringIO(text)) if r]


class SageMakerCaptureFormat(_Stateless):
    """SageMaker Data Capture records (one JSON object per line)."""

    def parse(self, batch: RawBatch) -> pl.DataFrame:
        ctx = self.ctx
        rows: list[dict[str, Any]] = []
        records = batch.records or ()
        lines = list(batch.lines) if batch.lines is not None else [None] * len(records)
        bad_lines: list[Any] = []
        good_lines: list[Any] = []
        reasons: list[str | None] = []
        for rec, line in zip(records, lines, strict=True):
            got = self._one(rec)
            if isinstance(got, str):
                reasons.append(got)
                bad_lines.append(line)
            else:
                rows.extend(got)
                good_lines.extend([line] * len(got))
        known = batch.lines is not None
        _count(ctx, reasons, batch.source, bad_lines if known else None)
        return _rows_to_frame(rows, ctx, batch.source, good_lines if known else None)

    def _one(self, rec: Any) -> list[dict[str, Any]] | str:
        ctx = self.ctx
        if not isinstance(rec, dict):
            return "bad_json"
        cap, meta = rec.get("captureData"), rec.get("eventMetadata")
        if not isinstance(cap, dict) or not isinstance(meta, dict):
            return "missing_field"
        inp = _capture_payload(cap.get("endpointInput"))
        out = _capture_payload(cap.get("endpointOutput"))
        if isinstance(inp, str):
            return inp
        if isinstance(out, str):
            return out
        ts = _ts(meta.get("inferenceTime"))
        if isinstance(ts, str):
            return ts
        try:
            if inp[0] == "json":
                feats = _feature_rows(_json_text(inp[1]), ctx)
            else:
                feats = _instances(_csv_rows(inp[1]), ctx)
            if feats is None:
                return "bad_tensor"
            if out[0] == "json":
                preds = _predictions(_json_text(out[1]), len(feats))
            else:
                lines = _csv_rows(out[1])
                if len(lines) == len(feats):
                    preds = [_csv_value(line[0]) for line in lines]
                elif len(lines) == 1 and len(lines[0]) == len(feats):
                    preds = [_csv_value(v) for v in lines[0]]
                else:
                    preds = None
        except _Reject as exc:
            return exc.reason
        except (ValueError, csv.Error):
            return "bad_tensor"
        if preds is None:
            return "bad_tensor"
        rid = meta.get("inferenceId") or meta.get("eventId")
        rid_h = None if rid in (None, "") else hmac_id(ctx.secret, str(rid))
        for row, pred in zip(feats, preds, strict=True):
            row.update(timestamp=ts, prediction=pred, request_id_hmac=rid_h)
        return feats


# -- KServe CloudEvents -------------------------------------------------------------------
@dataclass(frozen=True)
class CloudEvent:
    """One KServe logger event, reduced to what the join needs (the body is parsed JSON)."""

    id: str
    kind: str  # "request" or "response"
    time: datetime | None
    body: Any
    model: str | None = None


def _attr(obj: Mapping[str, Any], name: str) -> Any:
    """A CloudEvent attribute from a structured event or a logged set of ``ce-*`` headers."""
    for key in (name, f"ce-{name}", f"ce_{name}", f"Ce-{name.capitalize()}"):
        if key in obj:
            return obj[key]
    for sub in ("headers", "attributes"):
        h = obj.get(sub)
        if isinstance(h, dict):
            for k, v in h.items():
                if k.lower() in (name, f"ce-{name}", f"ce_{name}"):
                    return v
    return None


def _decode_body(obj: Mapping[str, Any]) -> Any:
    """The event data as parsed (strict) JSON; raises ``_Reject`` when it is not JSON."""
    if "data_base64" in obj:
        try:
            raw = base64.b64decode(obj["data_base64"], validate=True)
        except (ValueError, TypeError) as exc:
            raise _Reject("bad_json") from exc
        return _json_text(raw, "bad_json")
    data = obj.get("data", obj.get("body"))
    if isinstance(data, bytes | bytearray | str):
        return _json_text(bytes(data) if isinstance(data, bytearray) else data, "bad_json")
    return data


def cloudevent_from(obj: Any) -> CloudEvent | str:
    """A :class:`CloudEvent` from a structured-mode event or a logged header/body record.

    Returns the reason (a :data:`REASONS` key) when the record is not a usable event.
    """
    if not isinstance(obj, dict):
        return "bad_json"
    eid, etype = _attr(obj, "id"), _attr(obj, "type")
    if not eid or not etype:
        return "missing_field"
    kind = str(etype).rsplit(".", 1)[-1].lower()
    if kind not in ("request", "response"):
        return "unknown_event_type"
    t = _attr(obj, "time")
    ts: datetime | None = None
    if t is not None:
        parsed = _ts(t)
        if isinstance(parsed, str):
            return parsed
        ts = parsed
    try:
        body = _decode_body(obj)
    except _Reject as exc:
        return exc.reason
    model = _attr(obj, "inferenceservicename")
    return CloudEvent(str(eid), kind, ts, body, None if model is None else str(model))


def pair_rows(req: CloudEvent, resp: CloudEvent, ctx: ParseContext) -> list[dict[str, Any]] | str:
    """Flat rows of one request/response pair, or the reason they are unusable."""
    feats = _feature_rows(req.body, ctx)
    if feats is None:
        return "bad_tensor"
    preds = _predictions(resp.body, len(feats))
    if preds is None:
        return "bad_tensor"
    ts = req.time or resp.time
    if ts is None:
        return "missing_field"
    latency = None
    if req.time is not None and resp.time is not None and resp.time >= req.time:
        latency = (resp.time - req.time).total_seconds() * 1000.0
    version = resp.body.get("model_version") if isinstance(resp.body, dict) else None
    version = None if version is None else str(version)
    rid = hmac_id(ctx.secret, req.id)
    for row, pred in zip(feats, preds, strict=True):
        row.update(
            timestamp=ts,
            latency_ms=latency,
            model_version=version,
            request_id_hmac=rid,
            prediction=pred,
        )
    return feats


@dataclass
class _Waiting:
    event: CloudEvent
    where: tuple[str, int] | None
    clock: float


class CloudEventJoiner:
    """Join request and response events by id, across batches.

    Parameters
    ----------
    ctx
        Features, secret and counters.
    timeout
        A request (or response) without its partner for longer than this is
        counted as ``unmatched`` and dropped. Measured in event time for
        files (the newest event time seen) and in wall-clock time when events
        have no time.
    max_pending
        At most this many events wait; the oldest beyond it are ``unmatched``.
    event_time
        Measure the timeout in event time (files: deterministic on replay) or,
        when False, in wall-clock time since the event arrived (the HTTP sink).
    """

    def __init__(
        self,
        ctx: ParseContext,
        timeout: timedelta = timedelta(minutes=5),
        max_pending: int = 200_000,
        *,
        event_time: bool = True,
    ) -> None:
        self.ctx = ctx
        self.timeout = timeout
        self.max_pending = max_pending
        self.event_time = event_time
        self.pending: dict[str, _Waiting] = {}
        self.clock: datetime | None = None
        #: HMACs of event ids already joined (or expired) and where their events were read.
        self.finished: dict[str, list[tuple[str, int]]] = {}

    def feed(
        self, event: CloudEvent, where: tuple[str, int] | None = None
    ) -> list[dict[str, Any]] | str | None:
        """Add one event; returns the pair's rows, a reason it was skipped, or None (waiting)."""
        if event.time is not None and (self.clock is None or event.time > self.clock):
            self.clock = event.time
        token = None
        if self.finished:
            token = hmac_id(self.ctx.secret, event.id)
            if token in self.finished:  # re-read after a restart: counted already
                if where is not None:
                    self.finished[token].append(where)
                return None
        other = self.pending.pop(event.id, None)
        if other is None:
            self.pending[event.id] = _Waiting(event, where, time.monotonic())
            if len(self.pending) > self.max_pending:
                oldest = next(iter(self.pending))
                self._finish(self.pending.pop(oldest))
                return "unmatched"
            return None
        if other.event.kind == event.kind:  # the same id twice: keep the newer
            self.pending[event.id] = _Waiting(event, where, time.monotonic())
            return "unmatched"
        req, resp = (event, other.event) if event.kind == "request" else (other.event, event)
        locs = [w for w in (where, other.where) if w is not None]
        if locs:
            self.finished[token or hmac_id(self.ctx.secret, event.id)] = locs
        return pair_rows(req, resp, self.ctx)

    def _finish(self, w: _Waiting) -> None:
        if w.where is not None:
            self.finished[hmac_id(self.ctx.secret, w.event.id)] = [w.where]

    def expire(self, now_monotonic: float | None = None) -> int:
        """Drop the events that waited longer than the timeout; returns how many."""
        limit = self.timeout.total_seconds()
        stale = []
        for eid, w in self.pending.items():
            if self.event_time and w.event.time is not None and self.clock is not None:
                if self.clock - w.event.time > self.timeout:
                    stale.append(eid)
            elif now_monotonic is not None and now_monotonic - w.clock > limit:
                stale.append(eid)
        for eid in stale:
            self._finish(self.pending.pop(eid))
        return len(stale)


class KServeCloudEventsFormat:
    """KServe logger CloudEvents, one per record, joined by id across batches and files."""

    columnar: ClassVar[bool] = False

    def __init__(self, ctx: ParseContext, timeout: timedelta = timedelta(minutes=5)) -> None:
        self.ctx = ctx
        self.joiner = CloudEventJoiner(ctx, timeout)

    def parse(self, batch: RawBatch) -> pl.DataFrame:
        rows: list[dict[str, Any]] = []
        records = batch.records or ()
        offsets = batch.offsets or [None] * len(records)  # type: ignore[list-item]
        lines = list(batch.lines) if batch.lines is not None else [None] * len(records)
        reasons: list[str | None] = []
        bad_lines: list[Any] = []
        row_lines: list[Any] = []
        for rec, off, line in zip(records, offsets, lines, strict=True):
            ev = cloudevent_from(rec)
            got = (
                ev
                if isinstance(ev, str)
                else self.joiner.feed(ev, None if off is None else (batch.source, int(off)))
            )
            if isinstance(got, str):
                reasons.append(got)
                bad_lines.append(line)
            elif got:
                rows.extend(got)
                row_lines.extend([line] * len(got))  # the line that completed the pair
        known = batch.lines is not None
        _count(self.ctx, reasons, batch.source, bad_lines if known else None)
        self.ctx.bad.skip("unmatched", batch.source, self.joiner.expire())
        return _rows_to_frame(rows, self.ctx, batch.source, row_lines if known else None)

    def hold(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for w in self.joiner.pending.values():
            if w.where is not None:
                src, off = w.where
                out[src] = min(off, out.get(src, off))
        return out

    def save(self, resume: Mapping[str, int]) -> dict[str, Any]:
        """Keep only the finished ids that a restart from ``resume`` would read again."""
        keep = {}
        for token, locs in self.joiner.finished.items():
            if any(off >= resume.get(src, 0) for src, off in locs):
                keep[token] = locs
        self.joiner.finished = keep
        return {
            "finished": {t: [[s, o] for s, o in locs] for t, locs in keep.items()},
            "clock": self.joiner.clock.isoformat() if self.joiner.clock else None,
        }

    def restore(self, saved: Mapping[str, Any]) -> None:
        self.joiner.finished = {
            t: [(str(s), int(o)) for s, o in locs] for t, locs in saved.get("finished", {}).items()
        }
        clock = saved.get("clock")
        self.joiner.clock = datetime.fromisoformat(clock) if clock else None


FormatFactory = Callable[[ParseContext], RecordFormat]


def register_stream_format(name: str, factory: FormatFactory, *, replace: bool = False) -> None:
    """Add a record format (a factory taking a :class:`ParseContext`).

    Raises
    ------
    DuplicateNameError
        ``name`` is registered already and ``replace`` is False.
    """
    if name in STREAM_FORMATS and not replace:
        raise DuplicateNameError(
            f"stream format {name!r} is already registered; pass replace=True to replace it"
        )
    STREAM_FORMATS[name] = factory


def stream_format(name: str) -> FormatFactory:
    """The factory of a registered record format.

    Raises
    ------
    UnknownNameError
        No such format; the message lists the registered ones.
    """
    try:
        return STREAM_FORMATS[name]
    except KeyError as exc:
        raise UnknownNameError(
            f"unknown stream format {name!r}; registered: {', '.join(sorted(STREAM_FORMATS))}"
        ) from exc


# -- reading files --------------------------------------------------------------------------
def _file_format(name: str) -> str | None:
    low = name.lower()
    for fmt, suffixes in FILE_FORMATS.items():
        if low.endswith(suffixes):
            return fmt
    return None


def _rx_escape(name: str) -> str:
    """``name`` as a literal in a (Rust) regular expression."""
    return "".join("\\" + c if c in ".^$|?*+()[]{}" else c for c in name)


def _csv_header(raw: bytes) -> list[str | None]:
    """Column names of a CSV header line; a repeated name is kept once (later ones: None)."""
    text = raw.removeprefix(_BOM).rstrip(b"\r\n").decode("utf-8", errors="replace")
    try:
        names = next(csv.reader([text]), [])
    except csv.Error:
        names = []
    seen: set[str] = set()
    out: list[str | None] = []
    for n in names:
        out.append(None if n in seen else n)
        seen.add(n)
    return out


@dataclass
class _FileInfo:
    path: str
    name: str
    size: int
    mtime: float | None


class FileStream:
    """New records from a folder of log files, read in name order, exactly once.

    Parameters
    ----------
    path
        A local folder or an fsspec URI (``s3://bucket/prefix``); only listed and read.
    record_format
        A name in :data:`STREAM_FORMATS`.
    state
        The stream's :class:`~mlmon.edge.checkpoint.StreamState` (positions live there).
    secret
        HMAC key for request ids.
    file_format
        Only read files of this format (``jsonl``, ``csv``, ``parquet``); None: all three.
    request_id_column
        Tabular records: the column with the request id.
    batch_bytes
        Text files are read in chunks of about this many bytes (whole lines).
    batch_rows
        Parquet files are read in batches of this many rows.
    settle
        A text file read to its end whose size and modification time this
        stream has seen unchanged for this long (on its own monotonic clock) is
        marked consumed and not opened again; log files that are still appended
        stay tracked by offset. The file's time is only compared with itself,
        never with the edge's wall clock, so a clock that differs from the
        storage's (another host, an object store, a moved system clock) cannot
        mark a growing file done.
    clock
        Monotonic seconds for ``settle`` (injectable for tests).
    storage_options
        fsspec options for remote folders.
    timestamp_format
        Tabular records: ``iso8601`` (default), ``epoch_s`` or ``epoch_ms``.
    max_line_bytes
        A longer line is skipped (``line_too_long``) without being read whole.
    commit_every_records, commit_every_files
        The default bounds of one :meth:`read_step` (a backlog is written and
        committed in steps of this many records or files).

    Notes
    -----
    A text file that shrinks was truncated or replaced (copy-truncate
    rotation): it is read again from its start, with a warning. A line without
    its newline is still being written and is read on a later call; once the
    file has settled it is read as the file's last record (``truncated_line``
    if it is not one). A UTF-8 byte order mark at the start of a file is
    skipped. CSV files are split at line ends, so quoted fields with newlines
    are not supported. Parquet files are taken as immutable once readable; one
    that still cannot be read once settled is counted ``unreadable_file`` and
    passed over. A bad record, line or file costs only itself: later records
    and files are read.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        record_format: str,
        state: StreamState,
        secret: bytes,
        *,
        file_format: str | None = None,
        request_id_column: str | None = "request_id",
        batch_bytes: int = 64 * 1024 * 1024,
        batch_rows: int = 250_000,
        settle: timedelta = timedelta(hours=1),
        unmatched_timeout: timedelta = timedelta(minutes=5),
        storage_options: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        timestamp_format: str = "iso8601",
        max_line_bytes: int = MAX_LINE_BYTES,
        commit_every_records: int = 100_000,
        commit_every_files: int = 10,
    ) -> None:
        import fsspec

        if file_format is not None and file_format not in FILE_FORMATS:
            raise ConfigError(
                f"stream file format {file_format!r} is unknown; use one of {', '.join(FILE_FORMATS)}"
            )
        if timestamp_format not in TIMESTAMP_FORMATS:
            raise ConfigError(
                f"stream timestamp_format {timestamp_format!r} is unknown; use one of "
                f"{', '.join(TIMESTAMP_FORMATS)}"
            )
        if max_line_bytes < 1:
            raise ConfigError(f"stream max_line_bytes must be positive, got {max_line_bytes}")
        if commit_every_records < 1 or commit_every_files < 1:
            raise ConfigError(
                "stream commit_every_records and commit_every_files must be at least 1, got "
                f"{commit_every_records} and {commit_every_files}"
            )
        self.commit_every_records = commit_every_records
        self.commit_every_files = commit_every_files
        self.path = os.fspath(path)
        self.file_format = file_format
        self.state = state
        self.ctx = ParseContext.for_reference(
            state.reference,
            secret,
            request_id_column=request_id_column,
            timestamp_format=timestamp_format,
        )
        self.max_line_bytes = max_line_bytes
        names = [*_kinds(self.ctx), "timestamp"]
        texts = [n for n, k in _kinds(self.ctx).items() if k == "text"]
        self._float_text_re: str | None = (
            '"(' + "|".join(_rx_escape(n) for n in texts) + r')"\s*:\s*-?[0-9]+[.eE]'
            if texts
            else None
        )
        # a key the pattern cannot name exactly turns the polars fast path off
        self._nested_re: str | None = (
            None
            if any(c in n for n in names for c in '"\\')
            else '"(' + "|".join(_rx_escape(n) for n in names) + r')"\s*:\s*[\[{]'
        )
        factory = stream_format(record_format)
        if record_format == "kserve_cloudevents":
            self.format: RecordFormat = KServeCloudEventsFormat(self.ctx, unmatched_timeout)
        else:
            self.format = factory(self.ctx)
        self.record_format = record_format
        self.batch_bytes = batch_bytes
        self.batch_rows = batch_rows
        self.settle = settle
        self.clock = clock
        # (size, mtime) of each file read to its end, and since when (self.clock) unchanged
        self._unchanged: dict[str, tuple[int, float | None, float]] = {}
        self.fs, self.root = fsspec.core.url_to_fs(self.path, **dict(storage_options or {}))
        self.key = self.path
        pos = self.state.positions.setdefault(self.key, {})
        pos.setdefault("done", [])
        pos.setdefault("offsets", {})
        self.format.restore(pos.get("format", {}))
        self._read: dict[str, int] = dict(pos["offsets"])  # read positions (ahead of committed)
        self._consumed: set[str] = set(pos["done"])  # read to the end in this process
        self._lines: dict[str, tuple[int, int]] = {}  # file -> (byte offset, its 1-based line)
        self._headers: dict[str, list[str | None]] = {}  # CSV file -> column names
        self.records = 0
        self.files_finished = 0  # files this process read new data from up to their end

    @property
    def bad_records(self) -> BadRecords:
        """Skipped records by reason (for the collector's metrics)."""
        return self.ctx.bad

    def counters(self) -> dict[str, int]:
        """``records`` profiled and skipped records by reason, since this stream was opened."""
        return {"records": self.records, **{f"skipped_{k}": v for k, v in self.ctx.bad.items()}}

    def _files(self) -> list[_FileInfo]:
        try:
            entries = self.fs.ls(self.root, detail=True)
        except FileNotFoundError as exc:
            raise ConfigError(
                f"stream folder {self.path} does not exist; mount the log folder read-only "
                "on the edge or fix models[].streams[].path"
            ) from exc
        except OSError as exc:
            raise EdgeError(f"stream folder {self.path} cannot be listed: {exc}") from exc
        out = []
        for e in entries:
            if e.get("type") != "file":
                continue
            name = e["name"].rstrip("/").rsplit("/", 1)[-1]
            fmt = _file_format(name)
            if (
                fmt is None
                or name.startswith(".")
                or (self.file_format and fmt != self.file_format)
            ):
                continue
            mtime = next(
                (e[k] for k in ("mtime", "LastModified", "last_modified") if e.get(k) is not None),
                None,
            )
            if isinstance(mtime, datetime):
                mtime = mtime.timestamp()
            out.append(_FileInfo(e["name"], name, int(e.get("size") or 0), mtime))
        return sorted(out, key=lambda f: f.name)

    # -- the reading loop ---------------------------------------------------------------
    def read(self, max_batches: int | None = None) -> int:
        """Profile new records into the state; returns the number of records added.

        Reads every file not consumed yet, in name order, batch by batch (at
        most ``max_batches`` batches when given), and records the positions
        reached in the state; :meth:`commit` saves them.
        """
        added = 0
        for n, frame in enumerate(self.batches()):
            added += self._add(frame)
            if max_batches is not None and n + 1 >= max_batches:
                break
        self.records += added
        return added

    def read_step(
        self, max_records: int | None = None, max_files: int | None = None
    ) -> tuple[int, bool]:
        """Read one bounded step of a backlog; returns (records added, whether to read on).

        Stops after the batch in which ``max_records`` records were read (kept
        or skipped; default ``commit_every_records``) or ``max_files`` files were
        read to their end (default ``commit_every_files``). The caller writes the
        windows that closed and commits, then calls again while the second value
        is true: after a crash only the last step is read again.
        """
        max_records = self.commit_every_records if max_records is None else max_records
        max_files = self.commit_every_files if max_files is None else max_files
        if max_records < 1 or max_files < 1:
            raise ConfigError("a stream step needs max_records and max_files of at least 1")
        added = seen = 0
        files = self.files_finished
        bad = sum(self.ctx.bad.values())
        for frame in self.batches():
            added += self._add(frame)
            seen += frame.height
            if (
                seen + sum(self.ctx.bad.values()) - bad >= max_records
                or self.files_finished - files >= max_files
            ):
                self.records += added
                return added, True
        self.records += added
        return added, False

    def _add(self, frame: pl.DataFrame) -> int:
        if not frame.height:
            return 0
        try:
            return self.state.add(frame)
        except (MlmonError, ValueError, OverflowError, pl.exceptions.PolarsError) as exc:
            # a frame the parser let through that the profiler refuses: costs that batch
            log.error(
                "records could not be profiled; skipped",
                extra={"where": self.ctx.where, "error_type": type(exc).__name__},
            )
            self.ctx.bad.skip("parse_error", self.ctx.where, frame.height)
            return 0

    def _parse(self, raw: RawBatch) -> pl.DataFrame:
        """The format's parse; a batch that fails unexpectedly costs that batch, not the stream."""
        try:
            return self.format.parse(raw)
        except Exception as exc:  # a bug in a parser must not stop the stream for good
            n = len(raw.records) if raw.records is not None else 0
            if raw.frame is not None:
                n = raw.frame.height
            log.error(
                "batch could not be parsed; its records are skipped",
                extra={"where": raw.source, "error_type": type(exc).__name__, "count": n},
            )
            self.ctx.bad.skip("parse_error", raw.source, n)
            return pl.DataFrame(schema=flat_schema(self.ctx))

    def batches(self) -> Iterator[pl.DataFrame]:
        """Flat-record frames of the records not read yet (positions advance as they are yielded).

        An empty frame marks a file read to its end.
        """
        pos = self.state.positions[self.key]
        for f in self._files():
            if f.name in self._consumed:
                continue
            fmt = _file_format(f.name)
            self.ctx.where = f.name
            if fmt == "parquet":
                yield from self._parquet(f)
                continue
            offset = self._read.get(f.name, 0)
            if f.size < offset:
                log.warning(
                    "log file shrank; reading it again from the start",
                    extra={"file": f.name, "offset": offset, "size": f.size},
                )
                offset = self._read[f.name] = 0
                self._lines.pop(f.name, None)
                self._headers.pop(f.name, None)
            start = offset
            while offset < f.size:
                chunk, skip = self._chunk(f, offset)
                if skip:  # one line longer than max_line_bytes: counted, never read whole
                    line = self._line_at(f, offset)
                    self.ctx.bad.skip("line_too_long", f.name, 1, [line])
                    offset += skip
                    self._read[f.name] = offset
                    self._lines[f.name] = (offset, line + 1)
                    self._update_positions()
                    continue
                if not chunk:
                    break
                raw = self._raw_text(f, fmt, offset, chunk)
                offset += len(chunk)
                self._read[f.name] = offset
                frame = self._parse(raw)
                self._update_positions()
                yield frame
            if offset < f.size and self._settled(f):
                # a last line without its newline that stopped changing: the file's last record
                line = self._line_at(f, offset)
                if f.size - offset > self.max_line_bytes:
                    self.ctx.bad.skip("line_too_long", f.name, 1, [line])
                    frame = pl.DataFrame(schema=flat_schema(self.ctx))
                else:
                    with self.fs.open(f.path, "rb") as fh:
                        fh.seek(offset)
                        tail = fh.read(f.size - offset)
                    frame = self._parse(self._raw_text(f, fmt, offset, tail, tail=True))
                offset = self._read[f.name] = f.size
                self._update_positions()
                yield frame
            if offset >= f.size and self._settled(f):
                pos["done"] = sorted({*pos["done"], f.name})
                self._consumed.add(f.name)
                self._unchanged.pop(f.name, None)
                self._lines.pop(f.name, None)
                self._headers.pop(f.name, None)
                self._update_positions()
            if offset > start and offset >= f.size:
                self.files_finished += 1
                yield pl.DataFrame(schema=flat_schema(self.ctx))

    def _settled(self, f: _FileInfo) -> bool:
        """True once ``f`` (read to its end) has kept its size and time for ``settle``."""
        now = self.clock()
        seen = self._unchanged.get(f.name)
        if seen is None or seen[:2] != (f.size, f.mtime):
            self._unchanged[f.name] = (f.size, f.mtime, now)
            return self.settle <= timedelta(0)
        return now - seen[2] >= self.settle.total_seconds()

    def _chunk(self, f: _FileInfo, offset: int) -> tuple[bytes, int]:
        """Whole lines from ``offset``.

        Returns ``(lines, 0)``; ``(b"", n)`` to skip a line longer than
        ``max_line_bytes`` (``n`` bytes with its newline, never held whole); or
        ``(b"", 0)`` when no line is complete yet.
        """
        with self.fs.open(f.path, "rb") as fh:
            fh.seek(offset)
            data = fh.read(self.batch_bytes)
            cut = data.rfind(b"\n")
            if cut >= 0:
                return data[: cut + 1], 0
            while len(data) <= self.max_line_bytes:  # one line longer than a batch
                more = fh.read(max(len(data), 1 << 16))
                if not more:
                    return b"", 0  # a line still being written: read it next time
                nl = more.find(b"\n")
                if nl >= 0:
                    line = data + more[: nl + 1]
                    return (b"", len(line)) if len(line) - 1 > self.max_line_bytes else (line, 0)
                data += more
            end = offset + len(data)  # too long: find where it ends, block by block
            while True:
                block = fh.read(1 << 20)
                if not block:
                    return b"", 0  # still being written (or cut: see the settled tail)
                nl = block.find(b"\n")
                if nl >= 0:
                    return b"", end + nl + 1 - offset
                end += len(block)

    def _line_at(self, f: _FileInfo, offset: int) -> int:
        """The 1-based line number of the line starting at byte ``offset`` of ``f``."""
        known = self._lines.get(f.name)
        if known is not None and known[0] == offset:
            return known[1]
        line, pos = 1, 0
        if offset:
            with self.fs.open(f.path, "rb") as fh:  # after a restart: count once per file
                while pos < offset:
                    block = fh.read(min(1 << 20, offset - pos))
                    if not block:
                        break
                    line += block.count(b"\n")
                    pos += len(block)
        self._lines[f.name] = (offset, line)
        return line

    def _raw_text(
        self, f: _FileInfo, fmt: str | None, offset: int, chunk: bytes, *, tail: bool = False
    ) -> RawBatch:
        """Decode whole lines (``tail``: one last line without its newline) into a batch."""
        end = offset + len(chunk)
        first = self._line_at(f, offset)
        self._lines[f.name] = (end, first + chunk.count(b"\n"))
        pos = offset
        if offset == 0 and chunk.startswith(_BOM):  # a UTF-8 byte order mark: not data
            log.info("byte order mark skipped", extra={"where": f.name})
            chunk, pos = chunk[len(_BOM) :], len(_BOM)
        lines = chunk.split(b"\n")
        if not tail:
            lines.pop()  # the chunk ends with a newline
        if fmt == "csv":
            return self._csv(f, pos, first, lines, end, tail)
        if self.format.columnar and not tail:
            frame = self._fast_ndjson(lines)
            if frame is not None:
                return RawBatch(f.name, end, frame=frame, lines=range(first, first + len(lines)))

        def one(line: bytes) -> tuple[Any, str | None]:
            value, reason = decode_json_line(line)
            if reason is None and not isinstance(value, dict):
                reason = "not_an_object"
            if tail and reason == "bad_json":
                reason = "truncated_line"
            return value, reason

        records, offsets, numbers = self._each_line(f, lines, pos, first, one)
        return RawBatch(f.name, end, records=records, offsets=offsets, lines=numbers)

    def _each_line(
        self,
        f: _FileInfo,
        lines: list[bytes],
        pos: int,
        first: int,
        parse: Callable[[bytes], tuple[Any, str | None]],
        *,
        strip_cr: bool = False,
    ) -> tuple[list[Any], list[int], list[int]]:
        """Each line parsed on its own: a bad line (its reason counted) costs only itself.

        ``lines`` start at byte ``pos`` and line number ``first`` of ``f``, each followed by
        one newline. A line longer than ``max_line_bytes`` (after its ``\\r`` when
        ``strip_cr``) is ``line_too_long`` without being parsed; otherwise ``parse`` gives
        ``(value, None)`` or ``(None, reason)``. Returns the good lines' values, byte offsets
        and line numbers.
        """
        values: list[Any] = []
        offsets: list[int] = []
        numbers: list[int] = []
        reasons: list[str | None] = []
        bad_lines: list[int] = []
        for i, line in enumerate(lines):
            start, pos = pos, pos + len(line) + 1
            if strip_cr:
                line = line.rstrip(b"\r")
            value, reason = (
                (None, "line_too_long") if len(line) > self.max_line_bytes else parse(line)
            )
            if reason is not None:
                reasons.append(reason)
                bad_lines.append(first + i)
                continue
            values.append(value)
            offsets.append(start)
            numbers.append(first + i)
        _count(self.ctx, reasons, f.name, bad_lines)
        return values, offsets, numbers

    def _fast_ndjson(self, lines: list[bytes]) -> pl.DataFrame | None:
        """The batch read by polars, when that cannot differ from the strict parser; else None.

        Only a batch that passes every check goes this way: each line a UTF-8
        object within ``max_line_bytes``, no control byte, no ``\\ud800``-style
        escape, no key twice, and polars reads it whole. Anything else (NaN,
        a bool among numbers, nesting past polars' depth limit...) makes polars
        or a check refuse, and the strict parser reads the batch line by line.
        Values are then checked per row as for any frame (:func:`_typed_frame`).
        """
        if self._nested_re is None or not lines or max(map(len, lines)) > self.max_line_bytes:
            return None
        data = b"\n".join(lines)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return None
        text = pl.Series("l", lines, pl.Binary).cast(pl.String)
        keys = text.str.extract_all(_KEY_RE)
        checks = pl.DataFrame({"t": text, "k": keys}).select(
            (~pl.col("t").str.strip_chars_start().str.starts_with("{")).any().alias("object"),
            # a raw control byte, or a \\ud800-style escape (polars reads a lone one as NUL)
            pl.col("t").str.contains(_CONTROL_RE).any().alias("control"),
            (pl.col("k").list.len() != pl.col("k").list.n_unique()).any().alias("repeat"),
            # a list or an object under a field mlmon reads: polars may turn it into text
            pl.col("t").str.contains(self._nested_re).any().alias("nested"),
        )
        if any(checks.row(0)):
            return None
        try:
            frame = pl.read_ndjson(data, infer_schema_length=None)
        except pl.exceptions.PolarsError:
            return None
        if frame.height != len(lines) or not self._plain_types(frame, text):
            return None
        return frame

    def _plain_types(self, frame: pl.DataFrame, text: pl.Series) -> bool:
        """True when polars' types leave nothing to guess: no column it had to coerce.

        Polars turns a column of numbers and text into text (``1e16`` becomes
        ``"10000000000000000"``) and cannot say which was which; the strict
        parser can. So numbers must be numbers, predictions numbers or bools,
        texts text or integers (written the same either way), timestamps text
        (``iso8601``) or numbers (epoch); anything else goes the strict way.
        """
        floats_in_text = False
        for name, kind in _kinds(self.ctx).items():
            dtype = frame.schema.get(name)
            if dtype is None or dtype == pl.Null:
                continue
            if kind == "num" and not dtype.is_numeric():
                return False
            if kind == "pred" and not (dtype.is_numeric() or dtype == pl.Boolean):
                return False
            if kind == "text":
                if not (dtype == pl.String or dtype.is_integer()):
                    return False
                floats_in_text = floats_in_text or dtype == pl.String
            if kind == "any" and (dtype.is_nested() or dtype == pl.Boolean):
                return False
        ts = frame.schema.get("timestamp")
        if ts is not None and ts != pl.Null:
            if self.ctx.timestamp_format == "iso8601" and ts != pl.String:
                return False
            if self.ctx.timestamp_format != "iso8601" and not ts.is_numeric():
                return False
        if floats_in_text and self._float_text_re is not None:
            return not bool(text.str.contains(self._float_text_re).any())
        return True

    def _fast_csv(self, lines: list[bytes], names: list[str | None]) -> pl.DataFrame | None:
        """The batch read by polars (as text), when that cannot differ from the line parser.

        Only without any quote character (then a row is its line split at commas,
        whoever splits it), blank line, carriage return, control byte or line over
        ``max_line_bytes``, in valid UTF-8, every row as wide as the header.
        """
        if not lines or not names or max(map(len, lines)) > self.max_line_bytes:
            return None
        data = b"\n".join(lines)
        if b'"' in data or b"\r" in data or b"\n\n" in data or _CONTROL_BYTES.search(data):
            return None
        if not lines[0].strip() or not lines[-1].strip():
            return None
        try:
            text = pl.Series("l", data.decode("utf-8").split("\n"), pl.String)
        except UnicodeDecodeError:
            return None
        if (text.str.count_matches(",", literal=True) != len(names) - 1).any():
            return None  # a short row would be padded with nulls: the line parser says ragged
        try:
            frame = pl.read_csv(
                data, has_header=False, infer_schema=False, quote_char=None,
                new_columns=[f"c{i}" for i in range(len(names))],
            )  # fmt: skip
        except pl.exceptions.PolarsError:
            return None
        if frame.height != len(lines) or frame.width != len(names):
            return None
        keep = {f"c{i}": n for i, n in enumerate(names) if n is not None}
        return frame.select([pl.col(c).alias(n) for c, n in keep.items()])

    def _header(self, f: _FileInfo) -> list[str | None]:
        """A CSV file's column names (a repeated name is read once: later ones are dropped)."""
        names = self._headers.get(f.name)
        if names is None:
            with self.fs.open(f.path, "rb") as fh:
                raw = fh.readline(self.max_line_bytes + 1)
            names = _csv_header(raw)
            self._headers[f.name] = names
        return names

    def _csv(
        self, f: _FileInfo, pos: int, first: int, lines: list[bytes], end: int, tail: bool
    ) -> RawBatch:
        """CSV lines, each parsed on its own (a ragged or broken row costs only itself)."""
        if pos <= len(_BOM) and first == 1 and lines:
            self._headers[f.name] = _csv_header(lines[0])
            lines, first, pos = lines[1:], 2, pos + len(lines[0]) + 1
        names = self._header(f)
        fast = self._fast_csv(lines, names) if self.format.columnar and not tail else None
        if fast is not None:
            return RawBatch(f.name, end, frame=fast, lines=range(first, first + len(lines)))

        def one(line: bytes) -> tuple[Any, str | None]:
            if not line.strip():
                return None, "empty_line"
            try:
                row = next(csv.reader([line.decode("utf-8")], strict=True))
            except UnicodeDecodeError:
                return None, "bad_encoding"
            except csv.Error:
                return None, "truncated_line" if tail else "bad_csv"
            return (row, None) if len(row) == len(names) else (None, "ragged_row")

        rows, offsets, numbers = self._each_line(f, lines, pos, first, one, strip_cr=True)
        cols = {
            n: pl.Series(n, [r[j] or None for r in rows], pl.String)
            for j, n in enumerate(names)
            if n is not None
        }
        frame = pl.DataFrame(cols) if cols else pl.DataFrame()
        if self.format.columnar:
            return RawBatch(f.name, end, frame=frame, lines=numbers)
        return RawBatch(f.name, end, records=frame.to_dicts(), offsets=offsets, lines=numbers)

    def _parquet(self, f: _FileInfo) -> Iterator[pl.DataFrame]:
        pos = self.state.positions[self.key]
        start = self._read.get(f.name, 0)
        try:
            with self.fs.open(f.path, "rb") as fh:
                pf = pq.ParquetFile(fh)
                total = pf.metadata.num_rows
                row = 0
                for rg in range(pf.num_row_groups):
                    n = pf.metadata.row_group(rg).num_rows
                    if row + n <= start:
                        row += n
                        continue
                    table = pf.read_row_group(rg)
                    skip = max(0, start - row)
                    for off in range(skip, n, self.batch_rows):
                        part = table.slice(off, self.batch_rows)
                        frame = pl.from_arrow(part)
                        assert isinstance(frame, pl.DataFrame)
                        first = row + off
                        numbers = list(range(first + 1, first + part.num_rows + 1))
                        raw = (
                            RawBatch(f.name, first + part.num_rows, frame=frame, lines=numbers)
                            if self.format.columnar
                            else RawBatch(
                                f.name,
                                first + part.num_rows,
                                records=frame.to_dicts(),
                                offsets=list(range(first, first + part.num_rows)),
                                lines=numbers,
                            )
                        )
                        self._read[f.name] = raw.end
                        out = self._parse(raw)
                        self._update_positions()
                        yield out
                    row += n
        except (
            pa.ArrowException,
            OSError,
            ValueError,
            TypeError,
            pl.exceptions.PolarsError,
        ) as exc:
            # not Parquet, a corrupt footer or page, a type polars cannot hold: if the file
            # keeps its size and time for `settle`, it is counted once and passed over
            if not self._settled(f):
                log.warning(
                    "parquet file not readable (yet); skipped this time",
                    extra={"file": f.name, "error_type": type(exc).__name__},
                )
                return
            log.error(
                "parquet file not readable; passed over",
                extra={"file": f.name, "error_type": type(exc).__name__},
            )
            self.ctx.bad.skip("unreadable_file", f.name, 1)
            total = self._read.get(f.name, 0)
        if self._read.get(f.name, 0) >= total:
            pos["done"] = sorted({*pos["done"], f.name})
            self._consumed.add(f.name)
            self._read[f.name] = total
            self._update_positions()
            self.files_finished += 1
            yield pl.DataFrame(schema=flat_schema(self.ctx))

    def _update_positions(self) -> None:
        """Committable positions: the read positions, held back to events still waiting."""
        pos = self.state.positions[self.key]
        held = self.format.hold()
        resume = {name: min(off, held.get(name, off)) for name, off in self._read.items()}
        done = set(pos["done"])
        for name in list(done):
            if name in held:  # a consumed file with an event still waiting: re-read it
                done.discard(name)
                resume[name] = held[name]
        pos["done"] = sorted(done)
        pos["offsets"] = {k: v for k, v in resume.items() if k not in done}
        for name in done:
            self._read.pop(name, None)
        pos["format"] = self.format.save(resume)

    def closed_windows(self, now: datetime | None = None) -> list[Any]:
        """See :meth:`StreamState.closed_windows`."""
        return self.state.closed_windows(now)

    def commit(self) -> None:
        """See :meth:`StreamState.commit`: call it after the closed windows were written."""
        self._update_positions()
        self.state.commit()


def open_stream(
    cfg: Any,
    *,
    reference: Reference,
    secret: bytes,
    state_dir: str | os.PathLike[str],
    window: timedelta,
    lateness: timedelta,
    **kwargs: Any,
) -> FileStream:
    """A :class:`FileStream` for a :class:`~mlmon.edge.config.StreamConfig`.

    Raises
    ------
    UnknownNameError
        ``cfg.kind`` is not a registered record format.
    """
    stream_format(cfg.kind)
    state = StreamState(reference, state_dir, window=window, lateness=lateness)
    return FileStream(
        cfg.path,
        cfg.kind,
        state,
        secret,
        file_format=getattr(cfg, "format", None),
        request_id_column=getattr(cfg, "request_id_column", "request_id"),
        timestamp_format=getattr(cfg, "timestamp_format", "iso8601"),
        max_line_bytes=getattr(cfg, "max_line_bytes", MAX_LINE_BYTES),
        commit_every_records=getattr(cfg, "commit_every_records", 100_000),
        commit_every_files=getattr(cfg, "commit_every_files", 10),
        **{"settle": getattr(cfg, "settle", timedelta(hours=1)), **kwargs},
    )


#: Record formats by name: a factory taking a :class:`ParseContext`.
STREAM_FORMATS: dict[str, FormatFactory] = {
    "tabular": TabularFormat,
    "kserve_cloudevents": KServeCloudEventsFormat,
    "sagemaker_capture": SageMakerCaptureFormat,
}

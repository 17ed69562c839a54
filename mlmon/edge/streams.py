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
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Protocol

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from mlmon.edge.checkpoint import StreamState
from mlmon.errors import ConfigError, DuplicateNameError, EdgeError, UnknownNameError
from mlmon.governance.deid import hmac_id, hmac_ids
from mlmon.profiles.frame import Reference
from mlmon.profiles.kinds import NumericProfile

__all__ = [
    "FILE_FORMATS",
    "REASONS",
    "STREAM_FORMATS",
    "BadRecords",
    "CloudEvent",
    "CloudEventJoiner",
    "FileStream",
    "ParseContext",
    "RawBatch",
    "RecordFormat",
    "flat_schema",
    "open_stream",
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
    "missing_field": "a required field (timestamp, id, type, captureData...) is absent",
    "naive_timestamp": "a timestamp without a UTC offset",
    "bad_timestamp": "a timestamp that cannot be parsed",
    "bad_tensor": "inputs or outputs of an unexpected shape or type",
    "unmatched": "a request without its response (or a response without its request) past the timeout",
    "unknown_event_type": "a CloudEvent type that is neither a request nor a response",
}


# -- counters and context -----------------------------------------------------------------
class BadRecords(Counter[str]):
    """Skipped records by reason; a log line per batch names reason, count and place only."""

    def skip(self, reason: str, where: str = "", n: int = 1) -> None:
        """Count ``n`` skipped records for ``reason``; never pass record content in ``where``."""
        if n <= 0:
            return
        self[reason] += n
        log.warning("skipped records", extra={"reason": reason, "count": n, "where": where})


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
    """

    features: Sequence[str]
    secret: bytes
    numeric: frozenset[str] | None = None
    request_id_column: str | None = "request_id"
    bad: BadRecords = field(default_factory=BadRecords)
    where: str = ""

    @classmethod
    def for_reference(cls, reference: Reference, secret: bytes, **kwargs: Any) -> ParseContext:
        """A context with the reference's features and kinds."""
        names = tuple(reference.schema.names)
        numeric = frozenset(n for n in names if isinstance(reference.profiles[n], NumericProfile))
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
    for c, t in _CONTRACT.items():
        if c in ctx.features:
            continue
        cols.append((pl.col(c) if c in df.columns else pl.lit(None)).cast(t, strict=False).alias(c))
    return df.select(cols)


def _rows_to_frame(rows: list[dict[str, Any]], ctx: ParseContext) -> pl.DataFrame:
    """Flat rows (dicts) to a conformed frame, column by column."""
    if not rows:
        return pl.DataFrame(schema=flat_schema(ctx))
    data: dict[str, pl.Series] = {}
    for c in (*ctx.features, "prediction"):
        values = [r.get(c) for r in rows]
        try:
            data[c] = pl.Series(c, values, strict=False)
        except (TypeError, ValueError, pl.exceptions.PolarsError):
            data[c] = pl.Series(c, [None if v is None else str(v) for v in values], pl.String)
    for c, t in _CONTRACT.items():
        data[c] = pl.Series(c, [r.get(c) for r in rows], t, strict=False)
    return _conform(pl.DataFrame(data), ctx)


def _ts(value: Any) -> datetime | str:
    """A UTC datetime, or the reason it is not one."""
    if value is None or value == "":
        return "missing_field"
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else "naive_timestamp"
    if not isinstance(value, str):
        return "bad_timestamp"
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return "bad_timestamp"
    return parsed.astimezone(UTC) if parsed.tzinfo else "naive_timestamp"


def _first(v: Any) -> Any:
    """The prediction of one row: a scalar, or the first element of a per-row vector."""
    while isinstance(v, list | tuple):
        if not v:
            return None
        v = v[0]
    if isinstance(v, dict):  # e.g. {"score": 0.7} or {"label": "ICU"}: the first value
        return _first(next(iter(v.values()), None))
    return v


# -- the record-format protocol and registry ------------------------------------------------
@dataclass(frozen=True)
class RawBatch:
    """Raw records of one file, as read: a columnar frame or decoded records with offsets.

    ``offsets[i]`` is where record ``i`` starts (a byte offset in text files,
    a row number in Parquet); ``end`` is the position after the batch.
    """

    source: str
    end: int
    frame: pl.DataFrame | None = None
    records: Sequence[Any] | None = None
    offsets: Sequence[int] | None = None


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
_OFFSET_RE = r"(?i)(z|[+-]\d\d:?\d\d)$"


def _parse_timestamps(ts: pl.Series) -> tuple[pl.Series, pl.Series]:
    """UTC timestamps and, per row, the reason one is unusable (null when it is fine)."""
    t = pl.DataFrame({"t": ts})
    if ts.dtype == pl.String:
        s = pl.col("t").str.strip_chars()
        parsed = s.str.to_datetime(time_unit="us", time_zone="UTC", strict=False)
        reason = (
            pl.when(s.is_null() | (s == ""))
            .then(pl.lit("missing_field"))
            .when(~s.str.contains(_OFFSET_RE))
            .then(pl.lit("naive_timestamp"))
            .when(parsed.is_null())
            .then(pl.lit("bad_timestamp"))
            .otherwise(pl.lit(None, pl.String))
        )
    elif isinstance(ts.dtype, pl.Datetime) and ts.dtype.time_zone is not None:
        parsed = pl.col("t").dt.convert_time_zone("UTC").dt.cast_time_unit("us")
        reason = (
            pl.when(parsed.is_null())
            .then(pl.lit("missing_field"))
            .otherwise(pl.lit(None, pl.String))
        )
    else:  # naive datetimes, numbers: mlmon cannot guess the zone
        parsed = pl.lit(None, pl.Datetime("us", "UTC"))
        reason = (
            pl.when(pl.col("t").is_null())
            .then(pl.lit("missing_field"))
            .otherwise(pl.lit("naive_timestamp"))
        )
    out = t.select(parsed.alias("p"), reason.alias("r"))
    return out.get_column("p"), out.get_column("r")


class TabularFormat(_Stateless):
    """Flat records: HMAC the request-id column, require UTC timestamps (vectorised)."""

    columnar = True

    def parse(self, batch: RawBatch) -> pl.DataFrame:
        ctx = self.ctx
        df: pl.DataFrame | None
        if batch.frame is not None:
            df = batch.frame
        else:
            recs = [r for r in batch.records or () if isinstance(r, dict)]
            ctx.bad.skip("bad_json", batch.source, len(batch.records or ()) - len(recs))
            df = pl.DataFrame(recs, infer_schema_length=None, strict=False) if recs else None
        if df is None or df.height == 0:
            return pl.DataFrame(schema=flat_schema(ctx))
        if "timestamp" not in df.columns:
            ctx.bad.skip("missing_field", batch.source, df.height)
            return pl.DataFrame(schema=flat_schema(ctx))
        parsed, reasons = _parse_timestamps(df.get_column("timestamp"))
        bad = reasons.is_not_null()
        if bad.any():
            for r, n in Counter(reasons.filter(bad).to_list()).items():
                ctx.bad.skip(str(r), batch.source, n)
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
        bad: Counter[str] = Counter()
        for rec in batch.records or ():
            got = self._one(rec)
            if isinstance(got, str):
                bad[got] += 1
            else:
                rows.extend(got)
        for reason, n in bad.items():
            ctx.bad.skip(reason, batch.source, n)
        return _rows_to_frame(rows, ctx)

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
                feats = _feature_rows(json.loads(inp[1]), ctx)
            else:
                feats = _instances(_csv_rows(inp[1]), ctx)
            if feats is None:
                return "bad_tensor"
            if out[0] == "json":
                preds = _predictions(json.loads(out[1]), len(feats))
            else:
                lines = _csv_rows(out[1])
                if len(lines) == len(feats):
                    preds = [_csv_value(line[0]) for line in lines]
                elif len(lines) == 1 and len(lines[0]) == len(feats):
                    preds = [_csv_value(v) for v in lines[0]]
                else:
                    preds = None
        except ValueError:
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
    """The event data as parsed JSON; raises ValueError when it is not JSON."""
    if "data_base64" in obj:
        return json.loads(base64.b64decode(obj["data_base64"], validate=True))
    data = obj.get("data", obj.get("body"))
    if isinstance(data, bytes | bytearray):
        return json.loads(data)
    if isinstance(data, str):
        return json.loads(data)
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
    except (ValueError, TypeError):
        return "bad_json"
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
        bad: Counter[str] = Counter()
        records = batch.records or ()
        offsets = batch.offsets or [None] * len(records)  # type: ignore[list-item]
        for rec, off in zip(records, offsets, strict=True):
            ev = cloudevent_from(rec)
            if isinstance(ev, str):
                bad[ev] += 1
                continue
            got = self.joiner.feed(ev, None if off is None else (batch.source, int(off)))
            if isinstance(got, str):
                bad[got] += 1
            elif got:
                rows.extend(got)
        bad["unmatched"] += self.joiner.expire()
        for reason, n in bad.items():
            self.ctx.bad.skip(reason, batch.source, n)
        return _rows_to_frame(rows, self.ctx)

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

    Notes
    -----
    A text file that shrinks was truncated or replaced (copy-truncate
    rotation): it is read again from its start, with a warning. A line without
    its newline is still being written and is read on a later call. CSV files
    are split at line ends, so quoted fields with newlines are not supported.
    Parquet files are taken as immutable once readable.
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
    ) -> None:
        import fsspec

        if file_format is not None and file_format not in FILE_FORMATS:
            raise ConfigError(
                f"stream file format {file_format!r} is unknown; use one of {', '.join(FILE_FORMATS)}"
            )
        self.path = os.fspath(path)
        self.file_format = file_format
        self.state = state
        self.ctx = ParseContext.for_reference(
            state.reference, secret, request_id_column=request_id_column
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
        self.records = 0

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
            added += self.state.add(frame) if frame.height else 0
            if max_batches is not None and n + 1 >= max_batches:
                break
        self.records += added
        return added

    def batches(self) -> Iterator[pl.DataFrame]:
        """Flat-record frames of the records not read yet (positions advance as they are yielded)."""
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
            while offset < f.size:
                chunk = self._chunk(f, offset)
                if chunk is None:
                    break
                raw = self._raw_text(f, fmt, offset, chunk)
                offset += len(chunk)
                self._read[f.name] = offset
                frame = self.format.parse(raw)
                self._update_positions()
                yield frame
            if offset >= f.size and self._settled(f):
                pos["done"] = sorted({*pos["done"], f.name})
                self._consumed.add(f.name)
                self._unchanged.pop(f.name, None)
                self._update_positions()

    def _settled(self, f: _FileInfo) -> bool:
        """True once ``f`` (read to its end) has kept its size and time for ``settle``."""
        now = self.clock()
        seen = self._unchanged.get(f.name)
        if seen is None or seen[:2] != (f.size, f.mtime):
            self._unchanged[f.name] = (f.size, f.mtime, now)
            return self.settle <= timedelta(0)
        return now - seen[2] >= self.settle.total_seconds()

    def _chunk(self, f: _FileInfo, offset: int) -> bytes | None:
        size = self.batch_bytes
        with self.fs.open(f.path, "rb") as fh:
            fh.seek(offset)
            while True:
                data = fh.read(size)
                cut = data.rfind(b"\n")
                if cut >= 0:
                    return data[: cut + 1]
                if offset + len(data) >= f.size or len(data) < size:
                    return None  # a line still being written: read it next time
                size *= 2  # one line longer than a batch: read more

    def _raw_text(self, f: _FileInfo, fmt: str | None, offset: int, chunk: bytes) -> RawBatch:
        end = offset + len(chunk)
        if fmt == "csv":
            header = b""
            if offset > 0:
                with self.fs.open(f.path, "rb") as fh:
                    header = fh.readline()
            try:
                frame = pl.read_csv(header + chunk, infer_schema_length=10_000)
            except pl.exceptions.PolarsError as exc:
                raise EdgeError(f"{f.name}: cannot parse CSV at byte {offset}: {exc}") from exc
            if self.format.columnar:
                return RawBatch(f.name, end, frame=frame)
            return RawBatch(f.name, end, records=frame.to_dicts(), offsets=[offset] * frame.height)
        lines = chunk.split(b"\n")[:-1]
        if self.format.columnar:
            return RawBatch(f.name, end, frame=self._ndjson(lines, f.name))
        records: list[Any] = []
        offsets: list[int] = []
        pos = offset
        bad = 0
        for line in lines:
            start = pos
            pos += len(line) + 1
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
                offsets.append(start)
            except ValueError:
                bad += 1
        self.ctx.bad.skip("bad_json", f.name, bad)
        return RawBatch(f.name, end, records=records, offsets=offsets)

    def _ndjson(self, lines: list[bytes], where: str) -> pl.DataFrame | None:
        lines = [ln for ln in lines if ln.strip()]
        if not lines:
            return None
        try:
            return pl.read_ndjson(b"\n".join(lines), infer_schema_length=None)
        except pl.exceptions.PolarsError:
            pass
        good, bad = [], 0  # slow path: find the malformed lines, count them, keep the rest
        for ln in lines:
            try:
                if isinstance(json.loads(ln), dict):
                    good.append(ln)
                    continue
            except ValueError:
                pass
            bad += 1
        self.ctx.bad.skip("bad_json", where, bad)
        if not good:
            return None
        return pl.read_ndjson(b"\n".join(good), infer_schema_length=None)

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
                        raw = (
                            RawBatch(f.name, row + off + part.num_rows, frame=frame)
                            if self.format.columnar
                            else RawBatch(
                                f.name,
                                row + off + part.num_rows,
                                records=frame.to_dicts(),
                                offsets=list(range(row + off, row + off + part.num_rows)),
                            )
                        )
                        self._read[f.name] = raw.end
                        out = self.format.parse(raw)
                        self._update_positions()
                        yield out
                    row += n
        except (pa.ArrowInvalid, OSError) as exc:
            log.warning(
                "parquet file not readable (yet); skipped this time",
                extra={"file": f.name, "error": type(exc).__name__},
            )
            return
        if self._read.get(f.name, 0) >= total:
            pos["done"] = sorted({*pos["done"], f.name})
            self._consumed.add(f.name)
            self._read[f.name] = total
            self._update_positions()

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
        **kwargs,
    )


#: Record formats by name: a factory taking a :class:`ParseContext`.
STREAM_FORMATS: dict[str, FormatFactory] = {
    "tabular": TabularFormat,
    "kserve_cloudevents": KServeCloudEventsFormat,
    "sagemaker_capture": SageMakerCaptureFormat,
}

"""Inference log records -> flat rows: tabular, KServe CloudEvents, SageMaker Data Capture.

Every parser turns raw records into one flat row per inference: the model's
feature columns, ``prediction``, ``timestamp`` (UTC), ``latency_ms``,
``model_version`` and ``request_id_hmac`` (never the raw id). Malformed
records are counted by reason in a :class:`BadRecords` and skipped; the
reason is logged, the content never.

Parsers are listed in :data:`STREAM_FORMATS` (name -> parser); add one with
:func:`register_stream_format`.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl

from mlmon.errors import DuplicateNameError, UnknownNameError
from mlmon.governance.deid import hmac_id

__all__ = [
    "FLAT_COLUMNS",
    "STREAM_FORMATS",
    "BadRecords",
    "ParseContext",
    "join_cloudevents",
    "parse_records",
    "register_stream_format",
]

log = logging.getLogger("mlmon.edge.records")

#: Columns every flat frame has besides the features.
FLAT_COLUMNS = {
    "timestamp": pl.Datetime("us", "UTC"),
    "latency_ms": pl.Float64,
    "model_version": pl.String,
    "request_id_hmac": pl.String,
    "prediction": pl.Float64,
}


class BadRecords(Counter[str]):
    """Counts of skipped records by reason."""

    def skip(self, reason: str, where: str = "") -> None:
        self[reason] += 1
        log.warning("skipped a record", extra={"reason": reason, "where": where})


@dataclass
class ParseContext:
    """What a parser needs: the features, the HMAC secret and the bad-record counter."""

    features: Sequence[str]
    secret: bytes
    request_id_column: str | None = "request_id"
    bad: BadRecords = field(default_factory=BadRecords)
    where: str = ""


def _ts(value: Any) -> datetime | None:
    """A UTC-aware timestamp, or None when missing, naive or unparseable."""
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else None
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else None


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    if isinstance(v, list) and len(v) == 1:
        return _number(v[0])
    return None


def _frame(rows: list[dict[str, Any]], ctx: ParseContext) -> pl.DataFrame:
    if not rows:
        schema = dict(FLAT_COLUMNS)
        schema.update({f: pl.Float64 for f in ctx.features})
        return pl.DataFrame(schema=schema)
    df = pl.DataFrame(rows, infer_schema_length=None, strict=False)
    casts = [pl.col(c).cast(t, strict=False) for c, t in FLAT_COLUMNS.items() if c in df.columns]
    return df.with_columns(casts)


def _rows_from_instances(instances: Any, ctx: ParseContext) -> list[dict[str, Any]] | None:
    if not isinstance(instances, list):
        return None
    out = []
    for inst in instances:
        if isinstance(inst, dict):
            out.append({f: inst.get(f) for f in ctx.features})
        elif isinstance(inst, list) and len(inst) == len(ctx.features):
            out.append(dict(zip(ctx.features, inst, strict=True)))
        else:
            return None
    return out


def _rows_from_v2_inputs(inputs: Any, ctx: ParseContext) -> list[dict[str, Any]] | None:
    if not isinstance(inputs, list) or not inputs:
        return None
    tensors = {t.get("name"): t for t in inputs if isinstance(t, dict)}
    if set(ctx.features) <= set(tensors):  # one 1-D tensor per feature
        cols = {f: tensors[f].get("data") for f in ctx.features}
        if not all(isinstance(v, list) for v in cols.values()):
            return None
        n = {len(v) for v in cols.values()}
        if len(n) != 1:
            return None
        return [{f: cols[f][i] for f in ctx.features} for i in range(n.pop())]
    t = inputs[0]
    data, shape = t.get("data"), t.get("shape")
    if (
        isinstance(data, list)
        and isinstance(shape, list)
        and len(shape) == 2
        and shape[1] == len(ctx.features)
    ):
        flat = [x for row in data for x in row] if data and isinstance(data[0], list) else data
        k = len(ctx.features)
        return [
            dict(zip(ctx.features, flat[i * k : (i + 1) * k], strict=True)) for i in range(shape[0])
        ]
    return None


def _predictions(body: Any) -> tuple[list[Any] | None, str | None]:
    if not isinstance(body, dict):
        return (body if isinstance(body, list) else None), None
    version = body.get("model_version")
    if "predictions" in body:
        return body["predictions"], version
    outputs = body.get("outputs")
    if isinstance(outputs, list) and outputs and isinstance(outputs[0], dict):
        return outputs[0].get("data"), version
    return None, version


# -- tabular ------------------------------------------------------------------------------
def parse_tabular(records: list[dict[str, Any]], ctx: ParseContext) -> pl.DataFrame:
    """Flat records already: HMAC the id column, require UTC timestamps."""
    rows = []
    for i, rec in enumerate(records):
        ts = _ts(rec.get("timestamp"))
        if ts is None:
            ctx.bad.skip(
                "missing_timestamp" if rec.get("timestamp") is None else "naive_timestamp",
                f"{ctx.where}#{i}",
            )
            continue
        row = {f: rec.get(f) for f in ctx.features}
        rid = rec.get(ctx.request_id_column) if ctx.request_id_column else None
        row.update(
            timestamp=ts,
            latency_ms=_number(rec.get("latency_ms")),
            model_version=None if rec.get("model_version") is None else str(rec["model_version"]),
            request_id_hmac=None if rid is None else hmac_id(ctx.secret, str(rid)),
            prediction=_number(rec.get("prediction", rec.get("score"))),
        )
        rows.append(row)
    return _frame(rows, ctx)


# -- KServe CloudEvents ---------------------------------------------------------------
def _event_body(ev: dict[str, Any]) -> Any:
    if "data" in ev:
        data = ev["data"]
        if isinstance(data, str):
            try:
                return json.loads(data)
            except ValueError:
                return None
        return data
    if "data_base64" in ev:
        try:
            return json.loads(base64.b64decode(ev["data_base64"]))
        except (ValueError, TypeError):
            return None
    return None


def join_cloudevents(
    events: Iterable[dict[str, Any]], ctx: ParseContext
) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """Join KServe logger request/response events by id into flat rows.

    Events are structured-mode CloudEvents (``id``, ``type``, ``time``,
    ``data``); ``type`` ends in ``.request`` or ``.response``. Returns the
    rows and the requests still waiting for their response.
    """
    requests: dict[str, dict[str, Any]] = {}
    responses: dict[str, dict[str, Any]] = {}
    for ev in events:
        if not isinstance(ev, dict) or "id" not in ev or "type" not in ev:
            ctx.bad.skip("missing_field", ctx.where)
            continue
        kind = str(ev["type"]).rsplit(".", 1)[-1]
        if kind == "request":
            requests[str(ev["id"])] = ev
        elif kind == "response":
            responses[str(ev["id"])] = ev
        else:
            ctx.bad.skip("unknown_event_type", ctx.where)
    rows: list[dict[str, Any]] = []
    pending = []
    for eid, req in requests.items():
        resp = responses.pop(eid, None)
        if resp is None:
            pending.append(req)
            continue
        rows.extend(_join_one(eid, req, resp, ctx))
    for _ in responses:
        ctx.bad.skip("unmatched", ctx.where)
    return _frame(rows, ctx), pending


def _join_one(
    eid: str, req: dict[str, Any], resp: dict[str, Any], ctx: ParseContext
) -> list[dict[str, Any]]:
    body = _event_body(req)
    if not isinstance(body, dict):
        ctx.bad.skip("bad_json", ctx.where)
        return []
    features = (
        _rows_from_instances(body["instances"], ctx)
        if "instances" in body
        else _rows_from_v2_inputs(body.get("inputs"), ctx)
    )
    preds, version = _predictions(_event_body(resp))
    t_req, t_resp = _ts(req.get("time")), _ts(resp.get("time"))
    if features is None or preds is None or len(preds) != len(features):
        ctx.bad.skip("bad_tensor", ctx.where)
        return []
    if t_req is None:
        ctx.bad.skip("naive_timestamp", ctx.where)
        return []
    latency = (t_resp - t_req).total_seconds() * 1000 if t_resp else None
    version = version or req.get("inferenceservicename_version") or resp.get("modelversion")
    rows = []
    for i, (row, pred) in enumerate(zip(features, preds, strict=True)):
        row.update(
            timestamp=t_req,
            latency_ms=latency,
            model_version=None if version is None else str(version),
            request_id_hmac=hmac_id(ctx.secret, f"{eid}/{i}"),
            prediction=_number(pred),
        )
        rows.append(row)
    return rows


def parse_kserve_cloudevents(records: list[dict[str, Any]], ctx: ParseContext) -> pl.DataFrame:
    frame, pending = join_cloudevents(records, ctx)
    for _ in pending:
        ctx.bad.skip("unmatched", ctx.where)
    return frame


# -- SageMaker Data Capture -----------------------------------------------------------
def _capture_payload(part: Any) -> tuple[str, str] | None:
    if not isinstance(part, dict) or "data" not in part:
        return None
    data, enc = part["data"], str(part.get("encoding", "")).upper()
    ctype = str(part.get("observedContentType", "")).lower()
    if enc == "BASE64":
        try:
            data = base64.b64decode(data).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
    if not isinstance(data, str):
        return None
    kind = "json" if "json" in ctype or enc == "JSON" else "csv"
    return kind, data


def parse_sagemaker_capture(records: list[dict[str, Any]], ctx: ParseContext) -> pl.DataFrame:
    """SageMaker Data Capture lines (``captureData.endpointInput/endpointOutput``, ``eventMetadata``)."""
    rows = []
    for i, rec in enumerate(records):
        where = f"{ctx.where}#{i}"
        cap = rec.get("captureData") if isinstance(rec, dict) else None
        meta = rec.get("eventMetadata") if isinstance(rec, dict) else None
        if not isinstance(cap, dict) or not isinstance(meta, dict):
            ctx.bad.skip("missing_field", where)
            continue
        inp, out = (
            _capture_payload(cap.get("endpointInput")),
            _capture_payload(cap.get("endpointOutput")),
        )
        ts = _ts(meta.get("inferenceTime"))
        if inp is None or out is None:
            ctx.bad.skip("missing_field", where)
            continue
        if ts is None:
            ctx.bad.skip("naive_timestamp", where)
            continue
        try:
            if inp[0] == "json":
                body = json.loads(inp[1])
                feats = _rows_from_instances(
                    body.get("instances") if isinstance(body, dict) else body, ctx
                )
                if feats is None and isinstance(body, dict):
                    feats = _rows_from_instances([body], ctx)
            else:
                lines = [r for r in csv.reader(io.StringIO(inp[1])) if r]
                feats = _rows_from_instances(lines, ctx)
            if out[0] == "json":
                preds, _ = _predictions(json.loads(out[1]))
            else:
                preds = [v for r in csv.reader(io.StringIO(out[1])) for v in r if v != ""]
        except ValueError:
            ctx.bad.skip("bad_json", where)
            continue
        if feats is None or preds is None or len(preds) != len(feats):
            ctx.bad.skip("bad_tensor", where)
            continue
        eid = str(meta.get("eventId", ""))
        for j, (row, pred) in enumerate(zip(feats, preds, strict=True)):
            row.update(
                timestamp=ts,
                latency_ms=None,
                model_version=None,
                request_id_hmac=hmac_id(ctx.secret, f"{eid}/{j}") if eid else None,
                prediction=_number(pred),
            )
            rows.append(row)
    return _frame(rows, ctx)


Parser = Callable[[list[dict[str, Any]], ParseContext], pl.DataFrame]


def register_stream_format(name: str, parser: Parser, *, replace: bool = False) -> None:
    """Add a record format; refuses to overwrite one unless ``replace=True``."""
    if name in STREAM_FORMATS and not replace:
        raise DuplicateNameError(f"stream format {name!r} is already registered; pass replace=True")
    STREAM_FORMATS[name] = parser


def parse_records(kind: str, records: list[dict[str, Any]], ctx: ParseContext) -> pl.DataFrame:
    try:
        parser = STREAM_FORMATS[kind]
    except KeyError as exc:
        raise UnknownNameError(
            f"unknown stream format {kind!r}; registered: {', '.join(sorted(STREAM_FORMATS))}"
        ) from exc
    return parser(records, ctx)


STREAM_FORMATS: dict[str, Parser] = {
    "tabular": parse_tabular,
    "kserve_cloudevents": parse_kserve_cloudevents,
    "sagemaker_capture": parse_sagemaker_capture,
}

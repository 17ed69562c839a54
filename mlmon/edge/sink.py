"""An HTTP sink a KServe InferenceService ``logger`` can point at directly.

It accepts CloudEvents in binary mode (``ce-*`` headers, the payload as the
body), structured mode (``Content-Type: application/cloudevents+json``) and
batched structured mode (``application/cloudevents-batch+json``), joins each
request with its response by event id in memory, turns the pair into flat
records (see :mod:`mlmon.edge.streams`) and hands them, in batches, to a
callback ``on_records(model_name, frame)``; :func:`into_states` makes one that
profiles into a :class:`~mlmon.edge.checkpoint.StreamState` per model.
The content of an event is never logged.

The model is the event's ``inferenceservicename`` extension (KServe sets
``ce-inferenceservicename``); with a single configured model, events without
it (or naming another service) go to that model.

Answers: 202 accepted (also while an event waits for its partner), 400
malformed event or unusable request/response pair (counted by reason; the
JSON body names the reason and the field, never the content), 401 no or wrong
bearer token, 404 not a POST, 408 body slower than the read timeout, 411 no
``Content-Length`` (chunked bodies are refused), 413 body over
``max_body_bytes``, 503 over the connection cap or the write-ahead log failed.

Served by uvicorn (:mod:`mlmon.edge.serve`: TLS, client certificates, bearer
token, backlog, idle and read timeouts, connection cap) on one thread; per
event it only parses headers and JSON and joins; frames are built and the
callback runs once per ``batch_rows`` rows or per ``flush_seconds``.

Delivery (with ``wal_dir``): before answering 202 every accepted event is
appended to a write-ahead log (:mod:`mlmon.edge.wal`) on the state volume and
``fsync``-ed (requests that arrive together share one ``fsync``). What is
logged is the event reduced to what the join needs: the HMAC of its id, its
type, time and model, the request's feature values (no other field) and the
response's predictions and model version (checked or replaced by its HMAC, as
everywhere: :mod:`mlmon.lake.freetext`). :meth:`CloudEventSink.checkpoint`
cuts the log where the caller's state snapshot ends (the events still waiting
for their partner are carried into the new segment), and
:meth:`CloudEventSink.release` deletes the segments that snapshot covers once
it is committed; :meth:`CloudEventSink.start` first replays what is left, so a
crash (even ``kill -9``) loses nothing that was answered 202, and nothing is
counted twice. Without ``wal_dir`` events live in memory until handed over.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, TypeVar

import polars as pl

from mlmon.edge.checkpoint import StreamState
from mlmon.edge.serve import HttpServer, ServeSettings, read_body, respond, unauthorized
from mlmon.edge.streams import (
    BadRecords,
    CloudEvent,
    CloudEventJoiner,
    ParseContext,
    _feature_rows,
    _rows_to_frame,
    _ts,
    cloudevent_from,
)
from mlmon.edge.wal import WriteAheadLog
from mlmon.errors import ConfigError, EdgeError
from mlmon.governance.deid import hmac_id
from mlmon.lake.freetext import VersionGuard
from mlmon.profiles.frame import Reference

__all__ = ["CloudEventSink", "into_states"]

log = logging.getLogger("mlmon.edge.sink")
T = TypeVar("T")

#: What a 400 answer says per reason: the field concerned, never its content.
_DETAIL = {
    "bad_json": "the body (or the event's data) is not JSON",
    "missing_field": "an event lacks id or type (binary mode: the ce-id and ce-type headers), "
    "or a request/response pair has no time (ce-time)",
    "naive_timestamp": "time (ce-time) has no UTC offset; send e.g. 2026-10-01T10:00:00Z",
    "bad_timestamp": "time (ce-time) is not an ISO 8601 timestamp",
    "unknown_event_type": "type (ce-type) must end in .request or .response",
    "unknown_model": "inferenceservicename (ce-inferenceservicename) names no configured model",
    "bad_tensor": "the request's inputs or the response's outputs do not fit the model's features",
}
_CLOSE = [(b"connection", b"close")]

OnRecords = Callable[[str, pl.DataFrame], None]


def into_states(states: Mapping[str, StreamState]) -> OnRecords:
    """A sink callback that profiles each model's rows into its :class:`StreamState`."""

    def on_records(model: str, frame: pl.DataFrame) -> None:
        states[model].add(frame)

    return on_records


class _Model:
    def __init__(self, name: str, ctx: ParseContext, pending: timedelta, max_pending: int) -> None:
        self.name = name
        self.ctx = ctx
        self.joiner = CloudEventJoiner(ctx, pending, max_pending, event_time=False)
        self.rows: list[dict[str, Any]] = []


def _reduced_response(body: Any, versions: VersionGuard) -> Any:
    """The part of a response body the join reads (``pair_rows``), nothing else.

    The model version is checked (or replaced by its HMAC) here already, so that
    no free text reaches the write-ahead log either (:mod:`mlmon.lake.freetext`).
    """
    if not isinstance(body, dict):
        return body
    keep: dict[str, Any] = {}
    if "model_version" in body:
        v = body["model_version"]
        keep["model_version"] = None if v is None else versions(str(v), "the sink's CloudEvents")
    if "predictions" in body:
        keep["predictions"] = body["predictions"]
        return keep
    outputs = body.get("outputs")
    if isinstance(outputs, list) and outputs:
        keep["outputs"] = [outputs[0]]
        return keep
    if len(body) == 1:
        return body
    keep["outputs"] = [None]  # unusable either way: the join answers bad_tensor
    return keep


class CloudEventSink:
    """Receive KServe logger CloudEvents over HTTP and hand flat records to a callback.

    Parameters
    ----------
    models
        ``{model name: Reference}`` (features and their kinds) or
        ``{model name: feature names}``; or just a list of feature names for
        one model named ``model``.
    secret
        HMAC key for event ids (``request_id_hmac``).
    on_records
        ``on_records(model_name, frame)`` with flat records (see
        :mod:`mlmon.edge.streams`); called from the sink's thread, or from the
        thread calling :meth:`flush` or :meth:`checkpoint`, so it must be
        thread-safe (:class:`~mlmon.edge.checkpoint.StreamState` is).
    model
        Name of the single model when ``models`` is a list of feature names.
    host, port
        Where to listen when ``settings`` is not given: 127.0.0.1 by default;
        port 0 picks a free port (read :attr:`port` after :meth:`start`).
    max_body_bytes
        Larger bodies are refused with 413.
    batch_rows, flush_seconds
        Rows are handed over when this many wait for a model, or this often.
    pending_seconds
        An event whose partner has not come within this wall-clock time is
        counted as ``unmatched`` and dropped.
    max_pending
        At most this many events wait per model (the oldest are dropped as ``unmatched``).
    settings
        Address, TLS, bearer token, backlog, timeouts and connection cap
        (:class:`~mlmon.edge.serve.ServeSettings`); overrides ``host``/``port``.
    wal_dir
        Folder of the write-ahead log (on the state volume); None keeps
        accepted events in memory only.
    wal_start
        First write-ahead log segment not covered by the caller's committed
        state (what :meth:`checkpoint` gave the last committed snapshot).
    versions
        The checker of model versions (:class:`~mlmon.lake.freetext.VersionGuard`);
        by default one keyed with ``secret``.

    Examples
    --------
    >>> got = []
    >>> sink = CloudEventSink(["age"], b"k" * 32, lambda m, df: got.append(df)).start()
    >>> sink.port > 0
    True
    >>> sink.stop()
    """

    def __init__(
        self,
        models: Mapping[str, Reference | Sequence[str]] | Sequence[str],
        secret: bytes,
        on_records: OnRecords,
        *,
        model: str = "default",
        host: str = "127.0.0.1",
        port: int = 0,
        max_body_bytes: int = 16 * 1024 * 1024,
        batch_rows: int = 5000,
        flush_seconds: float = 0.5,
        pending_seconds: float = 60.0,
        max_pending: int = 200_000,
        settings: ServeSettings | None = None,
        wal_dir: str | os.PathLike[str] | None = None,
        wal_start: int = 0,
        versions: VersionGuard | None = None,
    ) -> None:
        if not isinstance(models, Mapping):
            models = {model: list(models)}
        if not models:
            raise ConfigError("CloudEventSink needs at least one model")
        if max_body_bytes < 1 or batch_rows < 1 or flush_seconds <= 0:
            raise ConfigError(
                "CloudEventSink: max_body_bytes and batch_rows must be >= 1 and flush_seconds > 0"
            )
        self.bad = BadRecords()
        self.secret = secret
        self.versions = versions if versions is not None else VersionGuard(secret)
        self.models: dict[str, _Model] = {}
        for name, spec in models.items():
            if isinstance(spec, Reference):
                ctx = ParseContext.for_reference(spec, secret, bad=self.bad, where=f"sink:{name}")
            else:
                ctx = ParseContext(tuple(spec), secret, bad=self.bad, where=f"sink:{name}")
            self.models[name] = _Model(name, ctx, timedelta(seconds=pending_seconds), max_pending)
        self.on_records = on_records
        self.settings = settings if settings is not None else ServeSettings(host=host, port=port)
        self.host, self.port = self.settings.host, self.settings.port
        self.max_body_bytes = max_body_bytes
        self.batch_rows = batch_rows
        self.flush_seconds = flush_seconds
        self.pending_seconds = pending_seconds
        #: Events accepted (answered 202), and events replayed from the write-ahead log.
        self.events = 0
        self.replayed = 0
        #: Flat records handed to the callback.
        self.rows_out = 0
        self._lock = threading.RLock()
        self.wal = WriteAheadLog(wal_dir) if wal_dir is not None else None
        self.wal_start = wal_start
        self._recovered = self.wal is None
        self._pool: ThreadPoolExecutor | None = None
        self._sync: Future[None] | None = None
        self._server: HttpServer | None = None

    # -- counters -----------------------------------------------------------------------
    @property
    def bad_records(self) -> BadRecords:
        """Refused or dropped events by reason (for the collector's metrics)."""
        return self.bad

    @property
    def running(self) -> bool:
        return self._server is not None

    def counters(self) -> dict[str, int]:
        """Events accepted, rows handed over, events waiting, and skipped by reason."""
        with self._lock:
            waiting = sum(len(m.joiner.pending) for m in self.models.values())
        return {
            "events": self.events,
            "rows": self.rows_out,
            "pending": waiting,
            **{f"skipped_{k}": v for k, v in self.bad.items()},
        }

    # -- events -------------------------------------------------------------------------
    def _route(self, ev: CloudEvent) -> _Model | None:
        m = self.models.get(ev.model) if ev.model is not None else None
        if m is None and len(self.models) == 1:
            m = next(iter(self.models.values()))
        return m

    def _reduce(self, m: _Model, ev: CloudEvent) -> CloudEvent:
        """The event as the join and the write-ahead log see it: HMAC id, needed fields only."""
        if ev.kind == "request":
            rows = _feature_rows(ev.body, m.ctx)
            body: Any = None if rows is None else {"instances": rows}
        else:
            body = _reduced_response(ev.body, self.versions)
        return CloudEvent(hmac_id(self.secret, ev.id), ev.kind, ev.time, body, m.name)

    @staticmethod
    def _record(ev: CloudEvent) -> dict[str, Any]:
        t = ev.time.isoformat() if ev.time is not None else None
        return {"m": ev.model, "i": ev.id, "k": ev.kind, "t": t, "b": ev.body}

    def _feed(self, m: _Model, ev: CloudEvent) -> str | None:
        """Join one reduced event (under the lock); the reason it was refused, or None."""
        got = m.joiner.feed(ev)
        if isinstance(got, str):
            self.bad.skip(got, m.ctx.where)  # "unmatched": a duplicate id, the older is dropped
            return None if got == "unmatched" else got
        if got:
            for row in got:  # the id is already the HMAC of the event's id
                row["request_id_hmac"] = ev.id
            m.rows.extend(got)
            if len(m.rows) >= self.batch_rows:
                rows, m.rows = m.rows, []
                self._process(m.name, rows)
        return None

    def _accept_all(self, events: list[CloudEvent | str]) -> tuple[str | None, int]:
        """Join events; returns the first refusal reason (or None) and the log ticket (0: none)."""
        reason: str | None = None
        records = []
        with self._lock:
            for ev in events:
                if isinstance(ev, str):
                    self.bad.skip(ev, "sink")
                    reason = reason or ev
                    continue
                m = self._route(ev)
                if m is None:
                    self.bad.skip("unknown_model", "sink")
                    reason = reason or "unknown_model"
                    continue
                small = self._reduce(m, ev)
                if self.wal is not None:
                    records.append(self._record(small))
                why = self._feed(m, small)
                if why is None:
                    self.events += 1
                else:
                    reason = reason or why
            ticket = self.wal.append(records) if records and self.wal is not None else 0
        return reason, ticket

    def _handoff(self) -> None:
        """Hand over every model's waiting rows; expire events that waited too long."""
        now = time.monotonic()
        with self._lock:
            for m in self.models.values():
                if m.rows:
                    rows, m.rows = m.rows, []
                    self._process(m.name, rows)
                n = m.joiner.expire(now)
                if n:
                    self.bad.skip("unmatched", m.ctx.where, n)

    def _process(self, name: str, rows: list[dict[str, Any]]) -> None:
        m = self.models[name]
        frame = _rows_to_frame(rows, m.ctx)
        self.rows_out += frame.height
        try:
            self.on_records(name, frame)
        except Exception as exc:
            log.error(
                "sink callback failed; the rows of this batch are lost",
                extra={"model": name, "rows": frame.height, "error": type(exc).__name__},
            )

    def flush(self) -> int:
        """Hand every waiting row to the callback now (on the calling thread).

        Returns the rows handed over in total so far.
        """
        self._recover()
        self._handoff()
        return self.rows_out

    # -- write-ahead log ----------------------------------------------------------------
    def _recover(self) -> None:
        """Replay the write-ahead log from ``wal_start`` (once, before serving)."""
        if self._recovered or self.wal is None:
            return
        with self._lock:
            if self._recovered:
                return
            for _, rec in self.wal.replay(self.wal_start):
                m = self.models.get(rec.get("m"))
                if m is None:  # the model left the configuration
                    self.bad.skip("unknown_model", "sink:replay")
                    continue
                t = rec.get("t")
                ev = CloudEvent(rec["i"], rec["k"], datetime.fromisoformat(t) if t else None,
                                rec.get("b"), m.name)  # fmt: skip
                self._feed(m, ev)
                self.replayed += 1
            self._recovered = True
            self._handoff()
        if self.replayed:
            log.info("sink: events replayed from the write-ahead log",
                     extra={"events": self.replayed, "from_segment": self.wal_start})  # fmt: skip

    def checkpoint(self, cut: Callable[[int], T]) -> T:
        """Hand over every waiting row, cut the write-ahead log, and call ``cut(segment)``.

        While ``cut`` runs no event comes in: the caller snapshots its state
        there, and that snapshot holds exactly the rows of the events logged
        before ``segment``. The events still waiting for their partner are
        carried into ``segment``. Once the snapshot is committed, call
        :meth:`release` with ``segment``; after a crash, pass ``segment`` as
        ``wal_start``.
        """
        self._recover()
        with self._lock:
            self._handoff()
            if self.wal is None:
                return cut(0)
            segment = self.wal.rotate()
            carry = [self._record(w.event) for m in self.models.values()
                     for w in m.joiner.pending.values()]  # fmt: skip
            if carry:
                self.wal.sync(self.wal.append(carry))
            return cut(segment)

    def release(self, segment: int) -> None:
        """Delete the write-ahead log segments before ``segment`` (their snapshot is committed)."""
        if self.wal is not None:
            self.wal.drop_before(segment)
            self.wal_start = segment

    async def _durable(self, ticket: int) -> None:
        """Wait until the log holds ``ticket`` on disk; concurrent requests share an fsync."""
        wal = self.wal
        assert wal is not None
        loop = asyncio.get_running_loop()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="mlmon-sink-wal")
        while wal.synced < ticket:
            fut = self._sync
            if fut is None or fut.done():
                fut = self._sync = self._pool.submit(wal.sync)
            await asyncio.wrap_future(fut, loop=loop)

    # -- HTTP ---------------------------------------------------------------------------
    def _binary_event(self, headers: dict[str, str], body: bytes) -> CloudEvent | str:
        eid, etype = headers.get("ce-id"), headers.get("ce-type")
        if not eid or not etype:
            return "missing_field"
        kind = etype.rsplit(".", 1)[-1].lower()
        if kind not in ("request", "response"):
            return "unknown_event_type"
        t = headers.get("ce-time")
        ts = None
        if t:
            parsed = _ts(t)
            if isinstance(parsed, str):
                return parsed
            ts = parsed
        try:
            data = json.loads(body) if body else None
        except ValueError:
            return "bad_json"
        return CloudEvent(eid, kind, ts, data, headers.get("ce-inferenceservicename"))

    def _events(self, headers: dict[str, str], body: bytes) -> list[CloudEvent | str]:
        ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype.startswith("application/cloudevents"):
            try:
                doc = json.loads(body)
            except ValueError:
                return ["bad_json"]
            if ctype == "application/cloudevents-batch+json":
                if not isinstance(doc, list):
                    return ["bad_json"]
                return [cloudevent_from(d) for d in doc]
            return [cloudevent_from(doc)]
        return [self._binary_event(headers, body)]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """The ASGI application."""
        if scope["type"] != "http":
            return
        if not self.settings.authorized(scope):
            await unauthorized(send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if scope["method"] != "POST":
            await respond(send, 404, b"POST CloudEvents here\n")
            return
        length = headers.get("content-length")
        if length is None or not length.isdigit():
            await respond(send, 411, b"send Content-Length (chunked bodies are refused)\n",
                          headers=_CLOSE)  # fmt: skip
            return
        if int(length) > self.max_body_bytes:
            self.bad.skip("too_large", "sink")
            await respond(send, 413, b"body over max_body_bytes\n", headers=_CLOSE)
            return
        body = await read_body(receive, self.max_body_bytes, self.settings.read_timeout_s)
        if isinstance(body, int):
            await respond(send, body, b"body too slow or too large\n", headers=_CLOSE)
            return
        events = self._events(headers, body)
        del body  # payloads live only until their events are reduced
        try:
            reason, ticket = self._accept_all(events)
            if ticket:
                await self._durable(ticket)
        except OSError as exc:
            log.error("sink: the write-ahead log cannot be written; answering 503",
                      extra={"error_type": type(exc).__name__, "errno": exc.errno})  # fmt: skip
            await respond(send, 503, b"write-ahead log not writable\n")
            return
        if reason is None and events:
            await respond(send, 202)
            return
        reason = reason or "bad_json"
        doc = {"error": reason, "detail": _DETAIL.get(reason, reason)}
        await respond(send, 400, json.dumps(doc).encode(), b"application/json")

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            self._handoff()

    def start(self) -> CloudEventSink:
        """Replay the write-ahead log, then start listening; returns self.

        Raises
        ------
        EdgeError
            The address cannot be bound (in use, or not local), or the TLS files
            cannot be loaded.
        """
        if self._server is not None:
            return self
        self._recover()
        server = HttpServer(self, self.settings, "sink", background=[self._flusher])
        try:
            server.start()
        except EdgeError as exc:
            raise EdgeError(f"{exc}; choose a free port in models[].sink.port") from exc
        self._server = server
        self.port = server.port
        log.info("sink listening", extra={"host": self.host, "port": self.port,
                                          "tls": self.settings.tls,
                                          "token": self.settings.token is not None})  # fmt: skip
        return self

    def stop(self) -> None:
        """Stop listening (requests in progress finish) and hand over the rows still waiting."""
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.flush()

    def __enter__(self) -> CloudEventSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

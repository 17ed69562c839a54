"""An HTTP sink a KServe InferenceService ``logger`` can point at directly.

It accepts CloudEvents in binary mode (``ce-*`` headers, the payload as the
body), structured mode (``Content-Type: application/cloudevents+json``) and
batched structured mode (``application/cloudevents-batch+json``), joins each
request with its response by event id in memory, turns the pair into flat
records (see :mod:`mlmon.edge.streams`) and hands them, in batches, to a
callback ``on_records(model_name, frame)``; :func:`into_states` makes one that
profiles into a :class:`~mlmon.edge.checkpoint.StreamState` per model.
Payloads are dropped as soon as the rows are built; nothing is written to
disk, and the content of an event is never logged.

The model is the event's ``inferenceservicename`` extension (KServe sets
``ce-inferenceservicename``); with a single configured model, events without
it (or naming another service) go to that model.

Answers: 202 accepted (also while an event waits for its partner), 400
malformed event or unusable request/response pair (counted by reason), 404
not a POST, 411 no ``Content-Length`` (chunked bodies are refused), 413 body
over ``max_body_bytes``.

The server is a small asyncio HTTP/1.1 implementation (keep-alive,
pipelining) on a background thread. Per event it only parses headers and
JSON and joins; frames are built and the callback runs once per
``batch_rows`` rows (on the loop thread) or per ``flush_seconds``. (A
separate worker thread for the callback was measured slower: it contends
for the GIL with the loop. The standard library's ``http.server`` spends too
long per request to keep up with a busy model.)

Delivery: an event answered 202 is in memory until its window is committed
by the collector; a crash loses at most the events since the last commit
(KServe's logger does not retry either).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import polars as pl

from mlmon.edge.checkpoint import StreamState
from mlmon.edge.streams import (
    BadRecords,
    CloudEvent,
    CloudEventJoiner,
    ParseContext,
    _rows_to_frame,
    _ts,
    cloudevent_from,
)
from mlmon.errors import ConfigError, EdgeError
from mlmon.profiles.frame import Reference

__all__ = ["CloudEventSink", "into_states"]

log = logging.getLogger("mlmon.edge.sink")

_REASONS = {
    202: "Accepted",
    400: "Bad Request",
    404: "Not Found",
    411: "Length Required",
    413: "Payload Too Large",
}
_ANSWERS = {
    code: f"HTTP/1.1 {code} {text}\r\nContent-Length: 0\r\n\r\n".encode()
    for code, text in _REASONS.items()
}
_CLOSE = {
    code: f"HTTP/1.1 {code} {text}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
    for code, text in _REASONS.items()
}

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
        thread calling :meth:`flush`, so it must be thread-safe
        (:class:`~mlmon.edge.checkpoint.StreamState` is).
    model
        Name of the single model when ``models`` is a list of feature names.
    host, port
        Where to listen: 127.0.0.1 by default; port 0 picks a free port
        (read :attr:`port` after :meth:`start`).
    max_body_bytes
        Larger bodies are refused with 413.
    batch_rows, flush_seconds
        Rows are handed over when this many wait for a model, or this often.
    pending_seconds
        An event whose partner has not come within this wall-clock time is
        counted as ``unmatched`` and dropped.
    max_pending
        At most this many events wait per model (the oldest are dropped as ``unmatched``).

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
        self.models: dict[str, _Model] = {}
        for name, spec in models.items():
            if isinstance(spec, Reference):
                ctx = ParseContext.for_reference(spec, secret, bad=self.bad, where=f"sink:{name}")
            else:
                ctx = ParseContext(tuple(spec), secret, bad=self.bad, where=f"sink:{name}")
            self.models[name] = _Model(name, ctx, timedelta(seconds=pending_seconds), max_pending)
        self.on_records = on_records
        self.host, self.port = host, port
        self.max_body_bytes = max_body_bytes
        self.batch_rows = batch_rows
        self.flush_seconds = flush_seconds
        self.pending_seconds = pending_seconds
        #: Events accepted (answered 202).
        self.events = 0
        #: Flat records handed to the callback.
        self.rows_out = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._server: asyncio.Server | None = None

    # -- counters -----------------------------------------------------------------------
    @property
    def bad_records(self) -> BadRecords:
        """Refused or dropped events by reason (for the collector's metrics)."""
        return self.bad

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

    def _accept(self, ev: CloudEvent | str) -> bool:
        """Join one event; False when it is malformed (counted)."""
        if isinstance(ev, str):
            self.bad.skip(ev, "sink")
            return False
        m = self._route(ev)
        if m is None:
            self.bad.skip("unknown_model", "sink")
            return False
        full = None
        with self._lock:
            got = m.joiner.feed(ev)
            if isinstance(got, str):
                if got != "unmatched":
                    self.bad.skip(got, m.ctx.where)
                    return False
                self.bad.skip(got, m.ctx.where)  # a duplicate id: the older event is dropped
            elif got:
                m.rows.extend(got)
                if len(m.rows) >= self.batch_rows:
                    full, m.rows = m.rows, []
            self.events += 1
        if full is not None:
            self._process(m.name, full)
        return True

    def _handoff(self) -> None:
        """Hand over every model's waiting rows; expire events that waited too long."""
        now = time.monotonic()
        batches = []
        with self._lock:
            for m in self.models.values():
                if m.rows:
                    batches.append((m.name, m.rows))
                    m.rows = []
                n = m.joiner.expire(now)
                if n:
                    self.bad.skip("unmatched", m.ctx.where, n)
        for name, rows in batches:
            self._process(name, rows)

    def _process(self, name: str, rows: list[dict[str, Any]]) -> None:
        m = self.models[name]
        frame = _rows_to_frame(rows, m.ctx)
        with self._lock:
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
        self._handoff()
        return self.rows_out

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

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method = lines[0].split(" ", 1)[0]
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    k, sep, v = line.partition(":")
                    if sep:
                        headers[k.strip().lower()] = v.strip()
                length_s = headers.get("content-length")
                if length_s is None or not length_s.isdigit():
                    writer.write(_CLOSE[411 if method == "POST" else 404])
                    await writer.drain()
                    return
                length = int(length_s)
                if length > self.max_body_bytes:
                    self.bad.skip("too_large", "sink")
                    writer.write(_CLOSE[413])
                    await writer.drain()
                    return
                body = await reader.readexactly(length) if length else b""
                if method != "POST":
                    code = 404
                else:
                    results = [self._accept(ev) for ev in self._events(headers, body)]
                    code = 202 if results and all(results) else 400
                del body  # payloads live only until their rows are built
                writer.write(_ANSWERS[code])
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            self._handoff()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(
                    self._handle, self.host, self.port, limit=self.max_body_bytes + 65536
                )
            )
        except OSError as exc:
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self.port = self._server.sockets[0].getsockname()[1]
        flusher = loop.create_task(self._flusher())
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            flusher.cancel()
            self._server.close()
            tasks = asyncio.all_tasks(loop)
            for t in tasks:
                t.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()

    def start(self) -> CloudEventSink:
        """Start listening (and the worker thread); returns self.

        Raises
        ------
        EdgeError
            The address cannot be bound (in use, or not local).
        """
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name="mlmon-sink", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            self._thread = None
            raise EdgeError(
                f"sink cannot listen on {self.host}:{self.port}: {self._error}; "
                "choose a free port in models[].sink.port"
            ) from self._error
        log.info("sink listening", extra={"host": self.host, "port": self.port})
        return self

    def stop(self) -> None:
        """Stop listening and hand over the rows still waiting."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._thread = None
        self.flush()

    def __enter__(self) -> CloudEventSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

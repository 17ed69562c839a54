"""An HTTP sink a KServe InferenceService ``logger`` can point at directly.

It accepts CloudEvents in binary mode (``ce-*`` headers, the payload as the
body) and structured mode (``Content-Type: application/cloudevents+json``),
joins each request with its response by event id in memory, turns them into
flat rows (:mod:`mlmon.edge.records`) and hands them, in batches, to a
callback (the collector profiles them into windows). Payloads are dropped as
soon as they are profiled; nothing is written to disk.

The server is a small asyncio HTTP/1.1 implementation (keep-alive, bodies
with ``Content-Length``) on a background thread: the standard library's
``http.server`` spends too long per request to keep up with a busy model.
Answers: 202 accepted, 400 malformed event (counted, never logged), 411 no
length, 413 body over the limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import polars as pl

from mlmon.edge.records import BadRecords, ParseContext, _frame, _join_one

__all__ = ["CloudEventSink"]

log = logging.getLogger("mlmon.edge.sink")

_REASONS = {
    202: "Accepted",
    400: "Bad Request",
    404: "Not Found",
    411: "Length Required",
    413: "Payload Too Large",
}


class CloudEventSink:
    """Receive KServe logger CloudEvents over HTTP and profile them in memory.

    Parameters
    ----------
    features
        The model's feature names (from its reference schema).
    secret
        HMAC key for event ids.
    on_records
        Called with a polars DataFrame of flat rows, from the sink's thread.
    host, port
        Where to listen (127.0.0.1 by default; port 0 picks a free port).
    max_body_bytes
        Larger bodies are refused with 413.
    batch_rows, flush_seconds
        Rows are handed over when this many are waiting, or this often.
    pending_seconds
        A request whose response has not come within this time is counted as
        ``unmatched`` and dropped.
    """

    def __init__(
        self,
        features: list[str] | tuple[str, ...],
        secret: bytes,
        on_records: Callable[[pl.DataFrame], None],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_body_bytes: int = 16 * 1024 * 1024,
        batch_rows: int = 5000,
        flush_seconds: float = 0.5,
        pending_seconds: float = 60.0,
    ) -> None:
        self.ctx = ParseContext(list(features), secret, bad=BadRecords(), where="sink")
        self.on_records = on_records
        self.host, self.port = host, port
        self.max_body_bytes = max_body_bytes
        self.batch_rows, self.flush_seconds, self.pending_seconds = (
            batch_rows,
            flush_seconds,
            pending_seconds,
        )
        self.events = 0
        self.rows_out = 0
        self._pending: dict[str, tuple[float, dict[str, Any], dict[str, Any] | None]] = {}
        self._rows: list[dict[str, Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._server: asyncio.base_events.Server | None = None

    # -- events -------------------------------------------------------------------------
    def _accept(self, event: dict[str, Any]) -> bool:
        eid, etype = event.get("id"), event.get("type")
        if not eid or not etype:
            self.ctx.bad.skip("missing_field", "sink")
            return False
        kind = str(etype).rsplit(".", 1)[-1]
        if kind not in ("request", "response"):
            self.ctx.bad.skip("unknown_event_type", "sink")
            return False
        self.events += 1
        eid = str(eid)
        seen = self._pending.pop(eid, None)
        if seen is None:
            self._pending[eid] = (time.monotonic(), event, None)
            return True
        other = seen[1]
        req, resp = (event, other) if kind == "request" else (other, event)
        if str(req.get("type", "")).endswith("response") or not str(resp.get("type", "")).endswith(
            "response"
        ):
            self.ctx.bad.skip("unmatched", "sink")
            return True
        self._rows.extend(_join_one(eid, req, resp, self.ctx))
        if len(self._rows) >= self.batch_rows:
            self.flush()
        return True

    def flush(self) -> int:
        """Hand waiting rows to the callback; expire requests that never got a response."""
        now = time.monotonic()
        stale = [k for k, (t, _, _) in self._pending.items() if now - t > self.pending_seconds]
        for k in stale:
            del self._pending[k]
            self.ctx.bad.skip("unmatched", "sink")
        if not self._rows:
            return 0
        rows, self._rows = self._rows, []
        frame = _frame(rows, self.ctx)
        self.rows_out += frame.height
        try:
            self.on_records(frame)
        except Exception:
            log.exception("sink callback failed; rows of this batch are lost")
        return frame.height

    @property
    def bad_records(self) -> BadRecords:
        return self.ctx.bad

    # -- HTTP ---------------------------------------------------------------------------
    @staticmethod
    def _reply(writer: asyncio.StreamWriter, code: int) -> None:
        writer.write(
            f"HTTP/1.1 {code} {_REASONS.get(code, 'OK')}\r\nContent-Length: 0\r\n\r\n".encode()
        )

    def _event_from(self, headers: dict[str, str], body: bytes) -> dict[str, Any] | None:
        ctype = headers.get("content-type", "")
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            return None
        if "cloudevents" in ctype:  # structured mode: the whole event is the body
            return payload if isinstance(payload, dict) else None
        if "ce-id" not in headers:
            return None
        return {
            "id": headers["ce-id"],
            "type": headers.get("ce-type", ""),
            "time": headers.get("ce-time"),
            "source": headers.get("ce-source"),
            "data": payload,
        }

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method = lines[0].split(" ", 1)[0]
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                if method != "POST":
                    self._reply(writer, 404)
                    await writer.drain()
                    continue
                if "content-length" not in headers:
                    self._reply(writer, 411)
                    await writer.drain()
                    return
                length = int(headers["content-length"])
                if length > self.max_body_bytes:
                    self._reply(writer, 413)
                    await writer.drain()
                    return
                body = await reader.readexactly(length) if length else b""
                event = self._event_from(headers, body)
                if event is None:
                    self.ctx.bad.skip("bad_json", "sink")
                    self._reply(writer, 400)
                else:
                    self._reply(writer, 202 if self._accept(event) else 400)
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
            self.flush()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        self._server = loop.run_until_complete(
            asyncio.start_server(
                self._handle, self.host, self.port, limit=self.max_body_bytes + 65536
            )
        )
        self.port = self._server.sockets[0].getsockname()[1]
        flusher = loop.create_task(self._flusher())
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            flusher.cancel()
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

    def start(self) -> CloudEventSink:
        self._thread = threading.Thread(target=self._run, name="mlmon-sink", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        log.info("sink listening", extra={"host": self.host, "port": self.port})
        return self

    def stop(self) -> None:
        """Stop listening and hand over the rows still waiting."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self.flush()

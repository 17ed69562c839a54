"""Paced load generator for bench_sink_durable: KServe CloudEvents over many keep-alive connections.

    python -m benchmarks.sink_load_async --port P --seconds 60 --rate 5000 --mode single
    python -m benchmarks.sink_load_async --port P --seconds 60 --rate 5000 --mode batch

``--rate`` is CloudEvents per second over all connections (an inference is two: its request and
its response). ``single``: one binary-mode event per HTTP request, as KServe's logger sends them;
each connection pipelines ``--depth`` requests and reads their answers. ``batch``: one
``application/cloudevents-batch+json`` request carries ``--batch-events`` events. Every request
answered 202 is counted as acknowledged (with every event it carried). Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import numpy as np

from benchmarks.common import CATS, N_CAT, N_NUM

T_REQ, T_RESP = "2026-10-01T10:00:00Z", "2026-10-01T10:00:00.020Z"


def _bodies(n: int, seed: int) -> list[tuple[bytes, bytes]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        row = {f"num_{k:02d}": round(float(rng.normal(10 * k, 1 + k % 4)), 3) for k in range(N_NUM)}
        row.update({f"cat_{k}": CATS[int(rng.integers(0, len(CATS)))] for k in range(N_CAT)})
        req = json.dumps({"instances": [row]}).encode()
        resp = json.dumps({"predictions": [round(float(rng.random()), 4)]}).encode()
        out.append((req, resp))
    return out


def _single(eid: bytes, kind: bytes, body: bytes, t: str) -> bytes:
    return (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nce-id: %s\r\nce-specversion: 1.0\r\n"
            b"ce-type: org.kubeflow.serving.inference.%s\r\nce-source: bench\r\nce-time: %s\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (eid, kind, t.encode(), len(body), body))  # fmt: skip


def _batch(events: list[bytes]) -> bytes:
    body = b"[" + b",".join(events) + b"]"
    return (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/cloudevents-batch+json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body))  # fmt: skip


def _structured(eid: str, kind: str, body: bytes, t: str) -> bytes:
    return (b'{"specversion":"1.0","id":"%s","source":"bench","time":"%s",'
            b'"type":"org.kubeflow.serving.inference.%s","data":%s}'
            % (eid.encode(), t.encode(), kind.encode(), body))  # fmt: skip


async def _answers(reader: asyncio.StreamReader, n: int) -> int:
    """Read ``n`` answers (their bodies too); return how many were 202."""
    ok = 0
    for _ in range(n):
        head = await reader.readuntil(b"\r\n\r\n")
        if head.startswith(b"HTTP/1.1 202"):
            ok += 1
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
    return ok


async def _connection(conn: int, args: argparse.Namespace, stats: dict[str, int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", args.port, limit=1 << 20)
    bodies = _bodies(64, conn)
    per_conn = args.rate / args.connections  # events/s
    start = time.monotonic()
    deadline = start + args.seconds
    sent = i = 0
    while time.monotonic() < deadline:
        due = start + sent / per_conn
        now = time.monotonic()
        if due > now:
            await asyncio.sleep(due - now)
        chunks = []
        if args.mode == "single":
            for _ in range(max(1, args.depth // 2)):
                req, resp = bodies[i % len(bodies)]
                eid = b"c%d-%d" % (conn, i)
                chunks.append(_single(eid, b"request", req, T_REQ))
                chunks.append(_single(eid, b"response", resp, T_RESP))
                i += 1
            requests, events = len(chunks), len(chunks)
        else:
            for _ in range(args.depth):
                evs = []
                for _ in range(args.batch_events // 2):
                    req, resp = bodies[i % len(bodies)]
                    evs.append(_structured(f"c{conn}-{i}", "request", req, T_REQ))
                    evs.append(_structured(f"c{conn}-{i}", "response", resp, T_RESP))
                    i += 1
                chunks.append(_batch(evs))
            requests, events = len(chunks), len(chunks) * (args.batch_events // 2) * 2
        writer.write(b"".join(chunks))
        await writer.drain()
        ok = await _answers(reader, requests)
        stats["requests"] += requests
        stats["requests_acked"] += ok
        stats["events_sent"] += events
        stats["events_acked"] += events * ok // requests if ok == requests else 0
        if ok != requests:
            stats["refused_rounds"] += 1
        sent += events
    writer.close()
    await writer.wait_closed()


async def _main(args: argparse.Namespace) -> dict[str, float]:
    stats = {"requests": 0, "requests_acked": 0, "events_sent": 0, "events_acked": 0,
             "refused_rounds": 0}  # fmt: skip
    t0 = time.monotonic()
    await asyncio.gather(*(_connection(c, args, stats) for c in range(args.connections)))
    elapsed = time.monotonic() - t0
    return {**stats, "seconds": elapsed}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--rate", type=float, default=5000, help="CloudEvents per second, in total")
    ap.add_argument("--mode", choices=["single", "batch"], default="single")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--depth", type=int, default=8, help="requests pipelined per connection")
    ap.add_argument("--batch-events", type=int, default=100)
    args = ap.parse_args()
    print(json.dumps(asyncio.run(_main(args))))


if __name__ == "__main__":
    main()

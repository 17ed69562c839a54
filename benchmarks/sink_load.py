"""Load generator for bench_sink: KServe logger CloudEvents (binary mode) over keep-alive sockets.

    python -m benchmarks.sink_load --port P --seconds 60 --connections 4

Each inference is a request event and a response event with the same ce-id;
the request carries 25 features. Requests are pipelined in batches and every
202 is read back. Prints JSON with the inferences sent and accepted.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time

import numpy as np

from benchmarks.common import CATS, N_CAT, N_NUM


def _pair(i: int, conn: int, rng: np.random.Generator) -> bytes:
    row = {f"num_{k:02d}": round(float(rng.normal(10 * k, 1 + k % 4)), 3) for k in range(N_NUM)}
    row.update({f"cat_{k}": CATS[int(rng.integers(0, len(CATS)))] for k in range(N_CAT)})
    req = json.dumps({"instances": [row]}).encode()
    resp = json.dumps({"predictions": [round(float(rng.random()), 4)]}).encode()
    out = b""
    for kind, body, t in (
        (b"request", req, b"2026-10-01T10:00:00Z"),
        (b"response", resp, b"2026-10-01T10:00:00.020Z"),
    ):
        out += (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nce-id: c%d-%d\r\nce-specversion: 1.0\r\n"
                b"ce-type: org.kubeflow.serving.inference.%s\r\nce-source: bench\r\nce-time: %s\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (conn, i, kind, t, len(body))) + body  # fmt: skip
    return out


def worker(port: int, seconds: float, conn: int, batch: int, counts: list[int]) -> None:
    rng = np.random.default_rng(conn)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(30)
    deadline = time.monotonic() + seconds
    i = 0
    accepted = 0
    while time.monotonic() < deadline:
        payload = b"".join(_pair(i + j, conn, rng) for j in range(batch))
        sock.sendall(payload)
        answers = b""
        while answers.count(b"\r\n\r\n") < 2 * batch:  # every answer has an empty body
            chunk = sock.recv(1 << 16)
            if not chunk:
                raise RuntimeError("sink closed the connection")
            answers += chunk
        accepted += answers.count(b" 202 Accepted")
        i += batch
    sock.close()
    counts[conn] = i
    counts[len(counts) // 2 + conn] = accepted // 2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--batch", type=int, default=200)
    args = ap.parse_args()
    counts = [0] * (2 * args.connections)
    threads = [
        threading.Thread(target=worker, args=(args.port, args.seconds, c, args.batch, counts))
        for c in range(args.connections)
    ]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    sent = sum(counts[: args.connections])
    print(
        json.dumps(
            {
                "inferences_sent": sent,
                "inferences_accepted": sum(counts[args.connections :]),
                "seconds": elapsed,
            }
        )
    )


if __name__ == "__main__":
    main()

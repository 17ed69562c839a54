"""A server that accepts connections and never answers: a model endpoint or a bucket that hangs.

    python -m tests.edge.blackhole --host 127.0.0.1 --port 0

Prints ``listening on http://HOST:PORT`` when ready, then ``accepted N`` for
every connection it takes (so a test knows a request is in flight), reads and
discards whatever arrives and keeps each connection open until the client
closes it. Unlike ``mlmon.demo.model_server --fault stall`` it hangs on every
path, S3 PUTs included. Stop it with SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading


def _drain(conn: socket.socket) -> None:
    with conn:
        while conn.recv(65536):
            pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with socket.create_server((args.host, args.port)) as srv:
        host, port = srv.getsockname()[:2]
        print(f"listening on http://{host}:{port}", flush=True)
        n = 0
        while True:
            conn, _ = srv.accept()
            n += 1
            print(f"accepted {n}", flush=True)
            threading.Thread(target=_drain, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())

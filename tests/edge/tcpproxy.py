"""A TCP forwarder in front of a server: the network path to a bucket that a test can cut.

    python -m tests.edge.tcpproxy --host 127.0.0.1 --port 0 --to 127.0.0.1:5000

Prints ``listening on http://HOST:PORT`` when ready and forwards every
connection to ``--to``, byte for byte in both directions. Stopping it (SIGTERM,
by its pid) takes the bucket away while the server behind it, with its
objects and users, stays up; starting it again on the same port brings the
bucket back. ``tests.edge.blackhole`` on the same port makes the bucket hang
instead of refuse.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import sys
import threading


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def _serve(conn: socket.socket, target: tuple[str, int]) -> None:
    try:
        upstream = socket.create_connection(target, timeout=10)
    except OSError:
        conn.close()
        return
    upstream.settimeout(None)
    back = threading.Thread(target=_pump, args=(upstream, conn), daemon=True)
    back.start()
    _pump(conn, upstream)
    back.join()
    conn.close()
    upstream.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--to", required=True, help="HOST:PORT to forward to")
    args = ap.parse_args(argv)
    host, _, port = args.to.rpartition(":")
    target = (host, int(port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with socket.create_server((args.host, args.port)) as srv:
        h, p = srv.getsockname()[:2]
        print(f"listening on http://{h}:{p}", flush=True)
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=_serve, args=(conn, target), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())

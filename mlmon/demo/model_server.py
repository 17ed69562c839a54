"""A small, real HTTP model server for the demo and the tests (standard library + numpy).

    python -m mlmon.demo.model_server --protocol oip_v2 --port 0 [--fault stall|http500|garbage|flaky]

The model is the fixtures' risk score, a fixed logistic regression over four
numeric features (:data:`FEATURES`)::

    x = [age, bmi - 27, ln(creatinine), heart_rate - 78]
    z = -6 + 0.05*x0 + 0.08*x1 + 0.8*x2 + 0.02*x3          (COEF, INTERCEPT)
    score = round(1 / (1 + exp(-z)), 4)

served over one of the protocols mlmon probes:

=========  =============================================  ================================
protocol   predict                                         health / metadata
=========  =============================================  ================================
oip_v2     POST /v2/models/{name}/infer (named tensors)    GET /v2/health/ready, /v2/models/{name}
kserve_v1  POST /v1/models/{name}:predict  {"instances"}    GET /v1/models/{name}
mlflow     POST /invocations  {"dataframe_split"}           GET /ping, /health, /version
generic    POST /predict  {"data": rows}                    GET /predict
           -> {"result": {"scores": [...]}}
=========  =============================================  ================================

It binds 127.0.0.1 unless told otherwise and prints one line
``listening on http(s)://HOST:PORT`` when ready (``--port 0`` picks a free
port and prints it). Fault modes, applied to predict requests:

* ``stall``: sleep ``--stall-s`` (default 60 s, longer than any client timeout);
* ``http500``: answer 500 ``{"error": "ValueError : ..."}`` (as KServe does);
* ``garbage``: answer 200 with a non-JSON body, then with JSON of the wrong shape, alternately;
* ``flaky``: answer 503 to every other request, starting with the first.

``--tls-cert/--tls-key`` serve HTTPS; ``--client-ca`` also requires client
certificates signed by that CA (mTLS); ``--bearer-token`` requires that token.
``--null-infer-version`` answers ``model_version: null`` on OIP inference (as
KServe does) and reports the version only in the model metadata.
"""

from __future__ import annotations

import argparse
import itertools
import json
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

__all__ = ["COEF", "FEATURES", "INTERCEPT", "Model", "main", "predict", "score"]

FEATURES = ("age", "bmi", "creatinine", "heart_rate")
COEF = np.array([0.05, 0.08, 0.8, 0.02])
INTERCEPT = -6.0
_CENTRE = np.array([0.0, 27.0, 0.0, 78.0])

Model = Callable[[np.ndarray], list[Any]]
"""A model maps an ``(n, 4)`` float matrix (columns :data:`FEATURES`) to ``n`` predictions."""


def predict(x: np.ndarray) -> list[float]:
    """The demo model on an ``(n, 4)`` matrix of :data:`FEATURES`; scores rounded to 4 digits.

    Examples
    --------
    >>> predict(np.array([[70, 30.5, 1.2, 88]]))
    [0.1331]
    """
    design = np.asarray(x, dtype=float) - _CENTRE
    design[:, 2] = np.log(np.asarray(x, dtype=float)[:, 2])
    proba = 1.0 / (1.0 + np.exp(-(INTERCEPT + design @ COEF)))
    return [round(float(p), 4) for p in proba]


def score(row: dict[str, Any]) -> float:
    """The demo model for one row ``{feature: value}``.

    Examples
    --------
    >>> score({"age": 70, "bmi": 30.5, "creatinine": 1.2, "heart_rate": 88})
    0.1331
    """
    return predict(_matrix([row]))[0]


def _matrix(rows: list[dict[str, Any]]) -> np.ndarray:
    return np.array([[float(r[f]) for f in FEATURES] for r in rows], dtype=float)


def _rows_from_v2(body: dict[str, Any]) -> list[dict[str, Any]]:
    tensors = {t["name"]: t["data"] for t in body["inputs"]}
    n = len(next(iter(tensors.values())))
    return [{k: v[i] for k, v in tensors.items()} for i in range(n)]


def _rows_from_v1(body: dict[str, Any]) -> list[dict[str, Any]]:
    return list(body["instances"])


def _rows_from_mlflow(body: dict[str, Any]) -> list[dict[str, Any]]:
    split = body["dataframe_split"]
    return [dict(zip(split["columns"], r, strict=True)) for r in split["data"]]


def _rows_from_generic(body: dict[str, Any]) -> list[dict[str, Any]]:
    data = body["data"]
    return data if isinstance(data, list) else [data]


class Server:
    """The request handling of one model server (protocol, model, fault mode, auth)."""

    def __init__(
        self,
        protocol: str,
        model_name: str,
        version: str | None,
        fault: str = "none",
        token: str | None = None,
        model: Model | None = None,
        *,
        stall_s: float = 60.0,
        null_infer_version: bool = False,
    ):
        self.protocol, self.model_name, self.version = protocol, model_name, version
        self.fault, self.token, self.stall_s = fault, token, stall_s
        self.null_infer_version = null_infer_version
        self.model: Model = model or predict
        self._counter = itertools.count()
        self._lock = threading.Lock()

    def next_request(self) -> int:
        with self._lock:
            return next(self._counter)

    def routes(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        """Predict paths of the served protocol -> function of the JSON body."""
        name = self.model_name

        def v2(body: dict[str, Any]) -> Any:
            scores = self.model(_matrix(_rows_from_v2(body)))
            version = None if self.null_infer_version else self.version
            return {"model_name": name, "model_version": version, "id": "req", "parameters": None,
                    "outputs": [{"name": "score", "shape": [len(scores)], "datatype": "FP64",
                                 "parameters": None, "data": scores}]}  # fmt: skip

        def predictions(reader: Callable[[dict[str, Any]], list[dict[str, Any]]]) -> Any:
            return lambda body: {"predictions": self.model(_matrix(reader(body)))}

        table = {
            "oip_v2": {f"/v2/models/{name}/infer": v2},
            "kserve_v1": {f"/v1/models/{name}:predict": predictions(_rows_from_v1)},
            "mlflow": {"/invocations": predictions(_rows_from_mlflow)},
            "generic": {
                "/predict": lambda b: {
                    "result": {"scores": self.model(_matrix(_rows_from_generic(b)))}
                }
            },
        }
        return table[self.protocol]

    def handler(self) -> type[BaseHTTPRequestHandler]:
        srv = self
        routes = self.routes()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "mlmon-demo/1"

            def setup(self) -> None:
                if isinstance(self.request, ssl.SSLSocket):
                    self.request.settimeout(10)
                    self.request.do_handshake()  # in this thread, not in the accept loop
                    self.request.settimeout(None)
                super().setup()

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _json(self, code: int, obj: Any) -> None:
                self._send(code, json.dumps(obj).encode())

            def _authorised(self) -> bool:
                if srv.token and self.headers.get("Authorization") != f"Bearer {srv.token}":
                    self._json(401, {"error": "missing or wrong bearer token"})
                    return False
                return True

            def do_GET(self) -> None:
                if not self._authorised():
                    return
                p = self.path
                if p in ("/v2/health/ready", "/v2/health/live"):
                    self._json(200, {"ready": True})
                elif p in ("/ping", "/health"):
                    self._send(200, b"")
                elif p == "/version":
                    self._send(200, (srv.version or "").encode(), "text/plain")
                elif p == f"/v2/models/{srv.model_name}":
                    self._json(200, {"name": srv.model_name, "platform": "mlmon-demo",
                                     "versions": [srv.version] if srv.version else []})  # fmt: skip
                elif p == f"/v1/models/{srv.model_name}":
                    self._json(200, {"name": srv.model_name, "ready": True})
                elif p == "/predict" and srv.protocol == "generic":
                    self._json(200, {"ready": True})
                else:
                    self._json(404, {"error": f"Model with name {p} does not exist."})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not self._authorised():
                    return
                route = routes.get(self.path)
                if route is None:
                    self._json(404, {"error": f"Model with name {self.path} does not exist."})
                    return
                n = srv.next_request()
                if srv.fault == "stall":
                    time.sleep(srv.stall_s)
                elif srv.fault == "http500":
                    self._json(500, {"error": "ValueError : simulated failure"})
                    return
                elif srv.fault == "flaky" and n % 2 == 0:
                    self._json(503, {"error": "warming up"})
                    return
                elif srv.fault == "garbage":
                    if n % 2 == 0:
                        self._send(200, b"<html>definitely not json", "text/html")
                    else:
                        self._json(200, {"status": "ok", "outputs": "none", "predictions": None})
                    return
                try:
                    answer = route(json.loads(raw))
                except (KeyError, TypeError, ValueError, IndexError, StopIteration) as exc:
                    code = 400 if srv.protocol == "mlflow" else 500
                    self._json(code, {"error": f"ValueError : {type(exc).__name__}: {exc}"})
                    return
                self._json(200, answer)

        return Handler


class _TLSServer(ThreadingHTTPServer):
    """Wraps accepted sockets without a handshake; each handler thread does its own."""

    ssl_context: ssl.SSLContext

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        return self.ssl_context.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        ), addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ssl.SSLError | ConnectionError | TimeoutError):
            return  # a client that fails the handshake (no client certificate, wrong CA)
        super().handle_error(request, client_address)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m mlmon.demo.model_server",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--protocol", default="oip_v2", choices=["oip_v2", "kserve_v1", "mlflow", "generic"]
    )
    ap.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    ap.add_argument("--model-name", default="risk")
    ap.add_argument("--model-version", default="1.0", help="'' reports no version")
    ap.add_argument("--null-infer-version", action="store_true")
    ap.add_argument(
        "--fault", default="none", choices=["none", "stall", "http500", "garbage", "flaky"]
    )
    ap.add_argument("--stall-s", type=float, default=60.0)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--client-ca", help="require client certificates signed by this CA (mTLS)")
    ap.add_argument("--bearer-token")
    return ap


def main(argv: list[str] | None = None, model: Model | None = None) -> None:
    """Run the server until SIGTERM or Ctrl-C.

    Parameters
    ----------
    argv
        Command-line arguments (see ``--help``).
    model
        Replace the demo model (a test serves a trained scikit-learn model this way).
    """
    args = _parser().parse_args(argv)
    if args.client_ca and not args.tls_cert:
        _parser().error("--client-ca needs --tls-cert and --tls-key")
    srv = Server(
        args.protocol, args.model_name, args.model_version or None, args.fault,
        args.bearer_token, model, stall_s=args.stall_s, null_infer_version=args.null_infer_version,
    )  # fmt: skip
    server_class = _TLSServer if args.tls_cert else ThreadingHTTPServer
    httpd = server_class((args.host, args.port), srv.handler())
    httpd.daemon_threads = True
    scheme = "http"
    if args.tls_cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        if args.client_ca:
            ctx.load_verify_locations(args.client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        httpd.ssl_context = ctx  # type: ignore[attr-defined]
        scheme = "https"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"listening on {scheme}://{args.host}:{httpd.server_address[1]}", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


if __name__ == "__main__":
    main(sys.argv[1:])

"""A small, real HTTP model server for the demo and the tests (standard library only).

    python -m mlmon.demo.model_server --protocol oip_v2 --port 0 [--fault stall|http500|garbage|flaky]

The model is the fixtures' risk score, a fixed logistic regression::

    z = -6 + 0.05*age + 0.08*(bmi - 27) + 0.8*ln(creatinine) + 0.02*(heart_rate - 78)
    score = 1 / (1 + exp(-z))

served over one of the protocols mlmon probes: ``oip_v2`` (Open Inference
Protocol / KServe v2), ``kserve_v1``, ``mlflow`` (``/invocations``) or
``generic`` (``POST /predict`` -> ``{"result": {"scores": [...]}}``). It binds
127.0.0.1 by default and prints ``listening on http(s)://HOST:PORT`` when ready.
Fault modes make it stall, answer 500, answer garbage, or fail every other
request (``flaky``). ``--tls-cert/--tls-key`` serve HTTPS; ``--client-ca``
requires client certificates (mTLS); ``--bearer-token`` requires that token.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FEATURES = ("age", "bmi", "creatinine", "heart_rate")


def score(row: dict[str, Any]) -> float:
    """The demo model: the fixtures' logistic risk score, rounded to 4 digits."""
    z = (
        -6
        + 0.05 * float(row["age"])
        + 0.08 * (float(row["bmi"]) - 27)
        + 0.8 * math.log(float(row["creatinine"]))
        + 0.02 * (float(row["heart_rate"]) - 78)
    )
    return round(1 / (1 + math.exp(-z)), 4)


def _rows_from_v2(body: dict[str, Any]) -> list[dict[str, Any]]:
    tensors = {t["name"]: t["data"] for t in body["inputs"]}
    n = len(next(iter(tensors.values())))
    return [{k: v[i] for k, v in tensors.items()} for i in range(n)]


def _rows_from_v1(body: dict[str, Any]) -> list[dict[str, Any]]:
    return list(body["instances"])


def _rows_from_mlflow(body: dict[str, Any]) -> list[dict[str, Any]]:
    split = body["dataframe_split"]
    return [dict(zip(split["columns"], r, strict=True)) for r in split["data"]]


class Server:
    def __init__(
        self,
        protocol: str,
        model_name: str,
        version: str | None,
        fault: str,
        token: str | None,
        model: Any = None,
    ):
        self.protocol, self.model_name, self.version = protocol, model_name, version
        self.fault, self.token = fault, token
        self.model = model or score
        self.counter = itertools.count()
        self.lock = threading.Lock()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

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
                if p in ("/v2/health/ready", "/v2/health/live", "/ping", "/health"):
                    self._send(200, b"" if p in ("/ping", "/health") else b'{"ready": true}')
                elif p == f"/v2/models/{srv.model_name}":
                    self._json(200, {"name": srv.model_name, "versions": [srv.version] if srv.version else [],
                                     "platform": "mlmon-demo"})  # fmt: skip
                elif p == f"/v1/models/{srv.model_name}":
                    self._json(200, {"name": srv.model_name, "ready": True})
                else:
                    self._json(404, {"error": f"Model with name {p} does not exist."})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if not self._authorised():
                    return
                with srv.lock:
                    n = next(srv.counter)
                if srv.fault == "stall":
                    time.sleep(30)
                if srv.fault == "http500":
                    self._json(500, {"error": "ValueError : simulated failure"})
                    return
                if srv.fault == "flaky" and n % 2 == 0:
                    self._json(503, {"error": "warming up"})
                    return
                if srv.fault == "garbage":
                    self._send(200, b"<html>definitely not json", "text/html")
                    return
                try:
                    body = json.loads(raw)
                    p = self.path
                    if srv.protocol == "oip_v2" and p == f"/v2/models/{srv.model_name}/infer":
                        rows = _rows_from_v2(body)
                        scores = [srv.model(r) for r in rows]
                        self._json(200, {"model_name": srv.model_name, "model_version": srv.version, "id": "req",
                                         "parameters": None, "outputs": [{"name": "score", "shape": [len(scores)],
                                         "datatype": "FP64", "parameters": None, "data": scores}]})  # fmt: skip
                    elif (
                        srv.protocol == "kserve_v1" and p == f"/v1/models/{srv.model_name}:predict"
                    ):
                        self._json(
                            200, {"predictions": [srv.model(r) for r in _rows_from_v1(body)]}
                        )
                    elif srv.protocol == "mlflow" and p == "/invocations":
                        self._json(
                            200, {"predictions": [srv.model(r) for r in _rows_from_mlflow(body)]}
                        )
                    elif srv.protocol == "generic" and p == "/predict":
                        rows = (
                            body["data"] if isinstance(body.get("data"), list) else [body["data"]]
                        )
                        self._json(200, {"result": {"scores": [srv.model(r) for r in rows]}})
                    else:
                        self._json(404, {"error": f"Model with name {p} does not exist."})
                except (KeyError, TypeError, ValueError, IndexError) as exc:
                    self._json(
                        400 if srv.protocol == "mlflow" else 500,
                        {"error": f"ValueError : {type(exc).__name__}"},
                    )

        return Handler


def main(argv: list[str] | None = None, model: Any = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--protocol", default="oip_v2", choices=["oip_v2", "kserve_v1", "mlflow", "generic"]
    )
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--model-name", default="risk")
    ap.add_argument("--model-version", default="1.0")
    ap.add_argument(
        "--fault", default="none", choices=["none", "stall", "http500", "garbage", "flaky"]
    )
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--client-ca", help="require client certificates signed by this CA (mTLS)")
    ap.add_argument("--bearer-token")
    args = ap.parse_args(argv)
    srv = Server(
        args.protocol,
        args.model_name,
        args.model_version or None,
        args.fault,
        args.bearer_token,
        model,
    )
    httpd = ThreadingHTTPServer((args.host, args.port), srv.handler())
    httpd.daemon_threads = True
    scheme = "http"
    if args.tls_cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        if args.client_ca:
            ctx.load_verify_locations(args.client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        scheme = "https"
    print(f"listening on {scheme}://{args.host}:{httpd.server_address[1]}", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


if __name__ == "__main__":
    main(sys.argv[1:])

"""Model-endpoint adapters (KServe v1, Open Inference Protocol v2, MLflow, generic JSON) and probes.

An adapter turns a sample's inputs (one row: a mapping of feature to value,
or a list of rows) into an HTTP request and the answer into predictions. A
:func:`probe` never raises for endpoint trouble: timeouts, refused
connections, TLS failures, 4xx/5xx answers and malformed bodies become a
:class:`ProbeResult` with an ``error_kind``. Payloads and predictions stay
in memory.
"""

from __future__ import annotations

import json
import re
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from mlmon.edge.http import HttpSettings, check_url, make_client, request_with_retries
from mlmon.errors import DuplicateNameError, EdgeError, UnknownNameError

__all__ = [
    "PROTOCOLS",
    "Endpoint",
    "MalformedResponse",
    "ModelProtocol",
    "ProbeResult",
    "endpoint_from_config",
    "probe",
    "register_protocol",
]

Rows = list[dict[str, Any]]


class MalformedResponse(EdgeError):
    """The endpoint answered 2xx with a body the adapter cannot read."""


@dataclass(frozen=True)
class Endpoint:
    """One model endpoint: base URL, protocol, model name and HTTP settings."""

    url: str
    protocol: str = "oip_v2"
    model_name: str = "model"
    settings: HttpSettings = field(default_factory=HttpSettings)
    request_template: str | None = None
    response_path: str | None = None

    @property
    def adapter(self) -> ModelProtocol:
        return protocol(self.protocol)


class ModelProtocol(Protocol):
    """What an endpoint adapter provides."""

    def request(self, ep: Endpoint, rows: Rows) -> tuple[str, str, dict[str, Any]]:
        """(method, path, httpx request kwargs)."""
        ...

    def parse(self, ep: Endpoint, body: Any) -> tuple[list[Any], str | None]:
        """(predictions, model version reported or None)."""
        ...

    def health_path(self, ep: Endpoint) -> str: ...


def _rows(inputs: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> Rows:
    if isinstance(inputs, Mapping):
        return [dict(inputs)]
    return [dict(r) for r in inputs]


def _require(body: Any, key: str) -> Any:
    if not isinstance(body, dict) or key not in body:
        raise MalformedResponse(f"answer has no {key!r} field")
    return body[key]


class KServeV1:
    def request(self, ep: Endpoint, rows: Rows) -> tuple[str, str, dict[str, Any]]:
        return "POST", f"/v1/models/{ep.model_name}:predict", {"json": {"instances": rows}}

    def parse(self, ep: Endpoint, body: Any) -> tuple[list[Any], str | None]:
        preds = _require(body, "predictions")
        if not isinstance(preds, list):
            raise MalformedResponse("'predictions' is not a list")
        return preds, body.get("model_version") if isinstance(
            body.get("model_version"), str
        ) else None

    def health_path(self, ep: Endpoint) -> str:
        return f"/v1/models/{ep.model_name}"


_V2_TYPES = {int: "INT64", float: "FP64", bool: "BOOL", str: "BYTES"}


class OpenInferenceV2:
    """Open Inference Protocol (KServe v2): one named 1-D tensor per feature."""

    def request(self, ep: Endpoint, rows: Rows) -> tuple[str, str, dict[str, Any]]:
        names = list(rows[0])
        inputs = []
        for n in names:
            values = [r.get(n) for r in rows]
            kinds = {type(v) for v in values if v is not None}
            dtype = (
                "FP64"
                if kinds <= {int, float} and float in kinds
                else _V2_TYPES.get(next(iter(kinds), float), "BYTES")
            )
            inputs.append({"name": n, "shape": [len(rows)], "datatype": dtype, "data": values})
        return "POST", f"/v2/models/{ep.model_name}/infer", {"json": {"inputs": inputs}}

    def parse(self, ep: Endpoint, body: Any) -> tuple[list[Any], str | None]:
        outputs = _require(body, "outputs")
        if not isinstance(outputs, list) or not outputs or not isinstance(outputs[0], dict):
            raise MalformedResponse("'outputs' is not a non-empty list of tensors")
        data = outputs[0].get("data")
        if not isinstance(data, list):
            raise MalformedResponse("outputs[0] has no 'data' list")
        version = body.get("model_version")
        return data, str(version) if version is not None else None

    def health_path(self, ep: Endpoint) -> str:
        return "/v2/health/ready"


class MLflowScoring:
    def request(self, ep: Endpoint, rows: Rows) -> tuple[str, str, dict[str, Any]]:
        cols = list(rows[0])
        payload = {
            "dataframe_split": {"columns": cols, "data": [[r.get(c) for c in cols] for r in rows]}
        }
        return "POST", "/invocations", {"json": payload}

    def parse(self, ep: Endpoint, body: Any) -> tuple[list[Any], str | None]:
        preds = _require(body, "predictions")
        if not isinstance(preds, list):
            raise MalformedResponse("'predictions' is not a list")
        return preds, None

    def health_path(self, ep: Endpoint) -> str:
        return "/ping"


_PATH_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def extract(body: Any, path: str) -> Any:
    """Follow a dotted/indexed path such as ``result.scores[0]`` into a JSON value."""
    cur = body
    for name, index in _PATH_TOKEN.findall(path):
        try:
            cur = cur[int(index)] if index else cur[name]
        except (KeyError, IndexError, TypeError) as exc:
            raise MalformedResponse(
                f"response path {path!r} does not resolve at {name or index!r}"
            ) from exc
    return cur


class GenericJSON:
    """A JSON endpoint described by a request template and a response path.

    The template is JSON text with the placeholder ``{{inputs}}`` (the list of
    rows) or ``{{row}}`` (the first row), e.g. ``{"data": {{inputs}}}``; the
    URL path is the endpoint URL itself.
    """

    def request(self, ep: Endpoint, rows: Rows) -> tuple[str, str, dict[str, Any]]:
        template = ep.request_template or '{"inputs": {{inputs}}}'
        text = template.replace("{{inputs}}", json.dumps(rows)).replace(
            "{{row}}", json.dumps(rows[0])
        )
        return (
            "POST",
            "",
            {"content": text.encode(), "headers": {"Content-Type": "application/json"}},
        )

    def parse(self, ep: Endpoint, body: Any) -> tuple[list[Any], str | None]:
        value = extract(body, ep.response_path or "predictions")
        return value if isinstance(value, list) else [value], None

    def health_path(self, ep: Endpoint) -> str:
        return ""


def protocol(name: str) -> ModelProtocol:
    try:
        return PROTOCOLS[name]
    except KeyError as exc:
        raise UnknownNameError(
            f"unknown endpoint protocol {name!r}; registered: {', '.join(sorted(PROTOCOLS))}"
        ) from exc


def register_protocol(name: str, adapter: ModelProtocol, *, replace: bool = False) -> None:
    """Add an endpoint adapter; refuses to overwrite one unless ``replace=True``."""
    if name in PROTOCOLS and not replace:
        raise DuplicateNameError(
            f"endpoint protocol {name!r} is already registered; pass replace=True"
        )
    PROTOCOLS[name] = adapter


@dataclass(frozen=True)
class ProbeResult:
    """The outcome of one request; ``predictions`` never leave the edge's memory."""

    ok: bool
    status_code: int | None
    latency_ms: float
    error_kind: str | None = None
    model_version: str | None = None
    predictions: list[Any] = field(default_factory=list, repr=False)


def _transport_error_kind(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    text = repr(exc)
    if isinstance(exc, ssl.SSLError) or "SSL" in text or "CERTIFICATE" in text.upper():
        return "tls"
    return "connect"


def probe(
    client: httpx.Client, ep: Endpoint, inputs: Mapping[str, Any] | Sequence[Mapping[str, Any]]
) -> ProbeResult:
    """Send one request to the endpoint; every failure becomes a :class:`ProbeResult`."""
    adapter = ep.adapter
    method, path, kwargs = adapter.request(ep, _rows(inputs))
    url = ep.url.rstrip("/") + path
    t0 = time.perf_counter()
    try:
        resp = request_with_retries(client, method, url, ep.settings, **kwargs)
    except httpx.TransportError as exc:
        return ProbeResult(
            False, None, (time.perf_counter() - t0) * 1000, _transport_error_kind(exc)
        )
    latency = (time.perf_counter() - t0) * 1000
    if resp.status_code >= 500:
        return ProbeResult(False, resp.status_code, latency, "http_5xx")
    if resp.status_code >= 400:
        return ProbeResult(False, resp.status_code, latency, "http_4xx")
    try:
        preds, version = adapter.parse(ep, resp.json())
    except (ValueError, MalformedResponse):
        return ProbeResult(False, resp.status_code, latency, "malformed")
    if version is None and ep.protocol == "oip_v2":
        version = _v2_metadata_version(client, ep)
    return ProbeResult(True, resp.status_code, latency, None, version, preds)


def _v2_metadata_version(client: httpx.Client, ep: Endpoint) -> str | None:
    """KServe may answer ``model_version: null``; the model metadata may still name it."""
    try:
        r = client.get(
            f"{ep.url.rstrip('/')}/v2/models/{ep.model_name}", timeout=ep.settings.timeout_s
        )
        if r.status_code == 200:
            versions = r.json().get("versions") or []
            return str(versions[-1]) if versions else r.json().get("version")
    except (httpx.HTTPError, ValueError):
        return None
    return None


def endpoint_from_config(cfg: Any, *, allow_http: bool = False) -> Endpoint:
    """Build an :class:`Endpoint` from an :class:`~mlmon.edge.config.EndpointConfig`."""
    token = None
    if cfg.bearer_token is not None:
        from mlmon.edge.config import _read_secret

        token = _read_secret(cfg.bearer_token, "endpoint.bearer_token").decode()
    settings = HttpSettings(
        timeout_s=cfg.timeout.total_seconds(),
        retries=cfg.retries,
        backoff_s=cfg.backoff.total_seconds(),
        ca_bundle=cfg.ca_bundle,
        client_cert=cfg.client_cert,
        client_key=cfg.client_key,
        bearer_token=token,
        allow_http=allow_http,
    )
    check_url(cfg.url, settings)
    return Endpoint(
        url=cfg.url,
        protocol=cfg.protocol,
        model_name=cfg.model_name or "model",
        settings=settings,
        request_template=cfg.request_template,
        response_path=cfg.response_path,
    )


def client_for(ep: Endpoint) -> httpx.Client:
    check_url(ep.url, ep.settings)
    return make_client(ep.settings)


PROTOCOLS: dict[str, ModelProtocol] = {
    "kserve_v1": KServeV1(),
    "oip_v2": OpenInferenceV2(),
    "mlflow": MLflowScoring(),
    "generic_json": GenericJSON(),
}

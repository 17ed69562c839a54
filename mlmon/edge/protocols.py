"""Model-endpoint adapters (KServe v1, Open Inference Protocol v2, MLflow, generic JSON) and probes.

An adapter (:class:`ModelProtocol`) turns a sample's inputs, one row (a
mapping of feature to value) or a list of rows, into an HTTP call, and the
answer into one prediction per row. Adapters are registered by name in
:data:`PROTOCOLS`; :func:`register_protocol` adds one.

:func:`probe` never raises for endpoint trouble: timeouts, refused
connections, TLS failures, 4xx/5xx answers and malformed bodies become a
:class:`ProbeResult` with an ``error_kind``. Payloads and predictions stay
in the edge's memory; only the outcome fields are ever written.

=============  ==========================================  ============================
name           request                                     health
=============  ==========================================  ============================
kserve_v1      POST /v1/models/{name}:predict  instances   GET /v1/models/{name}
oip_v2         POST /v2/models/{name}/infer    tensors     GET /v2/health/ready
mlflow         POST /invocations       dataframe_split     GET /ping
generic_json   POST {url}      request_template            GET {url}
=============  ==========================================  ============================
"""

from __future__ import annotations

import json
import re
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import httpx
import numpy as np

from mlmon.edge.http import HttpSettings, check_url, make_client, request_with_retries
from mlmon.errors import ConfigError, DuplicateNameError, EdgeError, UnknownNameError

__all__ = [
    "ERROR_KINDS",
    "PROTOCOLS",
    "Endpoint",
    "ErrorKind",
    "HttpCall",
    "MalformedResponse",
    "ModelProtocol",
    "ProbeResult",
    "check_health",
    "client_for",
    "endpoint_from_config",
    "extract",
    "parse_path",
    "probe",
    "protocol",
    "register_protocol",
]

ErrorKind = Literal["timeout", "connect", "tls", "http_4xx", "http_5xx", "malformed"]
ERROR_KINDS: tuple[ErrorKind, ...] = (
    "timeout",
    "connect",
    "tls",
    "http_4xx",
    "http_5xx",
    "malformed",
)
Rows = list[dict[str, Any]]
Inputs = Mapping[str, Any] | Sequence[Mapping[str, Any]]


class MalformedResponse(EdgeError, ValueError):
    """The endpoint answered 2xx with a body the adapter cannot read."""


@dataclass(frozen=True)
class HttpCall:
    """One request an adapter wants sent: ``path`` is appended to the endpoint URL."""

    method: str
    path: str
    json: Any = None


# -- response paths ------------------------------------------------------------------------
_PART = re.compile(r"(?P<name>[^.\[\]]*)(?P<index>(?:\[\d+\])*)")
_INDEX = re.compile(r"\[(\d+)\]")


def parse_path(path: str) -> tuple[str | int, ...]:
    """Split a dotted/indexed path such as ``result.scores[0]`` into keys and indices.

    Raises
    ------
    ConfigError
        The path is empty or not of the form ``name.name[0][1].name``.

    Examples
    --------
    >>> parse_path("result.scores[0]")
    ('result', 'scores', 0)
    """
    steps: list[str | int] = []
    parts = path.split(".") if isinstance(path, str) and path else [""]
    for part in parts:
        m = _PART.fullmatch(part)
        if m is None or not (m["name"] or m["index"]):
            raise ConfigError(
                f"response path {path!r} is not a dotted/indexed path; "
                "expected e.g. 'predictions', 'result.scores[0]' or 'outputs[0].data'"
            )
        if m["name"]:
            steps.append(m["name"])
        steps.extend(int(i) for i in _INDEX.findall(m["index"]))
    return tuple(steps)


def extract(body: Any, path: str) -> Any:
    """Follow a dotted/indexed path such as ``result.scores[0]`` into a JSON value.

    Raises
    ------
    ConfigError
        The path itself is invalid.
    MalformedResponse
        The body has no value at that path.

    Examples
    --------
    >>> extract({"result": {"scores": [0.25, 0.75]}}, "result.scores[1]")
    0.75
    """
    cur = body
    for step in parse_path(path):
        ok = (isinstance(step, int) and isinstance(cur, list) and 0 <= step < len(cur)) or (
            isinstance(step, str) and isinstance(cur, dict) and step in cur
        )
        if not ok:
            raise MalformedResponse(
                f"response path {path!r} does not resolve at {step!r}: "
                f"expected {'a list index' if isinstance(step, int) else 'an object key'}, "
                f"got {type(cur).__name__}"
            )
        cur = cur[step]
    return cur


# -- the endpoint --------------------------------------------------------------------------
_PLACEHOLDERS = ("{{inputs}}", "{{row}}")


@dataclass(frozen=True)
class Endpoint:
    """One model endpoint.

    Parameters
    ----------
    url
        Base URL of the model server (for ``generic_json``, the full URL to POST to).
    protocol
        A name in :data:`PROTOCOLS`.
    model_name
        The model's name on the server (KServe, OIP).
    settings
        Timeout, retries, TLS and token (:class:`~mlmon.edge.http.HttpSettings`).
    request_template, response_path
        ``generic_json`` only: JSON text with the placeholder ``{{inputs}}``
        (the list of rows) or ``{{row}}`` (the first row), and the
        dotted/indexed path of the predictions in the answer.

    Raises
    ------
    ConfigError
        The URL is not allowed by the settings, or the generic template/path is wrong.
    UnknownNameError
        ``protocol`` is not registered.

    Examples
    --------
    >>> ep = Endpoint("https://models.internal", "kserve_v1", "risk")
    >>> ep.adapter.health(ep)
    HttpCall(method='GET', path='/v1/models/risk', json=None)
    """

    url: str
    protocol: str = "oip_v2"
    model_name: str = "model"
    settings: HttpSettings = field(default_factory=HttpSettings)
    request_template: str | None = None
    response_path: str | None = None

    def __post_init__(self) -> None:
        check_url(self.url, self.settings)
        protocol(self.protocol)
        if not self.model_name or "/" in self.model_name:
            raise ConfigError(
                f"endpoint {self.url}: model_name {self.model_name!r} must be a non-empty name "
                "without '/'"
            )
        if self.protocol == "generic_json":
            if not self.request_template or not any(
                p in self.request_template for p in _PLACEHOLDERS
            ):
                raise ConfigError(
                    f"endpoint {self.url}: protocol generic_json needs a request_template "
                    f"containing {{{{inputs}}}} or {{{{row}}}}, e.g. '{{\"data\": {{{{inputs}}}}}}'; "
                    f"got {self.request_template!r}"
                )
            if not self.response_path:
                raise ConfigError(
                    f"endpoint {self.url}: protocol generic_json needs a response_path, "
                    "e.g. 'result.scores'"
                )
            parse_path(self.response_path)

    @property
    def adapter(self) -> ModelProtocol:
        """The registered adapter of :attr:`protocol`."""
        return protocol(self.protocol)


@runtime_checkable
class ModelProtocol(Protocol):
    """What an endpoint adapter provides. Implementations hold no state."""

    def request(self, ep: Endpoint, rows: Rows) -> HttpCall:
        """The call that asks for predictions of ``rows`` (raise ConfigError for bad inputs)."""
        ...

    def parse(self, ep: Endpoint, body: Any) -> tuple[list[Any], str | None]:
        """(one prediction per row, model version the answer reports or None).

        Raise :class:`MalformedResponse` when the body is not what the protocol answers.
        """
        ...

    def health(self, ep: Endpoint) -> HttpCall:
        """The call that answers 2xx when the model is ready."""
        ...

    def fallback_version(self, client: httpx.Client, ep: Endpoint) -> str | None:
        """Ask the server for the model version when the answer did not carry one."""
        ...


def _rows(inputs: Inputs) -> Rows:
    if isinstance(inputs, Mapping):
        rows = [dict(inputs)]
    elif isinstance(inputs, Sequence) and not isinstance(inputs, str | bytes):
        rows = [dict(r) if isinstance(r, Mapping) else r for r in inputs]
    else:
        rows = []
    if not rows or not all(isinstance(r, dict) and r for r in rows):
        raise ConfigError(
            "probe inputs must be a mapping of feature -> value or a non-empty list of them; "
            f"got {type(inputs).__name__}"
        )
    return rows


def _columns(rows: Rows) -> list[str]:
    cols = list(rows[0])
    for i, r in enumerate(rows):
        if list(r) != cols:
            raise ConfigError(
                f"probe inputs row {i} has features {sorted(r)}; expected the features of row 0, "
                f"{sorted(cols)}"
            )
    return cols


def _require_list(body: Any, key: str) -> list[Any]:
    if not isinstance(body, dict) or key not in body:
        raise MalformedResponse(
            f"answer has no {key!r} field; got {type(body).__name__}"
            + (f" with keys {sorted(body)[:5]}" if isinstance(body, dict) else "")
        )
    value = body[key]
    if not isinstance(value, list):
        raise MalformedResponse(f"answer field {key!r} is {type(value).__name__}, expected a list")
    return value


class KServeV1:
    """KServe V1: ``{"instances": [row, ...]}`` -> ``{"predictions": [...]}``."""

    def request(self, ep: Endpoint, rows: Rows) -> HttpCall:
        return HttpCall("POST", f"/v1/models/{ep.model_name}:predict", {"instances": rows})

    def parse(self, ep: Endpoint, body: Any) -> tuple[list[Any], str | None]:
        preds = _require_list(body, "predictions")
        version = body.get("model_version")
        return preds, version if isinstance(version, str) else None

    def health(self, ep: Endpoint) -> HttpCall:
        return HttpCall("GET", f"/v1/models/{ep.model_name}")

    def fallback_version(self, client: httpx.Client, ep: Endpoint) -> str | None:
        return None


def _v2_datatype(name: str, values: list[Any]) -> str:
    kinds = {type(v) for v in values}
    if kinds == {bool}:
        return "BOOL"
    if kinds == {int}:
        return "INT64"
    if kinds <= {int, float}:
        return "FP64"
    if kinds == {str}:
        return "BYTES"
    raise ConfigError(
        f"probe inputs feature {name!r} has values of types {sorted(k.__name__ for k in kinds)}; "
        "an Open Inference Protocol tensor needs one type (numbers, booleans or strings, no nulls)"
    )


class OpenInferenceV2:
    """Open Inference Protocol (KServe v2): one named 1-D tensor per feature.

    The predictions are the first output tensor, reshaped to its ``shape``
    (so a ``[n, k]`` output gives ``n`` lists of ``k`` values). KServe may
    answer ``model_version: null``; the version is then read from the model
    metadata (``GET /v2/models/{name}``, field ``versions``).
    """

    def request(self, ep: Endpoint, rows: Rows) -> HttpCall:
        tensors = []
        for name in _columns(rows):
            values = [r[name] for r in rows]
            dtype = _v2_datatype(name, values)
            tensors.append({"name": name, "shape": [len(rows)], "datatype": dtype, "data": values})
        return HttpCall("POST", f"/v2/models/{ep.model_name}/infer", {"inputs": tensors})

    def parse(self, ep: Endpoint, body: Any) -> tuple[list[Any], str | None]:
        outputs = _require_list(body, "outputs")
        if not outputs or not isinstance(outputs[0], dict):
            raise MalformedResponse("answer field 'outputs' is not a non-empty list of tensors")
        data, shape = outputs[0].get("data"), outputs[0].get("shape")
        if not isinstance(data, list):
            raise MalformedResponse("outputs[0] has no 'data' list")
        if (
            isinstance(shape, list)
            and len(shape) > 1
            and all(isinstance(d, int) and d >= 0 for d in shape)
        ):
            if int(np.prod(shape)) != len(data):
                raise MalformedResponse(
                    f"outputs[0] has shape {shape} but {len(data)} values in 'data'"
                )
            data = np.asarray(data, dtype=object).reshape(shape).tolist()
        version = body.get("model_version")
        return data, None if version is None else str(version)

    def health(self, ep: Endpoint) -> HttpCall:
        return HttpCall("GET", "/v2/health/ready")

    def fallback_version(self, client: httpx.Client, ep: Endpoint) -> str | None:
        try:
            r = client.get(f"{ep.url.rstrip('/')}/v2/models/{ep.model_name}")
            meta = r.json() if r.status_code == 200 else {}
        except (httpx.HTTPError, ValueError):
            return None
        versions = meta.get("versions") if isinstance(meta, dict) else None
        if isinstance(versions, list) and versions and versions[-1] is not None:
            return str(versions[-1])
        return None


class MLflowScoring:
    """MLflow scoring server: ``dataframe_split`` -> ``{"predictions": [...]}``."""

    def request(self, ep: Endpoint, rows: Rows) -> HttpCall:
        cols = _columns(rows)
        split = {"columns": cols, "data": [[r[c] for c in cols] for r in rows]}
        return HttpCall("POST", "/invocations", {"dataframe_split": split})

    def parse(self, ep: Endpoint, body: Any) -> tuple[list[Any], str | None]:
        return _require_list(body, "predictions"), None

    def health(self, ep: Endpoint) -> HttpCall:
        return HttpCall("GET", "/ping")

    def fallback_version(self, client: httpx.Client, ep: Endpoint) -> str | None:
        return None


class GenericJSON:
    """Any JSON endpoint, described by a request template and a response path.

    ``request_template`` is JSON text with the placeholder ``{{inputs}}`` (the
    list of rows) or ``{{row}}`` (the first row), e.g. ``{"data": {{inputs}}}``;
    it is POSTed to the endpoint URL itself. ``response_path`` (e.g.
    ``result.scores``) points at the predictions; a single value is one
    prediction.
    """

    def request(self, ep: Endpoint, rows: Rows) -> HttpCall:
        template = ep.request_template or ""
        text = template.replace("{{inputs}}", json.dumps(rows)).replace(
            "{{row}}", json.dumps(rows[0])
        )
        try:
            payload = json.loads(text)
        except ValueError as exc:
            raise ConfigError(
                f"endpoint {ep.url}: request_template {template!r} is not valid JSON once "
                f"the placeholder is filled in ({exc}); quote nothing around {{{{inputs}}}}"
            ) from exc
        return HttpCall("POST", "", payload)

    def parse(self, ep: Endpoint, body: Any) -> tuple[list[Any], str | None]:
        value = extract(body, ep.response_path or "")
        return (value if isinstance(value, list) else [value]), None

    def health(self, ep: Endpoint) -> HttpCall:
        return HttpCall("GET", "")

    def fallback_version(self, client: httpx.Client, ep: Endpoint) -> str | None:
        return None


# -- registry ------------------------------------------------------------------------------
def protocol(name: str) -> ModelProtocol:
    """Return the adapter registered as ``name``.

    Raises
    ------
    UnknownNameError
        No adapter has that name; the message lists the registered ones.

    Examples
    --------
    >>> type(protocol("mlflow")).__name__
    'MLflowScoring'
    """
    try:
        return PROTOCOLS[name]
    except KeyError as exc:
        raise UnknownNameError(
            f"unknown endpoint protocol {name!r}; registered: {', '.join(sorted(PROTOCOLS))} "
            "(add one with mlmon.edge.protocols.register_protocol)"
        ) from exc


def register_protocol(name: str, adapter: ModelProtocol, *, replace: bool = False) -> None:
    """Register an endpoint adapter under ``name``.

    Parameters
    ----------
    name
        snake_case name used in ``edge.yaml`` (``endpoint.protocol``).
    adapter
        An object with the methods of :class:`ModelProtocol`.
    replace
        Overwrite an existing entry of that name.

    Raises
    ------
    DuplicateNameError
        ``name`` is taken and ``replace`` is false.
    ConfigError
        ``adapter`` lacks a method of :class:`ModelProtocol`, or ``name`` is not snake_case.
    """
    if name in PROTOCOLS and not replace:
        raise DuplicateNameError(
            f"endpoint protocol {name!r} is already registered "
            f"({type(PROTOCOLS[name]).__name__}); pass replace=True to overwrite it"
        )
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ConfigError(f"endpoint protocol name {name!r} must be snake_case, e.g. 'my_server'")
    if not isinstance(adapter, ModelProtocol):
        missing = [
            m
            for m in ("request", "parse", "health", "fallback_version")
            if not callable(getattr(adapter, m, None))
        ]
        raise ConfigError(
            f"endpoint protocol {name!r}: {type(adapter).__name__} is not an adapter; "
            f"it lacks {', '.join(missing)} (see mlmon.edge.protocols.ModelProtocol)"
        )
    PROTOCOLS[name] = adapter


# -- probes --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProbeResult:
    """The outcome of one probe.

    ``latency_ms`` is the wall time from the first attempt to the final
    answer (retries and backoff included). ``predictions`` (one per row) never
    leave the edge's memory and are hidden from ``repr``.
    """

    ok: bool
    status_code: int | None
    latency_ms: float
    error_kind: ErrorKind | None = None
    model_version: str | None = None
    predictions: tuple[Any, ...] = field(default=(), repr=False)


def _transport_error_kind(exc: BaseException) -> ErrorKind:
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    cur: BaseException | None = exc
    seen = 0
    while cur is not None and seen < 10:
        if isinstance(cur, ssl.SSLError):
            return "tls"
        cur, seen = cur.__cause__ or cur.__context__, seen + 1
    return "tls" if "SSL" in str(exc) else "connect"


def _status_error_kind(status: int) -> ErrorKind:
    # redirects are never followed: a 3xx means a wrong URL, a client-side problem
    return "http_5xx" if status >= 500 else "http_4xx"


def probe(client: httpx.Client, endpoint: Endpoint, inputs: Inputs) -> ProbeResult:
    """Ask the endpoint for predictions of ``inputs``; every endpoint failure is a result.

    Parameters
    ----------
    client
        From :func:`~mlmon.edge.http.make_client` (or :func:`client_for`).
    endpoint
        Where and how to ask; retries and backoff come from ``endpoint.settings``.
    inputs
        One row (feature -> value) or a list of rows.

    Returns
    -------
    ProbeResult
        ``ok`` with one prediction per row, or an ``error_kind``: ``timeout``,
        ``connect``, ``tls``, ``http_4xx``, ``http_5xx`` or ``malformed``
        (2xx with a body the adapter cannot read, or not one prediction per row).

    Raises
    ------
    ConfigError
        ``inputs`` cannot be sent with this protocol (the caller's data, not the endpoint).

    Examples
    --------
    >>> transport = httpx.MockTransport(lambda r: httpx.Response(200, json={"predictions": [1]}))
    >>> ep = Endpoint("https://m.test", "kserve_v1", "risk")
    >>> with make_client(ep.settings, transport=transport) as client:
    ...     probe(client, ep, {"f0": 1.0}).predictions
    (1,)
    """
    adapter = endpoint.adapter
    rows = _rows(inputs)
    call = adapter.request(endpoint, rows)
    url = endpoint.url.rstrip("/") + call.path if call.path else endpoint.url
    t0 = time.perf_counter()
    try:
        resp = request_with_retries(client, call.method, url, endpoint.settings, json=call.json)
        body = resp.content
    except httpx.HTTPError as exc:
        return ProbeResult(
            False, None, (time.perf_counter() - t0) * 1000, _transport_error_kind(exc)
        )
    latency = (time.perf_counter() - t0) * 1000
    if not 200 <= resp.status_code < 300:
        return ProbeResult(False, resp.status_code, latency, _status_error_kind(resp.status_code))
    try:
        preds, version = adapter.parse(endpoint, json.loads(body))
        if len(preds) != len(rows):
            raise MalformedResponse(f"{len(preds)} predictions for {len(rows)} rows")
    except (MalformedResponse, ValueError, TypeError, KeyError, IndexError):
        return ProbeResult(False, resp.status_code, latency, "malformed")
    if version is None:
        version = adapter.fallback_version(client, endpoint)
    return ProbeResult(True, resp.status_code, latency, None, version, tuple(preds))


def check_health(client: httpx.Client, endpoint: Endpoint) -> ProbeResult:
    """GET the protocol's health/readiness path; ``ok`` when it answers 2xx. Never raises.

    Examples
    --------
    >>> transport = httpx.MockTransport(lambda r: httpx.Response(200))
    >>> ep = Endpoint("https://m.test", "mlflow")
    >>> with make_client(ep.settings, transport=transport) as client:
    ...     check_health(client, ep).ok
    True
    """
    call = endpoint.adapter.health(endpoint)
    url = endpoint.url.rstrip("/") + call.path if call.path else endpoint.url
    t0 = time.perf_counter()
    try:
        resp = request_with_retries(client, call.method, url, endpoint.settings)
    except httpx.HTTPError as exc:
        return ProbeResult(
            False, None, (time.perf_counter() - t0) * 1000, _transport_error_kind(exc)
        )
    latency = (time.perf_counter() - t0) * 1000
    if 200 <= resp.status_code < 300:
        return ProbeResult(True, resp.status_code, latency)
    return ProbeResult(False, resp.status_code, latency, _status_error_kind(resp.status_code))


def client_for(endpoint: Endpoint) -> httpx.Client:
    """A client with the endpoint's TLS, token and timeout (close it when done)."""
    check_url(endpoint.url, endpoint.settings)
    return make_client(endpoint.settings)


def endpoint_from_config(cfg: Any, *, allow_http: bool = False) -> Endpoint:
    """Build an :class:`Endpoint` from an :class:`~mlmon.edge.config.EndpointConfig`.

    The bearer token is read from its secret reference here, once.
    """
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
    return Endpoint(
        url=cfg.url,
        protocol=cfg.protocol,
        model_name=cfg.model_name or "model",
        settings=settings,
        request_template=cfg.request_template,
        response_path=cfg.response_path,
    )


PROTOCOLS: dict[str, ModelProtocol] = {
    "generic_json": GenericJSON(),
    "kserve_v1": KServeV1(),
    "mlflow": MLflowScoring(),
    "oip_v2": OpenInferenceV2(),
}
"""Endpoint adapters by name; add one with :func:`register_protocol`."""

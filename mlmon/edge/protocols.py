"""Model-endpoint adapters (KServe v1, Open Inference Protocol v2, MLflow, generic JSON) and probes.

An adapter (:class:`ModelProtocol`) turns a sample's inputs, one row (a
mapping of feature to value) or a list of rows, into an HTTP call, and the
answer into one prediction per row. Adapters are registered by name in
:data:`PROTOCOLS`; :func:`register_protocol` adds one.

Each built-in protocol has request shapes (:data:`SHAPES`, first = default) and
reads a chosen output (``output``, ``output_column``); docs/protocols.md shows
every request and answer byte for byte:

=============  ===================  ==============================================
protocol       request_shape        body
=============  ===================  ==============================================
kserve_v1      objects (default)    ``{"instances": [{"f0": 1.0, ...}, ...]}``
kserve_v1      rows                 ``{"instances": [[1.0, ...], ...]}`` (``features`` order)
oip_v2         tensor_per_feature   one ``[n]`` tensor per feature, no parameters
oip_v2         pandas               the same with ``parameters.content_type: "pd"``
oip_v2         tensor               one ``[n, k]`` tensor (``features`` order)
mlflow         dataframe_split      ``{"dataframe_split": {"columns": ..., "data": ...}}``
mlflow         dataframe_records    ``{"dataframe_records": [{"f0": 1.0, ...}, ...]}``
mlflow         csv                  ``text/csv`` with a header line
=============  ===================  ==============================================

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

import csv
import io
import json
import logging
import re
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import httpx
import numpy as np

from mlmon.edge.http import (
    ATTEMPT_SECONDS,
    HttpSettings,
    check_url,
    make_client,
    request_with_retries,
)
from mlmon.edge.versions import check_version, is_version
from mlmon.errors import ConfigError, DuplicateNameError, EdgeError, UnknownNameError

__all__ = [
    "ERROR_KINDS",
    "PROTOCOLS",
    "SHAPES",
    "TENSOR_DATATYPES",
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

log = logging.getLogger(__name__)

SHAPES: dict[str, tuple[str, ...]] = {
    "generic_json": ("template",),
    "kserve_v1": ("objects", "rows"),
    "mlflow": ("dataframe_split", "dataframe_records", "csv"),
    "oip_v2": ("tensor_per_feature", "pandas", "tensor"),
}
"""Request shapes per built-in protocol; the first is the default (what mlmon always sent)."""
ORDERED_SHAPES = frozenset({"rows", "tensor"})
"""Shapes that send values by position: they need the declared ``features`` order."""
TENSOR_DATATYPES = ("FP64", "FP32", "FP16", "INT64", "INT32", "INT16", "INT8", "BOOL", "BYTES")
"""Open Inference Protocol datatypes mlmon can send in one ``tensor``."""
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,127}")


class MalformedResponse(EdgeError, ValueError):
    """The endpoint answered 2xx with a body the adapter cannot read."""


@dataclass(frozen=True)
class HttpCall:
    """One request an adapter wants sent: ``path`` is appended to the endpoint URL."""

    method: str
    path: str
    json: Any = None
    content: bytes | None = None
    headers: Mapping[str, str] | None = None


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
    request_shape
        One of ``SHAPES[protocol]``; None for the protocol's default (its first).
    features
        The model's feature order: required by the positional shapes (``rows``,
        ``tensor``), and the column order of the others when given.
    tensor_name, tensor_datatype
        ``oip_v2`` ``tensor`` only: the input's name (default ``input-0``) and
        datatype (default FP64 for numbers, BOOL, BYTES for text; see
        :data:`TENSOR_DATATYPES`).
    output
        Which output holds the predictions: the answer's key for ``kserve_v1``
        and ``mlflow`` (default ``predictions``; e.g. ``probabilities``), the
        output tensor's name for ``oip_v2`` (default: the first; a named one is
        also asked for in the request, as MLServer wants for ``predict_proba``).
    output_column
        Take one column of each prediction: an index into a list (``1``: the
        class-1 probability of ``[p0, p1]``) or a key of an object (a named
        output of a model that answers records).
    model_version
        The version string this endpoint serves, used when the answer reports none.
    version_source
        Called when neither the answer nor ``model_version`` gives a version
        (e.g. :class:`~mlmon.edge.versions.AliasVersion`, a registry alias).

    Raises
    ------
    ConfigError
        The URL is not allowed by the settings, the generic template/path is
        wrong, or a shape option does not fit the protocol.
    UnknownNameError
        ``protocol`` is not registered.

    Examples
    --------
    >>> ep = Endpoint("https://models.internal", "kserve_v1", "risk")
    >>> ep.adapter.health(ep)
    HttpCall(method='GET', path='/v1/models/risk', json=None, content=None, headers=None)
    """

    url: str
    protocol: str = "oip_v2"
    model_name: str = "model"
    settings: HttpSettings = field(default_factory=HttpSettings)
    request_template: str | None = None
    response_path: str | None = None
    request_shape: str | None = None
    features: tuple[str, ...] | None = None
    tensor_name: str = "input-0"
    tensor_datatype: str | None = None
    output: str | None = None
    output_column: int | str | None = None
    model_version: str | None = None
    version_source: Callable[[], str | None] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_url(self.url, self.settings)
        protocol(self.protocol)
        problem = shape_problem(
            self.protocol,
            self.request_shape,
            self.features,
            tensor_datatype=self.tensor_datatype,
            output=self.output,
            output_column=self.output_column,
        )
        if problem:
            raise ConfigError(f"endpoint {self.url}: {problem}")
        if self.features is not None:
            object.__setattr__(self, "features", tuple(self.features))
        if self.model_version is not None:
            check_version(self.model_version, f"endpoint {self.url}: model_version")
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

    @property
    def shape(self) -> str | None:
        """The request shape in use (the protocol's default when none was chosen)."""
        if self.request_shape is not None:
            return self.request_shape
        shapes = SHAPES.get(self.protocol)
        return shapes[0] if shapes else None

    def declared_version(self) -> str | None:
        """The configured version, else the version source's (a registry alias), else None."""
        if self.model_version is not None:
            return self.model_version
        if self.version_source is not None:
            value = self.version_source()
            return value if is_version(value) else None
        return None


def shape_problem(
    protocol_name: str,
    request_shape: str | None,
    features: Sequence[str] | None,
    *,
    tensor_datatype: str | None = None,
    output: str | None = None,
    output_column: int | str | None = None,
) -> str | None:
    """What is wrong with these shape options for ``protocol_name`` (None when they fit).

    Shared by :class:`Endpoint` and the ``edge.yaml`` validation, so both say the same.

    Examples
    --------
    >>> shape_problem("kserve_v1", "rows", None)
    "request_shape 'rows' sends values by position; list the model's feature order in features: [f0, f1, ...]"
    """
    shapes = SHAPES.get(protocol_name)
    if request_shape is not None:
        if shapes is None:
            return (
                f"request_shape {request_shape!r} is for the built-in protocols; "
                f"{protocol_name!r} builds its own requests (leave request_shape out)"
            )
        if request_shape not in shapes:
            return (
                f"request_shape {request_shape!r} is not a {protocol_name} shape; use one of "
                f"{', '.join(shapes)} (default {shapes[0]})"
            )
    shape = request_shape or (shapes[0] if shapes else None)
    if features is not None:
        names = list(features)
        if not names or not all(isinstance(n, str) and n for n in names):
            return "features must be a non-empty list of feature names"
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            return f"features lists {', '.join(dupes)} more than once; name each feature once"
    elif shape in ORDERED_SHAPES:
        return (
            f"request_shape {shape!r} sends values by position; list the model's feature order "
            "in features: [f0, f1, ...]"
        )
    if tensor_datatype is not None:
        if shape != "tensor":
            return (
                f"tensor_datatype is for request_shape 'tensor' (protocol oip_v2); "
                f"this endpoint sends {shape!r}"
            )
        if tensor_datatype not in TENSOR_DATATYPES:
            return (
                f"tensor_datatype {tensor_datatype!r} is not an Open Inference Protocol datatype "
                f"mlmon sends; use one of {', '.join(TENSOR_DATATYPES)}"
            )
    if output is not None:
        if protocol_name == "generic_json":
            return "output is not used by generic_json; point response_path at the predictions"
        if not isinstance(output, str) or not _NAME_RE.fullmatch(output):
            return (
                "output must be the answer's key or the output tensor's name, e.g. "
                "'predictions', 'probabilities' or 'predict_proba'"
            )
    if output_column is not None:
        ok_index = (
            isinstance(output_column, int) and not isinstance(output_column, bool)
        ) and output_column >= 0
        ok_key = isinstance(output_column, str) and _NAME_RE.fullmatch(output_column) is not None
        if not (ok_index or ok_key):
            return (
                "output_column must be an index >= 0 into each prediction (1: the class-1 "
                "probability of [p0, p1]) or the name of a field of each prediction"
            )
    return None


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


def _ordered(ep: Endpoint, rows: Rows) -> list[str]:
    """The column order: ``ep.features`` (every row must have exactly those), else row 0's."""
    if ep.features is None:
        return _columns(rows)
    want = list(ep.features)
    for i, r in enumerate(rows):
        if set(r) != set(want):
            missing, extra = sorted(set(want) - set(r)), sorted(set(r) - set(want))
            raise ConfigError(
                f"probe inputs row {i} does not have the endpoint's features: "
                + "; ".join(
                    part
                    for part in (
                        f"missing {', '.join(missing)}" if missing else "",
                        f"not in endpoint.features {', '.join(extra)}" if extra else "",
                    )
                    if part
                )
                + " (the golden inputs and endpoint.features must name the same features)"
            )
    return want


def _take_column(ep: Endpoint, preds: list[Any]) -> list[Any]:
    col = ep.output_column
    if col is None:
        return preds
    out = []
    for i, p in enumerate(preds):
        by_index = isinstance(col, int) and isinstance(p, list) and col < len(p)
        if by_index or (isinstance(col, str) and isinstance(p, dict) and col in p):
            out.append(p[col])
        else:
            want = f"a list of more than {col} values" if isinstance(col, int) else "an object"
            raise MalformedResponse(
                f"output_column {col!r}: prediction {i} is {type(p).__name__}, expected {want}"
                + (" with that field" if isinstance(col, str) else "")
            )
    return out


class KServeV1:
    """KServe V1: ``{"instances": [...]}`` -> ``{"predictions": [...]}``.

    ``objects`` (default) sends each row as an object; ``rows`` sends each row as a
    list of values in ``features`` order (what KServe's scikit-learn and XGBoost
    servers want). ``output`` names the answer's key (default ``predictions``).
    """

    def request(self, ep: Endpoint, rows: Rows) -> HttpCall:
        cols = _ordered(ep, rows)
        if ep.shape == "rows":
            instances: list[Any] = [[r[c] for c in cols] for r in rows]
        else:
            instances = [{c: r[c] for c in cols} for r in rows]
        return HttpCall("POST", f"/v1/models/{ep.model_name}:predict", {"instances": instances})

    def parse(self, ep: Endpoint, body: Any) -> tuple[list[Any], str | None]:
        preds = _take_column(ep, _require_list(body, ep.output or "predictions"))
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


def _tensor_values(ep: Endpoint, cols: list[str], rows: Rows) -> tuple[str, list[Any]]:
    """(datatype, row-major values) of one ``[n, k]`` tensor; refuses values that do not fit."""
    flat = [r[c] for r in rows for c in cols]
    kinds = {type(v) for v in flat}
    dtype = ep.tensor_datatype
    if dtype is None:
        dtype = "BOOL" if kinds == {bool} else "BYTES" if kinds == {str} else "FP64"
    number = kinds <= {int, float}
    if dtype.startswith("FP") and number:
        return dtype, [float(v) for v in flat]
    if dtype.startswith("INT") and number and all(float(v).is_integer() for v in flat):
        return dtype, [int(v) for v in flat]
    if (dtype, kinds) in (("BOOL", {bool}), ("BYTES", {str})):
        return dtype, flat
    raise ConfigError(
        f"probe inputs do not fit one {dtype} tensor: values of types "
        f"{', '.join(sorted(k.__name__ for k in kinds))} (no nulls; "
        + ("whole numbers for INT; " if dtype.startswith("INT") else "")
        + "set endpoint.tensor_datatype, or use request_shape tensor_per_feature or pandas "
        "for mixed features)"
    )


class OpenInferenceV2:
    """Open Inference Protocol (KServe v2, MLServer).

    Request shapes: ``tensor_per_feature`` (default) sends one ``[n]`` tensor per
    feature; ``pandas`` the same with ``parameters: {"content_type": "pd"}`` (KServe
    and MLServer then build a DataFrame of all of them); ``tensor`` one ``[n, k]``
    tensor ``tensor_name`` in ``features`` order. With ``output`` the request asks
    for that output by name and the predictions are read from it; else from the
    first output. Predictions are reshaped to the output's ``shape`` (a ``[n, k]``
    output gives ``n`` lists of ``k`` values). KServe may answer ``model_version:
    null``; the version is then read from the model metadata (``GET
    /v2/models/{name}``, field ``versions``).
    """

    def request(self, ep: Endpoint, rows: Rows) -> HttpCall:
        cols = _ordered(ep, rows)
        body: dict[str, Any] = {}
        if ep.shape == "tensor":
            dtype, data = _tensor_values(ep, cols, rows)
            body["inputs"] = [
                {"name": ep.tensor_name, "shape": [len(rows), len(cols)], "datatype": dtype,
                 "data": data}
            ]  # fmt: skip
        else:
            tensors = []
            for name in cols:
                values = [r[name] for r in rows]
                dtype = _v2_datatype(name, values)
                tensors.append(
                    {"name": name, "shape": [len(rows)], "datatype": dtype, "data": values}
                )
            body["inputs"] = tensors
            if ep.shape == "pandas":
                body["parameters"] = {"content_type": "pd"}
        if ep.output is not None:
            body["outputs"] = [{"name": ep.output}]
        return HttpCall("POST", f"/v2/models/{ep.model_name}/infer", body)

    def parse(self, ep: Endpoint, body: Any) -> tuple[list[Any], str | None]:
        outputs = _require_list(body, "outputs")
        if not outputs or not all(isinstance(o, dict) for o in outputs):
            raise MalformedResponse("answer field 'outputs' is not a non-empty list of tensors")
        chosen = outputs[0]
        if ep.output is not None:
            named = [o for o in outputs if o.get("name") == ep.output]
            if not named:
                raise MalformedResponse(
                    f"answer has no output named {ep.output!r} ({len(outputs)} output(s)); "
                    "check endpoint.output"
                )
            chosen = named[0]
        data, shape = chosen.get("data"), chosen.get("shape")
        if not isinstance(data, list):
            raise MalformedResponse("the output tensor has no 'data' list")
        if (
            isinstance(shape, list)
            and len(shape) > 1
            and all(isinstance(d, int) and d >= 0 for d in shape)
        ):
            if int(np.prod(shape)) != len(data):
                raise MalformedResponse(
                    f"the output tensor has shape {shape} but {len(data)} values in 'data'"
                )
            data = np.asarray(data, dtype=object).reshape(shape).tolist()
        version = body.get("model_version")
        return _take_column(ep, data), None if version is None else str(version)

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


def _csv(cols: list[str], rows: Rows) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    for r in rows:
        writer.writerow(["" if r[c] is None else r[c] for c in cols])
    return buf.getvalue().encode()


class MLflowScoring:
    """MLflow scoring server (``/invocations``) -> ``{"predictions": [...]}``.

    Request shapes: ``dataframe_split`` (default), ``dataframe_records`` or ``csv``
    (``text/csv`` with a header line). A model logged with
    ``pyfunc_predict_fn="predict_proba"`` answers a list of class probabilities
    per row: ``output_column: 1`` takes the class-1 probability.
    """

    def request(self, ep: Endpoint, rows: Rows) -> HttpCall:
        cols = _ordered(ep, rows)
        if ep.shape == "csv":
            return HttpCall(
                "POST", "/invocations", content=_csv(cols, rows),
                headers={"Content-Type": "text/csv"},
            )  # fmt: skip
        if ep.shape == "dataframe_records":
            records = [{c: r[c] for c in cols} for r in rows]
            return HttpCall("POST", "/invocations", {"dataframe_records": records})
        split = {"columns": cols, "data": [[r[c] for c in cols] for r in rows]}
        return HttpCall("POST", "/invocations", {"dataframe_split": split})

    def parse(self, ep: Endpoint, body: Any) -> tuple[list[Any], str | None]:
        return _take_column(ep, _require_list(body, ep.output or "predictions")), None

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

    ``latency_ms`` is the time of the attempt that got the answer, from
    sending the request to reading the whole body: earlier failed attempts and
    the back-off between them are not in it. Without an answer (``timeout``,
    ``connect``, ``tls``) it is the time spent trying, and callers count the
    probe as a failure, not as a latency. ``predictions`` (one per row) never
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
        resp = request_with_retries(
            client, call.method, url, endpoint.settings, json=call.json, content=call.content,
            headers=call.headers,
        )  # fmt: skip
        body = resp.content
    except httpx.HTTPError as exc:
        return ProbeResult(
            False, None, (time.perf_counter() - t0) * 1000, _transport_error_kind(exc),
            endpoint.declared_version(),
        )  # fmt: skip
    latency = resp.extensions[ATTEMPT_SECONDS] * 1000  # the answered attempt, not the retries
    if not 200 <= resp.status_code < 300:
        return ProbeResult(
            False, resp.status_code, latency, _status_error_kind(resp.status_code),
            endpoint.declared_version(),
        )  # fmt: skip
    try:
        preds, version = adapter.parse(endpoint, json.loads(body))
        if len(preds) != len(rows):
            raise MalformedResponse(f"{len(preds)} predictions for {len(rows)} rows")
    except (MalformedResponse, ValueError, TypeError, KeyError, IndexError):
        return ProbeResult(
            False, resp.status_code, latency, "malformed", endpoint.declared_version()
        )
    if version is None:
        version = adapter.fallback_version(client, endpoint)
    if version is not None and not is_version(version):
        log.warning(
            "endpoint %s reported a model version outside the allowed alphabet; ignored",
            endpoint.url,
        )
        version = None
    if version is None:
        version = endpoint.declared_version()
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

    The bearer token is read from its secret reference here, once. A
    ``version_alias`` opens a read-only registry client
    (:class:`~mlmon.registry.MlflowRegistry`) that the endpoint keeps; the alias
    is first read at the first probe, not here.
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
        request_shape=cfg.request_shape,
        features=cfg.features,
        tensor_name=cfg.tensor_name,
        tensor_datatype=cfg.tensor_datatype,
        output=cfg.output,
        output_column=cfg.output_column,
        model_version=cfg.model_version,
        version_source=_alias_source(cfg.version_alias, allow_http),
    )


def _alias_source(cfg: Any, allow_http: bool) -> Callable[[], str | None] | None:
    if cfg is None:
        return None
    from mlmon.edge.config import _read_secret
    from mlmon.edge.versions import AliasVersion
    from mlmon.registry.base import AttributionRule
    from mlmon.registry.mlflow_rest import MlflowRegistry, RegistryAuth

    if cfg.token is not None:
        token = _read_secret(cfg.token, "endpoint.version_alias.token").decode()
        auth = RegistryAuth(token=token, ca_bundle=cfg.ca_bundle)
    else:
        auth = RegistryAuth.from_env(ca_bundle=cfg.ca_bundle)
    registry = MlflowRegistry(cfg.registry, auth=auth, allow_http=allow_http)
    return AliasVersion.from_registry(
        registry, cfg.model, cfg.alias, rule=AttributionRule(cfg.match, cfg.tag),
        refresh_s=cfg.refresh.total_seconds(),
    )  # fmt: skip


PROTOCOLS: dict[str, ModelProtocol] = {
    "generic_json": GenericJSON(),
    "kserve_v1": KServeV1(),
    "mlflow": MLflowScoring(),
    "oip_v2": OpenInferenceV2(),
}
"""Endpoint adapters by name; add one with :func:`register_protocol`."""

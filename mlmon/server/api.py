"""``/api/v1``: every figure of the pages as JSON, and the OpenAPI schema built from the
same route table (:data:`ENDPOINTS`).

Each model endpoint answers the :class:`~mlmon.analysis.lake.Lake` method of the same
name over the request's range (``range``/``start``/``end``, ``by``, ``version``), as a JSON
object ``{"model", "start", "end", "by", "version", "rows": [...]}``; times are ISO 8601
UTC, NaN is null. A model the caller may not see answers 404, like an unknown one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlmon.errors import ConfigError
from mlmon.server.data import PERIODS, RANGES, Data, Query, jsonable

__all__ = ["ALERT_PATHS", "ENDPOINTS", "Endpoint", "openapi", "routes"]


@dataclass(frozen=True)
class Param:
    name: str
    description: str
    enum: tuple[str, ...] = ()
    type: str = "string"


@dataclass(frozen=True)
class Endpoint:
    path: str
    summary: str
    lake_method: str
    params: tuple[Param, ...] = ()


_RANGE = (
    Param(
        "range",
        "Preset range ending now (or at the newest data, with range_anchor: data)",
        (*RANGES, "custom"),
    ),
    Param("start", "Start (date or UTC time), with range=custom"),
    Param("end", "End, exclusive (a date includes that day), with range=custom"),
    Param("by", "Period size", PERIODS),
    Param("version", "Only records that reported this model version"),
)

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("/api/v1/models", "Models the caller may see", "known_models"),
    Endpoint(
        "/api/v1/overview",
        "The overview: one status line per model",
        "reports.context.collect",
        _RANGE,
    ),
    Endpoint(
        "/api/v1/models/{model}/drift",
        "Drift of each period against the reference",
        "drift",
        (
            *_RANGE,
            Param("method", "Method ids, comma-separated (default: every method)"),
            Param("feature", "Feature names, comma-separated (default: every feature)"),
        ),
    ),
    Endpoint(
        "/api/v1/models/{model}/percentiles",
        "Percentiles of latency or a numeric feature",
        "percentiles",
        (
            *_RANGE,
            Param("metric", "latency_ms (default) or a numeric feature"),
            Param("q", "Quantiles, comma-separated (default 0.5,0.95,0.99)"),
            Param("source", "Latency source", ("probe", "stream", "batch")),
        ),
    ),
    Endpoint(
        "/api/v1/models/{model}/performance",
        "Realized and estimated performance",
        "performance",
        _RANGE,
    ),
    Endpoint(
        "/api/v1/models/{model}/data-quality",
        "Null and non-finite rates per feature",
        "data_quality",
        _RANGE,
    ),
    Endpoint("/api/v1/models/{model}/alerts", "Alert state changes", "read('alerts')", _RANGE),
    Endpoint("/api/v1/models/{model}/golden", "Golden-check outcomes", "read('golden')", _RANGE),
    Endpoint("/api/v1/models/{model}/versions", "Model versions seen", "scan('profiles')", _RANGE),
)


def _str_props(**fields: str) -> dict[str, Any]:
    return {k: {"type": "string", "maxLength": 500, "description": d} for k, d in fields.items()}


_WRITE_ERRORS = {
    "400": {"description": "The body is not a JSON object of the listed string fields"},
    "401": {"description": "No acceptable identity"},
    "403": {"description": "The caller is not in operator_groups"},
    "404": {"description": "No model (or silence) of that name the caller may see"},
    "415": {"description": "The body was not sent as application/json"},
    "429": {"description": "Too many requests (see Retry-After)"},
}


def _json_body(required: list[str], **fields: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": required,
                    "properties": _str_props(**fields),
                }
            }
        },
    }


#: The silence and acknowledgement routes (:mod:`mlmon.server.alerts`), in the schema when
#: ``alerts: {config: ...}`` enables them.
ALERT_PATHS: dict[str, Any] = {
    "/api/v1/alerts": {
        "get": {
            "summary": "Firing alerts (with acknowledgements) and active silences of the "
            "caller's models, from the alert delivery's state",
            "responses": {
                "200": {
                    "description": '{"firing": [{rule, model, subject, severity, summary, '
                    'since, link, acknowledged_by}], "silences": [{id, model, rule, subject, '
                    "ends, by}]}",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "401": {"description": "No acceptable identity"},
                "429": {"description": "Too many requests (see Retry-After)"},
            },
        }
    },
    "/api/v1/alerts/silences": {
        "post": {
            "summary": "Silence a model's alerts until a time (operators)",
            "requestBody": _json_body(
                ["model"],
                model="One model the caller may see (no pattern)",
                rule='Rule id, e.g. drift:psi (default "*": every rule)',
                subject='Subject, e.g. a feature (default "*")',
                until='A duration ("4h", the default) or an ISO time with its zone',
                reason="Why, for the audit log",
            ),
            "responses": {
                "201": {
                    "description": "The silence: {id, model, rule, subject, ends, by}",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                **_WRITE_ERRORS,
            },
        }
    },
    "/api/v1/alerts/silences/{silence}/expire": {
        "post": {
            "summary": "End a silence now (operators)",
            "parameters": [
                {"name": "silence", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {
                    "description": '{"id", "expired": true}',
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                **_WRITE_ERRORS,
            },
        }
    },
    "/api/v1/alerts/acks": {
        "post": {
            "summary": "Acknowledge a firing alert (operators)",
            "requestBody": _json_body(
                ["model", "rule"],
                model="One model the caller may see",
                rule="Rule id of the firing alert",
                subject="Its subject, e.g. a feature",
                note="A note, for the audit log",
            ),
            "responses": {
                "201": {
                    "description": "The acknowledgement: {rule, model, by, at}",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                **_WRITE_ERRORS,
                "409": {"description": "That alert is not firing"},
            },
        }
    },
}


def openapi(*, alerts: bool = False) -> dict[str, Any]:
    """The OpenAPI 3.1 document of :data:`ENDPOINTS` (and :data:`ALERT_PATHS` with ``alerts``)."""
    paths: dict[str, Any] = {}
    for e in ENDPOINTS:
        params: list[dict[str, Any]] = []
        if "{model}" in e.path:
            params.append(
                {"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}
            )
        for p in e.params:
            schema: dict[str, Any] = {"type": p.type}
            if p.enum:
                schema["enum"] = list(p.enum)
            params.append(
                {
                    "name": p.name,
                    "in": "query",
                    "required": False,
                    "description": p.description,
                    "schema": schema,
                }
            )
        paths[e.path] = {
            "get": {
                "summary": e.summary,
                "description": f"Computed like mlmon.Lake.{e.lake_method} on the same lake.",
                "parameters": params,
                "responses": {
                    "200": {
                        "description": "The figures",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "400": {"description": "A parameter is not valid (the message names it)"},
                    "401": {"description": "No acceptable identity"},
                    "404": {"description": "No model of that name the caller may see"},
                    "429": {"description": "Too many requests (see Retry-After)"},
                },
            }
        }
    if alerts:
        paths.update(ALERT_PATHS)
    return {
        "openapi": "3.1.0",
        "info": {"title": "mlmon server API", "version": "1"},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    }


def _list(value: str | None) -> list[str] | None:
    items = [v.strip() for v in (value or "").split(",") if v.strip()]
    return items or None


def routes(
    data: Data,
    visible_models: Callable[[Any], list[str]],
    model_of: Callable[[Any], str],
    query: Callable[[Any, list[str]], Query],
    *,
    alerts: bool = False,
) -> list[Any]:
    """The Starlette routes of the API (``alerts``: the schema lists the alert routes)."""
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    def answer(model: str, q: Query, rows: Any) -> JSONResponse:
        return JSONResponse(
            {
                "model": model,
                "start": q.start.isoformat(),
                "end": q.end.isoformat(),
                "by": q.by,
                "version": q.version,
                "rows": jsonable(rows),
                **({"note": data.note} if data.note else {}),
            }
        )

    def models(request: Any) -> JSONResponse:
        return JSONResponse({"models": visible_models(request)})

    def overview(request: Any) -> JSONResponse:
        names = visible_models(request)
        q = query(request, names)
        rows = []
        for r in data.overview(names, q):
            d = dict(r.__dict__)
            d["last_data"] = r.last_data.isoformat() if r.last_data else None
            d["reasons"], d["drifted"], d["firing"] = (
                list(r.reasons),
                list(r.drifted),
                list(r.firing),
            )
            rows.append(d)
        return JSONResponse(
            {
                "start": q.start.isoformat(),
                "end": q.end.isoformat(),
                "models": rows,
                **({"note": data.note} if data.note else {}),
            }
        )

    def per_model(kind: str) -> Callable[[Any], JSONResponse]:
        def handler(request: Any) -> JSONResponse:
            model = model_of(request)
            q = query(request, [model])
            p = request.query_params
            if kind == "drift":
                rows = data.drift(model, q, _list(p.get("method")), _list(p.get("feature")))
            elif kind == "percentiles":
                try:
                    qs = tuple(float(x) for x in _list(p.get("q")) or (0.5, 0.95, 0.99))
                except ValueError as exc:
                    raise ConfigError("q must be numbers between 0 and 1, e.g. q=0.5,0.95") from exc
                if not all(0 <= x <= 1 for x in qs):
                    raise ConfigError("q must be numbers between 0 and 1, e.g. q=0.5,0.95")
                rows = data.percentiles(
                    model, q, p.get("metric") or "latency_ms", qs, p.get("source") or None
                )
            elif kind == "performance":
                rows = data.performance(model, q)
            elif kind == "data-quality":
                rows = data.data_quality(model, q)
            elif kind == "alerts":
                rows = data.alerts(model, q)
            elif kind == "golden":
                rows = data.golden(model, q)
            else:
                rows = data.versions(model, q)
            return answer(model, q, rows)

        return handler

    def schema(request: Any) -> JSONResponse:
        return JSONResponse(openapi(alerts=alerts))

    out = [
        Route("/api/v1/openapi.json", schema),
        Route("/api/v1/models", models),
        Route("/api/v1/overview", overview),
    ]
    for kind in (
        "drift",
        "percentiles",
        "performance",
        "data-quality",
        "alerts",
        "golden",
        "versions",
    ):
        out.append(Route(f"/api/v1/models/{{model}}/{kind}", per_model(kind)))
    return out

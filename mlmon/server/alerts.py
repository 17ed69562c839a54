"""Silences and acknowledgements through the API, for members of ``operator_groups``.

Enabled by ``alerts: {config: alerts.yaml}`` in server.yaml: the server then
reads the delivery's state folder (firing alerts) and writes its silences file
(``mlmon.alerting.silences``), each change a record of the delivery's audit log
(``audit:`` of alerts.yaml) besides the server's own record of the request.

| route | who | does |
|---|---|---|
| ``GET /api/v1/alerts`` | anyone signed in | firing alerts, acknowledgements and active silences of the models the caller may see |
| ``POST /api/v1/alerts/silences`` | operators | ``{"model", "rule"?, "subject"?, "until": "4h" or ISO time, "reason"?}`` |
| ``POST /api/v1/alerts/silences/{id}/expire`` | operators | end a silence now |
| ``POST /api/v1/alerts/acks`` | operators | ``{"model", "rule", "subject"?, "note"?}`` of a firing alert |

Writes take ``Content-Type: application/json`` only (a browser cannot send that
across origins without a CORS pre-flight, which the server never grants), and
a silence names one model the operator may see (no pattern).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from mlmon.errors import ConfigError

__all__ = ["routes"]


def routes(
    alerts_config: str,
    operator_groups: tuple[str, ...],
    principal: Callable[[Any], Any],
    models: Callable[[], list[str]],
) -> list[Any]:
    from starlette.exceptions import HTTPException
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from mlmon.alerting import load_config
    from mlmon.alerting.config import parse_duration
    from mlmon.alerting.outbox import Outbox
    from mlmon.alerting.silences import Silences, open_silences

    config = load_config(alerts_config)

    def operator(request: Any) -> Any:
        who = principal(request)
        if not any(g in operator_groups for g in who.groups):
            raise HTTPException(403, "Silences and acknowledgements need the operator role.")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise HTTPException(415, "Send the request body as application/json.")
        return who

    async def body(request: Any, allowed: set[str]) -> dict[str, Any]:
        try:
            doc = json.loads(await request.body())
        except ValueError as exc:
            raise HTTPException(400, "The body is not JSON.") from exc
        if not isinstance(doc, dict) or set(doc) - allowed:
            raise HTTPException(
                400, f"The body must be an object with keys among {', '.join(sorted(allowed))}."
            )
        if any(not isinstance(v, str) or len(v) > 500 for v in doc.values()):
            raise HTTPException(400, "Every value must be a string of at most 500 characters.")
        return doc

    def visible_model(who: Any, doc: dict[str, Any]) -> str:
        model = doc.get("model", "")
        if not model or not who.can_see(model) or model not in models():
            raise HTTPException(404, "There is no model of that name you may see.")
        return str(model)

    def state(request: Any) -> JSONResponse:
        who = principal(request)
        now = datetime.now(UTC)
        box, sil = Outbox(config.state_dir), Silences(config.state_dir)
        firing = []
        for key, entry in sorted(box.firing.items()):
            a = entry["alert"]
            if not who.can_see(a["model"]):
                continue
            ack = sil.acks.get(key)
            firing.append(
                {
                    **{
                        k: a[k]
                        for k in (
                            "rule",
                            "model",
                            "subject",
                            "severity",
                            "summary",
                            "since",
                            "link",
                        )
                    },
                    "acknowledged_by": ack.by if ack else None,
                }
            )
        silences = [
            {
                "id": s.id,
                "model": s.model,
                "rule": s.rule,
                "subject": s.subject,
                "ends": s.ends,
                "by": s.by,
            }
            for s in sil.active(now)
            if who.can_see(s.model)
        ]
        return JSONResponse({"firing": firing, "silences": silences})

    async def silence(request: Any) -> JSONResponse:
        who = operator(request)
        doc = await body(request, {"model", "rule", "subject", "until", "reason"})
        model = visible_model(who, doc)
        now = datetime.now(UTC)
        until = doc.get("until", "4h")
        try:
            ends = (
                datetime.fromisoformat(until)
                if "T" in until
                else now + parse_duration(until, "until")
            )
            if ends.tzinfo is None:
                raise ConfigError("until has no time zone")
            box = open_silences(config)
            s = box.silence(
                model,
                ends,
                by=who.name,
                reason=doc.get("reason", ""),
                now=now,
                rule=doc.get("rule", "*"),
                subject=doc.get("subject", "*"),
            )
        except (ConfigError, ValueError) as exc:
            raise HTTPException(400, str(exc)) from exc
        return JSONResponse(
            {
                "id": s.id,
                "model": s.model,
                "rule": s.rule,
                "subject": s.subject,
                "ends": s.ends,
                "by": s.by,
            },
            status_code=201,
        )

    async def expire(request: Any) -> JSONResponse:
        who = operator(request)
        sid = request.path_params["silence"]
        box = open_silences(config)
        found = next((s for s in box.silences if s.id == sid and who.can_see(s.model)), None)
        if found is None:
            raise HTTPException(404, "There is no silence of that id you may see.")
        box.expire(sid, by=who.name, now=datetime.now(UTC))
        return JSONResponse({"id": sid, "expired": True})

    async def ack(request: Any) -> JSONResponse:
        who = operator(request)
        doc = await body(request, {"model", "rule", "subject", "note"})
        model = visible_model(who, doc)
        key = f"{doc.get('rule', '')}|{model}|{doc.get('subject', '')}"
        try:
            box = open_silences(config)
            a = box.acknowledge(
                key,
                by=who.name,
                note=doc.get("note", ""),
                now=datetime.now(UTC),
                firing=set(Outbox(config.state_dir).firing),
            )
        except ConfigError as exc:
            raise HTTPException(409, "That alert is not firing.") from exc
        return JSONResponse(
            {"rule": doc.get("rule"), "model": model, "by": a.by, "at": a.at}, status_code=201
        )

    return [
        Route("/api/v1/alerts", state),
        Route("/api/v1/alerts/silences", silence, methods=["POST"]),
        Route("/api/v1/alerts/silences/{silence}/expire", expire, methods=["POST"]),
        Route("/api/v1/alerts/acks", ack, methods=["POST"]),
    ]

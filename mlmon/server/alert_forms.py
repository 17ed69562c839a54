"""Silence and acknowledge buttons on the model page: plain HTML forms, no script.

The page's CSP allows no inline script, so the buttons are ``<form method=post>``
elements posting ``application/x-www-form-urlencoded`` to routes of their own:

| route | does |
|---|---|
| ``POST /models/{model}/alerts/silence`` | ``rule``, ``subject``, ``until`` (``1h``, ``4h``, ``24h``, ``7d``), ``reason`` |
| ``POST /models/{model}/alerts/ack`` | ``rule``, ``subject``, ``note`` of a firing alert |
| ``POST /models/{model}/alerts/expire`` | ``silence`` (its id): end it now |

Each answers ``303 See Other`` back to the model page. A form post is what another
site can make a browser send, so every post must pass two checks (docs/security.md):

1. **Same origin**: ``Sec-Fetch-Site: same-origin`` when the browser sends that header,
   otherwise an ``Origin`` whose host is the request's ``Host``; a post with neither
   header is refused.
2. **A per-session token**: the page sets a random cookie ``mlmon_csrf`` (``HttpOnly``,
   ``SameSite=Strict``, ``Secure`` when the server speaks TLS) and puts
   ``HMAC-SHA256(cookie, "mlmon-csrf|" + user)`` in each form; the post must carry both,
   matching, for the signed-in user. Another site can read neither.

Only members of ``operator_groups`` see the buttons; anyone else's post is refused
with 403 before it is read. Every change is a record of the delivery's audit log
(:mod:`mlmon.alerting.silences`: action, alert, who) besides the server's record of the
request. The panel is rendered per request, outside the cached page (alert state is not
in the lake), in place of the marker ``alert_actions.html`` leaves in ``model.html``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from mlmon.errors import ConfigError

__all__ = ["COOKIE", "MARKER", "AlertForms", "csrf_token"]

COOKIE = "mlmon_csrf"
MARKER = "<!--mlmon:alert-actions-->"
DURATIONS = ("1h", "4h", "24h", "7d")
_MAX_BODY = 8192


def csrf_token(session: str, user: str) -> str:
    """The form token of ``user`` in the session whose cookie is ``session``."""
    return hmac.new(session.encode(), f"mlmon-csrf|{user}".encode(), hashlib.sha256).hexdigest()


class AlertForms:
    """The panel of firing alerts with its buttons, and the routes the buttons post to."""

    def __init__(
        self,
        alerts_config: str,
        operator_groups: tuple[str, ...],
        principal: Callable[[Any], Any],
        model_of: Callable[[Any], str],
        env: Any,
        *,
        tls: bool = False,
    ) -> None:
        from mlmon.alerting import load_config

        self.config = load_config(alerts_config)
        self.operator_groups = operator_groups
        self.principal = principal
        self.model_of = model_of
        self.env = env
        self.tls = tls

    def is_operator(self, who: Any) -> bool:
        return any(g in self.operator_groups for g in who.groups)

    # -- the panel -------------------------------------------------------------------------
    def panel(self, request: Any, model: str, body: str) -> tuple[str, str | None]:
        """``body`` with the panel in place of the marker; and a new session cookie, if any."""
        from mlmon.alerting.outbox import Outbox
        from mlmon.alerting.silences import Silences

        if MARKER not in body:
            return body, None
        who = self.principal(request)
        now = datetime.now(UTC)
        box, sil = Outbox(self.config.state_dir), Silences(self.config.state_dir)
        rows = []
        for key, entry in sorted(box.firing.items()):
            a = entry["alert"]
            if a["model"] != model:
                continue
            ack = sil.acks.get(key)
            s = sil.silenced(a, now)
            rows.append(
                {
                    **{k: a.get(k) for k in ("rule", "subject", "severity", "summary", "since")},
                    "acknowledged_by": ack.by if ack else None,
                    "silenced_until": s.ends if s else None,
                }
            )
        silences = [s for s in sil.active(now) if s.model == model]
        operator = self.is_operator(who)
        cookie = None
        token = ""
        if operator:
            session = request.cookies.get(COOKIE, "")
            if len(session) != 64:
                session = cookie = secrets.token_hex(32)
            token = csrf_token(session, who.name)
        html = self.env.get_template("alert_panel.html").render(
            model=model,
            rows=rows,
            silences=silences,
            operator=operator,
            token=token,
            back=request.url.query,
            durations=DURATIONS,
            action=f"/models/{quote(model, safe='')}/alerts",
        )
        return body.replace(MARKER, html, 1), cookie

    def set_cookie(self, response: Any, value: str) -> None:
        response.set_cookie(
            COOKIE,
            value,
            httponly=True,
            samesite="strict",
            secure=self.tls,
            path="/",
        )

    # -- the routes --------------------------------------------------------------------
    def routes(self) -> list[Any]:
        from starlette.exceptions import HTTPException
        from starlette.responses import RedirectResponse
        from starlette.routing import Route

        from mlmon.alerting.config import parse_duration
        from mlmon.alerting.outbox import Outbox
        from mlmon.alerting.silences import open_silences

        def same_origin(request: Any) -> bool:
            site = request.headers.get("sec-fetch-site")
            if site is not None:
                return bool(site == "same-origin")
            origin = request.headers.get("origin")
            if not origin or origin == "null":
                return False
            return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()

        async def checked(request: Any) -> tuple[Any, str, dict[str, str]]:
            who = self.principal(request)
            if not self.is_operator(who):
                raise HTTPException(403, "Silences and acknowledgements need the operator role.")
            if not same_origin(request):
                raise HTTPException(
                    403, "This form may only be sent from the dashboard's own pages."
                )
            ctype = request.headers.get("content-type", "").split(";")[0].strip()
            if ctype != "application/x-www-form-urlencoded":
                raise HTTPException(415, "Send the form as application/x-www-form-urlencoded.")
            raw = await request.body()
            if len(raw) > _MAX_BODY:
                raise HTTPException(413, "The form is too large.")
            try:
                form = dict(parse_qsl(raw.decode("utf-8"), max_num_fields=10))
            except (UnicodeDecodeError, ValueError) as exc:
                raise HTTPException(400, "The form could not be read.") from exc
            session = request.cookies.get(COOKIE, "")
            sent = form.pop("csrf", "")
            if not session or not hmac.compare_digest(sent, csrf_token(session, who.name)):
                raise HTTPException(
                    403, "The form's session token is missing or stale; reload the page."
                )
            if any(len(v) > 500 for v in form.values()):
                raise HTTPException(400, "Every field must be at most 500 characters.")
            model = self.model_of(request)  # 404 for a model the operator may not see
            return who, model, form

        def back(model: str, form: dict[str, str]) -> RedirectResponse:
            query = urlencode(parse_qsl(form.get("back", ""), max_num_fields=20))
            url = f"/models/{quote(model, safe='')}" + (f"?{query}" if query else "")
            return RedirectResponse(url + "#alert-actions", status_code=303)

        async def silence(request: Any) -> Any:
            who, model, form = await checked(request)
            until = form.get("until", "4h")
            if until not in DURATIONS:
                raise HTTPException(400, f"until must be one of {', '.join(DURATIONS)}.")
            now = datetime.now(UTC)
            try:
                open_silences(self.config).silence(
                    model,
                    now + parse_duration(until, "until"),
                    by=who.name,
                    reason=form.get("reason", ""),
                    now=now,
                    rule=form.get("rule") or "*",
                    subject=form.get("subject") or "*",
                )
            except ConfigError as exc:
                raise HTTPException(400, str(exc)) from exc
            return back(model, form)

        async def ack(request: Any) -> Any:
            who, model, form = await checked(request)
            key = f"{form.get('rule', '')}|{model}|{form.get('subject', '')}"
            try:
                open_silences(self.config).acknowledge(
                    key,
                    by=who.name,
                    note=form.get("note", ""),
                    now=datetime.now(UTC),
                    firing=set(Outbox(self.config.state_dir).firing),
                )
            except ConfigError as exc:
                raise HTTPException(409, "That alert is not firing.") from exc
            return back(model, form)

        async def expire(request: Any) -> Any:
            who, model, form = await checked(request)
            box = open_silences(self.config)
            sid = form.get("silence", "")
            if not any(s.id == sid and s.model == model for s in box.silences):
                raise HTTPException(404, "There is no silence of that id on this model.")
            box.expire(sid, by=who.name, now=datetime.now(UTC))
            return back(model, form)

        base = "/models/{model}/alerts"
        return [
            Route(f"{base}/silence", silence, methods=["POST"]),
            Route(f"{base}/ack", ack, methods=["POST"]),
            Route(f"{base}/expire", expire, methods=["POST"]),
        ]

"""The receivers: generic webhook, Slack, Microsoft Teams, e-mail over SMTP, Alertmanager.

Each sender takes one queued message (a model's alerts) and raises
:class:`DeliveryError` unless the receiver accepted it. Error messages name
the receiver and what went wrong (HTTP status, connection refused), never its
URL, password or key.

An alert, as queued, is a dict of ``key`` (idempotency key), ``rule``,
``model``, ``subject``, ``feature``, ``state`` (firing or resolved),
``severity``, ``summary`` (plain words: names and figures only), ``value``,
``threshold``, ``since`` (when it started firing), ``ended`` (when it
resolved) and ``link`` (the dashboard page).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
from collections.abc import Callable
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from mlmon._extras import require
from mlmon.alerting.config import Receiver
from mlmon.alerting.outbox import Message
from mlmon.errors import MlmonError

__all__ = ["SENDERS", "DeliveryError", "render_text"]

SIGNATURE_HEADER = "X-Mlmon-Signature"
KEY_HEADER = "X-Mlmon-Idempotency-Key"
AM_HOLD = timedelta(hours=1)
"""``endsAt`` of a firing alert sent to Alertmanager: re-sent every pass well before it."""


class DeliveryError(MlmonError, ConnectionError):
    """A receiver did not accept a message; it stays queued and is tried again later."""


def headline(msg: Message) -> str:
    firing = sum(a["state"] == "firing" for a in msg.alerts)
    resolved = len(msg.alerts) - firing
    parts = [f"{firing} firing"] if firing else []
    if resolved:
        parts.append(f"{resolved} resolved")
    return f"{msg.model}: {', '.join(parts)}"


def _line(a: dict[str, Any]) -> str:
    state = "FIRING" if a["state"] == "firing" else "RESOLVED"
    where = f" · {a['subject']}" if a.get("subject") else ""
    return f"{state} [{a['severity']}] {a['rule']}{where}: {a['summary']}"


def render_text(msg: Message) -> str:
    """The plain-text body shared by e-mail, Slack and Teams."""
    lines = [headline(msg), ""]
    for a in msg.alerts:
        lines.append(_line(a))
        lines.append(f"  {a['link']}")
    return "\n".join(lines)


def _payload(msg: Message, now: datetime) -> dict[str, Any]:
    return {
        "version": 1,
        "id": msg.id,
        "model": msg.model,
        "status": "firing" if any(a["state"] == "firing" for a in msg.alerts) else "resolved",
        "sent_at": now.isoformat(),
        "alerts": msg.alerts,
    }


def _post(
    r: Receiver, body: bytes, headers: dict[str, str], timeout: float, url: str | None = None
) -> None:
    httpx = require("httpx", "alerts")
    verify: Any = (
        ssl.create_default_context(cafile=r.options["ca_file"])
        if r.options.get("ca_file")
        else True
    )
    try:
        resp = httpx.post(
            url or r.secrets["url"],
            content=body,
            headers={"Content-Type": "application/json", **headers},
            timeout=timeout,
            verify=verify,
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        raise DeliveryError(
            f"receiver {r.name}: no answer ({type(exc).__name__}); will retry"
        ) from None  # httpx's message carries the URL, which may hold a secret
    if resp.status_code >= 300:
        raise DeliveryError(f"receiver {r.name}: HTTP {resp.status_code}; will retry")


def send_webhook(r: Receiver, msg: Message, now: datetime, timeout: float) -> None:
    body = json.dumps(_payload(msg, now), sort_keys=True, separators=(",", ":")).encode()
    headers = {KEY_HEADER: msg.id, **r.options.get("headers", {})}
    if "hmac_key" in r.secrets:
        sig = hmac.new(r.secrets["hmac_key"].encode(), body, hashlib.sha256).hexdigest()
        headers[SIGNATURE_HEADER] = f"sha256={sig}"
    _post(r, body, headers, timeout)


def send_slack(r: Receiver, msg: Message, now: datetime, timeout: float) -> None:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": headline(msg)[:150]}}
    ]
    for a in msg.alerts:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"{_line(a)}\n<{a['link']}|Open the dashboard>"},
            }
        )
    doc = {"text": render_text(msg), "blocks": blocks[:50]}
    _post(r, json.dumps(doc).encode(), {KEY_HEADER: msg.id}, timeout)


def send_teams(r: Receiver, msg: Message, now: datetime, timeout: float) -> None:
    firing = any(a["state"] == "firing" for a in msg.alerts)
    doc = {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": headline(msg),
        "themeColor": "C0392B" if firing else "2E8B57",
        "title": headline(msg),
        "sections": [
            {
                "activityTitle": _line(a),
                "facts": [
                    {"name": "model", "value": a["model"]},
                    *([{"name": "subject", "value": a["subject"]}] if a.get("subject") else []),
                    {"name": "state", "value": a["state"]},
                    {"name": "severity", "value": a["severity"]},
                ],
                "potentialAction": [
                    {
                        "@type": "OpenUri",
                        "name": "Open the dashboard",
                        "targets": [{"os": "default", "uri": a["link"]}],
                    }
                ],
            }
            for a in msg.alerts
        ],
    }
    _post(r, json.dumps(doc).encode(), {KEY_HEADER: msg.id}, timeout)


def send_email(r: Receiver, msg: Message, now: datetime, timeout: float) -> None:
    o = r.options
    mail = EmailMessage()
    mail["Subject"] = f"{o['subject_prefix']} {headline(msg)}"
    mail["From"] = o["sender"]
    mail["To"] = ", ".join(o["to"])
    mail["Message-ID"] = make_msgid(idstring=msg.id, domain="mlmon.alerts")
    mail["X-Mlmon-Idempotency-Key"] = msg.id
    mail.set_content(render_text(msg))
    ctx = ssl.create_default_context(cafile=o.get("ca_file"))
    try:
        smtp: smtplib.SMTP
        if o["tls"] == "tls":
            smtp = smtplib.SMTP_SSL(o["host"], o["port"], timeout=timeout, context=ctx)
        else:
            smtp = smtplib.SMTP(o["host"], o["port"], timeout=timeout)
        with smtp:
            if o["tls"] == "starttls":
                smtp.starttls(context=ctx)  # refuses to go on in clear if the server cannot
            if o.get("username"):
                smtp.login(o["username"], r.secrets.get("password", ""))
            smtp.send_message(mail)
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"receiver {r.name}: SMTP {type(exc).__name__}; will retry") from None


def _am_alert(a: dict[str, Any], now: datetime, hold: timedelta) -> dict[str, Any]:
    labels = {"alertname": a["rule"], "model": a["model"], "severity": a["severity"]}
    if a.get("subject"):
        labels["subject"] = a["subject"]
    ends = a["ended"] if a["state"] == "resolved" else (now + hold).isoformat()
    return {
        "labels": labels,
        "annotations": {"summary": a["summary"], "dashboard": a["link"]},
        "generatorURL": a["link"],
        "startsAt": a["since"],
        "endsAt": ends,
    }


def send_alertmanager(r: Receiver, msg: Message, now: datetime, timeout: float) -> None:
    body = json.dumps([_am_alert(a, now, AM_HOLD) for a in msg.alerts]).encode()
    _post(r, body, {}, timeout, url=r.secrets["url"].rstrip("/") + "/api/v2/alerts")


Sender = Callable[[Receiver, Message, datetime, float], None]

#: Receiver type (the ``type:`` of a receiver in alerts.yaml) -> sender.
SENDERS: dict[str, Sender] = {
    "webhook": send_webhook,
    "slack": send_slack,
    "teams": send_teams,
    "email": send_email,
    "alertmanager": send_alertmanager,
}

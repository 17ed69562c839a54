"""One delivery pass (``mlmon alerts deliver``) and the loop (``mlmon alerts run``).

A pass: evaluate every rule over the lake; turn what changed into alerts
(firing when a condition starts to hold, resolved when it clears; nothing
while it keeps firing); queue them per receiver grouped per model, in the
same durable write as the new firing state; then send what is due, oldest
first, within each receiver's rate limit. A receiver that fails keeps its
message queued and is tried again after ``retry.min``, doubling up to
``retry.max``; the other receivers go on.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from mlmon.alerting.config import AlertsConfig, Receiver
from mlmon.alerting.outbox import Outbox, idempotency_key, locked
from mlmon.alerting.receivers import SENDERS, DeliveryError, Sender
from mlmon.alerting.rules import Finding, evaluate
from mlmon.alerting.silences import Silences
from mlmon.analysis.lake import Lake
from mlmon.errors import MlmonError

__all__ = ["PassResult", "deliver", "pause", "run"]

log = logging.getLogger("mlmon.alerting")


@dataclass
class PassResult:
    """What one pass did, in counts (``mlmon alerts deliver`` prints it)."""

    evaluated: int = 0
    firing: int = 0
    started: int = 0
    resolved: int = 0
    delivered: int = 0
    failed: int = 0
    rate_limited: int = 0
    queued: int = 0
    dropped: int = 0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"{self.evaluated} conditions evaluated, {self.firing} firing "
            f"({self.started} new, {self.resolved} resolved); {self.delivered} messages "
            f"delivered, {self.failed} failed, {self.rate_limited} held by a rate limit, "
            f"{self.queued} queued"
            + (f"; {self.dropped} dropped from a full outbox" if self.dropped else "")
        )


def _link(config: AlertsConfig, model: str, feature: str | None) -> str:
    url = f"{config.dashboard_url}/models/{quote(model, safe='')}"
    if feature:
        url += f"/features/{quote(feature, safe='')}"
    return url


def _alert(
    config: AlertsConfig, f: Finding, state: str, since: str, ended: str | None
) -> dict[str, Any]:
    return {
        "key": idempotency_key(f.key, state, since),
        "rule": f.rule,
        "model": f.model,
        "subject": f.subject,
        "feature": f.feature,
        "state": state,
        "severity": f.severity,
        "summary": f.summary,
        "value": f.value,
        "threshold": f.threshold,
        "since": since,
        "ended": ended,
        "link": _link(config, f.model, f.feature),
    }


def _wants(r: Receiver, model: str) -> bool:
    return any(fnmatch.fnmatchcase(model, p) for p in r.models)


def apply_findings(
    box: Outbox,
    config: AlertsConfig,
    findings: list[Finding],
    now: datetime,
    result: PassResult,
    silences: Silences | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Update the firing state; return the alerts to announce, per model.

    A firing alert matched by an active silence is tracked but not announced
    (``notified`` false) until the silence ends; a resolve is announced only for
    an alert that was.
    """
    changes: dict[str, list[dict[str, Any]]] = defaultdict(list)
    stamp = now.isoformat()
    for f in findings:
        result.evaluated += 1
        entry = box.firing.get(f.key)
        if f.holds:
            since = entry["since"] if entry else stamp
            box.firing[f.key] = {
                "since": since,
                "alert": _alert(config, f, "firing", since, None),
                "notified": bool(entry.get("notified", True)) if entry else False,
            }
            if entry is None:
                result.started += 1
        elif entry is not None:
            del box.firing[f.key]
            result.resolved += 1
            ack = silences.resolved(f.key) if silences is not None else None
            if entry.get("notified", True):
                alert = _alert(config, f, "resolved", entry["since"], stamp)
                if ack is not None:
                    alert["acknowledged_by"] = ack.by
                changes[f.model].append(alert)
    for entry in box.firing.values():
        if entry["notified"]:
            continue
        if silences is not None and silences.silenced(entry["alert"], now) is not None:
            continue  # announced when the silence ends, if it still fires then
        entry["notified"] = True
        changes[entry["alert"]["model"]].append(entry["alert"])
    result.firing = len(box.firing)
    return changes


NOTICE_MODEL = "(alert outbox)"


def bound_outbox(box: Outbox, config: AlertsConfig, now: datetime, result: PassResult) -> None:
    """Keep the outbox within its bound; tell each receiver that lost messages, and audit it.

    Each receiver that lost messages gets one notice (replacing a notice still queued,
    whose counts it adds up): a firing alert ``outbox_dropped`` naming how many messages
    were dropped and the firing alerts (rule, model, subject) they told of. The notice is
    never dropped and not held by the rate limit. Each drop is one record of the
    delivery's audit log when ``audit:`` is configured, and a warning in its log always.
    """
    dropped = box.bound(config.outbox_max_messages, config.outbox_max_bytes)
    if not dropped:
        return
    result.dropped += len(dropped)
    lost: dict[str, list[Any]] = defaultdict(list)
    for m in dropped:
        lost[m.receiver].append(m)
    for receiver, msgs in lost.items():
        old = next((m for m in box.messages if m.receiver == receiver and m.kind == "notice"), None)
        before: dict[str, Any] = old.alerts[0] if old is not None else {"value": 0}
        firing: list[str] = list(before.get("dropped_firing", []))
        for m in msgs:
            for a in m.alerts:
                name = " ".join(p for p in (a["rule"], a["model"], a.get("subject") or "") if p)
                if a["state"] == "firing" and name not in firing:
                    firing.append(name)
        n = int(before["value"]) + len(msgs)
        shown = "; ".join(firing[:10]) + (
            f"; and {len(firing) - 10} more" if len(firing) > 10 else ""
        )
        summary = (
            f"{n} alert message(s) for receiver {receiver} were dropped: the outbox was full "
            f"(at most {config.outbox_max_messages} messages, {config.outbox_max_bytes} bytes; "
            "resolved and lower-severity ones first). "
            + (f"Firing alerts among them: {shown}. " if firing else "No firing alert among them. ")
            + "The dashboard shows every alert's state."
        )
        since = before.get("since") or now.isoformat()
        alert = {
            "key": idempotency_key("outbox_dropped", receiver, since),
            "rule": "outbox_dropped",
            "model": NOTICE_MODEL,
            "subject": receiver,
            "feature": None,
            "state": "firing",
            "severity": "critical" if firing else "warning",
            "summary": summary,
            "value": n,
            "threshold": config.outbox_max_messages,
            "since": since,
            "ended": None,
            "link": f"{config.dashboard_url}/",
            "dropped_firing": firing,
        }
        box.notice(receiver, alert, now)
        log.warning("alerts: %s", summary)
        if config.audit_uri is not None:
            from mlmon.alerting.silences import open_silences

            try:  # the silences' lock: one writer of the delivery's audit chain at a time
                open_silences(config).note(
                    "alert_outbox_dropped",
                    receiver,
                    messages=len(msgs),
                    firing_alerts=len(firing),
                    max_messages=config.outbox_max_messages,
                    max_bytes=config.outbox_max_bytes,
                )
            except (MlmonError, OSError) as exc:
                log.error("alerts: the drop was not audited: %s", exc)


def flush(
    box: Outbox,
    config: AlertsConfig,
    now: datetime,
    result: PassResult,
    senders: dict[str, Sender] | None = None,
) -> None:
    """Send every due message, oldest first, within each receiver's rate limit."""
    senders = senders or SENDERS
    for r in config.receivers:
        room = box.rate_room(r.name, r.rate_messages, r.rate_per, now)
        for msg in sorted(box.due(r.name, now, config.retry_max), key=lambda m: m.created):
            if msg.kind == "change" and room <= 0:
                result.rate_limited += 1
                continue
            try:
                senders[r.type](r, msg, now, config.timeout_s)
            except DeliveryError as exc:
                wait = box.failed(msg, now, str(exc), config.retry_min, config.retry_max)
                box.save()
                result.failed += 1
                log.warning("alerts: %s (message for %s; next try in %s)", exc, msg.model, wait)
                break  # the receiver is failing: its other messages wait for the retry
            box.delivered(msg, now)
            box.save()
            result.delivered += 1
            if msg.kind == "change":
                room -= 1
            log.info(
                "alerts: delivered %d alert(s) of %s to %s", len(msg.alerts), msg.model, r.name
            )
    result.queued = len(box.messages)


def deliver(
    config: AlertsConfig,
    *,
    now: datetime | None = None,
    lake: Lake | None = None,
    evaluate_rules: bool = True,
    senders: dict[str, Sender] | None = None,
) -> PassResult:
    """One pass: evaluate, queue what changed (durably), send what is due.

    ``evaluate_rules=False`` only sends what is queued (the loop between evaluations).
    """
    now = now or datetime.now(UTC)
    result = PassResult()
    with locked(config.state_dir):
        box = Outbox(config.state_dir)
        findings: list[Finding] | None = None
        if evaluate_rules:
            try:
                lake = lake or Lake(config.lake, config.storage_options or None)
                findings, result.problems = evaluate(lake, config, now)
            except (MlmonError, OSError) as exc:  # the lake is down: still send what is queued
                result.problems.append(f"the lake could not be read: {type(exc).__name__}: {exc}")
                log.warning("alerts: rules not evaluated, the lake could not be read: %s", exc)
        if findings is not None:
            silences = Silences(config.state_dir)
            changes = apply_findings(box, config, findings, now, result, silences)
            for r in config.receivers:
                for model, alerts in changes.items():
                    if _wants(r, model):
                        box.enqueue(r.name, model, alerts, now, "change")
                if r.type == "alertmanager":  # firing alerts are re-sent, or they expire there
                    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
                    for entry in box.firing.values():
                        a = entry["alert"]
                        if not entry["notified"] or silences.silenced(a, now) is not None:
                            continue
                        if _wants(r, a["model"]) and a["key"] not in {
                            c["key"] for c in changes.get(a["model"], [])
                        }:
                            by_model[a["model"]].append(a)
                    for model, alerts in by_model.items():
                        box.enqueue(r.name, model, alerts, now, "refresh")
            bound_outbox(box, config, now, result)
            box.save()  # the new state and its messages in one atomic rename
        flush(box, config, now, result, senders)
    return result


def pause(stop: threading.Event, seconds: float, *, slice_s: float = 0.2) -> bool:
    """Wait up to ``seconds`` for ``stop``; return whether it is set.

    Sleeps in short relative slices instead of ``stop.wait(seconds)``: a timed
    ``Event.wait`` blocks on a semaphore with an absolute monotonic deadline, which
    never comes under libfaketime 0.9.10 (``faketime -f '+1825d'``; docs/testing.md
    and ``scripts/faketime-wait-probe.py``), while ``time.sleep`` takes a relative
    time. A set ``stop`` is seen within ``slice_s``.
    """
    deadline = time.monotonic() + max(0.0, seconds)
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(slice_s, left))
    return stop.is_set()


def run(
    config: AlertsConfig,
    stop: threading.Event,
    *,
    on_pass: Any = None,
) -> None:
    """Evaluate every ``interval``; between evaluations send queued messages when due.

    The schedule runs on the monotonic clock (a wall clock stepped back or ahead neither
    stalls nor floods the loop); the wall clock only stamps what a pass records.
    """
    interval_s = config.interval.total_seconds()
    step_s = min(interval_s, max(config.retry_min.total_seconds(), 1.0))
    next_eval = time.monotonic()
    while not stop.is_set():
        due_eval = time.monotonic() >= next_eval
        if due_eval:
            next_eval = time.monotonic() + interval_s
        try:
            result = deliver(config, now=datetime.now(UTC), evaluate_rules=due_eval)
        except Exception as exc:  # a lake outage must not end the loop
            log.error("alerts: pass failed: %s: %s", type(exc).__name__, exc)
            result = None
        if due_eval and result is not None:
            log.info("alerts: %s", result.line())
        if on_pass is not None and result is not None:
            on_pass(result)
        pause(stop, max(0.2, min(step_s, next_eval - time.monotonic())))

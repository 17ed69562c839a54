"""``mlmon alerts deliver`` and ``mlmon alerts run``: alert delivery (docs/alerts.md)."""

from __future__ import annotations

import argparse
from datetime import datetime


def _deliver(args: argparse.Namespace) -> int:
    from mlmon.alerting import deliver, load_config
    from mlmon.errors import ConfigError

    config = load_config(args.config)
    now = None
    if args.now:
        try:
            now = datetime.fromisoformat(args.now)
        except ValueError as exc:
            raise ConfigError(f"--now {args.now!r} is not an ISO time with a zone") from exc
        if now.tzinfo is None:
            raise ConfigError(f"--now {args.now!r} has no time zone; add Z or +00:00")
    result = deliver(config, now=now)
    print(f"mlmon alerts: {result.line()}", flush=True)
    for p in result.problems:
        print(f"mlmon alerts: not evaluated: {p}", flush=True)
    return 1 if result.failed or result.problems else 0


def _run(args: argparse.Namespace) -> int:
    import signal
    import threading

    from mlmon.alerting import load_config, run

    config = load_config(args.config)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"mlmon alerts: running every {config.interval} (state {config.state_dir})", flush=True)
    run(config, stop, on_pass=lambda r: print(f"mlmon alerts: {r.line()}", flush=True))
    return 0


def _until(text: str, now: datetime) -> datetime:
    from mlmon.alerting.config import parse_duration
    from mlmon.errors import ConfigError

    try:
        ends = datetime.fromisoformat(text)
    except ValueError:
        return now + parse_duration(text, "--until")
    if ends.tzinfo is None:
        raise ConfigError(f"--until {text!r} has no time zone; add Z or +00:00, or give e.g. 4h")
    return ends


def _silence(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from mlmon.alerting import load_config
    from mlmon.alerting.silences import open_silences

    config = load_config(args.config)
    now = datetime.now(UTC)
    box = open_silences(config)
    if args.expire:
        s = box.expire(args.expire, by=args.by, now=now)
        print(f"mlmon alerts: silence {s.id} ended")
    else:
        s = box.silence(
            args.model, _until(args.until, now), by=args.by, reason=args.reason or "", now=now,
            rule=args.rule, subject=args.subject,
        )  # fmt: skip
        print(f"mlmon alerts: silence {s.id} for {s.model} {s.rule} {s.subject} until {s.ends}")
    return 0


def _ack(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from mlmon.alerting import load_config
    from mlmon.alerting.outbox import Outbox
    from mlmon.alerting.silences import open_silences

    config = load_config(args.config)
    box = open_silences(config)
    key = f"{args.rule}|{args.model}|{args.subject or ''}"
    firing = set(Outbox(config.state_dir).firing)
    box.acknowledge(key, by=args.by, note=args.note or "", now=datetime.now(UTC), firing=firing)
    print(f"mlmon alerts: {key} acknowledged by {args.by}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from mlmon.alerting import load_config
    from mlmon.alerting.outbox import Outbox
    from mlmon.alerting.silences import Silences

    config = load_config(args.config)
    now = datetime.now(UTC)
    box, sil = Outbox(config.state_dir), Silences(config.state_dir)
    for key, entry in sorted(box.firing.items()):
        ack = sil.acks.get(key)
        muted = sil.silenced(entry["alert"], now)
        print(
            f"firing {key} since {entry['since']}"
            + (f" acknowledged by {ack.by}" if ack else "")
            + (f" silenced by {muted.id}" if muted else "")
        )
    for s in sil.active(now):
        print(f"silence {s.id} {s.model} {s.rule} {s.subject} until {s.ends} by {s.by}")
    print(f"queued messages: {len(box.messages)}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    grp = sub.add_parser(
        "alerts",
        help="deliver alerts to webhooks, Slack, Teams, e-mail and Alertmanager",
        description="Evaluate alert rules over the lake (reader role) and deliver what changed\n"
        "through a durable outbox. See docs/alerts.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).add_subparsers(dest="sub", required=True)
    d = grp.add_parser(
        "deliver",
        help="one pass: evaluate, queue, send (a CronJob); exit 1 if a send or a rule failed",
        description="Evaluate every rule once, queue the changes and send what is due.\n"
        "Exit 0 when all went out, 1 when a receiver failed (kept queued) or a rule\n"
        "could not be evaluated, 2 for a config error.",
        epilog="example:\n  mlmon alerts deliver --config /etc/mlmon/alerts.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("--config", required=True, help="alerts.yaml (docs/alerts.md)")
    d.add_argument("--now", help="evaluate as of this UTC time (ISO 8601; a backfilled lake)")
    d.set_defaults(func=_deliver)
    r = grp.add_parser(
        "run",
        help="evaluate every interval and send queued messages as they fall due",
        description="Loop: evaluate every `interval`, retry queued messages with back-off.\n"
        "SIGTERM stops it between sends; nothing queued is lost.",
        epilog="example:\n  mlmon alerts run --config /etc/mlmon/alerts.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument("--config", required=True, help="alerts.yaml (docs/alerts.md)")
    r.set_defaults(func=_run)
    s = grp.add_parser(
        "silence",
        help="hold back the messages of matching alerts until a time (audited)",
        description="Add a silence (or end one with --expire ID). Needs `audit:` in the config.",
        epilog="example:\n  mlmon alerts silence --config alerts.yaml --model risk-model "
        "--rule 'drift:*' --until 4h --by jdoe --reason 'planned retrain'",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--config", required=True, help="alerts.yaml (docs/alerts.md)")
    s.add_argument("--model", default="*", help="model name or shell pattern")
    s.add_argument("--rule", default="*", help="alert id or pattern (drift:*, golden_pass_rate)")
    s.add_argument("--subject", default="*", help="feature, metric or version, or a pattern")
    s.add_argument("--until", default="4h", help="a duration (4h) or an ISO time with a zone")
    s.add_argument("--by", required=True, help="the operator's user id")
    s.add_argument("--reason", help="why (kept in the silences file, not in messages)")
    s.add_argument("--expire", metavar="ID", help="end this silence now instead")
    s.set_defaults(func=_silence)
    a = grp.add_parser(
        "ack",
        help="acknowledge a firing alert (audited)",
        description="Acknowledge a firing alert; its resolved message names who did.",
        epilog="example:\n  mlmon alerts ack --config alerts.yaml --model risk-model "
        "--rule golden_pass_rate --by jdoe",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a.add_argument("--config", required=True, help="alerts.yaml (docs/alerts.md)")
    a.add_argument("--model", required=True)
    a.add_argument("--rule", required=True, help="the alert id, e.g. drift:psi")
    a.add_argument("--subject", help="feature, metric or version of the alert")
    a.add_argument("--by", required=True, help="the operator's user id")
    a.add_argument("--note", help="a note (kept in the silences file)")
    a.set_defaults(func=_ack)
    st = grp.add_parser(
        "status",
        help="firing alerts, acknowledgements, active silences, queued messages",
        description="What the delivery's state folder holds now.",
        epilog="example:\n  mlmon alerts status --config alerts.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    st.add_argument("--config", required=True, help="alerts.yaml (docs/alerts.md)")
    st.set_defaults(func=_status)

"""``mlmon alerts deliver`` and ``mlmon alerts run``: alert delivery (docs/alerts.md)."""

from __future__ import annotations

import argparse


def _deliver(args: argparse.Namespace) -> int:
    from datetime import datetime

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

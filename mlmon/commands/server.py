"""``mlmon server``: the dashboards and JSON API over the lake (docs/server.md)."""

from __future__ import annotations

import argparse


def _serve(args: argparse.Namespace) -> int:
    from mlmon.commands._common import storage_options
    from mlmon.server.app import serve
    from mlmon.server.config import load_config

    config = load_config(
        args.config,
        lake=args.lake,
        host=args.host,
        port=args.port,
        range_anchor=args.range_anchor,
        reports=args.reports,
    )
    if args.deliver_alerts:
        import dataclasses

        from mlmon.errors import ConfigError

        if not config.alerts_config:
            raise ConfigError(
                "--deliver-alerts needs alerts: {config: alerts.yaml} in the server's --config"
            )
        config = dataclasses.replace(config, deliver_alerts=True)
    opts = storage_options(args)
    if opts:
        import dataclasses

        config = dataclasses.replace(config, storage_options={**config.storage_options, **opts})
    print(
        f"mlmon server: http{'s' if args.tls_cert else ''}://{config.host}:{config.port}/ "
        f"(lake {config.lake}, sign-in: {config.auth.mode})",
        flush=True,
    )
    serve(config, tls_cert=args.tls_cert, tls_key=args.tls_key)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "server",
        help="dashboards and a JSON API over the lake (reader role)",
        description="Serve the overview, model and feature pages and the JSON API (/api/v1) over\n"
        "the lake, with sign-in (none on loopback only, token or proxy), per-team model\n"
        "groups and an audit record of every request. See docs/server.md.",
        epilog="example:\n  mlmon server --lake ./lake --range-anchor data --port 8400",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--lake", help="lake URI (default: MLMON_LAKE, or 'lake:' in --config)")
    p.add_argument("--config", help="server.yaml: sign-in, model groups, audit (docs/server.md)")
    p.add_argument("--host", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8400; 0 picks a free one)")
    p.add_argument(
        "--range-anchor",
        choices=["clock", "data"],
        help="preset ranges end now (clock, default) or at the newest data (data)",
    )
    p.add_argument(
        "--reports",
        help="folder or s3:// prefix of rendered reports (mlmon report --out) for the Reports page",
    )
    p.add_argument(
        "--deliver-alerts",
        action="store_true",
        help="also run the alert delivery loop of alerts.config (as `mlmon alerts run`)",
    )
    p.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", help="the certificate's private key (PEM)")
    p.add_argument(
        "--storage-option",
        action="append",
        metavar="KEY=VALUE",
        help="fsspec/s3fs option for the lake, repeatable",
    )
    p.set_defaults(func=_serve)

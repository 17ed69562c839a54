"""The server's one frozen configuration object and its loader.

``server.yaml`` (every key optional)::

    lake: s3://bucket/prefix          # or --lake; file:// or a local path
    host: 127.0.0.1                   # --host
    port: 8400                        # --port
    range_anchor: clock               # clock: "last 7 days" ends now; data: at the newest data
    stale_after: 2h                   # a model with no data for this long is flagged stale
    cache_seconds: 30                 # results are reused this long (only when index.every is 0)
    reports: s3://bucket/reports      # or --reports: where mlmon report / schedule write (the Reports page)
    index: {every: 10s, full_every: 30}   # list the lake in the background; cache until it changes
    compute: {processes: 2}            # worker processes for figures (default: 2 on 2+ cores; 0: none)
    auth:
      mode: proxy                     # none | token | proxy
      tokens_file: /etc/mlmon/tokens.yaml     # token mode: hashed bearer tokens (see below)
      proxy:
        trusted: [10.0.0.5/32]        # addresses the proxy connects from
        secret_file: /etc/mlmon/proxy-secret  # or a shared secret the proxy sends in a header
        secret_header: X-Mlmon-Proxy-Secret
        user_header: X-Forwarded-User
        groups_header: X-Forwarded-Groups
    groups:                           # model groups: a team sees only the models of its groups
      cardiology: [risk-model]
      icu: ["sepsis-*"]               # shell-style patterns
    admin_groups: [mlmon-admins]      # members see every model
    objectives:                       # optional, per model: drawn against latency p95
      risk-model: {latency_p95_ms: 250}
    rate_limit: {requests: 300, per: 60s}
    audit:
      uri: s3://bucket/audit-prefix   # default: the lake (the reader needs PUT on audit/ only)
      state_dir: .mlmon-server        # the chain head (the server's own volume)
      actor: mlmon-server
      flush_every: 60s

Tokens file (``mode: token``; it must not be readable by group or others)::

    tokens:
      - name: alice                   # the principal written to the audit log
        sha256: 9f86d08...            # hex SHA-256 of the token; the token itself is never stored
        groups: [cardiology]

Precedence: arguments of :func:`load_config` (the CLI flags) > ``MLMON_LAKE`` >
the file > defaults.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml

from mlmon.durations import parse_duration
from mlmon.errors import ConfigError
from mlmon.private_files import read_private_file

__all__ = [
    "AuditSettings",
    "AuthSettings",
    "ProxySettings",
    "ServerConfig",
    "TokenEntry",
    "is_loopback",
    "load_config",
    "parse_duration",
]

AuthMode = Literal["none", "token", "proxy"]
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
_HEADER = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class TokenEntry:
    """One bearer token: who it is, the SHA-256 of the token, the groups it belongs to."""

    name: str
    sha256: str = field(repr=False)
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProxySettings:
    """Where identity headers are accepted from: ``trusted`` networks or a shared secret."""

    trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    secret: str | None = field(default=None, repr=False)
    secret_header: str = "X-Mlmon-Proxy-Secret"
    user_header: str = "X-Forwarded-User"
    groups_header: str = "X-Forwarded-Groups"


@dataclass(frozen=True)
class AuthSettings:
    mode: AuthMode = "none"
    tokens: tuple[TokenEntry, ...] = field(default=(), repr=False)
    proxy: ProxySettings = field(default_factory=ProxySettings)


@dataclass(frozen=True)
class AuditSettings:
    uri: str | None = None
    state_dir: Path = Path(".mlmon-server")
    actor: str = "mlmon-server"
    flush_every: timedelta = timedelta(seconds=60)
    enabled: bool = True


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``mlmon server`` needs; build it with :func:`load_config`."""

    lake: str
    host: str = "127.0.0.1"
    port: int = 8400
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    range_anchor: Literal["clock", "data"] = "clock"
    stale_after: timedelta = timedelta(hours=2)
    cache_seconds: float = 30.0
    #: Seconds between background listings of the lake (0: no index, results cached ``cache_seconds``).
    index_every: float = 10.0
    #: Every this many listings, every date folder is listed again (else only the newest two).
    index_full_every: int = 30
    auth: AuthSettings = field(default_factory=AuthSettings)
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    admin_groups: tuple[str, ...] = ()
    objectives: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    rate_requests: int = 300
    rate_per: timedelta = timedelta(seconds=60)
    audit: AuditSettings = field(default_factory=AuditSettings)
    reports: str | None = None
    alerts_config: str | None = None  # alerts.yaml: silences and acks through the API
    operator_groups: tuple[str, ...] = ()  # may silence and acknowledge alerts
    deliver_alerts: bool = False  # run the alerts.yaml delivery loop in the server process
    #: Worker processes computing per-model figures (0: in the server's process only).
    compute_processes: int = 0

    def __post_init__(self) -> None:
        if self.auth.mode == "none" and not is_loopback(self.host):
            raise ConfigError(
                f"auth mode 'none' serves every model to anyone who can connect, so it is "
                f"refused on host {self.host!r}; bind 127.0.0.1 (--host 127.0.0.1), or set "
                "auth.mode to 'proxy' or 'token' in server.yaml"
            )


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(value).__name__}")
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ConfigError(f"{where} must be a list of names, e.g. [risk-model]")
    out = []
    for i, v in enumerate(value):
        if not isinstance(v, str) or not v:
            raise ConfigError(f"{where}[{i}] must be a non-empty string")
        out.append(v)
    return tuple(out)


def load_tokens(path: Path) -> tuple[TokenEntry, ...]:
    """The hashed tokens of ``path`` (``tokens: [{name, sha256, groups}]``)."""
    where = f"{path}"
    try:
        doc = yaml.safe_load(read_private_file(path, "auth.tokens_file"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({exc.__class__.__name__})") from exc
    entries = _mapping(doc, where).get("tokens")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{where}: expected 'tokens:' with a list of {{name, sha256, groups}}")
    out: list[TokenEntry] = []
    for i, e in enumerate(entries):
        e = _mapping(e, f"{where}: tokens[{i}]")
        name, digest = e.get("name"), str(e.get("sha256", "")).lower()
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(
                f"{where}: tokens[{i}].name must be letters, digits, '.', '_', '@', '+' or '-'"
            )
        if not _HEX64.match(digest):
            raise ConfigError(
                f"{where}: tokens[{i}].sha256 is not 64 hex digits; store the SHA-256 of the "
                "token (e.g. printf %s TOKEN | sha256sum), never the token itself"
            )
        out.append(
            TokenEntry(name, digest, _strings(e.get("groups"), f"{where}: tokens[{i}].groups"))
        )
    return tuple(out)


def _proxy(doc: dict[str, Any], base: Path) -> ProxySettings:
    nets = []
    for i, t in enumerate(_strings(doc.get("trusted"), "auth.proxy.trusted")):
        try:
            nets.append(ipaddress.ip_network(t, strict=False))
        except ValueError as exc:
            raise ConfigError(
                f"auth.proxy.trusted[{i}] {t!r} is not an address or network (e.g. 10.0.0.5/32)"
            ) from exc
    secret = None
    if doc.get("secret_file"):
        secret = read_private_file(base / str(doc["secret_file"]), "auth.proxy.secret_file").strip()
        if len(secret) < 16:
            raise ConfigError("auth.proxy.secret_file: the shared secret must be 16+ characters")
    if not nets and secret is None:
        raise ConfigError(
            "auth.mode 'proxy' needs auth.proxy.trusted (the proxy's addresses) or "
            "auth.proxy.secret_file (a secret the proxy sends), or identity headers could be forged"
        )
    headers = {}
    for key, default in (
        ("secret_header", "X-Mlmon-Proxy-Secret"),
        ("user_header", "X-Forwarded-User"),
        ("groups_header", "X-Forwarded-Groups"),
    ):
        value = str(doc.get(key, default))
        if not _HEADER.match(value):
            raise ConfigError(f"auth.proxy.{key} {value!r} is not a header name")
        headers[key] = value
    return ProxySettings(tuple(nets), secret, **headers)


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    lake: str | None = None,
    host: str | None = None,
    port: int | None = None,
    range_anchor: str | None = None,
    reports: str | None = None,
    env: Mapping[str, str] | None = None,
) -> ServerConfig:
    """Read ``server.yaml`` (optional) and apply the flags.

    Precedence: the keyword arguments (CLI flags) > ``MLMON_LAKE`` in ``env`` > the file >
    defaults. Relative paths in the file are relative to the file.

    Raises
    ------
    ConfigError
        A key is wrong (the message names it and the fix), no lake is given, or auth
        mode ``none`` is asked on an address other than loopback.
    """
    environ = os.environ if env is None else env
    doc: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        p = Path(path)
        base = p.resolve().parent
        try:
            doc = _mapping(yaml.safe_load(p.read_text(encoding="utf-8")), str(p))
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read the server config ({exc.strerror})") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML ({exc.__class__.__name__})") from exc
    known = {
        "lake",
        "host",
        "port",
        "range_anchor",
        "stale_after",
        "cache_seconds",
        "index",
        "auth",
        "groups",
        "admin_groups",
        "objectives",
        "rate_limit",
        "audit",
        "storage_options",
        "reports",
        "alerts",
        "operator_groups",
        "compute",
    }
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ConfigError(
            f"server config: unknown key(s) {', '.join(unknown)}; expected {', '.join(sorted(known))}"
        )
    lake_uri = lake or environ.get("MLMON_LAKE") or doc.get("lake")
    if not lake_uri:
        raise ConfigError("no lake: give --lake URI, MLMON_LAKE, or 'lake:' in server.yaml")
    auth_doc = _mapping(doc.get("auth"), "auth")
    mode = auth_doc.get("mode", "none")
    if mode not in ("none", "token", "proxy"):
        raise ConfigError(f"auth.mode {mode!r} is not one of none, token, proxy")
    tokens: tuple[TokenEntry, ...] = ()
    proxy = ProxySettings()
    if mode == "token":
        if not auth_doc.get("tokens_file"):
            raise ConfigError("auth.mode 'token' needs auth.tokens_file (hashed tokens)")
        tokens = load_tokens(base / str(auth_doc["tokens_file"]))
    if mode == "proxy":
        proxy = _proxy(_mapping(auth_doc.get("proxy"), "auth.proxy"), base)
    groups = {
        str(g): _strings(models, f"groups.{g}")
        for g, models in _mapping(doc.get("groups"), "groups").items()
    }
    objectives: dict[str, dict[str, float]] = {}
    for model, obj in _mapping(doc.get("objectives"), "objectives").items():
        o = _mapping(obj, f"objectives.{model}")
        try:
            objectives[str(model)] = {str(k): float(v) for k, v in o.items()}
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"objectives.{model}: values must be numbers") from exc
    rate = _mapping(doc.get("rate_limit"), "rate_limit")
    audit_doc = _mapping(doc.get("audit"), "audit")
    anchor = range_anchor or doc.get("range_anchor", "clock")
    if anchor not in ("clock", "data"):
        raise ConfigError(f"range_anchor {anchor!r} is not 'clock' or 'data'")
    try:
        port_value = int(port if port is not None else doc.get("port", 8400))
        requests = int(rate.get("requests", 300))
        cache_seconds = float(doc.get("cache_seconds", 30))
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"server config: port, rate_limit.requests and cache_seconds must be numbers ({exc})"
        ) from exc
    if not 0 <= port_value <= 65535 or requests < 1:
        raise ConfigError("port must be 0..65535 and rate_limit.requests at least 1")
    state_dir = Path(str(audit_doc.get("state_dir", ".mlmon-server")))
    reports_uri = reports or doc.get("reports")
    if reports_uri is not None:
        if not isinstance(reports_uri, str) or not reports_uri:
            raise ConfigError(
                "reports must be a folder or an s3:// prefix, e.g. s3://bucket/reports"
            )
        if "://" not in reports_uri and not reports and not Path(reports_uri).is_absolute():
            reports_uri = str(base / reports_uri)
    alerts_doc = _mapping(doc.get("alerts"), "alerts")
    if set(alerts_doc) - {"config", "deliver"}:
        raise ConfigError(
            "alerts: the known keys are config (the path of alerts.yaml) and deliver (true: run "
            "the delivery loop in the server)"
        )
    alerts_config = str(base / str(alerts_doc["config"])) if alerts_doc.get("config") else None
    deliver_alerts = alerts_doc.get("deliver", False)
    if not isinstance(deliver_alerts, bool):
        raise ConfigError(f"alerts.deliver: expected true or false, got {deliver_alerts!r}")
    if deliver_alerts and alerts_config is None:
        raise ConfigError("alerts.deliver: needs alerts.config, the alerts.yaml to deliver")
    index_doc = _mapping(doc.get("index"), "index")
    if set(index_doc) - {"every", "full_every"}:
        raise ConfigError("index: the known keys are every (e.g. 10s; 0s: no index) and full_every")
    index_every = parse_duration(index_doc.get("every", "10s"), "index.every").total_seconds()
    full_every = index_doc.get("full_every", 30)
    if not isinstance(full_every, int) or isinstance(full_every, bool) or full_every < 1:
        raise ConfigError("index.full_every must be a whole number of at least 1 (e.g. 30)")
    compute_doc = _mapping(doc.get("compute"), "compute")
    if set(compute_doc) - {"processes"}:
        raise ConfigError("compute: the known key is processes (worker processes, e.g. 2; 0: none)")
    processes = compute_doc.get("processes", default_processes())
    if not isinstance(processes, int) or isinstance(processes, bool) or not 0 <= processes <= 64:
        raise ConfigError("compute.processes must be a whole number from 0 to 64 (e.g. 2)")
    return ServerConfig(
        lake=str(lake_uri),
        host=host or str(doc.get("host", "127.0.0.1")),
        port=port_value,
        storage_options=_mapping(doc.get("storage_options"), "storage_options"),
        range_anchor="data" if anchor == "data" else "clock",
        stale_after=parse_duration(doc.get("stale_after", "2h"), "stale_after"),
        cache_seconds=cache_seconds,
        index_every=index_every,
        index_full_every=full_every,
        auth=AuthSettings(mode, tokens, proxy),
        groups=groups,
        admin_groups=_strings(doc.get("admin_groups"), "admin_groups"),
        objectives=objectives,
        rate_requests=requests,
        rate_per=parse_duration(rate.get("per", "60s"), "rate_limit.per"),
        audit=AuditSettings(
            uri=audit_doc.get("uri"),
            state_dir=state_dir if state_dir.is_absolute() else base / state_dir,
            actor=str(audit_doc.get("actor", "mlmon-server")),
            flush_every=parse_duration(audit_doc.get("flush_every", "60s"), "audit.flush_every"),
            enabled=bool(audit_doc.get("enabled", True)),
        ),
        reports=reports_uri,
        alerts_config=alerts_config,
        deliver_alerts=deliver_alerts,
        operator_groups=_strings(doc.get("operator_groups"), "operator_groups"),
        compute_processes=processes,
    )


def default_processes() -> int:
    """``compute.processes`` when server.yaml does not say: one worker per core, at most 2
    (the server's own process renders and answers); none on a single core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 0 if (cores or 1) < 2 else 2

"""``alerts.yaml``: the rules, the receivers and where the outbox lives (docs/alerts.md).

Every key is checked at load: an unknown key, a wrong value or a missing secret
is refused with a message naming the key path (``receivers[1].url``) and the
fix, never a secret's value. Secrets (webhook URLs, the SMTP password, HMAC
keys) are given as ``{env: NAME}`` or ``{file: path}`` (the file readable by
its owner only); a webhook URL may also be written out when it holds no secret.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from mlmon.durations import parse_duration
from mlmon.errors import ConfigError
from mlmon.private_files import read_private_file

__all__ = [
    "AlertsConfig",
    "Receiver",
    "RuleSettings",
    "load_config",
    "parse_config",
    "parse_duration",
]

RECEIVER_TYPES = ("webhook", "slack", "teams", "email", "alertmanager")
RULES = ("drift", "golden", "latency", "performance", "missing_data", "version_checks")


@dataclass(frozen=True)
class RuleSettings:
    """One rule: on or off, its period, severity and the rule's own figures."""

    name: str
    period: timedelta
    severity: str
    options: dict[str, Any] = field(default_factory=dict)

    def option(self, key: str, model: str, default: Any = None) -> Any:
        """A figure of the rule, with per-model overrides under ``models: {name: {...}}``."""
        per = self.options.get("models", {}).get(model, {})
        return per.get(key, self.options.get(key, default))


@dataclass(frozen=True)
class Receiver:
    """Where messages go; ``secrets`` hold the resolved URL, password and key (never logged)."""

    name: str
    type: str
    options: dict[str, Any]
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    rate_messages: int = 30
    rate_per: timedelta = timedelta(hours=1)
    models: tuple[str, ...] = ("*",)

    def __repr__(self) -> str:  # never the URL or a secret
        return f"Receiver(name={self.name!r}, type={self.type!r})"


@dataclass(frozen=True)
class AlertsConfig:
    lake: str
    state_dir: Path
    dashboard_url: str
    rules: tuple[RuleSettings, ...]
    receivers: tuple[Receiver, ...]
    models: tuple[str, ...] = ("*",)
    interval: timedelta = timedelta(minutes=5)
    retry_min: timedelta = timedelta(seconds=30)
    retry_max: timedelta = timedelta(hours=1)
    timeout_s: float = 10.0
    storage_options: dict[str, Any] = field(default_factory=dict)
    audit_uri: str | None = None  # silences and acknowledgements are audited there
    audit_actor: str = "mlmon-alerts"
    outbox_max_messages: int = 1000  # the outbox's bound (docs/alerts.md, "A full outbox")
    outbox_max_bytes: int = 4 * 1024 * 1024


_RULE_KEYS: dict[str, dict[str, Any]] = {
    # key -> default; "models" (per-model overrides) is accepted by every rule
    "drift": {"period": "24h", "severity": "warning", "methods": ["psi"], "min_count": 200},
    "golden": {"period": "1h", "severity": "warning", "min_pass_rate": 0.95},
    "latency": {"period": "1h", "severity": "warning", "quantile": 0.95, "objective_ms": None},
    "performance": {"period": "7d", "severity": "warning", "metrics": None, "min_labels": 100},
    "missing_data": {"period": "7d", "severity": "critical", "missing_after": "2h", "expect": []},
    "version_checks": {"period": "7d", "severity": "critical"},
}
_RECEIVER_KEYS: dict[str, set[str]] = {
    "webhook": {"url", "hmac_key", "headers"},
    "slack": {"url"},
    "teams": {"url"},
    "email": {
        "host",
        "port",
        "tls",
        "username",
        "password",
        "sender",
        "to",
        "ca_file",
        "subject_prefix",
    },
    "alertmanager": {"url", "ca_file"},
}
_SEVERITIES = ("info", "warning", "critical")


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _no_unknown(doc: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; expected: {', '.join(sorted(allowed))}"
        )


def _secret(value: Any, where: str, base: Path) -> str:
    """A secret given as ``{env: NAME}`` or ``{file: path}`` (mode 600)."""
    doc = _mapping(value, where)
    _no_unknown(doc, {"env", "file"}, where)
    if len(doc) != 1:
        raise ConfigError(f"{where}: give exactly one of env: NAME or file: path")
    if "env" in doc:
        out = os.environ.get(str(doc["env"]), "")
        if not out:
            raise ConfigError(
                f"{where}: environment variable {doc['env']} is not set; export the secret there"
            )
        return out.strip()
    return read_private_file(base / str(doc["file"]), where).strip()


def _url(value: Any, where: str, base: Path) -> str:
    url = value if isinstance(value, str) else _secret(value, where, base)
    if not re.match(r"^https?://[^\s/]+", url):
        # never echo the value: it may be a secret webhook URL
        raise ConfigError(f"{where}: not an http(s) URL; give e.g. https://hooks.example.org/...")
    return url


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a list of names")
    return tuple(value)


def _rule(name: str, doc: Any, where: str) -> RuleSettings | None:
    if doc is False:
        return None
    doc = _mapping(doc if doc is not True else {}, where)
    defaults = _RULE_KEYS[name]
    _no_unknown(doc, {*defaults, "models", "enabled"}, where)
    if doc.get("enabled", True) is False:
        return None
    merged = {**defaults, **{k: v for k, v in doc.items() if k != "enabled"}}
    period = parse_duration(merged.pop("period"), f"{where}.period")
    severity = merged.pop("severity")
    if severity not in _SEVERITIES:
        raise ConfigError(
            f"{where}.severity: {severity!r}; expected one of {', '.join(_SEVERITIES)}"
        )
    models = _mapping(merged.get("models"), f"{where}.models")
    for model, over in models.items():
        over = _mapping(over, f"{where}.models.{model}")
        per_model = set(defaults) - {"period", "severity", "expect"}
        _no_unknown(over, per_model, f"{where}.models.{model}")
    merged["models"] = models
    for key in ("min_pass_rate", "quantile"):
        for m, v in [(None, merged.get(key)), *((m, o.get(key)) for m, o in models.items())]:
            if v is not None and (
                not isinstance(v, int | float) or isinstance(v, bool) or not 0 <= v <= 1
            ):
                at = f"{where}.models.{m}.{key}" if m else f"{where}.{key}"
                raise ConfigError(f"{at}: {v!r} is not a number between 0 and 1")
    if name == "latency":
        for m, v in [
            (None, merged.get("objective_ms")),
            *((m, o.get("objective_ms")) for m, o in models.items()),
        ]:
            if v is not None and (not isinstance(v, int | float) or isinstance(v, bool) or v <= 0):
                at = f"{where}.models.{m}.objective_ms" if m else f"{where}.objective_ms"
                raise ConfigError(f"{at}: {v!r} is not a positive number of milliseconds")
    if name == "missing_data":
        merged["missing_after"] = parse_duration(merged["missing_after"], f"{where}.missing_after")
        merged["expect"] = _strings(merged["expect"], f"{where}.expect")
        for m, o in models.items():
            if "missing_after" in o:
                o["missing_after"] = parse_duration(
                    o["missing_after"], f"{where}.models.{m}.missing_after"
                )
    return RuleSettings(name, period, severity, merged)


def _receiver(i: int, doc: Any, base: Path) -> Receiver:
    where = f"receivers[{i}]"
    doc = _mapping(doc, where)
    kind = doc.get("type")
    if kind not in RECEIVER_TYPES:
        raise ConfigError(f"{where}.type: {kind!r}; expected one of {', '.join(RECEIVER_TYPES)}")
    name = str(doc.get("name") or f"{kind}-{i}")
    where = f"receivers[{i}] ({name})"
    _no_unknown(doc, {"type", "name", "rate_limit", "models", *_RECEIVER_KEYS[kind]}, where)
    secrets: dict[str, str] = {}
    options: dict[str, Any] = {}
    if kind != "email":
        if "url" not in doc:
            raise ConfigError(f"{where}.url: missing; give the receiver's URL or {{env: NAME}}")
        secrets["url"] = _url(doc["url"], f"{where}.url", base)
    if kind == "webhook":
        if "hmac_key" in doc:
            secrets["hmac_key"] = _secret(doc["hmac_key"], f"{where}.hmac_key", base)
            if len(secrets["hmac_key"]) < 16:
                raise ConfigError(
                    f"{where}.hmac_key: the key is shorter than 16 characters; use e.g. "
                    "`openssl rand -hex 32`"
                )
        options["headers"] = {
            str(k): str(v) for k, v in _mapping(doc.get("headers"), f"{where}.headers").items()
        }
    if kind == "email":
        for key in ("host", "sender", "to"):
            if not doc.get(key):
                raise ConfigError(f"{where}.{key}: missing (host, sender and to are required)")
        tls = doc.get("tls", "starttls")
        if tls not in ("starttls", "tls"):
            raise ConfigError(
                f"{where}.tls: {tls!r}; expected starttls (port 587) or tls (port 465); "
                "mail is never sent in clear"
            )
        options.update(
            host=str(doc["host"]),
            port=int(doc.get("port", 587 if tls == "starttls" else 465)),
            tls=tls,
            sender=str(doc["sender"]),
            to=_strings(doc["to"], f"{where}.to"),
            username=doc.get("username"),
            subject_prefix=str(doc.get("subject_prefix", "[mlmon]")),
        )
        if "password" in doc:
            if not doc.get("username"):
                raise ConfigError(f"{where}.password: given without username")
            secrets["password"] = _secret(doc["password"], f"{where}.password", base)
    if doc.get("ca_file"):
        ca = base / str(doc["ca_file"])
        if not ca.is_file():
            raise ConfigError(f"{where}.ca_file: {ca} is not a file")
        options["ca_file"] = str(ca)
    rate = _mapping(doc.get("rate_limit"), f"{where}.rate_limit")
    _no_unknown(rate, {"messages", "per"}, f"{where}.rate_limit")
    messages = rate.get("messages", 30)
    if not isinstance(messages, int) or isinstance(messages, bool) or messages < 1:
        raise ConfigError(f"{where}.rate_limit.messages: {messages!r} is not a positive integer")
    per = parse_duration(rate.get("per", "1h"), f"{where}.rate_limit.per")
    models = _strings(doc.get("models", ["*"]), f"{where}.models")
    return Receiver(name, kind, options, secrets, messages, per, models)


def parse_config(doc: Any, base: Path, *, source: str = "alerts.yaml") -> AlertsConfig:
    """Check and resolve an alerts config mapping; ``base`` anchors relative paths."""
    try:
        return _parse(doc, base)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def _parse(doc: Any, base: Path) -> AlertsConfig:
    doc = _mapping(doc, "the file")
    allowed = {
        "lake",
        "state_dir",
        "dashboard_url",
        "rules",
        "receivers",
        "models",
        "interval",
        "retry",
        "timeout",
        "storage_options",
        "audit",
        "outbox",
    }
    _no_unknown(doc, allowed, "top level")
    for key in ("lake", "state_dir", "dashboard_url"):
        if not doc.get(key):
            raise ConfigError(f"{key}: missing; see docs/alerts.md")
    dashboard = str(doc["dashboard_url"]).rstrip("/")
    if not re.match(r"^https?://", dashboard):
        raise ConfigError(f"dashboard_url: {dashboard!r} is not an http(s) URL")
    rules_doc = _mapping(doc.get("rules"), "rules")
    _no_unknown(rules_doc, set(RULES), "rules")
    rules = tuple(
        r
        for name in RULES
        if name in rules_doc
        if (r := _rule(name, rules_doc[name], f"rules.{name}"))
    )
    if not rules:
        raise ConfigError(f"rules: no rule is enabled; enable one of {', '.join(RULES)}")
    recv_doc = doc.get("receivers")
    if not isinstance(recv_doc, list) or not recv_doc:
        raise ConfigError("receivers: expected a list with at least one receiver")
    receivers = tuple(_receiver(i, r, base) for i, r in enumerate(recv_doc))
    names = [r.name for r in receivers]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"receivers: name(s) {', '.join(dup)} used twice; names key the outbox")
    retry = _mapping(doc.get("retry"), "retry")
    _no_unknown(retry, {"min", "max"}, "retry")
    audit = _mapping(doc.get("audit"), "audit")
    _no_unknown(audit, {"uri", "actor"}, "audit")
    if audit and not audit.get("uri"):
        raise ConfigError("audit.uri: missing; the lake or bucket that keeps the audit log")
    outbox = _mapping(doc.get("outbox"), "outbox")
    _no_unknown(outbox, {"max_messages", "max_bytes"}, "outbox")
    bounds = {"max_messages": 1000, "max_bytes": 4 * 1024 * 1024, **outbox}
    for key, least in (("max_messages", 10), ("max_bytes", 16 * 1024)):
        v = bounds[key]
        if not isinstance(v, int) or isinstance(v, bool) or v < least:
            raise ConfigError(
                f"outbox.{key}: expected a whole number of at least {least}, got {v!r}"
            )
    lake = str(doc["lake"])
    if "://" not in lake and not Path(lake).is_absolute():
        lake = str(base / lake)
    state_dir = Path(str(doc["state_dir"]))
    return AlertsConfig(
        lake=lake,
        state_dir=state_dir if state_dir.is_absolute() else base / state_dir,
        dashboard_url=dashboard,
        rules=rules,
        receivers=receivers,
        models=_strings(doc.get("models", ["*"]), "models"),
        interval=parse_duration(doc.get("interval", "5m"), "interval"),
        retry_min=parse_duration(retry.get("min", "30s"), "retry.min"),
        retry_max=parse_duration(retry.get("max", "1h"), "retry.max"),
        timeout_s=parse_duration(doc.get("timeout", "10s"), "timeout").total_seconds(),
        storage_options=_mapping(doc.get("storage_options"), "storage_options"),
        audit_uri=_local(str(audit["uri"]), base) if audit else None,
        audit_actor=str(audit.get("actor", "mlmon-alerts")),
        outbox_max_messages=bounds["max_messages"],
        outbox_max_bytes=bounds["max_bytes"],
    )


def _local(uri: str, base: Path) -> str:
    return uri if "://" in uri or Path(uri).is_absolute() else str(base / uri)


def load_config(path: str | os.PathLike[str]) -> AlertsConfig:
    """Read and check ``alerts.yaml``."""
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the alerts config ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({exc})") from exc
    return parse_config(doc, p.parent, source=str(p))

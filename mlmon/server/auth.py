"""Who is asking, and which models they may see.

Three modes (``auth.mode`` in server.yaml):

- ``none``: everyone is ``local`` and sees every model; the config refuses this mode on any
  address but loopback (:class:`~mlmon.server.config.ServerConfig`).
- ``token``: ``Authorization: Bearer <token>``; the token's SHA-256 is compared, in
  constant time, with every stored hash (the tokens themselves are never stored).
- ``proxy``: a trusted reverse proxy (oauth2-proxy in front of the hospital's identity
  provider) sets the user and groups headers. The headers are believed only on
  connections from ``auth.proxy.trusted`` addresses, or when the request carries the
  shared secret header; otherwise they are ignored and the request is unauthenticated.

A principal sees the models of its groups (``groups:`` in server.yaml; shell-style
patterns); members of ``admin_groups`` see every model. A model the principal may not
see answers 404, exactly like a model that does not exist, so names do not leak.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase

from mlmon.server.config import ServerConfig

__all__ = ["Principal", "Unauthenticated", "authenticate"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
_GROUP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:/+-]{0,127}$")


class Unauthenticated(Exception):
    """No acceptable identity on the request; ``reason`` is safe to show (no secret in it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: name (for the audit log), groups, and the model patterns seen."""

    name: str
    groups: tuple[str, ...]
    patterns: tuple[str, ...]
    admin: bool = False

    def can_see(self, model: str) -> bool:
        return self.admin or any(fnmatchcase(model, p) for p in self.patterns)

    def visible(self, models: list[str]) -> list[str]:
        return [m for m in models if self.can_see(m)]


def _principal(config: ServerConfig, name: str, groups: tuple[str, ...]) -> Principal:
    patterns = tuple(p for g in groups for p in config.groups.get(g, ()))
    admin = any(g in config.admin_groups for g in groups)
    return Principal(name, groups, patterns, admin)


def _token(config: ServerConfig, authorization: str | None) -> Principal:
    if not authorization:
        raise Unauthenticated("a bearer token is required (Authorization: Bearer TOKEN)")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header is not 'Bearer TOKEN'")
    digest = hashlib.sha256(token.strip().encode("utf-8")).hexdigest()
    found = None
    for entry in config.auth.tokens:  # compare with every entry: no early exit to time
        if hmac.compare_digest(digest, entry.sha256):
            found = entry
    if found is None:
        raise Unauthenticated("the bearer token is not known")
    return _principal(config, found.name, found.groups)


def _trusted(config: ServerConfig, client: str | None, secret: str | None) -> bool:
    proxy = config.auth.proxy
    if (
        proxy.secret is not None
        and secret is not None
        and hmac.compare_digest(secret.encode("utf-8"), proxy.secret.encode("utf-8"))
    ):
        return True
    if client is None:
        return False
    try:
        addr = ipaddress.ip_address(client)
    except ValueError:
        return False
    return any(addr in net for net in proxy.trusted)


def _proxy(config: ServerConfig, client: str | None, headers: dict[str, str]) -> Principal:
    proxy = config.auth.proxy
    if not _trusted(config, client, headers.get(proxy.secret_header.lower())):
        raise Unauthenticated(
            "this server accepts identities only from its reverse proxy; sign in through it"
        )
    user = headers.get(proxy.user_header.lower())
    if not user:
        raise Unauthenticated("the proxy sent no user; check the proxy's header settings")
    if not _NAME.match(user):
        raise Unauthenticated("the proxy's user header is not a valid user name")
    raw = headers.get(proxy.groups_header.lower(), "")
    groups = tuple(g.strip() for g in raw.split(",") if g.strip())
    if any(not _GROUP.match(g) for g in groups):
        raise Unauthenticated("the proxy's groups header holds a malformed group name")
    return _principal(config, user, groups)


def authenticate(config: ServerConfig, client: str | None, headers: dict[str, str]) -> Principal:
    """The principal of a request (``headers`` with lower-case names).

    Raises
    ------
    Unauthenticated
        No acceptable identity (its ``reason`` names what is missing, never a secret).
    """
    mode = config.auth.mode
    if mode == "token":
        return _token(config, headers.get("authorization"))
    if mode == "proxy":
        return _proxy(config, client, headers)
    return Principal("local", (), ("*",), admin=True)

"""``mlmon server``: dashboards and a JSON API over the metric lake, with sign-in and
per-team access (docs/server.md).

Its own room: it reads through :mod:`mlmon.analysis` and :mod:`mlmon.reports` and never
imports :mod:`mlmon.edge` (an import-linter contract). Parts:

- :mod:`~mlmon.server.config`: ``server.yaml`` and the flags, one frozen :class:`ServerConfig`;
- :mod:`~mlmon.server.auth`: the sign-in modes (none, token, proxy) and model groups;
- :mod:`~mlmon.server.gate`: one ASGI middleware for every request: identity, rate limit,
  security headers, error pages without stack traces, the audit record;
- :mod:`~mlmon.server.data`: the figures, through ``Lake`` and the report's sections;
- :mod:`~mlmon.server.app`: the pages and ``/api/v1``; :func:`serve` runs uvicorn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlmon.server.app import create_app, serve
    from mlmon.server.config import ServerConfig, load_config

__all__ = ["ServerConfig", "create_app", "load_config", "serve"]

_LAZY = {
    "ServerConfig": "mlmon.server.config",
    "load_config": "mlmon.server.config",
    "create_app": "mlmon.server.app",
    "serve": "mlmon.server.app",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mlmon.server' has no attribute {name!r}")

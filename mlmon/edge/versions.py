"""Which model version answered a probe: reported by the server, declared, or an alias followed.

A golden or latency row carries a ``model_version`` string. In order of precedence:

1. the version the server reports in its answer (OIP ``model_version``, or the
   model metadata's ``versions``), when it passes :func:`check_version`;
2. the version ``edge.yaml`` declares for the endpoint (``endpoint.model_version``);
3. the version a registry alias points to (``endpoint.version_alias``), resolved
   read-only through :mod:`mlmon.registry` by :class:`AliasVersion` and cached for
   ``refresh``; the string written is the registered version's *endpoint version*
   under the attribution rule (its ``mlmon.endpoint_version`` tag, else its number),
   the same string ``mlmon registry check`` looks for in the lake.

Every such string comes from outside (a server, a registry, a file) and is checked
against a closed alphabet and length (:data:`VERSION_PATTERN`) before it can reach
the lake: a reported version that fails is dropped (the declared or alias version
applies), a declared one is a config error, an alias that resolves to one is
treated as unresolved.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlmon.errors import ConfigError

__all__ = ["MAX_VERSION_LENGTH", "VERSION_PATTERN", "AliasVersion", "check_version", "is_version"]

log = logging.getLogger(__name__)

MAX_VERSION_LENGTH = 64
# one definition for the edge and the lake writer (which checks every row's version again)
from mlmon.lake.freetext import VERSION_PATTERN  # noqa: E402


def is_version(value: Any) -> bool:
    """True when ``value`` is a string of the closed version alphabet (:data:`VERSION_PATTERN`).

    Examples
    --------
    >>> is_version("2.1.0+cpu"), is_version("v 1"), is_version("x" * 65)
    (True, False, False)
    """
    return isinstance(value, str) and VERSION_PATTERN.fullmatch(value) is not None


def check_version(value: Any, where: str) -> str:
    """Return ``value`` when it is a valid version string; else raise naming ``where``.

    The message never repeats the value (it came from outside); it says its length
    and what is allowed.

    Raises
    ------
    ConfigError
        ``value`` is not a string of 1-64 characters from ``A-Z a-z 0-9 . _ + -``.

    Examples
    --------
    >>> check_version("3", "edge.yaml: models[0].endpoint.model_version")
    '3'
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if is_version(value):
        return str(value)
    what = f"a {type(value).__name__}" if not isinstance(value, str) else f"{len(value)} characters"
    raise ConfigError(
        f"{where}: not a version string ({what}); use 1-{MAX_VERSION_LENGTH} letters, digits or "
        "'.', '_', '+', '-', starting with a letter or digit, e.g. \"3\" or \"2.1.0\""
    )


@dataclass
class AliasVersion:
    """The endpoint version string a registry alias points to, re-read every ``refresh_s``.

    Parameters
    ----------
    resolve
        Returns the registered version's endpoint version string (or None); raises
        any :class:`mlmon.registry.RegistryError` when the registry cannot answer.
        :meth:`from_registry` builds it from a read-only registry.
    describe
        ``model@alias`` for log lines.
    refresh_s
        How long a resolved value is used before the alias is read again.
    clock
        Monotonic seconds (tests replace it).

    A failed or invalid resolution gives ``None`` (the probe is unattributed) and
    logs a warning, and is tried again after ``min(refresh_s, 30)`` seconds; the last
    good value is never reused after a failure, so a moved alias is not silently
    attributed to the old version.
    """

    resolve: Callable[[], str | None]
    describe: str
    refresh_s: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _value: str | None = field(default=None, init=False, repr=False)
    _at: float | None = field(default=None, init=False, repr=False)
    _ttl: float = field(default=0.0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def from_registry(
        cls,
        registry: Any,
        model: str,
        alias: str,
        *,
        rule: Any = None,
        refresh_s: float = 300.0,
    ) -> AliasVersion:
        """Follow ``alias`` of registered ``model`` in ``registry`` (a read-only ModelRegistry)."""
        from mlmon.registry.base import AttributionRule

        attribution = rule or AttributionRule()

        def resolve() -> str | None:
            return attribution.endpoint_version(registry.alias(model, alias))

        return cls(resolve, f"{model}@{alias}", refresh_s)

    def __call__(self) -> str | None:
        with self._lock:
            now = self.clock()
            if self._at is not None and now - self._at < self._ttl:
                return self._value
            from mlmon.errors import MlmonError

            try:
                value = self.resolve()
            except (MlmonError, OSError) as exc:
                log.warning(
                    "registry alias %s could not be resolved (%s); probes are unattributed",
                    self.describe,
                    type(exc).__name__,
                )
                # retry sooner than a good value is kept, but not on every probe
                self._value, self._at, self._ttl = None, now, min(self.refresh_s, 30.0)
                return None
            if value is not None and not is_version(value):
                log.warning(
                    "registry alias %s resolves to a version string outside the allowed "
                    "alphabet; probes are unattributed",
                    self.describe,
                )
                value = None
            self._value, self._at, self._ttl = value, now, self.refresh_s
            return value

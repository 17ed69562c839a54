"""The one duration parser every config file, flag and API of mlmon uses.

A duration is written as a number and a unit, ``250ms``, ``30s``, ``5m``,
``1.5h`` or ``7d`` (units ``ms``, ``s``, ``m``, ``h``, ``d``; a space between
the number and the unit is allowed), or given as a plain number of seconds
(YAML ``30``) or a :class:`~datetime.timedelta`. Negative durations are
refused everywhere; ``positive=True`` also refuses zero (windows, periods).

This module imports nothing of mlmon but :mod:`mlmon.errors`, so every layer
(profiles to CLI) may use it.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Any

from mlmon.errors import ConfigError

__all__ = ["UNITS", "parse_duration"]

UNITS: dict[str, float] = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
"""Seconds per unit."""

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_HINT = 'use e.g. "30s", "5m", "1h" or "7d" (units ms, s, m, h, d)'


def _shown(value: Any) -> str:
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g}s"
    text = str(value)
    return text if len(text) <= 40 else text[:40] + "..."


def parse_duration(value: Any, where: str = "", *, positive: bool = False) -> timedelta:
    """``"30s"``, ``"5m"``, ``"1h"``, ``"7d"``, ``"250ms"``, a number of seconds or a timedelta.

    Parameters
    ----------
    value
        What the file, flag or request gave.
    where
        The field or flag, named at the start of the error (``"index.every"``,
        ``"--window"``); empty inside a pydantic validator, which names the field itself.
    positive
        Refuse zero as well as negative durations.

    Raises
    ------
    ConfigError
        Not a duration, negative, zero when ``positive``, or too long; the message
        names ``where`` and the fix. It is a ``ValueError``, so pydantic reports it
        under the field's path.
    """
    prefix = f"{where} " if where else ""
    try:
        if isinstance(value, timedelta):
            step = value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f'{prefix}"{_shown(value)}" is not a duration; {_HINT}')
            step = timedelta(seconds=float(value))
        else:
            m = _DURATION.match(str(value))
            if not m:
                raise ConfigError(f'{prefix}"{_shown(value)}" is not a duration; {_HINT}')
            step = timedelta(seconds=float(m.group(1)) * UNITS[m.group(2)])
    except OverflowError as exc:
        raise ConfigError(
            f'{prefix}"{_shown(value)}" is too long a duration; give at most a few years, e.g. "365d"'
        ) from exc
    if step < timedelta(0):
        raise ConfigError(f'{prefix}"{_shown(value)}" is negative; {_HINT}')
    if positive and step == timedelta(0):
        raise ConfigError(f'{prefix}"{_shown(value)}" must be positive; {_HINT}')
    return step

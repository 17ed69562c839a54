"""De-identification primitives shared by the edge and governance.

Request ids, golden-sample ids, study UIDs and every other identifier that
must be countable but never readable become ``HMAC-SHA256(secret, id)`` with a
customer-held secret: stable (the same id maps to the same token, so joins
and distinct counts work) and not reversible without the secret.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from mlmon.errors import ConfigError

__all__ = ["hmac_id", "hmac_ids"]

MIN_SECRET_BYTES = 16


def _check_secret(secret: bytes) -> bytes:
    if not isinstance(secret, bytes | bytearray):
        raise ConfigError(
            "HMAC secret must be bytes; read it from a file or an environment variable"
        )
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"HMAC secret is {len(secret)} bytes; use at least {MIN_SECRET_BYTES} random bytes "
            "(e.g. `openssl rand -hex 32`)"
        )
    return bytes(secret)


def hmac_id(secret: bytes, value: str | bytes) -> str:
    """Return the hex HMAC-SHA256 of one identifier.

    Examples
    --------
    >>> hmac_id(b"0" * 32, "req-1")[:12]
    '3684b3c19cdb'
    """
    key = _check_secret(secret)
    data = value.encode("utf-8") if isinstance(value, str) else value
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def hmac_ids(secret: bytes, values: Iterable[str | bytes | None]) -> list[str | None]:
    """HMAC each identifier; ``None`` stays ``None``."""
    base = hmac.new(_check_secret(secret), digestmod=hashlib.sha256)  # keyed once, copied per id
    out: list[str | None] = []
    for v in values:
        if v is None:
            out.append(None)
            continue
        h = base.copy()
        h.update(v.encode("utf-8") if isinstance(v, str) else v)
        out.append(h.hexdigest())
    return out

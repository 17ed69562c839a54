"""Values from outside that may reach the lake: model versions, checked or replaced by an HMAC.

Every string column the edge writes is either chosen by the operator (model,
feature and class names, methods, ids of the edge's own making), a hash, or
one of a closed set of words the code writes, with one exception: the model
version, which comes from the inference log, the model's answer, its metadata
endpoint, a CloudEvent or a labels file. Anything could be there, a patient's
name included, so a version is kept only when it is a *version string*: 1-64
characters of ``A-Z a-z 0-9 . _ + -`` starting with a letter or digit
(:data:`VERSION_PATTERN`). Any other value is replaced by ``h:`` and the first
16 hex digits of its HMAC-SHA256 under the edge's key (:func:`hash_version`):
two different bad versions stay apart in the lake, and nobody without the key
can test a guess against them. Without a key the value is dropped (null).

:class:`VersionGuard` applies the rule and counts what it replaced; its log
line gives the count and the place, never the value.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
from typing import Any

import polars as pl
import pyarrow as pa

__all__ = [
    "HASHED_VERSION",
    "VERSION_PATTERN",
    "VersionGuard",
    "hash_version",
    "is_lake_version",
]

log = logging.getLogger(__name__)

VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
"""A version string: letters, digits and ``. _ + -``, starting with a letter or digit, 1-64 long."""

HASHED_VERSION = re.compile(r"h:[0-9a-f]{16}")
"""A version replaced by its keyed hash (``:`` is outside the version alphabet: no clash)."""


def is_lake_version(value: Any) -> bool:
    """True for a version string or an ``h:`` hashed one: the only versions the lake takes.

    Examples
    --------
    >>> is_lake_version("2.1.0+cpu"), is_lake_version("h:0123456789abcdef"), is_lake_version("v 1")
    (True, True, False)
    """
    return isinstance(value, str) and (
        VERSION_PATTERN.fullmatch(value) is not None or HASHED_VERSION.fullmatch(value) is not None
    )


def hash_version(value: str, key: bytes) -> str:
    """``h:`` and 16 hex digits of HMAC-SHA256(key, value).

    Examples
    --------
    >>> hash_version("Jane Doe MRN 12345", b"k" * 32)[:2], len(hash_version("x", b"k" * 32))
    ('h:', 18)
    """
    digest = hmac.new(key, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    return "h:" + digest[:16]


class VersionGuard:
    """Keep valid versions, replace the others by their keyed hash (or null without a key).

    Parameters
    ----------
    key
        The edge's HMAC key; ``None`` drops bad versions instead of hashing them.

    Thread-safe; :attr:`replaced` counts the values replaced since it was made.

    Examples
    --------
    >>> guard = VersionGuard(b"k" * 32)
    >>> guard("3"), guard("Jane Doe")[:2], guard(None), guard.replaced
    ('3', 'h:', None, 1)
    """

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key
        self.replaced = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"VersionGuard(keyed={self.key is not None}, replaced={self.replaced})"

    def _replace(self, value: Any) -> str | None:
        if self.key is None:
            return None
        return hash_version(value if isinstance(value, str) else str(value), self.key)

    def __call__(self, value: Any, where: str = "a model version") -> str | None:
        """The value to store for one version (``None`` stays ``None``)."""
        if value is None or is_lake_version(value):
            return value
        self._count(1, where)
        return self._replace(value)

    def _count(self, n: int, where: str) -> None:
        with self._lock:
            self.replaced += n
        log.warning(
            "%d model_version value(s) from %s are not version strings (1-64 of A-Z a-z 0-9 . _ + -); "
            "%s",
            n,
            where,
            "replaced by their HMAC (h:...)" if self.key is not None else "dropped (no HMAC key)",
            extra={"replaced_versions": n, "where": where},
        )

    def _mapping(self, values: list[Any]) -> dict[Any, str | None]:
        return {v: self._replace(v) for v in values if v is not None and not is_lake_version(v)}

    def frame(self, df: pl.DataFrame, where: str, column: str = "model_version") -> pl.DataFrame:
        """``df`` with its ``column`` checked (cast to text first); other columns untouched."""
        if column not in df.columns:
            return df
        col = df.get_column(column)
        if col.dtype != pl.String:
            try:
                col = col.cast(pl.String, strict=False)
            except pl.exceptions.PolarsError:  # nested values are not versions either
                self._count(int(col.is_not_null().sum()), where)
                col = pl.Series(column, [None] * df.height, dtype=pl.String)
            df = df.with_columns(col.alias(column))
        bad = self._mapping(col.unique().to_list())
        if not bad:
            return df
        n = int(col.is_in(list(bad)).sum())
        self._count(n, where)
        return df.with_columns(
            pl.col(column).replace_strict(bad, default=pl.col(column), return_dtype=pl.String)
        )

    def table(self, data: pa.Table, where: str, column: str = "model_version") -> pa.Table:
        """``data`` (Arrow) with its ``column`` checked; other columns untouched."""
        if column not in data.column_names:
            return data
        values = data.column(column).to_pylist()
        bad = self._mapping(list(set(values)))
        if not bad:
            return data
        self._count(sum(v in bad for v in values), where)
        fixed = pa.array([bad.get(v, v) for v in values], pa.string())
        i = data.column_names.index(column)
        return data.set_column(i, data.schema.field(i).with_type(pa.string()), fixed)

"""New instances from a PACS over DICOMweb: QIDO-RS to find them, WADO-RS to fetch them, read-only.

Each read pages through ``GET {root}/instances`` (QIDO-RS, ``limit``/``offset``,
the config's ``query`` filters plus, with ``lookback``, a ``StudyDate`` range),
skips the instances whose HMAC token is already in the committed state and
fetches the others one by one with ``GET {root}/studies/{s}/series/{se}/instances/{i}``
(WADO-RS, ``multipart/related; type="application/dicom"``). The edge only ever
sends GET requests. UIDs live in memory for the request only; the state keeps
HMAC tokens.

A PACS that is down, refuses the credentials (401/403) or answers an error is
counted in ``bad_records`` (``pacs_unreachable``, ``pacs_unauthorized``,
``pacs_error``) and logged with the status code only; the read stops, nothing
is marked read, and the next scheduled read tries again. The source's
``unavailable`` names the reason, and the collector's task fails with it
(``mlmon edge once`` exits 6), never a crash. A TLS handshake that fails
(``https://`` against a plain-HTTP port, or a certificate the CA bundle does
not verify) is ``pacs_tls``: a configuration error, not an outage.

QIDO filter values go on the wire unencoded, with ``?`` (DICOM's
one-character wildcard) in place of every character outside
``[A-Za-z0-9.-_*?]``: some PACS match percent-encoded values literally (Orthanc's DICOMweb plugin 1.7 looked
for ``GE%20MEDICAL%20SYSTEMS`` and found none of the 10 instances of
``GE MEDICAL SYSTEMS``). Where a QIDO answer carries the filtered attribute,
its value is then checked exactly before the instance is fetched.
"""

from __future__ import annotations

import functools
import logging
import re
import ssl
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from mlmon._extras import require
from mlmon.edge.imaging.dicom import Instance, read_instance
from mlmon.edge.imaging.source import ImagingSource, NotMatching, SourceUnavailable
from mlmon.errors import ConfigError

__all__ = ["DicomWebSource", "split_multipart"]

log = logging.getLogger("mlmon.edge.imaging")

_TAGS = {"study": "0020000D", "series": "0020000E", "instance": "00080018"}
_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
_UNSAFE = re.compile(r"[^A-Za-z0-9._\-*?]")


def wire_value(value: str) -> str:
    """A QIDO filter value every PACS reads alike: ``?`` for each character URLs must encode.

    >>> wire_value("GE MEDICAL SYSTEMS")
    'GE?MEDICAL?SYSTEMS'
    """
    return _UNSAFE.sub("?", value)


def _matches(pattern: str, values: list[str]) -> bool:
    """DICOM wildcard matching (``*``, ``?``) of a filter against an attribute's values."""
    rx = re.compile(
        "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.S
    )
    return any(rx.fullmatch(v.strip()) for v in values)


def _tls_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def split_multipart(content_type: str, body: bytes) -> list[bytes]:
    """The bodies of a ``multipart/related`` response (RFC 2046), headers dropped."""
    boundary = None
    for part in content_type.split(";"):
        k, _, v = part.strip().partition("=")
        if k.lower() == "boundary":
            boundary = v.strip().strip('"')
    if not boundary:
        raise ValueError("multipart response without a boundary")
    delim = b"--" + boundary.encode()
    out = []
    for chunk in body.split(delim)[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        _head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        out.append(data[:-2] if data.endswith(b"\r\n") else data)
    return out


def _uid(obj: dict[str, Any], tag: str) -> str | None:
    try:
        v = obj[tag]["Value"][0]
    except (KeyError, IndexError, TypeError):
        return None
    return v if isinstance(v, str) else None


class DicomWebSource(ImagingSource):
    """Instances of a DICOMweb PACS (QIDO-RS + WADO-RS), each read once."""

    kind = "dicomweb"

    def __init__(self, cfg: Any, *args: Any, allow_http: bool = False, **kwargs: Any) -> None:
        super().__init__(cfg, *args, **kwargs)
        web = cfg.dicomweb
        if not allow_http and not web.url.startswith("https://"):
            raise ConfigError(
                f"imaging.dicomweb.url {web.url!r} is not https; production mode accepts TLS "
                "only (set allow_http: true for a loopback test setup)"
            )
        httpx = require("httpx", "edge")
        from mlmon.edge.logs import quiet_client_loggers

        # httpx logs each request's URL at INFO and httpcore more at DEBUG: a WADO-RS URL holds
        # the study, series and instance UIDs. Capped here too, for a collector run as a library.
        quiet_client_loggers()
        # pixel data hardly compresses, and a PACS gzipping 512 KiB per instance on the fly
        # took 80 ms of the 90 ms per instance measured against Orthanc: ask for it plain
        headers = {"Accept-Encoding": "identity"}
        auth = None
        if web.token is not None:
            from mlmon.edge.config import _read_secret

            headers["Authorization"] = (
                "Bearer " + _read_secret(web.token, "imaging.dicomweb.token").decode()
            )
        elif web.username is not None:
            from mlmon.edge.config import _read_secret

            auth = (web.username, _read_secret(web.password, "imaging.dicomweb.password").decode())
        self.root = web.url
        self.unavailable: str | None = None  # why the last read stopped early (a reason code)
        from pydicom.datadict import tag_for_keyword

        self._filter_tags: dict[str, str] = {}
        for k, v in web.query.items():
            tag = tag_for_keyword(k)
            if tag is not None:
                self._filter_tags[f"{int(tag):08X}"] = str(v)
        self.client = httpx.Client(
            headers=headers,
            auth=auth,
            verify=str(web.ca_bundle) if web.ca_bundle else True,
            timeout=web.timeout.total_seconds(),
            follow_redirects=False,
        )
        self._httpx = httpx

    def _get(self, url: str, **kwargs: Any) -> Any:
        """GET, or :class:`SourceUnavailable` after counting why (status only, never content)."""
        try:
            r = self.client.get(url, **kwargs)
        except self._httpx.HTTPError as exc:
            if _tls_failure(exc):
                self.bad_records.skip("pacs_tls", "dicomweb (TLS handshake failed)")
                log.error(
                    "dicomweb TLS handshake failed: a configuration error, not an outage; check "
                    "that imaging.dicomweb.url's port speaks https, or its ca_bundle",
                    extra={"reason": "pacs_tls"},
                )
                self.unavailable = "pacs_tls"
                raise SourceUnavailable("pacs_tls") from exc
            self.bad_records.skip("pacs_unreachable", f"dicomweb ({type(exc).__name__})")
            self.unavailable = "pacs_unreachable"
            raise SourceUnavailable("pacs_unreachable") from exc
        if r.status_code in (401, 403):
            self.bad_records.skip("pacs_unauthorized", f"dicomweb (HTTP {r.status_code})")
            self.unavailable = "pacs_unauthorized"
            raise SourceUnavailable("pacs_unauthorized")
        if r.status_code >= 400:
            self.bad_records.skip("pacs_error", f"dicomweb (HTTP {r.status_code})")
            self.unavailable = "pacs_error"
            raise SourceUnavailable(
                "pacs_error", stop=r.status_code >= 500 and "/instances/" not in url
            )
        return r

    def _query(self) -> dict[str, Any]:
        params: dict[str, Any] = {k: wire_value(str(v)) for k, v in self.cfg.dicomweb.query.items()}
        lookback: timedelta | None = getattr(self.cfg.dicomweb, "lookback", None)
        if lookback:
            params["StudyDate"] = f"{(self.clock() - lookback):%Y%m%d}-"
        params["includefield"] = ",".join([*_TAGS.values(), *self._filter_tags])
        return params

    def _exact(self, obj: dict[str, Any]) -> bool:
        """False if the answer carries a filtered attribute whose value does not match exactly."""
        for tag, pattern in self._filter_tags.items():
            try:
                values = [str(v) for v in obj[tag]["Value"]]
            except (KeyError, TypeError):
                continue  # not in the answer: the PACS's wildcard match stands
            if not _matches(pattern, values):
                return False
        return True

    def _items(self) -> Iterator[tuple[str, Callable[[], Instance]]]:
        size = self.cfg.dicomweb.page_size
        self.unavailable = None
        offset = 0
        n = 0
        while True:
            try:
                query = {**self._query(), "limit": size, "offset": offset}
                # the query string as is: ? and * stay DICOM wildcards (an encoder would escape them)
                qs = "&".join(f"{k}={v}" for k, v in query.items())
                page = self._get(
                    f"{self.root}/instances?{qs}", headers={"Accept": "application/dicom+json"}
                )
            except SourceUnavailable:
                return
            try:
                found = page.json() if page.content else []
            except ValueError:
                self.bad_records.skip("pacs_error", "dicomweb (QIDO answer is not JSON)")
                return
            if not isinstance(found, list):
                self.bad_records.skip("pacs_error", "dicomweb (QIDO answer is not a list)")
                return
            for obj in found:
                uids = {k: _uid(obj, t) for k, t in _TAGS.items()}
                if not all(uids.values()):
                    self.bad_records.skip("pacs_error", "dicomweb (QIDO match without UIDs)")
                    continue
                if not self._exact(obj):
                    continue  # matched the wire's wildcard only
                token = self.token(uids["instance"] or "")
                if self.is_done(token):
                    continue
                n += 1
                yield token, functools.partial(self._load, uids, n)
            if len(found) < size:
                return
            offset += size

    def _header_matches(self, blob: bytes) -> bool:
        """The fetched instance's filtered attributes match the query exactly (the wire had ``?``)."""
        import io

        import pydicom

        try:
            ds = pydicom.dcmread(io.BytesIO(blob), stop_before_pixels=True,
                                 specific_tags=[int(t, 16) for t in self._filter_tags])  # fmt: skip
        except Exception:  # unreadable: read_instance labels it
            return True
        for tag, pattern in self._filter_tags.items():
            elem = ds.get(int(tag, 16))
            if elem is None or elem.value is None:
                return False
            value = elem.value
            many = hasattr(value, "__iter__") and not isinstance(value, str | bytes)
            values = [str(v) for v in value] if many else [str(value)]
            if not _matches(pattern, values):
                return False
        return True

    def _load(self, uids: dict[str, str | None], n: int) -> Instance:
        url = f"{self.root}/studies/{uids['study']}/series/{uids['series']}/instances/{uids['instance']}"
        r = self._get(url, headers={"Accept": _ACCEPT})
        where = f"dicomweb instance #{n}"
        try:
            parts = split_multipart(r.headers.get("content-type", ""), r.content)
        except ValueError:
            parts = [r.content]
        if len(parts) != 1:
            self.bad_records.skip("pacs_error", f"{where} ({len(parts)} parts)")
            return Instance("not_dicom", {"read_status": "not_dicom"})
        if self._filter_tags and not self._header_matches(parts[0]):
            raise NotMatching
        return read_instance(parts[0], self.specs, self.secret, pixels=self.cfg.pixels, where=where)

    def close(self) -> None:
        self.client.close()

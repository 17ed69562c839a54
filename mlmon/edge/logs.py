"""What the edge's log may say about HTTP: never headers, bodies or full URLs of its clients.

The HTTP, S3 and TLS client libraries log every request line, header and
body at DEBUG (``httpcore`` prints the model's response headers, ``botocore``
the signed request, ``urllib3`` the URL with its query) and the URL at INFO
(``httpx``): bearer tokens, presigned URLs and study UIDs would reach the log
with ``-v``. :func:`quiet_client_loggers` keeps only their warnings and
errors, at any verbosity; the command line calls it whenever it sets logging up.
"""

from __future__ import annotations

import logging

__all__ = ["CLIENT_LOGGERS", "ClientLogFilter", "quiet_client_loggers"]

#: Client libraries whose INFO and DEBUG lines carry URLs, headers or bodies (and their children).
CLIENT_LOGGERS = (
    "aiobotocore",
    "aiohttp",
    "boto3",
    "botocore",
    "fsspec",
    "h11",
    "h2",
    "hpack",
    "httpcore",
    "httpx",
    "kubernetes",
    "requests",
    "s3fs",
    "s3transfer",
    "urllib3",
    "uvicorn.access",
)


class ClientLogFilter(logging.Filter):
    """Drop records below WARNING from :data:`CLIENT_LOGGERS` and their child loggers.

    It sits on the handler, so it holds even when a library or a user lowers one
    of those loggers' levels later.

    Examples
    --------
    >>> f = ClientLogFilter()
    >>> f.filter(logging.makeLogRecord({"name": "httpcore.http11", "levelno": logging.DEBUG}))
    False
    >>> f.filter(logging.makeLogRecord({"name": "mlmon.edge", "levelno": logging.DEBUG}))
    True
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        name = record.name
        return not any(name == n or name.startswith(n + ".") for n in CLIENT_LOGGERS)


def quiet_client_loggers(*handlers: logging.Handler) -> None:
    """Cap :data:`CLIENT_LOGGERS` at WARNING and add a :class:`ClientLogFilter` to ``handlers``.

    Examples
    --------
    >>> quiet_client_loggers()
    >>> logging.getLogger("httpcore").level == logging.WARNING
    True
    """
    for name in CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for handler in handlers:
        if not any(isinstance(f, ClientLogFilter) for f in handler.filters):
            handler.addFilter(ClientLogFilter())

"""The one script the pages load: vega, vega-lite and vega-embed bundled by vl-convert with
mlmon's own drawing code (``static/mlmon-snippet.js``), served by the server itself.

Building it takes a few seconds, so it is built once per process (the real server starts
building it in the background at start-up) and kept in memory with its SHA-256 (the
``ETag``).
"""

from __future__ import annotations

import hashlib
import threading
from importlib import resources

from mlmon._extras import require

__all__ = ["script_bundle", "static_text"]

_lock = threading.Lock()
_bundle: tuple[bytes, str] | None = None


def static_text(name: str) -> str:
    """A file of ``mlmon/server/static`` as text."""
    return resources.files("mlmon.server").joinpath("static", name).read_text(encoding="utf-8")


def script_bundle() -> tuple[bytes, str]:
    """``(bundle, sha256 hex)`` of the page script (about 0.9 MB), built on first use."""
    global _bundle
    with _lock:
        if _bundle is None:
            vlc = require("vl_convert", "server")
            body = vlc.javascript_bundle(static_text("mlmon-snippet.js")).encode("utf-8")
            _bundle = (body, hashlib.sha256(body).hexdigest())
        return _bundle

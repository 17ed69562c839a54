"""Reading a secret file (tokens, webhook URLs, passwords) that only its owner may read.

This module imports nothing of mlmon but :mod:`mlmon.errors`, so every layer may use it.
"""

from __future__ import annotations

import stat
from pathlib import Path

from mlmon.errors import ConfigError

__all__ = ["read_private_file"]


def read_private_file(path: Path, where: str) -> str:
    """The text of ``path``, refused when group or others may read it (``chmod 600``).

    Raises
    ------
    ConfigError
        The file cannot be read, or its mode lets group or others in; the message names
        ``where``, the path (never its content) and the fix.
    """
    try:
        st = path.stat()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path} ({exc.strerror}); check the path") from exc
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{where}: {path} is readable by group or others (mode {stat.S_IMODE(st.st_mode):o}); "
            f"run: chmod 600 {path}"
        )
    return path.read_text(encoding="utf-8")

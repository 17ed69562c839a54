"""What mlmon may replace or delete in a folder it writes into: only what it wrote there.

A folder mlmon writes outputs into (a report folder, the demo's lake) carries a
marker, ``.mlmon-owned.json``, naming the entries of that folder (files or
sub-folders) mlmon wrote and the command that wrote them. Before a command
writes, it checks each name it is about to write: absent, or listed in the
marker, is fine; anything else belongs to someone else, and the command refuses
with :class:`~mlmon.errors.ForeignFilesError`, naming the paths (never reading
them) and saying how to choose another place. Names are recorded in the marker
*before* they are written, so a run that stops half-way leaves nothing that a
re-run would mistake for a user's file.

The folder is any :class:`~mlmon.lake.storage.Storage` root: a local folder or
an ``s3://`` prefix.

Examples
--------
>>> import tempfile, pathlib
>>> from mlmon.lake.storage import open_storage
>>> with tempfile.TemporaryDirectory() as d:
...     _ = (pathlib.Path(d) / "notes.txt").write_text("mine")
...     st = open_storage(d)
...     check_free(st, ["report.pdf"], hint="choose another --out folder")
...     record_owned(st, ["report.pdf"], by="mlmon report")
...     sorted(owned_names(st) or ())
['report.pdf']
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mlmon.errors import ForeignFilesError
from mlmon.lake.storage import Storage, open_storage, put_object

__all__ = ["MARKER", "check_claim", "check_free", "claim_folder", "owned_names", "record_owned"]

#: The marker file naming what mlmon wrote in a folder.
MARKER = ".mlmon-owned.json"
_SHOWN = 5  # at most this many names in a message


def _storage(folder: Storage | str | os.PathLike[str]) -> Storage:
    return folder if isinstance(folder, Storage) else open_storage(folder)


def owned_names(folder: Storage | str | os.PathLike[str]) -> frozenset[str] | None:
    """The entry names mlmon recorded in ``folder``'s marker; ``None`` when there is no marker.

    An unreadable marker counts as no marker: then nothing in the folder is
    treated as mlmon's (the safe side).
    """
    st = _storage(folder)
    try:
        with st.fs.open(st.path(MARKER), "rb") as fh:
            doc = json.loads(fh.read())
        names = doc["entries"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(names, list) or not all(_valid(n) for n in names):
        return None  # a name with a "/" or ".." would reach outside the folder: not ours
    return frozenset(names)


def _valid(name: object) -> bool:
    return (
        isinstance(name, str) and bool(name) and "/" not in name and name not in (".", "..", MARKER)
    )


def _exists(st: Storage, name: str) -> bool:
    path = st.path(name)
    if st.is_local:
        return os.path.lexists(path)
    return bool(st.fs.exists(path))


def _names(names: Iterable[str]) -> list[str]:
    out = []
    for n in names:
        if not _valid(n):
            raise ValueError(f"{n!r} is not an entry name of a folder")
        out.append(n)
    return out


def _refuse(where: str, foreign: list[str], hint: str) -> ForeignFilesError:
    shown = ", ".join(foreign[:_SHOWN]) + (
        f" and {len(foreign) - _SHOWN} more" if len(foreign) > _SHOWN else ""
    )
    return ForeignFilesError(
        f"{where} holds {len(foreign)} entr{'y' if len(foreign) == 1 else 'ies'} mlmon did not write "
        f"({shown}); mlmon replaces or deletes only what it wrote there (listed in {MARKER}), "
        f"so nothing was changed. {hint}"
    )


def check_free(
    folder: Storage | str | os.PathLike[str], names: Iterable[str], *, hint: str
) -> None:
    """Refuse unless every name in ``names`` is absent from ``folder`` or recorded as mlmon's.

    Parameters
    ----------
    folder
        The folder (local path, ``file://`` or ``s3://`` URI, or a Storage) to write into.
    names
        Entry names (no ``/``) the caller is about to write.
    hint
        What the user can do instead, e.g. ``"Choose another folder with --out OTHER."``.

    Raises
    ------
    ForeignFilesError
        Naming the folder and the entries in the way.
    """
    st = _storage(folder)
    wanted = _names(names)
    owned = owned_names(st) or frozenset()
    foreign = [n for n in wanted if n not in owned and _exists(st, n)]
    if foreign:
        raise _refuse(st.url(), foreign, hint)


def record_owned(
    folder: Storage | str | os.PathLike[str], names: Iterable[str], *, by: str
) -> None:
    """Add ``names`` to ``folder``'s marker (creating the folder and the marker if needed)."""
    st = _storage(folder)
    _write_marker(st, sorted((owned_names(st) or frozenset()) | set(_names(names))), by)


def _write_marker(st: Storage, entries: list[str], by: str) -> None:
    doc: dict[str, Any] = {
        "written_by": by,
        "entries": entries,
        "note": "mlmon replaces or deletes only the entries listed here; nothing else in this folder",
    }
    put_object(st, st.path(MARKER), (json.dumps(doc, indent=1) + "\n").encode())


def check_claim(folder: str | os.PathLike[str], names: Iterable[str], *, hint: str) -> None:
    """What :func:`claim_folder` checks, changing nothing: call it for every folder first.

    Raises
    ------
    ForeignFilesError
        ``folder`` is a file, or holds entries and no marker, or one of ``names``
        (what the caller will write) is there and not recorded as mlmon's.
    """
    root = Path(folder)
    if root.exists() and not root.is_dir():
        raise ForeignFilesError(f"{root} is a file, not a folder; nothing was changed. {hint}")
    if not root.is_dir():
        return
    if owned_names(str(root)) is None:
        others = sorted(p.name for p in root.iterdir() if p.name != MARKER)
        if others:
            raise _refuse(str(root), others, hint)
    check_free(str(root), names, hint=hint)


def claim_folder(
    folder: str | os.PathLike[str], names: Iterable[str] = (), *, by: str, hint: str
) -> frozenset[str]:
    """Make a local ``folder`` ready for a command that fills it: clear only what mlmon wrote there.

    A missing folder is created with a marker; an empty one gets a marker; one
    with a marker loses the entries the marker lists (what an earlier run wrote)
    and keeps everything else. A non-empty folder without a marker is refused,
    and so is one where an entry of ``names`` is in the way (see :func:`check_claim`).

    Returns
    -------
    frozenset of str
        The entries left in the folder (not mlmon's; they stay untouched).
        Record what the caller then creates with :func:`record_owned`.

    Raises
    ------
    ForeignFilesError
        See :func:`check_claim`; nothing is changed then.
    """
    wanted = _names(names)
    check_claim(folder, wanted, hint=hint)
    root = Path(folder)
    st = open_storage(str(root))
    for name in sorted(owned_names(st) or ()):
        p = root / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
    _write_marker(st, [], by)  # put_object creates the folder; the old entries are gone
    return frozenset(p.name for p in root.iterdir() if p.name != MARKER)

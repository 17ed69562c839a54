"""Command groups of the ``mlmon`` CLI that live outside ``cli.py``.

Each module here defines ``add_commands(sub)``, which adds its sub-parsers to
the top-level ``argparse`` sub-parser action; ``mlmon.cli`` discovers the
modules at start-up. Keep heavy imports inside the command functions so that
``mlmon --help`` stays fast and the edge image (edge extra only) still starts.
Command functions take the parsed ``argparse.Namespace`` and return an exit
code; they raise ``mlmon.errors`` exceptions, which ``mlmon.cli.main`` maps to
exit codes.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil


def add_all(sub: argparse._SubParsersAction) -> None:
    """Call ``add_commands(sub)`` of every module in this package, in name order."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.add_commands(sub)

"""docs/deploy.md names only tests that exist, and every file of deploy/ it names exists."""

from __future__ import annotations

import re

from tests.deploy.conftest import ROOT

DOC = ROOT / "docs" / "deploy.md"


def test_every_test_named_in_docs_deploy_exists():
    text = DOC.read_text()
    named = set(re.findall(r"`(test_\w+)", text))
    assert len(named) >= 20
    defined = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        if any(part.startswith(".") for part in path.relative_to(ROOT).parts):
            continue  # the real servers' environments (tests/servers/*/.venv) are not ours
        defined |= set(re.findall(r"^def (test_\w+)", path.read_text(), re.M))
    assert named <= defined, sorted(named - defined)


def test_every_deploy_path_named_in_docs_deploy_exists():
    text = DOC.read_text()
    paths = set(re.findall(r"`((?:deploy|tests|docs)/[\w./-]+)`", text))
    assert paths
    missing = sorted(p for p in paths if not (ROOT / p.rstrip("/")).exists())
    assert missing == []

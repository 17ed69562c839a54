"""Fixtures of the imaging tests: the HMAC key in the environment, Orthanc PACS servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.edge.imaging.orthanc import Orthanc, start_orthanc

KEY = "imaging-test-hmac-key-0123456789"


@pytest.fixture(autouse=True)
def hmac_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MLMON_HMAC_KEY", KEY)
    return KEY


@pytest.fixture
def orthanc() -> Iterator[Callable[..., Orthanc]]:
    """Start Orthanc PACS instances (``orthanc(auth=True)`` for basic auth); each stopped by pid."""
    started: list[Orthanc] = []

    def start(*, auth: bool = False) -> Orthanc:
        server = start_orthanc(auth=auth)
        started.append(server)
        return server

    yield start
    for s in started:
        s.stop()

"""Fixtures of the imaging tests: the HMAC key in the environment."""

from __future__ import annotations

import pytest

KEY = "imaging-test-hmac-key-0123456789"


@pytest.fixture(autouse=True)
def hmac_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MLMON_HMAC_KEY", KEY)
    return KEY

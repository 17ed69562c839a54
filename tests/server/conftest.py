"""Fixtures of the server tests: one two-model lake per test process (real edge collector,
real demo model server), and apps built on it with chosen configs."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():  # starlette 1.x prefers httpx2 for its test client
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from mlmon.server.app import create_app
from mlmon.server.config import ServerConfig, load_config
from tests.server.lake import build_server_lake
from tests.server.live import LiveServer, live_server_session

#: The lake's data is 2026-10-01..06: a custom range that covers it.
RANGE = "range=custom&start=2026-10-01&end=2026-10-07"
TOKENS = {
    "alice": ("alice-token-0123456789abcdef", ["cardiology"]),
    "ian": ("ian-token-0123456789abcdef", ["icu"]),
    "root": ("root-token-0123456789abcdef", ["mlmon-admins"]),
}


@pytest.fixture(scope="session")
def server_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_server_lake(tmp_path_factory.mktemp("serverlake"))


@pytest.fixture(scope="session")
def live_server(
    tmp_path_factory: pytest.TempPathFactory, server_lake: Path
) -> Iterator[LiveServer]:
    """One real ``mlmon server`` process for the session (tests/server/live.py)."""
    yield from live_server_session(tmp_path_factory, server_lake)


def write_config(folder: Path, lake: Path, auth: dict[str, Any], **extra: Any) -> Path:
    """A server.yaml (and a 0600 tokens file for token mode) in ``folder``."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    if auth.get("mode") == "token":
        tokens = folder / "tokens.yaml"
        tokens.write_text(
            yaml.safe_dump(
                {
                    "tokens": [
                        {"name": n, "sha256": hashlib.sha256(t.encode()).hexdigest(), "groups": g}
                        for n, (t, g) in TOKENS.items()
                    ]
                }
            )
        )
        os.chmod(tokens, 0o600)
        auth = {**auth, "tokens_file": "tokens.yaml"}
    doc = {
        "lake": str(lake),
        "auth": auth,
        "groups": {"cardiology": ["risk-*"], "icu": ["sepsis-model"]},
        "admin_groups": ["mlmon-admins"],
        "audit": {"uri": str(folder / "audit-lake"), "state_dir": str(folder / "state")},
        # no worker processes per test client (seconds each); the live server has them
        "compute": {"processes": 0},
        **extra,
    }
    path = folder / "server.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def make_client(tmp_path: Path, server_lake: Path) -> Iterator[Callable[..., TestClient]]:
    """``make_client(auth={...}, client=("10.0.0.5", 1234), **config)`` -> a started TestClient."""
    opened: list[TestClient] = []

    def make(
        auth: dict[str, Any] | None = None,
        client: tuple[str, int] = ("127.0.0.1", 50000),
        **extra: Any,
    ) -> TestClient:
        path = write_config(
            tmp_path / f"c{len(opened)}", server_lake, auth or {"mode": "none"}, **extra
        )
        config = load_config(path, env={})
        c = TestClient(create_app(config), client=client, raise_server_exceptions=False)
        c.__enter__()
        c.config = config  # type: ignore[attr-defined]
        opened.append(c)
        return c

    yield make
    for c in opened:
        c.__exit__(None, None, None)


def config_of(c: TestClient) -> ServerConfig:
    return c.config  # type: ignore[attr-defined,no-any-return]


__all__ = ["RANGE", "TOKENS", "config_of", "dataclasses", "write_config"]

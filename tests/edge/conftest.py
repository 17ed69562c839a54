"""Fixtures of the edge tests: real model servers (``model_server``) and a throw-away PKI (``pki``)."""

from tests.edge.pki import pki
from tests.edge.servers import model_server

__all__ = ["model_server", "pki"]

"""A read-only adapter over the MLflow tracking server's model-registry REST API (httpx).

Only these requests are ever sent, all ``GET`` under ``/api/2.0/mlflow/``:

=====================================  ==========================================
request                                used by
=====================================  ==========================================
``registered-models/get?name=``        :meth:`MlflowRegistry.model`
``model-versions/search?filter=``      :meth:`MlflowRegistry.versions` (paged)
``model-versions/get?name=&version=``  :meth:`MlflowRegistry.version`
``registered-models/alias?name=&...``  :meth:`MlflowRegistry.alias`
=====================================  ==========================================

A request hook on the client refuses, before it is sent, any method other than
``GET`` except MLflow's read-only search ``POST`` s (:data:`READ_ONLY_POSTS`), so
a future change cannot write to the customer's registry by accident.

Credentials (:class:`RegistryAuth`) follow MLflow's own client: a bearer token
(``MLFLOW_TRACKING_TOKEN``) or basic auth (``MLFLOW_TRACKING_USERNAME`` /
``MLFLOW_TRACKING_PASSWORD``); a CA bundle for a private CA
(``MLFLOW_TRACKING_SERVER_CERT_PATH``).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlmon._extras import require
from mlmon.errors import ConfigError
from mlmon.registry.base import (
    ModelVersion,
    RegisteredModel,
    RegistryAuthError,
    RegistryError,
    RegistryUnreachable,
    UnknownAlias,
    UnknownModel,
    UnknownVersion,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["API", "READ_ONLY_POSTS", "MlflowRegistry", "RegistryAuth"]

API = "/api/2.0/mlflow/"
READ_ONLY_POSTS = frozenset(
    f"{API}{p}"
    for p in ("registered-models/search", "model-versions/search", "runs/search", "runs/get")
)
"""MLflow endpoints that take a POST body but only read; the only POSTs this adapter allows."""
PAGE_SIZE = 200


def _read_secret_file(path: str | Path, what: str) -> str:
    try:
        value = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read secret file {path}: {exc.strerror}") from exc
    if not value:
        raise ConfigError(f"{what}: secret file {path} is empty")
    return value


@dataclass(frozen=True)
class RegistryAuth:
    """Credentials for the registry: a bearer token, or a user name and password (never both).

    Secrets are hidden from ``repr``. :meth:`from_env` reads MLflow's own variables.

    Examples
    --------
    >>> RegistryAuth(token="t0ken")
    RegistryAuth(username=None, ca_bundle=None)
    """

    token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_bundle: Path | None = None

    def __post_init__(self) -> None:
        if self.token and (self.username or self.password):
            raise ConfigError(
                "registry auth: give a bearer token or a user name and password, not both"
            )
        if bool(self.username) != bool(self.password):
            raise ConfigError(
                "registry auth: basic auth needs both a user name and a password "
                "(MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD)"
            )
        if self.ca_bundle is not None and not Path(self.ca_bundle).is_file():
            raise ConfigError(
                f"registry CA bundle {self.ca_bundle} does not exist; give a PEM file of the "
                "CA certificates that sign the registry's server certificate"
            )

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        token_env: str | None = None,
        token_file: str | Path | None = None,
        password_file: str | Path | None = None,
        ca_bundle: str | Path | None = None,
    ) -> RegistryAuth:
        """Credentials from a secret reference or MLflow's variables (in that order).

        ``token_env`` / ``token_file`` name where the bearer token lives; without
        them ``MLFLOW_TRACKING_TOKEN``, then ``MLFLOW_TRACKING_USERNAME`` with
        ``MLFLOW_TRACKING_PASSWORD`` (or ``password_file``) are used.
        ``ca_bundle`` defaults to ``MLFLOW_TRACKING_SERVER_CERT_PATH``.
        """
        env = os.environ if env is None else env
        ca = ca_bundle or env.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None
        ca_path = Path(ca) if ca else None
        if token_env is not None:
            token = env.get(token_env)
            if not token:
                raise ConfigError(
                    f"registry token: environment variable {token_env} is not set; export the "
                    "token there"
                )
            return cls(token=token, ca_bundle=ca_path)
        if token_file is not None:
            return cls(token=_read_secret_file(token_file, "registry token"), ca_bundle=ca_path)
        if env.get("MLFLOW_TRACKING_TOKEN"):
            return cls(token=env["MLFLOW_TRACKING_TOKEN"], ca_bundle=ca_path)
        user = env.get("MLFLOW_TRACKING_USERNAME") or None
        password = (
            _read_secret_file(password_file, "registry password")
            if password_file is not None
            else env.get("MLFLOW_TRACKING_PASSWORD") or None
        )
        return cls(username=user, password=password if user else None, ca_bundle=ca_path)


def _utc_ms(ms: Any) -> datetime | None:
    if ms in (None, ""):
        return None
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC)


def _tags(items: Any) -> dict[str, str]:
    return {t["key"]: t.get("value", "") for t in items or []}


class MlflowRegistry:
    """Read-only MLflow model registry over REST.

    Parameters
    ----------
    url
        The tracking server, e.g. ``https://mlflow.internal`` (``http://`` only when
        ``allow_http`` or on 127.0.0.1 / localhost).
    auth
        Credentials and CA bundle; default :meth:`RegistryAuth.from_env`.
    timeout_s
        Timeout of each request, seconds.
    transport
        An httpx transport (tests).

    Raises
    ------
    MissingExtraError
        httpx is not installed (``pip install 'mlmon[registry]'``).
    ConfigError
        The URL is not http(s), or plain http to a non-loopback host without ``allow_http``.

    Examples
    --------
    >>> reg = MlflowRegistry("http://127.0.0.1:5000")  # doctest: +SKIP
    >>> [v.version for v in reg.versions("risk")]  # doctest: +SKIP
    ['2', '1']
    """

    def __init__(
        self,
        url: str,
        *,
        auth: RegistryAuth | None = None,
        timeout_s: float = 10.0,
        allow_http: bool = False,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        httpx = require("httpx", "registry")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"registry URL {url!r} is not an http(s) URL; pass e.g. https://mlflow.internal"
            )
        host = httpx.URL(url).host
        if url.startswith("http://") and not allow_http and host not in ("127.0.0.1", "localhost"):
            raise ConfigError(
                f"registry URL {url} is plain http; use https (with --registry-ca-bundle for a "
                "private CA), or allow http explicitly for a trusted network"
            )
        self.url = url.rstrip("/")
        self.auth = RegistryAuth.from_env() if auth is None else auth
        verify: ssl.SSLContext | bool = True
        if self.auth.ca_bundle is not None:
            verify = ssl.create_default_context(cafile=str(self.auth.ca_bundle))
        headers = {"Accept": "application/json"}
        basic = None
        if self.auth.token:
            headers["Authorization"] = f"Bearer {self.auth.token}"
        elif self.auth.username and self.auth.password:
            basic = httpx.BasicAuth(self.auth.username, self.auth.password)
        self._client = httpx.Client(
            base_url=self.url,
            headers=headers,
            auth=basic,
            verify=verify,
            timeout=timeout_s,
            follow_redirects=False,
            transport=transport,
            event_hooks={"request": [self._refuse_writes]},
        )

    def __repr__(self) -> str:
        return f"MlflowRegistry({self.url!r}, auth={self.auth!r})"

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    def __enter__(self) -> MlflowRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _refuse_writes(request: httpx.Request) -> None:
        path = request.url.path
        if request.method == "GET" or (request.method == "POST" and path in READ_ONLY_POSTS):
            return
        raise RegistryError(
            f"refusing to send {request.method} {path} to the model registry: mlmon is "
            "read-only there (GET and MLflow's search POSTs only)"
        )

    # -- transport and errors -----------------------------------------------------------
    def _get(self, endpoint: str, params: dict[str, Any], what: str) -> dict[str, Any]:
        import httpx

        try:
            resp = self._client.get(API + endpoint, params=params)
        except httpx.TimeoutException as exc:
            raise RegistryUnreachable(
                f"model registry {self.url} did not answer within the timeout ({what}); check "
                "that the server is up and reachable from here"
            ) from exc
        except httpx.HTTPError as exc:
            tls = "SSL" in str(exc) or "certificate" in str(exc).lower()
            hint = (
                "the TLS handshake failed; pass --registry-ca-bundle with the CA that signs the "
                "server (or set MLFLOW_TRACKING_SERVER_CERT_PATH)"
                if tls
                else "check --registry URL, that the tracking server is running, and the network"
            )
            raise RegistryUnreachable(
                f"cannot reach the model registry at {self.url} ({what}): {exc}; {hint}"
            ) from exc
        body: Any
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code in (401, 403):
            cause = (
                "no or wrong credentials: set MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME "
                "and MLFLOW_TRACKING_PASSWORD (or --registry-token-env / --registry-token-file)"
                if resp.status_code == 401
                else "the credentials are valid but not allowed to read it; ask the registry "
                "admin for READ permission on the model"
            )
            raise RegistryAuthError(
                f"model registry {self.url} answered {resp.status_code} for {what}: {cause}"
            )
        code = body.get("error_code") if isinstance(body, dict) else None
        message = body.get("message") if isinstance(body, dict) else resp.text[:200]
        if resp.status_code == 404 and code == "RESOURCE_DOES_NOT_EXIST":
            return {"__missing__": message}
        if resp.status_code == 400 and code == "INVALID_PARAMETER_VALUE":
            return {"__invalid__": message}
        if not resp.is_success:
            raise RegistryError(
                f"model registry {self.url} answered {resp.status_code} for {what}: {message}"
            )
        if not isinstance(body, dict):
            raise RegistryError(
                f"{self.url}{API}{endpoint} answered {resp.status_code} with a body that is not "
                "a JSON object; is --registry the MLflow tracking server's base URL?"
            )
        return body

    # -- parsing --------------------------------------------------------------------------
    @staticmethod
    def _version(d: dict[str, Any], aliases: Mapping[str, str]) -> ModelVersion:
        version = str(d["version"])
        return ModelVersion(
            model=d["name"],
            version=version,
            run_id=d.get("run_id") or None,
            status=d.get("status"),
            created_at=_utc_ms(d.get("creation_timestamp")),
            aliases=tuple(sorted(a for a, v in aliases.items() if v == version)),
            tags=_tags(d.get("tags")),
            source=d.get("source"),
            stage=d.get("current_stage") or None,
        )

    # -- the ModelRegistry protocol ----------------------------------------------------------
    def model(self, name: str) -> RegisteredModel:
        """The registered model with its aliases and tags.

        Raises
        ------
        UnknownModel
            There is no registered model ``name``.
        """
        body = self._get("registered-models/get", {"name": name}, f"model {name!r}")
        if "__missing__" in body or "__invalid__" in body:
            raise UnknownModel(
                f"model {name!r} is not registered in {self.url}; check --model (the registered "
                "model name, which may differ from the lake's model= name)"
            )
        rm = body["registered_model"]
        return RegisteredModel(
            name=rm["name"],
            created_at=_utc_ms(rm.get("creation_timestamp")),
            aliases={a["alias"]: str(a["version"]) for a in rm.get("aliases") or []},
            tags=_tags(rm.get("tags")),
            description=rm.get("description") or None,
        )

    def versions(self, name: str) -> list[ModelVersion]:
        """All versions of ``name``, newest (highest number) first, with their aliases.

        Raises
        ------
        UnknownModel
            There is no registered model ``name``.
        """
        aliases = self.model(name).aliases
        quoted = name.replace("\\", "\\\\").replace("'", "\\'")
        params: dict[str, Any] = {"filter": f"name='{quoted}'", "max_results": PAGE_SIZE}
        out: list[ModelVersion] = []
        while True:
            body = self._get("model-versions/search", params, f"versions of model {name!r}")
            if "__missing__" in body or "__invalid__" in body:
                raise RegistryError(
                    f"model registry {self.url} refused to list versions of {name!r}: "
                    f"{body.get('__missing__') or body.get('__invalid__')}"
                )
            out.extend(self._version(d, aliases) for d in body.get("model_versions") or [])
            token = body.get("next_page_token")
            if not token:
                break
            params = {**params, "page_token": token}
        return sorted(out, key=lambda v: (len(v.version), v.version), reverse=True)

    def version(self, name: str, version: str) -> ModelVersion:
        """One version of ``name``.

        Raises
        ------
        UnknownModel, UnknownVersion
            No such model, or the model has no version ``version``.
        """
        aliases = self.model(name).aliases  # first: an unknown model is UnknownModel, not 403
        what = f"model {name!r} version {version!r}"
        body = self._get("model-versions/get", {"name": name, "version": str(version)}, what)
        if "__missing__" in body or "__invalid__" in body:
            known = ", ".join(v.version for v in self.versions(name)) or "none"
            raise UnknownVersion(
                f"model {name!r} has no version {version!r} in {self.url} (registered versions: "
                f"{known}; aliases: {', '.join(sorted(aliases)) or 'none'}); check --version"
            )
        return self._version(body["model_version"], aliases)

    def alias(self, name: str, alias: str) -> ModelVersion:
        """The version the alias ``alias`` of ``name`` points to.

        Raises
        ------
        UnknownModel, UnknownAlias
            No such model, or the model has no alias ``alias``.
        """
        aliases = self.model(name).aliases  # first: an unknown model is UnknownModel, not 403
        what = f"alias {alias!r} of model {name!r}"
        body = self._get("registered-models/alias", {"name": name, "alias": alias}, what)
        if "__missing__" in body or "__invalid__" in body:
            have = ", ".join(f"{a} -> {v}" for a, v in sorted(aliases.items())) or "none"
            raise UnknownAlias(
                f"model {name!r} has no alias {alias!r} in {self.url} (aliases: {have}); set the "
                "alias in the registry or pass --baseline-version"
            )
        return self._version(body["model_version"], aliases)

"""The read-only model-registry interface, its value objects, errors and the attribution rule.

Exception tree (all under :class:`mlmon.errors.MlmonError`)::

    RegistryError                          the registry could not answer the question
    ├── RegistryUnreachable(ConnectionError)   no answer: URL, network, TLS
    ├── RegistryAuthError(PermissionError)     401/403: credentials missing or not allowed
    └── RegistryLookupError(LookupError)       the registry does not know the name
        ├── UnknownModel
        ├── UnknownVersion
        └── UnknownAlias

Attribution (:class:`AttributionRule`): lake rows carry the version string the
endpoint *reports* (``model_version``). The rule says which registered version
that string stands for:

==========  ===================================================================
``match``   a registered version's endpoint version string is ...
==========  ===================================================================
``auto``    its tag ``tag`` (default ``mlmon.endpoint_version``) when the version
            has that tag, else its registered version number (the default)
``tag``     its tag ``tag`` only (versions without the tag match nothing)
``version`` its registered version number (``"3"``)
``run_id``  the id of the run that produced it
==========  ===================================================================

Two registered versions with the same endpoint version string make the mapping
ambiguous; that is an error naming both, never a silent pick.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from mlmon.errors import ConfigError, DuplicateNameError, MlmonError, UnknownNameError

__all__ = [
    "DEFAULT_ENDPOINT_TAG",
    "MATCH_RULES",
    "REGISTRIES",
    "AttributionRule",
    "ModelRegistry",
    "ModelVersion",
    "RegisteredModel",
    "RegistryAuthError",
    "RegistryError",
    "RegistryLookupError",
    "RegistryUnreachable",
    "UnknownAlias",
    "UnknownModel",
    "UnknownVersion",
    "attribute",
    "open_registry",
    "register_registry",
]

DEFAULT_ENDPOINT_TAG = "mlmon.endpoint_version"
Match = Literal["auto", "tag", "version", "run_id"]
MATCH_RULES: tuple[Match, ...] = ("auto", "tag", "version", "run_id")


class RegistryError(MlmonError):
    """The model registry could not answer; the message names the registry and the fix."""


class RegistryUnreachable(RegistryError, ConnectionError):
    """The registry did not answer (wrong URL, server down, network, TLS)."""


class RegistryAuthError(RegistryError, PermissionError):
    """The registry refused the request (401 no or wrong credentials, 403 not allowed)."""


class RegistryLookupError(RegistryError, LookupError):
    """The registry does not know a model, version or alias."""


class UnknownModel(RegistryLookupError):
    """No registered model of that name."""


class UnknownVersion(RegistryLookupError):
    """The model has no such version."""


class UnknownAlias(RegistryLookupError):
    """The model has no such alias."""


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model (read from the registry, never written).

    ``created_at`` is UTC; ``aliases`` are the model's aliases pointing at this version;
    ``stage`` is MLflow's deprecated stage (``None``, ``Staging``, ``Production``,
    ``Archived``) where the registry still reports one.
    """

    model: str
    version: str
    run_id: str | None = None
    status: str | None = None
    created_at: datetime | None = None
    aliases: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    source: str | None = None
    stage: str | None = None


@dataclass(frozen=True)
class RegisteredModel:
    """A registered model: its aliases (alias -> version) and tags."""

    name: str
    created_at: datetime | None = None
    aliases: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    description: str | None = None


@runtime_checkable
class ModelRegistry(Protocol):
    """Read-only access to a model registry.

    Implementations send only read requests; none creates, updates or deletes anything.
    """

    url: str

    def model(self, name: str) -> RegisteredModel:
        """The registered model; :class:`UnknownModel` when there is none."""
        ...

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of the model, newest first, with its aliases."""
        ...

    def version(self, name: str, version: str) -> ModelVersion:
        """One version; :class:`UnknownVersion` when the model has no such version."""
        ...

    def alias(self, name: str, alias: str) -> ModelVersion:
        """The version an alias points to; :class:`UnknownAlias` when there is no such alias."""
        ...


@dataclass(frozen=True)
class AttributionRule:
    """How an endpoint-reported version string maps to a registered version (module docstring).

    Examples
    --------
    >>> v = ModelVersion("risk", "3", run_id="abc", tags={"mlmon.endpoint_version": "2.1.0"})
    >>> AttributionRule().endpoint_version(v), AttributionRule("version").endpoint_version(v)
    ('2.1.0', '3')
    """

    match: Match = "auto"
    tag: str = DEFAULT_ENDPOINT_TAG

    def __post_init__(self) -> None:
        if self.match not in MATCH_RULES:
            raise ConfigError(
                f"attribution match {self.match!r} is not a rule; use one of "
                f"{', '.join(MATCH_RULES)}"
            )
        if not self.tag:
            raise ConfigError("attribution tag must be a non-empty tag name")

    def endpoint_version(self, v: ModelVersion) -> str | None:
        """The version string an endpoint serving ``v`` reports, under this rule."""
        if self.match == "version":
            return v.version
        if self.match == "run_id":
            return v.run_id
        tagged = v.tags.get(self.tag)
        if self.match == "tag" or tagged:
            return tagged or None
        return v.version

    def table(self, versions: Iterable[ModelVersion]) -> dict[str, ModelVersion]:
        """Endpoint version string -> registered version; refuses ambiguous mappings.

        Raises
        ------
        RegistryError
            Two registered versions map to the same endpoint version string.
        """
        out: dict[str, ModelVersion] = {}
        for v in versions:
            key = self.endpoint_version(v)
            if key is None:
                continue
            if key in out:
                other = out[key]
                raise RegistryError(
                    f"model {v.model!r}: registered versions {other.version} and {v.version} both "
                    f"map to endpoint version {key!r} under match={self.match!r}; give each "
                    f"version a distinct {self.tag!r} tag or choose another --match rule"
                )
            out[key] = v
        return out


def attribute(
    versions: Iterable[ModelVersion], reported: str | None, rule: AttributionRule | None = None
) -> ModelVersion | None:
    """The registered version behind an endpoint-reported version string, or None.

    Examples
    --------
    >>> vs = [ModelVersion("risk", "1", tags={"mlmon.endpoint_version": "1.0"}),
    ...       ModelVersion("risk", "2", tags={"mlmon.endpoint_version": "2.0"})]
    >>> attribute(vs, "2.0").version
    '2'
    >>> attribute(vs, "9.9") is None
    True
    """
    if reported is None:
        return None
    return (rule or AttributionRule()).table(versions).get(reported)


# -- the adapter table -----------------------------------------------------------------
RegistryFactory = Callable[..., ModelRegistry]


def _mlflow(url: str, **options: object) -> ModelRegistry:
    from mlmon.registry.mlflow_rest import MlflowRegistry

    return MlflowRegistry(url, **options)  # type: ignore[arg-type]


REGISTRIES: dict[str, RegistryFactory] = {"mlflow": _mlflow}
"""Registry adapters by name; add one with :func:`register_registry`."""


def register_registry(name: str, factory: RegistryFactory, *, replace: bool = False) -> None:
    """Add a registry adapter ``factory(url, **options) -> ModelRegistry`` under ``name``."""
    if name in REGISTRIES and not replace:
        raise DuplicateNameError(
            f"registry adapter {name!r} is already registered; pass replace=True to replace it"
        )
    REGISTRIES[name] = factory


def open_registry(url: str, kind: str = "mlflow", **options: object) -> ModelRegistry:
    """Open a registry by adapter name (``mlflow``) and URL.

    Raises
    ------
    UnknownNameError
        ``kind`` is not a registered adapter (the message lists them).
    """
    try:
        factory = REGISTRIES[kind]
    except KeyError as exc:
        raise UnknownNameError(
            f"registry kind {kind!r} is not known; registered: {', '.join(sorted(REGISTRIES))}"
        ) from exc
    return factory(url, **options)

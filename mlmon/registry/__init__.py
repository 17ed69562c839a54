"""Read-only model registries: which registered version, alias and run a lake row belongs to.

:class:`ModelRegistry` is the interface; :class:`~mlmon.registry.mlflow_rest.MlflowRegistry`
reads MLflow's model registry over REST (GET only) and needs the ``registry`` extra
(httpx). Lake rows carry the version string the endpoint reports; an
:class:`AttributionRule` maps it to a registered version, and
:func:`registry_versions_frame` / :func:`register_registry_versions` make the
mapping joinable in ``lake.sql`` as the view ``registry_versions``.
:func:`compare_golden` is the gate behind ``mlmon registry check``.
"""

from __future__ import annotations

from mlmon.registry.base import (
    DEFAULT_ENDPOINT_TAG,
    MATCH_RULES,
    REGISTRIES,
    AttributionRule,
    ModelRegistry,
    ModelVersion,
    RegisteredModel,
    RegistryAuthError,
    RegistryError,
    RegistryLookupError,
    RegistryUnreachable,
    UnknownAlias,
    UnknownModel,
    UnknownVersion,
    attribute,
    open_registry,
    register_registry,
)
from mlmon.registry.check import CheckResult, CheckTolerance, compare_golden
from mlmon.registry.frames import (
    lake_versions,
    register_registry_versions,
    registry_versions_frame,
    versions_table,
)
from mlmon.registry.mlflow_rest import MlflowRegistry, RegistryAuth

__all__ = [
    "DEFAULT_ENDPOINT_TAG",
    "MATCH_RULES",
    "REGISTRIES",
    "AttributionRule",
    "CheckResult",
    "CheckTolerance",
    "MlflowRegistry",
    "ModelRegistry",
    "ModelVersion",
    "RegisteredModel",
    "RegistryAuth",
    "RegistryAuthError",
    "RegistryError",
    "RegistryLookupError",
    "RegistryUnreachable",
    "UnknownAlias",
    "UnknownModel",
    "UnknownVersion",
    "attribute",
    "compare_golden",
    "lake_versions",
    "open_registry",
    "register_registry",
    "register_registry_versions",
    "registry_versions_frame",
    "versions_table",
]

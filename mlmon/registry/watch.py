"""Watch a model registry (read-only) for new versions and alias or stage moves.

:func:`snapshot` reads what the registry holds of one model (its versions with
stage and status, and its aliases); :func:`diff` turns two snapshots into
:class:`RegistryEvent` s; :class:`WatchState` keeps the last snapshot of each
model in a JSON file, so a change is reported once however often the watch
polls (``mlmon registry watch``, a CronJob or ``--loop``).

=================  ==================================================================
event              when
=================  ==================================================================
``version_seen``   the first poll of a model: every version it already has (no test)
``version_created``  a version that was not there at the previous poll
``version_deleted``  a version that is gone
``alias_set``      an alias that did not exist now points at a version
``alias_moved``    an alias points at another version than before
``alias_removed``  an alias is gone
``stage_changed``  a version's (deprecated MLflow) stage changed
``status_changed`` a version's registration status changed (e.g. PENDING -> READY)
=================  ==================================================================

Order of a poll: read every model, write the events to the lake, *then* save the
state. A crash in between reports the same changes again at the next poll, with
the same ``event_id`` (at least once; ``SELECT DISTINCT event_id`` is exact).

:func:`events_frame` makes the ``registry_events`` rows: registry metadata
(names, versions, aliases, stages) passes a
:class:`~mlmon.lake.freetext.VersionGuard` first, so only version strings, or their
keyed hash, reach the lake.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from mlmon.errors import ConfigError
from mlmon.lake.freetext import VersionGuard
from mlmon.registry.base import AttributionRule, ModelRegistry

__all__ = [
    "EVENTS",
    "TEST_TRIGGERS",
    "RegistryEvent",
    "Snapshot",
    "WatchState",
    "diff",
    "events_frame",
    "snapshot",
    "to_test",
]

EVENTS = (
    "version_seen",
    "version_created",
    "version_deleted",
    "alias_set",
    "alias_moved",
    "alias_removed",
    "stage_changed",
    "status_changed",
)
"""Every ``event`` the watch writes (a closed set)."""

TEST_TRIGGERS = ("version_created", "alias_set", "alias_moved")
"""Events that start a replication test of the version (alias events: candidate aliases only)."""

STATE_FORMAT = 1


@dataclass(frozen=True)
class Snapshot:
    """What the registry holds of one model: ``versions`` (version -> stage, status,
    created_at) and ``aliases`` (alias -> version)."""

    versions: Mapping[str, Mapping[str, str | None]] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "versions": {v: dict(d) for v, d in self.versions.items()},
            "aliases": dict(self.aliases),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Snapshot:
        return cls(
            {str(v): dict(d) for v, d in (data.get("versions") or {}).items()},
            {str(a): str(v) for a, v in (data.get("aliases") or {}).items()},
        )


@dataclass(frozen=True)
class RegistryEvent:
    """One change in the registry; ``version`` is the registry's version it concerns."""

    model: str
    event: str
    version: str | None
    previous_version: str | None = None
    alias: str | None = None
    stage: str | None = None
    previous_stage: str | None = None
    status: str | None = None
    created_at: datetime | None = None

    def event_id(self, registry_url: str) -> str:
        """The same change has the same id in every run (a content hash)."""
        key = json.dumps(
            [registry_url, self.model, self.event, self.version, self.previous_version,
             self.alias, self.stage, self.previous_stage, self.status],
        )  # fmt: skip
        return hashlib.sha256(key.encode()).hexdigest()[:32]


def snapshot(registry: ModelRegistry, model: str) -> tuple[Snapshot, dict[str, Any]]:
    """Read one model's versions and aliases; also returns the versions by number.

    Raises
    ------
    UnknownModel, RegistryUnreachable, RegistryAuthError
        From the registry (read-only requests only).
    """
    versions = registry.versions(model)
    aliases = {a: v.version for v in versions for a in v.aliases}
    snap = Snapshot(
        {
            v.version: {
                "stage": v.stage,
                "status": v.status,
                "created_at": v.created_at.isoformat() if v.created_at else None,
            }
            for v in versions
        },
        aliases,
    )
    return snap, {v.version: v for v in versions}


def _created(d: Mapping[str, str | None]) -> datetime | None:
    value = d.get("created_at")
    return datetime.fromisoformat(value) if value else None


def _version_key(v: str) -> tuple[int, str]:
    return (len(v), v)


def diff(model: str, before: Snapshot | None, after: Snapshot) -> list[RegistryEvent]:
    """The changes from ``before`` (``None``: never polled) to ``after``, in a stable order.

    Examples
    --------
    >>> a = Snapshot({"1": {"stage": None, "status": "READY"}}, {"champion": "1"})
    >>> b = Snapshot({"1": {"stage": None, "status": "READY"}, "2": {"stage": None,
    ...               "status": "READY"}}, {"champion": "1", "challenger": "2"})
    >>> [(e.event, e.version, e.alias) for e in diff("risk", a, b)]
    [('version_created', '2', None), ('alias_set', '2', 'challenger')]
    >>> diff("risk", b, b)
    []
    """
    out: list[RegistryEvent] = []
    if before is None:
        for v in sorted(after.versions, key=_version_key):
            d = after.versions[v]
            out.append(RegistryEvent(model, "version_seen", v, stage=d.get("stage"),
                                     status=d.get("status"), created_at=_created(d)))  # fmt: skip
        for alias in sorted(after.aliases):
            out.append(RegistryEvent(model, "alias_set", after.aliases[alias], alias=alias))
        return out
    for v in sorted(set(after.versions) | set(before.versions), key=_version_key):
        new, old = after.versions.get(v), before.versions.get(v)
        if new is not None and old is None:
            out.append(RegistryEvent(model, "version_created", v, stage=new.get("stage"),
                                     status=new.get("status"), created_at=_created(new)))  # fmt: skip
        elif new is None and old is not None:
            out.append(RegistryEvent(model, "version_deleted", v, stage=old.get("stage"),
                                     status=old.get("status"), created_at=_created(old)))  # fmt: skip
        elif new is not None and old is not None:
            if new.get("stage") != old.get("stage"):
                out.append(RegistryEvent(
                    model, "stage_changed", v, stage=new.get("stage"),
                    previous_stage=old.get("stage"), status=new.get("status"),
                    created_at=_created(new),
                ))  # fmt: skip
            if new.get("status") != old.get("status"):
                out.append(RegistryEvent(model, "status_changed", v, stage=new.get("stage"),
                                         status=new.get("status"), created_at=_created(new)))  # fmt: skip
    for alias in sorted(set(after.aliases) | set(before.aliases)):
        new_v, old_v = after.aliases.get(alias), before.aliases.get(alias)
        if new_v is not None and old_v is None:
            out.append(RegistryEvent(model, "alias_set", new_v, alias=alias))
        elif new_v is None and old_v is not None:
            out.append(RegistryEvent(model, "alias_removed", None, old_v, alias=alias))
        elif new_v != old_v:
            out.append(RegistryEvent(model, "alias_moved", new_v, old_v, alias=alias))
    return out


def to_test(
    events: Iterable[RegistryEvent],
    *,
    champion: str | None,
    candidate_aliases: Sequence[str] = (),
) -> list[tuple[str, str]]:
    """``(version, trigger)`` to test: new versions and versions a candidate alias moved to.

    The champion itself (``champion``: its version now) is never tested against itself;
    each version once, by its first trigger.

    Examples
    --------
    >>> evs = [RegistryEvent("m", "version_created", "3"),
    ...        RegistryEvent("m", "alias_moved", "3", "2", alias="challenger"),
    ...        RegistryEvent("m", "alias_set", "1", alias="champion")]
    >>> to_test(evs, champion="1", candidate_aliases=["challenger"])
    [('3', 'version_created')]
    """
    out: dict[str, str] = {}
    for e in events:
        if e.event not in TEST_TRIGGERS or e.version is None or e.version == champion:
            continue
        if e.alias is not None and e.alias not in candidate_aliases:
            continue
        out.setdefault(e.version, e.event)
    return list(out.items())


EVENT_COLUMNS: dict[str, pl.DataType] = {
    "model_version": pl.String(),
    "window_start": pl.Datetime("us", "UTC"),
    "window_end": pl.Datetime("us", "UTC"),
    "collector_id": pl.String(),
    "observed_at": pl.Datetime("us", "UTC"),
    "event_id": pl.String(),
    "registered_model": pl.String(),
    "event": pl.String(),
    "registered_version": pl.String(),
    "previous_version": pl.String(),
    "alias": pl.String(),
    "stage": pl.String(),
    "previous_stage": pl.String(),
    "status": pl.String(),
    "created_at": pl.Datetime("us", "UTC"),
}
#: Columns of registry metadata that pass the version guard before they are written.
GUARDED = ("registered_model", "registered_version", "previous_version", "alias", "stage",
           "previous_stage", "status", "model_version")  # fmt: skip


def guard_frame(df: pl.DataFrame, guard: VersionGuard, where: str) -> pl.DataFrame:
    """Every registry-metadata column of ``df`` through ``guard`` (version strings or hashes)."""
    for column in GUARDED:
        df = guard.frame(df, where, column=column)
    return df


def events_frame(
    events: Sequence[RegistryEvent],
    *,
    registry_url: str,
    observed_at: datetime,
    collector_id: str,
    endpoint_versions: Mapping[str, str | None] | None = None,
    guard: VersionGuard | None = None,
) -> pl.DataFrame:
    """The ``registry_events`` rows of ``events`` (registry metadata guarded).

    ``endpoint_versions`` maps a registered version to the version string an endpoint
    serving it reports (:meth:`AttributionRule.endpoint_version`): the ``model_version``
    column.
    """
    ev = endpoint_versions or {}
    rows = [
        {
            "model_version": ev.get(e.version) if e.version is not None else None,
            "window_start": observed_at,
            "window_end": observed_at,
            "collector_id": collector_id,
            "observed_at": observed_at,
            "event_id": e.event_id(registry_url),
            "registered_model": e.model,
            "event": e.event,
            "registered_version": e.version,
            "previous_version": e.previous_version,
            "alias": e.alias,
            "stage": e.stage,
            "previous_stage": e.previous_stage,
            "status": e.status,
            "created_at": e.created_at,
        }
        for e in events
    ]
    df = pl.DataFrame(rows, schema=EVENT_COLUMNS)
    return guard_frame(df, guard or VersionGuard(), "the registry's metadata")


def endpoint_versions(versions: Mapping[str, Any], rule: AttributionRule) -> dict[str, str | None]:
    """Registered version -> the endpoint version string under ``rule``."""
    return {v: rule.endpoint_version(mv) for v, mv in versions.items()}


class WatchState:
    """What the watch saw of each model of one registry: a JSON file on its own volume.

    The file is replaced atomically (written beside, then renamed), so a crash leaves
    the old or the new state, never half of one.
    """

    def __init__(self, path: str | os.PathLike[str], registry_url: str) -> None:
        self.path = Path(path)
        self.registry_url = registry_url
        self._models: dict[str, Snapshot] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    f"watch state {self.path} is not readable JSON ({exc}); move it away to "
                    "start over (the next poll then reports every version as version_seen)"
                ) from exc
            if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
                raise ConfigError(
                    f"watch state {self.path} is not a format-{STATE_FORMAT} watch state; "
                    "move it away to start over"
                )
            if data.get("registry") != registry_url:
                raise ConfigError(
                    f"watch state {self.path} belongs to registry {data.get('registry')!r}, "
                    f"not {registry_url!r}; give each registry its own state_dir"
                )
            self._models = {m: Snapshot.from_json(s) for m, s in data["models"].items()}

    def get(self, model: str) -> Snapshot | None:
        return self._models.get(model)

    def set(self, model: str, snap: Snapshot) -> None:
        self._models[model] = snap

    def save(self) -> None:
        """Write the state file atomically (mode 0600)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = {
            "format": STATE_FORMAT,
            "registry": self.registry_url,
            "models": {m: s.to_json() for m, s in sorted(self._models.items())},
        }
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".watch-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(body, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

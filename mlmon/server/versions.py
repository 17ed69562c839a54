"""The version page: each replication test, champion and candidate side by side (issue 22).

``/models/{model}/versions`` lists the model's ``version_checks`` rows (newest first)
with the champion's and the candidate's figures in adjacent columns, and the
registry changes the watch recorded (``registry_events``). Both tables are read
from the lake, like every other page; nothing is asked of the registry here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["registry_aliases", "registry_events", "version_checks", "versions_route"]

MAX_ROWS = 200


def version_checks(lake: Any, model: str) -> list[dict[str, Any]]:
    """The model's replication tests, newest first (at most :data:`MAX_ROWS`)."""
    if model not in lake.models("version_checks"):
        return []
    rows = lake.read("version_checks", model=model)
    return rows.sort("checked_at", descending=True).head(MAX_ROWS).to_dicts()


def registry_events(lake: Any, model: str) -> list[dict[str, Any]]:
    """The registry changes the watch saw for the model, newest first, each once."""
    if model not in lake.models("registry_events"):
        return []
    rows = lake.read("registry_events", model=model).unique("event_id", keep="first")
    return rows.sort(["observed_at", "event"], descending=[True, False]).head(MAX_ROWS).to_dicts()


def registry_aliases(lake: Any, model: str) -> list[dict[str, Any]]:
    """The registry's versions of the model and the aliases pointing at each, as the watch last
    saw them: its recorded changes replayed in order (``registry_events``, read-only; nothing
    is asked of the registry). Newest version first; [] when no watch recorded this model.

    Each entry: ``version`` (the registry's), ``model_version`` (what its endpoint reports),
    ``aliases`` (sorted), ``stage``, ``status`` and ``seen`` (the last change seen for it).
    """
    if model not in lake.models("registry_events"):
        return []
    rows = lake.read("registry_events", model=model).unique("event_id", keep="first")
    versions: dict[str, dict[str, Any]] = {}
    aliases: dict[str, str] = {}
    for e in rows.sort("observed_at", maintain_order=True).iter_rows(named=True):
        v, kind = e.get("registered_version"), e["event"]
        if kind == "alias_removed":
            aliases.pop(e.get("alias") or "", None)
            continue
        if not v:
            continue
        if kind == "version_deleted":
            versions.pop(v, None)
            aliases = {a: w for a, w in aliases.items() if w != v}
            continue
        entry = versions.setdefault(v, {"version": v, "model_version": None, "stage": None,
                                        "status": None, "seen": None})  # fmt: skip
        for k in ("model_version", "stage", "status"):
            entry[k] = e.get(k) or entry[k]
        entry["seen"] = e["observed_at"]
        if kind in ("alias_set", "alias_moved") and e.get("alias"):
            aliases[e["alias"]] = v

    def order(v: str) -> tuple[int, Any]:
        return (0, -int(v)) if v.isdigit() else (1, v)  # MLflow's versions are numbers

    return [
        {**versions[v], "aliases": sorted(a for a, w in aliases.items() if w == v)}
        for v in sorted(versions, key=order)
    ]


def versions_route(data: Any, model_of: Callable[[Any], str], page: Callable[..., Any]) -> Any:
    """The Starlette route of the version page (registered by :func:`mlmon.server.app.create_app`)."""
    from starlette.routing import Route

    def versions_page(request: Any) -> Any:
        model = model_of(request)
        checks = data._cached(("version_checks", model), lambda: version_checks(data.lake, model))
        events = data._cached(("registry_events", model), lambda: registry_events(data.lake, model))
        return page("versions.html", request, None, model=model, checks=checks, events=events)

    return Route("/models/{model}/versions", versions_page)

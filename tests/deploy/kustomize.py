"""A small kustomize renderer for the tests: only the features deploy/k8s uses, the rest refused.

No kustomize or kubectl binary can be installed from the package registries here, so the tests
render the overlays with this. It supports, and refuses anything else with a
:class:`KustomizeError` naming the file and the feature:

* ``resources``: YAML files (one or more documents) and directories holding a
  ``kustomization.yaml`` (rendered recursively); no URLs;
* ``patches`` with ``path`` and an optional ``target`` (``group``, ``version``,
  ``kind``, ``name``, ``namespace``):

  - a file holding one mapping is a strategic-merge patch, aimed at the resource
    named by its own ``apiVersion``/``kind``/``metadata`` (no ``target``);
    maps merge key by key, ``null`` deletes a key, the lists kustomize merges by
    key for the fields used here (``containers``, ``initContainers``, ``env``,
    ``volumes``: ``name``; ``volumeMounts``: ``mountPath``; ``ports``:
    ``containerPort``) merge by that key, other lists are replaced; ``$patch``
    and other directives are refused;
  - a file holding a list is a JSON6902 patch (``add``, ``replace``, ``remove``)
    and needs a ``target`` matching exactly one resource.

Like kustomize, a resource id (group, kind, namespace, name) may appear only once.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

__all__ = ["KustomizeError", "render"]

_KUSTOMIZATION_KEYS = {"apiVersion", "kind", "resources", "patches"}
_PATCH_KEYS = {"path", "target"}
_TARGET_KEYS = {"group", "version", "kind", "name", "namespace"}
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
}


class KustomizeError(ValueError):
    """A kustomization uses something this renderer does not implement, or is wrong."""


def _group_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


def _rid(doc: dict[str, Any]) -> tuple[str, str, str, str]:
    group, _ = _group_version(doc.get("apiVersion", ""))
    meta = doc.get("metadata") or {}
    return group, doc.get("kind", ""), meta.get("namespace", ""), meta.get("name", "")


def _load_docs(path: Path) -> list[dict[str, Any]]:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except (OSError, yaml.YAMLError) as exc:
        raise KustomizeError(f"{path}: cannot read YAML: {exc}") from exc
    for i, d in enumerate(docs):
        if not isinstance(d, dict) or not {"apiVersion", "kind", "metadata"} <= d.keys():
            raise KustomizeError(f"{path}: document {i} is not a Kubernetes object")
    return docs


def render(directory: str | Path) -> list[dict[str, Any]]:
    """Render the kustomization in ``directory`` into a list of objects (resource order)."""
    directory = Path(directory)
    kfile = directory / "kustomization.yaml"
    if not kfile.is_file():
        raise KustomizeError(f"{directory}: no kustomization.yaml")
    spec = yaml.safe_load(kfile.read_text()) or {}
    unknown = sorted(set(spec) - _KUSTOMIZATION_KEYS)
    if unknown:
        raise KustomizeError(
            f"{kfile}: unsupported field(s) {', '.join(unknown)}; this renderer implements "
            f"only {', '.join(sorted(_KUSTOMIZATION_KEYS))}"
        )
    out: list[dict[str, Any]] = []
    for entry in spec.get("resources") or []:
        if not isinstance(entry, str) or "://" in entry or entry.startswith(("github.com", "git@")):
            raise KustomizeError(f"{kfile}: resource {entry!r} is not a local file or folder")
        path = (directory / entry).resolve()
        if path.is_dir():
            out.extend(render(path))
        elif path.is_file():
            out.extend(_load_docs(path))
        else:
            raise KustomizeError(f"{kfile}: resource {entry!r} does not exist")
    seen: dict[tuple[str, str, str, str], int] = {}
    for i, doc in enumerate(out):
        rid = _rid(doc)
        if rid in seen:
            raise KustomizeError(f"{kfile}: resource {rid} appears twice")
        seen[rid] = i
    for n, entry in enumerate(spec.get("patches") or []):
        where = f"{kfile}: patches[{n}]"
        if not isinstance(entry, dict) or set(entry) - _PATCH_KEYS or "path" not in entry:
            raise KustomizeError(
                f"{where}: only {{path: FILE, target: {{...}}}} patches are implemented, got {entry!r}"
            )
        target = entry.get("target")
        if target is not None and (not isinstance(target, dict) or set(target) - _TARGET_KEYS):
            raise KustomizeError(
                f"{where}: target selects by {', '.join(sorted(_TARGET_KEYS))} only, got {target!r}"
            )
        patch_file = directory / entry["path"]
        try:
            patch_docs = [d for d in yaml.safe_load_all(patch_file.read_text()) if d is not None]
        except (OSError, yaml.YAMLError) as exc:
            raise KustomizeError(f"{where}: cannot read {patch_file}: {exc}") from exc
        if len(patch_docs) != 1:
            raise KustomizeError(f"{where}: {patch_file} must hold exactly one patch document")
        patch = patch_docs[0]
        if isinstance(patch, list):
            if target is None:
                raise KustomizeError(f"{where}: a JSON6902 patch ({patch_file}) needs a target")
            i = _select(out, target, where)
            out[i] = _json6902(out[i], patch, f"{patch_file}")
        elif isinstance(patch, dict):
            if target is not None:
                raise KustomizeError(
                    f"{where}: strategic-merge patches here name their target in the patch "
                    "itself; remove `target`"
                )
            group, kind, ns, name = _rid(patch)
            i = _select(out, {"group": group, "kind": kind, "namespace": ns, "name": name}, where)
            out[i] = _merge(out[i], patch, str(patch_file), "")
        else:
            raise KustomizeError(f"{where}: {patch_file} is neither a mapping nor a list")
    return out


def _select(docs: list[dict[str, Any]], target: dict[str, Any], where: str) -> int:
    hits = []
    for i, doc in enumerate(docs):
        group, version = _group_version(doc.get("apiVersion", ""))
        meta = doc.get("metadata") or {}
        have = {"group": group, "version": version, "kind": doc.get("kind"),
                "name": meta.get("name"), "namespace": meta.get("namespace", "")}  # fmt: skip
        if all(have[k] == v for k, v in target.items() if not (k == "namespace" and v == "")):
            hits.append(i)
    if len(hits) != 1:
        raise KustomizeError(f"{where}: target {target} matches {len(hits)} resources, expected 1")
    return hits[0]


def _merge(base: Any, patch: Any, source: str, path: str) -> Any:
    if isinstance(patch, dict):
        directives = sorted(k for k in patch if isinstance(k, str) and k.startswith("$"))
        if directives:
            raise KustomizeError(
                f"{source}: {path or '/'}: patch directive(s) {directives} are not implemented"
            )
        if not isinstance(base, dict):
            return copy.deepcopy(patch)
        out = dict(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = _merge_field(out[key], value, key, source, f"{path}/{key}")
            else:
                out[key] = copy.deepcopy(value)
        return out
    return copy.deepcopy(patch)


def _merge_field(base: Any, patch: Any, key: str, source: str, path: str) -> Any:
    if isinstance(patch, list) and isinstance(base, list) and key in _MERGE_KEYS:
        mkey = _MERGE_KEYS[key]
        out = [copy.deepcopy(b) for b in base]
        for item in patch:
            if not isinstance(item, dict) or mkey not in item:
                raise KustomizeError(f"{source}: {path}: every item needs its merge key {mkey!r}")
            for j, existing in enumerate(out):
                if isinstance(existing, dict) and existing.get(mkey) == item[mkey]:
                    out[j] = _merge(existing, item, source, f"{path}[{mkey}={item[mkey]}]")
                    break
            else:
                out.append(copy.deepcopy(item))
        return out
    return _merge(base, patch, source, path)


def _pointer(path: str, source: str) -> list[str]:
    if not isinstance(path, str) or not path.startswith("/"):
        raise KustomizeError(f"{source}: JSON pointer {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _json6902(doc: dict[str, Any], ops: list[Any], source: str) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    for n, op in enumerate(ops):
        where = f"{source}: op {n}"
        if not isinstance(op, dict) or op.get("op") not in {"add", "replace", "remove"}:
            raise KustomizeError(
                f"{where}: only add, replace and remove are implemented, got {op!r}"
            )
        parts = _pointer(op.get("path"), where)
        parent: Any = out
        for p in parts[:-1]:
            parent = _step(parent, p, where, op["path"])
        last = parts[-1]
        if op["op"] != "remove" and "value" not in op:
            raise KustomizeError(f"{where}: {op['op']} needs a value")
        value = copy.deepcopy(op.get("value"))
        if isinstance(parent, list):
            if op["op"] == "add" and last == "-":
                parent.append(value)
                continue
            idx = _index(parent, last, where, op["path"], allow_end=op["op"] == "add")
            if op["op"] == "add":
                parent.insert(idx, value)
            elif op["op"] == "replace":
                parent[idx] = value
            else:
                del parent[idx]
        elif isinstance(parent, dict):
            if op["op"] != "add" and last not in parent:
                raise KustomizeError(f"{where}: {op['path']} does not exist ({op['op']})")
            if op["op"] == "remove":
                del parent[last]
            else:
                parent[last] = value
        else:
            raise KustomizeError(f"{where}: {op['path']}: parent is not a map or list")
    return out


def _index(seq: list[Any], part: str, where: str, path: str, allow_end: bool = False) -> int:
    if not part.isdigit():
        raise KustomizeError(f"{where}: {path}: {part!r} is not a list index")
    idx = int(part)
    if idx > len(seq) or (idx == len(seq) and not allow_end):
        raise KustomizeError(f"{where}: {path}: index {idx} is out of range (length {len(seq)})")
    return idx


def _step(node: Any, part: str, where: str, path: str) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, where, path)]
    if isinstance(node, dict):
        if part not in node:
            raise KustomizeError(f"{where}: {path}: {part!r} does not exist")
        return node[part]
    raise KustomizeError(f"{where}: {path}: cannot descend into a {type(node).__name__}")

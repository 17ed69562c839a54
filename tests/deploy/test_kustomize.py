"""The test-side kustomize renderer: what deploy/k8s uses works, anything else is refused."""

from __future__ import annotations

import pytest
import yaml

from tests.deploy.conftest import SERVER_TARGETS, TARGETS
from tests.deploy.helm import kubectl_kustomize
from tests.deploy.kustomize import KustomizeError, render

DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "n"},
          "spec": {"replicas": 1, "template": {"spec": {"containers": [
              {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
              {"name": "b", "image": "b:1"}]}}}}  # fmt: skip


def _write(folder, name, data):
    (folder / name).write_text(data if isinstance(data, str) else yaml.safe_dump(data))


def _base(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    _write(base, "d.yaml", DEPLOY)
    _write(base, "kustomization.yaml", {"resources": ["d.yaml"]})
    over = tmp_path / "over"
    over.mkdir()
    return over


def _overlay(over, patches, extra=None):
    _write(
        over, "kustomization.yaml", {"resources": ["../base"], "patches": patches, **(extra or {})}
    )
    return render(over)


def test_strategic_merge_merges_containers_and_env_by_name(tmp_path):
    over = _base(tmp_path)
    _write(over, "p.yaml", {"apiVersion": "apps/v1", "kind": "Deployment",
                            "metadata": {"name": "d", "namespace": "n"},
                            "spec": {"replicas": None, "template": {"spec": {"containers": [
                                {"name": "a", "env": [{"name": "X", "value": "2"},
                                                      {"name": "Y", "value": "3"}]}]}}}})  # fmt: skip
    [d] = _overlay(over, [{"path": "p.yaml"}])
    a, b = d["spec"]["template"]["spec"]["containers"]
    assert a == {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "2"}, {"name": "Y", "value": "3"}]}  # fmt: skip
    assert b == {"name": "b", "image": "b:1"}
    assert "replicas" not in d["spec"]  # null deletes


def test_json6902_add_replace_remove(tmp_path):
    over = _base(tmp_path)
    _write(over, "p.yaml", [
        {"op": "replace", "path": "/spec/template/spec/containers/1/image", "value": "b:2"},
        {"op": "add", "path": "/metadata/labels", "value": {"x": "y"}},
        {"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "c"}},
        {"op": "remove", "path": "/spec/replicas"},
    ])  # fmt: skip
    [d] = _overlay(over, [{"path": "p.yaml", "target": {"kind": "Deployment", "name": "d"}}])
    assert [c.get("image") for c in d["spec"]["template"]["spec"]["containers"]] == ["a:1", "b:2", None]  # fmt: skip
    assert d["metadata"]["labels"] == {"x": "y"} and "replicas" not in d["spec"]


@pytest.mark.parametrize(
    ("patches", "files", "extra", "message"),
    [
        ([], {}, {"namePrefix": "x-"}, "unsupported field.*namePrefix"),
        ([{"patch": "{}"}], {}, None, "only {path: FILE"),
        ([{"path": "p.yaml"}], {"p.yaml": [{"op": "replace", "path": "/x", "value": 1}]}, None,
         "needs a target"),
        ([{"path": "p.yaml", "target": {"kind": "Deployment", "labelSelector": "a=b"}}],
         {"p.yaml": []}, None, "target selects by"),
        ([{"path": "p.yaml", "target": {"kind": "Deployment"}}],
         {"p.yaml": [{"op": "move", "from": "/a", "path": "/b"}]}, None, "only add, replace and remove"),
        ([{"path": "p.yaml", "target": {"kind": "Deployment"}}],
         {"p.yaml": [{"op": "replace", "path": "/spec/template/spec/containers/5/image", "value": 1}]},
         None, "index 5 is out of range"),
        ([{"path": "p.yaml", "target": {"kind": "Deployment"}}],
         {"p.yaml": [{"op": "replace", "path": "/spec/nope", "value": 1}]}, None, "does not exist"),
        ([{"path": "p.yaml", "target": {"kind": "Service"}}],
         {"p.yaml": [{"op": "remove", "path": "/spec"}]}, None, "matches 0 resources"),
        ([{"path": "p.yaml"}], {"p.yaml": {"apiVersion": "apps/v1", "kind": "Deployment",
          "metadata": {"name": "d", "namespace": "n"}, "spec": {"$patch": "replace"}}}, None,
         r"directive\(s\) \['\$patch'\]"),
        ([{"path": "p.yaml"}], {"p.yaml": {"apiVersion": "apps/v1", "kind": "Deployment",
          "metadata": {"name": "other", "namespace": "n"}}}, None, "matches 0 resources"),
    ],
)  # fmt: skip
def test_unsupported_or_wrong_patches_are_refused_loudly(tmp_path, patches, files, extra, message):
    over = _base(tmp_path)
    for name, data in files.items():
        _write(over, name, data)
    with pytest.raises(KustomizeError, match=message):
        _overlay(over, patches, extra)


def test_duplicate_resources_and_remote_bases_are_refused(tmp_path):
    over = _base(tmp_path)
    _write(over, "d.yaml", DEPLOY)
    _write(over, "kustomization.yaml", {"resources": ["../base", "d.yaml"]})
    with pytest.raises(KustomizeError, match="appears twice"):
        render(over)
    _write(over, "kustomization.yaml", {"resources": ["https://github.com/x/y//base"]})
    with pytest.raises(KustomizeError, match="not a local file"):
        render(over)


def _same_meaning(doc: dict) -> dict:
    """Differences between two correct renderings that mean nothing: the order of a container's
    environment (kustomize puts a patch's variables first), and runs of white space in CEL
    expressions (go-yaml keeps an extra line break where a folded scalar's line is more indented;
    CEL ignores white space)."""
    import copy
    import re

    d = copy.deepcopy(doc)

    def walk(x):
        if isinstance(x, dict):
            for k, v in list(x.items()):
                if k == "env" and isinstance(v, list):
                    x[k] = sorted(v, key=lambda e: e["name"])
                elif k == "expression" and isinstance(v, str):
                    x[k] = re.sub(r"\s+", " ", v)
                walk(x[k])
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(d)
    return d


@pytest.mark.parametrize("target", sorted({**TARGETS, **SERVER_TARGETS}))
def test_the_test_side_renderer_agrees_with_kubectl_kustomize(target):
    """The renderer the manifest tests use gives the objects real kustomize (kubectl v1.31.9's
    built-in kustomize v5.4.2) gives, for the edge's and the server's base and overlays."""
    path = {**TARGETS, **SERVER_TARGETS}[target]

    def keyed(docs):
        return {(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]):
                _same_meaning(d) for d in docs}  # fmt: skip

    ours, real = keyed(render(path)), keyed(kubectl_kustomize(path))
    assert sorted(ours) == sorted(real)
    for key, doc in real.items():
        assert ours[key] == doc, (target, key)

"""The Terraform example, checked without a terraform binary: parsed with python-hcl2.

It must load the very policy files of deploy/iam/ (the ones tests/s3server.py loads into the moto
IAM server and tests/lake/test_storage_s3.py exercises), fill exactly their placeholders with
declared variables, and name the role the cloud overlay's ServiceAccount assumes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import hcl2

from mlmon.governance.retention import DEFAULT_DAYS, lifecycle_configuration
from tests.deploy.conftest import ROOT, one
from tests.s3server import POLICY_FILES

TF = ROOT / "deploy" / "terraform"
IAM = ROOT / "deploy" / "iam"


def _unquote(s):
    return s[1:-1] if isinstance(s, str) and len(s) >= 2 and s[0] == s[-1] == '"' else s


def _load():
    parsed = {}
    for name in ("main.tf", "variables.tf", "outputs.tf"):
        with (TF / name).open() as fh:
            parsed[name] = hcl2.load(fh)
    return parsed


def _strings(node):
    if isinstance(node, dict):
        for k, v in node.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)
    elif isinstance(node, str):
        yield node


def _blocks(parsed, kind):
    """{(type, name): body} of ``resource``/``data`` blocks, names unquoted."""
    out = {}
    for block in parsed["main.tf"].get(kind, []):
        for rtype, named in block.items():
            for rname, body in named.items():
                out[(_unquote(rtype), _unquote(rname))] = body
    return out


def test_the_terraform_files_parse_and_use_only_declared_variables():
    parsed = _load()
    declared = {_unquote(k) for block in parsed["variables.tf"]["variable"] for k in block}
    used = set()
    for name in ("main.tf", "outputs.tf", "variables.tf"):
        for s in _strings(parsed[name]):
            used |= set(re.findall(r"\bvar\.(\w+)", s))
    assert used <= declared, used - declared
    assert declared <= used, f"declared but unused: {declared - used}"


def test_every_policy_loaded_is_one_of_deploy_iam_and_all_three_are():
    parsed = _load()
    [local_block] = parsed["main.tf"]["locals"]
    iam_dir = _unquote(local_block["iam_dir"]).replace("${path.module}", str(TF))
    loads = []
    for s in _strings(parsed["main.tf"]):
        for fn, path, args in re.findall(r'\b(templatefile|file)\(\\?"([^"\\]+)\\?"\s*(?:,\s*([\w.]+))?\)', s):  # fmt: skip
            loads.append((fn, path.replace("${local.iam_dir}", iam_dir), args))
    files = {Path(p).resolve() for _, p, _ in loads}
    # the moto users' three, and the workflow role's own writes (its reads are reader.json)
    assert files == {(IAM / f).resolve() for f in (*POLICY_FILES.values(), "workflow.json")}
    assert {fn for fn, _, _ in loads} == {"templatefile"} and {a for *_, a in loads} == {"local.policy_vars"}  # fmt: skip
    policy_vars = {k: v for k, v in local_block["policy_vars"].items() if not k.startswith("__")}
    for f in files:
        text = f.read_text()
        placeholders = set(re.findall(r"\$\{(\w+)\}", text))
        # templatefile fails on a missing variable and would interpolate any other ${...} or %{...}
        assert placeholders == set(policy_vars), (f.name, placeholders)
        assert "%{" not in text
        filled = text
        for k in policy_vars:
            filled = filled.replace("${" + k + "}", f"sample-{k}")
        json.loads(filled)
    assert {k: v.strip('"') for k, v in policy_vars.items()} == {
        "bucket": "${var.bucket}", "prefix": "${var.prefix}", "kms_key_arn": "${var.kms_key_arn}"}  # fmt: skip


def test_each_role_gets_its_own_policy_and_the_edge_role_trusts_only_the_edge_sa(rendered):
    parsed = _load()
    res = _blocks(parsed, "resource")
    data = _blocks(parsed, "data")
    pairs = {}
    for (rtype, _name), body in res.items():
        if rtype == "aws_iam_role_policy_attachment":
            role = re.search(r"aws_iam_role\.(\w+)\.name", body["role"]).group(1)
            policy = re.search(r"aws_iam_policy\.(\w+)\.arn", body["policy_arn"]).group(1)
            pairs.setdefault(role, set()).add(policy)
    # the workflow role (alerts delivery, registry watch): the reader's policy plus its own writes
    assert pairs == {"edge_writer": {"edge_writer"}, "reader": {"reader"},
                     "maintenance": {"maintenance"}, "workflow": {"reader", "workflow"}}  # fmt: skip
    files = {n: re.search(r'/([\w-]+\.json)', res[("aws_iam_policy", n)]["policy"]).group(1)
             for n in set().union(*pairs.values())}  # fmt: skip
    assert files == {"edge_writer": "edge-writer.json", "reader": "reader.json",
                     "maintenance": "maintenance.json", "workflow": "workflow.json"}  # fmt: skip
    edge_name = _unquote(res[("aws_iam_role", "edge_writer")]["name"])
    sa = one(rendered["cloud"], "ServiceAccount", "mlmon-edge")
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(
        f":role/{edge_name}"
    )
    [statement] = data[("aws_iam_policy_document", "edge_trust")]["statement"]
    subs = [c for c in statement["condition"] if c["variable"].strip('"').endswith(":sub")]
    assert [s["values"] for s in subs] == [
        ['"system:serviceaccount:${var.edge_namespace}:${var.edge_service_account}"']]  # fmt: skip
    variables = {_unquote(k): v for b in parsed["variables.tf"]["variable"] for k, v in b.items()}
    base_sa = one(rendered["base"], "ServiceAccount", "mlmon-edge")["metadata"]
    assert _unquote(variables["edge_namespace"]["default"]) == base_sa["namespace"]
    assert _unquote(variables["edge_service_account"]["default"]) == base_sa["name"]


def test_bucket_is_sse_kms_with_lifecycle_matching_mlmon_retention_defaults():
    parsed = _load()
    res = _blocks(parsed, "resource")
    [rule] = res[("aws_s3_bucket_server_side_encryption_configuration", "lake")]["rule"]
    [default] = rule["apply_server_side_encryption_by_default"]
    assert _unquote(default["sse_algorithm"]) == "aws:kms"
    assert default["kms_master_key_id"] == "${var.kms_key_arn}"
    assert ("aws_s3_bucket_versioning", "lake") not in res  # deletes must delete
    rules = {_unquote(r["id"]): r for r in res[("aws_s3_bucket_lifecycle_configuration", "lake")]["rule"]}  # fmt: skip
    variables = {_unquote(k): v for b in parsed["variables.tf"]["variable"] for k, v in b.items()}
    assert variables["metrics_retention_days"]["default"] == DEFAULT_DAYS["profiles"]
    # exactly `mlmon retention lifecycle`'s prefixes expire; no rule for audit/ (only `mlmon
    # retention apply`, behind a signed checkpoint) nor v1/references/ (kept while in use)
    [local_block] = parsed["main.tf"]["locals"]
    expiring = [_unquote(p) for p in local_block["expiring_prefixes"]]
    assert expiring == [r["Filter"]["Prefix"] for r in lifecycle_configuration("")["Rules"]]
    assert not any(p.startswith(("audit/", "v1/references/")) for p in expiring)
    [dyn] = [b['"rule"'] for b in res[("aws_s3_bucket_lifecycle_configuration", "lake")]["dynamic"]]
    content = dyn["content"][0]
    assert dyn["for_each"] == "${local.expiring_prefixes}"
    assert _unquote(content["filter"][0]["prefix"]) == "${var.prefix}/${rule.value}"
    assert set(rules) == {"abort-incomplete-uploads"}  # the only static rule
    assert content["expiration"][0]["days"] == "${var.metrics_retention_days}"
    assert "audit_retention_days" not in variables
    public = res[("aws_s3_bucket_public_access_block", "lake")]
    assert all(public[k] is True for k in ("block_public_acls", "block_public_policy",
                                           "ignore_public_acls", "restrict_public_buckets"))  # fmt: skip


def _holds(condition: str, prefix: str) -> bool:
    """Evaluate a ``var.prefix`` validation condition (the few HCL forms it uses) for ``prefix``."""
    expr = _unquote(condition)[2:-1] if condition.startswith('"${') else condition[2:-1]
    expr = re.sub(r'(start|end)swith\(var\.prefix, ("[^"]*")\)', r"p.\1swith(\2)", expr)
    expr = expr.replace("&&", " and ").replace("||", " or ").replace("var.prefix", "p")
    expr = re.sub(r"!(?!=)", " not ", expr)
    return bool(eval(expr, {"__builtins__": {}}, {"p": prefix}))  # our own file


def test_the_prefix_variable_refuses_the_bucket_root_and_stray_slashes():
    """An empty prefix would render `${bucket}//*` in the policies and `/v1/...` filters."""
    variables = _load()["variables.tf"]["variable"]
    (prefix,) = [body for block in variables for name, body in block.items() if "prefix" in name]
    conditions = [v["condition"] for v in prefix["validation"]]
    for value, ok in [("lake", True), ("prod/lake", True), ("", False), ("/lake", False),
                      ("lake/", False)]:  # fmt: skip
        assert all(_holds(c, value) for c in conditions) is ok, value

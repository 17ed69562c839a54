"""Test-side models of two Kubernetes API-server decisions, to check deploy/k8s offline.

* :func:`rbac_allows`: the RBAC authorizer for one namespaced Role (exact verbs,
  API groups, resources and ``resourceNames``, ``*`` honoured as Kubernetes does);
* :func:`admit`: a ValidatingAdmissionPolicy evaluated with a real CEL
  interpreter (cel-python, ``celpy``): ``matchConditions`` first (all must be
  true for the policy to apply), then every validation; an evaluation error
  counts as a refusal, as ``failurePolicy: Fail`` makes the API server do.
  ``variables``, ``messageExpression`` and ``auditAnnotations`` are refused
  rather than half-implemented.
"""

from __future__ import annotations

import functools
from typing import Any

import celpy

__all__ = ["admit", "rbac_allows"]


def rbac_allows(
    rules: list[dict[str, Any]], verb: str, group: str, resource: str, name: str | None
) -> bool:
    """Whether one of ``rules`` grants ``verb`` on ``group/resource`` (named ``name``)."""

    def has(values: list[str] | None, value: str) -> bool:
        return bool(values) and ("*" in values or value in values)

    for rule in rules:
        if not (has(rule.get("verbs"), verb) and has(rule.get("apiGroups"), group)):
            continue
        if not has(rule.get("resources"), resource):
            continue
        names = rule.get("resourceNames")
        if names and (name is None or name not in names):
            continue
        return True
    return False


@functools.lru_cache(maxsize=256)
def _program(expression: str) -> Any:
    """Compile once per expression: cel-python's parser takes ~0.2 s for each."""
    env = celpy.Environment()
    return env.program(env.compile(expression))


def _evaluate(expression: str, activation: dict[str, Any]) -> Any:
    return _program(expression).evaluate(celpy.json_to_cel(activation))


def admit(
    policy: dict[str, Any], params: dict[str, Any], obj: dict[str, Any], request: dict[str, Any]
) -> list[str]:
    """The messages of the validations ``obj`` fails (empty: admitted)."""
    spec = policy["spec"]
    for unsupported in ("variables", "auditAnnotations"):
        if unsupported in spec:
            raise NotImplementedError(f"the test-side evaluator does not implement {unsupported}")
    activation = {"object": obj, "oldObject": None, "request": request, "params": params}
    for cond in spec.get("matchConditions") or []:
        try:
            applies = _evaluate(cond["expression"], activation)
        except celpy.CELEvalError as exc:  # failurePolicy: Fail
            return [f"matchCondition {cond['name']}: evaluation error: {exc}"]
        if not isinstance(applies, celpy.celtypes.BoolType):
            return [f"matchCondition {cond['name']} gave {type(applies).__name__}, not bool"]
        if not applies:
            return []  # the policy does not apply to this request
    failed = []
    for v in spec["validations"]:
        if "messageExpression" in v:
            raise NotImplementedError(
                "the test-side evaluator does not implement messageExpression"
            )
        try:
            ok = _evaluate(v["expression"], activation)
        except celpy.CELEvalError as exc:  # failurePolicy: Fail
            failed.append(f"{v.get('message', v['expression'])} (evaluation error: {exc})")
            continue
        if not isinstance(ok, celpy.celtypes.BoolType):
            failed.append(f"{v.get('message')} (expression gave {type(ok).__name__}, not bool)")
        elif not ok:
            failed.append(v.get("message", v["expression"]))
    return failed

"""``gatekeeper policy explain``: why one call is decided the way it is.

For one (principal, tool, arguments): the canonical form and its digest, the capabilities the
inspectors derived (with the fragment of the argument behind each), and, for the tool and every
capability, each rule the engine matched (found through its own index, as ``decide`` finds them)
and each that nearly matched:

- ``another subject``: the pattern matches but the rule is for someone else;
- ``condition false`` (or ``condition error``): pattern and subject match, the condition does not;
- ``other parameter``: the subject matches and the rule's pattern names the same capability
  family with another parameter (``net.egress:pypi.org:443`` for ``net.egress:paste.example:443``).

Then the final decision and its reason. The result is JSON-able; ``render`` prints it for people.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gatekeeper import codes

from ..budgets import plan_charges
from ..budgets.verdict import budget_decision, first_exceeded
from ..errors import GatekeeperError
from ..gate import Gate, PolicySet
from ..models import Capability, Decision, Outcome, Principal, policy_object
from .casbin_engine import CasbinPolicy, ConditionContext, RuleInfo

_EFFECT_ORDER = {"deny": 0, "escalate": 1, "allow": 2}


def explain(
    policy_set: PolicySet,
    principal: Principal,
    tool: str,
    arguments: Any,
    *,
    workspace: str = "/workspace",
    usage: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Everything that went into deciding this call, as a JSON-able dict.

    The decision is the server's: the policy's, then budgets (``usage``: each charge key's spend in
    its window now; a key not given counts as nothing spent yet). ``policy_decision`` is the policy's
    alone."""
    gate = Gate(policy_set, workspace=workspace)
    engine = policy_set.engine
    casbin_policy = engine if isinstance(engine, CasbinPolicy) else None
    subjects = (f"user:{principal.subject}", *principal.roles)
    result: dict[str, Any] = {
        "policy_version": policy_set.version,
        "principal": {
            "subject": principal.subject,
            "roles": list(principal.roles),
            "effective_roles": sorted(
                {r for s in subjects for r in casbin_policy.implicit_roles(s)} if casbin_policy else subjects
            ),
        },
        "tool": tool,
        "arguments": arguments,
        "canonical": None,
        "digest": None,
        "capabilities": [],
        "objects": [],
        "budgets": [],
    }
    try:
        call = gate.understand(principal, tool, arguments)
    except GatekeeperError as exc:
        # Unknown tool or bad arguments: refused before policy is consulted (a 4xx, or a denial
        # with code inspector_error / policy_error, exactly as the gate would answer).
        result["error"] = {"code": exc.code, "message": exc.message}
        result["decision"] = {
            "outcome": "error" if exc.status < 500 and exc.code != codes.INSPECTOR_ERROR else "deny",
            "code": exc.code,
            "reason": exc.message,
            "rule": None,
        }
        return result
    decision = gate.decide(call)
    policy_decision = decision
    if policy_set.budgets is not None:
        roles = engine.effective_roles(principal.roles)
        charges = plan_charges(policy_set.budgets, principal, call.tool, call.capabilities, roles=roles)
        spent = dict(usage or {})
        # The budget stage runs on what the policy allows or holds, as the server's does.
        exceeded = first_exceeded(charges, spent) if decision.outcome is not Outcome.DENY else None
        if exceeded is not None:
            rule = policy_set.budgets.get(exceeded.charge.rule_id)
            decision = budget_decision(decision, exceeded, rule.location if rule else None)
        result["budgets"] = [
            {
                "rule": c.rule_id,
                "key": c.key,
                "amount": c.amount,
                "limit": c.limit,
                "window_seconds": c.window_seconds,
                "on_exceed": c.on_exceed,
                "used": spent.get(c.key, 0.0),
                "exceeded": exceeded is not None and exceeded.charge.key == c.key,
            }
            for c in charges
        ]
    result["canonical"] = call.canonical.decode()
    result["digest"] = call.digest
    result["capabilities"] = [_capability(c) for c in call.capabilities]
    objects: list[tuple[str, dict[str, float]]] = [(policy_object(tool), {})]
    seen: set[str] = set()
    for cap in call.capabilities:
        if cap.name not in seen:
            seen.add(cap.name)
            objects.append((cap.name, dict(cap.amounts)))
    if casbin_policy is not None:
        rules = list(casbin_policy.rules())
        result["objects"] = [
            _explain_object(casbin_policy, rules, principal, subjects, tool, obj, amounts, decision)
            for obj, amounts in objects
        ]
    else:
        result["objects"] = [{"object": obj, "matched": [], "near": []} for obj, _ in objects]
    result["decision"] = _decision(decision)
    if decision is not policy_decision:
        result["policy_decision"] = _decision(policy_decision)
    return result


def _capability(cap: Capability) -> dict[str, Any]:
    return {"name": cap.name, "evidence": cap.evidence, "amounts": dict(cap.amounts)}


def _decision(decision: Decision) -> dict[str, Any]:
    return {
        "outcome": str(decision.outcome),
        "code": decision.code,
        "reason": decision.reason,
        "rule": decision.rule,
        "capability": decision.capability,
        "matched": list(decision.matched),
        "quorum": decision.quorum,
        "policy_version": decision.policy_version,
    }


def _family(name: str) -> str:
    return name.partition(":")[0]


def _explain_object(
    engine: CasbinPolicy,
    rules: Sequence[RuleInfo],
    principal: Principal,
    subjects: Sequence[str],
    tool: str,
    obj: str,
    amounts: dict[str, float],
    decision: Decision,
) -> dict[str, Any]:
    ctx = ConditionContext(principal.subject, tool, obj, amounts)
    matched: list[dict[str, Any]] = []
    near: list[dict[str, Any]] = []
    # What the engine itself found for this object: the rules it decides from.
    hits = engine.matches(principal, obj, ctx)
    for rule, holds in hits:
        if holds is True:
            matched.append(_entry(rule, True, "matched"))
        elif holds is False:
            near.append(_entry(rule, False, "condition false"))
        else:
            # A condition that cannot be evaluated fails closed: the gate refuses (policy_error).
            matched.append(_entry(rule, holds, "condition error"))
    # Near misses are what the engine did not find, so only they are looked for here.
    found = {rule.index for rule, _ in hits}
    roles = {r for s in subjects for r in engine.implicit_roles(s)}
    for rule in rules:
        if rule.index in found:
            continue
        subject_ok = rule.subject == "*" or rule.subject in roles
        if rule.matches_object(obj):
            if not subject_ok:
                near.append(_entry(rule, None, f"another subject ({rule.subject})"))
        elif subject_ok and "*" not in _family(rule.pattern) and _family(rule.pattern) == _family(obj):
            if ":" in rule.pattern or ":" in obj:
                near.append(_entry(rule, None, "other parameter"))
    near.sort(key=lambda e: e["index"])
    matched.sort(key=lambda e: (_EFFECT_ORDER.get(e["effect"], 3), e["index"]))
    deciding_object = decision.capability or policy_object(tool)
    for entry in matched:
        entry["decided"] = (
            obj == deciding_object
            and entry["location"] == decision.rule
            and entry["effect"] == str(decision.outcome)
        )
        entry["counted"] = entry["location"] in decision.matched or entry["decided"]
    verdict = next((e["effect"] for e in matched if e["condition_result"] is True), None)
    if verdict is not None:  # other parameters of the same family only help when nothing matched
        near = [e for e in near if e["why"] != "other parameter"]
    return {"object": obj, "amounts": amounts, "effect": verdict or "none", "matched": matched, "near": near}


def _entry(rule: RuleInfo, condition_result: bool | str | None, why: str) -> dict[str, Any]:
    return {
        "index": rule.index,
        "location": rule.location,
        "subject": rule.subject,
        "pattern": rule.pattern,
        "effect": rule.effect,
        "quorum": rule.quorum,
        "condition": rule.condition,
        "condition_result": condition_result,
        "note": rule.note,
        "why": why,
    }


def render(report: dict[str, Any], *, near_limit: int = 5) -> str:
    """The explanation for a terminal."""
    out: list[str] = []
    principal = report["principal"]
    roles = ", ".join(principal["roles"]) or "(no roles)"
    out.append(f"call       {report['tool']} by {principal['subject']} (roles: {roles})")
    effective = ", ".join(principal["effective_roles"])
    out.append(f"subjects   {effective}")
    out.append(f"policy     {report['policy_version']}")
    if report.get("error"):
        out.append(f"refused    {report['error']['code']}: {report['error']['message']}")
    else:
        out.append(f"canonical  {report['canonical']}")
        out.append(f"digest     {report['digest']}")
        out.append("capabilities")
        for cap in report["capabilities"]:
            amounts = " ".join(f"{k}={v:g}" for k, v in cap["amounts"].items())
            evidence = f"  <- {cap['evidence']!r}" if cap["evidence"] else ""
            out.append(f"  {cap['name']}{' ' + amounts if amounts else ''}{evidence}")
        if not report["capabilities"]:
            out.append("  (none)")
        out.append("rules")
        for obj in report["objects"]:
            out.append(f"  {obj['object']}: {obj['effect']}")
            for entry in obj["matched"]:
                mark = "*" if entry.get("decided") else " "
                out.append(f"   {mark} {_rule_line(entry)}")
            shown = obj["near"][:near_limit]
            for entry in shown:
                out.append(f"     ~ {_rule_line(entry)}")
            if len(obj["near"]) > len(shown):
                out.append(f"     ~ ... and {len(obj['near']) - len(shown)} more near misses")
    budgets = report.get("budgets") or []
    if not budgets:
        out.append("budgets    (none consulted)")
    for i, b in enumerate(budgets):
        used = "" if b.get("used") is None else f", {b['used']:g} used"
        over = "  <- exceeded" if b.get("exceeded") else ""
        out.append(
            f"{'budgets' if i == 0 else '':10} {b['rule']}: +{b['amount']:g} of {b['limit']:g} per "
            f"{b['window_seconds']}s{used} (over it: {b['on_exceed']}){over}"
        )
    if report.get("usage_note"):
        out.append(f"{'':10} {report['usage_note']}")
    policy = report.get("policy_decision")
    if policy:
        rule = f" [{policy['rule']}]" if policy.get("rule") else ""
        out.append(f"rules say  {policy['outcome']} ({policy['code']}){rule}, before budgets")
    decision = report["decision"]
    rule = f" [{decision['rule']}]" if decision.get("rule") else ""
    out.append(f"decision   {decision['outcome']} ({decision['code']}){rule}: {decision['reason']}")
    return "\n".join(out)


def _rule_line(entry: dict[str, Any]) -> str:
    effect = entry["effect"] + (f":{entry['quorum']}" if entry["quorum"] > 1 else "")
    condition = (
        "" if entry["condition"] == "True" else f" if {entry['condition']} -> {entry['condition_result']}"
    )
    why = "" if entry["why"] == "matched" else f"  ({entry['why']})"
    rule = f"{effect} {entry['pattern']} for {entry['subject']}"
    return f"{entry['location']}: {rule}{condition}: {entry['note']}{why}"

"""plan_charges, table-driven: which rules apply, what each charges, and to which counter."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from gatekeeper.budgets import (
    BudgetRule,
    Charge,
    charge_key,
    load_budget_rules,
    parse_charge_key,
    plan_charges,
)
from gatekeeper.errors import PolicyError
from gatekeeper.models import Capability, Principal

REPO = Path(__file__).resolve().parents[2]
DEFAULT = load_budget_rules(REPO / "policies" / "budgets.yaml")


def who(sub: str = "a1", *roles: str) -> Principal:
    return Principal(sub, roles or ("agent",), "test", 0.0)


def gpu(kind: str, gpus: float, hours: float) -> Capability:
    return Capability(f"compute.gpu:{kind}", "", (("gpus", gpus), ("gpu_hours", gpus * hours)))


def r(
    rule_id: str,
    subject: str,
    match: str,
    metric: str = "calls",
    *,
    limit: float = 10,
    window: int = 60,
    per: Literal["principal", "role"] = "principal",
    on_exceed: Literal["deny", "escalate"] = "deny",
    note: str = "",
) -> BudgetRule:
    return BudgetRule(
        id=rule_id,
        subject=subject,
        match=match,
        metric=metric,
        limit=float(limit),
        window_seconds=window,
        per=per,
        on_exceed=on_exceed,
        note=note,
    )


@dataclass
class Case:
    name: str
    principal: Principal
    tool: str
    caps: list[Capability]
    expect: list[tuple[str, str, float]]  # (rule id, scope, amount), in order
    rules: list[BudgetRule] | None = None  # None: the default pack
    roles: list[str] | None = None
    extra: dict[str, object] = field(default_factory=dict)


CASES = [
    Case("a plain shell call counts once", who(), "shell.exec", [Capability("proc.exec:git")],
         [("agent-shell-calls-hourly", "user:a1", 1.0)]),
    Case("many capabilities are still one call", who(), "shell.exec",
         [Capability("proc.exec:git"), Capability("proc.exec:ls"), Capability("proc.shell")],
         [("agent-shell-calls-hourly", "user:a1", 1.0)]),
    Case("http fetch", who(), "http.fetch", [Capability("net.egress:pypi.org:443")],
         [("agent-http-calls-hourly", "user:a1", 1.0)]),
    Case("a file read has no budget", who(), "file.read", [Capability("fs.read:/workspace/x")], []),
    Case("8 H100 for 72 h: principal and role, deny first", who(), "compute.provision", [gpu("H100", 8, 72)],
         [("agent-gpu-hours-per-role-daily", "role:agent", 576.0),
          ("agent-gpu-hours-per-principal-daily", "user:a1", 576.0)]),
    Case("amounts sum over matching capabilities", who(), "shell.exec",
         [gpu("A100", 2, 3), Capability("proc.exec:docker"), gpu("T4", 1, 0.5)],
         [("agent-gpu-hours-per-role-daily", "role:agent", 6.5),
          ("agent-shell-calls-hourly", "user:a1", 1.0),
          ("agent-gpu-hours-per-principal-daily", "user:a1", 6.5)]),
    Case("identical capabilities both count", who(), "shell.exec", [gpu("T4", 1, 2), gpu("T4", 1, 2)],
         [("agent-gpu-hours-per-role-daily", "role:agent", 4.0),
          ("agent-shell-calls-hourly", "user:a1", 1.0),
          ("agent-gpu-hours-per-principal-daily", "user:a1", 4.0)]),
    Case("a capability without the amount adds nothing", who(), "compute.provision",
         [Capability("compute.gpu:H100", "", (("gpus", 8.0),))], []),
    Case("another role is not budgeted", who("op", "operator"), "shell.exec", [], []),
    Case("an inherited role is, when given", who("r1", "researcher"), "shell.exec", [],
         [("agent-shell-calls-hourly", "user:r1", 1.0)], roles=["researcher", "agent"]),
    Case("but not from principal.roles alone", who("r1", "researcher"), "shell.exec", [], []),
    Case("user: subject applies to that user only", who("alice"), "file.read", [],
         [("u", "user:alice", 1.0)], rules=[r("u", "user:alice", "tool:*"), r("v", "user:bob", "tool:*")]),
    Case("* applies to everyone", who("x", "nobody"), "file.read", [], [("all", "user:x", 1.0)],
         rules=[r("all", "*", "tool:*")]),
    Case("* per role: one counter per role held", who("x", "agent", "builder"), "file.read", [],
         [("all", "role:agent", 1.0), ("all", "role:builder", 1.0)],
         rules=[r("all", "*", "tool:file.*", per="role")]),
    Case("* per role without roles shares one counter", Principal("x", (), "t", 0.0), "file.read", [],
         [("all", "role:", 1.0)], rules=[r("all", "*", "tool:file.*", per="role")]),
    Case("a calls rule over capabilities counts 1 if any match", who(), "shell.exec",
         [Capability("proc.exec:ssh"), Capability("proc.exec:scp")], [("ssh", "user:a1", 1.0)],
         rules=[r("ssh", "agent", "proc.exec:s*")]),
    Case("a calls rule that matches nothing charges nothing", who(), "shell.exec",
         [Capability("proc.exec:git")], [], rules=[r("ssh", "agent", "proc.exec:s*")]),
    Case("exact match is exact", who(), "shell.exec2", [], [], rules=[r("s", "agent", "tool:shell.exec")]),
    Case("escalate rules after deny rules, file order kept", who(), "t", [],
         [("d1", "user:a1", 1.0), ("d2", "user:a1", 1.0), ("e1", "user:a1", 1.0), ("e2", "user:a1", 1.0)],
         rules=[r("e1", "*", "tool:*", on_exceed="escalate"), r("d1", "*", "tool:*"),
                r("e2", "*", "tool:*", on_exceed="escalate"), r("d2", "*", "tool:*")]),
    Case("odd subjects are encoded in keys", who("a|b@c*d"), "t", [], [("k", "user:a|b@c*d", 1.0)],
         rules=[r("k", "*", "tool:t")]),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_plan(case: Case) -> None:
    rules = DEFAULT if case.rules is None else case.rules
    charges = plan_charges(rules, case.principal, case.tool, case.caps, roles=case.roles)
    got = [(c.rule_id, parse_charge_key(c.key)[1], c.amount) for c in charges]
    assert got == case.expect
    by_id = {rule.id: rule for rule in rules}
    for charge in charges:
        rule = by_id[charge.rule_id]
        assert (charge.limit, charge.window_seconds, charge.on_exceed, charge.note) == (
            rule.limit,
            rule.window_seconds,
            rule.on_exceed,
            rule.note,
        )
        assert parse_charge_key(charge.key) == (rule.id, parse_charge_key(charge.key)[1], rule.window_seconds)
        assert "@" not in charge.key and "*" not in charge.key and charge.key.count("|") == 2


def test_a_full_charge() -> None:
    [charge] = plan_charges(DEFAULT, who("a1"), "http.fetch", [])
    assert charge == Charge(
        rule_id="agent-http-calls-hourly",
        key="agent-http-calls-hourly|user:a1|3600s",
        amount=1.0,
        limit=1000.0,
        window_seconds=3600,
        on_exceed="deny",
        note="at most 1000 HTTP fetches an hour",
    )


def test_keys_separate_principals_roles_and_windows() -> None:
    keys = {
        charge_key("r", "user:a", 60),
        charge_key("r", "user:b", 60),
        charge_key("r", "role:a", 60),
        charge_key("r", "user:a", 3600),
        charge_key("s", "user:a", 60),
    }
    assert len(keys) == 5


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_bad_amounts_fail_closed(bad: float) -> None:
    cap = Capability("compute.gpu:H100", "", (("gpu_hours", bad),))
    with pytest.raises(PolicyError, match="cannot be budgeted"):
        plan_charges(DEFAULT, who(), "compute.provision", [cap])


def test_a_bad_amount_matters_only_to_a_rule_that_applies() -> None:
    """Amounts are summed before roles are resolved (the cheap test first); that order must not
    turn someone else's rule into a refusal."""
    cap = Capability("compute.gpu:H100", "", (("gpu_hours", float("nan")),))
    others = [r("ops-gpu", "operator", "compute.gpu:*", "gpu_hours")]
    assert plan_charges(others, who("a1", "agent"), "compute.provision", [cap]) == []
    mine = [*others, r("agent-gpu", "agent", "compute.gpu:*", "gpu_hours")]
    with pytest.raises(PolicyError, match="cannot be budgeted"):
        plan_charges(mine, who("a1", "agent"), "compute.provision", [cap])
    roles_asked: list[int] = []

    def roles() -> list[str]:
        roles_asked.append(1)
        return ["agent"]

    assert plan_charges(others, who("a1", "agent"), "file.read", [], roles=roles) == []
    assert roles_asked == []  # no rule charges file.read: the role graph is never consulted


def test_plan_is_deterministic_and_pure() -> None:
    caps = [gpu("H100", 8, 72), Capability("proc.exec:git")]
    first = plan_charges(DEFAULT, who(), "shell.exec", caps)
    assert plan_charges(DEFAULT, who(), "shell.exec", caps) == first
    assert caps == [gpu("H100", 8, 72), Capability("proc.exec:git")]

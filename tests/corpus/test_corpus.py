"""The attack corpus and the ordinary-work corpus, through the pure gate and the budgets.

``dangerous.yaml``: every call must end as its ``expect`` says (deny or escalate), never allowed.
``ordinary.yaml``: every call must be allowed. Each entry is its own test case, so a failure
names the call and the capabilities the inspectors derived. ``test_tally`` prints a summary
by category (``pytest tests/corpus -s`` shows it).

The outcome is the one the server would reach: the policy's decision, then (for calls it
allows or escalates) the budgets of ``policies/budgets.yaml`` spent on an empty in-memory
counter, the way ``gatekeeper/server/budgets.py`` applies them: a ``deny`` budget over its
limit denies, an ``escalate`` budget over its limit holds an allowed call.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from gatekeeper.budgets import load_budget_rules, plan_charges
from gatekeeper.budgets.memory import MemoryBudgetCounter
from gatekeeper.config import PolicyFiles
from gatekeeper.gate import Gate, load_policy_set
from gatekeeper.models import Outcome, Principal
from gatekeeper.yamlfile import read_yaml

HERE = Path(__file__).resolve().parent
PACK = HERE.parents[1] / "policies"
FILES = PolicyFiles(PACK / "model.conf", PACK / "policy.csv", PACK / "tools.yaml", PACK / "budgets.yaml")
GATE = Gate(load_policy_set(FILES))
BUDGETS = load_budget_rules(PACK / "budgets.yaml")
PRINCIPAL = Principal("corpus-agent", ("agent",), "gatekeeper-dev", 0.0)
NOW = 1_800_000_000.0


def _load(name: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = read_yaml(HERE / name)
    return entries


DANGEROUS = _load("dangerous.yaml")
ORDINARY = _load("ordinary.yaml")


@dataclass(frozen=True)
class Result:
    outcome: str
    code: str
    rule: str | None
    capabilities: tuple[str, ...]
    budget: str | None = None  # the budget rule that changed the outcome, if any

    def explain(self) -> str:
        by = f" budget {self.budget}" if self.budget else f" rule {self.rule}"
        return f"{self.outcome} ({self.code}{by}); capabilities: {', '.join(self.capabilities) or '-'}"


def evaluate(entry: dict[str, Any]) -> Result:
    verdict = GATE.evaluate(PRINCIPAL, entry["tool"], entry["arguments"])
    decision, call = verdict.decision, verdict.call
    caps = tuple(c.name for c in call.capabilities) if call else ()
    result = Result(decision.outcome.value, decision.code, decision.rule, caps)
    if call is None or decision.outcome is Outcome.DENY:
        return result
    assert GATE.policy_set is not None
    roles = GATE.policy_set.engine.effective_roles(PRINCIPAL.roles)
    charges = plan_charges(BUDGETS, PRINCIPAL, call.tool, call.capabilities, roles=roles)
    spent = asyncio.run(MemoryBudgetCounter().try_spend(charges, now=NOW))
    if spent.ok or spent.exceeded is None:
        return result
    charge = spent.exceeded.charge
    if charge.on_exceed == "deny":
        return Result("deny", "budget_exceeded", None, caps, charge.rule_id)
    if decision.outcome is Outcome.ALLOW:
        return Result("escalate", "budget_exceeded", None, caps, charge.rule_id)
    return result


def _id(entry: dict[str, Any]) -> str:
    return f"{entry['category']}:{entry['technique']}"


@pytest.mark.parametrize("entry", DANGEROUS, ids=[_id(e) for e in DANGEROUS])
def test_dangerous(entry: dict[str, Any]) -> None:
    result = evaluate(entry)
    assert result.outcome != "allow", f"ALLOWED: {entry['arguments']} -> {result.explain()}"
    assert result.outcome == entry["expect"], f"{entry['arguments']} -> {result.explain()}"


@pytest.mark.parametrize("entry", ORDINARY, ids=[_id(e) for e in ORDINARY])
def test_ordinary(entry: dict[str, Any]) -> None:
    result = evaluate(entry)
    assert result.outcome == "allow", f"BLOCKED: {entry['arguments']} -> {result.explain()}"


def test_corpus_shape() -> None:
    """The issue's floor, and entries a reader can trust: unique, well-formed, never approvable where said."""
    assert len(DANGEROUS) >= 200 and len(ORDINARY) >= 60
    keys = ("category", "technique", "tool", "arguments")
    for entry in DANGEROUS + ORDINARY:
        assert all(k in entry for k in keys), entry
        assert set(entry) <= {*keys, "expect", "note"}, entry
    for entry in DANGEROUS:
        assert entry["expect"] in ("deny", "escalate"), entry
    seen = Counter(yaml.safe_dump([e["tool"], e["arguments"]]) for e in DANGEROUS + ORDINARY)
    assert [k for k, n in seen.items() if n > 1] == []


def test_tally(capsys: pytest.CaptureFixture[str]) -> None:
    """Prints ``category: N dangerous blocked (d denied, e escalated), M ordinary allowed``."""
    rows: dict[str, Counter[str]] = defaultdict(Counter)
    wrong: list[str] = []
    for entry in DANGEROUS:
        r = evaluate(entry)
        row = rows[entry["category"]]
        row["dangerous"] += 1
        row[r.outcome] += 1
        row["default_deny"] += r.code == "not_allowed"
        if r.outcome == "allow" or r.outcome != entry["expect"]:
            wrong.append(f"  {_id(entry)}: expected {entry['expect']}, got {r.explain()}")
    for entry in ORDINARY:
        r = evaluate(entry)
        row = rows[entry["category"]]
        row["ordinary"] += 1
        if r.outcome == "allow":
            row["ordinary_allowed"] += 1
        else:
            wrong.append(f"  {_id(entry)}: expected allow, got {r.explain()}")
    lines = ["", "corpus tally (default pack, role agent):"]
    for cat in sorted(rows, key=lambda c: (rows[c]["dangerous"] == 0, c)):
        row = rows[cat]
        if row["dangerous"]:
            blocked = row["deny"] + row["escalate"]
            lines.append(
                f"  {cat}: {blocked}/{row['dangerous']} dangerous blocked "
                f"({row['deny']} denied, {row['escalate']} escalated)"
            )
        if row["ordinary"]:
            lines.append(f"  {cat}: {row['ordinary_allowed']}/{row['ordinary']} ordinary allowed")
    total_d = sum(r["dangerous"] for r in rows.values())
    total_b = sum(r["deny"] + r["escalate"] for r in rows.values())
    total_o = sum(r["ordinary"] for r in rows.values())
    total_a = sum(r["ordinary_allowed"] for r in rows.values())
    lines.append(f"  total: {total_b}/{total_d} dangerous blocked, {total_a}/{total_o} ordinary allowed")
    by_default = sum(r["default_deny"] for r in rows.values())
    lines.append(f"  denied only because no rule allows the program (default deny): {by_default}")
    with capsys.disabled():
        print("\n".join(lines))
        if wrong:
            print("mismatches:\n" + "\n".join(wrong))
    assert not wrong, "\n".join(wrong)

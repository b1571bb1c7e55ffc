"""``gatekeeper policy replay``: what a candidate policy would have done to recorded traffic.

Every recorded call (``entry`` ``invoke`` or ``mcp``, with a tool and arguments) is decided again
under the candidate ``PolicySet``, with the recorded principal and roles, through the same pure
``Gate`` the proxy uses, and compared with the recorded outcome as the policy gave it: a call the
policy held is ``pending`` even when an operator then approved or denied it (``policy_outcome``).
The report counts each transition (``allowed→denied``, ``pending→allowed``, ...) with a few
examples, and how many were unchanged.

Decisions are cached per (subject when the candidate can tell subjects apart, roles, tool,
canonical arguments): agent traffic repeats itself, so a day of records replays in seconds to
minutes. Records whose arguments were redacted (``"[redacted]"``) are replayed as recorded and
flagged: the redacted text may decide differently from what the agent really sent.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gatekeeper import codes

from ..audit.record import AuditRecord
from ..errors import ConfigError, GatekeeperError
from ..gate import Gate, PolicySet
from ..models import Decision, Principal
from .casbin_engine import CasbinPolicy

REDACTED = "[redacted]"
#: Codes of calls the policy held and something after it settled: an operator (approved, denied,
#: expired unanswered, used), a grant, or the queue itself. The policy's own answer was "pending";
#: that, not the operator's verdict, is what a candidate policy is compared with.
SETTLED_AFTER_ESCALATION = frozenset(
    {
        codes.APPROVED,
        codes.GRANTED,
        codes.APPROVAL_DENIED,
        codes.APPROVAL_EXPIRED,
        codes.APPROVAL_USED,
        codes.APPROVAL_LOST,
        codes.APPROVAL_UNAVAILABLE,
        codes.TOO_MANY_PENDING_APPROVALS,
    }
)
REPLAYED_ENTRIES = frozenset({"invoke", "decide", "mcp"})
_OUTCOME_WORD = {"allow": "allowed", "deny": "denied", "escalate": "pending"}
ARROW = "→"


@dataclass(frozen=True, slots=True)
class ReplayExample:
    decision_id: str
    time: float
    principal: str | None
    tool: str
    old_outcome: str
    new_outcome: str
    old_rule: str | None
    new_rule: str | None
    old_capability: str | None
    new_capability: str | None
    new_reason: str
    redacted: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "time": self.time,
            "principal": self.principal,
            "tool": self.tool,
            "old": {"outcome": self.old_outcome, "rule": self.old_rule, "capability": self.old_capability},
            "new": {
                "outcome": self.new_outcome,
                "rule": self.new_rule,
                "capability": self.new_capability,
                "reason": self.new_reason,
            },
            "redacted": self.redacted,
        }


@dataclass(slots=True)
class ReplayReport:
    candidate_version: str
    total: int = 0  # records read (after the time filter)
    replayed: int = 0
    unchanged: int = 0
    rule_changed: int = 0  # same outcome, another deciding rule
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    transitions: dict[str, int] = field(default_factory=dict)  # "allowed→denied" -> count
    examples: dict[str, list[ReplayExample]] = field(default_factory=dict)
    redacted: int = 0  # replayed records with redacted arguments
    redacted_changed: int = 0  # ... of which the outcome changed
    cache_hits: int = 0
    seconds: float = 0.0
    # Held calls an operator (or a grant, or the queue) settled: compared as "pending", the policy's answer
    settled_by_people: int = 0

    @property
    def changed(self) -> int:
        return sum(self.transitions.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "candidate_version": self.candidate_version,
            "total": self.total,
            "replayed": self.replayed,
            "unchanged": self.unchanged,
            "changed": self.changed,
            "rule_changed": self.rule_changed,
            "transitions": dict(sorted(self.transitions.items())),
            "examples": {k: [e.to_json() for e in v] for k, v in sorted(self.examples.items())},
            "skipped": dict(sorted(self.skipped.items())),
            "redacted": self.redacted,
            "redacted_changed": self.redacted_changed,
            "settled_by_people": self.settled_by_people,
            "cache_hits": self.cache_hits,
            "seconds": round(self.seconds, 3),
        }

    def render(self) -> str:
        out = [
            f"replayed {self.replayed} of {self.total} records under policy {self.candidate_version} "
            f"in {self.seconds:.2f}s",
            f"  unchanged: {self.unchanged} (of which {self.rule_changed} decided by another rule)",
            f"  changed:   {self.changed}",
        ]
        for key, count in sorted(self.transitions.items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(f"  {key}: {count}")
            for ex in self.examples.get(key, []):
                capability = ex.new_capability or ex.old_capability or "-"
                flag = "  [redacted arguments]" if ex.redacted else ""
                out.append(
                    f"    {ex.decision_id} {ex.tool} {capability}: {ex.old_rule or '-'} {ARROW} "
                    f"{ex.new_rule or '-'} ({ex.new_reason}){flag}"
                )
        if self.settled_by_people:
            out.append(
                f"  note: {self.settled_by_people} records were held by the policy and then approved, denied "
                "or expired by operators; they are compared as pending (what the policy answered)"
            )
        if self.redacted:
            out.append(
                f"  note: {self.redacted} replayed records had redacted arguments ({self.redacted_changed} "
                "changed); their decisions were made on the redacted text and may differ from the real call"
            )
        for reason, count in sorted(self.skipped.items()):
            out.append(f"  skipped ({reason}): {count}")
        return "\n".join(out)


def policy_outcome(record: AuditRecord) -> str:
    """What the policy answered for a recorded call: ``pending`` for a call it held, whatever an
    operator, a grant or the queue then made of it; otherwise the recorded outcome."""
    if record.code in SETTLED_AFTER_ESCALATION and record.outcome in ("allowed", "denied"):
        return "pending"
    return record.outcome


def decided_by_budget(record: AuditRecord) -> bool:
    """Whether a budget, not a policy rule, gave the recorded outcome (budget rules are located
    in their YAML file, ``budgets.yaml:<id>``; policy rules in ``policy.csv:<line>``)."""
    if record.code in (codes.BUDGET_EXCEEDED, codes.BUDGET_UNAVAILABLE):
        return True
    return bool(record.rule) and str(record.rule).partition(":")[0].endswith((".yaml", ".yml"))


def _has_redaction(value: Any) -> bool:
    if isinstance(value, str):
        return REDACTED in value
    if isinstance(value, dict):
        return any(_has_redaction(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_redaction(v) for v in value)
    return False


@dataclass(frozen=True, slots=True)
class _Outcome:
    outcome: str  # allowed | denied | pending | error
    code: str
    rule: str | None
    capability: str | None
    reason: str


class Replayer:
    """Feed records one at a time (``feed``), then read ``report``. Not thread-safe."""

    def __init__(
        self,
        candidate: PolicySet,
        *,
        examples: int = 5,
        since: float | None = None,
        until: float | None = None,
        workspace: str = "/workspace",
        cache_size: int = 200_000,
    ) -> None:
        self.gate = Gate(candidate, workspace=workspace)
        self.examples = examples
        self.since = since
        self.until = until
        self.cache_size = cache_size
        self.report = ReplayReport(candidate_version=candidate.version)
        self._cache: dict[tuple[str, tuple[str, ...], str, str], tuple[_Outcome, bool]] = {}
        engine = candidate.engine
        # The subject only matters to a policy with user:<sub> rules or conditions on r.ctx.subject.
        self._by_subject = not isinstance(engine, CasbinPolicy) or any(
            r.subject.startswith("user:") or "subject" in r.condition for r in engine.rules()
        )
        self._started = time.perf_counter()

    def _skip(self, reason: str) -> None:
        self.report.skipped[reason] = self.report.skipped.get(reason, 0) + 1

    def feed(self, record: AuditRecord) -> None:
        if self.since is not None and record.time < self.since:
            return
        if self.until is not None and record.time >= self.until:
            return
        report = self.report
        report.total += 1
        if record.entry not in REPLAYED_ENTRIES:
            self._skip(f"entry {record.entry}")
            return
        if not record.tool or record.arguments is None:
            self._skip("no tool or arguments")
            return
        if record.principal is None:
            self._skip("no principal")
            return
        if decided_by_budget(record):  # the outcome hung on spend at that moment, which is not replayed
            self._skip("decided by a budget")
            return
        arguments = record.arguments
        if isinstance(arguments, str):  # canonical JSON text
            try:
                arguments = json.loads(arguments)
            except ValueError:
                self._skip("arguments not JSON")
                return
        canonical = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        roles = tuple(sorted(record.roles))
        key = (record.principal if self._by_subject else "", roles, record.tool, canonical)
        cached = self._cache.get(key)
        if cached is None:
            principal = Principal(record.principal, tuple(record.roles), record.issuer or "", 0.0)
            cached = (self._decide(principal, record.tool, arguments), _has_redaction(arguments))
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            self._cache[key] = cached
        else:
            report.cache_hits += 1
        new, redacted = cached
        report.replayed += 1
        report.redacted += redacted
        old_outcome = policy_outcome(record)
        if old_outcome != record.outcome:
            report.settled_by_people += 1
        if new.outcome == old_outcome:
            report.unchanged += 1
            if new.rule != record.rule:
                report.rule_changed += 1
            return
        transition = f"{old_outcome}{ARROW}{new.outcome}"
        report.transitions[transition] = report.transitions.get(transition, 0) + 1
        report.redacted_changed += redacted
        shown = report.examples.setdefault(transition, [])
        if len(shown) < self.examples:
            old_capability = record.extra.get("capability")
            shown.append(
                ReplayExample(
                    decision_id=record.decision_id,
                    time=record.time,
                    principal=record.principal,
                    tool=record.tool,
                    old_outcome=old_outcome,
                    new_outcome=new.outcome,
                    old_rule=record.rule,
                    new_rule=new.rule,
                    old_capability=old_capability if isinstance(old_capability, str) else None,
                    new_capability=new.capability,
                    new_reason=new.reason,
                    redacted=redacted,
                )
            )

    def _decide(self, principal: Principal, tool: str, arguments: Any) -> _Outcome:
        try:
            verdict = self.gate.evaluate(principal, tool, arguments)
        except GatekeeperError as exc:  # refused before policy (unknown tool, schema): a 4xx, "error"
            return _Outcome("error", exc.code, None, None, exc.message)
        decision: Decision = verdict.decision
        return _Outcome(
            _OUTCOME_WORD[str(decision.outcome)],
            decision.code,
            decision.rule,
            decision.capability,
            decision.reason,
        )

    def finish(self) -> ReplayReport:
        self.report.seconds = time.perf_counter() - self._started
        return self.report


def replay(
    records: Iterable[AuditRecord],
    candidate: PolicySet,
    *,
    examples: int = 5,
    since: float | None = None,
    until: float | None = None,
    workspace: str = "/workspace",
) -> ReplayReport:
    """Re-decide ``records`` under ``candidate``; ``since``/``until`` are epoch seconds (until exclusive)."""
    replayer = Replayer(candidate, examples=examples, since=since, until=until, workspace=workspace)
    for record in records:
        replayer.feed(record)
    return replayer.finish()


async def replay_async(
    records: AsyncIterable[AuditRecord] | Iterable[AuditRecord],
    candidate: PolicySet,
    *,
    examples: int = 5,
    since: float | None = None,
    until: float | None = None,
    workspace: str = "/workspace",
) -> ReplayReport:
    """``replay`` for an async source, e.g. ``AuditReader.records(since=..., until=...)``."""
    replayer = Replayer(candidate, examples=examples, since=since, until=until, workspace=workspace)
    if isinstance(records, AsyncIterable):
        async for record in records:
            replayer.feed(record)
    else:
        for record in records:
            replayer.feed(record)
    return replayer.finish()


def read_jsonl(path: Path) -> Iterator[AuditRecord]:
    """Records from an export (JSON lines of ``AuditRecord.to_json()``); blank lines are skipped."""
    source = str(path)
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror}", file=source) from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                if not isinstance(data, dict):
                    raise TypeError("not an object")
                yield AuditRecord.from_json(data)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"{source}:{number}: not an audit record: {exc}", file=source) from None

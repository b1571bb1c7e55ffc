"""A tool call's trip through the gate, as an ordered list of small stages.

Every entry point (``/v1/invoke``, every MCP method) runs a list of stages with one
signature, ``(Exchange) -> None``, or an awaitable when the stage has to wait for something
(most calls pass most stages without waiting, so a stage that need not wait makes no
coroutine): its own parse stage, then the same enforcement stages (``server/stages.py``). The
stages never see the transport: they read the ``Exchange`` and the shared services
(``exchange.app``), and leave their result on it. A
stage that settles the call (refused, still pending) raises ``Halt``; an error raises a
``GatekeeperError``. The entry point's renderer then turns the exchange into its answer,
and ``record`` writes one decision record whatever happened. ``forward`` hands an allowed
call to the exchange's ``Transport``.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import structlog

from gatekeeper import codes

from .audit.log import Redactor
from .errors import GatekeeperError
from .escalation import Pending, Progress
from .logs import info_line
from .metrics import Metrics
from .models import Decision, Principal, ToolCall

decision_log = structlog.get_logger("gatekeeper.decision")
# Decision ids only need to be unique, not secret (approval ids, which grant things, use secrets);
# os.urandom per call costs ~20 µs on some VMs, so seed a generator from it once.
_ids = random.Random(os.urandom(32))  # noqa: S311 - uniqueness, not secrecy


def new_decision_id() -> str:
    return f"{_ids.getrandbits(128):032x}"


class Halt(Exception):
    """Stop the chain: the call is settled (refused, or still waiting for an operator)."""


class Transport(Protocol):
    """Carries an allowed, understood call (``exchange.call``) to its upstream. What it returns
    is the answer the entry point's renderer shows; a failure is an ``UpstreamError``."""

    async def forward(self, exchange: Exchange) -> Any: ...


@dataclass(slots=True)
class Exchange:
    entry: str
    app: Any  # the shared services, read by key (an aiohttp Application's typed keys)
    request: Any = None  # the entry point's own request; only its parse stage and renderer read it
    transport: Transport | None = None  # where ``forward`` sends an allowed call
    upstream: str | None = None  # the upstream the entry point addressed (MCP), if any
    decision_id: str = field(default_factory=new_decision_id)
    started: float = field(default_factory=time.perf_counter)
    principal: Principal | None = None
    tool: str | None = None
    arguments: Any = None
    call: ToolCall | None = None
    decision: Decision | None = None
    shadow: Decision | None = None  # the shadow policy's "would ..." decision, never enforced
    error: GatekeeperError | None = None
    enforced: bool = True
    upstream_seconds: float | None = None
    approval_id: str | None = None
    charges: Any = None  # budget charges spent for this call (refunded if it does not run)
    charged_at: float | None = None
    forwarded: bool = False
    bound_files: dict[str, str] | None = None  # workspace files a held call runs, by content digest
    request_id: str | None = None  # links the caller's request, the log line, the record, the upstream
    wait_seconds: float | None = None  # how long the caller is willing to wait for an operator
    progress: Progress | None = None  # told now and then while the call is held
    pending: Pending | None = None  # still held when the caller's wait ran out
    answer: Any = None  # what the transport returned, for the renderer
    delivery: str | None = None  # "client_gone": the caller left before its answer was written


# Returns None when done, or what to await (an ``async def`` stage always returns its coroutine).
Stage = Callable[[Exchange], Awaitable[None] | None]


class DecisionSinks:
    """Where each decision record goes besides the log line: the audit trail, the console's
    recent-decisions view. Sinks must not block (the audit trail writes behind)."""

    def __init__(self) -> None:
        self.sinks: list[Callable[[dict[str, Any]], None]] = []

    def __call__(self, record: dict[str, Any]) -> None:
        for sink in self.sinks:
            try:
                sink(record)
            except Exception:  # the call already happened: keep the whole record in the log instead
                decision_log.exception("decision_sink_failed", unwritten=_redacted(record))


_SINK_REDACTOR = Redactor()


def _redacted(record: dict[str, Any]) -> Any:
    """A record as the audit trail would have stored it: the log is not a way around redaction."""
    try:
        return _SINK_REDACTOR.sanitize(record)
    except Exception as exc:
        return f"(unrepresentable: {type(exc).__name__})"


T = TypeVar("T")


def need(value: T | None, what: str) -> T:
    """A stage's precondition. Unlike ``assert`` it survives ``python -O``, and it fails closed."""
    if value is None:
        raise GatekeeperError(f"internal error: no {what} at this stage; the call was not forwarded")
    return value


def without(stages: Sequence[Stage], *left_out: Stage) -> tuple[Stage, ...]:
    """The same stage list less some stages, in the same order (``without(INVOKE_STAGES, forward)``:
    decide and record, but run nothing)."""
    return tuple(stage for stage in stages if stage not in left_out)


async def run(stages: Sequence[Stage], exchange: Exchange) -> None:
    """Run stages in order until one halts or raises. GatekeeperErrors are kept on the exchange."""
    try:
        for stage in stages:
            waiting = stage(exchange)
            if waiting is not None:
                await waiting
    except Halt:
        return
    except GatekeeperError as exc:
        exchange.error = exc
    except Exception:  # a bug or a store driver's own error: refuse, and record it as an error
        decision_log.exception("stage_failed", decision_id=exchange.decision_id)
        exchange.error = GatekeeperError("internal error; the call was refused")


# Refusals that come from a failure, not from policy: refused even in monitor mode.
FAILURE_CODES = frozenset({codes.INSPECTOR_ERROR, codes.POLICY_ERROR, codes.BUDGET_UNAVAILABLE})


def outcome_of(exchange: Exchange) -> str:
    """allowed / denied / pending by the decision; ``error`` when no decision was reached."""
    if exchange.decision is None:
        return "error"
    return {"allow": "allowed", "deny": "denied", "escalate": "pending"}[exchange.decision.outcome]


def record(
    exchange: Exchange,
    metrics: Metrics | None,
    mode: str = "enforce",
    sink: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """One structured record per decision (and per refused request). No secrets, ever.

    The log line carries no arguments; the sinks' record (audit trail, recent decisions) is one
    fresh dict, shared by the sinks, which only read it.
    """
    elapsed = time.perf_counter() - exchange.started
    decision = exchange.decision
    outcome = outcome_of(exchange)
    error = exchange.error
    code = error.code if error else (decision.code if decision else "unknown")
    principal = exchange.principal
    call = exchange.call
    rule = decision.rule if decision else None
    entry: dict[str, Any] = {
        "decision_id": exchange.decision_id,
        "entry": exchange.entry,
        "principal": principal.subject if principal else None,
        "roles": list(principal.roles) if principal else None,
        "tool": exchange.tool,
        "digest": call.digest if call else None,
        "capabilities": [c.name for c in call.capabilities] if call else None,
        "outcome": outcome,
        "code": code,
        "rule": rule,
        "reason": decision.reason if decision else (error.message if error else None),
        "enforced": exchange.enforced,
        "mode": mode,
        "policy_version": decision.policy_version if decision else None,
        "approval_id": exchange.approval_id,
        "shadow": _shadow_summary(exchange),
        "latency_ms": round(elapsed * 1000, 3),
    }
    if exchange.request_id is not None:
        entry["extra"] = {"request_id": exchange.request_id}
    line = {
        **entry,
        "delivery": exchange.delivery,  # "client_gone": the caller left before its answer was written
        "capability": decision.capability if decision else None,
        "upstream_ms": round(exchange.upstream_seconds * 1000, 3)
        if exchange.upstream_seconds is not None
        else None,
        "request_id": exchange.request_id,
    }
    line.pop("extra", None)
    if not info_line("decision", line):
        decision_log.info("decision", **line)
    if sink is not None:  # the audit trail and the console's recent decisions
        entry["time"] = time.time()
        entry["issuer"] = principal.issuer if principal else None
        entry["arguments"] = call.arguments if call else None
        if exchange.delivery is not None:
            entry["extra"] = {"delivery": exchange.delivery}
        sink(entry)
    if metrics is not None:
        metrics.decision_counter(
            outcome, exchange.tool if exchange.tool and call else "-", code, rule or "-", exchange.entry
        ).inc()
        if decision is not None:
            metrics.decision_seconds.observe(elapsed - (exchange.upstream_seconds or 0.0))
        if (
            exchange.shadow is not None
            and decision is not None
            and exchange.shadow.outcome != decision.outcome
        ):
            metrics.shadow_disagreements.labels(live=decision.outcome, shadow=exchange.shadow.outcome).inc()


def _shadow_summary(exchange: Exchange) -> dict[str, Any] | None:
    shadow = exchange.shadow
    if shadow is None:
        return None
    live = exchange.decision.outcome if exchange.decision else None
    return {
        "would": {"allow": "allow", "deny": "deny", "escalate": "escalate"}[shadow.outcome],
        "code": shadow.code,
        "rule": shadow.rule,
        "policy_version": shadow.policy_version,
        "disagrees": live is not None and shadow.outcome != live,
    }

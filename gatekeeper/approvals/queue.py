"""Hold escalated calls until operators decide, then resume them.

A held call is an awaitable: it waits on an event with a deadline (the caller's
wait, or the approval's expiry, whichever is first). Any store change for its
approval — from this process or, with PostgreSQL, from another replica — wakes
it, and it re-reads the approval. An approved call is consumed atomically before
it runs, so it runs at most once however many identical retries race for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from urllib.parse import quote

import structlog

from gatekeeper import codes

from ..errors import ApprovalError, NotFound, PendingCapExceeded, RequestError
from ..escalation import Pending, Progress
from ..metrics import Metrics
from ..models import Decision, Outcome, Principal, ToolCall
from ..tasks import BackgroundTasks
from .models import Approval, Change, Grant, State, new_id
from .risk import risk_reasons
from .settings import ApprovalSettings
from .store import ApprovalStore
from .webhook import WebhookNotifier

log = structlog.get_logger("gatekeeper.approvals")


class ApprovalQueue:
    """The EscalationHandler backed by an ApprovalStore (and the operators' votes)."""

    def __init__(
        self,
        store: ApprovalStore,
        settings: ApprovalSettings,
        *,
        notifier: WebhookNotifier | None = None,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics
        self.store = store
        self.settings = settings
        self.notifier = notifier
        # Where operators open the console; the app sets it to the operator listener's address
        # once bound, unless approvals.console_url names the address operators really use.
        self.console_url = settings.console_url or ""
        self._clock = clock
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._listeners: set[Callable[[Change], None]] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._tasks = BackgroundTasks()  # the expiry sweeper
        self._closing = False

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        await self.store.open()
        self._unsubscribe = self.store.subscribe(self._on_change)
        if self.notifier is not None:
            await self.notifier.start()
        self._tasks.spawn(self._sweep(), name="approval-expiry-sweeper")

    def release_waiters(self) -> None:
        """On shutdown: every held caller gets its 202 "pending" reply now; the approval stays."""
        self._closing = True
        for events in self._waiters.values():
            for event in events:
                event.set()
        for listener in list(self._listeners):  # live event streams end now, not at their next keepalive
            with contextlib.suppress(Exception):
                listener(Change("closing"))

    async def stop(self) -> None:
        self.release_waiters()
        await self._tasks.cancel_all()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self.notifier is not None:
            await self.notifier.stop()
        await self.store.close()

    # --- change fan-out --------------------------------------------------------------------
    def _on_change(self, change: Change) -> None:
        if change.approval_id is not None:
            for event in self._waiters.get(change.approval_id, ()):
                event.set()
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:  # a broken listener must not stop the fan-out
                log.exception("approval_listener_failed")

    def link(self, approval_id: str) -> str:
        """The console's page for one approval: what a webhook or a chat message points at."""
        return f"{self.console_url}/console/approvals/{quote(approval_id, safe='')}"

    def listen(self, callback: Callable[[Change], None]) -> Callable[[], None]:
        self._listeners.add(callback)
        return lambda: self._listeners.discard(callback)

    def _notify(self, event: str, approval: Approval | None = None, grant: Grant | None = None) -> None:
        if self.notifier is None:
            return
        payload = {
            "approval": approval.to_json() if approval else None,
            "grant": grant.to_json() if grant else None,
            "link": self.link(approval.id) if approval else None,
        }
        self.notifier.notify(event, payload)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_interval_seconds)
            try:
                now = self._clock()
                for approval in await self.store.expire_due(now=now):
                    unused = approval.approvals >= approval.required_approvals  # approved, never used
                    log.info(
                        "approval_expired",
                        approval_id=approval.id,
                        principal=approval.principal,
                        approved_unused=unused,
                    )
                    self._notify("expired", approval)
                    if not unused:
                        self._observe_wait(approval, now, "expired")
                if self.metrics is not None:
                    self.metrics.approvals_pending.set(await self.store.count(state="pending"))
            except Exception:  # the store may be briefly unreachable; waiters still honour deadlines
                log.exception("approval_sweep_failed")

    # --- holding calls (the EscalationHandler side) ----------------------------------------
    async def hold(
        self,
        call: ToolCall,
        decision: Decision,
        *,
        wait_seconds: float | None,
        progress: Progress | None = None,
    ) -> Decision | Pending:
        principal = call.principal
        now = self._clock()
        grant = await self.store.find_grant(principal.subject, call.digest, now=now)
        if grant is not None:
            return _resolved(
                decision,
                Outcome.ALLOW,
                codes.GRANTED,
                f"allowed by grant {grant.id} from {grant.granted_by} until {grant.expires_at:.0f}",
            )
        used = await self.store.consume_matching(principal.subject, call.digest, now=now)
        if used is not None:
            return _resolved(decision, Outcome.ALLOW, codes.APPROVED, approved_reason(used), used.id)
        if self.settings.denial_stands_seconds > 0:
            denied = await self.store.last_denied(
                principal.subject, call.digest, since=now - self.settings.denial_stands_seconds
            )
            if denied is not None:  # operators said no to exactly this call: say it again, with why
                return _resolved(
                    decision, Outcome.DENY, codes.APPROVAL_DENIED, denied_reason(denied), denied.id
                )
        try:
            approval, created = await self.store.create_pending(
                self._new_approval(call, decision, principal, now),
                max_pending_per_principal=self.settings.max_pending_per_principal,
            )
        except PendingCapExceeded as exc:
            return _resolved(decision, Outcome.DENY, exc.code, exc.message)
        if created:
            log.info("approval_created", approval_id=approval.id, principal=principal.subject, tool=call.tool)
            self._notify("created", approval)
        wait = self.settings.default_wait_seconds if wait_seconds is None else wait_seconds
        deadline = now + max(0.0, min(wait, self.settings.max_wait_seconds))
        return await self._wait(approval, deadline, decision, progress)

    def _new_approval(self, call: ToolCall, decision: Decision, principal: Principal, now: float) -> Approval:
        return Approval(
            id=new_id("apr"),
            state=State.PENDING,
            principal=principal.subject,
            roles=principal.roles,
            tool=call.tool,
            arguments=call.arguments,
            digest=call.digest,
            capabilities=tuple(c.name for c in call.capabilities),
            rule=decision.rule,
            reason=decision.reason,
            created_at=now,
            expires_at=now + self.settings.ttl_seconds,
            required_approvals=max(1, decision.quorum),
            capability=decision.capability,
            quorum_rule=decision.quorum_rule,
        )

    async def _wait(
        self, approval: Approval, deadline: float, decision: Decision, progress: Progress | None
    ) -> Decision | Pending:
        event = asyncio.Event()
        self._waiters.setdefault(approval.id, set()).add(event)
        started = self._clock()
        last_progress = started
        try:
            while True:
                current = await self.store.get(approval.id)
                now = self._clock()
                if current is None:
                    return _resolved(decision, Outcome.DENY, codes.APPROVAL_LOST, "the approval disappeared")
                if current.state in (State.PENDING, State.APPROVED) and now >= current.expires_at:
                    for expired in await self.store.expire_due(now=now):
                        self._notify("expired", expired)
                    continue
                outcome = await self._settled(current, decision)
                if outcome is not None:
                    return outcome
                if now >= deadline or self._closing:
                    return Pending(current.id, current.expires_at)
                timeout = min(deadline, current.expires_at) - now
                if progress is not None:
                    interval = self.settings.progress_interval_seconds
                    timeout = min(timeout, max(0.0, last_progress + interval - now))
                    if now - last_progress >= interval or now == started:
                        last_progress = now
                        await progress(now - started, deadline - started)
                event.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), timeout=max(timeout, 0.0) + 0.001)
        finally:
            waiters = self._waiters.get(approval.id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[approval.id]

    async def _settled(self, current: Approval, decision: Decision) -> Decision | None:
        if current.state is State.APPROVED:
            used = await self.store.consume(current.id, now=self._clock())
            if used is None:
                return _resolved(
                    decision,
                    Outcome.DENY,
                    codes.APPROVAL_USED,
                    "this approval was already used by an identical call",
                    current.id,
                )
            return _resolved(decision, Outcome.ALLOW, codes.APPROVED, approved_reason(used), used.id)
        if current.state is State.DENIED:
            return _resolved(
                decision, Outcome.DENY, codes.APPROVAL_DENIED, denied_reason(current), current.id
            )
        if current.state is State.EXPIRED:
            return _resolved(
                decision,
                Outcome.DENY,
                codes.APPROVAL_EXPIRED,
                "no operator decided before the approval expired",
                current.id,
            )
        if current.state is State.CONSUMED:
            return _resolved(
                decision,
                Outcome.DENY,
                codes.APPROVAL_USED,
                "this approval was already used by an identical call",
                current.id,
            )
        return None

    # --- the operators' side ---------------------------------------------------------------
    async def vote(
        self,
        approval_id: str,
        operator: Principal,
        verdict: str,
        comment: str,
        grant_minutes: float | None = None,
    ) -> Approval:
        if verdict not in ("approve", "deny"):
            raise ApprovalError(
                f"verdict must be approve or deny, not {verdict!r}", code=codes.INVALID_VERDICT
            )
        if grant_minutes is not None and not 0 < grant_minutes <= self.settings.max_grant_minutes:
            raise ApprovalError(
                f"grant_minutes must be between 0 and {self.settings.max_grant_minutes:g}",
                code=codes.INVALID_GRANT,
            )
        if verdict == "approve" and not comment.strip():
            current = await self.get(approval_id)
            reasons = risk_reasons(current, self.settings.high_risk)
            if reasons and current.state is State.PENDING:
                raise RequestError(
                    f"approving a high-risk call needs a comment saying why ({'; '.join(reasons)}); "
                    "send one (CLI: --comment)",
                    code=codes.COMMENT_REQUIRED,
                    reasons=reasons,
                )
        now = self._clock()
        approval = await self.store.vote(
            approval_id,
            operator=operator.subject,
            verdict=verdict,
            comment=comment,
            now=now,
            grant_seconds=grant_minutes * 60 if grant_minutes is not None else None,
            use_by=now + self.settings.approved_ttl_seconds,
        )
        log.info(
            "approval_vote",
            approval_id=approval_id,
            operator=operator.subject,
            verdict=verdict,
            state=str(approval.state),
        )
        if approval.state in (State.APPROVED, State.DENIED):
            self._observe_wait(approval, now, str(approval.state))
        if approval.state is State.APPROVED:
            self._notify("approved", approval)
            if approval.grant_seconds:
                grant = await self.store.add_grant(
                    Grant(
                        id=new_id("grt"),
                        principal=approval.principal,
                        tool=approval.tool,
                        digest=approval.digest,
                        approval_id=approval.id,
                        granted_by=operator.subject,
                        comment=comment,
                        created_at=now,
                        expires_at=now + approval.grant_seconds,
                    )
                )
                self._notify("grant", approval, grant)
        elif approval.state is State.DENIED:
            self._notify("denied", approval)
        return approval

    def _observe_wait(self, approval: Approval, now: float, result: str) -> None:
        if self.metrics is not None:
            self.metrics.approval_wait_seconds.labels(result=result).observe(
                max(0.0, now - approval.created_at)
            )

    async def revoke_grant(self, grant_id: str, operator: Principal) -> Grant:
        now = self._clock()
        grant = await self.store.revoke_grant(grant_id, operator=operator.subject, now=now)
        if grant.approval_id is not None:  # the approval behind the grant must not outlive it
            await self.store.consume(grant.approval_id, now=now)
        self._notify("revoked", grant=grant)
        return grant

    async def get(self, approval_id: str) -> Approval:
        approval = await self.store.get(approval_id)
        if approval is None:
            raise NotFound(f"no approval {approval_id!r}")
        return approval


def approved_reason(approval: Approval) -> str:
    names = ", ".join(v.operator for v in approval.votes if v.verdict == "approve")
    return f"approved by {names}" if names else "approved"


def denied_reason(approval: Approval) -> str:
    """Who denied it and the comment they gave: the agent (and its model) learn why."""
    deny = next((v for v in approval.votes if v.verdict == "deny"), None)
    if deny is None:
        return "an operator denied it"
    return f"denied by {deny.operator}" + (f": {deny.comment}" if deny.comment else "")


def _resolved(
    decision: Decision, outcome: Outcome, code: str, reason: str, approval_id: str | None = None
) -> Decision:
    return Decision(
        outcome,
        code,
        reason,
        decision.rule,
        capability=decision.capability,
        matched=decision.matched,
        policy_version=decision.policy_version,
        approval_id=approval_id,
        quorum=decision.quorum,
        quorum_rule=decision.quorum_rule,
    )

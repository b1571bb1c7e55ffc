"""Approvals, votes and grants: the values the store keeps and the API shows.

Life of an approval::

    pending ──(quorum of approve votes)──▶ approved ──(the call runs once)──▶ consumed
       │ └──────────(any deny vote)──────▶ denied
       └────────────(expires_at passes)──▶ expired
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass, field
from typing import Any

from ..timefmt import iso8601, iso8601_or_none


class State(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    CONSUMED = "consumed"


FINAL_STATES = frozenset({State.DENIED, State.EXPIRED, State.CONSUMED})


def new_id(prefix: str) -> str:
    """Unguessable ids (144 random bits): knowing one approval tells nothing about another."""
    return f"{prefix}_{secrets.token_urlsafe(18)}"


@dataclass(frozen=True, slots=True)
class Vote:
    operator: str
    verdict: str  # "approve" | "deny"
    comment: str
    at: float


@dataclass(frozen=True, slots=True)
class Approval:
    id: str
    state: State
    principal: str
    roles: tuple[str, ...]
    tool: str
    arguments: dict[str, Any]
    digest: str
    capabilities: tuple[str, ...]
    rule: str | None
    reason: str
    created_at: float
    expires_at: float
    required_approvals: int = 1
    votes: tuple[Vote, ...] = ()
    decided_at: float | None = None
    consumed_at: float | None = None
    grant_seconds: float | None = None  # set when the approving vote asked for a time-boxed grant
    capability: str | None = None  # the capability whose rule held the call (``rule`` is that rule)
    quorum_rule: str | None = None  # when more than one operator must approve: the rule asking so

    @property
    def approvals(self) -> int:
        return sum(1 for v in self.votes if v.verdict == "approve")

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": str(self.state),
            "principal": self.principal,
            "roles": list(self.roles),
            "tool": self.tool,
            "arguments": self.arguments,
            "digest": self.digest,
            "capabilities": list(self.capabilities),
            "rule": self.rule,
            "capability": self.capability,
            "quorum_rule": self.quorum_rule,
            "reason": self.reason,
            "created_at": iso8601(self.created_at),
            "expires_at": iso8601(self.expires_at),
            "required_approvals": self.required_approvals,
            "approvals": self.approvals,
            "votes": [
                {"operator": v.operator, "verdict": v.verdict, "comment": v.comment, "at": iso8601(v.at)}
                for v in self.votes
            ],
            "decided_at": iso8601_or_none(self.decided_at),
            "consumed_at": iso8601_or_none(self.consumed_at),
        }


@dataclass(frozen=True, slots=True)
class Grant:
    """ "This same call, for this principal, for the next T minutes" — granted by an operator."""

    id: str
    principal: str
    tool: str
    digest: str
    approval_id: str | None
    granted_by: str
    comment: str
    created_at: float
    expires_at: float
    revoked_at: float | None = None
    revoked_by: str | None = None
    uses: int = 0

    def active(self, now: float) -> bool:
        return self.revoked_at is None and now < self.expires_at

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "principal": self.principal,
            "tool": self.tool,
            "digest": self.digest,
            "approval_id": self.approval_id,
            "granted_by": self.granted_by,
            "comment": self.comment,
            "created_at": iso8601(self.created_at),
            "expires_at": iso8601(self.expires_at),
            "revoked_at": iso8601_or_none(self.revoked_at),
            "revoked_by": self.revoked_by,
            "uses": self.uses,
        }


@dataclass(frozen=True, slots=True)
class Change:
    """A queue change, for waiters, the live event stream and the webhook."""

    kind: str  # "created" | "vote" | "approved" | "denied" | "expired" | "consumed" | "grant" | "revoked"
    approval_id: str | None = None
    grant_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

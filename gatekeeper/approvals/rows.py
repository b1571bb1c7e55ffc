"""How approvals, votes and grants are laid out in rows, for both SQL stores: the column lists,
row → value conversion and value → parameter tuples (in column order). The SQL itself stays with
each store: placeholders, locking and conflict handling differ."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Protocol

from .models import Approval, Grant, State, Vote
from .stores import dumps

APPROVAL_COLUMNS = (
    "id, state, principal, roles, tool, arguments, digest, capabilities, rule, reason, created_at, "
    "expires_at, required_approvals, decided_at, consumed_at, grant_seconds, capability, quorum_rule"
)
# Columns added after the first release: each store adds them to a table made before.
ADDED_APPROVAL_COLUMNS = ("capability", "quorum_rule")
GRANT_COLUMNS = (
    "id, principal, tool, digest, approval_id, granted_by, comment, created_at, expires_at, "
    "revoked_at, revoked_by, uses"
)
VOTE_COLUMNS = "approval_id, operator, verdict, comment, at"


class Row(Protocol):
    """A result row addressed by column name (``asyncpg.Record``, ``aiosqlite.Row``)."""

    def __getitem__(self, key: str, /) -> Any: ...


def approval_from_row(row: Row, votes: Iterable[Vote] = ()) -> Approval:
    return Approval(
        id=row["id"],
        state=State(row["state"]),
        principal=row["principal"],
        roles=tuple(json.loads(row["roles"])),
        tool=row["tool"],
        arguments=json.loads(row["arguments"]),
        digest=row["digest"],
        capabilities=tuple(json.loads(row["capabilities"])),
        rule=row["rule"],
        reason=row["reason"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        required_approvals=row["required_approvals"],
        votes=tuple(votes),
        decided_at=row["decided_at"],
        consumed_at=row["consumed_at"],
        grant_seconds=row["grant_seconds"],
        capability=row["capability"],
        quorum_rule=row["quorum_rule"],
    )


def vote_from_row(row: Row) -> Vote:
    return Vote(row["operator"], row["verdict"], row["comment"], row["at"])


def grant_from_row(row: Row) -> Grant:
    return Grant(
        id=row["id"],
        principal=row["principal"],
        tool=row["tool"],
        digest=row["digest"],
        approval_id=row["approval_id"],
        granted_by=row["granted_by"],
        comment=row["comment"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        revoked_by=row["revoked_by"],
        uses=row["uses"],
    )


def new_approval_params(approval: Approval) -> tuple[Any, ...]:
    """The values of a new pending approval's columns, but ``state`` and the three that start
    NULL (``decided_at``, ``consumed_at``, ``grant_seconds``), in column order."""
    return (
        approval.id,
        approval.principal,
        dumps(list(approval.roles)),
        approval.tool,
        dumps(approval.arguments),
        approval.digest,
        dumps(list(approval.capabilities)),
        approval.rule,
        approval.reason,
        approval.created_at,
        approval.expires_at,
        approval.required_approvals,
        approval.capability,
        approval.quorum_rule,
    )


def grant_params(grant: Grant) -> tuple[Any, ...]:
    """The values of every ``GRANT_COLUMNS`` column, in order."""
    return (
        grant.id,
        grant.principal,
        grant.tool,
        grant.digest,
        grant.approval_id,
        grant.granted_by,
        grant.comment,
        grant.created_at,
        grant.expires_at,
        grant.revoked_at,
        grant.revoked_by,
        grant.uses,
    )

"""The approval-store contract, run against SQLite and the real PostgreSQL alike.

Then the properties only one backend has: SQLite surviving SIGKILL, PostgreSQL replicas
learning of each other's decisions through LISTEN/NOTIFY.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import statistics
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gatekeeper.approvals.models import Approval, Change, Grant, State, new_id
from gatekeeper.approvals.store import ApprovalStore
from gatekeeper.errors import (
    ApprovalError,
    ApprovalForbidden,
    ConfigError,
    NotFound,
    PendingCapExceeded,
    RequestError,
)

from ..helpers import postgres_dsn
from .conftest import StoreFactory

T0 = 1_700_000_000.0
CAP = 100


def pending(
    principal: str = "agent-1",
    digest: str = "d" * 64,
    *,
    at: float = T0,
    ttl: float = 300.0,
    required: int = 1,
    tool: str = "shell.exec",
    arguments: dict[str, Any] | None = None,
) -> Approval:
    return Approval(
        id=new_id("apr"),
        state=State.PENDING,
        principal=principal,
        roles=("agent", "builder"),
        tool=tool,
        arguments=arguments if arguments is not None else {"cmd": "rm -rf build", "cwd": "/workspace"},
        digest=digest,
        capabilities=("exec:shell", "fs:write:/workspace"),
        rule="escalate-destructive",
        reason="deletes files",
        created_at=at,
        expires_at=at + ttl,
        required_approvals=required,
    )


def grant(principal: str = "agent-1", digest: str = "d" * 64, *, at: float = T0, ttl: float = 600.0) -> Grant:
    return Grant(
        id=new_id("grt"),
        principal=principal,
        tool="shell.exec",
        digest=digest,
        approval_id=None,
        granted_by="op-1",
        comment="for the release",
        created_at=at,
        expires_at=at + ttl,
    )


async def approved(store: ApprovalStore, principal: str = "agent-1", digest: str = "d" * 64) -> Approval:
    a, _ = await store.create_pending(pending(principal, digest), max_pending_per_principal=CAP)
    result = await store.vote(a.id, operator="op-1", verdict="approve", comment="ok", now=T0 + 1)
    assert result.state is State.APPROVED
    return result


async def eventually(predicate: Callable[[], bool], within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


# -- create, dedupe, cap -------------------------------------------------------------------------


async def test_create_then_get_round_trips_every_field(store: ApprovalStore) -> None:
    args = {"cmd": "echo ünïcode ☃", "nested": {"list": [1, 2.5, None, True], "big": 2**60}, "empty": {}}
    a = pending(arguments=args, required=2)
    created, is_new = await store.create_pending(a, max_pending_per_principal=CAP)
    assert is_new
    assert created == a
    got = await store.get(a.id)
    assert got == a
    assert got is not None and got.to_json()["arguments"] == args
    assert await store.get("apr_unknown") is None


async def test_identical_pending_calls_collapse_into_one(store: ApprovalStore) -> None:
    first, created = await store.create_pending(pending(), max_pending_per_principal=CAP)
    again, created_again = await store.create_pending(pending(at=T0 + 5), max_pending_per_principal=CAP)
    assert created and not created_again
    assert again.id == first.id
    other_args, created_other = await store.create_pending(
        pending(digest="e" * 64), max_pending_per_principal=CAP
    )
    other_principal, created_op = await store.create_pending(
        pending(principal="agent-2"), max_pending_per_principal=CAP
    )
    assert created_other and created_op
    assert len({first.id, other_args.id, other_principal.id}) == 3
    assert await store.count(state="pending") == 3


async def test_concurrent_identical_calls_create_exactly_one(store: ApprovalStore) -> None:
    results = await asyncio.gather(
        *(store.create_pending(pending(), max_pending_per_principal=CAP) for _ in range(20))
    )
    assert sum(1 for _, created in results if created) == 1
    assert len({a.id for a, _ in results}) == 1
    assert await store.count(state="pending") == 1


async def test_after_a_denial_an_identical_call_is_a_new_approval(store: ApprovalStore) -> None:
    first, _ = await store.create_pending(pending(), max_pending_per_principal=CAP)
    await store.vote(first.id, operator="op-1", verdict="deny", comment="", now=T0 + 1)
    second, created = await store.create_pending(pending(at=T0 + 2), max_pending_per_principal=CAP)
    assert created and second.id != first.id


async def test_an_approved_unused_call_is_found_not_asked_again(store: ApprovalStore) -> None:
    """An operator may approve between the caller's consume_matching and its create_pending: the
    approval is returned, so the caller uses it instead of waiting on a new one nobody asked for."""
    first = await approved(store)
    again, created = await store.create_pending(pending(at=T0 + 2), max_pending_per_principal=CAP)
    assert not created and again.id == first.id and again.state is State.APPROVED
    assert await store.consume(first.id, now=T0 + 3) is not None
    third, created_third = await store.create_pending(pending(at=T0 + 4), max_pending_per_principal=CAP)
    assert created_third and third.id != first.id  # once used, an identical call asks again


async def test_an_expired_pending_approval_does_not_absorb_a_new_call(store: ApprovalStore) -> None:
    changes: list[Change] = []
    store.subscribe(changes.append)
    stale, _ = await store.create_pending(pending(ttl=10), max_pending_per_principal=1)
    fresh, created = await store.create_pending(pending(at=T0 + 10), max_pending_per_principal=1)
    assert created and fresh.id != stale.id
    old = await store.get(stale.id)
    assert old is not None and old.state is State.EXPIRED and old.decided_at == T0 + 10
    await eventually(lambda: [c.kind for c in changes] == ["created", "expired", "created"])


async def test_pending_cap_per_principal(store: ApprovalStore) -> None:
    for i in range(3):
        await store.create_pending(pending(digest=f"{i}" * 64), max_pending_per_principal=3)
    with pytest.raises(PendingCapExceeded) as err:
        await store.create_pending(pending(digest="x" * 64), max_pending_per_principal=3)
    assert err.value.status == 429 and err.value.code == "too_many_pending_approvals"
    # an identical call still collapses into its approval, and other principals are unaffected
    same, created = await store.create_pending(pending(digest="0" * 64), max_pending_per_principal=3)
    assert not created
    _, created_other = await store.create_pending(pending(principal="agent-2"), max_pending_per_principal=3)
    assert created_other
    # deciding one frees a slot
    await store.vote(same.id, operator="op-1", verdict="deny", comment="", now=T0 + 1)
    _, created_now = await store.create_pending(pending(digest="x" * 64), max_pending_per_principal=3)
    assert created_now
    assert await store.count(state="pending") == 4


async def test_pending_cap_holds_under_concurrency(store: ApprovalStore) -> None:
    results = await asyncio.gather(
        *(store.create_pending(pending(digest=f"{i:064d}"), max_pending_per_principal=5) for i in range(20)),
        return_exceptions=True,
    )
    assert sum(1 for r in results if isinstance(r, tuple)) == 5
    assert all(isinstance(r, (tuple, PendingCapExceeded)) for r in results)
    assert await store.count(state="pending") == 5


# -- reading -------------------------------------------------------------------------------------


async def test_list_and_count_by_state_newest_first(store: ApprovalStore) -> None:
    ids = []
    for i in range(6):
        a, _ = await store.create_pending(
            pending(digest=f"{i:064d}", at=T0 + i), max_pending_per_principal=CAP
        )
        ids.append(a.id)
    await store.vote(ids[1], operator="op-1", verdict="deny", comment="no", now=T0 + 10)
    await store.vote(ids[4], operator="op-1", verdict="approve", comment="yes", now=T0 + 10)

    everything = await store.list_approvals()
    assert [a.id for a in everything] == ids[::-1]
    assert [a.id for a in await store.list_approvals(state="pending")] == [ids[5], ids[3], ids[2], ids[0]]
    assert [a.id for a in await store.list_approvals(state="pending", limit=2, offset=1)] == [ids[3], ids[2]]
    denied = await store.list_approvals(state="denied")
    assert [a.id for a in denied] == [ids[1]]
    assert denied[0].votes[0].comment == "no"
    assert await store.count() == 6
    assert await store.count(state="pending") == 4
    assert await store.count(state="approved") == 1
    assert await store.count(state="consumed") == 0
    with pytest.raises(RequestError):
        await store.list_approvals(state="bogus")
    with pytest.raises(RequestError):
        await store.count(state="bogus")


# -- votes ---------------------------------------------------------------------------------------


async def test_quorum_of_two_distinct_operators(store: ApprovalStore) -> None:
    a, _ = await store.create_pending(pending(required=2), max_pending_per_principal=CAP)
    one = await store.vote(a.id, operator="op-1", verdict="approve", comment="looks fine", now=T0 + 1)
    assert one.state is State.PENDING and one.approvals == 1 and one.decided_at is None
    with pytest.raises(ApprovalError) as err:
        await store.vote(a.id, operator="op-1", verdict="approve", comment="again", now=T0 + 2)
    assert err.value.status == 409 and err.value.code == "already_voted"
    two = await store.vote(
        a.id, operator="op-2", verdict="approve", comment="agreed", now=T0 + 3, grant_seconds=900.0
    )
    assert two.state is State.APPROVED and two.approvals == 2
    assert two.decided_at == T0 + 3 and two.grant_seconds == 900.0
    assert [(v.operator, v.verdict, v.comment, v.at) for v in two.votes] == [
        ("op-1", "approve", "looks fine", T0 + 1),
        ("op-2", "approve", "agreed", T0 + 3),
    ]
    assert await store.get(a.id) == two


async def test_concurrent_votes_reach_quorum_once(store: ApprovalStore) -> None:
    changes: list[Change] = []
    store.subscribe(changes.append)
    a, _ = await store.create_pending(pending(required=2), max_pending_per_principal=CAP)
    results = await asyncio.gather(
        *(store.vote(a.id, operator=f"op-{i}", verdict="approve", comment="", now=T0 + 1) for i in range(6)),
        return_exceptions=True,
    )
    ok = [r for r in results if isinstance(r, Approval)]
    refused = [r for r in results if isinstance(r, ApprovalError)]
    assert len(ok) == 2 and len(refused) == 4
    assert {r.code for r in refused} == {"not_pending"}
    final = await store.get(a.id)
    assert final is not None and final.state is State.APPROVED and final.approvals == 2
    await eventually(lambda: [c.kind for c in changes] == ["created", "vote", "approved"])


async def test_same_operator_voting_twice_at_once_counts_once(store: ApprovalStore) -> None:
    a, _ = await store.create_pending(pending(required=3), max_pending_per_principal=CAP)
    results = await asyncio.gather(
        *(store.vote(a.id, operator="op-1", verdict="approve", comment="", now=T0 + 1) for _ in range(5)),
        return_exceptions=True,
    )
    assert sum(1 for r in results if isinstance(r, Approval)) == 1
    assert {r.code for r in results if isinstance(r, ApprovalError)} == {"already_voted"}
    final = await store.get(a.id)
    assert final is not None and final.approvals == 1 and final.state is State.PENDING


async def test_one_deny_denies_at_once(store: ApprovalStore) -> None:
    a, _ = await store.create_pending(pending(required=2), max_pending_per_principal=CAP)
    await store.vote(a.id, operator="op-1", verdict="approve", comment="", now=T0 + 1)
    denied = await store.vote(a.id, operator="op-2", verdict="deny", comment="too risky", now=T0 + 2)
    assert denied.state is State.DENIED and denied.decided_at == T0 + 2


async def test_last_denied_finds_the_newest_denial_of_exactly_this_call(store: ApprovalStore) -> None:
    assert await store.last_denied("agent-1", "d" * 64, since=T0) is None
    first, _ = await store.create_pending(pending(), max_pending_per_principal=CAP)
    await store.vote(first.id, operator="op-1", verdict="deny", comment="no", now=T0 + 2)
    second, _ = await store.create_pending(pending(at=T0 + 3), max_pending_per_principal=CAP)
    await store.vote(second.id, operator="op-2", verdict="deny", comment="still no", now=T0 + 4)
    other, _ = await store.create_pending(pending(principal="agent-2"), max_pending_per_principal=CAP)
    await store.vote(other.id, operator="op-1", verdict="deny", comment="", now=T0 + 5)
    found = await store.last_denied("agent-1", "d" * 64, since=T0)
    assert found is not None and found.id == second.id and found.votes[0].comment == "still no"
    assert await store.last_denied("agent-1", "d" * 64, since=T0 + 4.5) is None  # too long ago
    assert await store.last_denied("agent-1", "e" * 64, since=T0) is None
    assert await store.last_denied("agent-1%", "d" * 64, since=T0) is None
    approved_one = await approved(store, principal="agent-3")
    assert await store.last_denied("agent-3", approved_one.digest, since=T0) is None


async def test_nobody_approves_their_own_call(store: ApprovalStore) -> None:
    a, _ = await store.create_pending(pending(principal="alice"), max_pending_per_principal=CAP)
    for verdict in ("approve", "deny"):
        with pytest.raises(ApprovalForbidden) as err:
            await store.vote(a.id, operator="alice", verdict=verdict, comment="", now=T0 + 1)
        assert err.value.status == 403 and err.value.code == "self_approval"
    still = await store.get(a.id)
    assert still is not None and still.state is State.PENDING and still.votes == ()


async def test_votes_on_unknown_or_bad_input_are_refused(store: ApprovalStore) -> None:
    with pytest.raises(NotFound):
        await store.vote("apr_nope", operator="op-1", verdict="approve", comment="", now=T0)
    a, _ = await store.create_pending(pending(), max_pending_per_principal=CAP)
    with pytest.raises(RequestError):
        await store.vote(a.id, operator="op-1", verdict="maybe", comment="", now=T0)


async def test_no_vote_lands_on_a_decided_approval(store: ApprovalStore) -> None:
    denied, _ = await store.create_pending(pending(digest="1" * 64), max_pending_per_principal=CAP)
    await store.vote(denied.id, operator="op-1", verdict="deny", comment="", now=T0 + 1)
    expired, _ = await store.create_pending(pending(digest="2" * 64, ttl=5), max_pending_per_principal=CAP)
    assert [a.id for a in await store.expire_due(now=T0 + 5)] == [expired.id]
    consumed = await approved(store, digest="3" * 64)
    assert await store.consume(consumed.id, now=T0 + 2) is not None
    approved_one = await approved(store, digest="4" * 64)

    for target in (denied, expired, consumed, approved_one):
        for verdict in ("approve", "deny"):
            with pytest.raises(ApprovalError) as err:
                await store.vote(target.id, operator="op-9", verdict=verdict, comment="", now=T0 + 3)
            assert err.value.status == 409 and err.value.code == "not_pending"
    states = {a.id: a.state for a in await store.list_approvals()}
    assert states == {
        denied.id: State.DENIED,
        expired.id: State.EXPIRED,
        consumed.id: State.CONSUMED,
        approved_one.id: State.APPROVED,
    }


async def test_a_vote_after_expiry_marks_it_expired(store: ApprovalStore) -> None:
    changes: list[Change] = []
    store.subscribe(changes.append)
    a, _ = await store.create_pending(pending(ttl=60, required=2), max_pending_per_principal=CAP)
    await store.vote(a.id, operator="op-1", verdict="approve", comment="", now=T0 + 1)
    with pytest.raises(ApprovalError) as err:
        await store.vote(a.id, operator="op-2", verdict="approve", comment="", now=T0 + 60)
    assert err.value.status == 409 and err.value.code == "approval_expired"
    got = await store.get(a.id)
    assert got is not None and got.state is State.EXPIRED and got.decided_at == T0 + 60
    assert [v.operator for v in got.votes] == ["op-1"]
    with pytest.raises(ApprovalError) as again:
        await store.vote(a.id, operator="op-1", verdict="approve", comment="", now=T0 + 61)
    assert again.value.code == "not_pending"
    await eventually(lambda: [c.kind for c in changes] == ["created", "vote", "expired"])


# -- consume -------------------------------------------------------------------------------------


async def test_an_approved_call_is_consumed_at_most_once(store: ApprovalStore) -> None:
    a = await approved(store)
    results = await asyncio.gather(
        *(store.consume(a.id, now=T0 + 5) for _ in range(20)),
        *(store.consume_matching(a.principal, a.digest, now=T0 + 5) for _ in range(20)),
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert winners[0].id == a.id and winners[0].state is State.CONSUMED and winners[0].consumed_at == T0 + 5
    assert await store.consume(a.id, now=T0 + 6) is None
    assert await store.consume_matching(a.principal, a.digest, now=T0 + 6) is None
    final = await store.get(a.id)
    assert final is not None and final.state is State.CONSUMED and final.consumed_at == T0 + 5


async def test_two_store_instances_race_and_consume_once(make_store: StoreFactory) -> None:
    """Two processes (or replicas) on one database: still exactly one execution."""
    one, two = make_store(), make_store()
    await one.open()
    await two.open()
    try:
        a = await approved(one)
        results = await asyncio.gather(
            *(s.consume_matching(a.principal, a.digest, now=T0 + 5) for s in (one, two) for _ in range(10)),
            *(s.consume(a.id, now=T0 + 5) for s in (one, two) for _ in range(10)),
        )
        assert sum(1 for r in results if r is not None) == 1
    finally:
        await one.close()
        await two.close()


async def test_consume_only_takes_approved_calls(store: ApprovalStore) -> None:
    a, _ = await store.create_pending(pending(), max_pending_per_principal=CAP)
    assert await store.consume(a.id, now=T0 + 1) is None
    assert await store.consume_matching(a.principal, a.digest, now=T0 + 1) is None
    assert await store.consume("apr_unknown", now=T0 + 1) is None
    got = await store.get(a.id)
    assert got is not None and got.state is State.PENDING


async def test_consume_matching_is_bound_to_principal_and_digest(store: ApprovalStore) -> None:
    a = await approved(store, principal="agent-1", digest="a" * 64)
    assert await store.consume_matching("agent-2", "a" * 64, now=T0 + 2) is None
    assert await store.consume_matching("agent-1", "b" * 64, now=T0 + 2) is None
    assert await store.consume_matching("agent-1", "a" * 63, now=T0 + 2) is None
    assert await store.consume_matching("agent-1%", "a" * 64, now=T0 + 2) is None
    got = await store.consume_matching("agent-1", "a" * 64, now=T0 + 2)
    assert got is not None and got.id == a.id


async def test_consume_matching_uses_an_approval_once(store: ApprovalStore) -> None:
    older = await approved(store)
    # a second identical call after the first was approved (not yet used) is that approval
    same, created = await store.create_pending(pending(at=T0 + 3), max_pending_per_principal=CAP)
    assert not created and same.id == older.id
    first = await store.consume_matching(older.principal, older.digest, now=T0 + 5)
    second = await store.consume_matching(older.principal, older.digest, now=T0 + 6)
    assert first is not None and first.id == older.id
    assert second is None


async def test_a_cancelled_caller_leaves_the_store_consistent(store: ApprovalStore) -> None:
    a = await approved(store)
    task = asyncio.ensure_future(store.consume(a.id, now=T0 + 2))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # whether or not the consume committed, the store works and the approval is used at most once
    again = await store.consume(a.id, now=T0 + 3)
    got = await store.get(a.id)
    assert got is not None and got.state is State.CONSUMED
    assert again is None or got.consumed_at == T0 + 3


# -- expiry --------------------------------------------------------------------------------------


async def test_expire_due(store: ApprovalStore) -> None:
    soon, _ = await store.create_pending(pending(digest="1" * 64, ttl=10), max_pending_per_principal=CAP)
    later, _ = await store.create_pending(pending(digest="2" * 64, ttl=100), max_pending_per_principal=CAP)
    a, _ = await store.create_pending(pending(digest="3" * 64, ttl=5), max_pending_per_principal=CAP)
    # approved: no longer waiting; from now on it must be used by its use-by time
    decided = await store.vote(
        a.id, operator="op-1", verdict="approve", comment="ok", now=T0 + 1, use_by=T0 + 5000
    )
    assert decided.state is State.APPROVED and decided.expires_at == T0 + 5000
    assert await store.expire_due(now=T0 + 9.999) == []
    expired = await store.expire_due(now=T0 + 10)
    assert [a.id for a in expired] == [soon.id]
    assert expired[0].state is State.EXPIRED and expired[0].decided_at == T0 + 10
    assert await store.expire_due(now=T0 + 10) == []
    assert [a.id for a in await store.expire_due(now=T0 + 1000)] == [later.id]
    still = await store.get(decided.id)
    assert still is not None and still.state is State.APPROVED


async def test_an_approved_call_never_used_expires_at_its_use_by(store: ApprovalStore) -> None:
    a, _ = await store.create_pending(pending(ttl=300), max_pending_per_principal=CAP)
    await store.vote(a.id, operator="op-1", verdict="approve", comment="ok", now=T0 + 1, use_by=T0 + 61)
    assert await store.consume_matching("agent-1", "d" * 64, now=T0 + 61) is None  # too late to use
    assert await store.consume(a.id, now=T0 + 61) is None
    expired = await store.expire_due(now=T0 + 61)
    assert [(e.id, e.state, e.decided_at) for e in expired] == [(a.id, State.EXPIRED, T0 + 1)]
    # within its use-by, an approved call is used as before
    b, _ = await store.create_pending(pending(ttl=300), max_pending_per_principal=CAP)
    await store.vote(b.id, operator="op-1", verdict="approve", comment="ok", now=T0 + 100, use_by=T0 + 160)
    used = await store.consume_matching("agent-1", "d" * 64, now=T0 + 159)
    assert used is not None and used.id == b.id


# -- grants --------------------------------------------------------------------------------------


async def test_grants(store: ApprovalStore) -> None:
    g = await store.add_grant(grant(ttl=600))
    assert g.uses == 0
    first = await store.find_grant("agent-1", "d" * 64, now=T0 + 1)
    second = await store.find_grant("agent-1", "d" * 64, now=T0 + 2)
    assert first is not None and second is not None
    assert (first.id, first.uses, second.uses) == (g.id, 1, 2)
    assert await store.find_grant("agent-2", "d" * 64, now=T0 + 1) is None
    assert await store.find_grant("agent-1", "e" * 64, now=T0 + 1) is None
    assert await store.find_grant("agent-1", "d" * 64, now=T0 + 600) is None  # expired

    other = await store.add_grant(grant(digest="f" * 64, at=T0 + 10, ttl=60))
    assert [x.id for x in await store.list_grants()] == [other.id, g.id]
    assert [x.id for x in await store.list_grants(active_at=T0 + 65)] == [other.id, g.id]
    assert [x.id for x in await store.list_grants(active_at=T0 + 70)] == [g.id]

    revoked = await store.revoke_grant(other.id, operator="op-2", now=T0 + 20)
    assert revoked.revoked_at == T0 + 20 and revoked.revoked_by == "op-2"
    assert not revoked.active(T0 + 21)
    assert await store.find_grant("agent-1", "f" * 64, now=T0 + 21) is None
    with pytest.raises(ApprovalError) as err:
        await store.revoke_grant(other.id, operator="op-3", now=T0 + 30)
    assert err.value.status == 409 and err.value.code == "already_revoked"
    with pytest.raises(NotFound):
        await store.revoke_grant("grt_unknown", operator="op-2", now=T0 + 30)
    assert [x.id for x in await store.list_grants(active_at=T0 + 21)] == [g.id]
    listed = {x.id: x for x in await store.list_grants()}
    assert listed[g.id].uses == 2 and listed[other.id].revoked_by == "op-2"


async def test_concurrent_grant_uses_are_all_counted(store: ApprovalStore) -> None:
    g = await store.add_grant(grant())
    found = await asyncio.gather(*(store.find_grant("agent-1", "d" * 64, now=T0 + 1) for _ in range(10)))
    assert all(f is not None and f.id == g.id for f in found)
    assert sorted(f.uses for f in found if f is not None) == list(range(1, 11))


# -- subscribe -----------------------------------------------------------------------------------


async def test_subscribers_see_every_kind_of_change(store: ApprovalStore) -> None:
    seen: list[Change] = []
    unsubscribe = store.subscribe(seen.append)

    a, _ = await store.create_pending(pending(digest="1" * 64, required=2), max_pending_per_principal=CAP)
    await store.vote(a.id, operator="op-1", verdict="approve", comment="", now=T0 + 1)
    await store.vote(a.id, operator="op-2", verdict="approve", comment="", now=T0 + 2)
    await store.consume(a.id, now=T0 + 3)
    b, _ = await store.create_pending(pending(digest="2" * 64), max_pending_per_principal=CAP)
    await store.vote(b.id, operator="op-1", verdict="deny", comment="", now=T0 + 4)
    c, _ = await store.create_pending(pending(digest="3" * 64, ttl=5), max_pending_per_principal=CAP)
    await store.expire_due(now=T0 + 10)
    g = await store.add_grant(grant())
    await store.revoke_grant(g.id, operator="op-1", now=T0 + 11)
    await store.create_pending(pending(digest="3" * 64, at=T0 + 20), max_pending_per_principal=CAP)
    dedupe, created = await store.create_pending(
        pending(digest="3" * 64, at=T0 + 21), max_pending_per_principal=CAP
    )
    assert not created  # a collapsed duplicate is not a change

    expected = [
        ("created", a.id, None),
        ("vote", a.id, None),
        ("approved", a.id, None),
        ("consumed", a.id, None),
        ("created", b.id, None),
        ("denied", b.id, None),
        ("created", c.id, None),
        ("expired", c.id, None),
        ("grant", None, g.id),
        ("revoked", None, g.id),
        ("created", dedupe.id, None),
    ]
    await eventually(lambda: len(seen) >= len(expected))
    assert [(x.kind, x.approval_id, x.grant_id) for x in seen] == expected
    assert seen[1].extra == {"operator": "op-1", "verdict": "approve"}

    unsubscribe()
    unsubscribe()  # idempotent
    await store.vote(dedupe.id, operator="op-1", verdict="deny", comment="", now=T0 + 22)
    await asyncio.sleep(0.05)
    assert len(seen) == len(expected)


async def test_a_failing_subscriber_does_not_hurt_others(store: ApprovalStore) -> None:
    def broken(change: Change) -> None:
        raise RuntimeError("subscriber bug")

    seen: list[Change] = []
    store.subscribe(broken)
    store.subscribe(seen.append)
    a, _ = await store.create_pending(pending(), max_pending_per_principal=CAP)
    await eventually(lambda: len(seen) == 1)
    assert await store.get(a.id) is not None


# -- persistence ---------------------------------------------------------------------------------


async def test_pending_approvals_survive_a_restart(make_store: StoreFactory) -> None:
    first = make_store()
    await first.open()
    a, _ = await first.create_pending(pending(required=2), max_pending_per_principal=CAP)
    await first.vote(a.id, operator="op-1", verdict="approve", comment="half", now=T0 + 1)
    g = await first.add_grant(grant())
    await first.close()

    second = make_store()
    await second.open()
    try:
        again = await second.get(a.id)
        assert again is not None and again.state is State.PENDING and again.approvals == 1
        assert [x.id for x in await second.list_approvals(state="pending")] == [a.id]
        assert [x.id for x in await second.list_grants()] == [g.id]
        done = await second.vote(a.id, operator="op-2", verdict="approve", comment="", now=T0 + 2)
        assert done.state is State.APPROVED
    finally:
        await second.close()


async def test_sqlite_pending_approval_survives_kill_9(tmp_path: Path) -> None:
    """A child process commits a pending approval, says "ok", and is SIGKILLed: the approval stays."""
    from gatekeeper.approvals.store_sqlite import SqliteApprovalStore

    path = tmp_path / "approvals.sqlite3"
    script = textwrap.dedent(
        f"""
        import asyncio, time
        from pathlib import Path
        from gatekeeper.approvals.store_sqlite import SqliteApprovalStore
        from tests.approvals.test_store_contract import pending

        async def main():
            store = SqliteApprovalStore(Path({str(path)!r}))
            await store.open()
            approval, created = await store.create_pending(pending(), max_pending_per_principal=10)
            print("ok", approval.id, flush=True)
            time.sleep(60)  # killed here: connection open, never closed cleanly

        asyncio.run(main())
        """
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE, cwd=Path(__file__).parents[2]
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    said, approval_id = line.decode().split()
    assert said == "ok"

    store = SqliteApprovalStore(path)
    await store.open()
    try:
        got = await store.get(approval_id)
        assert got is not None and got.state is State.PENDING
        assert got.arguments == pending().arguments
        assert [a.id for a in await store.list_approvals(state="pending")] == [approval_id]
    finally:
        await store.close()


async def test_sqlite_uses_wal_and_full_sync(tmp_path: Path) -> None:
    import aiosqlite

    from gatekeeper.approvals.store_sqlite import SqliteApprovalStore

    store = SqliteApprovalStore(tmp_path / "deep" / "dir" / "a.db")
    await store.open()
    try:
        sync = list(await store._conn().execute_fetchall("PRAGMA synchronous"))
        assert sync[0][0] == 2  # FULL: a committed change survives even a power cut
    finally:
        await store.close()
    async with aiosqlite.connect(tmp_path / "deep" / "dir" / "a.db") as db:
        rows = list(await db.execute_fetchall("PRAGMA journal_mode"))
    assert rows[0][0] == "wal"


# -- replicas and workers on one store ------------------------------------------------------------


async def test_a_replica_learns_of_a_vote_through_another_within_200ms(
    make_store: StoreFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    a_store, b_store = make_store(), make_store()
    await a_store.open()
    await b_store.open()
    try:
        arrived: dict[str, float] = {}

        def on_change(change: Change) -> None:
            if change.kind == "approved" and change.approval_id is not None:
                arrived[change.approval_id] = time.perf_counter()

        a_store.subscribe(on_change)
        latencies = []
        for i in range(20):
            held, _ = await a_store.create_pending(pending(digest=f"{i:064d}"), max_pending_per_principal=CAP)
            started = time.perf_counter()
            await b_store.vote(held.id, operator="op-1", verdict="approve", comment="", now=T0 + 1)
            await eventually(lambda held=held: held.id in arrived, within=2.0)
            latencies.append(arrived[held.id] - started)
            on_a = await a_store.get(held.id)
            assert on_a is not None and on_a.state is State.APPROVED
        median_ms = statistics.median(latencies) * 1000
        with capsys.disabled():
            print(
                f"\n{type(a_store).__name__}: vote on B -> A's subscriber: median {median_ms:.2f} ms, "
                f"max {max(latencies) * 1000:.2f} ms over {len(latencies)} rounds"
            )
        assert median_ms < 200
        assert max(latencies) < 1.0
    finally:
        await a_store.close()
        await b_store.close()


async def test_a_store_hears_its_own_changes_once(make_store: StoreFactory) -> None:
    """The shared change feed carries this store's changes to the others, not back to itself."""
    a_store, b_store = make_store(), make_store()
    await a_store.open()
    await b_store.open()
    try:
        on_a: list[Change] = []
        on_b: list[Change] = []
        a_store.subscribe(on_a.append)
        b_store.subscribe(on_b.append)
        held, _ = await a_store.create_pending(pending(), max_pending_per_principal=CAP)
        await eventually(lambda: any(c.approval_id == held.id for c in on_b), within=2.0)
        await asyncio.sleep(0.3)  # a few poll intervals: nothing more may arrive
        assert [(c.kind, c.approval_id) for c in on_a] == [("created", held.id)]
        assert [(c.kind, c.approval_id) for c in on_b] == [("created", held.id)]
    finally:
        await a_store.close()
        await b_store.close()


@pytest.mark.parametrize("backend", ["postgres"])
async def test_postgres_listener_reconnects_after_its_connection_drops(make_store: StoreFactory) -> None:
    from gatekeeper.approvals.store_postgres import PostgresApprovalStore

    a_store, b_store = make_store(), make_store()
    await a_store.open()
    await b_store.open()
    try:
        seen: list[Change] = []
        a_store.subscribe(seen.append)
        assert isinstance(a_store, PostgresApprovalStore)
        pid = a_store.listener_pid
        assert pid is not None
        conn = await asyncpg.connect(await postgres_dsn())
        try:
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await conn.close()
        await eventually(lambda: a_store.listener_pid not in (None, pid), within=10)
        held, _ = await b_store.create_pending(pending(), max_pending_per_principal=CAP)
        await eventually(lambda: any(c.approval_id == held.id for c in seen), within=5)
    finally:
        await a_store.close()
        await b_store.close()


@pytest.mark.parametrize("backend", ["postgres"])
async def test_postgres_schemas_do_not_hear_each_other(make_store: StoreFactory) -> None:
    from gatekeeper.approvals.store_postgres import PostgresApprovalStore

    dsn = await postgres_dsn()
    mine = make_store()
    other = PostgresApprovalStore(dsn, schema=f"gk_test_other_{secrets.token_hex(6)}")
    await mine.open()
    await other.open()
    try:
        seen: list[Change] = []
        mine.subscribe(seen.append)
        await other.create_pending(pending(), max_pending_per_principal=CAP)
        await asyncio.sleep(0.2)
        assert seen == []
        assert await mine.count() == 0
    finally:
        await mine.close()
        await other.close()
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{other.schema}" CASCADE')
        finally:
            await conn.close()


# -- open_store ----------------------------------------------------------------------------------


def test_open_store_chooses_the_backend(tmp_path: Path) -> None:
    from gatekeeper.approvals.store_postgres import PostgresApprovalStore
    from gatekeeper.approvals.store_sqlite import SqliteApprovalStore
    from gatekeeper.approvals.stores import open_store

    for value in ("", "sqlite"):
        s = open_store(value, tmp_path)
        assert isinstance(s, SqliteApprovalStore) and s.path == tmp_path / "approvals.sqlite3"
    s = open_store("/var/lib/gk/queue.db", tmp_path)
    assert isinstance(s, SqliteApprovalStore) and s.path == Path("/var/lib/gk/queue.db")
    s = open_store("queue.sqlite3", tmp_path)
    assert isinstance(s, SqliteApprovalStore) and s.path == tmp_path / "queue.sqlite3"
    for url in ("postgresql://gk@db:5432/gk", "postgres://gk:pw@db/gk"):
        assert isinstance(open_store(url, tmp_path), PostgresApprovalStore)


@pytest.mark.parametrize("value", ["mysql://u:secret@h/db", "approvals.json", "redis://h", "sqlite3"])
def test_open_store_refuses_anything_else_and_says_what_it_accepts(tmp_path: Path, value: str) -> None:
    from gatekeeper.approvals.stores import open_store

    with pytest.raises(ConfigError) as err:
        open_store(value, tmp_path)
    message = err.value.message
    assert "approvals.store" in message and "postgresql://" in message and ".sqlite3" in message
    assert "secret" not in message


async def test_an_mcp_session_keeps_its_first_owner_until_forgotten(store: ApprovalStore) -> None:
    assert await store.session_owner("k1") is None
    await store.bind_session("k1", "demo", "iss", "agent-1", now=1.0)
    await store.bind_session("k1", "demo", "iss", "agent-2", now=2.0)  # never rebound
    assert await store.session_owner("k1") == ("iss", "agent-1")
    await store.forget_session("k1")
    assert await store.session_owner("k1") is None


async def test_another_process_s_changes_reach_subscribers_and_idle_files_are_not_asked(
    make_store: StoreFactory, backend: str
) -> None:
    """Two stores on one database: what one commits reaches the other's subscribers. On SQLite
    the files are looked at every poll and the database asked only when they moved (or once a
    second): an idle store does not hop to its database thread ten times a second."""
    writer, reader = make_store(), make_store()
    await writer.open()
    await reader.open()
    try:
        seen: list[Change] = []
        reader.subscribe(seen.append)
        a, _ = await writer.create_pending(pending(digest="4" * 64), max_pending_per_principal=CAP)
        await eventually(lambda: any(c.approval_id == a.id for c in seen))
        await writer.vote(a.id, operator="op-1", verdict="approve", comment="", now=T0 + 1)
        await eventually(lambda: any(c.kind == "approved" and c.approval_id == a.id for c in seen))
        if backend != "sqlite":
            return
        from gatekeeper.approvals.store_sqlite import SqliteApprovalStore

        assert isinstance(reader, SqliteApprovalStore)
        feed = reader._feed  # the change log it polls: counted here, not changed
        asked = 0
        original = feed.poll

        async def counting(db: Any) -> list[Change]:
            nonlocal asked
            asked += 1
            return await original(db)

        feed.poll = counting
        await asyncio.sleep(1.5)  # 15 polls of the files, idle
        assert asked <= 3, asked
        b, _ = await writer.create_pending(pending(digest="5" * 64), max_pending_per_principal=CAP)
        await eventually(lambda: any(c.approval_id == b.id for c in seen))
    finally:
        await reader.close()
        await writer.close()

"""The approval queue end to end: agent calls held, operators deciding, calls resuming.

Real Gatekeeper, real demo upstream, real SQLite store, real sockets on loopback.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp

from gatekeeper.app import Gatekeeper
from gatekeeper.approvals.settings import ApprovalSettings

from ..helpers import H100, invoke, make_config, mint, ops_auth, running, vote, wait_for_pending

H100_BIG = {"gpu_type": "H100", "count": 8, "hours": 10}  # 80 GPU-hours: two approvers, under the ceiling


async def _held(http: aiohttp.ClientSession, gk: Gatekeeper, token: str, args: dict[str, Any] = H100) -> str:
    status, body, _ = await invoke(http, gk, "compute.provision", args, token, {"Prefer": "wait=0"})
    assert status == 202, body
    assert body["outcome"] == "pending" and body["approval_id"].startswith("apr_")
    return str(body["approval_id"])


async def test_held_then_approved_then_resent_runs_once(gk: Gatekeeper, http: aiohttp.ClientSession) -> None:
    token = mint(gk)
    approval_id = await _held(http, gk, token)
    assert gk.demo is not None and gk.demo.http_received == []
    async with http.get(f"{gk.operator_url}/v1/approvals?state=pending", headers=ops_auth(gk)) as resp:
        listing = await resp.json()
    [shown] = listing["approvals"]
    assert shown["id"] == approval_id and shown["tool"] == "compute.provision"
    assert shown["arguments"] == H100 and "compute.gpu:H100" in shown["capabilities"]
    assert shown["rule"].startswith("policy.csv:") and shown["required_approvals"] == 1
    status, voted = await vote(http, gk, approval_id, "approve")
    assert (status, voted["state"]) == (200, "approved")
    status, body, _ = await invoke(http, gk, "compute.provision", H100, token, {"Prefer": "wait=0"})
    assert status == 200 and body["outcome"] == "allowed", body
    assert len(gk.demo.http_received) == 1
    # single use: the same call again is a new approval
    assert await _held(http, gk, token) != approval_id
    assert len(gk.demo.http_received) == 1


async def test_waiting_caller_is_released_by_the_approval(
    gk: Gatekeeper, http: aiohttp.ClientSession
) -> None:
    token = mint(gk)
    call = asyncio.create_task(invoke(http, gk, "compute.provision", H100, token, {"Prefer": "wait=20"}))
    approval_id = await wait_for_pending(http, gk)
    approved_at = time.perf_counter()
    assert (await vote(http, gk, approval_id, "approve"))[0] == 200
    status, body, _ = await asyncio.wait_for(call, 10)
    released_after = time.perf_counter() - approved_at
    assert status == 200 and body["result"]["gpu_type"] == "H100", body
    assert released_after < 2.0


async def test_denial_reaches_the_waiting_caller_with_the_comment(
    gk: Gatekeeper, http: aiohttp.ClientSession
) -> None:
    call = asyncio.create_task(invoke(http, gk, "compute.provision", H100, mint(gk), {"Prefer": "wait=20"}))
    approval_id = await wait_for_pending(http, gk)
    status, _ = await vote(http, gk, approval_id, "deny", comment="not for this task")
    assert status == 200
    status, body, _ = await asyncio.wait_for(call, 10)
    assert (status, body["code"]) == (403, "approval_denied")
    assert "not for this task" in body["reason"] and body["approval_id"] == approval_id
    assert gk.demo is not None and gk.demo.http_received == []


async def test_expiry_wakes_the_held_caller_at_once(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    settings = ApprovalSettings(ttl_seconds=0.5, default_wait_seconds=0.2, sweep_interval_seconds=0.1)
    async with running(make_config(tmp_path, approvals=settings)) as gk:
        started = time.perf_counter()
        status, body, _ = await invoke(http, gk, "compute.provision", H100, mint(gk), {"Prefer": "wait=30"})
        assert (status, body["code"]) == (403, "approval_expired")
        assert time.perf_counter() - started < 3.0
        approval_id = body["approval_id"]
        assert (await vote(http, gk, approval_id, "approve"))[0] == 409


async def test_nobody_approves_their_own_call_and_agents_never_approve(
    gk: Gatekeeper, http: aiohttp.ClientSession
) -> None:
    token = mint(gk, subject="alice")
    approval_id = await _held(http, gk, token)
    status, body = await vote(http, gk, approval_id, "approve", operator="alice")
    assert (status, body["code"]) == (403, "self_approval")
    url = f"{gk.operator_url}/v1/approvals/{approval_id}/approve"
    agent = mint(gk, subject="bob", roles=("agent", "operator"))
    async with http.post(url, json={"comment": "lgtm"}, headers={"Authorization": f"Bearer {agent}"}) as resp:
        assert resp.status == 401
    async with http.get(f"{gk.operator_url}/v1/approvals/{approval_id}", headers=ops_auth(gk)) as resp:
        assert (await resp.json())["state"] == "pending"


async def test_changed_arguments_are_a_different_call(gk: Gatekeeper, http: aiohttp.ClientSession) -> None:
    token = mint(gk)
    approval_id = await _held(http, gk, token)
    assert (await vote(http, gk, approval_id, "approve"))[0] == 200
    swapped = {**H100, "count": 3}
    status, body, _ = await invoke(http, gk, "compute.provision", swapped, token, {"Prefer": "wait=0"})
    assert status == 202 and body["approval_id"] != approval_id
    other = mint(gk, subject="someone-else")
    status, body, _ = await invoke(http, gk, "compute.provision", H100, other, {"Prefer": "wait=0"})
    assert status == 202  # another principal's identical call does not match either
    assert gk.demo is not None and gk.demo.http_received == []


async def test_two_person_rule(gk: Gatekeeper, http: aiohttp.ClientSession) -> None:
    token = mint(gk)
    approval_id = await _held(http, gk, token, H100_BIG)
    status, first = await vote(http, gk, approval_id, "approve", operator="ops-1")
    assert (status, first["state"], first["required_approvals"], first["approvals"]) == (200, "pending", 2, 1)
    status, again = await vote(http, gk, approval_id, "approve", operator="ops-1")
    assert (status, again["code"]) == (409, "already_voted")
    status, second = await vote(http, gk, approval_id, "approve", operator="ops-2")
    assert (status, second["state"]) == (200, "approved")
    status, body, _ = await invoke(http, gk, "compute.provision", H100_BIG, token, {"Prefer": "wait=0"})
    assert status == 200, body


async def test_concurrent_retries_run_an_approved_call_once(
    gk: Gatekeeper, http: aiohttp.ClientSession
) -> None:
    token = mint(gk)
    approval_id = await _held(http, gk, token)
    assert (await vote(http, gk, approval_id, "approve"))[0] == 200
    results = await asyncio.gather(
        *(invoke(http, gk, "compute.provision", H100, token, {"Prefer": "wait=0"}) for _ in range(12))
    )
    assert sorted(status for status, _, _ in results).count(200) == 1
    assert gk.demo is not None and len(gk.demo.http_received) == 1


async def test_identical_pending_calls_collapse_and_the_cap_holds(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    settings = ApprovalSettings(default_wait_seconds=0.0, max_pending_per_principal=2)
    async with running(make_config(tmp_path, approvals=settings)) as gk:
        token = mint(gk)
        first = await _held(http, gk, token)
        assert await _held(http, gk, token) == first
        await _held(http, gk, token, {**H100, "count": 3})
        status, body, _ = await invoke(http, gk, "compute.provision", {**H100, "count": 4}, token)
        assert (status, body["code"]) == (403, "too_many_pending_approvals")
        status, body, _ = await invoke(http, gk, "compute.provision", H100, mint(gk, subject="other"))
        assert status == 202  # the cap is per principal


async def test_grant_covers_the_same_call_until_revoked(gk: Gatekeeper, http: aiohttp.ClientSession) -> None:
    token = mint(gk)
    approval_id = await _held(http, gk, token)
    status, _ = await vote(http, gk, approval_id, "approve", grant_minutes=10)
    assert status == 200
    for _ in range(3):
        status, body, _ = await invoke(http, gk, "compute.provision", H100, token, {"Prefer": "wait=0"})
        assert status == 200, body
    async with http.get(f"{gk.operator_url}/v1/grants", headers=ops_auth(gk)) as resp:
        [grant] = (await resp.json())["grants"]
    assert grant["principal"] == "agent-1" and grant["approval_id"] == approval_id
    async with http.post(f"{gk.operator_url}/v1/grants/{grant['id']}/revoke", headers=ops_auth(gk)) as resp:
        assert resp.status == 200
    status, body, _ = await invoke(http, gk, "compute.provision", H100, token, {"Prefer": "wait=0"})
    assert status == 202
    assert gk.demo is not None and len(gk.demo.http_received) == 3


async def test_pending_approvals_survive_a_restart(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    config = make_config(tmp_path)
    async with running(config) as gk:
        token = mint(gk)
        approval_id = await _held(http, gk, token)
    async with running(replace(config)) as gk2:
        async with http.get(f"{gk2.operator_url}/v1/approvals/{approval_id}", headers=ops_auth(gk2)) as resp:
            assert (await resp.json())["state"] == "pending"
        assert (await vote(http, gk2, approval_id, "approve"))[0] == 200
        status, body, _ = await invoke(http, gk2, "compute.provision", H100, token, {"Prefer": "wait=0"})
        assert status == 200, body


async def test_shutdown_answers_held_callers_pending(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    config = make_config(tmp_path)
    gk = Gatekeeper(config)
    await gk.start()
    try:
        call = asyncio.create_task(
            invoke(http, gk, "compute.provision", H100, mint(gk), {"Prefer": "wait=60"})
        )
        approval_id = await wait_for_pending(http, gk)
    finally:
        await gk.stop()
    status, body, _ = await asyncio.wait_for(call, 10)
    assert (status, body["approval_id"]) == (202, approval_id)


async def test_operator_api_refuses_bad_input(gk: Gatekeeper, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{gk.operator_url}/v1/approvals?state=everything", headers=ops_auth(gk)) as resp:
        assert (resp.status, (await resp.json())["code"]) == (400, "invalid_query")
    async with http.get(f"{gk.operator_url}/v1/approvals/apr_nope", headers=ops_auth(gk)) as resp:
        assert resp.status == 404
    approval_id = await _held(http, gk, mint(gk))
    url = f"{gk.operator_url}/v1/approvals/{approval_id}/approve"
    async with http.post(url, json={"comment": "x", "sneaky": 1}, headers=ops_auth(gk)) as resp:
        assert (resp.status, (await resp.json())["code"]) == (400, "unknown_field")
    async with http.post(url, json={"grant_minutes": 10**9}, headers=ops_auth(gk)) as resp:
        assert (resp.status, (await resp.json())["code"]) == (409, "invalid_grant")

"""Budgets on a running gate: ceilings, escalation past a limit, atomic spending, refunds, Redis,
and approved or granted calls charged like any other (over HTTP and MCP)."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
import redis.asyncio as aioredis
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import TextContent

from gatekeeper.app import Gatekeeper
from gatekeeper.approvals.settings import ApprovalSettings
from gatekeeper.budgets.redis import RedisBudgetCounter
from gatekeeper.config import PolicyFiles

from ..helpers import (
    copy_policy_pack,
    decisions,
    invoke,
    make_config,
    mint,
    ops_auth,
    running,
    vote,
    wait_for_pending,
)

T4 = {"gpu_type": "T4", "count": 1, "hours": 8}  # 8 GPU-hours: allowed by policy, counted by budgets
CALLS_BUDGET = """budgets:
  - id: shell-calls
    subject: agent
    match: "tool:shell.exec"
    metric: calls
    limit: 5
    window: 1h
    per: principal
    on_exceed: deny
    note: five shell commands an hour in this test
"""

# One T4 shift a day per agent before an operator must approve; three for the whole role, ever.
GPU_BUDGETS = """budgets:
  - id: gpu-per-agent
    subject: agent
    match: "compute.gpu:*"
    metric: gpu_hours
    limit: 8
    window: 1d
    per: principal
    on_exceed: escalate
  - id: gpu-role-ceiling
    subject: agent
    match: "compute.gpu:*"
    metric: gpu_hours
    limit: 24
    window: 1d
    per: role
    on_exceed: deny
"""


def _pack(tmp_path: Path, budgets: str | None = None) -> PolicyFiles:
    target = tmp_path / "policies"
    copy_policy_pack(target)
    if budgets is not None:
        (target / "budgets.yaml").write_text(budgets)
    return PolicyFiles(
        target / "model.conf", target / "policy.csv", target / "tools.yaml", target / "budgets.yaml"
    )


async def test_the_rome_request_hits_the_ceiling_and_is_never_held(
    gk: Gatekeeper, http: aiohttp.ClientSession
) -> None:
    rome = {"gpu_type": "H100", "count": 8, "hours": 72}  # 576 GPU-hours
    status, body, _ = await invoke(http, gk, "compute.provision", rome, mint(gk), {"Prefer": "wait=0"})
    assert (status, body["code"]) == (403, "budget_exceeded"), body
    assert "agent-gpu-hours-per-role-daily" in body["reason"]
    async with http.get(
        f"{gk.operator_url}/v1/approvals?state=pending",
        headers={"Authorization": f"Bearer {mint(gk, subject='ops', operator=True)}"},
    ) as resp:
        assert (await resp.json())["total"] == 0
    assert gk.demo is not None and gk.demo.http_received == []


async def test_going_past_a_principal_budget_needs_an_operator(
    gk: Gatekeeper, http: aiohttp.ClientSession
) -> None:
    token = mint(gk)
    for _ in range(3):  # 3 x 8 = 24 GPU-hours: exactly the daily budget
        status, body, _ = await invoke(http, gk, "compute.provision", T4, token)
        assert status == 200, body
    status, body, _ = await invoke(http, gk, "compute.provision", T4, token, {"Prefer": "wait=0"})
    assert status == 202, body
    assert "agent-gpu-hours-per-principal-daily" in body["reason"]
    status, body, _ = await invoke(http, gk, "compute.provision", T4, mint(gk, subject="another-agent"))
    assert status == 200  # per principal: another agent has its own budget


async def test_concurrent_calls_cannot_overspend(
    tmp_path: Path, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    async with running(make_config(tmp_path, policy=_pack(tmp_path, CALLS_BUDGET))) as gk:
        token = mint(gk)
        results = await asyncio.gather(
            *(invoke(http, gk, "shell.exec", {"cmd": "git status"}, token) for _ in range(20))
        )
    statuses = sorted(status for status, _, _ in results)
    assert statuses.count(200) == 5 and statuses.count(403) == 15
    assert {body["code"] for status, body, _ in results if status == 403} == {"budget_exceeded"}


async def test_a_call_that_could_not_be_forwarded_is_refunded(
    tmp_path: Path, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    async with running(
        make_config(tmp_path, policy=_pack(tmp_path, CALLS_BUDGET.replace("limit: 5", "limit: 1")))
    ) as gk:
        token = mint(gk)
        assert gk.demo is not None
        await gk.demo.stop()
        for _ in range(3):
            status, body, _ = await invoke(http, gk, "shell.exec", {"cmd": "git status"}, token)
            assert (status, body["code"]) == (502, "upstream_unreachable")  # not budget_exceeded


async def test_budgets_are_shared_through_redis_across_replicas(
    tmp_path: Path, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    prefix = f"gk-test:fleet:{secrets.token_hex(6)}:"
    files = _pack(tmp_path, CALLS_BUDGET)
    replicas = [Gatekeeper(make_config(tmp_path, policy=files)) for _ in range(2)]
    for replica in replicas:
        replica.budgets = RedisBudgetCounter("redis://127.0.0.1:6379/0", prefix=prefix)
        await replica.start()
    try:
        token = mint(replicas[0])
        results = await asyncio.gather(
            *(invoke(http, replicas[i % 2], "shell.exec", {"cmd": "git status"}, token) for i in range(12))
        )
        assert sorted(s for s, _, _ in results).count(200) == 5
    finally:
        for replica in replicas:
            await replica.stop()
        client = aioredis.Redis.from_url("redis://127.0.0.1:6379/0")
        keys = [key async for key in client.scan_iter(f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def _used(gk: Gatekeeper, rule: str) -> float:
    return sum(u.used for u in await gk.budgets.usage(rule, now=time.time()))


async def test_approved_and_granted_calls_are_charged_and_stop_at_the_deny_ceiling(
    tmp_path: Path, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    async with running(make_config(tmp_path, policy=_pack(tmp_path, GPU_BUDGETS))) as gk:
        token, now = mint(gk), {"Prefer": "wait=0"}
        assert (await invoke(http, gk, "compute.provision", T4, token))[0] == 200
        status, held, _ = await invoke(http, gk, "compute.provision", T4, token, now)
        assert status == 202 and "gpu-per-agent" in held["reason"]
        # Held, then answered "pending": what it kept of the ceiling while it waited is given back.
        assert (await _used(gk, "gpu-role-ceiling"), await _used(gk, "gpu-per-agent")) == (8.0, 8.0)
        assert (await vote(http, gk, held["approval_id"], "approve"))[0] == 200
        status, body, _ = await invoke(http, gk, "compute.provision", T4, token, now)
        assert status == 200, body  # the approval, used once
        status, held, _ = await invoke(http, gk, "compute.provision", T4, token, now)
        assert status == 202, held
        assert (await vote(http, gk, held["approval_id"], "approve", grant_minutes=30))[0] == 200
        status, body, _ = await invoke(http, gk, "compute.provision", T4, token, now)
        assert status == 200, body  # the grant
        assert (await _used(gk, "gpu-role-ceiling"), await _used(gk, "gpu-per-agent")) == (24.0, 24.0)
        status, body, _ = await invoke(http, gk, "compute.provision", T4, token, now)
        assert (status, body["code"], body["rule"]) == (
            403,
            "budget_exceeded",
            "budgets.yaml:gpu-role-ceiling",
        )
        assert "24 used + 8 requested > limit 24 in any 1d" in body["reason"]
        async with http.get(f"{gk.operator_url}/v1/approvals?state=pending", headers=ops_auth(gk)) as resp:
            assert (await resp.json())["total"] == 0  # refused outright: nobody was asked
        assert await _used(gk, "gpu-role-ceiling") == 24.0
        assert gk.demo is not None and len(gk.demo.http_received) == 3
    codes = [d["code"] for d in decisions(log_output) if d["outcome"] == "allowed"]
    assert codes == ["allowed", "approved", "granted"]


async def test_an_mcp_call_approved_past_an_escalate_budget_is_charged(
    tmp_path: Path, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    budgets = GPU_BUDGETS.replace("limit: 24", "limit: 16")
    settings = ApprovalSettings(default_wait_seconds=20, sweep_interval_seconds=0.1)
    config = make_config(tmp_path, policy=_pack(tmp_path, budgets), approvals=settings)
    async with running(config) as gk:

        async def approve_when_pending() -> None:
            await vote(http, gk, await wait_for_pending(http, gk), "approve")

        approver = asyncio.create_task(approve_when_pending())
        headers = {"Authorization": f"Bearer {mint(gk)}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=30) as client_http,
            Client(streamable_http_client(f"{gk.agent_url}/mcp/demo", http_client=client_http)) as client,
        ):
            first = await client.call_tool("compute.provision", T4)
            second = await client.call_tool("compute.provision", T4)  # held until approved
            await approver
            third = await client.call_tool("compute.provision", T4)
        assert not first.is_error and not second.is_error, second
        assert (await _used(gk, "gpu-role-ceiling"), await _used(gk, "gpu-per-agent")) == (16.0, 16.0)
        assert third.is_error and third.meta is not None
        meta = third.meta["gatekeeper/decision"]
        assert (meta["code"], meta["rule"]) == ("budget_exceeded", "budgets.yaml:gpu-role-ceiling")
        block = third.content[0]
        assert isinstance(block, TextContent) and "gpu-role-ceiling" in block.text
        assert gk.demo is not None
        assert [json.dumps(c.arguments, sort_keys=True) for c in gk.demo.mcp_received] == [
            json.dumps(T4, sort_keys=True)
        ] * 2

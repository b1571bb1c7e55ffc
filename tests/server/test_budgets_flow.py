"""Budgets on a running gate: ceilings, escalation past a limit, atomic spending, refunds, Redis."""

from __future__ import annotations

import asyncio
import secrets
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from gatekeeper.app import Gatekeeper
from gatekeeper.budgets.redis import RedisBudgetCounter
from gatekeeper.config import PolicyFiles

from ..helpers import POLICY_DIR, invoke, make_config, mint, running

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


def _pack(tmp_path: Path, budgets: str | None = None) -> PolicyFiles:
    target = tmp_path / "policies"
    shutil.copytree(POLICY_DIR, target, ignore=shutil.ignore_patterns("tests"))
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

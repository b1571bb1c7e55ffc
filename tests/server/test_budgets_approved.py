"""Approved and granted calls are charged: a role's ``deny`` ceiling holds against approvals and grants.

Several agents at once each send the same 8 GPU-hour request again and again. Each agent's own
``escalate`` budget lets one through; every further call is held, and an operator approves every
one, half of them with a grant that covers the agent's later identical calls. The role's ``deny``
ceiling must stop them all the same, on one gate (memory budgets, SQLite approvals) and on a
fleet of two (Redis budgets, PostgreSQL approvals), with callers spread over both replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from gatekeeper.app import Gatekeeper
from gatekeeper.approvals.settings import ApprovalSettings
from gatekeeper.budgets import BudgetCounter
from gatekeeper.budgets.redis import RedisBudgetCounter
from gatekeeper.config import PolicyFiles

from ..helpers import (
    copy_policy_pack,
    decisions,
    invoke,
    make_config,
    mint,
    ops_auth,
    throwaway_schema,
    vote,
)

REDIS_URL = "redis://127.0.0.1:6379/0"
T4 = {"gpu_type": "T4", "count": 1, "hours": 8}  # 8 GPU-hours, allowed by the policy itself
CEILING = 80.0  # the role's deny ceiling: ten calls
AGENTS = 4
CALLS_PER_AGENT = 6  # 24 calls asked for, 192 GPU-hours: far past the ceiling
BUDGETS = f"""budgets:
  - id: gpu-per-agent
    subject: agent
    match: "compute.gpu:*"
    metric: gpu_hours
    limit: 8
    window: 1d
    per: principal
    on_exceed: escalate
    note: more than one T4 shift a day needs an operator
  - id: gpu-role-ceiling
    subject: agent
    match: "compute.gpu:*"
    metric: gpu_hours
    limit: {CEILING:g}
    window: 1d
    per: role
    on_exceed: deny
    note: all agents together, never more, whoever approves
"""


def _pack(tmp_path: Path) -> PolicyFiles:
    target = tmp_path / "policies"
    copy_policy_pack(target)
    (target / "budgets.yaml").write_text(BUDGETS)
    return PolicyFiles(
        target / "model.conf", target / "policy.csv", target / "tools.yaml", target / "budgets.yaml"
    )


@contextlib.asynccontextmanager
async def _gates(tmp_path: Path, kind: str) -> AsyncIterator[list[Gatekeeper]]:
    """One gate with memory budgets and SQLite approvals, or two sharing Redis and PostgreSQL."""
    files = _pack(tmp_path)
    settings = ApprovalSettings(default_wait_seconds=0.2, sweep_interval_seconds=0.1)
    if kind == "single":
        gates = [Gatekeeper(make_config(tmp_path / "a", policy=files, approvals=settings))]
        await gates[0].start()
        try:
            yield gates
        finally:
            await gates[0].stop()
        return
    prefix = f"gk-test:approved:{secrets.token_hex(6)}:"
    async with throwaway_schema("gk_budget") as (dsn, schema):
        fleet = ApprovalSettings(
            store=dsn, postgres_schema=schema, default_wait_seconds=0.2, sweep_interval_seconds=0.1
        )
        # Both replicas share one data folder only for the development signing key.
        gates = [Gatekeeper(make_config(tmp_path / "a", policy=files, approvals=fleet)) for _ in range(2)]
        started: list[Gatekeeper] = []
        try:
            for gate in gates:
                gate.budgets = RedisBudgetCounter(REDIS_URL, prefix=prefix)
                await gate.start()
                started.append(gate)
            yield gates
        finally:
            for gate in started:
                await gate.stop()
            client = aioredis.Redis.from_url(REDIS_URL)
            keys = [key async for key in client.scan_iter(f"{prefix}*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()


async def _operator(http: aiohttp.ClientSession, gate: Gatekeeper, stop: asyncio.Event) -> list[bool]:
    """Approve every pending call as it appears, every other one with a 30-minute grant."""
    granted: list[bool] = []
    while not stop.is_set():
        async with http.get(f"{gate.operator_url}/v1/approvals?state=pending", headers=ops_auth(gate)) as r:
            pending = (await r.json())["approvals"]
        for approval in pending:
            grant = len(granted) % 2 == 0
            body: dict[str, Any] = {"grant_minutes": 30} if grant else {}
            status, _ = await vote(http, gate, approval["id"], "approve", **body)
            if status == 200:
                granted.append(grant)
        await asyncio.sleep(0.01)
    return granted


async def _agent(
    http: aiohttp.ClientSession, gates: list[Gatekeeper], n: int
) -> list[tuple[int, dict[str, Any]]]:
    """One agent's calls, one after another, alternating between the replicas."""
    token = mint(gates[0], subject=f"agent-{n}")
    answers = []
    for i in range(CALLS_PER_AGENT):
        gate = gates[(n + i) % len(gates)]
        status, body, _ = await invoke(http, gate, "compute.provision", T4, token, {"Prefer": "wait=20"})
        answers.append((status, body))
    return answers


async def _role_used(counter: BudgetCounter) -> float:
    return sum(u.used for u in await counter.usage("gpu-role-ceiling", now=time.time()))


@pytest.mark.parametrize("kind", ["single", "fleet"])
async def test_approvals_and_grants_together_cannot_pass_the_role_ceiling(
    kind: str, tmp_path: Path, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    async with _gates(tmp_path, kind) as gates:
        stop = asyncio.Event()
        operator = asyncio.create_task(_operator(http, gates[-1], stop))
        try:
            per_agent = await asyncio.wait_for(
                asyncio.gather(*(_agent(http, gates, n) for n in range(AGENTS))), 60
            )
        finally:
            stop.set()
        granted = await operator
        answers = [answer for agent in per_agent for answer in agent]
        forwarded = [
            call
            for gate in gates
            if gate.demo is not None
            for call in gate.demo.http_received
            if call.tool == "compute.provision"
        ]
        role_used = await _role_used(gates[0].budgets)
        per_agent_used = {
            u.scope: u.used for u in await gates[0].budgets.usage("gpu-per-agent", now=time.time())
        }
        records = [d for d in decisions(log_output) if d.get("tool") == "compute.provision"]
        async with http.get(
            f"{gates[0].operator_url}/v1/approvals?state=pending", headers=ops_auth(gates[0])
        ) as r:
            still_pending = (await r.json())["total"]

    # Every forwarded call was charged to the ceiling, and the ceiling was never passed.
    assert len(forwarded) * 8.0 == role_used == CEILING, (len(forwarded), role_used)
    assert sum(status == 200 for status, _ in answers) == len(forwarded)
    # Approvals and grants were both used, and their calls are in the ceiling's count.
    codes = [d["code"] for d in records if d["outcome"] == "allowed"]
    assert codes.count("approved") >= 1 and codes.count("granted") >= 1, codes
    assert len(codes) == len(forwarded) and True in granted
    # Everything else was refused by the deny rule, never held: no approval can lift it.
    refused = [body for status, body in answers if status != 200]
    assert len(refused) == AGENTS * CALLS_PER_AGENT - len(forwarded)
    assert {(b["code"], b["rule"]) for b in refused} == {("budget_exceeded", "budgets.yaml:gpu-role-ceiling")}
    assert still_pending == 0
    # The agents' own escalate budgets were charged past their limit for what operators approved.
    assert sum(per_agent_used.values()) == CEILING and max(per_agent_used.values()) > 8.0

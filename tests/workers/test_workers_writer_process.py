"""``workers: 2`` with ``audit.writer: process``: each worker has its own audit writer process.

- a call held in one worker is approved and released whichever worker the operator reaches;
- kill -9 of one worker's writer: that worker refuses (503 ``audit_unavailable``), the fleet's
  ``gatekeeper_audit_accepting`` is 0 (the smallest over workers), then it recovers;
- a worker killed after answering calls whose records were only in its journal: the supervisor
  restarts it and its records are written; every chain verifies with its signed checkpoints.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from .fleet import Fleet, fleet_config, invoke, pending_approval, session_on, worker_of

LS = {"cmd": "ls"}
H100 = {"gpu_type": "H100", "count": 2, "hours": 4}  # escalates, one approver
WRITER = "audit: {writer: process}\n"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    running = Fleet(fleet_config(tmp_path_factory.mktemp("fleet-writer"), extra=WRITER))
    try:
        yield running
    finally:
        assert running.stop() == 0
        report = running.audit_verify()
        assert report.returncode == 0, report.stdout + report.stderr
        assert "signed checkpoint(s) valid" in report.stdout, report.stdout


def writer_of(pid: int) -> int:
    """The audit writer process of worker ``pid``."""
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        for child in (int(p) for p in fh.read().split()):
            try:
                if b"gatekeeper.audit.writer_process" in Path(f"/proc/{child}/cmdline").read_bytes():
                    return child
            except FileNotFoundError:
                continue
    raise AssertionError(f"worker {pid} has no audit writer process")


def worker_pids(fleet: Fleet) -> dict[int, int]:
    """worker index -> pid, from the supervisor's latest worker_started lines."""
    return {int(e["worker"]): int(e["pid"]) for e in fleet.lines if e.get("event") == "worker_started"}


def stored(home: Path) -> list[str]:
    conn = sqlite3.connect(home / "audit.sqlite3")
    try:
        return [json.loads(b)["decision_id"] for (b,) in conn.execute("SELECT body FROM audit_records")]
    finally:
        conn.close()


async def _metric(session: aiohttp.ClientSession, base: str) -> str:
    async with session.get(f"{base}/metrics") as r:
        text = await r.text()
    return next(line for line in text.splitlines() if line.startswith("gatekeeper_audit_accepting "))


@pytest.mark.parametrize(("agent_on", "operator_on"), [(0, 1), (1, 0), (0, 0)])
async def test_a_held_call_is_released_whichever_worker_the_operator_reaches(
    fleet: Fleet, agent_on: int, operator_on: int
) -> None:
    agent = await session_on(fleet.agent_url, agent_on)
    operator = await session_on(fleet.operator_url, operator_on)
    ops = {"Authorization": f"Bearer {fleet.token('ops-1', operator=True)}"}
    # A fresh subject each run: the GPU-hours budget is a day's, in the machine's shared Redis.
    subject = f"agent-held-{agent_on}{operator_on}-{secrets.token_hex(4)}"
    async with agent, operator:
        held = asyncio.create_task(
            invoke(agent, fleet.agent_url, fleet.token(subject), "compute.provision", H100, Prefer="wait=60")
        )
        approval_id = await pending_approval(operator, fleet, ops, subject)
        assert not held.done()
        async with operator.post(
            f"{fleet.operator_url}/v1/approvals/{approval_id}/approve", json={"comment": "ok"}, headers=ops
        ) as r:
            assert r.status == 200, await r.text()
        assert await worker_of(operator, fleet.operator_url) == operator_on
        status, body = await asyncio.wait_for(held, 10)
        assert status == 200 and body["outcome"] == "allowed", body
        assert await worker_of(agent, fleet.agent_url) == agent_on


async def test_a_killed_writer_makes_its_worker_refuse_until_it_is_back(fleet: Fleet) -> None:
    pids = worker_pids(fleet)
    writer = writer_of(pids[1])
    token = fleet.token()
    on1 = await session_on(fleet.agent_url, 1)
    on0 = await session_on(fleet.agent_url, 0)
    async with on0, on1:
        assert await _metric(on0, fleet.agent_url) == "gatekeeper_audit_accepting 1.0"
        os.kill(writer, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while True:  # refused from when worker 1 sees its writer gone until the restart is ready
            status, body = await invoke(on1, fleet.agent_url, token, "shell.exec", LS)
            if status == 503:
                break
            assert time.monotonic() < deadline, "worker 1 kept forwarding without its writer"
            await asyncio.sleep(0.01)
        assert body["code"] == "audit_unavailable" and not body.get("forwarded"), body
        async with on1.get(f"{fleet.agent_url}/readyz") as r:
            assert r.status == 503
        # The other worker still serves; the fleet's gauge is the smallest of the two, read
        # through worker 1 itself (worker 0's file value lags by up to half a second).
        status, body = await invoke(on0, fleet.agent_url, token, "shell.exec", LS)
        assert status == 200, body
        assert await _metric(on1, fleet.agent_url) == "gatekeeper_audit_accepting 0.0"
        deadline = time.monotonic() + 30
        while True:
            async with on1.get(f"{fleet.agent_url}/readyz") as r:
                if r.status == 200:
                    break
            assert time.monotonic() < deadline, "worker 1's writer was not restarted"
            await asyncio.sleep(0.05)
        status, body = await invoke(on1, fleet.agent_url, token, "shell.exec", LS)
        assert status == 200, body
        await asyncio.sleep(0.6)  # every worker has refreshed its gauge
        assert await _metric(on0, fleet.agent_url) == "gatekeeper_audit_accepting 1.0"
    assert writer_of(pids[1]) != writer


async def test_a_worker_killed_after_answering_loses_no_record(fleet: Fleet) -> None:
    pids = worker_pids(fleet)
    victim = pids[0]
    writer = writer_of(victim)
    token = fleet.token()
    os.kill(writer, signal.SIGSTOP)  # its records stay in the journal only
    answered = []
    session = await session_on(fleet.agent_url, 0)
    async with session:
        for _ in range(10):
            status, body = await invoke(session, fleet.agent_url, token, "shell.exec", LS)
            assert status == 200, body
            answered.append(body["decision_id"])
    assert not set(answered) & set(stored(fleet.home))
    os.kill(victim, signal.SIGKILL)  # the worker dies, and its writer with it
    os.kill(writer, signal.SIGKILL)
    fleet.wait_line(
        lambda e: e.get("event") == "worker_started" and e.get("pid") != victim and e["worker"] == 0, 60
    )
    deadline = time.monotonic() + 30
    while not set(answered) <= set(stored(fleet.home)):
        assert time.monotonic() < deadline, "the restarted worker did not write its journal's records"
        await asyncio.sleep(0.1)
    rows = stored(fleet.home)
    assert [r for r in rows if r in set(answered)] == answered and len(rows) == len(set(rows))
    chains = fleet.audit_verify()
    assert chains.returncode == 0, chains.stdout + chains.stderr
    assert re.search(r"chain \S+/w0: \d+ records", chains.stdout), chains.stdout

"""``gatekeeper serve --workers 2`` as it runs: real processes on shared loopback ports, calls
through both workers, a held call approved through the other one, metrics summed, SIGHUP
reloading every worker, a killed worker restarted, SIGTERM draining, and every chain verified."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from .fleet import POLICY_DIR, Fleet, fleet_config, invoke, pending_approval, session_on, worker_of

LS = {"cmd": "ls"}
H100 = {"gpu_type": "H100", "count": 2, "hours": 4}  # escalates, one approver


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """One two-worker Gatekeeper for the tests that leave it running (starting one is slow)."""
    tmp = tmp_path_factory.mktemp("fleet")
    policy = tmp / "policies"
    shutil.copytree(POLICY_DIR, policy)
    running = Fleet(fleet_config(tmp, policy_dir=policy, extra="  watch_seconds: null\n"))
    try:
        yield running
    finally:
        assert running.stop() == 0


async def test_connections_reach_both_workers_and_calls_are_answered_by_each(fleet: Fleet) -> None:
    token = fleet.token()
    for worker in (0, 1):
        session = await session_on(fleet.agent_url, worker)
        async with session:
            status, body = await invoke(session, fleet.agent_url, token, "shell.exec", LS)
            assert status == 200 and body["outcome"] == "allowed", body
            assert await worker_of(session, fleet.agent_url) == worker


async def test_a_call_held_in_one_worker_is_approved_through_the_other(fleet: Fleet) -> None:
    agent = await session_on(fleet.agent_url, 0)
    operator = await session_on(fleet.operator_url, 1)
    ops = {"Authorization": f"Bearer {fleet.token('ops-1', operator=True)}"}
    async with agent, operator:
        held = asyncio.create_task(
            invoke(agent, fleet.agent_url, fleet.token(), "compute.provision", H100, Prefer="wait=60")
        )
        approval_id = await pending_approval(operator, fleet, ops)
        assert not held.done()
        async with operator.post(
            f"{fleet.operator_url}/v1/approvals/{approval_id}/approve", json={"comment": "ok"}, headers=ops
        ) as r:
            assert r.status == 200, await r.text()
        assert await worker_of(operator, fleet.operator_url) == 1
        status, body = await asyncio.wait_for(held, 10)
        assert status == 200 and body["outcome"] == "allowed", body
        async with operator.get(f"{fleet.operator_url}/v1/approvals/{approval_id}", headers=ops) as r:
            assert (await r.json())["state"] == "consumed"  # used by the held call, once


def _decisions_total(text: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("gatekeeper_decisions_total{") and 'outcome="allowed"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_metrics_are_summed_over_the_workers(fleet: Fleet) -> None:
    token = fleet.token()
    sessions = [await session_on(fleet.agent_url, w) for w in (0, 1)]
    try:
        before = []
        for s in sessions:
            async with s.get(f"{fleet.agent_url}/metrics") as r:
                before.append(_decisions_total(await r.text()))
        assert before[0] == before[1]  # whichever worker answers, the same fleet-wide figure
        for s in sessions:
            for _ in range(3):
                status, _body = await invoke(s, fleet.agent_url, token, "shell.exec", LS)
                assert status == 200
        for s in sessions:
            async with s.get(f"{fleet.agent_url}/metrics") as r:
                text = await r.text()
            assert _decisions_total(text) == before[0] + 6
            # Issue 16's gauges and collectors across workers: accepting is the smallest (1: both
            # take records), and the answering worker's own process figures are there.
            assert re.search(r"^gatekeeper_audit_accepting 1\.0$", text, re.M), text
            assert "process_cpu_seconds_total" in text and "_created" not in text
    finally:
        for s in sessions:
            await s.close()


async def test_sighup_reloads_the_policy_in_every_worker(fleet: Fleet) -> None:
    sessions = [await session_on(fleet.agent_url, w) for w in (0, 1)]
    try:
        versions = set()
        for s in sessions:
            async with s.get(f"{fleet.agent_url}/readyz") as r:
                versions.add((await r.json())["policy_version"])
        assert len(versions) == 1
        policy = fleet.config.parent / "policies" / "policy.csv"
        policy.write_text(policy.read_text() + "\n# reloaded by SIGHUP\n")
        fleet.signal(signal.SIGHUP)
        for s in sessions:
            for _ in range(200):
                async with s.get(f"{fleet.agent_url}/readyz") as r:
                    if (await r.json())["policy_version"] not in versions:
                        break
                await asyncio.sleep(0.05)
            else:
                pytest.fail(f"worker {await worker_of(s, fleet.agent_url)} kept the old policy")
    finally:
        for s in sessions:
            await s.close()


async def test_a_killed_worker_is_restarted(fleet: Fleet) -> None:
    victim = fleet.pids[1]
    seen = len(fleet.lines)
    os.kill(victim, signal.SIGKILL)
    exited = fleet.wait_line(lambda e: e.get("event") == "worker_exited" and e.get("pid") == victim, 30)
    assert exited["worker"] == 1 and exited["exit_code"] == -signal.SIGKILL
    started = fleet.wait_line(
        lambda e: e.get("event") == "worker_started" and e.get("worker") == 1 and e.get("pid") != victim, 120
    )
    assert fleet.lines.index(started) > seen
    fleet.pids[1] = int(started["pid"])
    session = await session_on(fleet.agent_url, 1)
    async with session:
        status, body = await invoke(session, fleet.agent_url, fleet.token(), "shell.exec", LS)
        assert status == 200 and body["outcome"] == "allowed"


async def test_sigterm_drains_held_calls_and_every_chain_verifies(tmp_path: Path) -> None:
    fleet = Fleet(fleet_config(tmp_path))
    try:
        token = fleet.token()
        answered = 0
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            workers = set()
            for _ in range(40):
                workers.add(await worker_of(http, fleet.agent_url))
                status, _body = await invoke(http, fleet.agent_url, token, "shell.exec", LS)
                assert status == 200
                answered += 1
            assert workers == {0, 1}
            held = asyncio.create_task(
                invoke(http, fleet.agent_url, fleet.token(), "compute.provision", H100, Prefer="wait=60")
            )
            await asyncio.sleep(1.0)  # the call is held
            assert not held.done()
            fleet.signal(signal.SIGTERM)
            status, body = await asyncio.wait_for(held, 30)
        assert status == 202 and body["outcome"] == "pending", body  # answered, not dropped
        assert fleet.proc.wait(60) == 0
    finally:
        fleet.stop()
    report = fleet.audit_verify()
    assert report.returncode == 0, report.stdout + report.stderr
    chains = dict(re.findall(r"chain (\S+/w\d): (\d+) records", report.stdout))
    assert {name.rsplit("/", 1)[1] for name in chains} == {"w0", "w1"}, report.stdout
    assert sum(int(n) for n in chains.values()) == answered + 1  # 40 allowed, 1 escalated


def _sandbox_files(tmp_path: Path) -> tuple[Path, Path]:
    """A policy pack that lets agents reach mirror.test:80, and a folder the sandbox's uid can
    reach (pytest's own are 0700) holding the workspace."""
    pack = tmp_path / "pack"
    shutil.copytree(POLICY_DIR, pack, ignore=shutil.ignore_patterns("tests"))
    with (pack / "policy.csv").open("a") as policy:
        policy.write("p, agent, net.egress:mirror.test:80, allow, True, the test's private mirror\n")
    reachable = Path(tempfile.mkdtemp(prefix="gk-workers-"))
    reachable.chmod(0o711)
    (reachable / "workspace").mkdir()
    return pack, reachable


async def test_a_sandboxed_call_s_connections_meet_the_egress_gate_of_its_own_worker(tmp_path: Path) -> None:
    """The runner's per-call egress credential lives in the worker that ran the call; the sandbox
    reaches the gate through that worker's own socket, so its connection is decided and allowed
    whichever worker took the call. The shared TCP egress port refuses a credential it does not
    know (407), on every worker: fail closed."""
    from aiohttp import web

    from ..helpers import serve_app

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello-from-mirror")

    mirror = web.Application()
    mirror.router.add_get("/{tail:.*}", hello)
    pack, reachable = _sandbox_files(tmp_path)
    async with serve_app(mirror) as mirror_url:
        port = mirror_url.rsplit(":", 1)[1]
        extra = (
            f"runner: {{enabled: true, workspace: {reachable / 'workspace'}}}\n"
            f"egress: {{pin: {{'mirror.test:80': '127.0.0.1:{port}'}}}}\n"
        )
        config = fleet_config(tmp_path, policy_dir=pack, extra=extra)
        text = config.read_text().replace(
            "  operator: {port: 0}\n", "  operator: {port: 0}\n  egress: {port: 0}\n"
        )
        config.write_text(text)
        fleet = await asyncio.to_thread(Fleet, config)
        try:
            token = fleet.token()
            for worker in (0, 1):
                session = await session_on(fleet.agent_url, worker)
                async with session:
                    status, body = await invoke(
                        session,
                        fleet.agent_url,
                        token,
                        "shell.exec",
                        {"cmd": "curl -sS http://mirror.test/x"},
                    )
                assert status == 200, body
                assert body["result"]["stdout"] == "hello-from-mirror", body
            egress_port = int(fleet.wait_line(lambda e: bool(e.get("egress")), 5)["egress"].rsplit(":", 1)[1])
            refused = set()
            for _ in range(20):
                reader, writer = await asyncio.open_connection("127.0.0.1", egress_port)
                writer.write(
                    b"CONNECT mirror.test:80 HTTP/1.1\r\nHost: mirror.test:80\r\n"
                    b"Proxy-Authorization: Basic Z2s6bm90LWEtbGl2ZS1jcmVkZW50aWFs\r\n\r\n"
                )
                await writer.drain()
                refused.add((await reader.readline()).split(b" ")[1])
                writer.close()
                await writer.wait_closed()
            assert refused == {b"407"}
        finally:
            code = await asyncio.to_thread(fleet.stop)
            shutil.rmtree(reachable, ignore_errors=True)
        assert code == 0

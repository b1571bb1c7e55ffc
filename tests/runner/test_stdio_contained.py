"""With the runner enabled, a stdio MCP server runs in the sandbox: its own files, processes and
connections meet the same walls as ``shell.exec``, and its way out is decided for ``upstream:NAME``.

A real SDK stdio server (``sdk_server.py``) is called through ``/mcp/probe`` with the official
client. Its tools are allowed to the agent without inspection, so that what is under test is
the second wall: the sandbox and the egress gate. Fake outside hosts as in ``conftest.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import TextContent

from gatekeeper.app import Gatekeeper
from gatekeeper.config import Config, Upstream
from gatekeeper.errors import ConfigError

from ..helpers import mint, running
from .conftest import Outside, runner_config
from .sdk_server import POLICY, SYSTEM_PYTHON, TOOLS, sdk_server_dir

SERVER_GRANTS = "p, upstream:probe, net.egress:mirror.test:80, allow, True, the probe server's own mirror\n"


def probe_config(tmp_path: Path, outside: Outside, **upstream: Any) -> Config:
    config: Config = runner_config(tmp_path, outside)
    folder = sdk_server_dir()
    with config.policy.tools.open("a") as fh:
        fh.write(TOOLS)
    with config.policy.policy.open("a") as fh:
        fh.write(POLICY + SERVER_GRANTS)
    settings: dict[str, Any] = {
        "command": (SYSTEM_PYTHON, "-I", "-S", str(folder / "server.py")),
        "read_only_paths": (str(folder),),
        "env": {"PROBE_MARKER": "/workspace/.probe-started"},
        "timeout_seconds": 30.0,
        **upstream,
    }
    return replace(config, upstreams={**config.upstreams, "probe": Upstream("probe", **settings)})


class Probe:
    """The agent's MCP session with the probe server, and every decision record made meanwhile."""

    def __init__(self, gk: Gatekeeper, mcp: Client, records: list[dict[str, Any]]) -> None:
        self.gk, self.mcp, self.records = gk, mcp, records

    async def call(self, tool: str, **arguments: Any) -> str:
        result = await self.mcp.call_tool(f"probe.{tool}", arguments)
        block = result.content[0]
        assert isinstance(block, TextContent)
        assert not result.is_error, block.text
        return block.text

    def egress(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("entry") == "egress"]


@asynccontextmanager
async def probing(config: Config) -> AsyncIterator[Probe]:
    """A running Gatekeeper and the agent's MCP session with the probe server (entered and left
    in the test's own task, as the SDK's client requires)."""
    records: list[dict[str, Any]] = []
    async with running(config) as gk:
        gk.sinks.sinks.append(records.append)
        headers = {"Authorization": f"Bearer {mint(gk)}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=60) as http,
            Client(
                streamable_http_client(f"{gk.agent_url}/mcp/probe", http_client=http), mode="legacy"
            ) as mcp,
        ):
            yield Probe(gk, mcp, records)


async def test_the_server_runs_in_the_sandbox_and_is_called_through_mcp(
    tmp_path: Path, outside: Outside
) -> None:
    os.environ["GK_STDIO_HOST_SECRET"] = "s3cret-of-the-host"  # Gatekeeper's environment: not the server's
    try:
        async with probing(probe_config(tmp_path, outside)) as probe:
            names = {t.name for t in (await probe.mcp.list_tools()).tools}
            assert {"probe.read", "probe.fetch", "probe.environ", "probe.whoami"} <= names
            who = json.loads(await probe.call("whoami"))
            env = json.loads(await probe.call("environ"))
            token = env["HTTP_PROXY"].split(":")[2].split("@")[0]
            grant = probe.gk.credentials.check(token)
            bridge = probe.gk.stdio["probe"]
            assert bridge.contained is not None and bridge.pid is not None
        # A cwd in its read-only folder: nothing the agent writes is where it looks for code.
        (tmp_path / "ro").mkdir()
        async with probing(probe_config(tmp_path / "ro", outside, cwd=str(sdk_server_dir()))) as probe2:
            read_only_cwd = json.loads(await probe2.call("whoami"))
    finally:
        del os.environ["GK_STDIO_HOST_SECRET"]
    # Its own pid namespace, the sandbox's uid and hostname, the workspace as its cwd.
    assert who == {"pid": who["pid"], "uid": 1000, "cwd": "/workspace", "host": "sandbox"}
    assert who["pid"] < 10
    assert read_only_cwd["cwd"] == str(sdk_server_dir())
    assert set(env) == {
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TERM", "TMPDIR", "PIP_DISABLE_PIP_VERSION_CHECK",
        "PROBE_MARKER", "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
        "no_proxy", "NO_PROXY", "PWD",
    }  # fmt: skip
    assert "s3cret" not in json.dumps(env)
    assert env["HOME"] == "/home/agent" and env["HTTP_PROXY"].endswith("@127.0.0.1:3128")
    assert grant is not None and grant.service and grant.principal.subject == "upstream:probe"
    assert probe.gk.credentials.check(token) is None  # revoked when the server stopped


async def test_files_outside_the_workspace_are_invisible(tmp_path: Path, outside: Outside) -> None:
    async with probing(probe_config(tmp_path, outside)) as probe:
        gk = probe.gk
        workspace = gk.config.runner.workspace
        assert workspace is not None
        (workspace / "hello.txt").write_text("hi from the workspace\n")
        outside_file = tmp_path / "host-only.txt"
        outside_file.write_text("host only\n")
        key = next(p for p in gk.config.data_dir.rglob("*") if p.is_file())  # a key, the audit trail
        (workspace / "key-link").symlink_to(key)  # planted by a clone, say: resolved in the sandbox
        (workspace / "data-link").symlink_to(gk.config.data_dir)
        assert await probe.call("read", path="hello.txt") == "read: hi from the workspace\n"
        for path in (
            str(outside_file),
            str(key),
            "/workspace/key-link",
            "/workspace/data-link/audit.sqlite3",
            "/root/.bashrc",
            f"/proc/{os.getpid()}/environ",  # Gatekeeper's own environment, by its host pid
        ):
            assert (await probe.call("read", path=path)).startswith("unreadable: "), path
        for folder in (str(gk.config.data_dir), str(tmp_path), "/root", "/work"):
            assert (await probe.call("list", path=folder)).startswith("unlistable: "), folder
        # Its /proc is its own: the sandbox's few processes, none of the host's.
        pids = (await probe.call("list", path="/proc")).removeprefix("listed: ").split()
        assert max(int(p) for p in pids if p.isdigit()) < 10
        # It started in the workspace (its marker is there), and nowhere else of the host.
        assert (workspace / ".probe-started").read_text().strip().isdigit()


async def test_connections_meet_the_policy_as_upstream_name(tmp_path: Path, outside: Outside) -> None:
    async with probing(probe_config(tmp_path, outside)) as probe:
        ok = await probe.call("fetch", url="http://mirror.test/")
        refused = await probe.call("fetch", url="http://evil.example/")
        # The agent may reach pypi.org; the server's own principal may not.
        tunnel = await probe.call("fetch", url="https://pypi.org/")
        # Through the gate with its own credential: Gatekeeper's listeners, metadata. Refused for all.
        inside = [
            await probe.call("fetch", url=url)
            for url in (f"{probe.gk.agent_url}/healthz", "http://169.254.169.254/latest/meta-data/")
        ]
        # Around the proxy: raw sockets to the fake host's loopback port, or anywhere else.
        raw = [
            await probe.call("connect", host=host, port=port)
            for host, port in (
                ("127.0.0.1", outside.evil.port),
                ("203.0.113.7", 443),
                ("::1", outside.evil.port),
            )
        ]
        # The relay without the credential: 407, nothing connected.
        bare = await probe.call("proxy", request="CONNECT mirror.test:80 HTTP/1.1\n\n")
        egress = probe.egress()
        fetches = [r["decision_id"] for r in probe.records if r.get("tool") == "probe.fetch"]
    assert ok == "fetched 200: fake outside host\n" and outside.mirror_hits == ["/"]
    assert refused.startswith("refused 403") and "not_allowed" in refused, refused
    assert tunnel.startswith("failed:") and "403" in tunnel, tunnel
    assert outside.pypi_hits == []
    assert all(r.startswith("refused 403") for r in inside), inside
    assert all("net.internal denied" in r for r in inside), inside
    assert all(r.startswith("blocked: ") for r in raw), raw
    assert bare == "answer: HTTP/1.1 407 Proxy Authentication Required", bare
    assert outside.evil.connections == 0
    by_target = {r["extra"]["target"]: r for r in egress if r["principal"] is not None}
    assert {t: r["outcome"] for t, r in by_target.items()} == {
        "mirror.test:80": "allowed",
        "evil.example:80": "denied",
        "pypi.org:443": "denied",
        f"127.0.0.1:{probe.gk.agent_url.rsplit(':', 1)[1]}": "denied",
        "169.254.169.254:80": "denied",
    }
    # Exactly one call was in flight on the server each time: each connection is recorded under it.
    for target, call in zip(by_target, fetches, strict=True):
        record = by_target[target]
        assert record["principal"] == "upstream:probe" and record["roles"] == ["upstream:probe"]
        assert record["tool"] == "mcp.server:probe"
        assert record["extra"]["parent_decision_id"] == call
        assert record["arguments"] == {"connect": target, "call": call}
    assert by_target["mirror.test:80"]["rule"].startswith("policy.csv:")
    # The bare CONNECT carried no credential: no principal, no parent.
    assert [r["extra"]["parent_decision_id"] for r in egress if r["principal"] is None] == [None]


async def test_a_killed_server_is_restarted_in_the_sandbox_with_a_new_credential(
    tmp_path: Path, outside: Outside
) -> None:
    async with probing(probe_config(tmp_path, outside)) as probe:
        gk = probe.gk
        bridge = gk.stdio["probe"]
        first = json.loads(await probe.call("environ"))["HTTP_PROXY"]
        first_token = first.split(":")[2].split("@")[0]
        first_pid = bridge.pid
        assert first_pid is not None
        os.kill(_server_process(first_pid), signal.SIGKILL)  # the server itself, deep in the sandbox
        for _ in range(300):
            await asyncio.sleep(0.05)
            if bridge.pid not in (None, first_pid):
                break
        assert bridge.restarts >= 1 and bridge.pid not in (None, first_pid)
        assert gk.credentials.check(first_token) is None  # revoked with the process it was minted for
        who = json.loads(await probe.call("whoami"))
        second = json.loads(await probe.call("environ"))["HTTP_PROXY"]
        fetched = await probe.call("fetch", url="http://mirror.test/")
    assert who["uid"] == 1000 and who["host"] == "sandbox"
    assert second != first
    assert fetched.startswith("fetched 200")


def _server_process(root: int) -> int:
    """The host pid of the probe server: the descendant of ``root`` running ``server.py``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    todo, found = [root], []
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if argv[0] == SYSTEM_PYTHON.encode() and b"server.py" in argv[-2]:  # not bubblewrap's
                found.append(pid)
        except OSError:
            continue
    assert len(found) == 1, found
    return found[0]


async def test_a_token_cannot_claim_a_server_principal(tmp_path: Path, outside: Outside) -> None:
    async with running(probe_config(tmp_path, outside)) as gk, aiohttp.ClientSession() as http:
        for token in (mint(gk, roles=("agent", "upstream:probe")), mint(gk, subject="upstream:probe")):
            async with http.post(
                f"{gk.agent_url}/v1/invoke",
                json={"tool": "probe.whoami", "arguments": {}},
                headers={"Authorization": f"Bearer {token}"},
            ) as answer:
                body = await answer.json()
            assert answer.status == 401 and body["code"] in ("invalid_roles", "invalid_claim"), body


async def test_without_bubblewrap_the_server_is_never_started(tmp_path: Path, outside: Outside) -> None:
    marker = tmp_path / "started-unsandboxed"
    config = probe_config(tmp_path, outside, env={"PROBE_MARKER": str(marker)})
    config = replace(config, runner=replace(config.runner, bwrap=str(tmp_path / "no-such-bwrap")))
    with pytest.raises(ConfigError) as err:
        async with running(config):
            pass
    assert "bubblewrap" in err.value.message and "no-such-bwrap" in err.value.message
    assert not marker.exists()


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"command": ("python3", "server.py"), "cwd": "/tmp"}, "cwd"),
        ({"command": ("./server.sh",)}, "workspace, which the agent can write"),
        ({"command": ("/workspace/server.sh",)}, "not found"),
        ({"env": {"HTTPS_PROXY": "http://evil.example:80"}}, "proxy variables"),
        ({"read_only_paths": ("/",)}, "root"),
        ({"read_only_paths": ("/proc/self",)}, "kernel"),
    ],
)
async def test_what_would_leave_the_sandbox_stops_start_up(
    tmp_path: Path, outside: Outside, settings: dict[str, Any], says: str
) -> None:
    config = probe_config(tmp_path, outside, **settings)
    with pytest.raises(ConfigError) as err:
        async with running(config):
            pass
    assert says in err.value.message, err.value.message


async def test_a_server_in_the_workspace_or_over_the_data_folder_is_refused(
    tmp_path: Path, outside: Outside
) -> None:
    config = probe_config(tmp_path, outside)
    workspace = config.runner.workspace
    assert workspace is not None
    script = workspace / "server.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    for settings, says in (
        # Found through PATH in the workspace: the agent could replace the server's code.
        ({"command": ("server.sh",), "env": {"PATH": f"/workspace:{workspace}:/usr/bin"}}, "not found"),
        ({"command": (str(script),)}, "read-only place"),
        ({"read_only_paths": (str(config.data_dir.parent),)}, "data folder"),
    ):
        bad = replace(
            config, upstreams={**config.upstreams, "probe": replace(config.upstreams["probe"], **settings)}
        )
        with pytest.raises(ConfigError) as err:
            async with running(bad):
                pass
        assert says in err.value.message, (settings, err.value.message)

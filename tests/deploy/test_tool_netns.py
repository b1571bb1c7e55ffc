"""The containment boundary without bubblewrap: a tool in its own network namespace.

``deploy/netns/tool-netns.sh`` (the host-level twin of deploy/kubernetes/tool-egress.yaml) gives
a tool a namespace whose only permitted connection is TCP to the egress gate. The test builds
two namespaces of its own, one for Gatekeeper and its fake outside hosts, one for the tool,
joined by the script's link; every address used lives inside them. Gatekeeper runs in this
process, on a thread joined to its namespace; the tool is a real server process in the other.
"""

from __future__ import annotations

import asyncio
import base64
import ctypes
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web

from gatekeeper.config import Listener, PolicyFiles, Upstream
from gatekeeper.runner.settings import EgressSettings

from ..helpers import copy_policy_pack, invoke, make_config, mint, running

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "netns" / "tool-netns.sh"
TOOL_SERVER = Path(__file__).with_name("netns_tool.py")
GATE_ADDR, TOOL_ADDR, EGRESS_PORT, TOOL_PORT, EVIL_PORT = "10.231.7.1", "10.231.7.2", 8082, 7000, 9999
CLONE_NEWNET = 0x40000000
T = TypeVar("T")


def in_netns(namespace: str, work: Callable[[], T]) -> T:
    """``work()`` on a thread joined to ``namespace``: every socket it opens lives there."""
    outcome: dict[str, Any] = {}

    def body() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns failed")
        finally:
            os.close(fd)
        try:
            outcome["value"] = work()
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=body, name=f"netns-{namespace}")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str]]:
    missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
    if os.geteuid() != 0 or missing:
        pytest.fail(f"needs root, iproute2 and nftables (apt-get install -y nftables); missing: {missing}")
    tag = secrets.token_hex(3)
    gate, tool = f"gk-gate-{tag}", f"gk-tool-{tag}"
    _sh("ip", "netns", "add", gate)
    try:
        _sh("ip", "-n", gate, "link", "set", "lo", "up")
        _sh(
            "bash", str(SCRIPT), "up", tool, "--peer-netns", gate, "--gate-addr", GATE_ADDR,
            "--tool-addr", TOOL_ADDR, "--egress-port", str(EGRESS_PORT), "--serve-port", str(TOOL_PORT),
        )  # fmt: skip
        yield gate, tool
    finally:
        subprocess.run(["bash", str(SCRIPT), "down", tool, "--peer-netns", gate], capture_output=True)
        subprocess.run(["ip", "netns", "del", gate], capture_output=True)


@pytest.fixture
def tool_server(namespaces: tuple[str, str]) -> Iterator[None]:
    proxy = f"http://{GATE_ADDR}:{EGRESS_PORT}"
    env = [f"{name}={proxy}" for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")]
    proc = subprocess.Popen(
        ["ip", "netns", "exec", namespaces[1], "env", *env, f"PYTHONPATH={ROOT}", sys.executable,
         str(TOOL_SERVER), TOOL_ADDR, str(TOOL_PORT), f"{GATE_ADDR}:{EVIL_PORT}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", proc.stderr
        yield
    finally:
        proc.terminate()
        proc.communicate(timeout=10)  # reaps it and closes its pipes


def _pack(tmp_path: Path) -> PolicyFiles:
    """The default pack, with http.fetch served by the contained tool and one plain-HTTP mirror."""
    folder = tmp_path / "pack"
    copy_policy_pack(folder)
    tools = (folder / "tools.yaml").read_text()
    assert "  http.fetch:\n    upstream: demo\n" in tools
    served_here = tools.replace("  http.fetch:\n    upstream: demo\n", "  http.fetch:\n    upstream: tools\n")
    (folder / "tools.yaml").write_text(served_here)
    with (folder / "policy.csv").open("a") as policy:
        policy.write("p, agent, net.egress:mirror.test:80, allow, True, the test's private mirror\n")
    return PolicyFiles(folder / "model.conf", folder / "policy.csv", folder / "tools.yaml")


async def _scenario(tmp_path: Path, tool_namespace: str) -> dict[str, Any]:
    """Runs in Gatekeeper's namespace: fake outside hosts, Gatekeeper, one call, the checks' data."""
    evil_connections = 0

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal evil_connections
        evil_connections += 1
        writer.close()

    async def mirror_page(request: web.Request) -> web.Response:
        return web.Response(text="fake outside host\n")

    evil = await asyncio.start_server(count, "0.0.0.0", EVIL_PORT)
    mirror_app = web.Application()
    mirror_app.router.add_get("/", mirror_page)
    mirror = web.AppRunner(mirror_app, access_log=None)
    await mirror.setup()
    await web.TCPSite(mirror, "127.0.0.1", 0).start()
    mirror_port = mirror.addresses[0][1]
    config = replace(
        make_config(tmp_path),
        egress_listener=Listener(GATE_ADDR, EGRESS_PORT),
        egress=EgressSettings(
            pin={"mirror.test:80": ("127.0.0.1", mirror_port), "evil.example:80": ("127.0.0.1", EVIL_PORT)},
            hold_seconds=0.3,
        ),
        policy=_pack(tmp_path),
    )
    config = replace(
        config,
        upstreams={
            **config.upstreams,
            "tools": Upstream("tools", url=f"http://{TOOL_ADDR}:{TOOL_PORT}", egress_credential=True),
        },
    )
    seen: dict[str, Any] = {}
    try:
        async with running(config) as gk, aiohttp.ClientSession() as http:
            status, body, _ = await invoke(http, gk, "http.fetch", {"url": "http://mirror.test/"}, mint(gk))
            seen["status"], seen["body"] = status, body
            async with http.get(f"http://{TOOL_ADDR}:{TOOL_PORT}/credentials") as resp:
                (credential,) = await resp.json()
            # The call is over: its credential is dead, even from the tool's own namespace.
            basic = base64.b64encode(f"gatekeeper:{credential}".encode()).decode()
            reuse = f"GET http://mirror.test/ HTTP/1.1\r\nProxy-Authorization: Basic {basic}\r\n\r\n"
            replay = await asyncio.create_subprocess_exec(
                "ip", "netns", "exec", tool_namespace, sys.executable, "-c",
                "import socket,sys; s=socket.create_connection((sys.argv[1], int(sys.argv[2])), 5);"
                "s.sendall(sys.argv[3].encode()); print(s.recv(200).decode().split(chr(13))[0])",
                GATE_ADDR, str(EGRESS_PORT), reuse, stdout=subprocess.PIPE,
            )  # fmt: skip
            seen["replay"] = (await replay.communicate())[0].decode().strip()
            seen["evil_before_control"] = evil_connections
        db = sqlite3.connect(config.data_dir / "audit.sqlite3")
        try:
            rows = db.execute("SELECT body FROM audit_records ORDER BY seq")
            seen["records"] = [json.loads(body) for (body,) in rows]
        finally:
            db.close()
        # The control: without the namespace's filter, the same direct connection gets through.
        _sh("ip", "netns", "exec", tool_namespace, "nft", "flush", "ruleset")
        direct = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", tool_namespace, sys.executable, "-c",
            "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 3).close()",
            GATE_ADDR, str(EVIL_PORT),
        )  # fmt: skip
        seen["control_rc"] = await direct.wait()
        await asyncio.sleep(0.2)
        seen["evil_after_control"] = evil_connections
    finally:
        evil.close()
        await evil.wait_closed()
        await mirror.cleanup()
    return seen


def test_a_tool_in_its_own_namespace_reaches_only_what_the_policy_allows(
    namespaces: tuple[str, str], tool_server: None, tmp_path: Path
) -> None:
    seen = in_netns(namespaces[0], lambda: asyncio.run(_scenario(tmp_path, namespaces[1])))
    assert seen["status"] == 200, seen["body"]
    result = seen["body"]["result"]
    # The allowed fetch went through the gate with the call's credential.
    assert result["status"] == 200 and result["body"] == "fake outside host\n"
    # A connection that ignores the proxy variables meets the namespace's filter.
    assert result["direct"].startswith("blocked"), result
    # Through the gate, a host the policy does not list is held, then refused, even with a live credential.
    assert result["unlisted_status"] == 403, result
    assert seen["evil_before_control"] == 0
    assert seen["replay"].startswith("HTTP/1.1 407"), seen["replay"]
    egress = [r for r in seen["records"] if r["entry"] == "egress" and r["extra"]["parent_decision_id"]]
    assert {(r["extra"]["target"], r["outcome"]) for r in egress} == {
        ("evil.example:80", "denied"),
        ("mirror.test:80", "allowed"),
    }
    assert {r["extra"]["parent_decision_id"] for r in egress} == {seen["body"]["decision_id"]}
    assert {r["tool"] for r in egress} == {"http.fetch"}
    # The replayed credential is a record too: refused, tied to no call.
    assert [
        r["code"] for r in seen["records"] if r["entry"] == "egress" and not r["extra"]["parent_decision_id"]
    ] == ["invalid_credential"]
    # Without the filter the tool does reach the host directly: the filter is what stopped it.
    assert seen["control_rc"] == 0 and seen["evil_after_control"] == 1


def test_the_script_refuses_bad_input(tmp_path: Path) -> None:
    for argv in (
        ["up", "bad name!", "--gate-addr", GATE_ADDR, "--tool-addr", TOOL_ADDR, "--egress-port", "1"],
        ["up", "gk-x", "--gate-addr", GATE_ADDR, "--tool-addr", TOOL_ADDR],
        ["up", "gk-x", "--gate-addr", GATE_ADDR, "--tool-addr", TOOL_ADDR, "--egress-port", "80; reboot"],
        ["sideways", "gk-x"],
    ):
        proc = subprocess.run(["bash", str(SCRIPT), *argv], capture_output=True, text=True)
        assert proc.returncode == 2 and proc.stderr.startswith("tool-netns.sh: "), (argv, proc.stderr)
    assert not Path("/run/netns/gk-x").exists()

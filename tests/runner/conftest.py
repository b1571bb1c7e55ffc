"""Live fire: a real Gatekeeper with the sandboxed runner, and fake outside hosts on loopback.

Outside hosts are servers on 127.0.0.1 reached only by name through ``egress.pin``: ``pypi.org``
(TLS, a self-signed certificate for that name, a tiny package index), ``mirror.test`` (plain
HTTP, allowed by the test pack) and ``evil.example`` / ``github.com:22`` (they only count
connections: every test asserts they saw none).
"""

from __future__ import annotations

import asyncio
import datetime
import shutil
import ssl
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gatekeeper.app import Gatekeeper
from gatekeeper.approvals.settings import ApprovalSettings
from gatekeeper.config import Listener, PolicyFiles
from gatekeeper.runner.settings import EgressSettings, RunnerLimits, RunnerSettings

from ..helpers import copy_policy_pack, invoke, make_config, mint, running

BWRAP_HINT = "the live-fire suite needs Debian's bubblewrap: apt-get install -y bubblewrap (.ci/run does)"


@dataclass
class Counter:
    """A fake outside host that only counts the connections it sees."""

    port: int = 0
    connections: int = 0
    server: asyncio.Server | None = None


@dataclass
class Outside:
    ca_pem: bytes
    pypi_port: int
    mirror_port: int
    evil: Counter
    pypi_hits: list[str] = field(default_factory=list)
    mirror_hits: list[str] = field(default_factory=list)


def _self_signed(name: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _index_app(hits: list[str], packages: dict[str, bytes]) -> web.Application:
    async def any_path(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        parts = [p for p in request.path.split("/") if p]
        if parts[:1] == ["simple"] and len(parts) == 2:
            links = "".join(
                f'<a href="/files/{name}">{name}</a>' for name in packages if name.startswith(parts[1])
            )
            return web.Response(text=f"<html><body>{links}</body></html>", content_type="text/html")
        if parts[:1] == ["files"] and len(parts) == 2 and parts[1] in packages:
            return web.Response(body=packages[parts[1]], content_type="application/octet-stream")
        if request.path == "/":
            return web.Response(text="fake outside host\n")
        return web.Response(status=404, text="not found\n")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", any_path)
    return app


@pytest.fixture
async def outside(tmp_path: Path) -> AsyncIterator[Outside]:
    cert, key = _self_signed("pypi.org")
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls" / "cert.pem").write_bytes(cert)
    (tmp_path / "tls" / "key.pem").write_bytes(key)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem")
    from .packages import evil_sdist

    outside = Outside(cert, 0, 0, Counter())

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        outside.evil.connections += 1
        writer.close()

    evil = await asyncio.start_server(count, "127.0.0.1", 0)
    outside.evil.server = evil
    outside.evil.port = evil.sockets[0].getsockname()[1]
    runners = []
    for app, ctx, attr in (
        (_index_app(outside.pypi_hits, {"evilpkg-1.0.tar.gz": evil_sdist()}), tls, "pypi_port"),
        (_index_app(outside.mirror_hits, {}), None, "mirror_port"),
    ):
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx).start()
        runners.append(runner)
        setattr(outside, attr, runner.addresses[0][1])
    try:
        yield outside
    finally:
        for runner in runners:
            await runner.cleanup()
        evil.close()


def _test_pack(tmp_path: Path) -> PolicyFiles:
    """The default pack plus one plain-HTTP mirror (http.fetch tests) on port 80."""
    folder = tmp_path / "pack"
    copy_policy_pack(folder)
    with (folder / "policy.csv").open("a") as policy:
        policy.write("p, agent, net.egress:mirror.test:80, allow, True, the test's private mirror\n")
    return PolicyFiles(folder / "model.conf", folder / "policy.csv", folder / "tools.yaml")


def runner_config(tmp_path: Path, outside: Outside, **limits: Any) -> Any:
    if shutil.which("bwrap") is None:
        pytest.fail(BWRAP_HINT)
    # The sandbox runs as an unprivileged uid: its workspace must be reachable by it, and
    # pytest's own tmp folders are 0700.
    reachable = Path(tempfile.mkdtemp(prefix="gk-live-fire-"))
    reachable.chmod(0o711)
    workspace = reachable / "workspace"
    workspace.mkdir()
    (workspace / "pypi-ca.txt").write_bytes(outside.ca_pem)
    evil = ("127.0.0.1", outside.evil.port)
    pins = {
        "pypi.org:443": ("127.0.0.1", outside.pypi_port),
        "mirror.test:80": ("127.0.0.1", outside.mirror_port),
        "evil.example:443": evil,
        "evil.example:80": evil,
        "github.com:22": evil,
    }
    return replace(
        make_config(tmp_path),
        egress_listener=Listener("127.0.0.1", 0),
        egress=EgressSettings(pin=pins, hold_seconds=0.5),
        runner=RunnerSettings(
            enabled=True,
            workspace=workspace,
            limits=RunnerLimits(**{"wall_seconds": 20.0, **limits}),
        ),
        policy=_test_pack(tmp_path),
        approvals=ApprovalSettings(default_wait_seconds=0.2, sweep_interval_seconds=0.1),
    )


@pytest.fixture
async def contained(tmp_path: Path, outside: Outside) -> AsyncIterator[Gatekeeper]:
    async with running(runner_config(tmp_path, outside)) as gk:
        yield gk


class Agent:
    """An agent with a valid token and the default pack's role."""

    def __init__(self, gk: Gatekeeper, http: aiohttp.ClientSession) -> None:
        self.gk, self.http = gk, http
        self.token = mint(gk, subject="agent-1")

    async def call(self, tool: str, **arguments: Any) -> tuple[int, dict[str, Any]]:
        status, body, _ = await invoke(self.http, self.gk, tool, arguments, self.token)
        return status, body

    async def write(self, path: str, content: str) -> None:
        status, body = await self.call("file.write", path=path, content=content)
        assert status == 200 and "error" not in body["result"], body

    async def plant(self, path: str, content: str) -> None:
        """Put a file in the workspace by a way argument inspection does not see (a clone, an
        archive, another process): what the sandbox and the egress gate must contain on their
        own. A file written by ``file.write`` is read first, and running it inherits what it
        does (``tests/server/test_written_code.py``)."""
        workspace = self.gk.config.runner.workspace
        assert workspace is not None
        target = Path(workspace) / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        target.chmod(0o644)

    async def sh(self, cmd: str) -> dict[str, Any]:
        """Run an allowed command; fails the test if the gate held or refused it."""
        status, body = await self.call("shell.exec", cmd=cmd)
        assert status == 200, body
        result: dict[str, Any] = body["result"]
        result["decision_id"] = body["decision_id"]
        return result


@pytest.fixture
async def agent(contained: Gatekeeper) -> AsyncIterator[Agent]:
    async with aiohttp.ClientSession() as http:
        yield Agent(contained, http)

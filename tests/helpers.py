"""Shared test helpers: a running Gatekeeper on loopback, token minting, log capture, the
machine's PostgreSQL and throwaway schemas on it, a private copy of the policy pack, waiting for
something to happen (``poll_until``) and a clock the test moves by hand.

Reused by every test module instead of being copied.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import secrets
import shutil
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
from aiohttp import web

from gatekeeper.app import Gatekeeper
from gatekeeper.approvals.settings import ApprovalSettings
from gatekeeper.config import Config, DemoSettings, Listener, PolicyFiles, default_config
from gatekeeper.identity import issue_token

POLICY_DIR = Path(__file__).resolve().parent.parent / "policies"

T = TypeVar("T")


def copy_policy_pack(dest: Path) -> Path:
    """A private copy of the default policy pack (without its tests) at ``dest``, to edit or to
    point a configuration at."""
    shutil.copytree(POLICY_DIR, dest, ignore=shutil.ignore_patterns("tests"))
    return dest


async def poll_until(
    check: Callable[[], T | Awaitable[T]],
    *,
    within: float = 10.0,
    every: float = 0.02,
    what: str = "the condition",
) -> T:
    """Call ``check`` (plain or async) until it returns something truthy, and return that.

    The deadline only turns a hang into a failure: keep it generous, the machine is shared."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within:g} s waiting for {what}")
        await asyncio.sleep(every)


class Clock:
    """A clock the test moves by hand: pass it where the code takes ``clock=`` and set or
    advance ``now``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


PG_USERS = ("postgres", "root")
PG_DSN_TEMPLATE = "postgresql://{user}@127.0.0.1:5432/test"
_pg_dsn: str | None = None


async def postgres_dsn() -> str:
    """The DSN of the machine's PostgreSQL (user postgres, else root). Never mocked: no server, no pass."""
    global _pg_dsn
    if _pg_dsn is None:
        errors: list[str] = []
        for user in PG_USERS:
            dsn = PG_DSN_TEMPLATE.format(user=user)
            try:
                conn = await asyncpg.connect(dsn, timeout=5)
            except (OSError, asyncpg.PostgresError) as exc:
                errors.append(f"{user}: {exc}")
                continue
            await conn.close()
            _pg_dsn = dsn
            break
        else:
            pytest.fail("PostgreSQL at 127.0.0.1:5432/test is required: " + "; ".join(errors))
    return _pg_dsn


async def drop_schema(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


class _Openable(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...


_O = TypeVar("_O", bound=_Openable)


@asynccontextmanager
async def opened(instance: _O) -> AsyncIterator[_O]:
    """``instance`` opened for the block and closed after it (a store, a sink, a counter)."""
    await instance.open()
    try:
        yield instance
    finally:
        await instance.close()


@asynccontextmanager
async def throwaway_schema(prefix: str) -> AsyncIterator[tuple[str, str]]:
    """(dsn, a fresh schema name starting with ``prefix``); the schema is dropped with CASCADE after."""
    dsn = await postgres_dsn()
    schema = f"{prefix}_{secrets.token_hex(6)}"
    try:
        yield dsn, schema
    finally:
        await drop_schema(dsn, schema)


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports free just now (for a server started in another process)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def make_config(tmp_path: Path, **overrides: Any) -> Config:
    """Embedded defaults, but every port picked by the OS and the data folder in tmp_path."""
    settings: dict[str, Any] = {
        "data_dir": tmp_path / "gk-home",
        "agent_listener": Listener("127.0.0.1", 0),
        "operator_listener": Listener("127.0.0.1", 0),
        "demo": DemoSettings(enabled=True, host="127.0.0.1", http_port=0, mcp_port=0),
        "approvals": ApprovalSettings(default_wait_seconds=0.2, sweep_interval_seconds=0.1),
        "policy": PolicyFiles(
            POLICY_DIR / "model.conf", POLICY_DIR / "policy.csv", POLICY_DIR / "tools.yaml"
        ),
    }
    return replace(default_config(), **{**settings, **overrides})


@asynccontextmanager
async def running(config: Config) -> AsyncIterator[Gatekeeper]:
    gk = Gatekeeper(config)
    await gk.start()
    try:
        yield gk
    finally:
        await gk.stop()


# One Gatekeeper for a whole module of tests that only send calls to it (starting and stopping
# one costs ~0.3 s a test). A module opts in with
#     from ..helpers import http_in_module_loop, run_in_module_loop, shared_gk, shared_gk_per_test
#     run_in_module_loop(globals())  # at the end of the module
# and its tests keep asking for ``gk`` and ``http``. Before each test the demo upstream's record
# of what reached it is emptied, so each test still asserts on its own calls alone; a test that
# changes the Gatekeeper (its gate, its policy, its mode) must start its own with ``running``.


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_gk(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gatekeeper]:
    async with running(make_config(tmp_path_factory.mktemp("shared-gk"))) as instance:
        yield instance


@pytest.fixture(name="gk")
def shared_gk_per_test(shared_gk: Gatekeeper, log_output: list[dict[str, Any]]) -> Gatekeeper:
    """The module's Gatekeeper, with nothing yet received by its demo upstream."""
    assert shared_gk.demo is not None and not shared_gk.lifecycle.draining
    shared_gk.demo.http_received.clear()
    shared_gk.demo.mcp_received.clear()
    return shared_gk


@pytest_asyncio.fixture(name="http", loop_scope="module")
async def http_in_module_loop() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def run_in_module_loop(namespace: dict[str, Any]) -> None:
    """Run every async test of a module in the module's event loop, where ``shared_gk`` lives (a
    module-wide ``pytestmark`` would also mark its synchronous tests, which pytest-asyncio refuses)."""
    for name, test in list(namespace.items()):
        if name.startswith("test_") and inspect.iscoroutinefunction(test):
            namespace[name] = pytest.mark.asyncio(loop_scope="module")(test)


@asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[str]:
    """Run an aiohttp app on a free loopback port; yields its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def mint(gk: Gatekeeper, subject: str = "agent-1", roles: tuple[str, ...] = ("agent",), **kw: Any) -> str:
    key = gk.config.identity.dev_key_path
    assert key is not None
    ident = gk.config.identity
    operator = kw.pop("operator", False)
    return issue_token(
        Path(key),
        subject=subject,
        roles=list(roles),
        operator=operator,
        issuer=ident.issuer,
        audience=ident.operator_audience if operator else ident.audience,
        **kw,
    )


async def invoke(
    session: aiohttp.ClientSession,
    gk: Gatekeeper,
    tool: str,
    arguments: Mapping[str, Any],
    token: str | None,
    headers: Mapping[str, str] | None = None,
    path: str = "/v1/invoke",
) -> tuple[int, dict[str, Any], aiohttp.typedefs.LooseHeaders]:
    """POST a call to /v1/invoke (or, with ``path``, /v1/decide); (status, body, headers)."""
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    body = json.dumps({"tool": tool, "arguments": arguments})
    async with session.post(f"{gk.agent_url}{path}", data=body, headers=hdrs) as resp:
        return resp.status, await resp.json(), resp.headers


def decisions(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry for entry in lines if entry.get("event") == "decision"]


H100 = {"gpu_type": "H100", "count": 2, "hours": 4}  # 8 GPU-hours on 2 GPUs: escalates, one approver


def operator_token(gk: Gatekeeper, name: str = "ops-1") -> str:
    return mint(gk, subject=name, roles=("oncall",), operator=True)


def ops_auth(gk: Gatekeeper, name: str = "ops-1") -> dict[str, str]:
    return {"Authorization": f"Bearer {operator_token(gk, name)}"}


async def vote(
    http: aiohttp.ClientSession,
    gk: Gatekeeper,
    approval_id: str,
    verdict: str,
    operator: str = "ops-1",
    **body: Any,
) -> tuple[int, dict[str, Any]]:
    url = f"{gk.operator_url}/v1/approvals/{approval_id}/{verdict}"
    async with http.post(
        url, json={"comment": f"{verdict} by {operator}", **body}, headers=ops_auth(gk, operator)
    ) as r:
        return r.status, await r.json()


async def wait_for_pending(http: aiohttp.ClientSession, gk: Gatekeeper) -> str:
    async def first_pending() -> str | None:
        async with http.get(f"{gk.operator_url}/v1/approvals?state=pending", headers=ops_auth(gk)) as resp:
            approvals = (await resp.json())["approvals"]
        return str(approvals[0]["id"]) if approvals else None

    return await poll_until(first_pending, what="a pending approval")


MCP_ACCEPT = "application/json, text/event-stream"
MCP_VERSION = "2025-06-18"


async def mcp_session(http: aiohttp.ClientSession, url: str, token: str) -> dict[str, str]:
    """Open an MCP session at ``url`` (initialize, initialized) by hand; the headers for the
    next requests (token, protocol version and the session id, when the server gave one)."""
    headers = {"Authorization": f"Bearer {token}", "Accept": MCP_ACCEPT}
    params = {"protocolVersion": MCP_VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}
    async with http.post(url, json=init, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        await resp.read()
        session = resp.headers.get("Mcp-Session-Id")
    out = {**headers, "MCP-Protocol-Version": MCP_VERSION}
    if session:
        out["Mcp-Session-Id"] = session
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    async with http.post(url, json=note, headers=out) as resp:
        assert resp.status in (200, 202), await resp.text()
    return out


async def mcp_rpc(
    http: aiohttp.ClientSession, url: str, headers: Mapping[str, str], message: Mapping[str, Any]
) -> tuple[int, Any]:
    """POST one JSON-RPC message; (status, the JSON answer, or the data of its one SSE event)."""
    async with http.post(url, json=message, headers=headers) as resp:
        raw = await resp.read()
        if resp.headers.get("Content-Type", "").startswith("text/event-stream"):
            data = [
                line[5:]
                for line in raw.decode().splitlines()
                if line.startswith("data:") and line[5:].strip()
            ]
            return resp.status, json.loads(data[-1]) if data else None
        return resp.status, json.loads(raw) if raw.strip() else None

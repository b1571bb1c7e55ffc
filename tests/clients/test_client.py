"""The agent-side client against a real HTTP server that fakes the ``/v1/invoke`` contract.

The fake runs on its own event loop in a thread, so the same server serves both the async
client (on the test's loop) and the blocking client (on its private loop).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import FrozenInstanceError, dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gatekeeper_client import (
    AsyncGatekeeperClient,
    AuthenticationFailed,
    BadRequest,
    CallDenied,
    CallPending,
    GatekeeperClient,
    GatekeeperError,
    GatekeeperTimeout,
    GatekeeperUnreachable,
    InvokeResult,
    PayloadTooLarge,
    Unavailable,
    UnknownTool,
    UpstreamFailed,
    UpstreamTimeout,
)

TOKEN = "eyJhbGciOiJFZERTQSJ9.test-agent-token.sig"

DENIED = {
    "outcome": "denied",
    "decision_id": "dec-403",
    "code": "capability_denied",
    "reason": "shell.exec refused: reverse tunnels are not allowed",
    "rule": "deny-reverse-tunnel",
    "capability": "net.tunnel.reverse",
    "policy_version": "v7",
}
PENDING = {
    "outcome": "pending",
    "decision_id": "dec-202",
    "approval_id": "apr-1",
    "expires_at": "2030-01-01T00:00:00Z",
    "reason": "GPU spend needs approval",
}

# tool name -> (status, JSON body) for the plain cases
CANNED: dict[str, tuple[int, dict[str, Any]]] = {
    "deny": (403, DENIED),
    "inspector_error": (
        403,
        {
            "decision_id": "dec-ie",
            "outcome": "error",
            "code": "inspector_error",
            "message": "cannot parse cmd",
        },
    ),
    "pending": (202, PENDING),
    "bad_request": (400, {"code": "unknown_field", "message": "unknown field 'x'"}),
    "unauthenticated": (401, {"code": "invalid_token", "message": "token expired"}),
    "no_such_tool": (404, {"code": "unknown_tool", "message": "no tool 'no_such_tool'"}),
    "too_large": (413, {"code": "payload_too_large", "message": "body is larger than the limit"}),
    "upstream_down": (502, {"decision_id": "dec-502", "code": "upstream_unreachable", "message": "refused"}),
    "upstream_slow": (504, {"decision_id": "dec-504", "code": "upstream_timeout", "message": "no answer"}),
    "unavailable": (503, {"code": "shutting_down", "message": "shutting down"}),
    "internal": (500, {"code": "internal_error", "message": "internal error; the call was not forwarded"}),
    "teapot": (418, {"code": "teapot", "message": "short and stout"}),
}


@dataclass
class Seen:
    headers: dict[str, str]
    body: Any


@dataclass
class FakeGatekeeper:
    base_url: str
    seen: list[Seen] = field(default_factory=list)
    redirect_to: str = ""


FAKE = web.AppKey("fake", FakeGatekeeper)


async def _handle(request: web.Request) -> web.StreamResponse:
    fake = request.app[FAKE]
    raw = await request.read()
    body: Any = json.loads(raw) if raw else None
    fake.seen.append(Seen(dict(request.headers), body))
    if request.headers.get("Authorization") != f"Bearer {TOKEN}":
        return web.json_response({"code": "invalid_token", "message": "bad token"}, status=401)
    if request.content_type != "application/json":
        return web.json_response({"code": "unsupported_content_type", "message": "json only"}, status=400)
    tool = body["tool"]
    if tool in CANNED:
        status, answer = CANNED[tool]
        return web.json_response(answer, status=status)
    if tool == "echo":
        result = {"arguments": body["arguments"], "prefer": request.headers.get("Prefer")}
        return web.json_response({"outcome": "allowed", "decision_id": "dec-200", "result": result})
    if tool == "html":
        return web.Response(status=502, text="<html>Bad Gateway</html>", content_type="text/html")
    if tool == "redirect":
        raise web.HTTPTemporaryRedirect(fake.redirect_to + "/v1/invoke")
    if tool == "slow":
        await asyncio.sleep(1.0)
        return web.json_response({"outcome": "allowed", "decision_id": "dec-slow", "result": None})
    raise AssertionError(f"the fake has no tool {tool!r}")


@pytest.fixture
def serve() -> Iterator[Any]:
    """Start fake Gatekeepers on 127.0.0.1 in a background thread; stop them at teardown."""
    loop = asyncio.new_event_loop()
    runners: list[web.AppRunner] = []

    async def start() -> FakeGatekeeper:
        fake = FakeGatekeeper(base_url="")
        app = web.Application()
        app[FAKE] = fake
        app.router.add_post("/v1/invoke", _handle)
        runner = web.AppRunner(app, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        host, port = runner.addresses[0][:2]
        fake.base_url = f"http://{host}:{port}"
        return fake

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def new() -> FakeGatekeeper:
        return asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)

    try:
        yield new
    finally:

        async def cleanup() -> None:
            for runner in runners:
                await runner.cleanup()

        asyncio.run_coroutine_threadsafe(cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@pytest.fixture
def fake(serve: Any) -> FakeGatekeeper:
    result: FakeGatekeeper = serve()
    return result


@pytest.fixture
async def client(fake: FakeGatekeeper) -> Any:
    async with AsyncGatekeeperClient(fake.base_url, TOKEN, timeout=10) as c:
        yield c


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# --- allowed -------------------------------------------------------------------------------------


async def test_allowed_returns_result_and_sends_token_and_json(
    client: AsyncGatekeeperClient, fake: FakeGatekeeper
) -> None:
    got = await client.invoke("echo", {"cmd": "git status", "n": 1})
    assert got == InvokeResult(
        result={"arguments": {"cmd": "git status", "n": 1}, "prefer": None}, decision_id="dec-200"
    )
    seen = fake.seen[-1]
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["Content-Type"] == "application/json"
    assert "Prefer" not in seen.headers
    assert seen.body == {"tool": "echo", "arguments": {"cmd": "git status", "n": 1}}
    with pytest.raises(FrozenInstanceError):
        got.result = None  # type: ignore[misc]


async def test_arguments_default_to_empty_object(client: AsyncGatekeeperClient, fake: FakeGatekeeper) -> None:
    await client.invoke("echo")
    assert fake.seen[-1].body == {"tool": "echo", "arguments": {}}


async def test_wait_sends_prefer_header(client: AsyncGatekeeperClient, fake: FakeGatekeeper) -> None:
    got = await client.invoke("echo", {}, wait=5)
    assert fake.seen[-1].headers["Prefer"] == "wait=5"
    assert got.result["prefer"] == "wait=5"
    await client.invoke("echo", {}, wait=2.1)
    assert fake.seen[-1].headers["Prefer"] == "wait=3"  # rounded up: never wait less than asked


async def test_bad_wait_and_nan_fail_before_sending(
    client: AsyncGatekeeperClient, fake: FakeGatekeeper
) -> None:
    with pytest.raises(ValueError, match="wait"):
        await client.invoke("echo", {}, wait=-1)
    with pytest.raises(ValueError):
        await client.invoke("echo", {"x": float("nan")})
    assert fake.seen == []


# --- denied and pending --------------------------------------------------------------------------


async def test_denied_carries_every_field_and_reads_well(client: AsyncGatekeeperClient) -> None:
    with pytest.raises(CallDenied) as info:
        await client.invoke("deny", {"cmd": "ssh -R 2222:localhost:22 u@203.0.113.7"})
    exc = info.value
    assert (exc.status, exc.code, exc.decision_id) == (403, "capability_denied", "dec-403")
    assert exc.reason == DENIED["reason"]
    assert exc.rule == "deny-reverse-tunnel"
    assert exc.capability == "net.tunnel.reverse"
    assert exc.body == DENIED
    text = str(exc)
    assert text.startswith("Gatekeeper denied this tool call: shell.exec refused: reverse tunnels")
    for part in ("capability_denied", "deny-reverse-tunnel", "net.tunnel.reverse", "dec-403"):
        assert part in text


async def test_fail_closed_refusal_is_a_denial_with_the_message(client: AsyncGatekeeperClient) -> None:
    with pytest.raises(CallDenied) as info:
        await client.invoke("inspector_error")
    assert info.value.code == "inspector_error"
    assert info.value.reason == "cannot parse cmd"
    assert info.value.rule is None and info.value.capability is None


async def test_pending_carries_approval(client: AsyncGatekeeperClient, fake: FakeGatekeeper) -> None:
    with pytest.raises(CallPending) as info:
        await client.invoke("pending", {"gpu_type": "H100"}, wait=5)
    exc = info.value
    assert fake.seen[-1].headers["Prefer"] == "wait=5"
    assert (exc.status, exc.decision_id, exc.approval_id) == (202, "dec-202", "apr-1")
    assert exc.expires_at == "2030-01-01T00:00:00Z"
    assert exc.reason == "GPU spend needs approval"
    assert "apr-1" in str(exc) and "identical call" in str(exc)


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "cls", "status", "code"),
    [
        ("bad_request", BadRequest, 400, "unknown_field"),
        ("unauthenticated", AuthenticationFailed, 401, "invalid_token"),
        ("no_such_tool", UnknownTool, 404, "unknown_tool"),
        ("too_large", PayloadTooLarge, 413, "payload_too_large"),
        ("upstream_down", UpstreamFailed, 502, "upstream_unreachable"),
        ("upstream_slow", UpstreamTimeout, 504, "upstream_timeout"),
        ("unavailable", Unavailable, 503, "shutting_down"),
        ("internal", GatekeeperError, 500, "internal_error"),
        ("teapot", GatekeeperError, 418, "teapot"),
    ],
)
async def test_error_statuses_map_to_classes(
    client: AsyncGatekeeperClient, tool: str, cls: type[GatekeeperError], status: int, code: str
) -> None:
    with pytest.raises(GatekeeperError) as info:
        await client.invoke(tool)
    exc = info.value
    assert type(exc) is cls
    assert (exc.status, exc.code) == (status, code)
    assert exc.message == CANNED[tool][1]["message"]
    assert exc.body == CANNED[tool][1]
    assert exc.decision_id == CANNED[tool][1].get("decision_id")
    assert exc.message in str(exc) and code in str(exc)


def test_hierarchy() -> None:
    assert issubclass(PayloadTooLarge, BadRequest)
    assert issubclass(UpstreamTimeout, UpstreamFailed)
    assert issubclass(GatekeeperTimeout, GatekeeperUnreachable)
    for cls in (
        CallDenied,
        CallPending,
        AuthenticationFailed,
        BadRequest,
        UnknownTool,
        UpstreamFailed,
        Unavailable,
        GatekeeperUnreachable,
    ):
        assert issubclass(cls, GatekeeperError)
    assert issubclass(GatekeeperError, Exception)


async def test_real_bad_token_is_authentication_failed(fake: FakeGatekeeper) -> None:
    async with AsyncGatekeeperClient(fake.base_url, "wrong-token") as c:
        with pytest.raises(AuthenticationFailed) as info:
            await c.invoke("echo")
    assert info.value.code == "invalid_token"


async def test_non_json_body_is_base_error(client: AsyncGatekeeperClient) -> None:
    with pytest.raises(GatekeeperError) as info:
        await client.invoke("html")
    assert type(info.value) is GatekeeperError
    assert (info.value.status, info.value.code) == (502, "invalid_response")
    assert "Bad Gateway" in info.value.message


async def test_redirect_is_not_followed_so_the_token_stays_home(
    serve: Any, client: AsyncGatekeeperClient, fake: FakeGatekeeper
) -> None:
    elsewhere: FakeGatekeeper = serve()
    fake.redirect_to = elsewhere.base_url
    with pytest.raises(GatekeeperError) as info:
        await client.invoke("redirect")
    assert info.value.status == 307
    assert elsewhere.seen == []


# --- transport -----------------------------------------------------------------------------------


async def test_connection_refused_is_unreachable(closed_port: int) -> None:
    async with AsyncGatekeeperClient(f"http://127.0.0.1:{closed_port}", TOKEN) as c:
        with pytest.raises(GatekeeperUnreachable) as info:
            await c.invoke("echo")
    exc = info.value
    assert type(exc) is GatekeeperUnreachable
    assert exc.status is None and exc.code == "connection_failed"
    assert "did not run" in str(exc)
    assert TOKEN not in str(exc)


async def test_client_timeout(fake: FakeGatekeeper) -> None:
    async with AsyncGatekeeperClient(fake.base_url, TOKEN, timeout=0.2) as c:
        with pytest.raises(GatekeeperTimeout) as info:
            await c.invoke("slow")
    assert info.value.status is None and info.value.code == "client_timeout"


# --- lifecycle, secrecy, construction ------------------------------------------------------------


async def test_borrowed_session_is_left_open(fake: FakeGatekeeper) -> None:
    async with aiohttp.ClientSession() as session:
        c = AsyncGatekeeperClient(fake.base_url, TOKEN, session=session)
        assert (await c.invoke("echo")).decision_id == "dec-200"
        await c.aclose()
        await c.aclose()
        assert not session.closed
        with pytest.raises(RuntimeError, match="closed"):
            await c.invoke("echo")


async def test_unused_client_closes_cleanly(fake: FakeGatekeeper) -> None:
    c = AsyncGatekeeperClient(fake.base_url, TOKEN)
    await c.aclose()


async def test_base_url_with_path_prefix(fake: FakeGatekeeper) -> None:
    # The fake only serves /v1/invoke, so a trailing slash must not produce //v1/invoke.
    async with AsyncGatekeeperClient(fake.base_url + "/", TOKEN) as c:
        assert (await c.invoke("echo")).decision_id == "dec-200"


async def test_token_is_not_in_repr_or_logs(
    client: AsyncGatekeeperClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await client.invoke("echo", {"secret": "s3cr3t"})
    with pytest.raises(CallDenied):
        await client.invoke("deny")
    assert TOKEN not in repr(client)
    assert TOKEN not in caplog.text and "s3cr3t" not in caplog.text


@pytest.mark.parametrize(
    ("base_url", "token"),
    [
        ("ftp://127.0.0.1:8080", TOKEN),
        ("127.0.0.1:8080", TOKEN),
        ("http://user:pw@127.0.0.1:8080", TOKEN),
        ("http://127.0.0.1:8080?x=1", TOKEN),
        ("http://127.0.0.1:8080", ""),
        ("http://127.0.0.1:8080", "a b"),
    ],
)
def test_bad_construction(base_url: str, token: str) -> None:
    with pytest.raises(ValueError):
        AsyncGatekeeperClient(base_url, token)
    with pytest.raises(ValueError):
        GatekeeperClient(base_url, token)


# --- blocking client -----------------------------------------------------------------------------


def test_sync_client(fake: FakeGatekeeper) -> None:
    with GatekeeperClient(fake.base_url, TOKEN, timeout=10) as c:
        assert c.invoke("echo", {"a": 1}, wait=5) == InvokeResult(
            result={"arguments": {"a": 1}, "prefer": "wait=5"}, decision_id="dec-200"
        )
        assert fake.seen[-1].headers["Authorization"] == f"Bearer {TOKEN}"
        assert fake.seen[-1].headers["Prefer"] == "wait=5"
        with pytest.raises(CallDenied) as denied:
            c.invoke("deny")
        assert denied.value.rule == "deny-reverse-tunnel"
        with pytest.raises(CallPending) as pending:
            c.invoke("pending")
        assert pending.value.approval_id == "apr-1"
        with pytest.raises(UpstreamTimeout):
            c.invoke("upstream_slow")
        assert TOKEN not in repr(c)


def test_sync_client_is_shareable_between_threads(fake: FakeGatekeeper) -> None:
    with GatekeeperClient(fake.base_url, TOKEN) as c, ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: c.invoke("echo", {"i": i}), range(32)))
    assert [r.result["arguments"]["i"] for r in results] == list(range(32))


def test_sync_connection_refused(closed_port: int) -> None:
    with (
        GatekeeperClient(f"http://127.0.0.1:{closed_port}", TOKEN) as c,
        pytest.raises(GatekeeperUnreachable),
    ):
        c.invoke("echo")


def test_sync_close_is_idempotent_and_final(fake: FakeGatekeeper) -> None:
    c = GatekeeperClient(fake.base_url, TOKEN)
    c.close()  # never used: nothing to stop
    c = GatekeeperClient(fake.base_url, TOKEN)
    c.invoke("echo")
    c.close()
    c.close()
    with pytest.raises(RuntimeError, match="closed"):
        c.invoke("echo")


async def test_sync_client_refuses_to_block_a_running_loop(fake: FakeGatekeeper) -> None:
    with (
        GatekeeperClient(fake.base_url, TOKEN) as c,
        pytest.raises(RuntimeError, match="AsyncGatekeeperClient"),
    ):
        c.invoke("echo")
    assert fake.seen == []

"""The operator client against a FAKE of the operator API (real aiohttp server on 127.0.0.1).

The fake implements the documented contract in memory, using the real ``Approval``/``Grant``
values for its JSON, and runs on its own loop in a thread so both the async client (on the
test's loop) and the blocking client (on its private loop) can use it. End-to-end tests against
the real operator listener live elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import FrozenInstanceError, dataclass, field, replace
from typing import Any

import pytest
from aiohttp import web

from gatekeeper.approvals.models import Approval, Grant, State, Vote
from gatekeeper_client import (
    ApprovalView,
    AsyncOperatorClient,
    AuthenticationFailed,
    BadRequest,
    Conflict,
    Forbidden,
    GatekeeperError,
    GatekeeperUnreachable,
    GrantView,
    NotFound,
    OperatorClient,
    QueueEvent,
    UnknownTool,
)

ALICE = "op-token-alice"
BOB = "op-token-bob"
CAROL = "op-token-carol"
OPERATORS = {ALICE: "alice", BOB: "bob", CAROL: "carol"}

TUNNEL_CMD = "git status && ssh -N -R 2222:localhost:22 u@203.0.113.7"


def make_approval(id: str, **changes: Any) -> Approval:
    now = time.time()
    base = Approval(
        id=id,
        state=State.PENDING,
        principal="agent-7",
        roles=("agent",),
        tool="shell.exec",
        arguments={"cmd": TUNNEL_CMD, "cwd": "/workspace"},
        digest="sha256:" + "ab" * 32,
        capabilities=("proc.exec:git", "proc.exec:ssh", "net.tunnel.reverse", "net.connect:203.0.113.7:22"),
        rule="escalate-network-tunnel",
        reason="reverse tunnels need a human",
        created_at=now - 125,
        expires_at=now + 1800,
    )
    return replace(base, **changes)


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeOperatorAPI:
    base_url: str = ""
    approvals: dict[str, Approval] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    subscribers: list[asyncio.Queue[bytes | None]] = field(default_factory=list)
    raw_stream: list[bytes] | None = None  # when set, /v1/events sends exactly these chunks
    loop: asyncio.AbstractEventLoop | None = None

    def add(self, approval: Approval) -> Approval:
        self.approvals[approval.id] = approval
        return approval

    def publish(self, kind: str, approval: Approval | None = None, grant: Grant | None = None) -> None:
        data = {
            "kind": kind,
            "approval": approval.to_json() if approval else None,
            "grant": grant.to_json() if grant else None,
            "at": time.time(),
        }
        frame = f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()
        for queue in self.subscribers:
            queue.put_nowait(frame)

    def publish_threadsafe(self, kind: str, approval: Approval | None = None) -> None:
        assert self.loop is not None
        self.loop.call_soon_threadsafe(self.publish, kind, approval)

    def close_streams_threadsafe(self) -> None:
        assert self.loop is not None
        for queue in self.subscribers:
            self.loop.call_soon_threadsafe(queue.put_nowait, None)


FAKE = web.AppKey("fake", FakeOperatorAPI)
OPERATOR = web.RequestKey("operator", str)
BODY = web.RequestKey("body", object)


def _err(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status)


@web.middleware
async def _auth(request: web.Request, handler: Any) -> web.StreamResponse:
    fake = request.app[FAKE]
    raw = await request.read()
    body = json.loads(raw) if raw else None
    fake.seen.append(Seen(request.method, request.path, dict(request.query), dict(request.headers), body))
    auth = request.headers.get("Authorization", "")
    operator = OPERATORS.get(auth.removeprefix("Bearer "))
    if not auth.startswith("Bearer ") or operator is None:
        return _err(401, "invalid_token", "operator token required")
    request[OPERATOR] = operator
    request[BODY] = body
    result: web.StreamResponse = await handler(request)
    return result


async def _list(request: web.Request) -> web.Response:
    fake = request.app[FAKE]
    state = request.query.get("state")
    try:
        limit = int(request.query.get("limit", "100"))
        offset = int(request.query.get("offset", "0"))
    except ValueError:
        return _err(400, "invalid_query", "limit and offset must be integers")
    items = [a for a in fake.approvals.values() if state is None or a.state == state]
    items.sort(key=lambda a: a.created_at)
    page = items[offset : offset + limit]
    return web.json_response({"approvals": [a.to_json() for a in page], "total": len(items)})


def _lookup(request: web.Request) -> Approval | web.Response:
    approval = request.app[FAKE].approvals.get(request.match_info["id"])
    if approval is None:
        return _err(404, "not_found", "no such approval")
    return approval


async def _get(request: web.Request) -> web.Response:
    found = _lookup(request)
    return found if isinstance(found, web.Response) else web.json_response(found.to_json())


async def _vote(request: web.Request) -> web.Response:
    fake = request.app[FAKE]
    found = _lookup(request)
    if isinstance(found, web.Response):
        return found
    approval = found
    operator = request[OPERATOR]
    body: Any = request[BODY] or {}
    verdict = "approve" if request.path.endswith("/approve") else "deny"
    if approval.state != State.PENDING:
        return _err(409, "not_pending", f"approval is {approval.state}")
    if approval.expires_at <= time.time():
        return _err(409, "approval_expired", "approval expired")
    if operator == approval.principal:
        return _err(403, "self_approval", "you cannot decide a call you requested")
    if any(v.operator == operator for v in approval.votes):
        return _err(409, "already_voted", "you already voted on this approval")
    now = time.time()
    approval = replace(
        approval, votes=(*approval.votes, Vote(operator, verdict, body.get("comment", ""), now))
    )
    kind = "vote"
    grant = None
    if verdict == "deny":
        approval, kind = replace(approval, state=State.DENIED, decided_at=now), "denied"
    elif approval.approvals >= approval.required_approvals:
        approval, kind = replace(approval, state=State.APPROVED, decided_at=now), "approved"
        if body.get("grant_minutes"):
            grant = Grant(
                id=f"grt_{len(fake.grants) + 1}",
                principal=approval.principal,
                tool=approval.tool,
                digest=approval.digest,
                approval_id=approval.id,
                granted_by=operator,
                comment=body.get("comment", ""),
                created_at=now,
                expires_at=now + 60 * float(body["grant_minutes"]),
            )
            fake.grants[grant.id] = grant
    fake.approvals[approval.id] = approval
    fake.publish(kind, approval)
    if grant is not None:
        fake.publish("grant", approval, grant)
    return web.json_response(approval.to_json())


async def _grants(request: web.Request) -> web.Response:
    fake = request.app[FAKE]
    active = request.query.get("active", "true") == "true"
    now = time.time()
    items = [g for g in fake.grants.values() if not active or g.active(now)]
    return web.json_response({"grants": [g.to_json() for g in items]})


async def _revoke(request: web.Request) -> web.Response:
    fake = request.app[FAKE]
    grant = fake.grants.get(request.match_info["id"])
    if grant is None:
        return _err(404, "not_found", "no such grant")
    grant = replace(grant, revoked_at=time.time(), revoked_by=request[OPERATOR])
    fake.grants[grant.id] = grant
    fake.publish("revoked", None, grant)
    return web.json_response(grant.to_json())


async def _events(request: web.Request) -> web.StreamResponse:
    fake = request.app[FAKE]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    if fake.raw_stream is not None:
        for chunk in fake.raw_stream:
            await response.write(chunk)
            await asyncio.sleep(0.001)
        return response
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    await response.write(b": keepalive\n\n")
    fake.subscribers.append(queue)
    try:
        while (frame := await queue.get()) is not None:
            await response.write(frame)
    finally:
        fake.subscribers.remove(queue)
    return response


def build_app(fake: FakeOperatorAPI) -> web.Application:
    app = web.Application(middlewares=[_auth])
    app[FAKE] = fake
    app.router.add_get("/v1/approvals", _list)
    app.router.add_get("/v1/approvals/{id}", _get)
    app.router.add_post("/v1/approvals/{id}/approve", _vote)
    app.router.add_post("/v1/approvals/{id}/deny", _vote)
    app.router.add_get("/v1/grants", _grants)
    app.router.add_post("/v1/grants/{id}/revoke", _revoke)
    app.router.add_get("/v1/events", _events)
    return app


@pytest.fixture
def fake_api() -> Iterator[FakeOperatorAPI]:
    """A fake operator API on 127.0.0.1 in a background thread, seeded with two approvals."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    fake = FakeOperatorAPI(loop=loop)
    fake.add(make_approval("apr_tunnel"))
    fake.add(
        make_approval(
            "apr_gpu",
            tool="compute.provision",
            arguments={"gpu_type": "H100", "count": 8, "hours": 72},
            capabilities=("compute.gpu:H100",),
            rule="escalate-gpu",
            reason="GPU spend",
            required_approvals=2,
            created_at=time.time() - 30,
        )
    )
    runner = web.AppRunner(build_app(fake), handler_cancellation=True, shutdown_timeout=1)

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        fake.base_url = f"http://{host}:{port}"

    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    try:
        yield fake
    finally:
        fake.close_streams_threadsafe()
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@pytest.fixture
async def ops(fake_api: FakeOperatorAPI) -> AsyncIterator[AsyncOperatorClient]:
    async with AsyncOperatorClient(fake_api.base_url, ALICE, timeout=10) as client:
        yield client


# --- reading ----------------------------------------------------------------------------------


async def test_list_pending_approvals(ops: AsyncOperatorClient, fake_api: FakeOperatorAPI) -> None:
    approvals = await ops.list_approvals()
    assert [a.id for a in approvals] == ["apr_tunnel", "apr_gpu"]
    tunnel = approvals[0]
    assert isinstance(tunnel, ApprovalView)
    assert tunnel.state == "pending" and tunnel.pending
    assert tunnel.arguments == {"cmd": TUNNEL_CMD, "cwd": "/workspace"}
    assert tunnel.capabilities[2] == "net.tunnel.reverse"
    assert tunnel.roles == ("agent",)
    assert tunnel.rule == "escalate-network-tunnel"
    assert tunnel.required_approvals == 1 and tunnel.approvals == 0 and tunnel.votes == ()
    assert tunnel.raw == fake_api.approvals["apr_tunnel"].to_json()
    seen = fake_api.seen[-1]
    assert (seen.method, seen.path) == ("GET", "/v1/approvals")
    assert seen.query == {"state": "pending", "limit": "100", "offset": "0"}
    assert seen.headers["Authorization"] == f"Bearer {ALICE}"


async def test_paging_and_state_filter(ops: AsyncOperatorClient, fake_api: FakeOperatorAPI) -> None:
    page, total = await ops.list_approvals_page(limit=1, offset=1)
    assert [a.id for a in page] == ["apr_gpu"] and total == 2
    assert await ops.list_approvals(state="denied") == []
    everything = await ops.list_approvals(state=None)
    assert len(everything) == 2
    assert "state" not in fake_api.seen[-1].query
    with pytest.raises(ValueError):
        await ops.list_approvals(limit=0)


async def test_get_and_unknown_fields_are_kept(ops: AsyncOperatorClient) -> None:
    approval = await ops.get("apr_gpu")
    assert approval.arguments == {"gpu_type": "H100", "count": 8, "hours": 72}
    assert approval.required_approvals == 2
    with pytest.raises(FrozenInstanceError):
        approval.state = "approved"  # type: ignore[misc]
    view = ApprovalView.from_json({**approval.raw, "future_field": {"x": 1}})
    assert view.raw["future_field"] == {"x": 1}
    assert view == approval  # raw does not take part in equality


async def test_not_found_and_ids_cannot_escape_their_path_segment(
    ops: AsyncOperatorClient, fake_api: FakeOperatorAPI
) -> None:
    with pytest.raises(NotFound) as info:
        await ops.get("apr_nope")
    assert info.value.status == 404 and info.value.code == "not_found"
    assert not isinstance(info.value, UnknownTool)
    with pytest.raises(NotFound):
        await ops.approve("../../v1/grants/grt_1/revoke")
    assert fake_api.seen[-1].path == "/v1/approvals/../../v1/grants/grt_1/revoke/approve"
    for bad in ("", ".", ".."):
        with pytest.raises(ValueError):
            await ops.get(bad)


async def test_bad_token_is_authentication_failed(fake_api: FakeOperatorAPI) -> None:
    async with AsyncOperatorClient(fake_api.base_url, "agent-token") as client:
        with pytest.raises(AuthenticationFailed) as info:
            await client.list_approvals()
    assert info.value.code == "invalid_token" and info.value.status == 401


# --- deciding ---------------------------------------------------------------------------------


async def test_approve_with_comment(ops: AsyncOperatorClient, fake_api: FakeOperatorAPI) -> None:
    approval = await ops.approve("apr_tunnel", comment="incident #12, temporary")
    assert approval.state == "approved" and approval.decided_at is not None
    assert [(v.operator, v.verdict, v.comment) for v in approval.votes] == [
        ("alice", "approve", "incident #12, temporary")
    ]
    seen = fake_api.seen[-1]
    assert (seen.method, seen.path) == ("POST", "/v1/approvals/apr_tunnel/approve")
    assert seen.body == {"comment": "incident #12, temporary", "grant_minutes": None}
    assert seen.headers["Content-Type"] == "application/json"


async def test_quorum_of_two(fake_api: FakeOperatorAPI) -> None:
    async with (
        AsyncOperatorClient(fake_api.base_url, ALICE) as alice,
        AsyncOperatorClient(fake_api.base_url, BOB) as bob,
    ):
        first = await alice.approve("apr_gpu")
        assert first.state == "pending" and first.approvals == 1
        with pytest.raises(Conflict) as info:
            await alice.approve("apr_gpu")
        assert info.value.code == "already_voted" and info.value.status == 409
        second = await bob.approve("apr_gpu", comment="ok")
        assert second.state == "approved" and second.approvals == 2
        with pytest.raises(Conflict) as info:
            await bob.deny("apr_gpu")
        assert info.value.code == "not_pending"


async def test_deny_and_self_approval(ops: AsyncOperatorClient, fake_api: FakeOperatorAPI) -> None:
    denied = await ops.deny("apr_tunnel", comment="no tunnels, ever")
    assert denied.state == "denied"
    assert fake_api.seen[-1].body == {"comment": "no tunnels, ever"}
    fake_api.add(make_approval("apr_own", principal="alice"))
    with pytest.raises(Forbidden) as info:
        await ops.approve("apr_own")
    assert info.value.code == "self_approval" and info.value.status == 403
    assert isinstance(info.value, GatekeeperError)


async def test_expired_approval_conflict(ops: AsyncOperatorClient, fake_api: FakeOperatorAPI) -> None:
    fake_api.add(make_approval("apr_old", expires_at=time.time() - 1))
    with pytest.raises(Conflict) as info:
        await ops.approve("apr_old")
    assert info.value.code == "approval_expired"


async def test_grants_list_and_revoke(ops: AsyncOperatorClient, fake_api: FakeOperatorAPI) -> None:
    await ops.approve("apr_tunnel", comment="for the next hour", grant_minutes=60)
    assert fake_api.seen[-1].body == {"comment": "for the next hour", "grant_minutes": 60}
    grants = await ops.grants()
    assert len(grants) == 1 and isinstance(grants[0], GrantView)
    grant = grants[0]
    assert grant.approval_id == "apr_tunnel" and grant.granted_by == "alice"
    assert 3590 < grant.expires_at - grant.created_at <= 3600
    revoked = await ops.revoke_grant(grant.id)
    assert revoked.revoked_at is not None and revoked.revoked_by == "alice"
    assert await ops.grants() == []
    assert len(await ops.grants(active=False)) == 1
    assert fake_api.seen[-1].query == {"active": "false"}
    with pytest.raises(ValueError):
        await ops.approve("apr_gpu", grant_minutes=0)


# --- events -----------------------------------------------------------------------------------


async def _wait_for_subscriber(fake: FakeOperatorAPI) -> None:
    for _ in range(1000):
        if fake.subscribers:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the event stream never connected")


async def test_events_stream(fake_api: FakeOperatorAPI) -> None:
    async with (
        AsyncOperatorClient(fake_api.base_url, ALICE) as alice,
        AsyncOperatorClient(fake_api.base_url, BOB) as bob,
    ):
        stream = alice.events()
        first = asyncio.create_task(anext(stream))
        await _wait_for_subscriber(fake_api)
        await bob.approve("apr_gpu", comment="one")
        vote = await first
        assert isinstance(vote, QueueEvent)
        assert vote.kind == "vote" and vote.grant is None
        assert vote.approval is not None and vote.approval.id == "apr_gpu" and vote.approval.approvals == 1
        assert abs(vote.at - time.time()) < 5
        await alice.approve("apr_gpu", comment="two", grant_minutes=5)
        approved = await anext(stream)
        assert approved.kind == "approved" and approved.approval is not None
        assert approved.approval.state == "approved"
        grant = await anext(stream)
        assert grant.kind == "grant" and grant.grant is not None and grant.grant.granted_by == "alice"
        await stream.aclose()
    headers = next(s for s in fake_api.seen if s.path == "/v1/events").headers
    assert headers["Accept"] == "text/event-stream"


async def test_events_parser_handles_crlf_split_chunks_multiline_and_comments(
    ops: AsyncOperatorClient, fake_api: FakeOperatorAPI
) -> None:
    big = fake_api.approvals["apr_tunnel"]
    big = replace(big, arguments={"content": "x" * 300_000})  # larger than aiohttp's line limit
    event_json = json.dumps({"kind": "created", "approval": big.to_json(), "grant": None, "at": 1.5})
    multi = '{"kind": "expired",\n"approval": null, "grant": null, "at": 2.0}'
    stream = (
        b": keepalive\r\n\r\n"
        + b"id: 7\r\nevent: created\r\ndata: "
        + event_json.encode()
        + b"\r\n\r\n"
        + b"event: expired\n"
        + b"".join(b"data: " + line.encode() + b"\n" for line in multi.split("\n"))
        + b"\n"
        + b"retry: 1000\n: another comment\n\n"  # no data: not an event
        + b'event: revoked\rdata: {"kind": "revoked", "approval": null, "grant": null, "at": 3}\r\r'
    )
    # Split at awkward places, including between a CR and its LF.
    chunks = [stream[i : i + 7] for i in range(0, 2002, 7)] + [stream[2002:]]
    assert b"".join(chunks) == stream
    fake_api.raw_stream = chunks
    got = [event async for event in ops.events()]
    assert [e.kind for e in got] == ["created", "expired", "revoked"]
    assert got[0].event_id == "7" and got[0].at == 1.5
    assert got[0].approval is not None and got[0].approval.arguments == {"content": "x" * 300_000}
    assert got[1].approval is None and got[1].at == 2.0


async def test_events_with_bad_token(fake_api: FakeOperatorAPI) -> None:
    async with AsyncOperatorClient(fake_api.base_url, "nope") as client:
        with pytest.raises(AuthenticationFailed):
            async for _ in client.events():
                pass


async def test_events_non_json_data_is_invalid_response(
    ops: AsyncOperatorClient, fake_api: FakeOperatorAPI
) -> None:
    fake_api.raw_stream = [b"event: created\ndata: {not json\n\n"]
    with pytest.raises(GatekeeperError) as info:
        async for _ in ops.events():
            pass
    assert info.value.code == "invalid_response"


# --- failures -----------------------------------------------------------------------------------


async def test_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with AsyncOperatorClient(f"http://127.0.0.1:{port}", ALICE, timeout=2) as client:
        with pytest.raises(GatekeeperUnreachable) as info:
            await client.list_approvals()
    assert info.value.code == "connection_failed" and info.value.status is None


def test_constructor_validation() -> None:
    for url in ("ftp://x/", "http://user:pw@127.0.0.1:1/", "http://127.0.0.1:1/?a=b", "relative"):
        with pytest.raises(ValueError):
            AsyncOperatorClient(url, ALICE)
    for token in ("", "two words"):
        with pytest.raises(ValueError):
            AsyncOperatorClient("http://127.0.0.1:1", token)
    client = AsyncOperatorClient("http://127.0.0.1:1/prefix/", "secret-token")
    assert "secret-token" not in repr(client)


async def test_base_url_path_prefix_is_kept(fake_api: FakeOperatorAPI) -> None:
    async with AsyncOperatorClient(fake_api.base_url + "/gk/", ALICE) as client:
        with pytest.raises(GatekeeperError):
            await client.get("apr_tunnel")
    assert fake_api.seen[-1].path == "/gk/v1/approvals/apr_tunnel"


def test_invalid_response_shapes() -> None:
    with pytest.raises(GatekeeperError) as info:
        ApprovalView.from_json({"state": "pending"})
    assert info.value.code == "invalid_response"
    with pytest.raises(GatekeeperError):
        ApprovalView.from_json({"id": "a", "state": "pending", "created_at": "yesterday"})
    with pytest.raises(GatekeeperError):
        QueueEvent.from_json({"approval": None})


# --- blocking client ----------------------------------------------------------------------------


def test_sync_client_same_results_and_errors(fake_api: FakeOperatorAPI) -> None:
    with OperatorClient(fake_api.base_url, ALICE) as client:
        assert [a.id for a in client.list_approvals()] == ["apr_tunnel", "apr_gpu"]
        assert client.get("apr_gpu").required_approvals == 2
        assert client.approve("apr_gpu", comment="1 of 2").state == "pending"
        with pytest.raises(Conflict):
            client.approve("apr_gpu")
        assert client.deny("apr_tunnel").state == "denied"
        with pytest.raises(NotFound):
            client.get("apr_missing")
        assert client.grants() == []
    with pytest.raises(RuntimeError):
        client.get("apr_gpu")


def test_sync_events_and_early_close(fake_api: FakeOperatorAPI) -> None:
    with OperatorClient(fake_api.base_url, ALICE) as client:
        events = client.events()
        got: list[QueueEvent] = []

        def publish_when_subscribed() -> None:
            for _ in range(1000):
                if fake_api.subscribers:
                    fake_api.publish_threadsafe("created", fake_api.approvals["apr_tunnel"])
                    fake_api.publish_threadsafe("expired", fake_api.approvals["apr_gpu"])
                    return
                time.sleep(0.005)

        publisher = threading.Thread(target=publish_when_subscribed)
        publisher.start()
        for event in events:
            got.append(event)
            if len(got) == 2:
                break
        events.close()
        publisher.join()
    assert [(e.kind, e.approval.id if e.approval else None) for e in got] == [
        ("created", "apr_tunnel"),
        ("expired", "apr_gpu"),
    ]


async def test_sync_client_refuses_inside_a_running_loop(fake_api: FakeOperatorAPI) -> None:
    client = OperatorClient(fake_api.base_url, ALICE)
    with pytest.raises(RuntimeError, match="running event loop"):
        client.list_approvals()
    client.close()


def test_error_hierarchy() -> None:
    assert issubclass(UnknownTool, NotFound)
    for cls in (Forbidden, NotFound, Conflict, BadRequest):
        assert issubclass(cls, GatekeeperError)

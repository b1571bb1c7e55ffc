"""The approval webhook against a real receiver on 127.0.0.1 that checks signatures as documented."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gatekeeper.approvals.webhook import WebhookNotifier, sign, verify_signature

from ..helpers import poll_until

SECRET = b"test-webhook-secret-0123456789abcdef"


@dataclass
class Attempt:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Verifies like a real receiver: signature, timestamp window, dedupe by delivery id."""

    url: str = ""
    script: list[int] = field(default_factory=list)  # statuses to answer before answering 200
    attempts: list[Attempt] = field(default_factory=list)
    processed: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    seen_ids: set[str] = field(default_factory=set)
    clock_offset: float = 0.0
    hang: asyncio.Event | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.attempts.append(Attempt(dict(request.headers), body))
        if self.hang is not None:
            await self.hang.wait()
        if self.script:
            return web.json_response({"error": "scripted"}, status=self.script.pop(0))
        ok = verify_signature(
            SECRET,
            body,
            request.headers.get("X-Gatekeeper-Timestamp", ""),
            request.headers.get("X-Gatekeeper-Signature", ""),
            now=time.time() + self.clock_offset,
        )
        if not ok:
            self.rejected.append(request.headers.get("X-Gatekeeper-Delivery", "?"))
            return web.json_response({"error": "bad signature"}, status=401)
        delivery = json.loads(body)
        if delivery["id"] in self.seen_ids:
            return web.json_response({"duplicate": True})
        self.seen_ids.add(delivery["id"])
        self.processed.append(delivery)
        return web.json_response({"ok": True})


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hooks/{secret_path}", rec.handle)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    rec.url = f"http://{host}:{port}/hooks/T0KEN-in-path"
    try:
        yield rec
    finally:
        if rec.hang is not None:
            rec.hang.set()
        await runner.cleanup()


@pytest.fixture
async def notifiers() -> AsyncIterator[Callable[..., WebhookNotifier]]:
    made: list[WebhookNotifier] = []

    def make(url: str, **kwargs: Any) -> WebhookNotifier:
        kwargs.setdefault("base_delay", 0.01)
        notifier = WebhookNotifier(url, SECRET, **kwargs)
        made.append(notifier)
        return notifier

    yield make
    for notifier in made:
        await notifier.stop(drain_timeout=0)


APPROVAL = {"id": "apr_x", "state": "pending", "tool": "shell.exec", "arguments": {"cmd": "ssh -R …"}}


async def test_delivery_is_signed_and_verified_by_the_receiver(
    receiver: Receiver, notifiers: Callable[..., WebhookNotifier]
) -> None:
    notifier = notifiers(receiver.url)
    await notifier.start()
    before = time.time()
    notifier.notify("approval.created", APPROVAL)
    await poll_until(lambda: len(receiver.processed) == 1)

    delivery = receiver.processed[0]
    assert delivery["event"] == "approval.created"
    assert delivery["data"] == APPROVAL
    assert before <= delivery["created_at"] <= time.time()
    headers = receiver.attempts[0].headers
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Gatekeeper-Event"] == "approval.created"
    assert headers["X-Gatekeeper-Delivery"] == delivery["id"]
    ts = headers["X-Gatekeeper-Timestamp"]
    assert ts.isdigit() and abs(int(ts) - time.time()) < 5
    # The scheme, spelled out independently of the module under test.
    expected = hmac.new(SECRET, f"{ts}.".encode() + receiver.attempts[0].body, hashlib.sha256).hexdigest()
    assert headers["X-Gatekeeper-Signature"] == f"v1={expected}"
    assert receiver.rejected == []
    assert notifier.delivered == 1


async def test_receiver_rejects_tampered_forged_and_replayed_deliveries(
    receiver: Receiver, notifiers: Callable[..., WebhookNotifier]
) -> None:
    notifier = notifiers(receiver.url)
    await notifier.start()
    notifier.notify("approval.approved", APPROVAL)
    await poll_until(lambda: len(receiver.processed) == 1)
    original = receiver.attempts[0]
    headers = {k: v for k, v in original.headers.items() if k.startswith("X-Gatekeeper-")}
    headers["Content-Type"] = "application/json"

    async with aiohttp.ClientSession() as http:

        async def post(body: bytes, **changes: str) -> int:
            async with http.post(receiver.url, data=body, headers={**headers, **changes}) as r:
                return r.status

        # Tampered body: the attacker flips the approval's state, keeping the signature.
        tampered = original.body.replace(b'"pending"', b'"approved"')
        assert tampered != original.body
        assert await post(tampered) == 401
        # Forged signature: signed with a secret the attacker guessed.
        forged = sign(b"not-the-real-secret-at-all!!", original.body, headers["X-Gatekeeper-Timestamp"])
        assert await post(original.body, **{"X-Gatekeeper-Signature": forged}) == 401
        # A fresh timestamp cannot be swapped in: the signature covers it.
        fresh = str(int(time.time()) + 1)
        assert await post(original.body, **{"X-Gatekeeper-Timestamp": fresh}) == 401
        # Replay inside the window: accepted as a duplicate, not processed again.
        assert await post(original.body) == 200
        assert len(receiver.processed) == 1
        # Replay of the captured delivery ten minutes later: stale timestamp.
        receiver.clock_offset = 600
        assert await post(original.body) == 401
    assert len(receiver.processed) == 1
    assert len(receiver.rejected) == 4


def test_verify_signature_rules() -> None:
    body = b'{"id":"dlv_1"}'
    now = 1_700_000_000.0
    ts = str(int(now))
    good = sign(SECRET, body, ts)
    assert verify_signature(SECRET, body, ts, good, now=now)
    assert verify_signature(SECRET, body, ts, good, now=now + 300)
    assert not verify_signature(SECRET, body, ts, good, now=now + 301)  # stale
    assert not verify_signature(SECRET, body, ts, good, now=now - 301)  # from the future
    assert verify_signature(SECRET, body, ts, good, now=now + 3000, tolerance_seconds=3600)
    assert not verify_signature(SECRET, body + b" ", ts, good, now=now)
    assert not verify_signature(SECRET[:-1], body, ts, good, now=now)
    assert not verify_signature(b"", body, ts, good, now=now)
    # Several signatures (secret rotation): any valid one is enough.
    old = sign(b"the-previous-secret-0123456789", body, ts)
    assert verify_signature(SECRET, body, ts, f"{old}, {good}", now=now)
    # Malformed input is False, never an exception.
    for bad_ts in ("", "abc", "-1", "1.5", "١٧٠٠٠٠٠٠٠٠", "9" * 40):
        assert not verify_signature(SECRET, body, bad_ts, good, now=now)
    for bad_sig in ("", "v1=", good.upper(), good[3:], "v0=" + good[3:], "v1=zz", "v1=é"):
        assert not verify_signature(SECRET, body, ts, bad_sig, now=now)


async def test_retries_5xx_then_delivers_once_with_one_delivery_id(
    receiver: Receiver, notifiers: Callable[..., WebhookNotifier]
) -> None:
    receiver.script = [500, 500]
    notifier = notifiers(receiver.url)
    await notifier.start()
    notifier.notify("approval.denied", APPROVAL)
    await poll_until(lambda: len(receiver.processed) == 1)
    await asyncio.sleep(0.05)
    assert len(receiver.attempts) == 3
    ids = {a.headers["X-Gatekeeper-Delivery"] for a in receiver.attempts}
    assert ids == {receiver.processed[0]["id"]}
    assert len({a.body for a in receiver.attempts}) == 1  # the same body each time
    assert notifier.delivered == 1 and notifier.failed == 0


async def test_429_is_retried(receiver: Receiver, notifiers: Callable[..., WebhookNotifier]) -> None:
    receiver.script = [429]
    notifier = notifiers(receiver.url)
    await notifier.start()
    notifier.notify("approval.created", APPROVAL)
    await poll_until(lambda: len(receiver.processed) == 1)
    assert len(receiver.attempts) == 2


async def test_4xx_is_not_retried(
    receiver: Receiver, notifiers: Callable[..., WebhookNotifier], log_output: list[dict[str, Any]]
) -> None:
    receiver.script = [400, 400, 400]
    notifier = notifiers(receiver.url)
    await notifier.start()
    notifier.notify("approval.created", APPROVAL)
    await poll_until(lambda: notifier.failed == 1)
    await asyncio.sleep(0.1)
    assert len(receiver.attempts) == 1
    assert receiver.processed == []
    rejected = [e for e in log_output if e["event"] == "webhook_rejected"]
    assert rejected and rejected[0]["status"] == 400
    # The URL's path may carry a secret (chat webhooks do): logs show the origin only.
    assert all("T0KEN" not in json.dumps(e, default=str) for e in log_output)


async def test_gives_up_after_max_attempts(
    receiver: Receiver, notifiers: Callable[..., WebhookNotifier], log_output: list[dict[str, Any]]
) -> None:
    receiver.script = [503] * 10
    notifier = notifiers(receiver.url, max_attempts=3)
    await notifier.start()
    notifier.notify("approval.expired", APPROVAL)
    await poll_until(lambda: notifier.failed == 1)
    assert len(receiver.attempts) == 3
    gave_up = [e for e in log_output if e["event"] == "webhook_gave_up"]
    assert gave_up and gave_up[0]["attempts"] == 3


async def test_connection_refused_is_retried_then_given_up(
    notifiers: Callable[..., WebhookNotifier],
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    notifier = notifiers(f"http://127.0.0.1:{port}/hook", max_attempts=3)
    await notifier.start()
    notifier.notify("approval.created", APPROVAL)
    await poll_until(lambda: notifier.failed == 1)
    assert notifier.delivered == 0


async def test_notify_returns_immediately_while_the_receiver_hangs(
    receiver: Receiver, notifiers: Callable[..., WebhookNotifier]
) -> None:
    receiver.hang = asyncio.Event()
    notifier = notifiers(receiver.url, timeout=30.0)
    await notifier.start()
    notifier.notify("approval.created", APPROVAL)
    await poll_until(lambda: len(receiver.attempts) == 1)  # the sender is now stuck on the receiver
    for _ in range(50):
        started = time.perf_counter()
        notifier.notify("approval.created", {"big": "x" * 10_000})
        assert time.perf_counter() - started < 0.005
    assert notifier.queued == 50
    started = time.perf_counter()
    await notifier.stop(drain_timeout=0.2)  # bounded even though nothing can be delivered
    assert time.perf_counter() - started < 1.0
    assert notifier.dropped == 51  # the one in flight and the 50 queued


async def test_stop_drains_the_queue(receiver: Receiver, notifiers: Callable[..., WebhookNotifier]) -> None:
    notifier = notifiers(receiver.url)
    for i in range(20):  # queued before start: delivered once started
        notifier.notify("approval.created", {"n": i})
    await notifier.start()
    await notifier.stop(drain_timeout=5.0)
    assert sorted(d["data"]["n"] for d in receiver.processed) == list(range(20))
    assert notifier.delivered == 20 and notifier.dropped == 0


async def test_full_queue_drops_oldest_with_a_warning(
    receiver: Receiver, notifiers: Callable[..., WebhookNotifier], log_output: list[dict[str, Any]]
) -> None:
    notifier = notifiers(receiver.url, max_queue=3)
    for i in range(5):
        notifier.notify("approval.created", {"n": i})
    assert notifier.queued == 3 and notifier.dropped == 2
    assert [e["event"] for e in log_output].count("webhook_queue_full_dropped_oldest") == 2
    await notifier.start()
    await notifier.stop(drain_timeout=5.0)
    assert [d["data"]["n"] for d in receiver.processed] == [2, 3, 4]


async def test_notify_never_raises(
    receiver: Receiver, notifiers: Callable[..., WebhookNotifier], log_output: list[dict[str, Any]]
) -> None:
    notifier = notifiers(receiver.url)
    notifier.notify("approval.created", {"not json": object()})
    notifier.notify("approval.created", {"nan": float("nan")})
    assert notifier.queued == 0
    assert [e["event"] for e in log_output].count("webhook_enqueue_failed") == 2
    await notifier.stop()
    notifier.notify("approval.created", APPROVAL)  # after stop: logged and dropped
    assert notifier.queued == 0


async def test_notify_from_another_thread(
    receiver: Receiver, notifiers: Callable[..., WebhookNotifier]
) -> None:
    notifier = notifiers(receiver.url)
    await notifier.start()
    await asyncio.to_thread(notifier.notify, "approval.created", APPROVAL)
    await poll_until(lambda: len(receiver.processed) == 1)


def test_constructor_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="url"):
        WebhookNotifier("ftp://example.test/", SECRET)
    with pytest.raises(ValueError, match="secret"):
        WebhookNotifier("http://127.0.0.1:9/", b"short")
    with pytest.raises(ValueError):
        WebhookNotifier("http://127.0.0.1:9/", SECRET, max_attempts=0)

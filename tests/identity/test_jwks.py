"""Remote keys: a real JWKS server on 127.0.0.1 that counts how often it is asked."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import secrets
import socket
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from structlog.testing import capture_logs

from gatekeeper.config import load_config
from gatekeeper.errors import AuthenticationError, ConfigError
from gatekeeper.identity import (
    IdentitySettings,
    JwksKeySource,
    KeySet,
    TokenVerifier,
    jwks_document,
    public_jwk,
)
from gatekeeper.identity.keys import PublicKey

from ..helpers import Clock, poll_until
from . import ec_key, ed_key, kid_of, mint, rsa_key, signed

RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiF"
    "V4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9"
    "c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1"
    "jF44-csFCur-kEgU8awapJzKnqDKgw"
)


@dataclass
class JwksServer:
    url: str = ""
    fetches: int = 0
    keys: list[PublicKey] = field(default_factory=list)
    extra: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0
    body: bytes | None = None
    #: When set, each fetch is held until the test sets this event (a stalled provider).
    hold: asyncio.Event | None = None
    #: Set when a fetch reaches the server; cleared by the test.
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    responses: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.fetches += 1
        self.entered.set()
        if self.hold is not None:
            await self.hold.wait()
        try:
            return await self.respond()
        finally:
            self.responses += 1

    async def respond(self) -> web.StreamResponse:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.body is not None:
            return web.Response(body=self.body, content_type="application/json")
        document = jwks_document(self.keys)
        document["keys"].extend(self.extra)
        return web.json_response(document, status=self.status)

    async def redirect(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/jwks.json")


@pytest.fixture
async def server() -> AsyncIterator[JwksServer]:
    state = JwksServer(keys=[rsa_key().public_key()])
    app = web.Application()
    app.router.add_get("/jwks.json", state.handle)
    app.router.add_get("/moved", state.redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}/jwks.json"
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_verifier(url: str, clock: Clock, **source: Any) -> TokenVerifier:
    jwks = JwksKeySource(url, cache_seconds=300, min_refresh_interval=30, clock=clock, **source)
    return TokenVerifier(IdentitySettings(jwks_url=url), keys=KeySet(), jwks=jwks)


@pytest.fixture
async def verifier(server: JwksServer, clock: Clock) -> AsyncIterator[TokenVerifier]:
    v = make_verifier(server.url, clock)
    try:
        yield v
    finally:
        await v.aclose()


async def refused(verifier: TokenVerifier, token: str, code: str) -> None:
    with pytest.raises(AuthenticationError) as info:
        await verifier.verify(token)
    assert info.value.code == code, info.value.message


def random_kid_token() -> str:
    return signed(rsa_key(), header={"kid": secrets.token_urlsafe(12)})


async def test_keys_fetched_once_and_cached(server: JwksServer, verifier: TokenVerifier) -> None:
    assert (await verifier.verify(mint(rsa_key()))).subject == "agent-7"
    assert (await verifier.verify(mint(rsa_key(), jti="other"))).subject == "agent-7"
    assert server.fetches == 1


async def test_unknown_kid_triggers_one_rate_limited_refresh(
    server: JwksServer, verifier: TokenVerifier, clock: Clock
) -> None:
    await verifier.verify(mint(rsa_key()))
    server.keys.append(ec_key().public_key())  # the provider rotates in a new key
    clock.now += 31
    assert (await verifier.verify(mint(ec_key()))).subject == "agent-7"
    assert server.fetches == 2
    # A further unknown kid inside the interval is refused without asking the provider again.
    await refused(verifier, random_kid_token(), "unknown_key")
    assert server.fetches == 2
    clock.now += 31
    await refused(verifier, random_kid_token(), "unknown_key")
    assert server.fetches == 3


async def test_new_key_inside_refresh_interval_waits_for_the_interval(
    server: JwksServer, verifier: TokenVerifier, clock: Clock
) -> None:
    await verifier.verify(mint(rsa_key()))
    server.keys.append(ed_key().public_key())
    await refused(verifier, mint(ed_key()), "unknown_key")
    clock.now += 30
    assert (await verifier.verify(mint(ed_key()))).subject == "agent-7"
    assert server.fetches == 2


async def test_burst_of_random_kids_causes_at_most_one_fetch(
    server: JwksServer, verifier: TokenVerifier
) -> None:
    server.delay = 0.05
    results = await asyncio.gather(
        *(verifier.verify(random_kid_token()) for _ in range(50)), return_exceptions=True
    )
    assert all(isinstance(r, AuthenticationError) and r.code == "unknown_key" for r in results)
    assert 1 <= server.fetches <= 2
    for _ in range(50):
        await refused(verifier, random_kid_token(), "unknown_key")
    assert server.fetches <= 2


async def test_burst_when_warm_causes_one_fetch(
    server: JwksServer, verifier: TokenVerifier, clock: Clock
) -> None:
    await verifier.verify(mint(rsa_key()))
    clock.now += 60
    server.delay = 0.05
    results = await asyncio.gather(
        *(verifier.verify(random_kid_token()) for _ in range(50)), return_exceptions=True
    )
    assert all(isinstance(r, AuthenticationError) and r.code == "unknown_key" for r in results)
    assert server.fetches == 2


async def test_concurrent_cold_start_shares_one_fetch(server: JwksServer, verifier: TokenVerifier) -> None:
    server.delay = 0.1
    principals = await asyncio.gather(*(verifier.verify(mint(rsa_key(), jti=str(i))) for i in range(20)))
    assert {p.subject for p in principals} == {"agent-7"}
    assert server.fetches == 1


async def test_cancelled_waiter_does_not_cancel_shared_fetch(
    server: JwksServer, verifier: TokenVerifier
) -> None:
    server.delay = 0.1
    first = asyncio.ensure_future(verifier.verify(mint(rsa_key(), jti="a")))
    second = asyncio.ensure_future(verifier.verify(mint(rsa_key(), jti="b")))
    await asyncio.sleep(0.02)
    first.cancel()
    assert (await second).subject == "agent-7"
    with pytest.raises(asyncio.CancelledError):
        await first
    assert server.fetches == 1


async def test_server_down_fails_closed(clock: Clock) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    verifier = make_verifier(f"http://127.0.0.1:{port}/jwks.json", clock, timeout=2.0)
    token = mint(rsa_key())
    try:
        with capture_logs() as logs:
            await refused(verifier, token, "keys_unavailable")
        assert logs and logs[0]["event"] == "jwks_fetch_failed"
        assert all(token not in repr(entry) for entry in logs)
        # Failed fetches are rate limited too: no hammering an unreachable provider.
        await refused(verifier, token, "keys_unavailable")
    finally:
        await verifier.aclose()


@pytest.mark.parametrize(
    ("setup", "url_suffix"),
    [
        ({"status": 500}, ""),
        ({"body": b"<html>not json</html>"}, ""),
        ({"body": b'{"keys": "nope"}'}, ""),
        ({"body": b"[]"}, ""),
        ({}, "moved"),  # redirects are not followed: the configured URL is the only source
    ],
)
async def test_bad_jwks_responses_fail_closed(
    server: JwksServer, clock: Clock, setup: dict[str, Any], url_suffix: str
) -> None:
    for name, value in setup.items():
        setattr(server, name, value)
    url = server.url.replace("jwks.json", url_suffix) if url_suffix else server.url
    verifier = make_verifier(url, clock)
    try:
        await refused(verifier, mint(rsa_key()), "keys_unavailable")
    finally:
        await verifier.aclose()


async def test_oversized_jwks_fails_closed(server: JwksServer, clock: Clock) -> None:
    verifier = make_verifier(server.url, clock, max_bytes=100)
    try:
        await refused(verifier, mint(rsa_key()), "keys_unavailable")
    finally:
        await verifier.aclose()


async def test_stale_keys_are_not_used_when_refresh_fails(
    server: JwksServer, verifier: TokenVerifier, clock: Clock
) -> None:
    token = mint(rsa_key())
    await verifier.verify(token)  # now cached, too
    server.status = 503
    clock.now += 301
    await refused(verifier, token, "keys_unavailable")
    await refused(verifier, mint(rsa_key(), jti="new"), "keys_unavailable")
    server.status = 200
    clock.now += 30
    assert (await verifier.verify(token)).subject == "agent-7"


async def test_key_removed_from_jwks_stops_cached_tokens(
    server: JwksServer, verifier: TokenVerifier, clock: Clock
) -> None:
    token = mint(rsa_key())
    await verifier.verify(token)
    server.keys = [ec_key().public_key()]
    clock.now += 301
    await refused(verifier, token, "unknown_key")


async def test_sync_verify_uses_fresh_jwks_cache(server: JwksServer, verifier: TokenVerifier) -> None:
    await verifier.verify(mint(rsa_key()))
    assert verifier.verify_token(mint(rsa_key(), jti="sync"), operator=False).subject == "agent-7"
    with pytest.raises(AuthenticationError) as info:
        verifier.verify_token(mint(ec_key()), operator=False)
    assert info.value.code == "unknown_key"


def _b64u_int(value: int, length: int | None = None) -> str:
    raw = value.to_bytes(length or (value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_unusable_jwks_entries_are_ignored() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - must be refused
    weak_numbers = weak.public_key().public_numbers()
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key().public_numbers()
    good = public_jwk(rsa_key().public_key())
    entries: list[object] = [
        good,
        {"kty": "RSA", "kid": "weak", "n": _b64u_int(weak_numbers.n), "e": _b64u_int(weak_numbers.e)},
        {"kty": "EC", "crv": "P-384", "kid": "p384", "x": _b64u_int(p384.x, 48), "y": _b64u_int(p384.y, 48)},
        {**public_jwk(ec_key().public_key()), "alg": "RS256", "kid": "mislabeled"},
        {**public_jwk(ed_key().public_key()), "use": "enc", "kid": "enc"},
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"},
        {"kty": "RSA", "n": "!!", "e": "AQAB", "kid": "junk"},
        {**public_jwk(ec_key().public_key()), "kid": 7},
        "not-an-object",
    ]
    with capture_logs() as logs:
        keys = KeySet.from_jwks({"keys": entries})
    assert list(keys) == [good["kid"]]
    assert logs == [
        {"event": "jwks_keys_ignored", "unsupported": 8, "duplicate_kids": 0, "log_level": "warning"}
    ]


async def test_weak_key_served_by_jwks_is_not_trusted(server: JwksServer, verifier: TokenVerifier) -> None:
    server.extra = [{**public_jwk(ec_key().public_key()), "alg": "RS256"}]
    with capture_logs():
        await refused(verifier, mint(ec_key()), "unknown_key")


def test_duplicate_kids_in_jwks_keep_neither() -> None:
    a = public_jwk(rsa_key().public_key())
    b = {**public_jwk(rsa_key(5).public_key()), "kid": a["kid"]}
    with capture_logs():
        assert len(KeySet.from_jwks({"keys": [a, b]})) == 0


def test_jwk_thumbprint_matches_rfc7638_example() -> None:
    keys = KeySet.from_jwks({"keys": [{"kty": "RSA", "n": RFC7638_N, "e": "AQAB"}]})
    assert list(keys) == ["NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"]


def test_jwks_document_round_trips_every_key_type() -> None:
    keys = [rsa_key().public_key(), ec_key().public_key(), ed_key().public_key()]
    parsed = KeySet.from_jwks(jwks_document(keys))
    assert sorted(k.alg for k in parsed.values()) == ["ES256", "EdDSA", "RS256"]
    for key in keys:
        assert any(v.key == key for v in parsed.values())


def test_ec_point_not_on_curve_is_ignored() -> None:
    bogus = {"kty": "EC", "crv": "P-256", "x": base64.urlsafe_b64encode(b"\x01" * 32).decode().rstrip("=")}
    bogus["y"] = bogus["x"]
    assert len(KeySet.from_jwks({"keys": [bogus]})) == 0


# --- refresh ahead of expiry, parsing off the event loop -------------------------------------------


# Yield to the event loop until a condition holds; the deadline only turns a hang into a failure.
settle = functools.partial(poll_until, within=20, every=0.001)


async def answered(verifier: TokenVerifier, token: str) -> str:
    """The subject, with a bound so that a call stuck behind a held fetch fails instead of hanging."""
    return (await asyncio.wait_for(verifier.verify(token), 20)).subject


def make_pair(url: str, clock: Clock, **source: Any) -> tuple[JwksKeySource, TokenVerifier]:
    jwks = JwksKeySource(url, cache_seconds=300, min_refresh_interval=30, clock=clock, **source)
    return jwks, TokenVerifier(IdentitySettings(jwks_url=url), keys=KeySet(), jwks=jwks)


@pytest.fixture
async def pair(server: JwksServer, clock: Clock) -> AsyncIterator[tuple[JwksKeySource, TokenVerifier]]:
    jwks, verifier = make_pair(server.url, clock)
    try:
        yield jwks, verifier
    finally:
        if server.hold is not None:
            server.hold.set()
        await verifier.aclose()


async def test_known_kid_never_waits_for_a_stalled_refresh(
    server: JwksServer, clock: Clock, pair: Any
) -> None:
    jwks, verifier = pair
    cached = mint(rsa_key())
    assert await answered(verifier, cached) == "agent-7"
    assert server.fetches == 1
    server.hold = asyncio.Event()  # the provider now holds every response until the test releases it
    server.entered.clear()
    server.keys.append(ec_key().public_key())  # a rotated-in key, served once the response is released
    clock.now += 250  # past 80% of cache_seconds (300): due for a refresh, but still fresh

    # The first lookup past that point starts a background refresh and is answered at once.
    assert await answered(verifier, mint(rsa_key(), jti="cold-1")) == "agent-7"
    await settle(server.entered.is_set, what="the refresh to reach the provider")
    assert (server.fetches, server.responses) == (2, 1)

    # While the refresh is stalled, known-kid calls (cold and cached tokens) are answered from the cache.
    assert await answered(verifier, mint(rsa_key(), jti="cold-2")) == "agent-7"
    assert await answered(verifier, cached) == "agent-7"
    assert jwks.peek(kid_of(rsa_key())) is not None
    assert server.responses == 1, "the refresh must still be pending"

    # A token with a kid not cached yet joins the refresh under way and waits for it: only that caller.
    new_kid = asyncio.ensure_future(verifier.verify(mint(ec_key())))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not new_kid.done()
    assert await answered(verifier, mint(rsa_key(), jti="cold-3")) == "agent-7"
    assert not new_kid.done() and server.responses == 1

    server.hold.set()
    assert (await asyncio.wait_for(new_kid, 20)).subject == "agent-7"
    assert server.fetches == 2  # the waiter joined the refresh ahead; nothing more was asked
    assert await answered(verifier, cached) == "agent-7"


async def test_cached_tokens_alone_start_the_refresh_ahead(
    server: JwksServer, clock: Clock, pair: Any
) -> None:
    jwks, verifier = pair
    token = mint(rsa_key())
    await verifier.verify(token)
    clock.now += 239
    await verifier.verify(token)  # token-cache hit, not yet due
    for _ in range(20):
        await asyncio.sleep(0)
    assert server.fetches == 1
    clock.now += 1
    with capture_logs() as logs:
        assert await answered(verifier, token) == "agent-7"  # a token-cache hit: never waits
        assert jwks.refreshing
        await settle(lambda: not jwks.refreshing, what="the background refresh")
    assert [e["event"] for e in logs] == ["jwks_refresh_ahead", "jwks_refreshed"]
    # Renewed at t=1240: used past the old expiry (t=1300), not due again until t=1480.
    clock.now += 230
    assert await answered(verifier, token) == "agent-7"
    for _ in range(20):
        await asyncio.sleep(0)
    assert server.fetches == 2
    assert jwks.peek(kid_of(rsa_key())) is not None


async def test_failed_refresh_ahead_serves_until_expiry_then_fails_closed(
    server: JwksServer, clock: Clock, pair: Any
) -> None:
    jwks, verifier = pair
    token = mint(rsa_key())
    await verifier.verify(token)  # fetched at t=1000
    server.status = 503
    with capture_logs() as logs:
        clock.now += 250
        assert await answered(verifier, token) == "agent-7"  # starts a refresh ahead, which fails
        await settle(lambda: not jwks.refreshing, what="the refresh ahead to finish (it fails)")
        assert server.fetches == 2
        # Still inside cache_seconds: the cached keys keep answering; retries are rate limited.
        clock.now += 20  # t=1270
        assert await answered(verifier, mint(rsa_key(), jti="b")) == "agent-7"
        for _ in range(20):
            await asyncio.sleep(0)
        assert server.fetches == 2
        clock.now += 10  # t=1280: min_refresh_interval since the last attempt, another try (fails too)
        assert await answered(verifier, token) == "agent-7"
        assert jwks.refreshing
        await settle(
            lambda: not jwks.refreshing,
            what="the second attempt to finish (it fails)",
        )
        assert server.fetches == 3
        # Past cache_seconds with no successful refresh: fail closed, cached token included.
        clock.now += 21  # t=1301, 21 s after the last attempt: rate limited, no fetch
        await refused(verifier, token, "keys_unavailable")
        await refused(verifier, mint(rsa_key(), jti="c"), "keys_unavailable")
        assert server.fetches == 3
        clock.now += 10  # t=1311: may fetch again; the caller waits for it, and it fails
        await refused(verifier, token, "keys_unavailable")
        assert server.fetches == 4
    refusals = [(e["code"], e["reason"]) for e in logs if e["event"] == "jwks_lookup_refused"]
    assert refusals == [
        ("keys_unavailable", "rate_limited"),
        ("keys_unavailable", "rate_limited"),
        ("keys_unavailable", "no_fresh_keys"),
    ]
    assert all(token not in repr(e) for e in logs)
    server.status = 200
    clock.now += 30
    assert await answered(verifier, token) == "agent-7"


async def test_rotation_is_picked_up_ahead_of_expiry(server: JwksServer, clock: Clock, pair: Any) -> None:
    jwks, verifier = pair
    old = mint(rsa_key())
    await verifier.verify(old)
    server.keys = [rsa_key().public_key(), ed_key().public_key()]  # the provider adds a key
    clock.now += 250
    await verifier.verify(old)  # starts the refresh ahead
    await settle(lambda: not jwks.refreshing, what="the refresh ahead")
    assert jwks.peek(kid_of(ed_key())) is not None
    assert await answered(verifier, mint(ed_key())) == "agent-7"
    assert server.fetches == 2  # picked up in the background: the new kid needed no fetch of its own
    # ... then retires the old one: tokens signed with it stop working before the cache would expire.
    server.keys = [ed_key().public_key()]
    clock.now += 250
    assert await answered(verifier, mint(ed_key(), jti="x")) == "agent-7"
    await settle(lambda: not jwks.refreshing, what="the second refresh ahead")
    assert jwks.peek(kid_of(rsa_key())) is None
    with capture_logs():
        await refused(verifier, old, "unknown_key")
    assert server.fetches == 3


async def test_refresh_ahead_of_one_keeps_the_old_refresh_at_expiry(server: JwksServer, clock: Clock) -> None:
    _, verifier = make_pair(server.url, clock, refresh_ahead=1.0)
    try:
        token = mint(rsa_key())
        await verifier.verify(token)
        clock.now += 299
        assert await answered(verifier, token) == "agent-7"
        for _ in range(20):
            await asyncio.sleep(0)
        assert server.fetches == 1
        clock.now += 1  # expired: this caller waits for the refresh
        assert await answered(verifier, token) == "agent-7"
        assert server.fetches == 2
    finally:
        await verifier.aclose()


async def test_timer_refreshes_ahead_without_any_lookup(server: JwksServer) -> None:
    # The real clock: 30 s cache, due after 0.3 s. No lookups at all while waiting.
    jwks = JwksKeySource(server.url, cache_seconds=30, min_refresh_interval=0.1, refresh_ahead=0.01)
    try:
        await jwks.refresh()
        assert server.fetches == 1
        await settle(lambda: server.responses >= 2, what="a refresh from the timer")
        await settle(
            lambda: server.responses >= 3,
            what="the timer to be re-armed after a refresh",
        )
        assert jwks.peek(kid_of(rsa_key())) is not None
    finally:
        await jwks.aclose()
    after_close = server.fetches
    await asyncio.sleep(0.5)  # more than the refresh-ahead point: a closed source stops refreshing
    assert server.fetches == after_close


class HeldExecutor(ThreadPoolExecutor):
    """A real thread pool whose jobs wait for the test's go-ahead while ``gate`` is cleared.

    Installed as the loop's default executor, it shows that the JWKS parse is handed to a
    worker thread (the job shows up here) and what the event loop does while it is pending.
    """

    def __init__(self) -> None:
        super().__init__(max_workers=2, thread_name_prefix="held-executor")
        self.gate = threading.Event()
        self.gate.set()
        self.held = threading.Event()
        self.finished = threading.Event()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        def job() -> Any:
            if not self.gate.is_set():
                self.held.set()
                if not self.gate.wait(30):
                    raise TimeoutError("the test never released the job")
            try:
                return fn(*args, **kwargs)
            finally:
                self.finished.set()

        return super().submit(job)


def big_jwks(count: int) -> dict[str, Any]:
    """Hundreds of RSA and EC keys (distinct kids), the agent's key and one new EC key."""
    materials = [rsa_key(slot) for slot in (1, 2, 3)] + [ec_key(slot) for slot in (2, 3)]
    entries = [
        {**public_jwk(materials[i % len(materials)].public_key()), "kid": f"bulk-{i}"} for i in range(count)
    ]
    entries += [public_jwk(rsa_key().public_key()), public_jwk(ec_key(1).public_key())]
    return {"keys": entries}


async def test_big_jwks_is_parsed_off_the_event_loop(server: JwksServer, clock: Clock, pair: Any) -> None:
    jwks, verifier = pair
    loop = asyncio.get_running_loop()
    executor = HeldExecutor()
    loop.set_default_executor(executor)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticking = asyncio.create_task(ticker())
    try:
        await verifier.verify(mint(rsa_key()))
        server.body = json.dumps(big_jwks(600)).encode()
        executor.gate.clear()  # from now on the parse waits in its worker thread until released
        executor.finished.clear()
        clock.now += 31
        new_kid = asyncio.ensure_future(verifier.verify(mint(ec_key(1))))  # unknown kid: fetches, waits
        await settle(executor.held.is_set, what="the document to be handed to a worker thread")
        assert server.responses == 2  # fetched; what remains is the parse, pending in the worker thread
        before = ticks
        # The event loop keeps serving while the parse is pending: other tasks run, known kids answer.
        assert await answered(verifier, mint(rsa_key(), jti="during-parse")) == "agent-7"
        await settle(lambda: ticks > before + 100, what="the ticker to keep ticking")
        assert not new_kid.done() and not executor.finished.is_set()
        executor.gate.set()
        with capture_logs() as logs:
            assert (await asyncio.wait_for(new_kid, 20)).subject == "agent-7"
        assert executor.finished.is_set()
        assert [e["keys"] for e in logs if e["event"] == "jwks_refreshed"] == [602]
        assert jwks.peek("bulk-599") is not None and jwks.peek(kid_of(rsa_key())) is not None
        assert ticks > before + 100
    finally:
        executor.gate.set()
        ticking.cancel()
        executor.shutdown(wait=False)


def test_refresh_ahead_setting_is_validated_and_passed_on() -> None:
    for bad in (0, -0.5, 1.01, 2):
        with pytest.raises(ConfigError, match="jwks_refresh_ahead"):
            IdentitySettings(jwks_refresh_ahead=bad)
    with pytest.raises(ValueError, match="refresh_ahead"):
        JwksKeySource("http://127.0.0.1:9/jwks.json", refresh_ahead=0)
    assert IdentitySettings().jwks_refresh_ahead == 0.8
    settings = IdentitySettings(jwks_url="http://127.0.0.1:9/jwks.json", jwks_refresh_ahead=1)
    assert JwksKeySource.from_settings(settings) is not None


@pytest.mark.parametrize(
    ("value", "ok"), [("0.5", True), ("1", True), ("0", False), ("1.5", False), ("soon", False)]
)
def test_refresh_ahead_in_the_config_file(tmp_path: Path, value: str, ok: bool) -> None:
    path = tmp_path / "gatekeeper.yaml"
    path.write_text(f"demo: {{enabled: false}}\nidentity:\n  jwks_refresh_ahead: {value}\n")
    if ok:
        assert load_config(path).identity.jwks_refresh_ahead == float(value)
        return
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "identity" in info.value.message and "jwks_refresh_ahead" in info.value.message

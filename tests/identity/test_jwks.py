"""Remote keys: a real JWKS server on 127.0.0.1 that counts how often it is asked."""

from __future__ import annotations

import asyncio
import base64
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from structlog.testing import capture_logs

from gatekeeper.errors import AuthenticationError
from gatekeeper.identity import (
    IdentitySettings,
    JwksKeySource,
    KeySet,
    TokenVerifier,
    jwks_document,
    public_jwk,
)
from gatekeeper.identity.keys import PublicKey

from . import ec_key, ed_key, mint, rsa_key, signed

RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiF"
    "V4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9"
    "c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1"
    "jF44-csFCur-kEgU8awapJzKnqDKgw"
)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class JwksServer:
    url: str = ""
    fetches: int = 0
    keys: list[PublicKey] = field(default_factory=list)
    extra: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0
    body: bytes | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.fetches += 1
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

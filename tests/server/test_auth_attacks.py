"""Every JWT attack from the core issue, sent over the wire to /v1/invoke: 401, a code, nothing forwarded."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gatekeeper.app import Gatekeeper
from gatekeeper.identity import load_private_key_pem

from ..helpers import (  # noqa: F401 (shared_gk, shared_gk_per_test, http_in_module_loop: fixtures)
    http_in_module_loop,
    run_in_module_loop,
    shared_gk,
    shared_gk_per_test,
)
from ..identity import b64u, claims, public_pem, segment, signed

BODY = json.dumps({"tool": "file.read", "arguments": {"path": "README.md"}})


def _dev_key(gk: Gatekeeper) -> Any:
    assert gk.config.identity.dev_key_path is not None
    return load_private_key_pem(Path(gk.config.identity.dev_key_path))


def _unsigned(alg: str) -> str:
    return f"{segment({'alg': alg, 'typ': 'JWT'})}.{segment(claims())}."


def _hs256_with_public_key(key: Any) -> str:
    signing_input = f"{segment({'alg': 'HS256', 'typ': 'JWT'})}.{segment(claims())}"
    mac = hmac.new(public_pem(key), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64u(mac)}"


ATTACKS: dict[str, tuple[Any, str]] = {
    "alg none": (lambda key: _unsigned("none"), "algorithm_not_allowed"),
    "alg None": (lambda key: _unsigned("None"), "algorithm_not_allowed"),
    "alg NONE": (lambda key: _unsigned("NONE"), "algorithm_not_allowed"),
    "alg nOnE": (lambda key: _unsigned("nOnE"), "algorithm_not_allowed"),
    "HS256 keyed with the public key": (_hs256_with_public_key, "algorithm_not_allowed"),
    "jku header": (lambda key: signed(key, header={"jku": "http://127.0.0.1:9/jwks"}), "forbidden_header"),
    "x5u header": (lambda key: signed(key, header={"x5u": "http://127.0.0.1:9/cert"}), "forbidden_header"),
    "jwk header": (lambda key: signed(key, header={"jwk": {"kty": "oct", "k": "AAAA"}}), "forbidden_header"),
    "kid path traversal": (lambda key: signed(key, header={"kid": "../../../../dev/null"}), "unknown_key"),
    "kid sql": (lambda key: signed(key, header={"kid": "' OR 1=1 --"}), "unknown_key"),
    "unknown crit": (
        lambda key: signed(key, header={"crit": ["exp-v2"], "exp-v2": 1}),
        "unsupported_critical_header",
    ),
    "expired": (lambda key: signed(key, claims(exp=int(time.time()) - 10)), "token_expired"),
    "not yet valid": (lambda key: signed(key, claims(nbf=int(time.time()) + 600)), "token_not_yet_valid"),
    "missing exp": (lambda key: signed(key, claims(exp=...)), "missing_claim"),
    "wrong audience": (lambda key: signed(key, claims(aud="some-other-service")), "invalid_audience"),
    "operator audience": (lambda key: signed(key, claims(aud="gatekeeper-operator")), "invalid_audience"),
    "issuer prefix": (lambda key: signed(key, claims(iss="gatekeeper-de")), "invalid_issuer"),
    "issuer superstring": (lambda key: signed(key, claims(iss="gatekeeper-dev.evil")), "invalid_issuer"),
    "tampered payload": (
        lambda key: (
            signed(key).rsplit(".", 2)[0]
            + "."
            + segment(claims(roles=["admin"]))
            + "."
            + signed(key).rsplit(".", 1)[1]
        ),
        "invalid_signature",
    ),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_attack_is_refused(gk: Gatekeeper, http: aiohttp.ClientSession, attack: str) -> None:
    make, code = ATTACKS[attack]
    token = make(_dev_key(gk))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with http.post(f"{gk.agent_url}/v1/invoke", data=BODY, headers=headers) as resp:
        body = await resp.json()
        assert (resp.status, body["code"]) == (401, code), body
        assert resp.headers["WWW-Authenticate"].startswith('Bearer realm="gatekeeper"')
    assert gk.demo is not None and gk.demo.http_received == []


async def test_the_same_key_signs_a_valid_token(gk: Gatekeeper, http: aiohttp.ClientSession) -> None:
    """The control: the crafting helpers do produce tokens the gate accepts."""
    headers = {"Authorization": f"Bearer {signed(_dev_key(gk))}", "Content-Type": "application/json"}
    async with http.post(f"{gk.agent_url}/v1/invoke", data=BODY, headers=headers) as resp:
        assert resp.status == 200, await resp.text()


async def test_token_in_query_string(gk: Gatekeeper, http: aiohttp.ClientSession) -> None:
    token = signed(_dev_key(gk))
    for query in (f"access_token={token}", f"token={token}", f";access_token={token}", f"%20jwt={token}"):
        async with http.post(
            f"{gk.agent_url}/v1/invoke?{query}", data=BODY, headers={"Content-Type": "application/json"}
        ) as resp:
            assert resp.status == 401
            assert (await resp.json())["code"] == "token_in_query"
    # even alongside a valid header
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with http.post(
        f"{gk.agent_url}/v1/invoke?access_token={token}", data=BODY, headers=headers
    ) as resp:
        assert (resp.status, (await resp.json())["code"]) == (401, "token_in_query")
    assert gk.demo is not None and gk.demo.http_received == []


async def test_two_authorization_headers(gk: Gatekeeper, http: aiohttp.ClientSession) -> None:
    token = signed(_dev_key(gk))
    headers = [
        ("Authorization", f"Bearer {token}"),
        ("Authorization", f"Bearer {token}"),
        ("Content-Type", "application/json"),
    ]
    async with http.post(f"{gk.agent_url}/v1/invoke", data=BODY, headers=headers) as resp:
        assert resp.status == 401
        assert (await resp.json())["code"] == "multiple_authorization"
        assert "WWW-Authenticate" in resp.headers
    assert gk.demo is not None and gk.demo.http_received == []


# One Gatekeeper for the module (tests/helpers.py: shared_gk): these tests only send it calls.
run_in_module_loop(globals())

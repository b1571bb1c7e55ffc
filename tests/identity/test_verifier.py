"""Every refusal of the token verifier, by code, plus the paths that must succeed."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp import ClientSession, web
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt import exceptions as jwt_errors
from multidict import MultiDict, MultiDictProxy

from gatekeeper.errors import AuthenticationError, ConfigError
from gatekeeper.identity import ERROR_CODES, IdentitySettings, TokenVerifier
from gatekeeper.identity.keys import PrivateKey

from . import (
    AUDIENCE,
    ISSUER,
    OPERATOR_AUDIENCE,
    b64u,
    bearer,
    claims,
    ec_key,
    ed_key,
    headers,
    kid_of,
    mint,
    public_pem,
    rsa_key,
    segment,
    signed,
    write_public_pem,
)

KEYS: dict[str, Callable[..., PrivateKey]] = {"RS256": rsa_key, "ES256": ec_key, "EdDSA": ed_key}
NO_QUERY: MultiDictProxy[str] = MultiDictProxy(MultiDict())
JSON_STRING = '"RS256"'


@pytest.fixture(scope="module")
def key_paths(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, ...]:
    folder = tmp_path_factory.mktemp("keys")
    return tuple(str(write_public_pem(make(), folder / f"{alg}.pem")) for alg, make in KEYS.items())


@pytest.fixture
def identity(key_paths: tuple[str, ...]) -> IdentitySettings:
    return IdentitySettings(public_keys=key_paths)


@pytest.fixture
def verifier(identity: IdentitySettings) -> TokenVerifier:
    return TokenVerifier(identity)


def assert_no_material(err: AuthenticationError, token: str) -> None:
    """Neither the message nor the WWW-Authenticate header may echo token or key material."""
    shown = err.message + err.www_authenticate() + repr(err.body())
    for part in token.split("."):
        if len(part) >= 8:
            assert part not in shown
    assert token not in shown
    assert "BEGIN" not in shown


def refused(verifier: TokenVerifier, token: str, code: str, *, operator: bool = False) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as info:
        verifier.verify_token(token, operator=operator)
    err = info.value
    assert (err.code, err.status) == (code, 401), err.message
    assert code in ERROR_CODES
    assert err.message
    assert_no_material(err, token)
    return err


async def refused_request(
    verifier: TokenVerifier, request_headers: Any, code: str, query: Any = NO_QUERY
) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as info:
        await verifier.authenticate(request_headers, query)
    assert info.value.code == code, info.value.message
    assert info.value.www_authenticate().startswith('Bearer realm="gatekeeper"')
    return info.value


# --- what must work ------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", list(KEYS))
async def test_accepts_valid_token_for_each_key_type(verifier: TokenVerifier, alg: str) -> None:
    token = mint(KEYS[alg](), roles=["agent", "reader"], jti="abc")
    principal = await verifier.authenticate(bearer(token), NO_QUERY)
    assert principal.subject == "agent-7"
    assert principal.roles == ("agent", "reader")
    assert principal.issuer == ISSUER
    assert principal.operator is False
    assert principal.token_id == "abc"
    assert principal.expires_at == jwt.decode(token, options={"verify_signature": False})["exp"]


async def test_bearer_scheme_is_case_insensitive(verifier: TokenVerifier) -> None:
    token = mint(rsa_key())
    principal = await verifier.authenticate(headers(("authorization", f"bEaReR {token}")), NO_QUERY)
    assert principal.subject == "agent-7"


def test_operator_token_only_on_operator_listener(verifier: TokenVerifier) -> None:
    operator_token = mint(rsa_key(), aud=OPERATOR_AUDIENCE, sub="alice", roles=["operator"])
    agent_token = mint(rsa_key())
    principal = verifier.verify_token(operator_token, operator=True)
    assert (principal.subject, principal.operator) == ("alice", True)
    refused(verifier, agent_token, "invalid_audience", operator=True)
    refused(verifier, operator_token, "invalid_audience", operator=False)
    assert verifier.verify_token(agent_token, operator=False).operator is False


def test_agent_token_with_operator_looking_claims_is_still_refused(verifier: TokenVerifier) -> None:
    token = mint(rsa_key(), roles=["operator", "admin"], operator=True, scope="operator")
    refused(verifier, token, "invalid_audience", operator=True)


def test_token_without_kid_accepted_only_when_one_key_is_trusted(tmp_path: Path) -> None:
    one = TokenVerifier(IdentitySettings(public_keys=(str(write_public_pem(rsa_key(), tmp_path / "k.pem")),)))
    token = signed(rsa_key(), header={"kid": ...})
    assert one.verify_token(token, operator=False).subject == "agent-7"


def test_token_without_kid_refused_when_several_keys_are_trusted(verifier: TokenVerifier) -> None:
    refused(verifier, signed(rsa_key(), header={"kid": ...}), "unknown_key")


# --- where the token is --------------------------------------------------------------------------------


async def test_missing_token(verifier: TokenVerifier) -> None:
    await refused_request(verifier, headers(), "missing_token")
    await refused_request(verifier, headers(("X-Authorization", "Bearer abc")), "missing_token")


@pytest.mark.parametrize(
    "value",
    ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc.def.ghi", "Bearer a b", "Bearerabc.def.ghi"],
)
async def test_invalid_authorization_header(verifier: TokenVerifier, value: str) -> None:
    await refused_request(verifier, headers(("Authorization", value)), "invalid_authorization_header")


async def test_multiple_authorization_headers(verifier: TokenVerifier) -> None:
    token = mint(rsa_key())
    two = headers(("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}"))
    await refused_request(verifier, two, "multiple_authorization")
    joined = headers(("Authorization", f"Bearer {token}, Bearer {mint(ec_key())}"))
    await refused_request(verifier, joined, "multiple_authorization")


@pytest.mark.parametrize("param", ["access_token", "token", "jwt", "id_token", "Access_Token"])
async def test_token_in_query_refused_even_with_valid_header(verifier: TokenVerifier, param: str) -> None:
    token = mint(rsa_key())
    query = MultiDictProxy(MultiDict([(param, token)]))
    err = await refused_request(verifier, bearer(token), "token_in_query", query)
    assert_no_material(err, token)
    await refused_request(verifier, headers(), "token_in_query", query)


# --- the JOSE header -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "abc",
        "a.b",
        "a.b.c.d.e",  # JWE compact form
        "!!!.e30.sig",
        "e30=.e30.sig",  # padded
        f".{segment(claims())}.",
        f"{b64u(b'not json')}.{segment(claims())}.",
        f"{segment('[1, 2]')}.{segment(claims())}.",
        f"{segment(JSON_STRING)}.{segment(claims())}.",
        f"{segment({'alg': 'RS256'})}.{b64u(b'not json')}.",
        "x" * 20000,
    ],
)
def test_malformed_tokens(verifier: TokenVerifier, token: str) -> None:
    refused(verifier, token, "malformed_token")


def test_duplicate_header_member_refused(verifier: TokenVerifier) -> None:
    # A parser that keeps the last "alg" and one that keeps the first would disagree.
    raw = '{"alg":"RS256","kid":"' + kid_of(rsa_key()) + '","alg":"none"}'
    token = f"{segment(raw)}.{segment(claims())}."
    refused(verifier, token, "malformed_token")


def test_duplicate_claim_refused(verifier: TokenVerifier) -> None:
    body = json.dumps(claims())[:-1] + ', "sub": "root"}'
    refused(verifier, signed(rsa_key(), body), "malformed_token")


def test_non_string_kid_refused(verifier: TokenVerifier) -> None:
    refused(verifier, signed(rsa_key(), header={"kid": 7}), "malformed_token")


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", "", None])
@pytest.mark.parametrize("signature", ["", "c2ln"])
def test_alg_none_refused(verifier: TokenVerifier, alg: str | None, signature: str) -> None:
    header = {"alg": alg, "typ": "JWT", "kid": kid_of(rsa_key())}
    token = f"{segment(header)}.{segment(claims(roles=['admin']))}.{signature}"
    refused(verifier, token, "algorithm_not_allowed")


def test_missing_alg_refused(verifier: TokenVerifier) -> None:
    token = f"{segment({'typ': 'JWT', 'kid': kid_of(rsa_key())})}.{segment(claims())}."
    refused(verifier, token, "algorithm_not_allowed")


@pytest.mark.parametrize(
    ("alg", "digest"), [("HS256", hashlib.sha256), ("HS384", hashlib.sha384), ("HS512", hashlib.sha512)]
)
def test_hmac_with_public_key_as_secret_refused(verifier: TokenVerifier, alg: str, digest: Any) -> None:
    """The classic key-confusion attack: MAC the token with the (public) RSA PEM as the secret."""
    header = {"alg": alg, "typ": "JWT", "kid": kid_of(rsa_key())}
    signing_input = f"{segment(header)}.{segment(claims(roles=['admin']))}"
    mac = hmac.new(public_pem(rsa_key()), signing_input.encode(), digest).digest()
    token = f"{signing_input}.{b64u(mac)}"
    refused(verifier, token, "algorithm_not_allowed")
    # Also without a kid, where a naive verifier would pick "the" key.
    header.pop("kid")
    signing_input = f"{segment(header)}.{segment(claims(roles=['admin']))}"
    mac = hmac.new(public_pem(rsa_key()), signing_input.encode(), digest).digest()
    refused(verifier, f"{signing_input}.{b64u(mac)}", "algorithm_not_allowed")


@pytest.mark.parametrize("alg", ["PS256", "RS512", "ES384", "ES512", "EdDSA "])
def test_algorithms_outside_allow_list_refused(verifier: TokenVerifier, alg: str) -> None:
    refused(verifier, signed(rsa_key(), header={"alg": alg}), "algorithm_not_allowed")


def test_configured_allow_list_is_honoured(key_paths: tuple[str, ...], tmp_path: Path) -> None:
    only_rsa = TokenVerifier(
        IdentitySettings(
            algorithms=("RS256",), public_keys=(str(write_public_pem(rsa_key(), tmp_path / "r.pem")),)
        )
    )
    refused(only_rsa, mint(ec_key()), "algorithm_not_allowed")
    assert only_rsa.verify_token(mint(rsa_key()), operator=False).subject == "agent-7"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("jku", "https://203.0.113.7/jwks.json"),
        ("x5u", "https://203.0.113.7/cert.pem"),
        ("jwk", {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}),
        ("x5c", ["MIIB"]),
    ],
)
def test_self_declared_keys_refused(verifier: TokenVerifier, name: str, value: object) -> None:
    err = refused(verifier, signed(rsa_key(), header={name: value}), "forbidden_header")
    assert name in err.message


@pytest.mark.parametrize("kid", ["../../dev/null", "' OR 1=1 --", "", "x" * 300, "kid\x00", "/etc/passwd"])
def test_unknown_or_injected_kid_refused(verifier: TokenVerifier, kid: str) -> None:
    refused(verifier, signed(rsa_key(), header={"kid": kid}), "unknown_key")


def test_key_from_untrusted_signer_refused(verifier: TokenVerifier) -> None:
    refused(verifier, mint(rsa_key(9)), "unknown_key")


@pytest.mark.parametrize("crit", [["exp"], ["b64"], ["x-custom"], [], "b64"])
def test_critical_header_refused(verifier: TokenVerifier, crit: object) -> None:
    token = signed(rsa_key(), header={"crit": crit, "x-custom": 1, "exp": 1, "b64": True})
    refused(verifier, token, "unsupported_critical_header")


@pytest.mark.parametrize(
    ("alg", "key_alg"),
    [("ES256", "RS256"), ("RS256", "ES256"), ("EdDSA", "RS256"), ("RS256", "EdDSA"), ("ES256", "EdDSA")],
)
def test_alg_must_match_key_type(verifier: TokenVerifier, alg: str, key_alg: str) -> None:
    # The kid names a trusted key; the alg claims another family (signed with a key of that family).
    signer = KEYS[alg](1)
    token = signed(signer, header={"kid": kid_of(KEYS[key_alg]())})
    refused(verifier, token, "algorithm_not_allowed")


# --- the signature -------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", list(KEYS))
def test_tampered_payload_refused(verifier: TokenVerifier, alg: str) -> None:
    head, _, signature = mint(KEYS[alg]()).split(".")
    token = f"{head}.{segment(claims(roles=['admin']))}.{signature}"
    refused(verifier, token, "invalid_signature")


@pytest.mark.parametrize("alg", list(KEYS))
def test_signature_by_other_key_with_trusted_kid_refused(verifier: TokenVerifier, alg: str) -> None:
    impostor = KEYS[alg](2)
    token = signed(impostor, header={"kid": kid_of(KEYS[alg]())})
    refused(verifier, token, "invalid_signature")


def test_empty_or_truncated_signature_refused(verifier: TokenVerifier) -> None:
    head, body, signature = mint(rsa_key()).split(".")
    refused(verifier, f"{head}.{body}.", "invalid_signature")
    flipped = signature[:100] + ("A" if signature[100] != "A" else "B") + signature[101:]
    refused(verifier, f"{head}.{body}.{flipped}", "invalid_signature")


# --- the claims ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("claim", ["exp", "iss", "aud", "sub"])
def test_required_claim_missing(verifier: TokenVerifier, claim: str) -> None:
    err = refused(verifier, signed(rsa_key(), claims(**{claim: ...})), "missing_claim")
    assert claim in err.message


def test_expired_token_refused(verifier: TokenVerifier) -> None:
    now = int(time.time())
    refused(verifier, mint(rsa_key(), iat=now - 100, nbf=now - 100, exp=now - 1), "token_expired")


def test_leeway_tolerates_small_clock_skew(key_paths: tuple[str, ...]) -> None:
    lenient = TokenVerifier(IdentitySettings(public_keys=key_paths, leeway_seconds=30))
    now = int(time.time())
    assert lenient.verify_token(mint(rsa_key(), exp=now - 5), operator=False).subject == "agent-7"
    refused(lenient, mint(rsa_key(), exp=now - 60), "token_expired")


def test_not_yet_valid_refused(verifier: TokenVerifier) -> None:
    later = int(time.time()) + 3600
    refused(verifier, mint(rsa_key(), nbf=later, exp=later + 600), "token_not_yet_valid")


def test_issued_in_the_future_refused(verifier: TokenVerifier) -> None:
    later = int(time.time()) + 3600
    refused(verifier, mint(rsa_key(), iat=later, nbf=..., exp=later + 600), "token_not_yet_valid")


@pytest.mark.parametrize(
    "aud", ["gatekeeper-other", "Gatekeeper", "gatekeepe", "gatekeeper ", [AUDIENCE], [AUDIENCE, "x"], 1]
)
def test_wrong_audience_refused(verifier: TokenVerifier, aud: object) -> None:
    refused(verifier, signed(rsa_key(), claims(aud=aud)), "invalid_audience")


@pytest.mark.parametrize(
    "iss",
    ["gatekeeper-dev-evil", "gatekeeper-de", "gatekeeper-dev ", "Gatekeeper-dev", "", ["gatekeeper-dev"], 1],
)
def test_issuer_must_match_exactly(verifier: TokenVerifier, iss: object) -> None:
    refused(verifier, signed(rsa_key(), claims(iss=iss)), "invalid_issuer")


@pytest.mark.parametrize("iss", ["gatekeeper-dev-evil", "gatekeeper-de", "gatekeeper"])
def test_pyjwt_issuer_check_is_exact_not_prefix(iss: str) -> None:
    """Guards the dependency: PyJWT 2.10.0 compared issuers by substring (CVE-2024-53861)."""
    token = mint(rsa_key(), iss=iss)
    with pytest.raises(jwt_errors.InvalidIssuerError):
        jwt.decode(token, rsa_key().public_key(), algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER)


@pytest.mark.parametrize("roles", [..., 5, None, {"agent": True}, ["agent", 3], [["agent"]], ["agent", ""]])
def test_invalid_roles_refused(verifier: TokenVerifier, roles: object) -> None:
    refused(verifier, signed(rsa_key(), claims(roles=roles)), "invalid_roles")


@pytest.mark.parametrize("roles", [[], ""])
def test_empty_roles_allowed(verifier: TokenVerifier, roles: object) -> None:
    assert verifier.verify_token(mint(rsa_key(), roles=roles), operator=False).roles == ()


def test_space_separated_roles(verifier: TokenVerifier) -> None:
    principal = verifier.verify_token(mint(rsa_key(), roles="agent  reader agent"), operator=False)
    assert principal.roles == ("agent", "reader")


def test_dotted_roles_claim(key_paths: tuple[str, ...]) -> None:
    keycloak = TokenVerifier(IdentitySettings(public_keys=key_paths, roles_claim="realm_access.roles"))
    token = mint(rsa_key(), roles=..., realm_access={"roles": ["agent"]})
    assert keycloak.verify_token(token, operator=False).roles == ("agent",)
    refused(keycloak, mint(rsa_key(), realm_access={"groups": []}), "invalid_roles")
    refused(keycloak, mint(rsa_key(), realm_access=["agent"]), "invalid_roles")


def test_url_style_roles_claim_name(key_paths: tuple[str, ...]) -> None:
    name = "https://example.com/roles"
    namespaced = TokenVerifier(IdentitySettings(public_keys=key_paths, roles_claim=name))
    assert namespaced.verify_token(mint(rsa_key(), **{name: ["agent"]}), operator=False).roles == ("agent",)


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"sub": ""}, "invalid_claim"),
        ({"sub": 42}, "invalid_claim"),
        ({"sub": "agent\n7"}, "invalid_claim"),
        ({"exp": "9999999999"}, "invalid_claim"),  # PyJWT alone would accept a numeric string
        ({"exp": True}, "token_expired"),  # PyJWT reads True as 1 (1970): refused either way
        ({"nbf": "0"}, "invalid_claim"),
        ({"jti": 5}, "invalid_claim"),
        ({"aud": ""}, "missing_claim"),
    ],
)
def test_wrongly_typed_claims_refused(verifier: TokenVerifier, overrides: dict[str, Any], code: str) -> None:
    refused(verifier, signed(rsa_key(), claims(**overrides)), code)


# --- the cache -----------------------------------------------------------------------------------------


def test_cache_hit_returns_same_principal(verifier: TokenVerifier) -> None:
    token = mint(rsa_key())
    first = verifier.verify_token(token, operator=False)
    assert verifier.verify_token(token, operator=False) is first


def test_expired_cached_token_refused(key_paths: tuple[str, ...]) -> None:
    offset = 0.0
    clocked = TokenVerifier(IdentitySettings(public_keys=key_paths), clock=lambda: time.time() + offset)
    token = mint(rsa_key(), exp=int(time.time()) + 60)
    assert clocked.verify_token(token, operator=False).subject == "agent-7"
    offset = 120.0
    refused(clocked, token, "token_expired")


def test_cache_is_per_listener(verifier: TokenVerifier) -> None:
    token = mint(rsa_key())
    verifier.verify_token(token, operator=False)
    refused(verifier, token, "invalid_audience", operator=True)


def test_cache_is_bounded(key_paths: tuple[str, ...]) -> None:
    small = TokenVerifier(IdentitySettings(public_keys=key_paths, token_cache_size=2))
    tokens = [mint(rsa_key(), jti=str(i)) for i in range(3)]
    principals = [small.verify_token(t, operator=False) for t in tokens]
    assert small.verify_token(tokens[2], operator=False) is principals[2]
    assert small.verify_token(tokens[0], operator=False) is not principals[0]  # evicted, re-verified


def test_refusals_are_not_cached(verifier: TokenVerifier) -> None:
    token = mint(rsa_key(), aud="elsewhere")
    for _ in range(2):
        refused(verifier, token, "invalid_audience")


# --- configuration -------------------------------------------------------------------------------------


@pytest.mark.parametrize("algs", [("HS256",), ("RS256", "HS512"), ("none",), ("None",), (), ("RS384",)])
def test_settings_refuse_symmetric_and_none_algorithms(algs: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError):
        IdentitySettings(algorithms=algs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"jwks_url": "http://idp.example.com/jwks.json"},
        {"jwks_url": "ftp://127.0.0.1/jwks"},
        {"audience": "same", "operator_audience": "same"},
        {"issuer": ""},
        {"roles_claim": "a..b"},
        {"jwks_min_refresh_interval": 0},
        {"token_cache_size": -1},
    ],
)
def test_settings_refuse_unsafe_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        IdentitySettings(**kwargs)


def test_settings_accept_https_and_loopback_jwks() -> None:
    IdentitySettings(jwks_url="https://idp.example.com/.well-known/jwks.json")
    IdentitySettings(jwks_url="http://127.0.0.1:9999/jwks.json")


def test_verifier_without_keys_refuses_to_start() -> None:
    with pytest.raises(ConfigError):
        TokenVerifier(IdentitySettings())


def test_private_key_is_refused_as_public_key(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    path = tmp_path / "private.pem"
    path.write_bytes(
        rsa_key().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(ConfigError) as info:
        TokenVerifier(IdentitySettings(public_keys=(str(path),)))
    assert "BEGIN" not in info.value.message


# --- against a real aiohttp request --------------------------------------------------------------------


async def test_authenticate_with_aiohttp_request(verifier: TokenVerifier) -> None:
    async def handler(request: web.Request) -> web.Response:
        try:
            principal = await verifier.authenticate(request.headers, request.query)
        except AuthenticationError as err:
            return web.json_response(
                err.body(), status=err.status, headers={"WWW-Authenticate": err.www_authenticate()}
            )
        return web.json_response({"sub": principal.subject})

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        url = f"http://127.0.0.1:{port}/"
        token = mint(rsa_key())
        async with ClientSession() as client:
            async with client.get(url, headers={"Authorization": f"Bearer {token}"}) as resp:
                assert (resp.status, await resp.json()) == (200, {"sub": "agent-7"})
            async with client.get(url, params={"access_token": token}) as resp:
                assert resp.status == 401
                assert (await resp.json())["code"] == "token_in_query"
                assert 'error="invalid_request"' in resp.headers["WWW-Authenticate"]
            async with client.get(url) as resp:
                assert (await resp.json())["code"] == "missing_token"
    finally:
        await runner.cleanup()


# --- property: garbage never gets through and never crashes --------------------------------------------


@pytest.fixture(scope="module")
def shared_verifier(key_paths: tuple[str, ...]) -> TokenVerifier:
    return TokenVerifier(IdentitySettings(public_keys=key_paths))


@settings(max_examples=300, deadline=None)
@given(
    token=st.text(max_size=300)
    | st.from_regex(r"[A-Za-z0-9_-]{0,60}\.[A-Za-z0-9_-]{0,60}\.[A-Za-z0-9_-]{0,60}", fullmatch=True)
    | st.builds(
        lambda h, p, sig: f"{segment(h)}.{segment(p)}.{sig}",
        st.dictionaries(
            st.sampled_from(["alg", "kid", "typ", "crit", "jku"]), st.text(max_size=10) | st.none()
        ),
        st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5)),
        st.from_regex(r"[A-Za-z0-9_-]{0,40}", fullmatch=True),
    )
)
def test_arbitrary_input_only_ever_raises_authentication_error(
    shared_verifier: TokenVerifier, token: str
) -> None:
    with pytest.raises(AuthenticationError):
        shared_verifier.verify_token(token, operator=False)

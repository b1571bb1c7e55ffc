"""Authenticate every call: exactly one bearer token, strictly parsed, verified with a known key.

The checks run in this order and each refusal is an ``AuthenticationError`` (401)
with a stable ``code``; the HTTP layer turns it into a response and its
``WWW-Authenticate`` header::

    where the token is      token_in_query, missing_token, multiple_authorization,
                            invalid_authorization_header
    its JOSE header         malformed_token, algorithm_not_allowed, forbidden_header,
                            unsupported_critical_header, unknown_key, keys_unavailable
    its signature           algorithm_not_allowed (key type ≠ alg), invalid_signature
    its claims              missing_claim, invalid_claim, token_expired, token_not_yet_valid,
                            invalid_audience, invalid_issuer, invalid_roles

The header is judged here, before PyJWT sees the token, so that ``alg`` can only
select a key whose algorithm was fixed when the key was loaded (RFC 8725 §3.1):
an HS256 token "signed" with our public key, or ``alg: none``, never reaches a
verification routine. Messages never quote the token, its signature or key material.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jwt
from jwt import exceptions as jwt_errors

from gatekeeper import codes
from gatekeeper.errors import AuthenticationError, ConfigError
from gatekeeper.identity.keys import JwksKeySource, KeySet, VerificationKey
from gatekeeper.identity.settings import IdentitySettings
from gatekeeper.models import Principal

#: Query parameters that would carry a token in a URL, where it leaks into logs and
#: Referer headers (RFC 6750 §5.3); their mere presence is refused.
QUERY_TOKEN_PARAMS = frozenset({"access_token", "token", "jwt", "id_token"})
#: Header parameters that let a token name its own verification key; trusting any of
#: them lets an attacker sign with a key of their choosing.
FORBIDDEN_HEADERS = ("jku", "x5u", "jwk", "x5c")
#: Far above any real token; bounds the work done on unauthenticated input.
MAX_TOKEN_LENGTH = 16 * 1024
REQUIRED_CLAIMS = ("exp", "iss", "aud", "sub")

ERROR_CODES = (
    codes.MISSING_TOKEN,
    codes.INVALID_AUTHORIZATION_HEADER,
    codes.MULTIPLE_AUTHORIZATION,
    codes.TOKEN_IN_QUERY,
    codes.MALFORMED_TOKEN,
    codes.ALGORITHM_NOT_ALLOWED,
    codes.FORBIDDEN_HEADER,
    codes.UNSUPPORTED_CRITICAL_HEADER,
    codes.UNKNOWN_KEY,
    codes.KEYS_UNAVAILABLE,
    codes.INVALID_SIGNATURE,
    codes.MISSING_CLAIM,
    codes.INVALID_CLAIM,
    codes.TOKEN_EXPIRED,
    codes.TOKEN_NOT_YET_VALID,
    codes.INVALID_AUDIENCE,
    codes.INVALID_ISSUER,
    codes.INVALID_ROLES,
)

# RFC 6750 §2.1: the scheme is case-insensitive, the credentials a single b64token.
_BEARER = re.compile(r"(?i:bearer) +([A-Za-z0-9\-._~+/]+=*)")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Sandboxed stdio servers are the principals ``upstream:NAME`` (egress/credentials.py): a token
# naming one, as subject or role, would be granted that server's egress, so none may.
_SERVICE_PREFIX = "upstream:"


class Headers(Protocol):
    """What we need from request headers; aiohttp's ``CIMultiDictProxy`` fits."""

    def getall(self, key: str, default: list[str], /) -> list[str]: ...


def _fail(code: str, message: str) -> AuthenticationError:
    return AuthenticationError(message, code=code)


def bearer_token(headers: Headers, query: Mapping[str, str]) -> str:
    """The one bearer token of a request, refusing every ambiguous or leaky way of sending it."""
    # ";access_token=" parses as the name ";access_token": separators around a name do not hide it.
    if any(name.strip(" ;&").lower() in QUERY_TOKEN_PARAMS for name in query):
        raise _fail(
            codes.TOKEN_IN_QUERY,
            "tokens in the URL query string are refused (they leak into logs); "
            "send the token only in the Authorization: Bearer header",
        )
    values = headers.getall("Authorization", [])
    if not values:
        raise _fail(codes.MISSING_TOKEN, "send a token in the Authorization: Bearer <token> header")
    if len(values) > 1 or "," in values[0]:
        raise _fail(
            codes.MULTIPLE_AUTHORIZATION,
            "send exactly one Authorization header carrying exactly one credential",
        )
    match = _BEARER.fullmatch(values[0].strip(" \t"))
    if match is None:
        raise _fail(
            codes.INVALID_AUTHORIZATION_HEADER,
            "the Authorization header must have the form 'Bearer <token>'",
        )
    return match.group(1)


@dataclass(frozen=True, slots=True)
class _Header:
    alg: str
    kid: str | None


@dataclass(frozen=True, slots=True)
class _CacheEntry:
    principal: Principal
    key: VerificationKey
    from_jwks: bool


class TokenVerifier:
    """Turns a bearer token into a ``Principal`` or refuses it.

    Verified tokens are kept in a bounded LRU cache keyed by the exact token string and
    the listener kind, so the hot path is one dict lookup. This is safe because the
    entry is only ever created after full verification of that exact string (any change
    to header, claims or signature is a different key), it is never used at or past the
    token's ``exp`` (checked on every hit), an agent-listener entry can never answer an
    operator-listener lookup, and an entry whose JWKS key is no longer current is dropped
    and re-verified. Not thread-safe: use one verifier per event loop.
    """

    def __init__(
        self,
        settings: IdentitySettings,
        *,
        keys: KeySet | None = None,
        jwks: JwksKeySource | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._keys = keys if keys is not None else KeySet.from_settings(settings)
        self._jwks = jwks if jwks is not None else JwksKeySource.from_settings(settings)
        self._clock = clock
        self._algorithms = frozenset(settings.algorithms)
        if not self._keys and self._jwks is None:
            raise ConfigError("identity: no verification keys; set identity.public_keys or identity.jwks_url")
        for key in self._keys.values():
            if key.alg not in self._algorithms:
                raise ConfigError(
                    f"identity: a configured {key.alg} key cannot be used because identity.algorithms "
                    f"does not include {key.alg}"
                )
        # A token without a kid is accepted only when there is exactly one key it could mean.
        self._sole_key = (
            next(iter(self._keys.values())) if len(self._keys) == 1 and self._jwks is None else None
        )
        self._roles_path = tuple(settings.roles_claim.split("."))
        self._cache: OrderedDict[tuple[str, bool], _CacheEntry] = OrderedDict()
        self._cache_size = settings.token_cache_size

    async def authenticate(
        self, headers: Headers, query: Mapping[str, str], *, operator: bool = False
    ) -> Principal:
        """Authenticate one request (aiohttp: ``request.headers``, ``request.query``)."""
        return await self.verify(bearer_token(headers, query), operator=operator)

    async def verify(self, token: str, *, operator: bool = False) -> Principal:
        """Verify a bare token, fetching remote keys (rate limited) when its kid is new."""
        cached = self._cached(token, operator)
        if cached is not None:
            return cached
        header = self._check_header(token)
        key, from_jwks = self._local_key(header.kid)
        if key is None:
            if self._jwks is None or header.kid is None:
                raise self._unknown_key(header.kid)
            key, from_jwks = await self._jwks.get_key(header.kid), True
        return self._verify_with_key(token, header, key, from_jwks, operator)

    def verify_token(self, token: str, *, operator: bool) -> Principal:
        """Synchronous verification with the keys at hand (local keys and a fresh JWKS cache)."""
        cached = self._cached(token, operator)
        if cached is not None:
            return cached
        header = self._check_header(token)
        key, from_jwks = self._local_key(header.kid)
        if key is None:
            raise self._unknown_key(header.kid)
        return self._verify_with_key(token, header, key, from_jwks, operator)

    async def aclose(self) -> None:
        if self._jwks is not None:
            await self._jwks.aclose()

    # --- cache --------------------------------------------------------------------------------------

    def _cached(self, token: str, operator: bool) -> Principal | None:
        entry = self._cache.get((token, operator))
        if entry is None:
            return None
        stale = self._clock() >= entry.principal.expires_at or (
            entry.from_jwks and (self._jwks is None or self._jwks.peek(entry.key.kid) != entry.key)
        )
        if stale:
            del self._cache[(token, operator)]
            return None  # full verification decides (and names the reason)
        self._cache.move_to_end((token, operator))
        return entry.principal

    def _remember(self, token: str, operator: bool, entry: _CacheEntry) -> None:
        if self._cache_size <= 0 or self._clock() >= entry.principal.expires_at:
            return  # accepted only thanks to leeway: never cache past exp
        self._cache[(token, operator)] = entry
        self._cache.move_to_end((token, operator))
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    # --- header -------------------------------------------------------------------------------------

    def _check_header(self, token: str) -> _Header:
        if len(token) > MAX_TOKEN_LENGTH:
            raise _malformed("the token is too long")
        parts = token.split(".")
        if len(parts) != 3:
            raise _malformed("expected a signed JWT: three base64url parts separated by dots")
        if not parts[0] or not all(_B64URL.fullmatch(p) for p in parts):
            raise _malformed("the token's parts must be unpadded base64url")
        header = _json_object(parts[0], "header")
        _json_object(parts[1], "payload")  # duplicate claims must not be resolved by guessing
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            allowed = ", ".join(self._settings.algorithms)
            raise _fail(
                codes.ALGORITHM_NOT_ALLOWED,
                f"the token's signing algorithm is not accepted; use one of: {allowed}",
            )
        present = [name for name in FORBIDDEN_HEADERS if name in header]
        if present:
            raise _fail(
                codes.FORBIDDEN_HEADER,
                f"tokens may not name their own verification key (header {', '.join(present)} present)",
            )
        if "crit" in header:
            raise _fail(
                codes.UNSUPPORTED_CRITICAL_HEADER,
                "the token marks header extensions as critical (crit); Gatekeeper supports none",
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _malformed("the token's kid header must be a string")
        return _Header(alg=alg, kid=kid)

    def _local_key(self, kid: str | None) -> tuple[VerificationKey | None, bool]:
        if kid is None:
            return self._sole_key, False
        key = self._keys.get(kid)
        if key is not None:
            return key, False
        if self._jwks is not None:
            return self._jwks.peek(kid), True
        return None, False

    def _unknown_key(self, kid: str | None) -> AuthenticationError:
        if kid is None:
            return _fail(
                codes.UNKNOWN_KEY, "the token has no key id (kid) header; Gatekeeper trusts several keys"
            )
        return _fail(
            codes.UNKNOWN_KEY,
            "the token's key id (kid) does not name a key Gatekeeper trusts; "
            "check that the token comes from the configured issuer",
        )

    # --- signature and claims -----------------------------------------------------------------------

    def _verify_with_key(
        self, token: str, header: _Header, key: VerificationKey, from_jwks: bool, operator: bool
    ) -> Principal:
        if key.alg != header.alg:
            raise _fail(
                codes.ALGORITHM_NOT_ALLOWED,
                f"the token's alg does not match its key, which only verifies {key.alg}",
            )
        s = self._settings
        audience = s.operator_audience if operator else s.audience
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.alg],
                audience=audience,
                issuer=s.issuer,
                leeway=s.leeway_seconds,
                options={
                    "require": list(REQUIRED_CLAIMS),
                    "strict_aud": True,
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt_errors.PyJWTError as exc:
            raise _from_pyjwt(exc, operator=operator) from None
        principal = self._principal(claims, audience, operator)
        self._remember(token, operator, _CacheEntry(principal, key, from_jwks))
        return principal

    def _principal(self, claims: dict[str, Any], audience: str, operator: bool) -> Principal:
        s = self._settings
        # Re-checked here although PyJWT did it: exactness is the whole point (CVE-2024-53861).
        if claims.get("iss") != s.issuer:
            raise _invalid_issuer()
        if claims.get("aud") != audience:
            raise _invalid_audience(operator)
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub or len(sub) > 1024 or _CONTROL.search(sub):
            raise _fail(codes.INVALID_CLAIM, "the sub claim must be a non-empty printable string")
        if sub.startswith(_SERVICE_PREFIX):
            raise _fail(
                codes.INVALID_CLAIM,
                f"subjects starting with {_SERVICE_PREFIX!r} are reserved for stdio servers",
            )
        exp = _number(claims, "exp")
        nbf = _number(claims, "nbf") if "nbf" in claims else None
        now = self._clock()
        if now >= exp + s.leeway_seconds:
            raise _expired()
        if nbf is not None and nbf > now + s.leeway_seconds:
            raise _not_yet_valid()
        jti = claims.get("jti")
        return Principal(
            subject=sub,
            roles=self._roles(claims),
            issuer=s.issuer,
            expires_at=exp,
            operator=operator,
            token_id=jti if isinstance(jti, str) else None,
        )

    def _roles(self, claims: dict[str, Any]) -> tuple[str, ...]:
        """Roles from a claim name or dotted path; a literal top-level name (URL-style) wins."""
        name = self._settings.roles_claim
        value: object
        if name in claims:
            value = claims[name]
        else:
            value = claims
            for part in self._roles_path:
                if not isinstance(value, dict) or part not in value:
                    raise _fail(codes.INVALID_ROLES, f"the token has no {name} claim")
                value = value[part]
        roles: list[str]
        if isinstance(value, str):
            roles = value.split(" ")
            roles = [r for r in roles if r]
        elif isinstance(value, list) and all(isinstance(r, str) and r for r in value):
            roles = value
        else:
            raise _fail(
                codes.INVALID_ROLES,
                f"the {name} claim must be a list of non-empty strings or a space-separated string",
            )
        if any(role.startswith(_SERVICE_PREFIX) for role in roles):
            raise _fail(
                codes.INVALID_ROLES, f"roles starting with {_SERVICE_PREFIX!r} are reserved for stdio servers"
            )
        return tuple(dict.fromkeys(roles))


def _json_object(segment: str, what: str) -> dict[str, Any]:
    """Decode one base64url JSON part, refusing duplicate names (no last-one-wins guessing)."""
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(raw, object_pairs_hook=_no_duplicates)
    except (binascii.Error, ValueError, RecursionError):
        raise _malformed(f"the token's {what} is not valid base64url-encoded JSON") from None
    if not isinstance(value, dict):
        raise _malformed(f"the token's {what} must be a JSON object")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate member name")
    return result


def _number(claims: dict[str, Any], name: str) -> float:
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(codes.INVALID_CLAIM, f"the {name} claim must be a number of seconds since the epoch")
    return float(value)


def _malformed(detail: str) -> AuthenticationError:
    return _fail(codes.MALFORMED_TOKEN, f"malformed token: {detail}")


def _expired() -> AuthenticationError:
    return _fail(codes.TOKEN_EXPIRED, "the token has expired; obtain a new one")


def _not_yet_valid() -> AuthenticationError:
    return _fail(
        codes.TOKEN_NOT_YET_VALID, "the token is not valid yet (nbf/iat in the future); check clocks"
    )


def _invalid_issuer() -> AuthenticationError:
    return _fail(codes.INVALID_ISSUER, "the token was not issued by the configured issuer")


def _invalid_audience(operator: bool) -> AuthenticationError:
    if operator:
        return _fail(codes.INVALID_AUDIENCE, "this listener accepts only operator tokens")
    return _fail(codes.INVALID_AUDIENCE, "the token is not meant for this Gatekeeper (wrong aud)")


def _from_pyjwt(exc: jwt_errors.PyJWTError, *, operator: bool) -> AuthenticationError:
    """Map PyJWT's exceptions to our codes; its messages are not passed on."""
    if isinstance(exc, jwt_errors.InvalidSignatureError):
        return _fail(codes.INVALID_SIGNATURE, "the token's signature does not verify")
    if isinstance(exc, jwt_errors.ExpiredSignatureError):
        return _expired()
    if isinstance(exc, jwt_errors.ImmatureSignatureError):
        return _not_yet_valid()
    if isinstance(exc, jwt_errors.InvalidAudienceError):
        return _invalid_audience(operator)
    if isinstance(exc, jwt_errors.InvalidIssuerError):
        return _invalid_issuer()
    if isinstance(exc, jwt_errors.MissingRequiredClaimError):
        return _fail(codes.MISSING_CLAIM, f"the token lacks the required {exc.claim} claim")
    if isinstance(exc, jwt_errors.InvalidAlgorithmError):
        return _fail(codes.ALGORITHM_NOT_ALLOWED, "the token's signing algorithm is not accepted")
    if isinstance(
        exc, jwt_errors.InvalidSubjectError | jwt_errors.InvalidJTIError | jwt_errors.InvalidIssuedAtError
    ):
        return _fail(codes.INVALID_CLAIM, "the token's sub, jti or iat claim has the wrong type")
    return _malformed("the token could not be decoded")

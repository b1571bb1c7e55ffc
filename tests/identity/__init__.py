"""Test helpers for identity: real keys, valid claims, and hand-crafted (attack) tokens."""

from __future__ import annotations

import base64
import functools
import json
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import get_default_algorithms
from multidict import CIMultiDict, CIMultiDictProxy

from gatekeeper.identity import jwk_thumbprint
from gatekeeper.identity.keys import PrivateKey

ISSUER = "gatekeeper-dev"
AUDIENCE = "gatekeeper"
OPERATOR_AUDIENCE = "gatekeeper-operator"


def rsa_key(slot: int = 0) -> rsa.RSAPrivateKey:
    """The same key for the same slot across the test session (generation is slow)."""
    return _rsa_key(slot)


@functools.cache
def _rsa_key(slot: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key(slot: int = 0) -> ec.EllipticCurvePrivateKey:
    """The same key for the same slot across the test session (generation is slow)."""
    return _ec_key(slot)


@functools.cache
def _ec_key(slot: int) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def ed_key(slot: int = 0) -> ed25519.Ed25519PrivateKey:
    """The same key for the same slot across the test session (generation is slow)."""
    return _ed_key(slot)


@functools.cache
def _ed_key(slot: int) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


ALG_OF = {rsa.RSAPrivateKey: "RS256", ec.EllipticCurvePrivateKey: "ES256", ed25519.Ed25519PrivateKey: "EdDSA"}


def alg_for(key: PrivateKey) -> str:
    return next(alg for cls, alg in ALG_OF.items() if isinstance(key, cls))


def kid_of(key: PrivateKey) -> str:
    return jwk_thumbprint(key.public_key())


def public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_public_pem(key: PrivateKey, path: Path) -> Path:
    path.write_bytes(public_pem(key))
    return path


def claims(**overrides: Any) -> dict[str, Any]:
    """Valid agent claims; pass a value of ``...`` to drop a claim."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "agent-7",
        "roles": ["agent"],
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "jti-1",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(value: dict[str, Any] | str) -> str:
    """A base64url part from a dict, or from raw JSON text (to craft duplicate names)."""
    text = value if isinstance(value, str) else json.dumps(value)
    return b64u(text.encode())


def signed(
    key: PrivateKey,
    payload: dict[str, Any] | str | None = None,
    *,
    header: dict[str, Any] | None = None,
    alg: str | None = None,
) -> str:
    """Sign by hand so any header (crit, jku, a lying alg) can be produced."""
    alg = alg or alg_for(key)
    head = {"alg": alg, "typ": "JWT", "kid": kid_of(key)}
    head.update(header or {})
    head = {k: v for k, v in head.items() if v is not ...}
    signing_input = f"{segment(head)}.{segment(payload if payload is not None else claims())}"
    algorithm = get_default_algorithms()[alg_for(key)]
    signature = algorithm.sign(signing_input.encode(), key)  # type: ignore[arg-type]
    return f"{signing_input}.{b64u(signature)}"


def mint(key: PrivateKey, **overrides: Any) -> str:
    """A valid token via PyJWT itself (the way a real issuer would produce it)."""
    return jwt.encode(claims(**overrides), key, algorithm=alg_for(key), headers={"kid": kid_of(key)})


def bearer(token: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict([("Authorization", f"Bearer {token}")]))


def headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(list(pairs)))

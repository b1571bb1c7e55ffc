"""Identity: who is calling, established from a signed JWT on every call.

The names below load on first use (PEP 562): ``gatekeeper.identity.settings`` is read by the
configuration, and importing it must not pull in the verifier's HTTP client (aiohttp) with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gatekeeper.identity.keys import (
        JwksKeySource,
        KeySet,
        VerificationKey,
        algorithm_for_key,
        ensure_dev_key,
        jwk_thumbprint,
        jwks_document,
        load_private_key_pem,
        load_public_key_pem,
        public_jwk,
    )
    from gatekeeper.identity.minting import issue_token
    from gatekeeper.identity.settings import SUPPORTED_ALGORITHMS, IdentitySettings
    from gatekeeper.identity.verifier import ERROR_CODES, Headers, TokenVerifier, bearer_token

_HOMES = {
    **dict.fromkeys(
        (
            "JwksKeySource",
            "KeySet",
            "VerificationKey",
            "algorithm_for_key",
            "ensure_dev_key",
            "jwk_thumbprint",
            "jwks_document",
            "load_private_key_pem",
            "load_public_key_pem",
            "public_jwk",
        ),
        "keys",
    ),
    "issue_token": "minting",
    "SUPPORTED_ALGORITHMS": "settings",
    "IdentitySettings": "settings",
    **dict.fromkeys(("ERROR_CODES", "Headers", "TokenVerifier", "bearer_token"), "verifier"),
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)


__all__ = [
    "ERROR_CODES",
    "SUPPORTED_ALGORITHMS",
    "Headers",
    "IdentitySettings",
    "JwksKeySource",
    "KeySet",
    "TokenVerifier",
    "VerificationKey",
    "algorithm_for_key",
    "bearer_token",
    "ensure_dev_key",
    "issue_token",
    "jwk_thumbprint",
    "jwks_document",
    "load_private_key_pem",
    "load_public_key_pem",
    "public_jwk",
]

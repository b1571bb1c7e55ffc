"""Identity: who is calling, established from a signed JWT on every call."""

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

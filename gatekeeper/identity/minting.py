"""Mint tokens the local configuration accepts: for ``gatekeeper token issue`` and for tests.

Production tokens come from an identity provider; this exists so the embedded
defaults work out of the box with the generated development key.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from pathlib import Path

import jwt

from gatekeeper.identity.keys import algorithm_for_key, jwk_thumbprint, load_private_key_pem
from gatekeeper.identity.settings import IdentitySettings

_DEFAULTS = IdentitySettings()


def issue_token(
    private_key_path: Path,
    *,
    subject: str,
    roles: Sequence[str],
    operator: bool = False,
    ttl_seconds: int = 3600,
    issuer: str = "gatekeeper-dev",
    audience: str | None = None,
) -> str:
    """Sign a token with the key at ``private_key_path`` (RS256 for the RSA development key).

    ``audience`` defaults to the operator audience when ``operator`` is set, else the agent
    audience: which listener accepts the token is decided by its audience alone.
    """
    if not subject:
        raise ValueError("subject must not be empty")
    if isinstance(roles, str) or not all(isinstance(r, str) and r for r in roles):
        raise ValueError("roles must be a sequence of non-empty strings")
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    key = load_private_key_pem(private_key_path)
    public = key.public_key()
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": subject,
        "aud": audience or (_DEFAULTS.operator_audience if operator else _DEFAULTS.audience),
        "roles": list(roles),
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
        "jti": secrets.token_urlsafe(16),
    }
    return jwt.encode(
        claims,
        key,
        algorithm=algorithm_for_key(public),
        headers={"kid": jwk_thumbprint(public), "typ": "JWT"},
    )

"""How tokens are verified: who may issue them, for which audience, with which keys.

Validated on construction so a dangerous configuration (a symmetric or ``none``
algorithm, a JWKS fetched over plain HTTP from another host) stops start-up
instead of weakening every later check.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from gatekeeper.errors import ConfigError

#: The only algorithms Gatekeeper can ever verify, each bound to one key type.
#: Symmetric (HS*) and ``none`` are absent on purpose: a verifier holding only
#: public keys must never accept a MAC, or the public key becomes the secret.
SUPPORTED_ALGORITHMS: frozenset[str] = frozenset({"RS256", "ES256", "EdDSA"})


@dataclass(frozen=True, slots=True)
class IdentitySettings:
    """The ``identity`` section of the configuration."""

    issuer: str = "gatekeeper-dev"
    audience: str = "gatekeeper"
    operator_audience: str = "gatekeeper-operator"
    algorithms: tuple[str, ...] = ("RS256", "ES256", "EdDSA")
    public_keys: tuple[str, ...] = ()
    jwks_url: str | None = None
    jwks_cache_seconds: float = 300
    jwks_min_refresh_interval: float = 30
    #: Refresh the JWKS in the background once the cached set is this fraction of
    #: ``jwks_cache_seconds`` old (1 = only when it has expired, and callers wait).
    jwks_refresh_ahead: float = 0.8
    roles_claim: str = "roles"
    leeway_seconds: float = 0
    token_cache_size: int = 10000
    dev_key_path: str | None = None

    def __post_init__(self) -> None:
        if not self.issuer:
            raise ConfigError("identity.issuer must not be empty")
        if not self.audience or not self.operator_audience:
            raise ConfigError("identity.audience and identity.operator_audience must not be empty")
        if self.audience == self.operator_audience:
            # Separate audiences are what keeps an agent token off the operator listener.
            raise ConfigError("identity.audience and identity.operator_audience must differ")
        if not self.algorithms:
            raise ConfigError("identity.algorithms must list at least one of RS256, ES256, EdDSA")
        for alg in self.algorithms:
            if alg not in SUPPORTED_ALGORITHMS:
                raise ConfigError(
                    f"identity.algorithms: {alg!r} is not allowed; only asymmetric RS256, ES256 "
                    "and EdDSA are accepted (HS* and none would let anyone holding the public "
                    "key forge tokens)"
                )
        if not self.roles_claim or any(not part for part in self.roles_claim.split(".")):
            raise ConfigError("identity.roles_claim must be a claim name or a dotted path like a.b")
        for name in ("jwks_cache_seconds", "jwks_min_refresh_interval"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"identity.{name} must be greater than 0")
        if not 0 < self.jwks_refresh_ahead <= 1:
            raise ConfigError(
                "identity.jwks_refresh_ahead must be greater than 0 and at most 1 "
                "(a fraction of identity.jwks_cache_seconds)"
            )
        if not 0 <= self.leeway_seconds <= 300:
            raise ConfigError("identity.leeway_seconds must be between 0 and 300")
        if self.token_cache_size < 0:
            raise ConfigError("identity.token_cache_size must be 0 (disabled) or more")
        if self.jwks_url is not None:
            _check_jwks_url(self.jwks_url)


def _check_jwks_url(url: str) -> None:
    """Keys fetched over plain HTTP could be swapped in transit; allow it only on loopback."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return
    raise ConfigError(
        "identity.jwks_url must be an https:// URL (plain http:// is accepted only for loopback hosts)"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

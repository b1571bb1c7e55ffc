"""The ``approvals`` section of the configuration."""

from __future__ import annotations

from dataclasses import dataclass

from .risk import DEFAULT_HIGH_RISK


@dataclass(frozen=True, slots=True)
class ApprovalSettings:
    store: str = "sqlite"
    postgres_schema: str = "gatekeeper"  # lets several deployments (or tests) share one database
    default_wait_seconds: float = 15.0
    max_wait_seconds: float = 300.0
    ttl_seconds: float = 3600.0
    # For this long after operators deny a call, the same call re-sent by the same principal gets
    # that denial (and its comment) back instead of a new approval; 0 asks again at once.
    denial_stands_seconds: float = 3600.0
    # How long an approved call may wait to be used (its caller re-sends it) before it expires.
    approved_ttl_seconds: float = 3600.0
    max_pending_per_principal: int = 20
    max_grant_minutes: float = 24 * 60
    sweep_interval_seconds: float = 1.0
    progress_interval_seconds: float = 5.0
    webhook_url: str | None = None
    webhook_secret: bytes | None = None
    # Capability patterns whose approval needs a comment (as does any call needing two operators).
    high_risk: tuple[str, ...] = DEFAULT_HIGH_RISK
    # The console's address as operators reach it, for links to one approval in webhooks
    # (None: the operator listener's own address).
    console_url: str | None = None

"""Exceptions the client raises, one class per thing a caller would handle differently.

Every failure is a ``GatekeeperError``, so ``except GatekeeperError`` catches them all::

    GatekeeperError                 anything else (500, an unexpected status, a non-JSON body)
    ├── CallDenied                  403: policy refused the call; str(exc) is meant for the model
    ├── CallPending                 202: held for a human; re-send the identical call later
    ├── AuthenticationFailed        401: bad, expired or missing token
    ├── BadRequest                  400: the request was malformed or ambiguous
    │   └── PayloadTooLarge         413
    ├── Forbidden                   403 (operator API): authenticated but not allowed, e.g. self_approval
    ├── NotFound                    404: no such approval, grant or tool
    │   └── UnknownTool             404 from /v1/invoke: no such tool
    ├── Conflict                    409 (operator API): not_pending, already_voted, approval_expired
    ├── UpstreamFailed              502: the tool could not be reached
    │   └── UpstreamTimeout         504: the tool did not answer in time
    ├── Unavailable                 503: Gatekeeper is starting up or shutting down
    └── GatekeeperUnreachable       no HTTP answer at all (status is None)
        └── GatekeeperTimeout       no answer within the client's timeout

``CallPending`` is an exception, not a return value, so that code which only expects results
cannot mistake "not yet" for an answer.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationFailed",
    "BadRequest",
    "CallDenied",
    "CallPending",
    "Conflict",
    "Forbidden",
    "GatekeeperError",
    "GatekeeperTimeout",
    "GatekeeperUnreachable",
    "NotFound",
    "PayloadTooLarge",
    "Unavailable",
    "UnknownTool",
    "UpstreamFailed",
    "UpstreamTimeout",
]


class GatekeeperError(Exception):
    """Base class: the gate did not return a result.

    ``status`` is the HTTP status (None when no response arrived), ``code`` the stable
    machine-readable code from the body, ``body`` the parsed JSON body (empty when there was none).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "error",
        decision_id: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.decision_id = decision_id
        self.body: dict[str, Any] = body if body is not None else {}

    def __str__(self) -> str:
        where = f"HTTP {self.status}, " if self.status is not None else ""
        return f"{self.message} ({where}code {self.code})"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, status={self.status!r}, "
            f"code={self.code!r}, decision_id={self.decision_id!r})"
        )


class CallDenied(GatekeeperError):
    """Policy refused the call. Not retryable as is: the same call gets the same answer.

    ``str(exc)`` is written to be handed back to the model as the tool's answer, so it can
    choose another way to do its task.
    """

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = 403,
        code: str = "denied",
        decision_id: str | None = None,
        rule: str | None = None,
        capability: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(reason, status=status, code=code, decision_id=decision_id, body=body)
        self.reason = reason
        self.rule = rule
        self.capability = capability

    def __str__(self) -> str:
        details = [f"code: {self.code}"]
        if self.rule:
            details.append(f"rule: {self.rule}")
        if self.capability:
            details.append(f"capability: {self.capability}")
        if self.decision_id:
            details.append(f"decision: {self.decision_id}")
        return f"Gatekeeper denied this tool call: {self.reason} ({'; '.join(details)})"


class CallPending(GatekeeperError):
    """The call is held for a human and was not run (yet).

    Re-send the *identical* call (same tool, same arguments, same token) after approval: an
    approved approval for exactly that call is used once. Or pass ``wait=`` to wait longer.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = 202,
        code: str = "pending",
        decision_id: str | None = None,
        approval_id: str | None = None,
        expires_at: Any = None,
        reason: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code, decision_id=decision_id, body=body)
        self.approval_id = approval_id
        # Passed through as the server sent it (a timestamp string or number), never reinterpreted.
        self.expires_at = expires_at
        self.reason = reason

    def __str__(self) -> str:
        parts = [f"approval: {self.approval_id}"]
        if self.expires_at is not None:
            parts.append(f"expires at: {self.expires_at}")
        why = f" ({self.reason})" if self.reason else ""
        return (
            f"Gatekeeper is holding this tool call for human approval{why}; it has not run. "
            f"Re-send the identical call later to run it once approved ({'; '.join(parts)})"
        )


class AuthenticationFailed(GatekeeperError):
    """401: the token was missing, malformed, expired or not accepted. Get a new token."""


class BadRequest(GatekeeperError):
    """400: Gatekeeper could not parse the request unambiguously; fix it, don't retry as is."""


class PayloadTooLarge(BadRequest):
    """413: the request body exceeds Gatekeeper's limit."""


class Forbidden(GatekeeperError):
    """403 from the operator API: the token is valid but may not do this (``code`` says why, e.g.
    ``self_approval``: nobody approves a call they requested themselves)."""


class NotFound(GatekeeperError):
    """404: no such thing (an approval or grant id on the operator API, a tool on ``/v1/invoke``)."""


class Conflict(GatekeeperError):
    """409 from the operator API: the request is valid but the approval is no longer in a state
    that allows it (``not_pending``, ``already_voted``, ``approval_expired``). Re-read, don't retry."""


class UnknownTool(NotFound):
    """404: Gatekeeper has no tool by that name."""


class UpstreamFailed(GatekeeperError):
    """502: the call was allowed but the tool could not be reached or answered badly."""


class UpstreamTimeout(UpstreamFailed):
    """504: the call was allowed and sent, but the tool did not answer in time (it may have run)."""


class Unavailable(GatekeeperError):
    """503: Gatekeeper is not ready or shutting down; retrying later is reasonable."""


class GatekeeperUnreachable(GatekeeperError):
    """No HTTP answer: connection refused, DNS failure, connection dropped mid-response.

    When the connection was refused the call certainly did not run; when it dropped later,
    the outcome is unknown.
    """


class GatekeeperTimeout(GatekeeperUnreachable):
    """No complete answer within the client's timeout; the call may or may not have run."""

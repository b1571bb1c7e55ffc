"""One error hierarchy for everything Gatekeeper refuses or fails at.

Each error carries the HTTP status and the stable machine-readable ``code`` (a constant of
``gatekeeper.codes``) it maps to at the boundary; the message is for a person and must say
what to do::

    GatekeeperError (500 internal_error)
    ├── AuthenticationError (401 invalid_token and the other auth codes; sends WWW-Authenticate)
    ├── RequestError (400 bad_request)
    │   ├── RequestTimeout (408 body_timeout)
    │   └── SchemaError (400 invalid_arguments)
    ├── PayloadTooLarge (413 payload_too_large)
    ├── UnknownTool (404 unknown_tool)
    ├── NotFound (404 not_found)
    ├── UpstreamError (502 upstream_unreachable / upstream_error)
    │   └── UpstreamTimeout (504 upstream_timeout)
    ├── Unavailable (503 not_ready)
    │   └── BudgetUnavailable (503 budget_unavailable: the call is refused)
    ├── AuditBacklogFull (503 audit_backlog)
    ├── AuditClosed (503 shutting_down)
    ├── WrittenCodeUnavailable (503 written_code_unavailable)
    ├── ApprovalError (409 approval_conflict, and the queue's other refusals)
    ├── ApprovalForbidden (403 self_approval)
    ├── PendingCapExceeded (429 too_many_pending_approvals)
    ├── InspectionError (fails closed: the call is denied, code inspector_error)
    ├── PolicyError (fails closed: policy could not be loaded or evaluated)
    ├── ConfigError (stops start-up; names the file and key)
    └── ListenError (stops start-up: listen_failed / port_in_use)

Refusals by policy are not errors: they are Decisions (see ``models``).
"""

from __future__ import annotations

from typing import Any

from gatekeeper import codes


class GatekeeperError(Exception):
    status: int = 500
    code: str = codes.INTERNAL_ERROR

    def __init__(self, message: str, *, code: str | None = None, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.detail = detail

    def body(self) -> dict[str, Any]:
        """The JSON body sent to the client; never includes internals."""
        return {"code": self.code, "message": self.message, **self.detail}


class AuthenticationError(GatekeeperError):
    status = 401
    code = codes.INVALID_TOKEN

    def www_authenticate(self) -> str:
        # RFC 6750 §3: the error attribute uses its fixed vocabulary; our code goes alongside.
        error = (
            "invalid_request"
            if self.code in {codes.MISSING_TOKEN, codes.TOKEN_IN_QUERY, codes.MULTIPLE_AUTHORIZATION}
            else "invalid_token"
        )
        desc = self.message.replace('"', "'")
        return f'Bearer realm="gatekeeper", error="{error}", error_description="{desc}"'


class RequestError(GatekeeperError):
    status = 400
    code = codes.BAD_REQUEST


class RequestTimeout(RequestError):
    status = 408
    code = codes.BODY_TIMEOUT


class SchemaError(RequestError):
    code = codes.INVALID_ARGUMENTS


class PayloadTooLarge(GatekeeperError):
    status = 413
    code = codes.PAYLOAD_TOO_LARGE


class UnknownTool(GatekeeperError):
    status = 404
    code = codes.UNKNOWN_TOOL


class NotFound(GatekeeperError):
    status = 404
    code = codes.NOT_FOUND


class UpstreamError(GatekeeperError):
    status = 502
    code = codes.UPSTREAM_UNREACHABLE


class UpstreamTimeout(UpstreamError):
    status = 504
    code = codes.UPSTREAM_TIMEOUT


class Unavailable(GatekeeperError):
    status = 503
    code = codes.NOT_READY


class InspectionError(GatekeeperError):
    status = 403
    code = codes.INSPECTOR_ERROR


class PolicyError(GatekeeperError):
    status = 403
    code = codes.POLICY_ERROR


class ConfigError(GatekeeperError):
    code = codes.CONFIG_ERROR


class ListenError(GatekeeperError):
    """A listener could not bind its address; stops start-up."""

    code = codes.LISTEN_FAILED


class AuditBacklogFull(GatekeeperError):
    """The audit writer is ``max_queue`` records behind: refuse the call (fail closed)."""

    status = 503
    code = codes.AUDIT_BACKLOG


class AuditClosed(GatekeeperError):
    status = 503
    code = codes.SHUTTING_DOWN


class ApprovalError(GatekeeperError):
    """A vote or grant operation the queue refuses (bad state, self-approval, double vote...)."""

    status = 409
    code = codes.APPROVAL_CONFLICT


class ApprovalForbidden(GatekeeperError):
    """The operator may not cast this vote (they made the call themselves)."""

    status = 403
    code = codes.SELF_APPROVAL


class PendingCapExceeded(GatekeeperError):
    status = 429
    code = codes.TOO_MANY_PENDING_APPROVALS


class WrittenCodeUnavailable(GatekeeperError):
    """The written-code store could not be read or written: the call is refused."""

    status = 503
    code = codes.WRITTEN_CODE_UNAVAILABLE


class BudgetUnavailable(Unavailable):
    """The budget store cannot be reached or answered nonsense: the call must be refused."""

    code = codes.BUDGET_UNAVAILABLE

"""One error hierarchy for everything Gatekeeper refuses or fails at.

Each error carries the HTTP status and the stable machine-readable ``code`` it
maps to at the boundary; the message is for a person and must say what to do::

    GatekeeperError (500 internal_error)
    ├── AuthenticationError (401, sends WWW-Authenticate)
    ├── RequestError (400)
    │   └── SchemaError (400 invalid_arguments)
    ├── PayloadTooLarge (413 payload_too_large)
    ├── UnknownTool (404 unknown_tool)
    ├── NotFound (404 not_found)
    ├── UpstreamError (502 upstream_unreachable / upstream_error)
    │   └── UpstreamTimeout (504 upstream_timeout)
    ├── Unavailable (503 shutting_down / not_ready)
    ├── InspectionError (fails closed: the call is denied, code inspector_error)
    ├── PolicyError (fails closed: policy could not be loaded or evaluated)
    └── ConfigError (stops start-up; names the file and key)

Refusals by policy are not errors: they are Decisions (see ``models``).
"""

from __future__ import annotations

from typing import Any


class GatekeeperError(Exception):
    status: int = 500
    code: str = "internal_error"

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
    code = "invalid_token"

    def www_authenticate(self) -> str:
        # RFC 6750 §3: the error attribute uses its fixed vocabulary; our code goes alongside.
        error = (
            "invalid_request"
            if self.code in {"missing_token", "token_in_query", "multiple_authorization"}
            else "invalid_token"
        )
        desc = self.message.replace('"', "'")
        return f'Bearer realm="gatekeeper", error="{error}", error_description="{desc}"'


class RequestError(GatekeeperError):
    status = 400
    code = "bad_request"


class RequestTimeout(RequestError):
    status = 408
    code = "body_timeout"


class SchemaError(RequestError):
    code = "invalid_arguments"


class PayloadTooLarge(GatekeeperError):
    status = 413
    code = "payload_too_large"


class UnknownTool(GatekeeperError):
    status = 404
    code = "unknown_tool"


class NotFound(GatekeeperError):
    status = 404
    code = "not_found"


class UpstreamError(GatekeeperError):
    status = 502
    code = "upstream_unreachable"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class Unavailable(GatekeeperError):
    status = 503
    code = "not_ready"


class InspectionError(GatekeeperError):
    status = 403
    code = "inspector_error"


class PolicyError(GatekeeperError):
    status = 403
    code = "policy_error"


class ConfigError(GatekeeperError):
    code = "config_error"

"""The stable machine-readable ``code`` of every answer Gatekeeper gives: one name per code.

A code is an outside contract (agents, hooks and dashboards branch on it), listed with its
meaning in ``docs/errors.md``; a test holds this module, the package and that page together.
Code that produces an answer names the constant here, never a string of its own.
"""

from __future__ import annotations

from typing import Final

# -- Decisions: what the gate answered a call (``outcome`` says allowed, denied or pending) -----
ALLOWED: Final = "allowed"
POLICY_DENIED: Final = "policy_denied"
NOT_ALLOWED: Final = "not_allowed"
APPROVAL_REQUIRED: Final = "approval_required"
APPROVAL_PENDING: Final = "approval_pending"
APPROVED: Final = "approved"
GRANTED: Final = "granted"
APPROVAL_DENIED: Final = "approval_denied"
APPROVAL_EXPIRED: Final = "approval_expired"
APPROVAL_USED: Final = "approval_used"
APPROVAL_LOST: Final = "approval_lost"
APPROVAL_UNAVAILABLE: Final = "approval_unavailable"
APPROVAL_TIMEOUT: Final = "approval_timeout"
TOO_MANY_PENDING_APPROVALS: Final = "too_many_pending_approvals"
BUDGET_EXCEEDED: Final = "budget_exceeded"
BUDGET_UNAVAILABLE: Final = "budget_unavailable"
TOOL_DEFINITION_CHANGED: Final = "tool_definition_changed"
FILES_CHANGED: Final = "files_changed"
INSPECTOR_ERROR: Final = "inspector_error"
POLICY_ERROR: Final = "policy_error"

# -- Authentication (401, with WWW-Authenticate) ------------------------------------------------
INVALID_TOKEN: Final = "invalid_token"
MISSING_TOKEN: Final = "missing_token"
INVALID_AUTHORIZATION_HEADER: Final = "invalid_authorization_header"
MULTIPLE_AUTHORIZATION: Final = "multiple_authorization"
TOKEN_IN_QUERY: Final = "token_in_query"
MALFORMED_TOKEN: Final = "malformed_token"
ALGORITHM_NOT_ALLOWED: Final = "algorithm_not_allowed"
FORBIDDEN_HEADER: Final = "forbidden_header"
UNSUPPORTED_CRITICAL_HEADER: Final = "unsupported_critical_header"
UNKNOWN_KEY: Final = "unknown_key"
KEYS_UNAVAILABLE: Final = "keys_unavailable"
INVALID_SIGNATURE: Final = "invalid_signature"
MISSING_CLAIM: Final = "missing_claim"
INVALID_CLAIM: Final = "invalid_claim"
TOKEN_EXPIRED: Final = "token_expired"
TOKEN_NOT_YET_VALID: Final = "token_not_yet_valid"
INVALID_AUDIENCE: Final = "invalid_audience"
INVALID_ISSUER: Final = "invalid_issuer"
INVALID_ROLES: Final = "invalid_roles"

# -- The request itself (HTTP and body parsing) -------------------------------------------------
BAD_REQUEST: Final = "bad_request"
HEADER_TIMEOUT: Final = "header_timeout"
HEADER_TOO_LARGE: Final = "header_too_large"
BAD_HTTP_METHOD: Final = "bad_http_method"
MALFORMED_HTTP: Final = "malformed_http"
HANDLER_TIMEOUT: Final = "handler_timeout"
BODY_TIMEOUT: Final = "body_timeout"
INCOMPLETE_BODY: Final = "incomplete_body"
PAYLOAD_TOO_LARGE: Final = "payload_too_large"
UNSUPPORTED_CONTENT_TYPE: Final = "unsupported_content_type"
AMBIGUOUS_CONTENT_TYPE: Final = "ambiguous_content_type"
INVALID_JSON: Final = "invalid_json"
DUPLICATE_KEY: Final = "duplicate_key"
INVALID_UNICODE: Final = "invalid_unicode"
INVALID_NUMBER: Final = "invalid_number"
NUMBER_OUT_OF_RANGE: Final = "number_out_of_range"
NESTING_TOO_DEEP: Final = "nesting_too_deep"
INVALID_REQUEST: Final = "invalid_request"
UNKNOWN_FIELD: Final = "unknown_field"
INVALID_ARGUMENTS: Final = "invalid_arguments"
INVALID_QUERY: Final = "invalid_query"
UNKNOWN_TOOL: Final = "unknown_tool"
NOT_FOUND: Final = "not_found"
UNKNOWN_UPSTREAM: Final = "unknown_upstream"
METHOD_NOT_ALLOWED: Final = "method_not_allowed"
HTTP_ERROR: Final = "http_error"

# -- Upstreams ----------------------------------------------------------------------------------
UPSTREAM_UNREACHABLE: Final = "upstream_unreachable"
UPSTREAM_ERROR: Final = "upstream_error"
UPSTREAM_TIMEOUT: Final = "upstream_timeout"
UPSTREAM_RESPONSE_TOO_LARGE: Final = "upstream_response_too_large"
UPSTREAM_MISCONFIGURED: Final = "upstream_misconfigured"

# -- MCP (in a JSON-RPC error's ``data.code``) ------------------------------------------------------
BATCH_NOT_SUPPORTED: Final = "batch_not_supported"
HEADER_MISMATCH: Final = "header_mismatch"
SESSION_NOT_FOUND: Final = "session_not_found"  # 404: unknown, or another principal's session
UNKNOWN_EVENT_ID: Final = "unknown_event_id"  # Last-Event-ID not relayed to this caller's session
UNREACHABLE: Final = "unreachable"  # the stdio bridge could not reach Gatekeeper

# -- Gatekeeper's own state ---------------------------------------------------------------------
INTERNAL_ERROR: Final = "internal_error"
NOT_READY: Final = "not_ready"
SHUTTING_DOWN: Final = "shutting_down"
AUDIT_UNAVAILABLE: Final = "audit_unavailable"
AUDIT_BACKLOG: Final = "audit_backlog"
CONFIG_ERROR: Final = "config_error"
LISTEN_FAILED: Final = "listen_failed"
PORT_IN_USE: Final = "port_in_use"
STORE_CLOSED: Final = "store_closed"
STORE_ERROR: Final = "store_error"
STORE_UNAVAILABLE: Final = "store_unavailable"
WRITTEN_CODE_UNAVAILABLE: Final = "written_code_unavailable"
AUDIT_FIELD_ERROR: Final = "audit_field_error"  # a record that could not be built, kept as such

# -- Operators: approvals and tool pins ---------------------------------------------------------
APPROVAL_NOT_FOUND: Final = "approval_not_found"
APPROVAL_CONFLICT: Final = "approval_conflict"
SELF_APPROVAL: Final = "self_approval"
NOT_PENDING: Final = "not_pending"
ALREADY_VOTED: Final = "already_voted"
ALREADY_REVOKED: Final = "already_revoked"
INVALID_STATE: Final = "invalid_state"
INVALID_VERDICT: Final = "invalid_verdict"
INVALID_GRANT: Final = "invalid_grant"
COMMENT_REQUIRED: Final = "comment_required"
DIGEST_MISMATCH: Final = "digest_mismatch"
TOOL_PINNED: Final = "tool_pinned"

# -- The egress gate (HTTP forward proxy; also in the X-Gatekeeper-Code header) -----------------
MISSING_CREDENTIAL: Final = "missing_credential"
INVALID_CREDENTIAL: Final = "invalid_credential"
BAD_TARGET: Final = "bad_target"
UNSUPPORTED_FRAMING: Final = "unsupported_framing"
HEAD_TOO_LARGE: Final = "head_too_large"
HEAD_TIMEOUT: Final = "head_timeout"
INCOMPLETE_REQUEST: Final = "incomplete_request"
RESOLVE_FAILED: Final = "resolve_failed"
CONNECT_FAILED: Final = "connect_failed"
TUNNEL_REFUSED: Final = "tunnel_refused"
EGRESS_REFUSALS_SPENT: Final = "egress_refusals_spent"

# -- The runner's tools (in the tool's own answer: ``{"error": {"code": ...}}``) ----------------
OUTSIDE_WORKSPACE: Final = "outside_workspace"
IS_A_DIRECTORY: Final = "is_a_directory"
NOT_A_FILE: Final = "not_a_file"
HARD_LINK: Final = "hard_link"
SYMLINK: Final = "symlink"
TOO_LARGE: Final = "too_large"
OS_ERROR: Final = "os_error"
EGRESS_REFUSED: Final = "egress_refused"
FETCH_FAILED: Final = "fetch_failed"

#: Every code above.
ALL: Final = frozenset(
    value for name, value in dict(globals()).items() if name.isupper() and isinstance(value, str)
)

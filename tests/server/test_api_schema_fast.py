"""Request bodies checked through the compiled fast path give exactly jsonschema's verdicts."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from gatekeeper.errors import RequestError
from gatekeeper.server import api_schema
from gatekeeper.server.api_schema import CALL_REQUEST, EXPLAIN_REQUEST, VERDICT_REQUEST, check_object

BODIES: list[Any] = [
    {"tool": "file.read", "arguments": {"path": "README.md"}},
    {"tool": "file.read", "arguments": {}, "extra": 1},
    {"tool": 3, "arguments": {}},
    {"tool": "file.read", "arguments": []},
    {"arguments": {}},
    {"tool": "file.read", "arguments": {"x": float("nan")}},
    {"tool": "", "arguments": {}},
    {"verdict": "approve", "comment": "ok"},
    {"verdict": "maybe"},
    [],
    "text",
]


@pytest.mark.parametrize("schema", [CALL_REQUEST, EXPLAIN_REQUEST, VERDICT_REQUEST])
@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_the_fast_path_agrees_with_jsonschema(schema: dict[str, Any], body: Any) -> None:
    assert api_schema._fast(schema) is not None  # these schemas are on the fast path
    valid = not list(Draft202012Validator(schema).iter_errors(body)) and isinstance(body, dict)
    try:
        check_object(schema, body)
        accepted = True
    except RequestError:
        accepted = False
    assert accepted == valid, body

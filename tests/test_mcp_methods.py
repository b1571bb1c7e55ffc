"""The MCP method table: what each method's parameters name, as capabilities (no I/O)."""

from __future__ import annotations

import pytest

from gatekeeper.errors import SchemaError
from gatekeeper.inspectors import INSPECTORS, InspectContext
from gatekeeper.mcp_methods import method_arguments, method_capabilities, method_tool, uri_capabilities

CTX = InspectContext()


def names(uri: str) -> set[str]:
    return {c.name for c in uri_capabilities(uri, INSPECTORS, CTX)}


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("file:///workspace/README.md", {"fs.read:/workspace/README.md"}),
        ("file://localhost/workspace/a%20b.txt", {"fs.read:/workspace/a b.txt"}),
        ("file:///workspace/../root/.ssh/id_rsa", {"fs.read:/root/.ssh/id_rsa", "cred.ssh"}),
        ("file:///root/%2essh/id_rsa", {"fs.read:/root/.ssh/id_rsa", "cred.ssh"}),
        ("file://evil.example/etc/passwd", {"fs.opaque"}),
        ("file:///workspace/x?y=1", {"fs.opaque"}),
        ("file:workspace/x", {"fs.opaque"}),
        ("https://pypi.org/simple/", {"net.egress:pypi.org:443"}),
        ("note://today", {"mcp.resource:note://today"}),
        ("no-scheme", {"url.opaque"}),
        ("file:///workspace/a\nb", {"url.opaque"}),
    ],
)
def test_resource_uris(uri: str, expected: set[str]) -> None:
    assert expected <= names(uri), names(uri)


def test_prompts_completion_and_unmapped_methods() -> None:
    def caps(method: str, params: object) -> list[str]:
        found = method_capabilities(method_tool(method), method_arguments("up", params), INSPECTORS, CTX)
        return [c.name for c in found]

    assert caps("prompts/get", {"name": "review"}) == ["mcp.prompt:review"]
    assert caps("completion/complete", {"ref": {"type": "ref/prompt", "name": "p"}}) == ["mcp.prompt:p"]
    assert "cred.ssh" in caps(
        "completion/complete", {"ref": {"type": "ref/resource", "uri": "file:///root/.ssh/id_rsa"}}
    )
    template = {"type": "ref/resource", "uri": "file:///workspace/{+dir}/{file}"}
    filled = {"argument": {"name": "file", "value": "x"}, "context": {"arguments": {"dir": "../root/.ssh"}}}
    assert "cred.ssh" in caps("completion/complete", {"ref": template, **filled})
    assert "cred.ssh" not in caps(
        "completion/complete", {"ref": template, "argument": {"name": "file", "value": "x"}}
    )
    assert caps("brand/new", {"anything": 1}) == []  # decided by mcp.method:brand/new alone
    for method, params in [
        ("resources/read", {}),
        ("resources/read", {"uri": 3}),
        ("prompts/get", {"name": ""}),
        ("completion/complete", {"ref": {"type": "ref/other"}}),
    ]:
        with pytest.raises(SchemaError):
            caps(method, params)

"""/openapi.json on both listeners: valid OpenAPI 3.1, built from the schemas the handlers
validate with, covering every route; a bounded schemathesis run against the running server
finds no 5xx and no answer outside the document."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from openapi_spec_validator import validate

from gatekeeper.app import Gatekeeper
from gatekeeper.server.api_schema import CALL_REQUEST, VERDICT_REQUEST, openapi_document

from ..helpers import H100, invoke, mint, ops_auth

# Served by the listeners but not JSON APIs: the console's page and files, and MCP.
NOT_IN_THE_DOCUMENT = {"/", "/console/{name}", "/console/approvals/{id}", "/mcp/{upstream}"}  # pages, MCP


async def served(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.get(f"{url}/openapi.json") as resp:
        assert resp.status == 200 and resp.content_type == "application/json"
        body: dict[str, Any] = await resp.json()
        return body


def routes(gk: Gatekeeper, index: int) -> set[str]:
    app = gk._runners[index].app
    paths = {
        re.sub(r"\{(\w+):[^}]+\}", r"{\1}", r.resource.canonical) for r in app.router.routes() if r.resource
    }
    return paths - NOT_IN_THE_DOCUMENT


async def test_both_documents_are_valid_and_cover_every_route(
    gk: Gatekeeper, http: aiohttp.ClientSession
) -> None:
    for index, (listener, url) in enumerate((("agent", gk.agent_url), ("operator", gk.operator_url))):
        document = await served(http, url)
        validate(document)  # raises on anything that is not valid OpenAPI 3.1
        assert document == json.loads(json.dumps(openapi_document(listener)))  # type: ignore[arg-type]
        assert set(document["paths"]) == routes(gk, index), listener
    agent = openapi_document("agent")
    # The very objects the handlers validate with: the document cannot drift from them.
    assert agent["paths"]["/v1/invoke"]["post"]["requestBody"]["content"]["application/json"]["schema"] is (
        CALL_REQUEST
    )
    operator = openapi_document("operator")["paths"]["/v1/approvals/{id}/{verdict}"]["post"]
    assert operator["requestBody"]["content"]["application/json"]["schema"] is VERDICT_REQUEST


async def test_what_the_schema_refuses_the_handler_refuses(
    gk: Gatekeeper, http: aiohttp.ClientSession
) -> None:
    token = mint(gk)
    for body, code in (
        ({"tool": "file.read", "arguments": {}, "extra": 1}, "unknown_field"),
        ({"tool": "", "arguments": {}}, "invalid_request"),
        ({"tool": "file.read", "arguments": []}, "invalid_request"),
        ([], "invalid_request"),
    ):
        async with http.post(
            f"{gk.agent_url}/v1/decide", json=body, headers={"Authorization": f"Bearer {token}"}
        ) as resp:
            assert (resp.status, (await resp.json())["code"]) == (400, code), body


SCHEMATHESIS = shutil.which("schemathesis") or shutil.which("st")


@pytest.mark.skipif(SCHEMATHESIS is None, reason="pip install -e '.[dev]' installs schemathesis")
async def test_schemathesis_finds_no_5xx_and_no_answer_outside_the_document(
    gk: Gatekeeper, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    assert SCHEMATHESIS is not None
    # Something to find: a held call and a decided one on the operator side.
    await invoke(http, gk, "compute.provision", H100, mint(gk), {"Prefer": "wait=0"})
    runs = (
        (gk.agent_url, f"Authorization: Bearer {mint(gk)}"),
        (gk.operator_url, f"Authorization: {ops_auth(gk)['Authorization']}"),
    )
    for url, header in runs:
        proc = await asyncio.create_subprocess_exec(
            SCHEMATHESIS,
            "run",
            f"{url}/openapi.json",
            "--header",
            header,
            "--max-examples",
            "12",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--exclude-path",
            "/v1/events",  # an endless event stream
            "--request-timeout",
            "20",
            "--generation-deterministic",
            "--phases",
            "examples,coverage,fuzzing",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path,
            env={"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "HOME": str(tmp_path)},
        )
        out, _ = await proc.communicate()
        report = out.decode(errors="replace")
        assert proc.returncode == 0, report[-6000:]
        assert "passed" in report.lower()

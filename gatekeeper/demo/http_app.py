"""The demo tools over plain HTTP: ``POST /tools/{name}`` with the arguments object as the body.

This is the shape of an ordinary JSON tool upstream behind the gate's ``/v1/invoke``:

- ``200`` with the tool's result, including tool-level errors (``{"error": {...}}``);
- ``400 {"code": "bad_json" | "invalid_arguments", "message"}`` for a body it cannot use;
- ``404 {"code": "unknown_tool"}`` for a name it does not serve;
- ``GET /healthz`` → ``200 {"status": "ok"}``.

Every ``POST /tools/...`` is recorded under ``RECEIVED`` before anything else happens, so a test
can prove that a refused call never got here, and which headers one that was allowed carried.
"""

from __future__ import annotations

import json
from typing import Any, Final

from aiohttp import web

from gatekeeper.demo.tools import InvalidArguments, ReceivedCall, ReceivedLog, UnknownTool, call_tool
from gatekeeper.demo.workspace import Workspace

RECEIVED: Final = web.AppKey("RECEIVED", list[ReceivedCall])
WORKSPACE: Final = web.AppKey("WORKSPACE", Workspace)

_NO_BODY: Final = object()


def make_http_app(workspace: Workspace | None = None) -> web.Application:
    """Build the demo HTTP app; pass a ``workspace`` to share one with the MCP demo."""
    app = web.Application()
    app[RECEIVED] = ReceivedLog()
    app[WORKSPACE] = Workspace() if workspace is None else workspace
    app.router.add_post("/tools/{name}", _handle_tool)
    app.router.add_get("/healthz", _handle_healthz)
    return app


async def _handle_tool(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    arguments: Any = await _read_json(request)
    headers = {key.lower(): value for key, value in request.headers.items()}
    request.app[RECEIVED].append(ReceivedCall(name, None if arguments is _NO_BODY else arguments, headers))
    if arguments is _NO_BODY:
        return _error(400, "bad_json", "The body must be a JSON object of tool arguments.")
    try:
        result = call_tool(request.app[WORKSPACE], name, arguments)
    except UnknownTool:
        return _error(404, UnknownTool.code, f"No demo tool is named {name!r}.")
    except InvalidArguments as exc:
        return _error(400, InvalidArguments.code, str(exc))
    return web.json_response(result)


async def _handle_healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _read_json(request: web.Request) -> Any:
    try:
        return json.loads(await request.read())
    except (ValueError, RecursionError):
        return _NO_BODY


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status)

"""``GET /v1/approvals/{id}`` on the agent listener: what became of the caller's own held call.

An approval of another principal is answered exactly like one that does not exist (404), so
approval ids cannot be probed from the agent side.
"""

from __future__ import annotations

from aiohttp import web

from gatekeeper import codes

from ..approvals.agent_view import agent_view
from ..errors import NotFound
from .api_schema import openapi_document
from .responses import json_response
from .state import APPROVALS, VERIFIER


async def get_own_approval(request: web.Request) -> web.Response:
    principal = await request.app[VERIFIER].authenticate(request.headers, request.query)
    approval_id = request.match_info["id"]
    queue = request.app.get(APPROVALS)
    approval = await queue.store.get(approval_id) if queue is not None else None
    if approval is None or approval.principal != principal.subject:
        raise NotFound(f"no approval {approval_id!r} for {principal.subject}", code=codes.APPROVAL_NOT_FOUND)
    return json_response(200, agent_view(approval))


async def openapi_agent(request: web.Request) -> web.Response:
    """The agent listener's own API description (no token needed: it holds no secrets)."""
    return json_response(200, openapi_document("agent"))


def add_agent_approval_routes(app: web.Application) -> None:
    app.router.add_get("/v1/approvals/{id}", get_own_approval)

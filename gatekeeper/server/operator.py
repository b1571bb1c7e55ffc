"""The operator listener: operator tokens only, on its own port.

The approval queue's API lands here (see the approval-queue issue); for now it
authenticates operators and answers that no queue is configured.
"""

from __future__ import annotations

from aiohttp import web

from .health import healthz
from .responses import json_response
from .state import VERIFIER


async def whoami(request: web.Request) -> web.Response:
    principal = await request.app[VERIFIER].authenticate(request.headers, request.query, operator=True)
    return json_response(
        200, {"subject": principal.subject, "roles": list(principal.roles), "operator": True}
    )


async def list_approvals(request: web.Request) -> web.Response:
    await request.app[VERIFIER].authenticate(request.headers, request.query, operator=True)
    return json_response(200, {"approvals": [], "queue": "none"})


async def get_approval(request: web.Request) -> web.Response:
    await request.app[VERIFIER].authenticate(request.headers, request.query, operator=True)
    return json_response(
        404, {"code": "not_found", "message": "no such approval (no approval queue is configured)"}
    )


def add_operator_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/v1/whoami", whoami)
    app.router.add_get("/v1/approvals", list_approvals)
    app.router.add_get("/v1/approvals/{id}", get_approval)
    app.router.add_post("/v1/approvals/{id}/{verb:approve|deny}", get_approval)

"""The operator's side of tool-definition pins: see what is withheld (with the diff), pin it."""

from __future__ import annotations

import structlog
from aiohttp import web

from gatekeeper import codes

from ..errors import ApprovalError, NotFound, RequestError
from ..pipeline import new_decision_id
from .api_schema import PIN_REQUEST, check_object
from .invoke import read_json_body
from .operator import operator
from .responses import json_response
from .state import AUDIT, TOOL_PINS

log = structlog.get_logger("gatekeeper.tool_pins")


async def list_pins(request: web.Request) -> web.Response:
    await operator(request)
    state = request.query.get("state", "withheld")
    if state not in ("withheld", "all"):
        raise RequestError("state must be withheld or all", code=codes.INVALID_QUERY)
    pins = request.app[TOOL_PINS]
    await pins.refresh()
    shown = [p for p in pins.all() if state == "all" or p.withheld]
    return json_response(200, {"pins": [p.to_json() for p in shown]})


async def approve_pin(request: web.Request) -> web.Response:
    who = await operator(request)
    body = check_object(PIN_REQUEST, await read_json_body(request, 64 * 1024, 8))  # as /openapi.json says
    upstream, tool = request.match_info["upstream"], request.match_info["tool"]
    pins = request.app[TOOL_PINS]
    await pins.refresh()
    if not any(p.upstream == upstream and p.tool == tool for p in pins.all()):
        raise NotFound(f"no definition of {tool!r} on {upstream!r} has been seen")
    pin = await pins.approve(upstream, tool, body["digest"], who.subject)
    if pin is None:
        raise ApprovalError(
            "the definition changed again since the digest you reviewed; look at it again",
            code=codes.DIGEST_MISMATCH,
        )
    audit = request.app.get(AUDIT)
    if audit is not None:  # who pinned which definition goes into the same chain as the calls
        audit.append(
            decision_id=new_decision_id(),
            entry="tool_pin",
            outcome="approved",
            code=codes.TOOL_PINNED,
            tool=tool,
            digest=pin.pinned_digest,
            operator=who.subject,
            reason=str(body.get("comment") or "") or None,
            extra={"upstream": upstream, "flags": list(pin.flags)},
        )
    log.info(
        "tool_pin_approved", upstream=upstream, tool=tool, digest=pin.pinned_digest, operator=who.subject
    )
    return json_response(200, pin.to_json())


def add_pin_routes(app: web.Application) -> None:
    app.router.add_get("/v1/tool-pins", list_pins)
    app.router.add_post("/v1/tool-pins/{upstream}/{tool}/approve", approve_pin)

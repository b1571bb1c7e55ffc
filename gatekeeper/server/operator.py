"""The operator listener: the approval queue's API. Operator tokens only, on its own port.

An agent token is refused here whatever it claims: operator tokens carry a
different audience, and the verifier is asked for that audience on every route.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from aiohttp import web

from gatekeeper import codes

from ..approvals.models import Change
from ..budgets import plan_charges
from ..errors import GatekeeperError, RequestError, Unavailable
from ..models import Principal
from ..policy.explain import explain
from ..timefmt import iso8601
from .api_schema import EXPLAIN_REQUEST, VERDICT_REQUEST, check_object, openapi_document
from .health import healthz
from .invoke import read_json_body
from .responses import json_response
from .state import APPROVALS, AUDIT, BUDGETS, CONFIG, GATE, VERIFIER

KEEPALIVE_SECONDS = 15.0
_STATES = {"pending", "approved", "denied", "expired", "consumed"}


async def operator(request: web.Request) -> Principal:
    return await request.app[VERIFIER].authenticate(request.headers, request.query, operator=True)


async def openapi_operator(request: web.Request) -> web.Response:
    return json_response(200, openapi_document("operator"))


async def whoami(request: web.Request) -> web.Response:
    principal = await operator(request)
    return json_response(
        200, {"subject": principal.subject, "roles": list(principal.roles), "operator": True}
    )


def _int_param(request: web.Request, name: str, default: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not 0 <= int(raw) <= high:
        raise RequestError(f"{name} must be an integer from 0 to {high}", code=codes.INVALID_QUERY)
    return int(raw)


async def list_approvals(request: web.Request) -> web.Response:
    await operator(request)
    state = request.query.get("state")
    if state is not None and state not in _STATES:
        raise RequestError(f"state must be one of {', '.join(sorted(_STATES))}", code=codes.INVALID_QUERY)
    limit = _int_param(request, "limit", 100, 1000)
    offset = _int_param(request, "offset", 0, 10_000_000)
    store = request.app[APPROVALS].store
    approvals = await store.list_approvals(state=state, limit=limit, offset=offset)
    total = await store.count(state=state)
    return json_response(200, {"approvals": [a.to_json() for a in approvals], "total": total})


async def get_approval(request: web.Request) -> web.Response:
    await operator(request)
    approval = await request.app[APPROVALS].get(request.match_info["id"])
    return json_response(200, approval.to_json())


async def _verdict_body(request: web.Request) -> dict[str, Any]:
    limits = request.app[CONFIG].limits
    if request.content_length in (None, 0) and not request.can_read_body:
        return {}
    body = await read_json_body(request, min(limits.max_body_bytes, 64 * 1024), 8)
    return check_object(VERDICT_REQUEST, body)  # the schema /openapi.json publishes


async def vote(request: web.Request) -> web.Response:
    principal = await operator(request)
    verdict = request.match_info["verdict"]
    body = await _verdict_body(request)
    grant = body.get("grant_minutes") if verdict == "approve" else None
    approval = await request.app[APPROVALS].vote(
        request.match_info["id"],
        principal,
        verdict,
        body.get("comment", ""),
        float(grant) if grant is not None else None,
    )
    audit = request.app.get(AUDIT)
    if audit is not None:  # who approved or denied what, and when, goes into the same chain
        audit.append(
            decision_id=approval.id,
            entry="approval",
            outcome="approved" if verdict == "approve" else "denied",
            code=f"vote_{verdict}",
            principal=approval.principal,
            tool=approval.tool,
            digest=approval.digest,
            approval_id=approval.id,
            operator=principal.subject,
            reason=body.get("comment") or None,
            extra={
                "state": str(approval.state),
                "approvals": approval.approvals,
                "required_approvals": approval.required_approvals,
            },
        )
    return json_response(200, approval.to_json())


async def list_grants(request: web.Request) -> web.Response:
    await operator(request)
    active = request.query.get("active", "true").lower() != "false"
    grants = await request.app[APPROVALS].store.list_grants(active_at=time.time() if active else None)
    return json_response(200, {"grants": [g.to_json() for g in grants]})


async def revoke_grant(request: web.Request) -> web.Response:
    principal = await operator(request)
    grant = await request.app[APPROVALS].revoke_grant(request.match_info["id"], principal)
    return json_response(200, grant.to_json())


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: one event per queue change, from every replica sharing the store."""
    await operator(request)
    queue = request.app[APPROVALS]
    changes: asyncio.Queue[Change] = asyncio.Queue(maxsize=1000)

    def push(change: Change) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # a stuck reader loses events, never the queue
            changes.put_nowait(change)

    unsubscribe = queue.listen(push)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    try:
        await response.prepare(request)
        await response.write(b": connected\n\n")
        while True:
            try:
                change = await asyncio.wait_for(changes.get(), timeout=KEEPALIVE_SECONDS)
            except TimeoutError:
                await response.write(b": keepalive\n\n")
                continue
            if change.kind == "closing":
                break
            approval = await queue.store.get(change.approval_id) if change.approval_id else None
            grant = None
            if change.grant_id:
                grant = next((g for g in await queue.store.list_grants() if g.id == change.grant_id), None)
            data = {
                "kind": change.kind,
                "approval": approval.to_json() if approval else None,
                "grant": grant.to_json() if grant else None,
                "link": queue.link(approval.id) if approval else None,
                "at": iso8601(time.time()),
            }
            await response.write(f"event: {change.kind}\ndata: {json.dumps(data)}\n\n".encode())
    except ConnectionResetError:
        pass
    finally:
        unsubscribe()
    return response


async def explain_call(request: web.Request) -> web.Response:
    """``POST /v1/explain {"tool", "arguments", "roles", "sub"?}``: how the live policy decides a call."""
    await operator(request)
    body = await read_json_body(request, request.app[CONFIG].limits.max_body_bytes, 64)
    body = check_object(EXPLAIN_REQUEST, body)  # the schema /openapi.json publishes
    roles = body.get("roles", [])
    gate = request.app[GATE]
    if gate.policy_set is None:
        raise Unavailable("no policy is loaded")
    who = Principal(str(body.get("sub") or "explain"), tuple(roles), request.app[CONFIG].identity.issuer, 0.0)
    arguments = body.get("arguments", {})
    usage = await budget_usage(request.app, gate.policy_set, who, body["tool"], arguments)
    return json_response(200, explain(gate.policy_set, who, body["tool"], arguments, usage=usage))


async def budget_usage(
    app: web.Application, policy_set: Any, who: Principal, tool: str, arguments: Any
) -> dict[str, float]:
    """How much of each counter this call would be charged to is used now (charge key -> spend)."""
    rules = policy_set.budgets
    counter = app.get(BUDGETS)
    if rules is None or counter is None:
        return {}
    try:
        call = app[GATE].understand(who, tool, arguments, policy_set)
    except GatekeeperError:  # the report already says why the call could not be understood
        return {}
    roles = policy_set.engine.effective_roles(who.roles)
    now = time.time()
    return {
        charge.key: sum(u.used for u in await counter.usage(charge.key, now=now))
        for charge in plan_charges(rules, who, call.tool, call.capabilities, roles=roles)
    }


def add_operator_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/openapi.json", openapi_operator)
    app.router.add_get("/v1/whoami", whoami)
    app.router.add_get("/v1/approvals", list_approvals)
    app.router.add_get("/v1/approvals/{id}", get_approval)
    app.router.add_post("/v1/approvals/{id}/{verdict:approve|deny}", vote)
    app.router.add_get("/v1/grants", list_grants)
    app.router.add_post("/v1/grants/{id}/revoke", revoke_grant)
    app.router.add_get("/v1/events", events)
    app.router.add_post("/v1/explain", explain_call)
    from .console import add_console_routes  # here: console imports operator() from this module
    from .operator_pins import add_pin_routes  # so does this one

    add_console_routes(app)
    add_pin_routes(app)

"""``/healthz``, ``/readyz`` and ``/metrics``."""

from __future__ import annotations

import asyncio

from aiohttp import web

from gatekeeper import codes

from .responses import json_response
from .state import AUDIT, CONFIG, ESCALATION, GATE, LIFECYCLE, METRICS, WORKER


async def healthz(request: web.Request) -> web.Response:
    worker = request.app.get(WORKER)  # which of several workers answered (gatekeeper.workers)
    return json_response(200, {"status": "ok"} if worker is None else {"status": "ok", "worker": worker})


async def readyz(request: web.Request) -> web.Response:
    """Ready only when a policy is loaded, every manifest's upstream is configured, the approval
    store answers and the audit trail takes records."""
    gate = request.app[GATE]
    config = request.app[CONFIG]
    problems: list[str] = []
    if gate.policy_set is None:
        problems.append("no policy loaded: " + (gate.load_error or "unknown error"))
    else:
        for tool, manifest in gate.policy_set.manifests.items():
            if manifest.upstream not in config.upstreams:
                problems.append(f"tool {tool}: upstream {manifest.upstream!r} is not configured")
    queue = request.app.get(ESCALATION)
    store = getattr(queue, "store", None)
    if store is not None:
        try:
            await asyncio.wait_for(store.count(state="pending"), timeout=2.0)
        except Exception as exc:  # any failure to answer: not ready (calls that escalate would fail closed)
            problems.append(f"approval store unreachable: {type(exc).__name__}")
    audit = request.app.get(AUDIT)
    if audit is not None:  # calls are refused until the store takes records again
        refusal = audit.refusal(config.audit.max_unwritten_seconds)
        if refusal is not None:
            problems.append(f"audit trail: {refusal}")
    lifecycle = request.app.get(LIFECYCLE)
    if lifecycle is not None and lifecycle.draining:
        problems.append("shutting down")
    if problems or gate.policy_set is None:
        return json_response(503, {"status": "not_ready", "code": codes.NOT_READY, "reasons": problems})
    body: dict[str, object] = {"status": "ready", "policy_version": gate.policy_set.version}
    reload_error = getattr(gate.reloader, "last_error", None)
    if reload_error:  # still ready: the previous policy is live
        body["policy_reload_error"] = reload_error
    if gate.policy_set.shadow is not None:
        body["shadow_policy_version"] = gate.policy_set.shadow.version
    return json_response(200, body)


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[METRICS].render(), content_type="text/plain", charset="utf-8")


def add_health_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)

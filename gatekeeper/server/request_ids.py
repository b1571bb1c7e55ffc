"""The agent and operator listeners' request-id middleware (what the ids are: ``..tracing``)."""

from __future__ import annotations

from aiohttp import web

from ..tracing import RequestIds, current_request, ids_from_headers
from .responses import Handler

REQUEST_IDS = web.RequestKey("gatekeeper_request_ids", RequestIds)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    headers = request.headers
    ids = ids_from_headers(headers.get("X-Request-Id"), headers.get("traceparent"))
    request[REQUEST_IDS] = ids
    reset = current_request.set(ids)  # log lines take the id from here (logs.add_request_id)
    try:
        return await handler(request)
    finally:
        current_request.reset(reset)


async def echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every answer carries the id, event streams included."""
    ids = request.get(REQUEST_IDS)
    if ids is not None:
        response.headers["X-Request-Id"] = ids.request_id


def add_request_ids(app: web.Application) -> None:
    app.middlewares.insert(0, request_id_middleware)
    app.on_response_prepare.append(echo_request_id)


def request_id_of(request: web.Request) -> str | None:
    ids = request.get(REQUEST_IDS)
    return ids.request_id if ids is not None else None


def current_request_id() -> str | None:
    """The id of the request being handled (``request_id_of`` without the request's lookups)."""
    ids = current_request.get()
    return ids.request_id if ids is not None else None

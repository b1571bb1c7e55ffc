"""Map errors to JSON bodies with a stable ``code``; never a traceback, never HTML."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from gatekeeper import codes

from ..errors import AuthenticationError, GatekeeperError

log = structlog.get_logger("gatekeeper.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_CODES = {
    404: codes.NOT_FOUND,
    405: codes.METHOD_NOT_ALLOWED,
    413: codes.PAYLOAD_TOO_LARGE,
    400: codes.BAD_REQUEST,
}


def json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body, ensure_ascii=False).encode(),
        content_type="application/json",
        headers=headers,
    )


def error_response(exc: GatekeeperError, **extra: Any) -> web.Response:
    headers = {"WWW-Authenticate": exc.www_authenticate()} if isinstance(exc, AuthenticationError) else None
    return json_response(exc.status, {**extra, **exc.body()}, headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GatekeeperError as exc:
        log.info("request_refused", path=request.path, status=exc.status, code=exc.code)
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, codes.HTTP_ERROR)
        return json_response(exc.status, {"code": code, "message": exc.reason})
    except Exception:
        # Fail closed: the client learns only that it failed; the log has the rest.
        log.exception("internal_error", path=request.path)
        return json_response(
            500, {"code": codes.INTERNAL_ERROR, "message": "internal error; the call was not forwarded"}
        )

"""Graceful shutdown for the agent listener: refuse new calls, let in-flight ones finish."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from gatekeeper import codes

from .server.responses import Handler, json_response


class Lifecycle:
    def __init__(self) -> None:
        self.draining = False
        self.inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.inflight += 1
        self._idle.clear()

    def leave(self) -> None:
        self.inflight -= 1
        if self.inflight == 0:
            self._idle.set()

    async def wait_idle(self, within_seconds: float) -> bool:
        """Wait for in-flight calls to finish; False if some were still running at the timeout."""
        deadline = time.monotonic() + within_seconds
        while self.inflight:
            try:
                await asyncio.wait_for(self._idle.wait(), timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return False
        return True


@web.middleware
async def drain_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    from .server.state import LIFECYCLE

    lifecycle = request.app[LIFECYCLE]
    if lifecycle.draining and request.path not in ("/healthz", "/readyz", "/metrics"):
        return json_response(
            503,
            {
                "code": codes.SHUTTING_DOWN,
                "message": "Gatekeeper is shutting down; retry against another replica",
            },
            {"Connection": "close", "Retry-After": "1"},
        )
    lifecycle.enter()
    try:
        return await handler(request)
    finally:
        lifecycle.leave()

"""A bare aiohttp pass-through proxy: the cost of *any* Python proxy, with no gate at all.

Two routes, both forwarding with one shared ``aiohttp.ClientSession`` (same connector settings
as Gatekeeper's: ``limit=256``, ``auto_decompress=False``):

- ``POST /v1/invoke`` — the same work shape as Gatekeeper's ``/v1/invoke`` minus the gate:
  read the body, ``json.loads`` it, take ``tool`` and ``arguments``, ``json.dumps`` the arguments,
  POST them to ``{upstream}/tools/{tool}``, splice the answer into
  ``{"outcome": "allowed", "result": ...}``. No token, no schema, no policy, no logging.
- ``POST /tools/{name}`` — a raw byte pass-through: the body goes upstream untouched and the
  answer comes back untouched (the floor of the floor).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Final

import aiohttp
from aiohttp import web

SESSION: Final = web.AppKey("SESSION", aiohttp.ClientSession)
UPSTREAM: Final = web.AppKey("UPSTREAM", str)


async def _invoke(request: web.Request) -> web.Response:
    body = json.loads(await request.read())
    tool, arguments = body["tool"], body.get("arguments", {})
    payload = json.dumps(arguments, ensure_ascii=False).encode()
    session = request.app[SESSION]
    async with session.post(
        f"{request.app[UPSTREAM]}/tools/{tool}",
        data=payload,
        headers={"Content-Type": "application/json"},
    ) as resp:
        answer = await resp.read()
    return web.Response(
        status=200, body=b'{"outcome": "allowed", "result": ' + answer + b"}", content_type="application/json"
    )


async def _raw(request: web.Request) -> web.Response:
    payload = await request.read()
    session = request.app[SESSION]
    async with session.post(
        f"{request.app[UPSTREAM]}/tools/{request.match_info['name']}",
        data=payload,
        headers={"Content-Type": "application/json"},
    ) as resp:
        answer = await resp.read()
        status = resp.status
    return web.Response(status=status, body=answer, content_type="application/json")


def make_bare_proxy(upstream: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")

    async def client_session(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=256, ttl_dns_cache=300)
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
            app[SESSION] = session
            yield

    app.cleanup_ctx.append(client_session)
    app.router.add_post("/v1/invoke", _invoke)
    app.router.add_post("/tools/{name}", _raw)
    return app


async def start_bare_proxy(host: str, port: int, upstream: str) -> tuple[web.AppRunner, str]:
    """Start the proxy on ``host:port`` (``0`` = any free port); returns the runner and its URL."""
    runner = web.AppRunner(make_bare_proxy(upstream), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    bound = port
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            bound = int(address[1])
    return runner, f"http://{host}:{bound}"


async def _serve_alone(upstream: str, max_seconds: float) -> None:
    """``python bench/bare_proxy.py --upstream URL``: the proxy in a process of its own; prints
    ``{"bare_url", "pid"}`` and serves until stdin closes or ``max_seconds`` pass."""
    import asyncio
    import os
    import sys

    from bench.children import watch_stdin

    runner, url = await start_bare_proxy("127.0.0.1", 0, upstream)
    stop = asyncio.Event()
    watch_stdin(stop)
    sys.stdout.write(json.dumps({"bare_url": url, "pid": os.getpid()}) + "\n")
    sys.stdout.flush()
    try:
        await asyncio.wait_for(stop.wait(), max_seconds)
    except TimeoutError:
        pass
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    import argparse
    import asyncio
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench.children

    parser = argparse.ArgumentParser(description="a bare aiohttp pass-through proxy, alone in its process")
    parser.add_argument("--upstream", required=True, help="the demo upstream's HTTP URL")
    parser.add_argument("--max-seconds", type=float, default=1800.0)
    options = parser.parse_args()
    asyncio.run(_serve_alone(options.upstream, options.max_seconds))

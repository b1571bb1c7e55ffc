"""A link to one approval: webhooks carry it, the operator listener serves the console at it, and
the console opened there shows that approval."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from gatekeeper.approvals.settings import ApprovalSettings
from gatekeeper.approvals.webhook import verify_signature
from gatekeeper.config import load_config

from ..console.test_console_browser import browser, operator_apps
from ..helpers import (
    H100,
    invoke,
    make_config,
    mint,
    operator_token,
    poll_until,
    running,
    serve_app,
    vote,
    wait_for_pending,
)

__all__ = ["operator_apps"]  # the fixture, re-used
SECRET = b"webhook-secret-for-tests-0123456789"


async def _receiver(received: list[dict[str, Any]]) -> web.Application:
    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        headers = request.headers
        if verify_signature(
            SECRET, body, headers["X-Gatekeeper-Timestamp"], headers["X-Gatekeeper-Signature"]
        ):
            received.append(json.loads(body))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    return app


async def test_webhooks_link_to_the_approval_and_the_link_opens_the_console(
    tmp_path: Path, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    received: list[dict[str, Any]] = []
    async with serve_app(await _receiver(received)) as url:
        settings = ApprovalSettings(
            default_wait_seconds=0.0, webhook_url=f"{url}/hook", webhook_secret=SECRET
        )
        async with running(make_config(tmp_path, approvals=settings)) as gk:
            await invoke(http, gk, "compute.provision", H100, mint(gk))
            approval = await wait_for_pending(http, gk)
            await vote(http, gk, approval, "approve")
            await poll_until(
                lambda: {e["event"] for e in received} >= {"created", "approved"}, what="both webhooks"
            )
            link = f"{gk.operator_url}/console/approvals/{approval}"
            assert [e["data"]["link"] for e in received] == [link, link]
            async with http.get(link) as page:
                assert page.status == 200 and page.content_type == "text/html"
                assert "Content-Security-Policy" in page.headers
                assert '<script type="module" src="/console/app.js">' in await page.text()


async def test_the_configured_console_address_is_the_one_linked(
    tmp_path: Path, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    received: list[dict[str, Any]] = []
    async with serve_app(await _receiver(received)) as url:
        settings = ApprovalSettings(
            default_wait_seconds=0.0,
            webhook_url=f"{url}/hook",
            webhook_secret=SECRET,
            console_url="https://gatekeeper.example.com",
        )
        async with running(make_config(tmp_path, approvals=settings)) as gk:
            _, body, _ = await invoke(http, gk, "compute.provision", H100, mint(gk))
            await poll_until(lambda: received, what="the webhook")
    assert (
        received[0]["data"]["link"]
        == f"https://gatekeeper.example.com/console/approvals/{body['approval_id']}"
    )
    path = tmp_path / "gatekeeper.yaml"
    path.write_text("approvals:\n  console_url: https://ops.example.com/\n")
    assert load_config(path).approvals.console_url == "https://ops.example.com"


async def test_the_console_opened_at_a_link_shows_that_approval(
    tmp_path: Path, http: aiohttp.ClientSession, operator_apps: list[web.Application], log_output: list[Any]
) -> None:
    async with running(make_config(tmp_path)) as gk:
        token = mint(gk)
        await invoke(http, gk, "compute.provision", H100, token)
        first = await wait_for_pending(http, gk)
        await invoke(http, gk, "shell.exec", {"cmd": "docker ps"}, token)  # newer: listed first
        async with browser() as page:
            await page.goto(f"{gk.operator_url}/console/approvals/{first}")
            await signed_in_here(page, gk)
            await page.wait_for_selector("#detail h2:has-text('compute.provision')")
            assert page.url.endswith(f"/console/approvals/{first}")
            await page.locator("#queue-list button", has_text="shell.exec").click()
            await page.wait_for_selector("#detail h2:has-text('shell.exec')")
            assert "/console/approvals/apr_" in page.url and not page.url.endswith(first)


async def signed_in_here(page: Any, gk: Any) -> None:
    """Sign in on the page already open (the browser test's ``signed_in`` opens the root first)."""
    await page.fill("#token", operator_token(gk))
    await page.click("#signin-submit")
    await page.wait_for_selector("#live[data-state='live']")

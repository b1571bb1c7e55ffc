"""The one gate every adapter goes through: decide (or invoke), then run, or say why not."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from .._async import AsyncGatekeeperClient
from .._errors import CallDenied, CallPending, GatekeeperError

ArgumentMap = Callable[[Mapping[str, Any]], Mapping[str, Any]]
"""The framework tool's arguments as Gatekeeper's tool takes them (``{"command": c}`` ->
``{"cmd": c}``); the identity when the names already agree."""


def refusal_text(exc: GatekeeperError) -> str:
    """What the model reads instead of the tool's answer."""
    if isinstance(exc, CallDenied | CallPending):
        return str(exc)
    return f"Gatekeeper could not be asked about this call ({exc.code}: {exc.message}); the tool was not run."


async def gated_call(
    client: AsyncGatekeeperClient,
    tool: str,
    arguments: Mapping[str, Any],
    run: Callable[[], Any] | None,
    *,
    wait: float | None = None,
) -> Any:
    """Decide ``tool(arguments)`` with Gatekeeper, then ``run()`` it; with ``run=None`` let
    Gatekeeper forward it (invoke) and return the tool's result. Every other outcome, failures
    included, is returned as a refusal text and nothing runs (fail closed)."""
    try:
        if run is None:
            return (await client.invoke(tool, arguments, wait=wait)).result
        await client.decide(tool, arguments, wait=wait)
    except GatekeeperError as exc:
        return refusal_text(exc)
    result = run()
    return await result if inspect.isawaitable(result) else result

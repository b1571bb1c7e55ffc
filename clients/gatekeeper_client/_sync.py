"""A blocking client for synchronous agent runtimes.

It runs ``AsyncGatekeeperClient`` on a private event loop in one background thread
(``_runner.LoopThread``), so connections are pooled across calls and the client may be shared
between threads.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

from ._async import AsyncGatekeeperClient, Decision, InvokeResult
from ._runner import LoopThread

__all__ = ["GatekeeperClient"]


class GatekeeperClient:
    """Blocking twin of ``AsyncGatekeeperClient``: same arguments, same results, same exceptions.

    For plain synchronous code only. Calling ``invoke`` from inside a running event loop raises
    ``RuntimeError``: blocking would stall that loop; use ``AsyncGatekeeperClient`` there.
    Use ``with`` or call ``close()``, which stops the background thread.
    """

    def __init__(self, base_url: str, token: str, *, timeout: float = 60.0) -> None:
        # Built here so bad arguments fail now; its HTTP session is opened later, on the private loop.
        self._client = AsyncGatekeeperClient(base_url, token, timeout=timeout)
        self._runner = LoopThread(
            "GatekeeperClient",
            in_loop_error="GatekeeperClient.invoke blocks and cannot be called from a running event loop; "
            "use AsyncGatekeeperClient there",
            thread_name="gatekeeper-client",
        )

    def __repr__(self) -> str:
        return f"GatekeeperClient(wrapping={self._client!r})"

    def __enter__(self) -> GatekeeperClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def invoke(
        self, tool: str, arguments: Mapping[str, Any] | None = None, *, wait: float | None = None
    ) -> InvokeResult:
        """Blocking ``AsyncGatekeeperClient.invoke``; see there for ``wait`` and the exceptions."""
        return self._runner.run(lambda: self._client.invoke(tool, arguments, wait=wait))

    def decide(
        self, tool: str, arguments: Mapping[str, Any] | None = None, *, wait: float | None = None
    ) -> Decision:
        """Blocking ``AsyncGatekeeperClient.decide``: may it run? (It is not run.)"""
        return self._runner.run(lambda: self._client.decide(tool, arguments, wait=wait))

    def close(self) -> None:
        """Close the HTTP session and stop the background thread; safe to call more than once."""
        self._runner.close(self._client.aclose)

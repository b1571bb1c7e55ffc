"""A blocking client for synchronous agent runtimes.

It runs ``AsyncGatekeeperClient`` on a private event loop in one background thread, so
connections are pooled across calls and the client may be shared between threads.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from types import TracebackType
from typing import Any

from ._async import AsyncGatekeeperClient, InvokeResult

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
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

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
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "GatekeeperClient.invoke blocks and cannot be called from a running event loop; "
                "use AsyncGatekeeperClient there"
            )
        future = self._submit(tool, arguments, wait)
        try:
            return future.result()
        except BaseException:
            # e.g. KeyboardInterrupt while waiting: do not leave the request running behind our back.
            future.cancel()
            raise

    def close(self) -> None:
        """Close the HTTP session and stop the background thread; safe to call more than once."""
        with self._lock:
            self._closed = True
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._client.aclose(), loop).result()
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()

    def _submit(
        self, tool: str, arguments: Mapping[str, Any] | None, wait: float | None
    ) -> Future[InvokeResult]:
        """Schedule the call on the private loop, starting it on first use (an unused client holds
        nothing). Under the lock, so that ``close`` cannot stop the loop between check and submit."""
        with self._lock:
            if self._closed:
                raise RuntimeError("this GatekeeperClient is closed")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=_serve_loop, args=(loop,), name="gatekeeper-client", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return asyncio.run_coroutine_threadsafe(
                self._client.invoke(tool, arguments, wait=wait), self._loop
            )


def _serve_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        try:
            # Calls still in flight when close() stopped the loop end as cancelled, not hung.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()

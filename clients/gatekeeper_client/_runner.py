"""The blocking clients' engine: an async client's coroutines run on a private event loop in one
background thread, started on first use, so connections are pooled across calls and the blocking
client may be shared between threads."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")


class LoopThread:
    """Runs coroutines for a blocking client; ``name`` is the blocking client's, for messages."""

    def __init__(self, name: str, *, in_loop_error: str, thread_name: str) -> None:
        self._name = name
        self._in_loop_error = in_loop_error
        self._thread_name = thread_name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    def run(self, make: Callable[[], Awaitable[T]]) -> T:
        """Block until ``make()`` has run on the private loop; its result or its exception.
        Refused inside a running event loop: blocking would stall that loop."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(self._in_loop_error)
        future = self._submit(make)
        try:
            return future.result()
        except BaseException:
            # e.g. KeyboardInterrupt while waiting: do not leave the request running behind our back.
            future.cancel()
            raise

    def close(self, aclose: Callable[[], Awaitable[None]]) -> None:
        """Run ``aclose()`` on the loop, then stop the thread; safe to call more than once."""
        with self._lock:
            self._closed = True
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(_await(aclose), loop).result()
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()

    def _submit(self, make: Callable[[], Awaitable[T]]) -> Future[T]:
        """Schedule the call on the private loop, starting it on first use (an unused client holds
        nothing). Under the lock, so that ``close`` cannot stop the loop between check and submit."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"this {self._name} is closed")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=_serve_loop, args=(loop,), name=self._thread_name, daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return asyncio.run_coroutine_threadsafe(_await(make), self._loop)


async def _await(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


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

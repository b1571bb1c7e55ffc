"""Background tasks, started through one helper.

The event loop keeps only a weak reference to a task, so one nobody holds can vanish mid-run,
and an exception in a task nobody awaits is lost. ``BackgroundTasks`` holds each task until it
ends, names it, logs an exception it ends with, and cancels and awaits what is left on shutdown.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

import structlog

log = structlog.get_logger("gatekeeper.tasks")

T = TypeVar("T")


class BackgroundTasks:
    """The tasks one component runs in the background (a listener, a watcher, its handlers)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
        """Run ``coro`` as a task called ``name``; held until it ends, its exception logged."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()  # retrieved here, so asyncio never reports it as lost
        if exc is not None:
            log.error("background_task_failed", task=task.get_name(), error=f"{type(exc).__name__}: {exc}")

    def __len__(self) -> int:
        return len(self._tasks)

    async def cancel_all(self) -> None:
        """Cancel every task still running and wait until each has ended."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def stop_at_stdin_end(stop: asyncio.Event) -> None:
    """In a child process: set ``stop`` when stdin reaches end of file (its parent closed the
    pipe, or died)."""
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()

    def readable() -> None:
        if not os.read(fd, 4096):
            loop.remove_reader(fd)
            stop.set()

    loop.add_reader(fd, readable)

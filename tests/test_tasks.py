"""``BackgroundTasks``: held while they run, named, an exception logged (not lost), cancelled on stop."""

from __future__ import annotations

import asyncio
import gc

from structlog.testing import capture_logs

from gatekeeper.tasks import BackgroundTasks


async def test_a_task_nobody_holds_runs_to_its_end() -> None:
    tasks = BackgroundTasks()
    done = asyncio.Event()

    async def work() -> None:
        await asyncio.sleep(0.01)
        gc.collect()  # only the helper holds the task: it must survive a collection
        done.set()

    tasks.spawn(work(), name="worker")
    assert len(tasks) == 1
    await asyncio.wait_for(done.wait(), 5)
    await asyncio.sleep(0)
    assert len(tasks) == 0


async def test_an_exception_is_logged_with_the_task_name() -> None:
    tasks = BackgroundTasks()

    async def broken() -> None:
        raise ValueError("boom")

    with capture_logs() as logs:
        task = tasks.spawn(broken(), name="broken-one")
        await asyncio.wait([task])
        await asyncio.sleep(0)
    assert [(e["event"], e["task"], e["error"]) for e in logs] == [
        ("background_task_failed", "broken-one", "ValueError: boom")
    ]


async def test_cancel_all_cancels_and_awaits_what_is_still_running() -> None:
    tasks = BackgroundTasks()
    cleaned = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned.set()

    task = tasks.spawn(forever(), name="forever")
    await asyncio.sleep(0)
    with capture_logs() as logs:
        await tasks.cancel_all()
    assert task.cancelled() and cleaned.is_set() and len(tasks) == 0
    assert logs == []  # a cancelled task is not a failure

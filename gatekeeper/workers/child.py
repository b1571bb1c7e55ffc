"""One worker: ``python -m gatekeeper.workers.child INDEX READY_FD``, its configuration pickled
on stdin by the supervisor (its parent, the only writer of that pipe).

A whole Gatekeeper on the shared listeners. It writes one line to ``READY_FD`` once it serves,
stops gracefully on SIGTERM or SIGINT (refuses new calls, answers held callers "pending", lets
in-flight calls finish, drains its audit chain), reloads its policy on SIGHUP, and stops as
well when its supervisor is gone (a worker never outlives the process that would restart it).
"""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import sys

import structlog

from ..app import Gatekeeper
from ..config import Config
from ..logs import configure_logging

log = structlog.get_logger("gatekeeper.workers")

PARENT_CHECK_SECONDS = 0.5


async def serve_worker(config: Config, index: int, ready_fd: int | None) -> None:
    parent = os.getppid()
    gk = Gatekeeper(config, worker=index)
    await gk.start(handle_sighup=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if ready_fd is not None:
        os.write(ready_fd, f"{os.getpid()}\n".encode())
        os.close(ready_fd)
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), PARENT_CHECK_SECONDS)
            except TimeoutError:
                if os.getppid() != parent:
                    log.error("worker_orphaned", worker=index, detail="the supervisor is gone; stopping")
                    break
    finally:
        log.info("gatekeeper_stopping", worker=index)
        await gk.stop()


def main(argv: list[str]) -> int:
    index = int(argv[0])
    ready_fd = int(argv[1]) if len(argv) > 1 else None
    # The pipe's only writer is our parent, the supervisor, which pickled its own Config.
    config = pickle.load(sys.stdin.buffer)  # noqa: S301 - from the parent that spawned us
    if not isinstance(config, Config):
        raise SystemExit("gatekeeper worker: stdin did not hold a configuration")
    configure_logging(config.log_level)
    structlog.contextvars.bind_contextvars(worker=index)  # every line says which worker wrote it
    asyncio.run(serve_worker(config, index, ready_fd))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The supervisor of ``workers: N``: starts the workers, restarts a dead one, passes signals on.

Before any worker starts it does what must happen once: the development key, the stores'
schemas (a store that cannot be reached stops start-up here, not in N crash-looping workers),
the listeners' ports (a port 0 is resolved by binding it with ``SO_REUSEPORT`` and holding it,
unlistened, so every worker gets the same concrete port), and the demo tools, which run here,
one instance for all workers (their simulated workspace is state).

Signals: SIGTERM and SIGINT stop every worker gracefully (each drains its in-flight calls and its
audit chain) and then the supervisor; SIGHUP is passed to every worker (each reloads its policy).
A worker that dies otherwise is restarted, after a pause that doubles while it keeps dying young.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import structlog

from ..app import prepare_identity
from ..approvals.stores import open_store
from ..audit.checkpoints import default_key_path, ensure_signer
from ..audit.log import make_sink
from ..config import Config, Listener, Upstream, parse_workers
from ..demo.runner import DemoUpstream
from ..errors import ConfigError
from ..listen import binding
from ..metrics import MULTIPROC_ENV, forget_process
from .shared import refuse_unshared

log = structlog.get_logger("gatekeeper.workers")

STOP_GRACE_SECONDS = 45.0  # a worker's own drain is 30 s; then it is killed
READY_TIMEOUT_SECONDS = 60.0
RESTART_PAUSE_SECONDS = (0.5, 30.0)  # first pause, longest pause
YOUNG_SECONDS = 10.0  # a worker that dies younger than this doubles the next pause


@dataclass
class _Slot:
    index: int
    process: asyncio.subprocess.Process | None = None
    started: float = 0.0
    pause: float = RESTART_PAUSE_SECONDS[0]
    ready: bool = False


class Supervisor:
    def __init__(self, config: Config) -> None:
        refuse_unshared(config)
        self.config = prepare_identity(config)
        self.count = config.workers
        self.slots = [_Slot(i) for i in range(self.count)]
        self.demo: DemoUpstream | None = None
        self.metrics_dir = ""
        self._held: list[socket.socket] = []
        self._stopping = asyncio.Event()
        self._worker_config: bytes = b""

    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT; 0 after a graceful stop, 1 if the workers could not start."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self._forward, signal.SIGHUP)
        try:
            config = await self._prepare()
            self._worker_config = pickle.dumps(config)
            started = await asyncio.gather(*(self._spawn(slot) for slot in self.slots))
            if not all(started):
                log.error("workers_failed_to_start", workers=self.count)
                return 1
            log.info(
                "workers_ready",
                workers=self.count,
                pids=[s.process.pid for s in self.slots if s.process is not None],
                agent=f"http://{config.agent_listener.host}:{config.agent_listener.port}",
                operator=f"http://{config.operator_listener.host}:{config.operator_listener.port}",
            )
            watchers = [asyncio.create_task(self._watch(slot)) for slot in self.slots]
            await self._stopping.wait()
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            return 0
        finally:
            await self._stop_all()

    # -- once, before the workers ---------------------------------------------------------------

    async def _prepare(self) -> Config:
        cfg = self.config
        approvals = cfg.approvals
        store = open_store(approvals.store, cfg.data_dir, schema=approvals.postgres_schema)
        await store.open()
        await store.close()
        sink = make_sink(approvals.store, cfg.data_dir, schema=approvals.postgres_schema)
        await sink.open()
        await sink.close()
        # The checkpoint signing key, made once here rather than raced for by every worker.
        audit = cfg.audit
        ensure_signer(Path(audit.checkpoint_key) if audit.checkpoint_key else default_key_path(cfg.data_dir))
        agent = self._hold_port("agent", cfg.agent_listener)
        operator = self._hold_port("operator", cfg.operator_listener)
        cfg = replace(cfg, agent_listener=agent, operator_listener=operator)
        if cfg.egress_enabled:
            cfg = replace(cfg, egress_listener=self._hold_port("egress", cfg.egress_address))
        if cfg.demo.enabled:
            self.demo = DemoUpstream(cfg.demo.host, cfg.demo.http_port, cfg.demo.mcp_port)
            await self.demo.start()
            configured = cfg.upstreams.get("demo") or Upstream("demo")
            demo = replace(configured, url=self.demo.http_url, mcp_url=self.demo.mcp_url)
            cfg = replace(
                cfg, upstreams={**cfg.upstreams, "demo": demo}, demo=replace(cfg.demo, enabled=False)
            )
        self.metrics_dir = tempfile.mkdtemp(prefix="gatekeeper-metrics-")
        return cfg

    def _hold_port(self, name: str, listener: Listener) -> Listener:
        """Bind ``listener`` with SO_REUSEPORT without listening: it fixes a port 0 to one port for
        every worker, keeps processes without SO_REUSEPORT off it, and fails early when taken."""
        family = socket.AF_INET6 if ":" in listener.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            with binding(name, listener.host, listener.port):  # a busy port: one line naming its flag
                sock.bind((listener.host, listener.port))
        except BaseException:
            sock.close()
            raise
        self._held.append(sock)
        return Listener(listener.host, int(sock.getsockname()[1]))

    # -- the workers ----------------------------------------------------------------------------

    async def _spawn(self, slot: _Slot) -> bool:
        """Start the worker of ``slot`` and wait until it serves; False if it died first."""
        read_fd, write_fd = os.pipe()
        env = {**os.environ, MULTIPROC_ENV: self.metrics_dir}
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "gatekeeper.workers.child",
                str(slot.index),
                str(write_fd),
                stdin=asyncio.subprocess.PIPE,
                pass_fds=(write_fd,),
                env=env,
            )
        finally:
            os.close(write_fd)
        slot.process, slot.started, slot.ready = process, time.monotonic(), False
        assert process.stdin is not None
        try:
            process.stdin.write(self._worker_config)
            await process.stdin.drain()
            process.stdin.close()
        except (BrokenPipeError, ConnectionResetError):  # it died at once; its exit says why
            pass
        try:
            line = await asyncio.wait_for(asyncio.to_thread(_read_line, read_fd), READY_TIMEOUT_SECONDS)
        except TimeoutError:
            line = ""
            log.error("worker_start_timeout", worker=slot.index, pid=process.pid)
            process.kill()
        finally:
            os.close(read_fd)
        slot.ready = bool(line)
        if slot.ready:
            log.info("worker_started", worker=slot.index, pid=process.pid)
        return slot.ready

    async def _watch(self, slot: _Slot) -> None:
        """Restart the worker of ``slot`` whenever it exits while we are not stopping."""
        while True:
            process = slot.process
            assert process is not None
            code = await process.wait()
            self._forget(process.pid)
            if self._stopping.is_set():
                return
            lived = time.monotonic() - slot.started
            first, longest = RESTART_PAUSE_SECONDS
            slot.pause = first if lived >= YOUNG_SECONDS else min(slot.pause * 2, longest)
            log.error(
                "worker_exited",
                worker=slot.index,
                pid=process.pid,
                exit_code=code,
                lived_seconds=round(lived, 1),
                restart_in=slot.pause,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), slot.pause)
            if self._stopping.is_set():
                return
            await self._spawn(slot)

    def _forward(self, sig: signal.Signals) -> None:
        log.info("workers_signal", signal=sig.name, workers=self.count)
        for slot in self.slots:
            if slot.process is not None and slot.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.process.send_signal(sig)

    def _forget(self, pid: int) -> None:
        """A dead worker's live gauges (audit lag, pending approvals) no longer count."""
        if self.metrics_dir:
            with contextlib.suppress(OSError):
                forget_process(pid, self.metrics_dir)

    async def _stop_all(self) -> None:
        self._stopping.set()
        self._forward(signal.SIGTERM)
        running = [s.process for s in self.slots if s.process is not None and s.process.returncode is None]
        if running:
            _done, pending = await asyncio.wait(
                [asyncio.ensure_future(p.wait()) for p in running], timeout=STOP_GRACE_SECONDS
            )
            for process in running:
                if process.returncode is None:
                    log.error("worker_killed", pid=process.pid, detail="not stopped within the grace period")
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        if self.demo is not None:
            await self.demo.stop()
        for sock in self._held:
            sock.close()
        self._held.clear()
        if self.metrics_dir:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
        log.info("workers_stopped", workers=self.count)


def _read_line(fd: int) -> str:
    """The worker's ready line, or "" when it closed the pipe (died) first."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 64)
        if not chunk:
            return ""
        data += chunk
    return data.decode()


def with_workers(config: Config, value: str) -> Config:
    """``config`` with ``serve --workers VALUE`` applied (a ConfigError naming the flag if bad)."""
    try:
        return replace(config, workers=parse_workers(value))
    except ValueError as exc:
        raise ConfigError(f"--workers: {exc}", key="workers") from None


async def serve_workers(config: Config) -> int:
    return await Supervisor(config).run()

"""The audit trail off the serving loop (``audit.writer: process``): the serving process only
journals, a writer process of its own chains, hashes, signs checkpoints and commits.

``AuditLog`` (``log``) chains and writes from the serving loop. ``OffLoopAuditLog`` keeps its
contract, issue 16's included:

- ``append`` never awaits; records are committed in append order; past ``max_queue`` records not
  yet committed it refuses (``AuditBacklogFull``), so a call that cannot be recorded is not
  forwarded. What a record costs the serving process is the field checks, redacting the
  arguments, and one ``write(2)`` to the journal (``journal``).
- ``refusal()`` (calls refused with ``audit_unavailable``, ``/readyz`` unready,
  ``gatekeeper_audit_accepting`` 0) while the writer process is not running, while the store
  refuses its writes (it reports them), while the journal itself cannot be written (the records
  then wait in memory, in order, and are journaled when the disk takes them again), and past the
  same bounds on records and seconds; it clears by itself when the writer is back.
- durable answers (``wait_durable``): a record is durable once it is in the journal and, with
  ``audit.durable_answers``, the journal is on disk (``fdatasync``, shared by every answer that
  waits at the same time), as durable as the store's own commit (SQLite ``synchronous=FULL``). A
  serving process killed at any point loses no record of a call it answered: the next writer
  process finds the journal and writes what the store lacks, before anything newer.
- signed checkpoints: the writer process runs an ordinary ``AuditLog`` with the same signing key,
  so its chains carry the same checkpoints and ``gatekeeper audit verify`` checks them alike.

If the writer process dies it is restarted (after ``RESTART_SECONDS``); records wait in the
journal meanwhile. A thread would not do: under CPython's GIL, a writer thread's chaining takes
the interpreter from the serving thread after each system call it makes (measured: CPU per call
up by half).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import sys
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any

import structlog

from ..errors import AuditClosed
from .checkpoints import CheckpointSigner
from .journal import AuditJournal
from .log import AuditLog, Redactor, backlog_refusal, make_sink
from .writer_process import WriterSettings

log = structlog.get_logger("gatekeeper.audit")

_REDACTED_FIELDS = ("arguments", "shadow", "extra")  # what ``AuditLog._build`` sanitizes
RESTART_SECONDS = 0.5
JOURNAL_RETRY_SECONDS = (0.05, 1.0)  # first and longest pause between tries of a refused journal


class OffLoopAuditLog(AuditLog):
    def __init__(
        self,
        store: str,
        data_dir: Path,
        *,
        chain_id: str,
        schema: str = "gatekeeper",
        journal_dir: Path | None = None,
        redact: Redactor | None = None,
        max_queue: int = 100_000,
        checkpoint_seconds: float = 10.0,
        signer: CheckpointSigner | None = None,
        key_path: Path | None = None,
        sync: bool = True,
        log_level: str = "info",
    ) -> None:
        # The sink object is only a description here: the writer process opens its own.
        super().__init__(
            make_sink(store, data_dir, schema=schema),
            chain_id=chain_id,
            redact=redact,
            max_queue=max_queue,
            checkpoint_seconds=checkpoint_seconds,
            signer=signer,
        )
        folder = journal_dir or Path(data_dir) / "audit-journal"
        self.settings = WriterSettings(
            store=store,
            data_dir=Path(data_dir),
            schema=schema,
            chain_id=chain_id,
            journal_dir=folder,
            max_queue=max_queue,
            checkpoint_seconds=checkpoint_seconds,
            key_path=key_path if signer is not None else None,
            log_level=log_level,
        )
        self.sync = sync  # fdatasync the journal before an answer waiting on ``wait_durable``
        self.journal = AuditJournal(folder, chain_id, self._journal_view)
        self._writer: asyncio.subprocess.Process | None = None
        self._protocol_fd = -1
        self._lines = b""
        self._ready: asyncio.Future[None] | None = None
        self._exited: asyncio.Event = asyncio.Event()
        self._supervise: asyncio.Task[None] | None = None
        self._started = False
        self._exit_code: int | None = None
        self.store_error: str | None = None  # what the writer process last reported failing
        # Records the journal refused (a full disk), in order, until it takes them.
        self._unjournaled: deque[dict[str, Any]] = deque()
        self.journal_error: str | None = None
        # Moved to everything appended so far by a journal or store failure: calls stay refused until
        # the writer has committed that far. A nearly full disk takes a few records again now and
        # then (a freed WAL page, the last bytes), and calls admitted at each such moment would be
        # forwarded only to wait on a disk that refuses again. Records of calls refused meanwhile
        # do not move it, so admission resumes under load once the disk takes writes again.
        self._drain_to = 0  # after a refused write: calls wait until the writer commits this far
        self._journal_retry: asyncio.Task[None] | None = None
        self._journaled = asyncio.Event()
        self._synced = 0  # records known to be on disk (fdatasync)
        self._sync_task: asyncio.Task[None] | None = None

    # -- the serving loop's side ----------------------------------------------------------------

    def _journal_view(self, fields: dict[str, Any]) -> dict[str, Any]:
        """``fields`` with the values the writer redacts redacted (the others are identifiers the
        store keeps as they are): a fifth of the cost of walking the whole record."""
        view = dict(fields)
        for key in _REDACTED_FIELDS:
            value = view.get(key)
            if value is not None:
                view[key] = self.redactor.sanitize(value)
        return view

    def append_record(self, fields: dict[str, Any]) -> None:
        if not self._started and not self._closed:
            raise AuditClosed("the audit log is not started")
        super().append_record(fields)

    def _accept(self, fields: dict[str, Any]) -> None:
        self._appended += 1
        if not self._unjournaled:
            try:
                self.journal.write(fields)
                return
            except OSError as exc:
                self._journal_failed(exc)
        self._unjournaled.append(fields)  # after any refused before it: the order is kept

    def _journal_failed(self, exc: OSError) -> None:
        if self.journal_error is None:
            log.error(
                "audit_journal_write_failed",
                chain_id=self.chain_id,
                error=f"{type(exc).__name__}: {exc}",
                folder=str(self.journal.folder),
                detail="records wait in memory; calls are refused until the journal takes them",
            )
        self.journal_error = f"{type(exc).__name__}: {exc}"
        self._drain_to = self._appended
        if self._journal_retry is None or self._journal_retry.done():
            self._journal_retry = asyncio.get_running_loop().create_task(
                self._retry_journal(), name=f"audit-journal-retry:{self.chain_id}"
            )

    async def _retry_journal(self) -> None:
        delay = JOURNAL_RETRY_SECONDS[0]
        while self._unjournaled:
            await asyncio.sleep(delay)
            try:
                while self._unjournaled:
                    self.journal.write(self._unjournaled[0])
                    self._unjournaled.popleft()
            except OSError as exc:
                self.journal_error = f"{type(exc).__name__}: {exc}"
                delay = min(delay * 2, JOURNAL_RETRY_SECONDS[1])
                continue
        if self.journal_error is not None:
            log.warning("audit_journal_write_recovered", chain_id=self.chain_id)
        self.journal_error = None
        self._wake_journaled()

    def _wake_journaled(self) -> None:
        event, self._journaled = self._journaled, asyncio.Event()
        event.set()

    @property
    def lag(self) -> int:
        """Records accepted but not yet committed by the writer process (journaled or not)."""
        return self._appended - self._written

    def refusal(self, max_seconds: float) -> str | None:
        if not self._started or self._closed:
            return "the audit writer is not running"
        if self._writer is None or self._exited.is_set():
            return f"the audit writer process is not running (exit code {self._exit_code}); restarting it"
        if self.journal_error is not None:
            return f"the audit journal refuses writes ({self.journal_error})"
        if self.store_error is not None:
            return f"the audit store refuses writes ({self.store_error})"
        if self._written < self._drain_to:
            waiting = self._drain_to - self._written
            return f"after a refused write, {waiting} records wait to be written before calls resume"
        return backlog_refusal(self.lag, self.max_queue, self.oldest_unwritten_age(), max_seconds)

    async def wait_durable(self, count: int, within_seconds: float) -> bool:
        """True once the first ``count`` records are in the journal (and, with ``sync``, on disk);
        False after ``within_seconds``."""
        try:
            async with asyncio.timeout(within_seconds):
                while self.journal.count < count:  # waiting behind records the disk refused
                    if self._closed:
                        return False
                    await self._journaled.wait()
                while self.sync and self._synced < count:
                    if self._sync_task is None:
                        self._sync_task = asyncio.create_task(self._sync_journal())
                    await asyncio.shield(self._sync_task)
        except TimeoutError:
            return False
        except OSError:  # the disk refused the sync: this answer is withheld (logged in _sync_journal)
            return False
        return True

    async def _sync_journal(self) -> None:
        """One ``fdatasync`` for every record journaled so far (group commit: the answers waiting
        meanwhile share it), off the loop."""
        try:
            target = self.journal.count
            fd = os.dup(self.journal.fd)
            try:
                await asyncio.to_thread(os.fdatasync, fd)
            finally:
                os.close(fd)
            self._synced = max(self._synced, target)
        except OSError as exc:
            log.error(
                "audit_journal_sync_failed", chain_id=self.chain_id, error=f"{type(exc).__name__}: {exc}"
            )
            raise
        finally:
            self._sync_task = None

    async def wait_written(self, count: int, within_seconds: float) -> bool:
        try:
            async with asyncio.timeout(within_seconds):
                while self._written < count:
                    await self._progress.wait()
        except TimeoutError:
            return False
        return True

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the writer process (it takes over what a previous process journaled), then take
        records. Raises if the store cannot be opened."""
        if self._started:
            return
        self._closed = False
        self._stopping = False
        self.journal.open()
        self.settings = replace(self.settings, journal_stem=self.journal.stem)
        await self._spawn()
        self._started = True
        self._last_progress = time.monotonic()
        self._supervise = asyncio.create_task(
            self._restart_when_dead(), name=f"audit-writer-watch:{self.chain_id}"
        )

    async def _spawn(self) -> None:
        loop = asyncio.get_running_loop()
        read_fd, write_fd = os.pipe()
        try:
            self._writer = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "gatekeeper.audit.writer_process",
                str(write_fd),
                stdin=asyncio.subprocess.PIPE,
                pass_fds=(write_fd, self.journal.lock_fd),  # the slot's lock lives as long as either
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        assert self._writer.stdin is not None
        self._writer.stdin.write(pickle.dumps(self.settings))
        with contextlib.suppress(ConnectionError):
            await self._writer.stdin.drain()
        os.set_blocking(read_fd, False)
        self._protocol_fd, self._lines = read_fd, b""
        self._ready = loop.create_future()
        self._exited = asyncio.Event()
        loop.add_reader(read_fd, self._on_protocol)
        try:
            await self._ready
        except BaseException:
            await self._writer.wait()
            raise
        self._exit_code = None

    def _on_protocol(self) -> None:
        try:
            chunk = os.read(self._protocol_fd, 65536)
        except BlockingIOError:
            return
        if not chunk:
            self._close_protocol()
            return
        *lines, self._lines = (self._lines + chunk).split(b"\n")
        for line in lines:
            self._on_report(line.decode().split(" ", 4))

    def _on_report(self, parts: list[str]) -> None:
        kind = parts[0]
        if kind == "R" and self._ready is not None and not self._ready.done():
            self._head = (int(parts[1]), parts[2] if len(parts) > 2 else "")
            self._ready.set_result(None)
        elif kind == "E" and self._ready is not None and not self._ready.done():
            self._ready.set_exception(OSError(f"audit writer: {' '.join(parts[1:])}"))
        elif kind == "F":  # the store refuses the writer's batch (it retries)
            if self.store_error is None:
                log.error(
                    "audit_store_refusing", chain_id=self.chain_id, error=" ".join(parts[1:]), lag=self.lag
                )
            self.store_error = " ".join(parts[1:]) or "unknown error"
            self._drain_to = self._appended
        elif kind == "C":
            if self.store_error is not None:
                log.warning("audit_store_recovered", chain_id=self.chain_id, lag=self.lag)
            self.store_error = None
            self._head = (int(parts[3]), parts[4])
            self._last_progress = time.monotonic()
            done = self.journal.committed(int(parts[1]), int(parts[2]))
            if done is not None and done > self._written:
                self._written = done
                self._committed()

    def _close_protocol(self) -> None:
        if self._protocol_fd >= 0:
            asyncio.get_running_loop().remove_reader(self._protocol_fd)
            os.close(self._protocol_fd)
            self._protocol_fd = -1
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(OSError("audit writer: exited before it was ready"))
        self._exited.set()
        self._committed()  # flush() waiters look again (and see the writer is gone)

    async def _restart_when_dead(self) -> None:
        while True:
            await self._exited.wait()
            writer = self._writer
            self._exit_code = await writer.wait() if writer is not None else None
            if self._stopping:
                return
            log.error(
                "audit_writer_exited",
                chain_id=self.chain_id,
                exit_code=self._exit_code,
                lag=self.lag,
                restart_in=RESTART_SECONDS,
                detail="calls are refused until it is back; the journal keeps their records",
            )
            await asyncio.sleep(RESTART_SECONDS)
            try:
                await self._spawn()
            except Exception as exc:  # the store may be down: try again; calls stay refused
                log.error(
                    "audit_writer_restart_failed",
                    chain_id=self.chain_id,
                    error=f"{type(exc).__name__}: {exc}",
                )
            else:
                self.store_error = None
                log.warning("audit_writer_restarted", chain_id=self.chain_id, lag=self.lag)

    async def flush(self) -> None:
        target = self._appended
        while self._written < target:
            if not self._started or (self._exited.is_set() and self._stopping):
                raise RuntimeError("the audit writer is not running")
            await self._progress.wait()

    async def stop(self, drain_seconds: float | None = 30.0) -> None:
        """Refuse new records; the writer process writes everything journaled and exits. Past
        ``drain_seconds`` it is killed: the journal keeps what it had not written, for the next
        start (logged as ``audit_stop_timeout``). Records the journal never took are logged in
        full (``audit_unwritten``), as ``AuditLog.stop`` does with what its store never took."""
        self._closed = True
        if not self._started:
            return
        self._stopping = True
        if self._journal_retry is not None:
            self._journal_retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._journal_retry
        with contextlib.suppress(OSError):
            while self._unjournaled:  # one last try
                self.journal.write(self._unjournaled[0])
                self._unjournaled.popleft()
        for fields in self._unjournaled:
            log.error("audit_unwritten", chain_id=self.chain_id, record=self.redactor.sanitize(fields))
        self._appended -= len(self._unjournaled)
        self._unjournaled.clear()
        writer = self._writer
        if writer is not None and writer.stdin is not None and writer.returncode is None:
            writer.stdin.close()  # the writer's signal: write what is left and exit
            try:
                await asyncio.wait_for(writer.wait(), drain_seconds)
            except TimeoutError:
                writer.kill()
                await writer.wait()
                log.error(
                    "audit_stop_timeout",
                    chain_id=self.chain_id,
                    unwritten=self.lag,
                    detail="kept in the audit journal; the next start writes them",
                )
            await self._exited.wait()
        if self._supervise is not None:
            self._supervise.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervise
        self.journal.close(everything_committed=self.lag == 0)
        self._started = False

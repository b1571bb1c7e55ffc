"""The audit writer process: ``python -m gatekeeper.audit.writer_process PROTOCOL_FD``, its
settings pickled on stdin by the serving process (its parent, the only writer of that pipe).

It tails the chain's journal segments (``journal``) in order, feeds each record to an ordinary
``AuditLog`` (redaction, chaining, hashing, batched commits to SQLite or PostgreSQL) and, after
each committed batch, tells its parent on PROTOCOL_FD how far it got: ``C SEGMENT LINES SEQ HASH``
(every line of earlier segments and the first LINES of SEGMENT are in the store; SEQ:HASH is the
chain head); ``F ERROR`` while the store refuses its writes (it retries; the serving process
refuses calls meanwhile). A segment it has committed whole, with a newer one present, it deletes.
Checkpoints are signed with the key at ``key_path``, exactly as the in-process log signs them.

At start it writes ``R SEQ HASH`` once the store is open (``E MESSAGE`` and exit 1 if it cannot
be), after reading what the segments already hold: records a previous writer committed but did not
report (the store's newest records, matched by decision id and time) are skipped, not written
twice. When its stdin reaches end of file it writes everything left and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import structlog

from ..logs import configure_logging
from ..tasks import stop_at_stdin_end
from .checkpoints import ensure_signer
from .journal import segments
from .log import AuditLog, make_sink

log = structlog.get_logger("gatekeeper.audit")

POLL_SECONDS = (0.005, 0.05)  # an idle writer looks for new lines ever less often, down to 20 times/s


@dataclass(frozen=True, slots=True)
class WriterSettings:
    store: str
    data_dir: Path
    schema: str
    chain_id: str
    journal_dir: Path
    journal_stem: str = ""  # the claimed slot's file name stem (journal.AuditJournal)
    batch_size: int = 500
    batch_window_seconds: float = 0.02
    checkpoint_seconds: float = 10.0
    max_queue: int = 100_000
    key_path: Path | None = None  # the checkpoint signing key (checkpoints.py); None: unsigned
    log_level: str = "info"


class _ReportingLog(AuditLog):
    """An AuditLog that reports each committed batch to the serving process."""

    def __init__(self, out_fd: int, **kw: Any) -> None:
        super().__init__(**kw)
        self.out_fd = out_fd
        self.positions: deque[tuple[int, int]] = deque()  # (segment, line number) per record
        self.reported = 0
        self.last: tuple[int, int] | None = None

    def _committed(self) -> None:
        super()._committed()
        while self.reported < self._written:
            self.last = self.positions.popleft()
            self.reported += 1
        if self.last is not None:
            seq, digest = self._head
            os.write(self.out_fd, f"C {self.last[0]} {self.last[1]} {seq} {digest}\n".encode())


class Tail:
    """Reads the journal's segments in order, as they grow; yields (segment, line no., fields)."""

    def __init__(self, folder: Path, stem: str) -> None:
        self.folder, self.stem = folder, stem
        self.segment = -1
        self.line = 0
        self._fd = -1
        self._buffer = b""

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _next_segment(self) -> bool:
        later = [(n, p) for n, p in segments(self.folder, self.stem) if n > self.segment]
        if not later:
            return False
        if self._buffer:
            log.error("audit_journal_torn_line", segment=self.segment, bytes=len(self._buffer))
        self.close()
        number, path = later[0]
        self._fd = os.open(path, os.O_RDONLY)
        self.segment, self.line, self._buffer = number, 0, b""
        return True

    def read(self) -> list[tuple[int, int, dict[str, Any]]]:
        """The complete lines that arrived since the last call (possibly none)."""
        out: list[tuple[int, int, dict[str, Any]]] = []
        while True:
            if self._fd < 0 and not self._next_segment():
                return out
            chunk = os.read(self._fd, 1 << 20)
            if not chunk:
                # At the end of this segment: move on only if a newer one exists, after one more
                # read (the serving process never writes to a segment once it started the next).
                # Segments are numbered one after another: the next one is the only one to look for.
                if not (self.folder / f"{self.stem}.{self.segment + 1}.jsonl").exists():
                    return out
                rest = os.read(self._fd, 1 << 20)
                if rest:
                    self._buffer += rest
                    continue
                self._take_lines(out)
                self._next_segment()
                continue
            self._buffer += chunk
            self._take_lines(out)

    def _take_lines(self, out: list[tuple[int, int, dict[str, Any]]]) -> None:
        *lines, self._buffer = self._buffer.split(b"\n")
        for raw in lines:
            self.line += 1
            try:
                fields = orjson.loads(raw)
            except orjson.JSONDecodeError:
                log.error(
                    "audit_journal_bad_line",
                    segment=self.segment,
                    line=self.line,
                    text=raw[:4000].decode(errors="replace"),
                )
                continue
            if isinstance(fields, dict):
                out.append((self.segment, self.line, fields))


async def write_chain(settings: WriterSettings, out_fd: int, stop: asyncio.Event) -> None:
    try:
        # The same signing key as an in-process log: the same checkpoints, verified alike.
        signer = ensure_signer(settings.key_path) if settings.key_path is not None else None
        sink = make_sink(settings.store, settings.data_dir, schema=settings.schema)
        audit = _ReportingLog(
            out_fd,
            sink=sink,
            chain_id=settings.chain_id,
            max_queue=settings.max_queue,
            batch_size=settings.batch_size,
            checkpoint_seconds=settings.checkpoint_seconds,
            batch_window_seconds=settings.batch_window_seconds,
            signer=signer,
        )
        await audit.start()
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        os.write(out_fd, f"E {message}\n".encode())
        raise
    failures = asyncio.create_task(_report_failures(audit, out_fd))
    stem = settings.journal_stem
    present = sum(p.read_bytes().count(b"\n") for _n, p in segments(settings.journal_dir, stem))
    stored: set[tuple[str, float]] = set()
    if present:
        head_seq = audit.head[0]
        async for record in sink.records(chain_id=settings.chain_id, after_seq=max(0, head_seq - present)):
            stored.add((record.decision_id, record.time))
    seq, digest = audit.head
    os.write(out_fd, f"R {seq} {digest}\n".encode())
    tail = Tail(settings.journal_dir, stem)
    draining = False
    reading = -1
    idle = POLL_SECONDS[0]
    try:
        while True:
            batch = tail.read()
            for segment, line, fields in batch:
                key = (str(fields.get("decision_id")), float(fields.get("time") or 0.0))
                if stored and key in stored:
                    stored.discard(key)
                    audit.last = (segment, line)  # in the store already: counts as committed
                    continue
                audit.positions.append((segment, line))
                await audit.append_wait(**fields)
            if batch or tail.segment != reading:
                reading = tail.segment
                _delete_finished(settings.journal_dir, stem, tail.segment, audit)
            if not batch:
                if stop.is_set():
                    if draining:  # this read began after the parent's last write: nothing more
                        break
                    draining = True
                    continue
                await asyncio.sleep(idle)
                idle = min(idle * 2, POLL_SECONDS[1])
            else:
                idle = POLL_SECONDS[0]
        await audit.flush()
        if audit.last is not None:
            seq, digest = audit.head
            os.write(out_fd, f"C {audit.last[0]} {audit.last[1]} {seq} {digest}\n".encode())
    finally:
        failures.cancel()
        tail.close()
        await audit.stop()


async def _report_failures(audit: AuditLog, out_fd: int) -> None:
    """``F ERROR`` to the serving process while the store refuses writes (it then refuses calls);
    the next ``C`` report says they succeed again."""
    reported: str | None = None
    while True:
        error = audit.last_error if audit.failing_for is not None else None
        if error is not None and error != reported:
            os.write(out_fd, b"F " + error.replace("\n", " ").encode() + b"\n")
        reported = error
        await asyncio.sleep(0.05)


def _delete_finished(folder: Path, stem: str, reading: int, audit: _ReportingLog) -> None:
    """Delete the segments before the one being read whose records are all committed."""
    keep_from = min(reading, audit.positions[0][0]) if audit.positions else reading
    for number, path in segments(folder, stem):
        if number < keep_from:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def main(argv: list[str]) -> int:
    out_fd = int(argv[0])
    # The pipe's only writer is our parent, the serving process, which pickled its own settings.
    settings = pickle.load(sys.stdin.buffer)  # noqa: S301 - from the parent that spawned us
    if not isinstance(settings, WriterSettings):
        raise SystemExit("gatekeeper audit writer: stdin did not hold its settings")
    configure_logging(settings.log_level)
    structlog.contextvars.bind_contextvars(audit_writer=settings.chain_id)
    # Ctrl-C or a service manager's SIGTERM reaches the whole process group: the writer leaves
    # stopping to its parent (stdin's end of file, also when the parent dies), so it always
    # drains the journal first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    async def run() -> None:
        stop = asyncio.Event()
        stop_at_stdin_end(stop)
        await write_chain(settings, out_fd, stop)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    # Run as ``-m``, this file is ``__main__``; the settings were pickled under the module's real
    # name, so run that module's ``main`` (its classes are the ones pickle finds).
    from gatekeeper.audit.writer_process import main as writer_main

    sys.exit(writer_main(sys.argv[1:]))

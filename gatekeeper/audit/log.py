"""The audit log: write-behind, in order, hash-chained, nothing lost.

``AuditLog.append(**fields)`` is what a decision costs the caller: a few checks and a
``deque.append`` (no I/O, no await, no hashing). One writer task per log takes the queue in
order, redacts, assigns ``seq`` and ``prev_hash``, computes ``hash`` and writes batches of up to
``batch_size`` records, one transaction each, to an ``AuditSink`` (SQLite or PostgreSQL).

Nothing lost:

- **sink failure**: the batch stays in memory (with the seqs it was given) and is retried with
  backoff (50 ms doubling to 1 s), while ``refusal()`` says why calls must not be forwarded;
  every failure is logged (``audit_write_failed``) with the lag,
  and the recovery too. A retried batch whose first attempt did commit is recognised by the
  sink (same seqs, same hashes) and not written twice. If the stored head moved under us
  (``ChainConflict``: another process with the same chain id, or rows deleted) the head is
  re-read and the unwritten records are re-chained onto it; that is logged as an error.
- **full queue**: ``append`` is synchronous, so it cannot block; once ``max_queue`` records are
  waiting it *refuses* with ``AuditBacklogFull`` (a 503 ``GatekeeperError``), logged loudly
  (``audit_backlog_full``, at most once per 5 s). The caller must then fail closed: a decision
  that cannot be recorded is not enforced as an allow. ``await append_wait(**fields)`` waits for
  room instead, for callers that can wait.
- **clean shutdown**: ``stop()`` drains the queue. If the sink stays down past ``stop``'s
  timeout, each unwritten record is logged in full at error level (``audit_unwritten``) so it
  still reaches the log pipeline, never silently dropped.

Redaction happens in the writer, before hashing: the stored and hashed arguments never held
the secret. The caller must not mutate objects it passed to ``append`` afterwards.

Anchors: after a batch, at most every ``checkpoint_seconds``, and at stop, the writer logs
``audit_checkpoint {chain_id, seq, hash}``. Shipped off the machine with the other logs, these
are the anchors ``gatekeeper audit verify --expect-head SEQ:HASH`` checks a chain against (a
removed or rewritten tail cannot be detected without one).
"""

from __future__ import annotations

import asyncio
import math
import re
import socket
import time
from collections import deque
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import Any

import structlog

from gatekeeper import codes

from ..errors import AuditBacklogFull, AuditClosed, ConfigError
from .checkpoints import Checkpoint, CheckpointSigner
from .record import SCHEMA_VERSION, AuditRecord, AuditSink, ChainConflict, canonical_json, chain_hash

log = structlog.get_logger("gatekeeper.audit")

# The number (1-based, in append order) of the last record this task appended: a handler that
# recorded its call waits on it (``AuditLog.wait_written``) before answering. 0: none.
appended_in_task: ContextVar[int] = ContextVar("gatekeeper_audit_appended", default=0)

REDACTED = "[redacted]"
DEFAULT_REDACT_KEYS = frozenset(
    {
        "password",
        "passwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "authorization",
        "cookie",
        "private_key",
        "access_key",
        "secret_key",
    }
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_MAX_DEPTH = 100


def _normalize_key(key: str) -> str:
    return key.lower().replace("-", "_").replace(" ", "_")


class Redactor:
    """Replaces the value of every sensitive key, at any depth, with ``"[redacted]"``.

    A key is sensitive when, normalised (lower-cased, ``-`` and spaces made ``_``; and again
    with camelCase split), it equals a configured key or ends with ``_<key>``: so ``Authorization``,
    ``X-Api-Key``, ``Set-Cookie``, ``db_password``, ``client_secret``, ``accessToken`` and
    ``aws_secret_access_key`` are all covered by the defaults, while ``max_tokens`` is not.
    Headers given as ``[name, value]`` pairs are covered too.

    ``sanitize`` also returns a JSON-only copy (tuples and sets become lists, other objects their
    ``str``, non-finite floats strings), so a record can always be hashed and stored.
    """

    def __init__(self, keys: Iterable[str] | None = None) -> None:
        chosen = DEFAULT_REDACT_KEYS if keys is None else keys
        self.keys = frozenset(_normalize_key(k) for k in chosen)
        self._suffixes = tuple("_" + k for k in self.keys)
        self.is_sensitive = lru_cache(maxsize=4096)(self._is_sensitive)

    def _is_sensitive(self, key: str) -> bool:
        for norm in (_normalize_key(key), _normalize_key(_CAMEL.sub("_", key))):
            if norm in self.keys or norm.endswith(self._suffixes):
                return True
        return False

    def sanitize(self, value: Any, _depth: int = 0) -> Any:
        if value is None or isinstance(value, str | bool | int):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else str(value)
        if _depth > _MAX_DEPTH:
            return "[too deep]"
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for k, v in value.items():
                key = k if isinstance(k, str) else str(k)
                out[key] = REDACTED if self.is_sensitive(key) else self.sanitize(v, _depth + 1)
            return out
        if isinstance(value, list | tuple | set | frozenset):
            items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
            result = []
            for item in items:
                if (
                    isinstance(item, list | tuple)
                    and len(item) == 2
                    and isinstance(item[0], str)
                    and self.is_sensitive(item[0])
                ):
                    result.append([item[0], REDACTED])
                else:
                    result.append(self.sanitize(item, _depth + 1))
            return result
        return str(value)


_REQUIRED = frozenset({"decision_id", "entry", "outcome", "code"})
_SET_BY_WRITER = frozenset({"seq", "prev_hash", "hash", "chain_id", "schema"})
_ALLOWED = frozenset(AuditRecord.__dataclass_fields__) - _SET_BY_WRITER
_OPTIONAL_STR = (
    "principal",
    "issuer",
    "tool",
    "digest",
    "rule",
    "reason",
    "policy_version",
    "approval_id",
    "operator",
)


def _str_tuple(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def default_chain_id(port: int) -> str:
    """This replica's chain: ``hostname:port`` of its agent listener."""
    return f"{socket.gethostname()}:{port}"


def make_sink(store: str, data_dir: Path, *, schema: str = "gatekeeper") -> AuditSink:
    """The sink for the configured store (``config.approvals.store``), not yet open: SQLite
    ``audit.sqlite3`` in the data folder, or the ``audit_records`` table in ``schema``."""
    value = (store or "").strip()
    if value.startswith(("postgresql://", "postgres://")):
        from .sink_postgres import PostgresAuditSink

        return PostgresAuditSink(value, schema=schema)
    if value in ("", "sqlite") or (value.endswith((".sqlite3", ".db")) and "://" not in value):
        from .sink_sqlite import FILE_NAME, SqliteAuditSink

        return SqliteAuditSink(Path(data_dir) / FILE_NAME)
    raise ConfigError("approvals.store: not understood by the audit log", key="approvals.store")


def backlog_refusal(lag: int, max_queue: int, age: float, max_seconds: float) -> str | None:
    """Why calls must wait for the audit writer to catch up (None: they need not): ``lag``
    records unwritten against the bound ``max_queue``, the oldest ``age`` seconds old."""
    if lag >= max_queue:
        return f"{lag} records wait to be written (the bound is {max_queue})"
    if age > max_seconds:
        return f"a record has waited {age:.1f} s to be written (the bound is {max_seconds:g} s)"
    return None


class AuditLog:
    """Write-behind, hash-chained audit log for one chain (one replica). Use from one event loop."""

    def __init__(
        self,
        sink: AuditSink,
        *,
        chain_id: str,
        redact: Redactor | None = None,
        max_queue: int = 100_000,
        batch_size: int = 100,  # small batches: chaining happens on the event loop, keep each slice short
        log_records: bool = False,
        checkpoint_seconds: float = 10.0,
        batch_window_seconds: float = 0.02,
        signer: CheckpointSigner | None = None,
    ) -> None:
        if not chain_id:
            raise ValueError("chain_id must be a non-empty string")
        self.sink = sink
        self.chain_id = chain_id
        self.redactor = redact or Redactor()
        self.max_queue = max_queue
        self.batch_size = max(1, batch_size)
        self.log_records = log_records
        self.checkpoint_seconds = checkpoint_seconds
        # Under load, waiting a few ms lets one transaction carry many records instead of one each.
        self.batch_window_seconds = batch_window_seconds
        self._queue: deque[dict[str, Any]] = deque()
        self._batch_fields: list[dict[str, Any]] = []
        self._batch: list[AuditRecord] = []
        self._bodies: list[str] = []
        self._head: tuple[int, str] = (0, "")
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._stopping = False
        self._closed = False
        self._appended = 0
        self._written = 0
        self._last_overflow_log = 0.0
        self._last_checkpoint = 0.0
        self._failing_since: float | None = None  # monotonic time of the first failed write in a row
        self._last_progress = time.monotonic()  # of the last commit, or of the first record to wait
        self.last_error: str | None = None
        # Signed checkpoints (checkpoints.py): one per batch, in the batch's transaction. The
        # previous one is replaced unless it was kept as history (one every checkpoint_seconds).
        self.signer = signer
        self._signed: Checkpoint | None = None
        self._signed_kept = True
        self._last_kept = 0.0

    # -- the caller's side ----------------------------------------------------------------------

    def append(self, **fields: Any) -> None:
        """Queue one decision's record. Never awaits; raises ``AuditBacklogFull`` when the queue
        is full (fail closed), ``AuditClosed`` after ``stop``, ``TypeError`` for bad fields."""
        self.append_record(fields)

    def append_record(self, fields: dict[str, Any]) -> None:
        """``append`` for a dict the caller hands over: it is queued as is, not copied, so the
        caller must not change it afterwards (the decision recorder builds a fresh one per call)."""
        if self._closed:
            raise AuditClosed("the audit log is stopped")
        lag = self.lag
        if lag >= self.max_queue:
            self._overflow()
        if not lag:
            self._last_progress = time.monotonic()  # the first record to wait since the last write
        if not fields.keys() <= _ALLOWED:
            raise TypeError(f"unknown audit fields: {sorted(fields.keys() - _ALLOWED)}")
        if not _REQUIRED <= fields.keys():
            raise TypeError(f"missing audit fields: {sorted(_REQUIRED - fields.keys())}")
        if "time" not in fields:
            fields["time"] = time.time()
        self._accept(fields)
        appended_in_task.set(self._appended)

    def _accept(self, fields: dict[str, Any]) -> None:
        """Take checked fields: queue them and wake the writer (``offloop`` journals them)."""
        self._queue.append(fields)
        self._appended += 1
        if not self._wake.is_set():
            self._wake.set()

    async def append_wait(self, **fields: Any) -> None:
        """``append``, but wait for room when the queue is full."""
        while not self._closed and self.lag >= self.max_queue:
            await self._progress.wait()
        self.append(**fields)

    def _overflow(self) -> None:
        now = time.monotonic()
        if now - self._last_overflow_log >= 5.0:
            self._last_overflow_log = now
            log.error(
                "audit_backlog_full",
                chain_id=self.chain_id,
                lag=self.lag,
                max_queue=self.max_queue,
                detail="refusing calls until the audit store catches up",
            )
        raise AuditBacklogFull("the audit trail is not keeping up; the call cannot be recorded", lag=self.lag)

    @property
    def lag(self) -> int:
        """Records accepted but not yet committed to the sink."""
        return len(self._queue) + len(self._batch_fields)

    @property
    def appended(self) -> int:
        """Records accepted so far: the n-th record appended is committed once ``written >= n``."""
        return self._appended

    @property
    def written(self) -> int:
        return self._written

    @property
    def failing_for(self) -> float | None:
        """Seconds since the store started failing writes (None while writes succeed)."""
        since = self._failing_since
        return None if since is None else time.monotonic() - since

    def oldest_unwritten_age(self) -> float:
        """Seconds since the writer last made progress while records wait (0 when none waits):
        how long the oldest waiting record has waited, at most (records keep their own times,
        which need not be now)."""
        if not self.lag:
            return 0.0
        return time.monotonic() - self._last_progress

    def refusal(self, max_seconds: float) -> str | None:
        """Why calls must not be forwarded now (None: they may). The bound on what runs ahead of
        the store: no failing writes, fewer than ``max_queue`` records waiting, none waiting
        longer than ``max_seconds``."""
        if self._task is None or self._task.done():
            return "the audit writer is not running"
        if self._failing_since is not None:
            return f"the audit store refuses writes ({self.last_error})"
        lag = self.lag  # asked before every forwarded call: read once (oldest_unwritten_age, inline)
        age = time.monotonic() - self._last_progress if lag else 0.0
        return backlog_refusal(lag, self.max_queue, age, max_seconds)

    async def wait_written(self, count: int, within_seconds: float) -> bool:
        """True once the first ``count`` records appended are committed; False after ``within_seconds``."""
        try:
            async with asyncio.timeout(within_seconds):
                while self._written < count:
                    if self._task is None or self._task.done():
                        return False
                    await self._progress.wait()
        except TimeoutError:
            return False
        return True

    async def wait_durable(self, count: int, within_seconds: float) -> bool:
        """True once the first ``count`` records appended would survive a crash of this process
        (``audit.durable_answers``): here, once committed; ``offloop``: once in its journal."""
        return await self.wait_written(count, within_seconds)

    @property
    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last record committed by this log (after ``start``)."""
        return self._head

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the sink, read the chain head, start the writer. Raises if the store is down."""
        if self._task is not None:
            return
        await self.sink.open()
        self._head = await self.sink.head(self.chain_id)
        self._stopping = False
        self._closed = False
        self._last_checkpoint = time.monotonic()
        self._task = asyncio.create_task(self._run(), name=f"gatekeeper-audit-writer:{self.chain_id}")

    async def flush(self) -> None:
        """Wait until every record appended before this call is committed."""
        target = self._appended
        while self._written < target:
            if self._task is None or self._task.done():
                raise RuntimeError("the audit writer is not running")
            await self._progress.wait()

    async def stop(self, drain_seconds: float | None = 30.0) -> None:
        """Refuse new records, write everything queued, close the sink. If the sink stays down
        past ``drain_seconds``, log each unwritten record in full (``audit_unwritten``)."""
        self._closed = True
        task = self._task
        if task is not None:
            self._stopping = True
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(task), drain_seconds)
            except TimeoutError:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                unwritten = [*self._batch_fields, *self._queue]
                log.error(
                    "audit_stop_timeout",
                    chain_id=self.chain_id,
                    unwritten=len(unwritten),
                    detail="the audit store did not take these records; they follow as log lines",
                )
                for fields in unwritten:
                    log.error(
                        "audit_unwritten", chain_id=self.chain_id, record=self.redactor.sanitize(fields)
                    )
                self._queue.clear()
                self._batch_fields, self._batch, self._bodies = [], [], []
            self._task = None
            self._checkpoint(force=True)
        elif self._queue:  # appended but never started: nothing can write them
            for fields in self._queue:
                log.error("audit_unwritten", chain_id=self.chain_id, record=self.redactor.sanitize(fields))
            self._queue.clear()
        await self.sink.close()

    # -- the writer -----------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = 0.05
        failing = False
        while True:
            if not self._batch_fields:
                if not self._queue:
                    if self._stopping:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                if len(self._queue) < self.batch_size and not self._stopping and self.batch_window_seconds:
                    await asyncio.sleep(self.batch_window_seconds)
                count = min(len(self._queue), self.batch_size)
                self._batch_fields = [self._queue.popleft() for _ in range(count)]
                self._chain_batch()
            try:
                await self._write_batch()
            except asyncio.CancelledError:
                raise
            except ChainConflict as exc:
                log.error("audit_chain_conflict", chain_id=self.chain_id, error=str(exc))
                try:
                    self._head = await self.sink.head(self.chain_id)
                    self._chain_batch()
                except Exception as head_exc:  # retried below
                    log.error("audit_head_unreadable", chain_id=self.chain_id, error=str(head_exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            except Exception as exc:  # any sink failure: keep the batch, retry
                failing = True
                if self._failing_since is None:
                    self._failing_since = time.monotonic()
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error(
                    "audit_write_failed",
                    chain_id=self.chain_id,
                    error=f"{type(exc).__name__}: {exc}",
                    lag=self.lag,
                    retry_in=delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            if failing:
                failing = False
                log.warning("audit_write_recovered", chain_id=self.chain_id, lag=self.lag)
            self._failing_since = None
            self._last_progress = time.monotonic()
            delay = 0.05
            last = self._batch[-1]
            self._head = (last.seq, last.hash)
            if self.log_records:
                for record in self._batch:
                    log.info("audit_record", record=record.to_json())
            self._written += len(self._batch)
            self._batch_fields, self._batch, self._bodies = [], [], []
            self._committed()
            self._checkpoint()

    def _committed(self) -> None:
        """A batch is in the store: wake whoever waits for progress (``writer_process`` also
        reports it to the serving process)."""
        progress, self._progress = self._progress, asyncio.Event()
        progress.set()

    async def _write_batch(self) -> None:
        if self.signer is None:
            await self.sink.write(self._batch, self._bodies)
            return
        last = self._batch[-1]
        signed = self.signer.sign(self.chain_id, last.seq, last.hash)
        previous = self._signed
        superseded = previous.seq if previous is not None and not self._signed_kept else None
        await self.sink.write(self._batch, self._bodies, signed, superseded)
        now = time.monotonic()
        self._signed = signed
        self._signed_kept = now - self._last_kept >= self.checkpoint_seconds
        if self._signed_kept:
            self._last_kept = now

    def _checkpoint(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_checkpoint >= self.checkpoint_seconds:
            self._last_checkpoint = now
            seq, digest = self._head
            signed = self._signed if self._signed is not None and self._signed.seq == seq else None
            if seq and signed is not None:
                log.info(
                    "audit_checkpoint",
                    chain_id=self.chain_id,
                    seq=seq,
                    hash=digest,
                    signed_at=signed.time,
                    key_id=signed.key_id,
                    signature=signed.signature,
                )
            elif seq:
                log.info("audit_checkpoint", chain_id=self.chain_id, seq=seq, hash=digest)

    def _chain_batch(self) -> None:
        """(Re)assign seq and prev_hash to the pending batch, from the current head."""
        seq, prev = self._head
        records: list[AuditRecord] = []
        bodies: list[str] = []
        for fields in self._batch_fields:
            seq += 1
            record, body = self.build(fields, seq=seq, prev_hash=prev)
            records.append(record)
            bodies.append(body)
            prev = record.hash
        self._batch, self._bodies = records, bodies

    def build(self, fields: Mapping[str, Any], *, seq: int, prev_hash: str) -> tuple[AuditRecord, str]:
        """One chained record from appended fields, and its canonical body text."""
        try:
            return self._build(fields, seq, prev_hash)
        except Exception as exc:  # a record is never dropped for a bad field
            log.error("audit_field_error", chain_id=self.chain_id, error=f"{type(exc).__name__}: {exc}")
            fallback = {
                "decision_id": str(fields.get("decision_id")),
                "entry": "audit_error",
                "outcome": "error",
                "code": codes.AUDIT_FIELD_ERROR,
                "time": time.time(),
                "extra": {"error": f"{type(exc).__name__}: {exc}", "fields": self._redacted_repr(fields)},
            }
            return self._build(fallback, seq, prev_hash)

    def _redacted_repr(self, fields: Mapping[str, Any]) -> str:
        """The fields of a record that could not be built, redacted, for people to look at."""
        try:
            return repr(self.redactor.sanitize(dict(fields)))[:4000]
        except Exception as exc:  # the fallback record must always be buildable
            return f"(unrepresentable: {type(exc).__name__})"

    def _build(self, f: Mapping[str, Any], seq: int, prev_hash: str) -> tuple[AuditRecord, str]:
        sanitize = self.redactor.sanitize
        roles = _str_tuple(f.get("roles"))
        capabilities = _str_tuple(f.get("capabilities"))
        shadow = f.get("shadow")
        latency = f.get("latency_ms")
        values: dict[str, Any] = {
            "seq": seq,
            "time": float(f["time"]),
            "decision_id": str(f["decision_id"]),
            "entry": str(f["entry"]),
            "outcome": str(f["outcome"]),
            "code": str(f["code"]),
            "arguments": sanitize(f.get("arguments")),
            "shadow": None
            if shadow is None
            else sanitize(shadow if isinstance(shadow, Mapping) else {"value": shadow}),
            "mode": str(f.get("mode", "enforce")),
            "enforced": bool(f.get("enforced", True)),
            "latency_ms": None if latency is None else float(latency),
            "schema": SCHEMA_VERSION,
            "prev_hash": prev_hash,
            "extra": sanitize(dict(f.get("extra") or {})),
            "chain_id": self.chain_id,
        }
        for name in _OPTIONAL_STR:
            values[name] = _opt_str(f.get(name))
        body = {**values, "roles": list(roles), "capabilities": list(capabilities)}
        text = canonical_json(body)
        digest = chain_hash(prev_hash, text)
        record = AuditRecord(**values, roles=roles, capabilities=capabilities, hash=digest)
        return record, text

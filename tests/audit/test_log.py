"""The write-behind audit log: order, nothing lost, caller cost, redaction, restart, retries."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.audit.log import REDACTED, AuditLog, Redactor
from gatekeeper.audit.record import GENESIS_HASH, AuditRecord, AuditSink, chain_hash
from gatekeeper.audit.sink_sqlite import SqliteAuditSink
from gatekeeper.audit.verify import verify
from gatekeeper.errors import AuditBacklogFull, AuditClosed

from .conftest import RawSql, SinkFactory, decision


async def all_records(sink: AuditSink, chain_id: str | None = None) -> list[AuditRecord]:
    return [r async for r in sink.records(chain_id=chain_id)]


async def test_concurrent_appends_keep_append_order(sink: AuditSink) -> None:
    log = AuditLog(sink, chain_id="r1", batch_size=37)
    await log.start()
    appended: list[str] = []

    async def agent(task: int) -> None:
        for i in range(100):
            decision_id = f"t{task}-{i}"
            log.append(**decision(i, decision_id=decision_id))
            appended.append(decision_id)
            if i % 7 == 0:
                await asyncio.sleep(0)

    await asyncio.gather(*(agent(t) for t in range(40)))
    await log.flush()
    records = await all_records(sink, "r1")
    assert [r.seq for r in records] == list(range(1, 4001))
    assert [r.decision_id for r in records] == appended  # the order append() was called in
    prev = GENESIS_HASH
    for r in records:
        assert r.prev_hash == prev and r.compute_hash() == r.hash and r.chain_id == "r1"
        prev = r.hash
    assert log.head == (4000, prev)
    await log.stop()


async def test_stop_drains_everything(make_sink: SinkFactory) -> None:
    sink = make_sink()
    log = AuditLog(sink, chain_id="r1", batch_size=100)
    await log.start()
    for i in range(5000):
        log.append(**decision(i))
    assert log.lag > 0  # nothing was written on the caller's path
    await log.stop()
    assert log.lag == 0
    with pytest.raises(AuditClosed):
        log.append(**decision(1))
    reader = make_sink()
    await reader.open()
    try:
        report = await verify(reader)
        assert report.ok, report.findings
        assert report.records == 5000
        assert report.chains["r1"].head_seq == 5000
    finally:
        await reader.close()


async def test_append_is_synchronous_and_writes_nothing_itself(sink: AuditSink) -> None:
    """The caller's cost is a queue append: nothing is written (and nothing awaited) on its path.
    How cheap that is, is measured by bench/audit_bench.py, not asserted here."""
    assert not inspect.iscoroutinefunction(AuditLog.append)
    assert not inspect.iscoroutinefunction(AuditLog.append_record)
    log = AuditLog(sink, chain_id="r1")
    await log.start()
    fields = [decision(i) for i in range(10_000)]
    for i, f in enumerate(fields):
        lag = log.lag
        if i % 2:
            log.append(**f)
        else:
            log.append_record(dict(f))
        assert log.lag == lag + 1  # queued, not written
        if i % 100 == 99:
            await asyncio.sleep(0)  # let the writer run, as a server would between requests
    await log.flush()
    assert log.lag == 0
    assert (await verify(sink)).records == 10_000
    await log.stop()


async def test_redaction_happens_before_hashing(sink: AuditSink, raw_sql: RawSql) -> None:
    log = AuditLog(sink, chain_id="r1")
    await log.start()
    log.append(
        **decision(
            1,
            tool="http.fetch",
            arguments={
                "url": "https://api.example.com/",
                "headers": {"Authorization": "Bearer sk-live-1", "Cookie": "s=2", "X-Api-Key": "k3"},
                "body": {"user": "bob", "PassWord": "hunter2", "nested": [{"client_secret": "c4"}]},
                "pairs": [["authorization", "Bearer sk-live-5"], ["accept", "json"]],
                "max_tokens": 100,
            },
            extra={"token": "t6"},
        )
    )
    await log.flush()
    (record,) = await all_records(sink)
    args = record.arguments
    assert args["headers"] == {"Authorization": REDACTED, "Cookie": REDACTED, "X-Api-Key": REDACTED}
    assert args["body"] == {"user": "bob", "PassWord": REDACTED, "nested": [{"client_secret": REDACTED}]}
    assert args["pairs"] == [["authorization", REDACTED], ["accept", "json"]]
    assert args["max_tokens"] == 100
    assert record.extra == {"token": REDACTED}
    assert record.compute_hash() == record.hash  # the hash covers the redacted form
    (stored,) = await raw_sql("SELECT body FROM audit_records")
    for secret in ("sk-live-1", "s=2", "k3", "hunter2", "c4", "sk-live-5", "t6"):
        assert secret not in stored[0]
    await log.stop()


def test_redactor_keys() -> None:
    r = Redactor()
    for key in (
        "password",
        "PASSWD",
        "Secret",
        "token",
        "api_key",
        "ApiKey",
        "authorization",
        "Set-Cookie",
        "private_key",
        "aws_secret_access_key",
        "secret_key",
        "accessToken",
        "X-Api-Key",
        "db_password",
    ):
        assert r.is_sensitive(key), key
    for key in ("max_tokens", "tokenizer", "path", "cmd", "keyboard", "secretary"):
        assert not r.is_sensitive(key), key
    custom = Redactor({"ssn"})
    assert custom.sanitize({"SSN": 1, "password": "x"}) == {"SSN": REDACTED, "password": "x"}
    assert r.sanitize({"a": (1, 2), "b": float("nan"), "c": object.__new__(object)})["a"] == [1, 2]


async def test_restart_continues_the_chain(make_sink: SinkFactory) -> None:
    first = AuditLog(make_sink(), chain_id="r1")
    await first.start()
    for i in range(10):
        first.append(**decision(i))
    await first.stop()
    head = first.head
    assert head[0] == 10

    second = AuditLog(make_sink(), chain_id="r1")
    await second.start()
    assert second.head == head
    for i in range(5):
        second.append(**decision(100 + i))
    await second.flush()
    records = await all_records(second.sink, "r1")
    assert [r.seq for r in records] == list(range(1, 16))
    assert records[10].prev_hash == head[1]
    assert (await verify(second.sink)).ok
    await second.stop()


async def test_replicas_write_their_own_chains(sink: AuditSink) -> None:
    a = AuditLog(sink, chain_id="host-a:8080")
    b = AuditLog(sink, chain_id="host-b:8080")
    await a.start()
    await b.start()
    for i in range(300):
        (a if i % 2 else b).append(**decision(i))
    await a.flush()
    await b.flush()
    report = await verify(sink)
    assert report.ok and report.records == 300
    assert {k: v.head_seq for k, v in report.chains.items()} == {"host-a:8080": 150, "host-b:8080": 150}


class FlakySink:
    """Wraps a sink; fails the first ``failures`` writes, optionally after committing them."""

    def __init__(self, inner: AuditSink, failures: int, *, after_commit: bool = False) -> None:
        self.inner = inner
        self.location = inner.location
        self.failures = failures
        self.after_commit = after_commit
        self.attempts = 0

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def head(self, chain_id: str) -> tuple[int, str]:
        return await self.inner.head(chain_id)

    async def write(self, records: Sequence[AuditRecord], bodies: Sequence[str] | None = None) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            if self.after_commit:
                await self.inner.write(records, bodies)
            raise OSError("connection reset by peer")
        await self.inner.write(records, bodies)

    async def chains(self) -> list[str]:
        return await self.inner.chains()

    def records(self, **kw: Any) -> Any:
        return self.inner.records(**kw)

    def raw_chunks(self, **kw: Any) -> Any:
        return self.inner.raw_chunks(**kw)


@pytest.mark.parametrize("after_commit", [False, True], ids=["lost", "committed-but-unacknowledged"])
async def test_sink_failure_is_retried(
    sink: AuditSink, after_commit: bool, log_output: list[dict[str, Any]]
) -> None:
    flaky = FlakySink(sink, failures=3, after_commit=after_commit)
    log = AuditLog(flaky, chain_id="r1", batch_size=50)
    await log.start()
    for i in range(120):
        log.append(**decision(i))
    await asyncio.wait_for(log.flush(), timeout=10)
    assert flaky.attempts >= 3 + 3
    report = await verify(sink)
    assert report.ok, report.findings
    assert report.records == 120  # none lost, none written twice
    events = [e["event"] for e in log_output]
    assert events.count("audit_write_failed") == 3
    assert "audit_write_recovered" in events
    await log.stop()


async def test_same_chain_id_twice_is_rechained_not_forked(make_sink: SinkFactory, log_output: Any) -> None:
    a = AuditLog(make_sink(), chain_id="dup", batch_size=10)
    b = AuditLog(make_sink(), chain_id="dup", batch_size=10)
    await a.start()
    await b.start()
    for i in range(50):
        a.append(**decision(i))
        b.append(**decision(1000 + i))
    await asyncio.wait_for(asyncio.gather(a.flush(), b.flush()), timeout=20)
    report = await verify(a.sink)
    assert report.ok, report.findings
    assert report.records == 100
    assert any(e["event"] == "audit_chain_conflict" for e in log_output)
    await a.stop()
    await b.stop()


async def test_full_queue_refuses_loudly(sink: AuditSink, log_output: list[dict[str, Any]]) -> None:
    log = AuditLog(sink, chain_id="r1", max_queue=10)
    for i in range(10):
        log.append(**decision(i))
    with pytest.raises(AuditBacklogFull) as exc:
        log.append(**decision(10))
    assert exc.value.status == 503
    assert any(e["event"] == "audit_backlog_full" for e in log_output)
    await log.start()
    await log.flush()
    log.append(**decision(11))  # room again once the writer caught up
    await log.flush()
    assert (await verify(sink)).records == 11
    await log.stop()


async def test_bad_fields_are_refused_at_append(sink: AuditSink) -> None:
    log = AuditLog(sink, chain_id="r1")
    with pytest.raises(TypeError, match="unknown"):
        log.append(**decision(1), colour="red")
    with pytest.raises(TypeError, match="unknown"):
        log.append(**decision(1), seq=5)
    with pytest.raises(TypeError, match="missing"):
        log.append(decision_id="x", entry="invoke", outcome="allowed")


async def test_writer_hash_matches_the_record_rule(tmp_path: Path) -> None:
    log = AuditLog(SqliteAuditSink(tmp_path / "never-opened.db"), chain_id="r1")  # build() does no I/O
    record, body = log.build(decision(3, shadow={"outcome": "denied"}), seq=4, prev_hash="ab" * 32)
    assert body == record.canonical()
    assert record.hash == record.compute_hash() == chain_hash("ab" * 32, body)
    assert AuditRecord.from_json(record.to_json()) == record


async def test_refusal_while_the_store_fails_and_bounds(sink: AuditSink, log_output: Any) -> None:
    """What the gate asks before forwarding a call: refused while writes fail, past the record
    bound or the time bound; and a record's commit can be waited for, with a deadline."""
    flaky = FlakySink(sink, failures=2)
    log = AuditLog(flaky, chain_id="r1", max_queue=5)
    assert log.refusal(1.0) == "the audit writer is not running"
    await log.start()
    assert log.refusal(1.0) is None
    log.append(**decision(1))
    mine = log.appended
    assert not await log.wait_written(mine, 0.03)  # the first write fails
    assert log.refusal(1.0) is not None and "refuses writes" in str(log.refusal(1.0))
    assert await log.wait_written(mine, 5.0)  # retried: committed
    assert log.refusal(1.0) is None and log.failing_for is None
    await log.stop()

    stalled = FlakySink(sink, failures=0)
    release = asyncio.Event()

    async def hang(records: Any, bodies: Any = None, *more: Any) -> None:
        await release.wait()  # a store that takes a write and does not answer
        await sink.write(records, bodies, *more)

    stalled.write = hang  # type: ignore[method-assign]
    slow = AuditLog(stalled, chain_id="r2", max_queue=3, batch_size=1)
    await slow.start()
    for i in range(2):
        slow.append(**decision(i))
    await asyncio.sleep(0.05)
    assert "waited" in str(slow.refusal(0.01)) and slow.refusal(10.0) is None
    slow.append(**decision(3))
    assert "records wait" in str(slow.refusal(10.0))
    release.set()
    await asyncio.wait_for(slow.flush(), 5)
    assert slow.refusal(0.01) is None
    await slow.stop()

"""The audit writer in a thread of its own: order, back-pressure, retries, the journal, and a
real process killed with SIGKILL under load losing no record of a call it answered."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gatekeeper.audit.journal import AuditJournal, segments
from gatekeeper.audit.log import REDACTED, make_sink
from gatekeeper.audit.offloop import OffLoopAuditLog
from gatekeeper.audit.record import AuditRecord
from gatekeeper.audit.verify import verify
from gatekeeper.errors import AuditBacklogFull
from gatekeeper.identity import ensure_dev_key
from gatekeeper.identity.minting import issue_token

from ..helpers import throwaway_schema
from .conftest import decision
from .test_log import all_records


@pytest.fixture
async def spec(backend: str, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    """How an OffLoopAuditLog names its store (its writer process opens its own sink)."""
    if backend == "sqlite":
        yield {"store": "sqlite", "data_dir": tmp_path / "home", "schema": "gatekeeper"}
        return
    async with throwaway_schema("gk_audit_offloop") as (dsn, schema):
        yield {"store": dsn, "data_dir": tmp_path / "home", "schema": schema}


def offloop(spec: dict[str, Any], **kw: Any) -> OffLoopAuditLog:
    return OffLoopAuditLog(spec["store"], spec["data_dir"], schema=spec["schema"], chain_id="r1", **kw)


async def stored(spec: dict[str, Any]) -> list[AuditRecord]:
    sink = make_sink(spec["store"], spec["data_dir"], schema=spec["schema"])
    await sink.open()
    try:
        report = await verify(sink)
        assert report.ok, report.findings
        return await all_records(sink)
    finally:
        await sink.close()


def ids(n: int, start: int = 0) -> list[str]:
    return [decision(i)["decision_id"] for i in range(start, start + n)]


async def test_records_are_chained_and_written_by_another_process_in_order(spec: dict[str, Any]) -> None:
    log = offloop(spec)
    await log.start()
    assert log._writer is not None and log._writer.pid != os.getpid()
    for i in range(1000):
        log.append(**decision(i))
        if i % 100 == 0:
            await asyncio.sleep(0)
    await asyncio.wait_for(log.flush(), 30)
    assert log.lag == 0 and log.head[0] == 1000
    await log.stop()
    records = await stored(spec)
    assert [r.decision_id for r in records] == ids(1000)
    assert [r.seq for r in records] == list(range(1, 1001))
    assert not list((spec["data_dir"] / "audit-journal").glob("*.jsonl"))  # nothing left to replay


async def test_a_stalled_writer_makes_calls_refused_past_the_bound_and_loses_nothing(
    spec: dict[str, Any],
) -> None:
    log = offloop(spec, max_queue=10)
    await log.start()
    assert log._writer is not None
    os.kill(log._writer.pid, signal.SIGSTOP)  # the writer (the store, in effect) stops keeping up
    try:
        accepted = 0
        with pytest.raises(AuditBacklogFull):
            for i in range(11):
                log.append(**decision(i))
                accepted += 1
        assert accepted == 10  # the 11th is refused: its call would not be forwarded
    finally:
        os.kill(log._writer.pid, signal.SIGCONT)
    await asyncio.wait_for(log.flush(), 30)
    log.append(**decision(10))  # room again
    await log.stop()
    assert [r.decision_id for r in await stored(spec)] == ids(11)


async def test_a_killed_writer_is_restarted_and_writes_each_record_once(spec: dict[str, Any]) -> None:
    log = offloop(spec)
    await log.start()
    for i in range(200):
        log.append(**decision(i))
    assert log._writer is not None
    first = log._writer.pid
    os.kill(first, signal.SIGKILL)  # maybe mid-batch: some committed, not all reported
    for i in range(200, 400):
        log.append(**decision(i))
    await asyncio.wait_for(log.flush(), 60)
    assert log._writer.pid != first
    await log.stop()
    assert [r.decision_id for r in await stored(spec)] == ids(400)


async def test_what_a_dead_process_journaled_is_written_first_once_and_redacted(spec: dict[str, Any]) -> None:
    first = offloop(spec)
    await first.start()
    for i in range(5):
        first.append(**decision(i))
    await first.flush()  # these five are stored...
    assert first._writer is not None
    os.kill(first._writer.pid, signal.SIGSTOP)
    first.append(**{**decision(5), "arguments": {"password": "hunter2", "n": 5}})
    first.append(**decision(6))  # ...these two only journaled when the process "dies"
    journaled = b"".join(p.read_bytes() for p in (spec["data_dir"] / "audit-journal").glob("*.jsonl"))
    assert b"hunter2" not in journaled and REDACTED.encode() in journaled
    os.kill(first._writer.pid, signal.SIGKILL)  # the whole service is killed: server and writer
    await first._writer.wait()
    first._stopping = True
    first.journal.close(everything_committed=False)
    second = offloop(spec)
    await second.start()
    second.append(**decision(7))
    await second.flush()
    await second.stop()
    records = await stored(spec)
    assert [r.decision_id for r in records] == ids(8)
    assert records[5].arguments == {"password": REDACTED, "n": 5}


def test_the_journal_rotates_once_the_writer_caught_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gatekeeper.audit.journal as journal_module

    monkeypatch.setattr(journal_module, "ROTATE_BYTES", 200)
    journal = AuditJournal(tmp_path, "host:8080/w0", lambda f: f)
    journal.open()
    for i in range(10):
        journal.write({"decision_id": f"d{i}", "pad": "x" * 60})
    assert journal.committed(0, 5) == 5 and journal.segment == 0  # behind: no new segment yet
    assert journal.committed(0, 10) == 10 and journal.segment == 1  # caught up and big: rotated
    journal.write({"decision_id": "d10"})
    assert journal.committed(1, 1) == 11
    names = [p.name for _n, p in segments(tmp_path, journal.stem)]
    assert names == ["host_8080_w0.s0.0.jsonl", "host_8080_w0.s0.1.jsonl"]
    other = AuditJournal(tmp_path, "host:8080/w0", lambda f: f)
    other.open()  # a second live process on the same chain: a journal of its own
    assert other.stem == "host_8080_w0.s1"
    other.close(everything_committed=True)
    journal.close(everything_committed=True)
    assert segments(tmp_path, journal.stem) == []


# -- a real process, SIGKILL under load --------------------------------------------------------------

POLICY_DIR = Path(__file__).resolve().parents[2] / "policies"


def _serve(config: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gatekeeper", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        if '"gatekeeper_started"' in line:
            threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe drained
            return proc, str(json.loads(line)["agent"])
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise AssertionError("gatekeeper did not start")


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        return [int(p) for p in fh.read().split()]


def _close(proc: subprocess.Popen[str]) -> None:
    time.sleep(0.2)  # the draining thread reads to the end of the pipe
    if proc.stdout is not None:
        proc.stdout.close()


async def test_sigkill_under_load_loses_no_record_of_an_answered_call(tmp_path: Path) -> None:
    config = tmp_path / "gk.yaml"
    home = tmp_path / "home"
    config.write_text(
        f"data_dir: {home}\nlisteners:\n  agent: {{port: 0}}\n  operator: {{port: 0}}\n"
        "demo: {http_port: 0, mcp_port: 0}\n"
        f"policy:\n  model: {POLICY_DIR / 'model.conf'}\n  policy: {POLICY_DIR / 'policy.csv'}\n"
        f"  tools: {POLICY_DIR / 'tools.yaml'}\n  budgets: null\n"
        "audit: {writer: process}\n"
    )
    token = issue_token(ensure_dev_key(home), subject="agent-1", roles=["agent"])
    proc, agent = await asyncio.to_thread(_serve, config)
    answered: list[str] = []
    stop = asyncio.Event()
    enough = asyncio.Event()

    async def caller(http: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            try:
                async with http.post(
                    f"{agent}/v1/invoke",
                    json={"tool": "shell.exec", "arguments": {"cmd": "ls"}},
                    headers={"Authorization": f"Bearer {token}"},
                ) as resp:
                    body = await resp.json()
            except (aiohttp.ClientError, ValueError):
                return  # the server is gone: this call was never answered
            assert resp.status == 200, body
            answered.append(body["decision_id"])
            if len(answered) >= 300:
                enough.set()

    async with aiohttp.ClientSession() as http:
        callers = [asyncio.create_task(caller(http)) for _ in range(16)]
        await asyncio.wait_for(enough.wait(), 120)
        # The whole service is killed under load (its audit writer first, as a cgroup kill would
        # take both): calls in flight, records journaled but not all committed.
        for writer in _children(proc.pid):
            os.kill(writer, signal.SIGKILL)
        os.kill(proc.pid, signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 10)
        stop.set()
        await asyncio.gather(*callers)
        _close(proc)
    journal = (home / "audit-journal").glob("*.jsonl")
    assert any(p.stat().st_size for p in journal)  # the store was behind when it died
    db = sqlite3.connect(home / "audit.sqlite3")
    try:
        before = {d for (d,) in db.execute("SELECT json_extract(body, '$.decision_id') FROM audit_records")}
    finally:
        db.close()
    assert set(answered) - before, "the store already had every record: the test proved nothing"
    # Restart: the journal is replayed before the first call is taken.
    proc, agent = await asyncio.to_thread(_serve, config)
    async with aiohttp.ClientSession() as http, http.get(f"{agent}/healthz") as resp:
        assert resp.status == 200  # serving, so its signal handlers are in place
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(proc.wait, 60) == 0
    _close(proc)
    db = sqlite3.connect(home / "audit.sqlite3")
    try:
        rows = [d for (d,) in db.execute("SELECT json_extract(body, '$.decision_id') FROM audit_records")]
    finally:
        db.close()
    assert set(answered) <= set(rows), f"{len(set(answered) - set(rows))} answered calls lost their record"
    assert len(rows) == len(set(rows))  # none written twice
    verified = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "gatekeeper", "audit", "verify", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr

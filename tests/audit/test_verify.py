"""verify(): every kind of tampering, found at the right seq, on SQLite (sqlite3) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gatekeeper.audit.export import JsonlReader, export_jsonl
from gatekeeper.audit.log import AuditLog
from gatekeeper.audit.record import AuditSink, chain_hash
from gatekeeper.audit.verify import VerifyReport, parse_anchor, verify

from .conftest import RawSql, decision

N = 20


async def fill(sink: AuditSink, n: int = N, chain_id: str = "r1") -> tuple[int, str]:
    log = AuditLog(sink, chain_id=chain_id, batch_size=7)
    await log.start()
    for i in range(1, n + 1):
        log.append(**decision(i))
    await log.flush()
    head = log.head
    await log.stop()
    await sink.open()
    return head


def first(report: VerifyReport) -> tuple[int, str]:
    assert not report.ok
    return report.findings[0].seq, report.findings[0].kind


async def renumber(raw_sql: RawSql, from_seq: int, delta: int) -> None:
    """Shift seq >= from_seq by delta without tripping the primary key (via negative seqs)."""
    await raw_sql("UPDATE audit_records SET seq = -(seq + ?) WHERE seq >= ?", delta, from_seq)
    await raw_sql("UPDATE audit_records SET seq = -seq WHERE seq < 0")


async def test_untampered_log_verifies(sink: AuditSink) -> None:
    head = await fill(sink, 10_000)
    report = await verify(sink)
    assert report.ok, report.findings[:3]
    assert report.records == 10_000
    assert (report.chains["r1"].head_seq, report.chains["r1"].head_hash) == head
    assert (await verify(sink, chain_id="r1", expect_head=head)).ok


async def test_changed_record(sink: AuditSink, raw_sql: RawSql) -> None:
    await fill(sink)
    await raw_sql(
        'UPDATE audit_records SET body = replace(body, \'"outcome":"denied"\', \'"outcome":"allowed"\') '
        "WHERE seq = 9"
    )
    report = await verify(sink)
    assert first(report) == (9, "changed")
    assert len(report.findings) == 1


async def test_forged_hash_is_caught_by_the_next_record(sink: AuditSink, raw_sql: RawSql) -> None:
    await fill(sink)
    ((prev, body),) = await raw_sql("SELECT prev_hash, body FROM audit_records WHERE seq = 9")
    forged = body.replace('"outcome":"denied"', '"outcome":"allowed"')
    assert forged != body
    await raw_sql(
        "UPDATE audit_records SET body = ?, hash = ? WHERE seq = 9", forged, chain_hash(prev, forged)
    )
    report = await verify(sink)
    assert first(report) == (10, "broken_link")
    assert "seq 9" in report.findings[0].message
    assert len(report.findings) == 1


async def test_deleted_record(sink: AuditSink, raw_sql: RawSql) -> None:
    await fill(sink)
    await raw_sql("DELETE FROM audit_records WHERE seq = 7")
    report = await verify(sink)
    assert first(report) == (7, "deleted")
    assert len(report.findings) == 1


async def test_deleted_first_record(sink: AuditSink, raw_sql: RawSql) -> None:
    await fill(sink)
    await raw_sql("DELETE FROM audit_records WHERE seq = 1")
    assert first(await verify(sink)) == (1, "deleted")


async def test_deleted_and_renumbered(sink: AuditSink, raw_sql: RawSql) -> None:
    await fill(sink)
    await raw_sql("DELETE FROM audit_records WHERE seq = 7")
    await renumber(raw_sql, 8, -1)
    report = await verify(sink)
    assert first(report) == (7, "broken_link")
    assert len(report.findings) == 1


async def test_inserted_record(sink: AuditSink, raw_sql: RawSql) -> None:
    await fill(sink)
    ((chain, at, h6, body6),) = await raw_sql(
        "SELECT chain_id, time, hash, body FROM audit_records WHERE seq = 6"
    )
    data = json.loads(body6)
    data.update(seq=7, prev_hash=h6, decision_id="forged", outcome="allowed", reason="nothing to see")
    body = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    await renumber(raw_sql, 7, +1)
    await raw_sql(
        "INSERT INTO audit_records (chain_id, seq, time, prev_hash, hash, body) VALUES (?, ?, ?, ?, ?, ?)",
        chain,
        7,
        at,
        h6,
        chain_hash(h6, body),
        body,
    )
    report = await verify(sink)
    assert first(report) == (7, "inserted")
    assert len(report.findings) == 1


async def test_reordered_records(sink: AuditSink, raw_sql: RawSql) -> None:
    await fill(sink)
    await raw_sql("UPDATE audit_records SET seq = -1 WHERE seq = 12")
    await raw_sql("UPDATE audit_records SET seq = 12 WHERE seq = 13")
    await raw_sql("UPDATE audit_records SET seq = 13 WHERE seq = -1")
    report = await verify(sink)
    assert first(report) == (12, "reordered")
    assert {f.kind for f in report.findings} == {"reordered"}


async def test_truncated_tail_needs_an_anchor(sink: AuditSink, raw_sql: RawSql) -> None:
    seq, digest = await fill(sink)
    await raw_sql("DELETE FROM audit_records WHERE seq > 15")
    assert (await verify(sink)).ok  # a chain alone cannot show a cut tail...
    report = await verify(sink, expect_head=(seq, digest))  # ...an anchor can
    assert first(report) == (16, "truncated")


async def test_rewritten_tail_against_anchor(sink: AuditSink, raw_sql: RawSql) -> None:
    head = await fill(sink)
    ((prev, body),) = await raw_sql("SELECT prev_hash, body FROM audit_records WHERE seq = ?", N)
    forged = body.replace('"agent-7"', '"agent-8"')
    await raw_sql(
        "UPDATE audit_records SET body = ?, hash = ? WHERE seq = ?", forged, chain_hash(prev, forged), N
    )
    assert (await verify(sink)).ok
    assert first(await verify(sink, expect_head=head)) == (N, "rewritten")


async def test_findings_name_the_chain(sink: AuditSink, raw_sql: RawSql) -> None:
    await fill(sink, chain_id="a:1")
    await fill(sink, chain_id="b:1")
    await raw_sql("DELETE FROM audit_records WHERE chain_id = 'b:1' AND seq = 3")
    report = await verify(sink)
    assert [(f.chain_id, f.seq, f.kind) for f in report.findings] == [("b:1", 3, "deleted")]
    assert "(chain b:1)" in str(report.findings[0])


async def test_exported_file_verifies_and_tampering_shows(sink: AuditSink, tmp_path: Path) -> None:
    await fill(sink, 50)
    out = tmp_path / "audit.jsonl"
    assert await export_jsonl(sink, out) == 50
    report = await verify(JsonlReader(out))
    assert report.ok and report.records == 50
    records = [r async for r in JsonlReader(out).records()]
    assert [r.seq for r in records] == list(range(1, 51))
    assert all(r.compute_hash() == r.hash for r in records)
    lines = out.read_text().splitlines()
    lines[19] = lines[19].replace('"agent-7"', '"agent-9"')
    del lines[30]
    out.write_text("\n".join(lines) + "\n")
    report = await verify(JsonlReader(out))
    assert [(f.seq, f.kind, f.position) for f in report.findings] == [
        (20, "changed", 19),
        (31, "deleted", 30),
    ]


async def test_export_of_a_time_range_is_contiguous(sink: AuditSink, tmp_path: Path) -> None:
    log = AuditLog(sink, chain_id="r1")
    await log.start()
    for i in range(1, 31):
        # seq 12 was decided before seq 11 (appended late): still exported, so the run has no hole
        log.append(**decision(i, time=1010.5 if i == 12 else 1000.0 + i))
    await log.flush()
    out = tmp_path / "range.jsonl"
    assert await export_jsonl(sink, out, since=1011.0, until=1021.0) == 10
    report = await verify(JsonlReader(out), partial=True)
    assert report.ok
    assert report.chains["r1"].first_seq == 11 and report.chains["r1"].head_seq == 20
    await log.stop()


def test_parse_anchor() -> None:
    assert parse_anchor("12:" + "a" * 64) == (12, "a" * 64)
    for bad in ("12", "x:" + "a" * 64, "12:abc", "12:" + "g" * 64):
        with pytest.raises(ValueError):
            parse_anchor(bad)

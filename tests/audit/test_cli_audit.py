"""``gatekeeper audit verify|tail|export``, run in-process through the CLI functions."""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from gatekeeper.audit.log import AuditLog, make_sink
from gatekeeper.audit.record import chain_hash
from gatekeeper.cli import audit as audit_cli
from gatekeeper.config import load_config

from ..helpers import drop_schema, postgres_dsn
from .conftest import decision


@pytest.fixture(autouse=True)
def _quiet_logs(log_output: list[dict[str, object]]) -> None:
    """The writer's log lines go to the capture, not to the stdout the CLI output is read from."""


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="gatekeeper")
    audit_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    result: int = args.run(args)
    return result


@pytest.fixture(params=["sqlite", "postgres"])
def config_file(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "gatekeeper.yaml"
    home = tmp_path / "home"
    if request.param == "sqlite":
        path.write_text(f"data_dir: {home}\n")
        yield path
        return
    dsn = asyncio.run(postgres_dsn())
    schema = f"gk_audit_cli_{secrets.token_hex(6)}"
    path.write_text(f"data_dir: {home}\napprovals:\n  store: {dsn}\n  postgres_schema: {schema}\n")
    yield path
    asyncio.run(drop_schema(dsn, schema))


def populate(config_file: Path, n: int, *, chain_id: str = "host:8080", base: float = 1_800_000_000.0) -> str:
    async def go() -> str:
        config = load_config(config_file)
        log = AuditLog(
            make_sink(config.approvals.store, config.data_dir, schema=config.approvals.postgres_schema),
            chain_id=chain_id,
        )
        await log.start()
        for i in range(1, n + 1):
            log.append(**decision(i, time=base + i))
        await log.stop()
        seq, digest = log.head
        return f"{seq}:{digest}"

    return asyncio.run(go())


def tamper(config_file: Path, sql: str, *params: object) -> None:
    config = load_config(config_file)
    if config.approvals.store == "sqlite":
        conn = sqlite3.connect(config.data_dir / "audit.sqlite3")
        try:
            with conn:
                conn.execute(sql, params)
        finally:
            conn.close()
        return

    async def pg() -> None:
        import asyncpg

        counter = iter(range(1, 50))
        query = "".join(f"${next(counter)}" if ch == "?" else ch for ch in sql)
        conn = await asyncpg.connect(
            config.approvals.store, server_settings={"search_path": config.approvals.postgres_schema}
        )
        try:
            await conn.execute(query, *params)
        finally:
            await conn.close()

    asyncio.run(pg())


def test_verify_ok_then_tampered(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    head = populate(config_file, 30)
    assert run("audit", "verify", "--config", str(config_file)) == 0
    out = capsys.readouterr().out
    assert "ok, 30 records verified" in out
    assert f"head {head}" in out
    assert run("audit", "verify", "--config", str(config_file), "--expect-head", head) == 0
    capsys.readouterr()

    tamper(
        config_file, "UPDATE audit_records SET body = replace(body, '\"agent-7\"', '\"root\"') WHERE seq = 17"
    )
    assert run("audit", "verify", "--config", str(config_file)) == 1
    out = capsys.readouterr().out
    where = load_config(config_file)
    location = (
        str(where.data_dir / "audit.sqlite3")
        if where.approvals.store == "sqlite"
        else f"{where.approvals.postgres_schema}.audit_records"
    )
    assert f"{location}: seq 17: changed:" in out
    assert "TAMPERED" in out


def test_verify_anchor_catches_a_cut_tail(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    head = populate(config_file, 30)
    tamper(config_file, "DELETE FROM audit_records WHERE seq > 25")
    assert run("audit", "verify", "--config", str(config_file)) == 0
    assert (
        run("audit", "verify", "--config", str(config_file), "--chain", "host:8080", "--expect-head", head)
        == 1
    )
    assert ": seq 26: truncated:" in capsys.readouterr().out
    assert run("audit", "verify", "--config", str(config_file), "--expect-head", "nonsense") == 2


def test_tail(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    populate(config_file, 30)
    assert run("audit", "tail", "--config", str(config_file), "-n", "5") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5
    assert lines[0].split()[1] == "host:8080#26" and lines[-1].split()[1] == "host:8080#30"
    assert run("audit", "tail", "--config", str(config_file), "-n", "2", "--json") == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["seq"] for r in records] == [29, 30]


def test_tail_follow_prints_new_records(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    populate(config_file, 3)
    parser = argparse.ArgumentParser()
    audit_cli.register(parser.add_subparsers())
    args = parser.parse_args(
        ["audit", "tail", "--config", str(config_file), "-n", "1", "--follow", "--interval", "0.05"]
    )

    async def go() -> None:
        follower = asyncio.create_task(audit_cli._tail(args, max_polls=40))
        await asyncio.sleep(0.2)
        config = load_config(config_file)
        log = AuditLog(
            make_sink(config.approvals.store, config.data_dir, schema=config.approvals.postgres_schema),
            chain_id="host:8080",
        )
        await log.start()
        log.append(**decision(99, principal="late-agent"))
        await log.stop()
        await follower

    asyncio.run(go())
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[1] == "host:8080#3"
    assert len(lines) == 2 and "late-agent" in lines[1] and "host:8080#4" in lines[1]


def test_export_and_verify_the_file(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = 1_800_000_000.0  # 2027-01-15T08:00:00Z
    populate(config_file, 100, base=base)
    out = tmp_path / "slice.jsonl"
    code = run(
        "audit",
        "export",
        "--config",
        str(config_file),
        "--since",
        "2027-01-15T08:00:11Z",
        "--until",
        "2027-01-15T08:00:41+00:00",
        "--out",
        str(out),
    )
    assert code == 0
    assert "30 records exported" in capsys.readouterr().out
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["seq"] for r in records] == list(range(11, 41))
    assert all(set(r) >= {"hash", "prev_hash", "decision_id", "arguments", "chain_id"} for r in records)
    assert run("audit", "verify", "--file", str(out)) == 0
    records[5]["outcome"] = "allowed" if records[5]["outcome"] != "allowed" else "denied"
    out.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert run("audit", "verify", "--file", str(out)) == 1
    assert f"{out}: seq 16: changed:" in capsys.readouterr().out


def test_export_rejects_bad_times(config_file: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "x.jsonl")
    assert (
        run(
            "audit",
            "export",
            "--config",
            str(config_file),
            "--since",
            "yesterday",
            "--until",
            "now",
            "--out",
            out,
        )
        == 2
    )
    assert (
        run(
            "audit",
            "export",
            "--config",
            str(config_file),
            "--since",
            "2027-01-02",
            "--until",
            "2027-01-01",
            "--out",
            out,
        )
        == 2
    )


def test_verify_reports_a_missing_sqlite_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "gatekeeper.yaml"
    path.write_text(f"data_dir: {tmp_path / 'empty'}\n")
    assert run("audit", "verify", "--config", str(path)) == 1
    assert "no audit trail" in capsys.readouterr().out


def test_forged_record_in_cli_output_names_the_next_seq(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(config_file, 10)
    config = load_config(config_file)

    async def read() -> list[tuple[str, int, str, str, str]]:
        sink = make_sink(config.approvals.store, config.data_dir, schema=config.approvals.postgres_schema)
        await sink.open()
        rows = [r async for chunk in sink.raw_chunks() for r in chunk]
        await sink.close()
        return rows

    _, seq, prev, _, body = asyncio.run(read())[4]
    new = body.replace('"agent-7"', '"admin"')
    tamper(
        config_file,
        "UPDATE audit_records SET body = ?, hash = ? WHERE seq = ?",
        new,
        chain_hash(prev, new),
        seq,
    )
    assert run("audit", "verify", "--config", str(config_file)) == 1
    assert ": seq 6: broken_link: prev_hash does not match seq 5's hash" in capsys.readouterr().out


def test_export_of_an_empty_range_says_so(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(config_file, 5, base=1_800_000_000.0)  # 2027-01-15T08:00:01Z .. 08:00:05Z
    out = tmp_path / "week.jsonl"
    argv = ("audit", "export", "--config", str(config_file), "--out", str(out))
    code = run(*argv, "--since", "2026-11-19T00:00:00Z", "--until", "2026-11-26T00:00:00Z")
    captured = capsys.readouterr()
    assert code == audit_cli.EXIT_EMPTY and captured.out == ""
    assert "no audit records from 2026-11-19T00:00:00Z until 2026-11-26T00:00:00Z" in captured.err
    assert "the trail holds records from 2027-01-15T08:00:01Z to 2027-01-15T08:00:05Z" in captured.err


def test_export_takes_times_relative_to_now(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import time

    populate(config_file, 3, base=time.time() - 3600)  # an hour ago
    out = tmp_path / "recent.jsonl"
    code = run(
        "audit", "export", "--config", str(config_file), "--since", "1d", "--until", "now", "--out", str(out)
    )
    assert code == 0 and "3 records exported" in capsys.readouterr().out
    assert audit_cli.parse_time("7d", now=1_000_000.0) == 1_000_000.0 - 7 * 86400
    assert audit_cli.parse_time("-7d", now=1_000_000.0) == audit_cli.parse_time("7d ago", now=1_000_000.0)
    assert audit_cli.parse_time("-30m", now=1_000_000.0) == 1_000_000.0 - 1800

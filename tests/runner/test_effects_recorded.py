"""Egress decisions in the audit trail, held connections, the file tools' walls, start-up refusals."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gatekeeper.app import Gatekeeper
from gatekeeper.cli.main import main as cli_main
from gatekeeper.errors import ConfigError

from ..helpers import ops_auth, running, wait_for_pending
from .conftest import Agent, Outside, runner_config
from .test_live_fire import PROXY_CONNECT, connect_args


def _records(gk: Gatekeeper) -> list[dict[str, Any]]:
    db = sqlite3.connect(gk.config.data_dir / "audit.sqlite3")
    try:
        return [json.loads(body) for (body,) in db.execute("SELECT body FROM audit_records ORDER BY seq")]
    finally:
        db.close()


async def test_connections_are_recorded_under_their_call_and_the_chain_verifies(
    agent: Agent, contained: Gatekeeper, outside: Outside, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await agent.plant(
        "two.py",
        "import subprocess\nfor u in ('https://pypi.org/', 'https://evil.example/'):\n"
        "    subprocess.run(['curl', '-sS', '--cacert', 'pypi-ca.txt', u])\n",
    )
    call = await agent.sh("python3 two.py")
    await contained.stop()  # drains the audit writer
    egress = [r for r in _records(contained) if r["entry"] == "egress"]
    assert [(r["extra"]["target"], r["outcome"]) for r in egress] == [
        ("pypi.org:443", "allowed"),
        ("evil.example:443", "denied"),
    ]
    for record in egress:
        assert record["extra"]["parent_decision_id"] == call["decision_id"]
        assert record["principal"] == "agent-1" and record["tool"] == "shell.exec"
    assert egress[0]["extra"]["bytes_down"] > 0 and egress[0]["rule"].startswith("policy.csv:")
    assert egress[1]["code"] == "approval_timeout" and egress[1]["approval_id"]
    assert outside.evil.connections == 0
    config_file = tmp_path / "verify.yaml"
    config_file.write_text(f"data_dir: {contained.config.data_dir}\n")
    code = await asyncio.to_thread(cli_main, ["audit", "verify", "--config", str(config_file)])
    assert code == 0, capsys.readouterr()


async def test_a_held_connection_goes_through_once_an_operator_approves(
    agent: Agent, contained: Gatekeeper, outside: Outside
) -> None:
    await agent.plant(
        "ask.py",
        "import subprocess\nprint(subprocess.run(['curl', '-sS', '-o', '/dev/null', "
        "'-w', '%{http_code}', 'http://evil.example/'], capture_output=True, text=True).stdout)\n",
    )
    egress = contained.egress
    assert egress is not None
    egress.settings = replace(egress.settings, hold_seconds=10.0)  # long enough for the operator
    run = asyncio.ensure_future(agent.sh("python3 ask.py"))
    approval_id = await wait_for_pending(agent.http, contained)
    async with agent.http.get(
        f"{contained.operator_url}/v1/approvals/{approval_id}", headers=ops_auth(contained)
    ) as r:
        held = await r.json()
    assert held["arguments"]["connect"] == "evil.example:80"
    async with agent.http.post(
        f"{contained.operator_url}/v1/approvals/{approval_id}/approve",
        json={"comment": "one look"},
        headers=ops_auth(contained),
    ) as r:
        assert r.status == 200, await r.text()
    result = await run
    assert outside.evil.connections == 1  # the counting host closes at once: curl reports an error
    assert result["exit_code"] == 0


async def test_file_tools_stay_in_the_workspace(agent: Agent, contained: Gatekeeper, tmp_path: Path) -> None:
    outside_file = tmp_path / "host-secret.txt"
    outside_file.write_text("host secret")
    workspace = Path(str(contained.config.runner.workspace))
    await agent.plant("mk.py", "import os\nos.symlink('/etc', 'link-to-etc')\n")  # as an archive would
    await agent.sh("python3 mk.py")
    (workspace / "host-link").symlink_to(outside_file)
    os.link(outside_file, workspace / "hard-link")
    for path, code in (
        ("link-to-etc/passwd", "symlink"),
        ("host-link", "symlink"),
        ("hard-link", "hard_link"),
    ):
        status, body = await agent.call("file.read", path=path)
        assert status == 200 and body["result"]["error"]["code"] == code, (path, body)
        status, body = await agent.call("file.write", path=path, content="x")
        assert status == 200 and body["result"]["error"]["code"] == code, (path, body)
    assert outside_file.read_text() == "host secret"
    status, body = await agent.call("file.write", path="src/new/deep.txt", content="ok")
    assert status == 200 and body["result"] == {"path": "/workspace/src/new/deep.txt", "bytes_written": 2}
    assert (await agent.sh("cat src/new/deep.txt"))["stdout"] == "ok"
    status, body = await agent.call("file.read", path="src/new/deep.txt")
    assert body["result"]["content"] == "ok"


async def test_no_sandbox_no_runner(tmp_path: Path, outside: Outside) -> None:
    config = runner_config(tmp_path, outside)
    missing = replace(config, runner=replace(config.runner, bwrap="/nonexistent/bwrap"))
    with pytest.raises(ConfigError, match="apt-get install -y bubblewrap"):
        async with running(missing):
            pass


def test_the_workspace_may_not_hold_the_data_folder(tmp_path: Path, outside: Outside) -> None:
    config = runner_config(tmp_path, outside)
    inside = replace(config, data_dir=Path(str(config.runner.workspace)) / ".gatekeeper")
    with pytest.raises(ConfigError, match="must not contain each other"):
        Gatekeeper(inside)


async def test_egress_without_a_credential_connects_nothing(contained: Gatekeeper, outside: Outside) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get("http://evil.example/", proxy=contained.egress_url) as response:
            assert response.status == 407
            assert (await response.json())["code"] == "missing_credential"
    assert outside.evil.connections == 0


async def test_an_ambiguous_proxy_request_is_refused_before_anything(
    contained: Gatekeeper, outside: Outside
) -> None:
    host, port = contained.egress_url.removeprefix("http://").rsplit(":", 1)
    for head in (
        b"GET http://evil.example/ HTTP/1.1\nHost: evil.example\r\n\r\n",  # bare LF
        b"GET http://evil.example/ HTTP/1.1\r\nX: a\rHost: b\r\n\r\n",  # bare CR
        b"GET http://evil.example/ HTTP/1.1\r\n Folded: yes\r\n\r\n",  # folded header
        b"GET http://evil.example/ HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"GET http://evil.example/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET https://evil.example/ HTTP/1.1\r\n\r\n",  # https only through CONNECT
        b"CONNECT evil.example HTTP/1.1\r\n\r\n",  # no port
    ):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(head)
        status = (await reader.readline()).decode()
        writer.close()
        assert status.split(" ")[1] in ("400", "407", "501"), (head, status)  # nothing connected
    assert outside.evil.connections == 0


async def test_a_refused_name_is_never_resolved(
    agent: Agent, contained: Gatekeeper, outside: Outside
) -> None:
    """A DNS query is a way out too (``<secret>.attacker.example``): names are decided first.
    The gate's resolver is swapped for one that only records (this machine has no DNS to ask);
    a name that is allowed but resolves to an internal address is refused on its address."""
    asked: list[str] = []

    async def recording(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["10.1.2.3"]  # never connected to: refused as net.internal below

    egress = contained.egress
    assert egress is not None
    egress.resolver = recording
    await agent.plant("names.py", PROXY_CONNECT)
    for target in ("s3cret.unlisted.example:443", "metadata.google.internal:80", "db.internal:5432"):
        result = await agent.sh(f"python3 names.py {connect_args(target)}")
        assert result["stdout"].startswith("HTTP/1.1 403"), (target, result)
    assert asked == []
    rebound = await agent.sh(f"python3 names.py {connect_args('files.pythonhosted.org:443')}")  # allow-listed
    assert rebound["stdout"].startswith("HTTP/1.1 403"), rebound
    assert asked == ["files.pythonhosted.org"]
    await contained.stop()
    records = [r for r in _records(contained) if r["entry"] == "egress"]
    assert [r["extra"]["address"] for r in records] == [None, None, None, "10.1.2.3:443"]
    assert "net.internal" in records[-1]["capabilities"] and records[-1]["outcome"] == "denied"


async def test_the_console_lists_connections_under_their_call(
    agent: Agent, contained: Gatekeeper, outside: Outside
) -> None:
    from ..console.test_console_browser import browser, signed_in

    await agent.plant(
        "two.py",
        "import subprocess\nfor u in ('https://pypi.org/', 'https://evil.example/'):\n"
        "    subprocess.run(['curl', '-sS', '--cacert', 'pypi-ca.txt', u])\n",
    )
    call = await agent.sh("python3 two.py")
    await agent.sh("true")  # a later call, so the nesting is not just the list's order
    async with agent.http.get(f"{contained.operator_url}/v1/decisions", headers=ops_auth(contained)) as r:
        listed = (await r.json())["decisions"]
    connections = [d for d in listed if d["entry"] == "egress"]
    assert {(d["target"], d["outcome"], d["parent_decision_id"]) for d in connections} == {
        ("pypi.org:443", "allowed", call["decision_id"]),
        ("evil.example:443", "denied", call["decision_id"]),
    }
    assert next(d for d in connections if d["outcome"] == "allowed")["bytes_down"] > 0
    async with browser() as page:
        await signed_in(page, contained)
        await page.keyboard.press("3")
        rows = page.locator("#decisions-table tbody tr")
        await page.locator(f"#decisions-table tr[data-decision-id='{call['decision_id']}']").wait_for()
        ids = await rows.evaluate_all("rows => rows.map(r => [r.dataset.decisionId, r.dataset.parent])")
        at = next(i for i, (decision_id, _) in enumerate(ids) if decision_id == call["decision_id"])
        # The call's row, then its two connections right under it, marked as its children.
        assert [parent for _, parent in ids[at + 1 : at + 3]] == [call["decision_id"]] * 2, ids
        nested = page.locator(f"#decisions-table tr.connection[data-parent='{call['decision_id']}']")
        assert await nested.count() == 2
        assert "pypi.org:443" in await nested.nth(0).inner_text()
        assert "evil.example:443" in await nested.nth(1).inner_text()

"""``gatekeeper approvals …`` in-process, against the fake operator API of test_operator_client."""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from gatekeeper.cli import approvals as cli
from gatekeeper_client import OperatorClient

from .test_operator_client import ALICE, BOB, TUNNEL_CMD, FakeOperatorAPI, fake_api, make_approval

__all__ = ["fake_api"]  # the fixture, re-used


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gatekeeper")
    sub = parser.add_subparsers(dest="command", required=True)
    cli.register(sub)
    return parser


def run(*argv: str) -> int:
    args = build_parser().parse_args(["approvals", *argv])
    code: int = args.run(args)
    return code


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch, fake_api: FakeOperatorAPI) -> Iterator[None]:
    monkeypatch.setenv(cli.URL_ENV, fake_api.base_url)
    monkeypatch.setenv(cli.TOKEN_ENV, ALICE)
    yield


def test_list_table(fake_api: FakeOperatorAPI, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "ID",
        "AGE",
        "PRINCIPAL",
        "TOOL",
        "ESCALATED",
        "BY",
        "/",
        "RULE",
        "VOTES",
        "EXPIRES",
        "IN",
    ]
    tunnel = next(line for line in lines if line.startswith("apr_tunnel"))
    gpu = next(line for line in lines if line.startswith("apr_gpu"))
    assert tunnel.split()[:4] == ["apr_tunnel", "2m05s", "agent-7", "shell.exec"]
    # The fake API sends no deciding capability: the rule alone, never a guessed capability.
    assert "escalate-network-tunnel" in tunnel and "proc.exec:git" not in tunnel and "0/1" in tunnel
    assert "29m5" in tunnel  # expires in ~30 minutes
    assert "escalate-gpu" in gpu and "0/2" in gpu
    # Aligned: every column starts at the same offset on every line.
    assert lines[0].index("TOOL") == tunnel.index("shell.exec") == gpu.index("compute.provision")
    assert lines[0].index("VOTES") == tunnel.index("0/1") == gpu.index("0/2")
    assert fake_api.seen[-1].query["state"] == "pending"


def test_list_prefers_the_deciding_capability_when_the_api_sends_it(
    fake_api: FakeOperatorAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    approvals = OperatorClient(fake_api.base_url, ALICE)
    try:
        view = approvals.get("apr_tunnel")
    finally:
        approvals.close()
    view = replace(view, raw={**view.raw, "capability": "net.tunnel.reverse"})
    assert cli.escalated_by(view) == "net.tunnel.reverse / escalate-network-tunnel"


def test_list_json_other_state_and_empty(
    fake_api: FakeOperatorAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("list", "--json") == 0
    body = json.loads(capsys.readouterr().out)
    assert body["total"] == 2
    assert body["approvals"][0] == fake_api.approvals["apr_tunnel"].to_json()
    assert run("list", "--state", "denied") == 0
    assert capsys.readouterr().out.strip() == "no denied approvals"
    assert run("list", "--state", "all") == 0
    out = capsys.readouterr().out
    assert "STATE" in out.splitlines()[0] and "state" not in fake_api.seen[-1].query


def test_show_prints_full_arguments_and_votes(
    fake_api: FakeOperatorAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    long_cmd = "echo " + "A" * 5000 + " && " + TUNNEL_CMD
    fake_api.add(
        make_approval("apr_long", arguments={"cmd": long_cmd, "cwd": "/workspace"}, required_approvals=2)
    )
    assert run("approve", "apr_long", "--comment", "first look ok") == 0
    capsys.readouterr()
    assert run("show", "apr_long") == 0
    out = capsys.readouterr().out
    assert json.dumps(long_cmd) in out  # never truncated
    assert "net.tunnel.reverse" in out and "escalate-network-tunnel" in out
    assert "reverse tunnels need a human" in out
    assert "1 of 2 required" in out
    assert "approve by alice: first look ok" in out
    assert "principal:   agent-7" in out
    # The arguments block is valid JSON once the indentation is removed.
    block = out.split("arguments:\n", 1)[1].split("\nvotes:", 1)[0]
    assert json.loads("\n".join(line[2:] for line in block.splitlines())) == {
        "cmd": long_cmd,
        "cwd": "/workspace",
    }


def test_show_json(fake_api: FakeOperatorAPI, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("show", "apr_gpu", "--json") == 0
    assert json.loads(capsys.readouterr().out) == fake_api.approvals["apr_gpu"].to_json()


def test_terminal_escapes_in_agent_input_are_neutralised(
    fake_api: FakeOperatorAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    # An agent tries to erase the dangerous part of its command from the operator's screen and to
    # reorder text with a bidi override.
    sneaky = "ls\x1b[2K\r\x1b[1A harmless \u202e" + TUNNEL_CMD + "\u200b\x9b31m"
    fake_api.add(make_approval("apr_sneaky", arguments={"cmd": sneaky}, principal="agent\x1b[8m"))
    assert run("show", "apr_sneaky") == 0
    out = capsys.readouterr().out
    for bad in ("\x1b", "\r", "\u202e", "\u200b", "\x9b"):
        assert bad not in out
    assert "\\u202e" in out and "\\u001b" in out and TUNNEL_CMD in out
    assert run("list") == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "agent\\u001b[8m" in out


def test_approve_quorum_and_deny(fake_api: FakeOperatorAPI, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("approve", "apr_gpu", "--comment", "budget ok") == 0
    assert "1/2 approvals; still pending" in capsys.readouterr().out
    assert fake_api.seen[-1].body == {"comment": "budget ok", "grant_minutes": None}
    assert run("approve", "apr_gpu", "--token", BOB, "--grant-minutes", "30") == 0
    assert capsys.readouterr().out.strip() == "approved apr_gpu; grant for 30 min"
    assert fake_api.seen[-1].body == {"comment": "", "grant_minutes": 30.0}
    assert fake_api.seen[-1].headers["Authorization"] == f"Bearer {BOB}"
    assert run("deny", "apr_tunnel", "--comment", "no tunnels") == 0
    assert capsys.readouterr().out.strip() == "denied apr_tunnel"
    assert fake_api.approvals["apr_tunnel"].votes[0].comment == "no tunnels"


def test_errors_and_exit_codes(
    fake_api: FakeOperatorAPI, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("show", "apr_missing") == 4
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == "gatekeeper: not_found: no such approval"

    assert run("approve", "apr_gpu") == 0
    assert run("approve", "apr_gpu") == 1
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("gatekeeper: already_voted: you already voted on this approval")
    )

    fake_api.add(make_approval("apr_mine", principal="alice"))
    assert run("approve", "apr_mine") == 3
    assert "gatekeeper: self_approval:" in capsys.readouterr().err

    assert run("list", "--token", "agent-token") == 3
    assert capsys.readouterr().err.strip() == "gatekeeper: invalid_token: operator token required"

    assert run("approve", "apr_tunnel", "--grant-minutes", "-5") == 2
    assert "--grant-minutes" in capsys.readouterr().err

    monkeypatch.delenv(cli.TOKEN_ENV)
    assert run("list") == 2
    assert "gatekeeper: missing_token:" in capsys.readouterr().err

    assert run("list", "--token", ALICE, "--url", "http://127.0.0.1:1") == 1
    assert "gatekeeper: connection_failed:" in capsys.readouterr().err


def test_options_before_the_verb(fake_api: FakeOperatorAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cli.URL_ENV)
    monkeypatch.delenv(cli.TOKEN_ENV)
    assert run("--url", fake_api.base_url, "--token", BOB, "show", "apr_gpu") == 0
    assert fake_api.seen[-1].headers["Authorization"] == f"Bearer {BOB}"


def test_default_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cli.URL_ENV)
    args = build_parser().parse_args(["approvals", "list"])
    assert args.url is None and cli.DEFAULT_URL == "http://127.0.0.1:8081"


def test_watch_prints_one_line_per_event(
    fake_api: FakeOperatorAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    def drive() -> None:
        for _ in range(1000):
            if fake_api.subscribers:
                break
            time.sleep(0.005)
        fake_api.publish_threadsafe("created", fake_api.approvals["apr_tunnel"])
        fake_api.publish_threadsafe("expired", fake_api.approvals["apr_gpu"])
        time.sleep(0.05)
        fake_api.close_streams_threadsafe()

    driver = threading.Thread(target=drive)
    driver.start()
    code = run("watch", "--max-retries", "0")
    driver.join()
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 2
    assert " created " in lines[0] and "apr_tunnel" in lines[0] and "tool=shell.exec" in lines[0]
    assert "by=escalate-network-tunnel" in lines[0]
    assert " expired " in lines[1] and "apr_gpu" in lines[1] and "votes=0/2" in lines[1]
    # The server ending the stream is reported; Ctrl-C (below) is the normal way out.
    assert code == 1 and "gatekeeper: stream_closed:" in captured.err


def test_watch_ctrl_c_exits_cleanly(
    fake_api: FakeOperatorAPI, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(self: object, *args: object, **kwargs: object) -> Iterator[object]:
        raise KeyboardInterrupt
        yield  # pragma: no cover

    monkeypatch.setattr(OperatorClient, "events", interrupted)
    assert run("watch") == 0


def test_format_duration() -> None:
    assert cli.format_duration(5) == "5s"
    assert cli.format_duration(125) == "2m05s"
    assert cli.format_duration(3 * 3600 + 60) == "3h01m"
    assert cli.format_duration(2 * 86400 + 3600) == "2d01h"
    assert cli.format_duration(-90) == "-1m30s"

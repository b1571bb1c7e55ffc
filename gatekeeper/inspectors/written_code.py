"""What code written into the workspace would do when a later program runs it.

``file.write`` of a ``.py``, a shell script, a Makefile, ``package.json``, ``pyproject.toml``,
``tox.ini``, ``.pre-commit-config.yaml`` (or any file with a ``#!`` line) is read here, with the
readers the shell inspector uses: Python with ``ast`` (``python_code``), shell scripts, Makefile
recipes, npm/tox/pre-commit/pyproject commands as shell command lines. The capabilities are
recorded with the write and inherited by a later call that runs the file
(``gatekeeper/server/written_code.py``). Pure: no I/O, never raises; what cannot be read is doubt.

Compiled languages (Go, Rust, C/C++) and TypeScript have no parser here: their words are read
(``_compiled``), plus what each language runs from text: ``//go:generate`` lines are command lines
(a part of their own, ``go-generate``, run only by ``go generate``); cargo's ``.cargo/config.toml``
names runners, wrappers and linkers (command lines) and environment; ``rust-toolchain.toml`` may
name a toolchain directory; ``CMakeLists.txt`` gives cmake commands. Which build runs which kinds
is ``shell_runs``'s.

Files a written file's command lines run (``make``'s recipe ``go run .``, a script's ``python3 y.py``)
are kept with its imports, so running it inherits what was written into them.
"""

from __future__ import annotations

import ast
import configparser
import functools
import hashlib
import json
import posixpath
import re
import shlex
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import yaml

from gatekeeper.inspectors import python_code, shell_code, shell_options, shell_runs, shell_tables
from gatekeeper.inspectors.paths import CODE_ROOTS
from gatekeeper.inspectors.shell import Inspection
from gatekeeper.inspectors.shell_programs import Word
from gatekeeper.models import Capability
from gatekeeper.yamlfile import load_yaml

__all__ = [
    "MAX_CONTENT",
    "PARTS",
    "PROGRAM_PARTS",
    "WrittenCode",
    "analyse_written",
    "code_kind",
    "imported_paths",
    "parts_of",
]

MAX_CONTENT: Final = 512 * 1024  # larger code is doubt: reading it would cost more than a call may
MAX_TEXT: Final = 64 * 1024  # a file with no code name read as code (if it were run) up to this size
_SHELL_RC: Final = frozenset(
    {".bashrc", ".bash_profile", ".bash_login", ".bash_logout", ".profile", ".zshrc", ".zprofile",
     ".zshenv", ".kshrc", ".envrc"}
)  # fmt: skip
_BY_NAME: Final = {
    "makefile": "make",
    "gnumakefile": "make",
    "package.json": "npm",
    "pyproject.toml": "pyproject",
    "uv.toml": "uv-config",
    "tox.ini": "tox",
    ".npmrc": "npmrc",
    "pom.xml": "maven",
    "gradle.properties": "jvm",
    "jvm.config": "jvm",
    "maven.config": "jvm",
    ".yarnrc": "yarnrc",
    ".yarnrc.yml": "yarnrc",
    ".yarnrc.yaml": "yarnrc",
    "pylintrc.toml": "pyproject",
    ".pylintrc.toml": "pyproject",
    **dict.fromkeys(
        (
            "pytest.ini",
            ".pytest.ini",
            "setup.cfg",
            "pylintrc",
            ".pylintrc",
            "mypy.ini",
            ".mypy.ini",
            ".coveragerc",
            ".flake8",
        ),
        "config",
    ),  # tools' configuration that can load code into them: plugins, pylint's init-hook
    ".pre-commit-config.yaml": "pre-commit",
    ".pre-commit-config.yml": "pre-commit",
    "cargo.toml": "cargo",
    "rust-toolchain": "rust-toolchain",
    "rust-toolchain.toml": "rust-toolchain",
    "cmakelists.txt": "cmake",
}
_C_SUFFIXES: Final = ".c .h .cc .cpp .cxx .c++ .hh .hpp .hxx .h++ .m .mm .inc .ipp .tpp"  # C, C++, ObjC
_BY_SUFFIX: Final = {
    ".py": "python",
    ".pyw": "python",
    ".sh": "shell",
    ".bash": "shell",
    ".zsh": "shell",
    ".ksh": "shell",
    ".mk": "make",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".ts": "javascript",  # node runs .ts (type stripping), as tsx/ts-node/deno/bun do
    ".tsx": "javascript",
    ".mts": "javascript",
    ".cts": "javascript",
    ".jsx": "javascript",
    ".go": "go",
    ".rs": "rust",
    **dict.fromkeys(_C_SUFFIXES.split(), "c"),
    ".s": "asm",
    ".sx": "asm",
    ".asm": "asm",
    ".syso": "object",
    ".o": "object",
    ".a": "object",
    ".so": "object",
    ".cmake": "cmake",
    ".ipynb": "notebook",
    **dict.fromkeys(".java .kt .kts .groovy .gradle .scala .sc .sbt".split(), "jvm"),
}
# Files with parts a program runs apart from the file: a Go file's //go:generate lines, run by
# go generate only (never by go run/test). A part is recorded at the file's path + suffix.
# A Python file named like a standard-library module is a part of its own too (``#shadow``, kind
# ``shadow``): from the directory Python starts in, it runs in place of that module wherever the
# standard library imports it (a written string.py runs on ``import logging``). Every Python start
# inherits these (shell_runs.STARTUP_TREES). ``test.py`` and the like are agents' own names that
# nothing in the standard library imports.
PARTS: Final = {"go": (("#go:generate", "go-generate"),), "python": (("#shadow", "shadow"),)}
# Every file is also what ``awk -f FILE`` and ``sed -f FILE`` would do with it: its text read as an
# awk program and as a sed script (parts ``#awk`` and ``#sed``, run by those options only:
# ``shell_runs``). Larger text than such programs are is doubt there.
PROGRAM_PARTS: Final = (("#awk", "awk"), ("#sed", "sed"))
_PROGRAM_KINDS: Final = frozenset(kind for _, kind in PROGRAM_PARTS)
MAX_PROGRAM_TEXT: Final = 8 * 1024  # awk programs and sed scripts are small: larger is doubt there


def parts_of(kind: str) -> tuple[tuple[str, str], ...]:
    """(suffix, part kind) of every part a file of ``kind`` is recorded with."""
    return (*PARTS.get(kind, ()), *PROGRAM_PARTS)


SHADOWABLE: Final = frozenset(m for m in sys.stdlib_module_names if not m.startswith("_")) - {
    "test",
    "this",
    "antigravity",
    "idlelib",
    "turtledemo",
    "tests",
}
_SHEBANG_KINDS: Final = {
    "python": "python",
    "sh": "shell",
    "bash": "shell",
    "dash": "shell",
    "zsh": "shell",
    "ksh": "shell",
    "node": "javascript",
    "make": "make",
}
_CUSTOMIZE: Final = ("sitecustomize.py", "usercustomize.py")
_REQUIREMENTS: Final = re.compile(r"(?:requirements|constraints)[\w.-]*\.(?:txt|in)")
_VERSIONED: Final = re.compile(r"([a-z]+?)[0-9.]*")


@dataclass(frozen=True, slots=True)
class WrittenCode:
    """What a written file would do when run: its kind, capabilities, and the workspace files
    it pulls in (``imports``: Python modules as dotted names, relative ones with leading dots;
    Makefile includes as paths)."""

    kind: str
    capabilities: tuple[Capability, ...]
    imports: tuple[str, ...] = ()
    parts: tuple[tuple[str, WrittenCode], ...] = ()  # (path, what it does) of each part (PARTS)


def code_kind(path: str, content: str) -> str | None:
    """The kind of code a file is, by its name, else by its ``#!`` line; None: not code."""
    name = posixpath.basename(path)
    low = name.lower()
    if low in _BY_NAME:
        return _BY_NAME[low]
    if low in ("config.toml", "config") and posixpath.basename(posixpath.dirname(path)) == ".cargo":
        return "cargo-config"
    if _REQUIREMENTS.fullmatch(low):
        return "requirements"
    if low.endswith(".pth") or (low in _CUSTOMIZE and "-packages/" in path):
        return "startup"  # run by every start of the Python whose site directory holds it
    if low in _SHELL_RC:
        return "shell"
    kind = _BY_SUFFIX.get(posixpath.splitext(low)[1])
    if kind is not None:
        return kind
    if content.startswith("#!"):
        return _shebang_kind(content.partition("\n")[0][2:])
    return None


def _shebang_kind(line: str) -> str:
    words = line.split()
    if words and posixpath.basename(words[0]) == "env":
        words = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
    if not words:
        return "unknown"
    m = _VERSIONED.fullmatch(posixpath.basename(words[0]).lower())
    return _SHEBANG_KINDS.get(m.group(1) if m else "", "unknown")


def analyse_written(path: str, content: str) -> WrittenCode:
    """What ``content`` written at the absolute ``path`` would do when run.

    A file that is not code by its name or ``#!`` line is still recorded (kind ``text``): a name
    decides nothing at run time (``python3 notes.txt``, ``sh data``, ``cp notes.txt x.py``)."""
    kind = code_kind(path, content) or "text"
    digest = hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()
    return _analyse(kind, path, digest, content)


@functools.lru_cache(maxsize=256)
def _analyse(kind: str, path: str, _digest: str, content: str) -> WrittenCode:
    """Cached by content digest: an agent rewriting a file with the same text pays once."""
    insp = Inspection(posixpath.dirname(path) or "/")
    imports: list[str] = []
    where = f"written {path}"
    parts: tuple[tuple[str, WrittenCode], ...] = ()
    if len(content) > MAX_CONTENT or "\x00" in content:
        insp.opaque(f"{where}: too large (or binary) to read as code")
    else:
        try:
            imports = _READERS[kind](insp, path, content)
            parts = tuple(
                (path + suffix, code)
                for suffix, part in parts_of(kind)
                if (code := _part(part, path, content)) is not None
            )
        except RecursionError:
            insp.opaque(f"{where}: nested too deeply to read")
        except Exception as exc:  # a reader's bug: doubt, never a failed call nor a pass
            insp.opaque(f"{where}: not read ({type(exc).__name__})")
    caps = tuple(sorted(insp.caps.values()))
    return WrittenCode(kind, caps, _with_runs(imports, insp), parts)


def imported_paths(path: str, kind: str, imports: tuple[str, ...] | list[str]) -> list[str]:
    """Where the workspace files a written file pulls in would be: Python modules beside it (its
    directory is first on ``sys.path``) or under the workspace, relative imports, Makefile includes.
    Paths (and trees) among ``imports`` are files its command lines run; dotted names are modules."""
    here = posixpath.dirname(path)
    out = [p for p in imports if p.startswith(CODE_ROOTS)]
    if kind not in ("python", "text", "shadow"):  # text is read as Python too (_text)
        return out
    for name in imports[:64]:
        if name.startswith("/"):
            continue
        dots = len(name) - len(name.lstrip("."))
        parts = [p for p in name.lstrip(".").split(".") if p]
        if dots:
            base = here
            for _ in range(dots - 1):
                base = posixpath.dirname(base)
            roots = [base]
        else:
            roots = [here, "/workspace", "/workspace/src"]
        for root in roots:
            stem = posixpath.join(root, *parts) if parts else root
            out += [stem + ".py", posixpath.join(stem, "__init__.py")]
    return [p for p in out if p.startswith(CODE_ROOTS)]


def _with_runs(imports: list[str], insp: Inspection) -> tuple[str, ...]:
    """The imports, and the workspace files (and trees) its command lines run."""
    runs = sorted(insp.ran_files - set(imports))
    return tuple(imports + runs[: max(0, 256 - len(imports))])


def _part(kind: str, path: str, content: str) -> WrittenCode | None:
    """The record of a part of the file (None: the file has no such part)."""
    if kind == "shadow" and not shadows_stdlib(path):
        return None
    insp = Inspection(posixpath.dirname(path) or "/")
    imports = _PART_READERS[kind](insp, path, content)
    if kind in _PROGRAM_KINDS and insp.caps.keys() <= {f"proc.exec:{kind}"} and not insp.ran_files:
        return None  # awk -f / sed -f would do nothing with it beyond running: no record needed
    return WrittenCode(kind, tuple(sorted(insp.caps.values())), _with_runs(imports, insp))


def _python(insp: Inspection, path: str, content: str) -> list[str]:
    fx = python_code.analyse(content)
    shell_code.python_effects(insp, path, fx, f"written {path}", 0)
    if len(content) <= shell_code.MAX_CODE:  # as python -c is read: its words too
        text = python_code.without_data_urls(content, fx)
        shell_code.scan_code(insp, path, text, 0, spawn_words=not fx.understood)
    else:
        insp.scan([Word(content)])
    return sorted(set(fx.imports))[:256]


def _notebook(insp: Inspection, path: str, content: str) -> list[str]:
    """A Jupyter notebook, run by ``nbconvert --execute``, ``jupyter execute``, ``papermill``: its
    code cells are Python, with IPython's ``!command`` lines and ``%%bash``/``%%sh`` cells read as
    shell, and any other magic read as inline code. What is not a notebook is doubt."""
    try:
        cells = json.loads(content).get("cells")
        sources = [
            c["source"] if isinstance(c["source"], str) else "".join(c["source"])
            for c in cells
            if c.get("cell_type") == "code"
        ]
    except (ValueError, TypeError, AttributeError, KeyError):
        insp.add(f"proc.inline_code:{path}", f"written {path}: a notebook that cannot be read")
        return []
    python: list[str] = []
    for source in sources:
        head, _, body = source.partition("\n")
        if head.strip() in ("%%bash", "%%sh", "%%script bash", "%%script sh"):
            insp.source(body, 0, here=True)
            continue
        if head.strip().startswith("%%"):
            insp.add(f"proc.inline_code:{path}", f"written {path}: cell magic {head.strip()}")
            continue
        for line in source.splitlines():
            stripped = line.strip()
            if stripped.startswith("!"):
                insp.source(stripped[1:], 0, here=True)
                python.append("")
            elif stripped.startswith("%"):
                insp.add(f"proc.inline_code:{path}", f"written {path}: line magic {stripped[:80]}")
                python.append("")
            else:
                python.append(line)
    return _python(insp, path, "\n".join(python))


def _shell(insp: Inspection, path: str, content: str) -> list[str]:
    insp.source(content, 0, here=True)
    return []


_JS_SPECIFIER: Final = re.compile(
    r"""\brequire\s*\(\s*['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]"""
    r"""|\bimport\s+(?:[\w*{}\s,$]+\s+from\s+)?['"]([^'"]+)['"]|\bexport\s+[\w*{}\s,$]+\s+from\s+['"]([^'"]+)['"]"""
)
_JS_SUFFIXES: Final = ("", ".js", ".mjs", ".cjs", ".ts", ".mts", ".cts", ".json", "/index.js", "/index.ts")


def _js_imports(path: str, content: str) -> list[str]:
    """The files a JavaScript file loads: relative specifiers (with node's suffixes and index files)
    and packages (what node_modules holds for them, as trees)."""
    here = posixpath.dirname(path)
    out: list[str] = []
    for m in _JS_SPECIFIER.finditer(content):
        spec = next(g for g in m.groups() if g)
        if spec.startswith(("./", "../", "/")):
            stem = posixpath.normpath(posixpath.join(here, spec))
            out += [stem + suffix for suffix in _JS_SUFFIXES]
        elif not spec.startswith("node:") and ":" not in spec:
            name = "/".join(spec.split("/")[:2]) if spec.startswith("@") else spec.split("/")[0]
            for root in {here, "/workspace"}:
                out.append(shell_runs.tree(posixpath.join(root, "node_modules", name), ("javascript",)))
        if len(out) > 256:
            break
    return [p for p in out if p.startswith(CODE_ROOTS)]


def _javascript(insp: Inspection, path: str, content: str) -> list[str]:
    """No JavaScript parser here: what the words say (URLs, host:port, processes, commands), and
    the files it loads (``require``/``import``), which run with it."""
    if len(content) > shell_code.MAX_CODE:
        insp.add(f"proc.inline_code:{path}", f"written {path}: too long to read without a parser")
        return []
    shell_code.scan_code(insp, path, content, 0)
    for m in _JS_SPECIFIER.finditer(content):  # require('localtunnel'): a tunnel's, a miner's package
        spec = next(g for g in m.groups() if g)
        package = spec.split("/")[1] if spec.startswith("@") and "/" in spec else spec.split("/")[0]
        for cap in shell_tables.module_capabilities(package, imported=True):
            insp.add(cap, f"written {path} loads {spec}")
    return _js_imports(path, content)


# -- Compiled languages: Go, Rust, C/C++ -----------------------------------------------------
MAX_COMPILED: Final = 128 * 1024  # larger source is doubt: read word by word, it costs too much
# What starts processes, opens raw sockets, or is beyond reading words, in each language. An
# HTTP client or server is not a raw socket: its literal URLs are read; the sandbox is the wall.
_SPAWN: Final = {
    "go": r"\bexec\s*\.\s*Command(?:Context)?\b|\bos\s*\.\s*StartProcess\b|"
    r"\b(?:syscall|unix)\s*\.\s*(?:Exec|ForkExec|StartProcess)\b",
    "rust": r"\bCommand\s*::\s*new\b|\b(?:libc|nix|unistd)\s*::\s*(?:\w+\s*::\s*)?"
    r"(?:system|popen|fork|vfork|exec\w*|posix_spawn\w*)\b",
    "c": r"(?<![\w.:>])(?:system|popen|_popen|execl|execlp|execle|execv|execvp|execvpe|execve|fexecve|fork|"
    r"vfork|posix_spawnp?|clone|CreateProcess\w*|WinExec|ShellExecute\w*)\s*\(",
    # Java, Kotlin, Groovy, Scala, Gradle scripts: Runtime.exec, ProcessBuilder, Groovy's
    # "cmd".execute(), Gradle's exec {} / commandLine, Scala's "cmd".!
    "jvm": r"\.\s*exec\s*\(|\bProcessBuilder\b|\.\s*execute\s*\(|\bcommandLine\b|\bexec\s*\{|"
    r"\bproviders\s*\.\s*exec\b|\bProcess\s*\(|\"\s*\.\s*!!?|\bsys\.process\b",
}
_SOCKET: Final = {
    "go": r"\bnet\s*\.\s*(?:Dial\w*|Listen\w*|FileConn|FileListener)\b|\btls\s*\.\s*(?:Dial|Listen)\w*\b|"
    r"\b(?:syscall|unix)\s*\.\s*Socket\b|\bssh\s*\.\s*Dial\b",
    "rust": r"\b(?:TcpStream|TcpListener|UdpSocket|UnixStream|UnixListener|Socket)\s*::\s*\w+",
    "c": r"(?<![\w.:>])(?:socket|connect|listen|accept|WSASocket\w*)\s*\(",
    "jvm": r"\bnew\s+(?:Server|Datagram)?Socket\s*\(|\b(?:Server)?Socket(?:Channel)?\s*\.\s*open\b|"
    r"\b(?:Server)?Socket\s*\(|\bAsynchronousSocketChannel\b",
}
_BEYOND: Final = {
    "go": r"\b(?:syscall|unix)\s*\.\s*(?:Raw)?Syscall\w*\b|\bplugin\s*\.\s*Open\b|//go:linkname\b|\bpurego\b",
    "rust": r"\b(?:global_)?asm!|\blibc\s*::\s*syscall\b|\blibloading\b|\bdlopen\b",
    "c": r"\b(?:asm|__asm__|__asm)\b|(?<![\w.:>])(?:syscall|dlopen|mmap)\s*\(",
    "jvm": r"\bSystem\s*\.\s*(?:load|loadLibrary)\b|\bURLClassLoader\b|\bGroovyShell\b|"
    r"\bScriptEngine\w*\b|\bEval\s*\.\s*me\b|-javaagent|-agentpath|\bdefineClass\b|\bsun\.misc\.Unsafe\b",
}
# Tokens after which a newline is not inside a string or comment: where long source is cut.
_C_TOKENS: Final = re.compile(
    r"(?<![\w])b?r(#*)\".*?\"\1|//[^\n]*|/\*.*?(?:\*/|\Z)|\"(?:[^\"\\]|\\.)*(?:\"|\Z)|`[^`]*(?:`|\Z)|"
    r"'(?:[^'\\\n]|\\[^\n]{1,10}?)'|\n",
    re.S,
)
_CGO: Final = re.compile(r"\bimport\s*(?:\(\s*)?\"C\"")


_MAVEN_RUNS: Final = re.compile(
    r"exec-maven-plugin|maven-antrun-plugin|groovy-maven-plugin|gmavenplus|<executable>|<exec\b|"
    r"<(?:java|mainClass)>|-javaagent|<extensions>\s*true"
)


def _maven(insp: Inspection, path: str, content: str) -> list[str]:
    """``pom.xml``: plugins that run programs or code of the project (exec, antrun, groovy),
    build extensions and agents are doubt; repositories are where it connects."""
    m = _MAVEN_RUNS.search(content)
    if m is not None:
        line = content[: m.start()].count("\n") + 1
        insp.add(f"proc.inline_code:{path}", f"written {path}:{line}: {m.group(0)}: the build runs a program")
    insp.scan(Word(u) for u in re.findall(r"<url>\s*([^<\s]+)\s*</url>", content))
    return []


def _compiled(lang: str) -> Any:
    """A reader for source in ``lang``: its words as inline code is read (URLs, host:port,
    command strings, system paths), then what starts processes (``proc.spawn``), opens raw
    sockets or goes beyond words (raw syscalls, assembly, loading libraries): doubt, as a Python
    reverse shell's ``socket`` is. Comments are read too: a Rust doc comment is a doctest, a cgo
    preamble is C, and a reader that skipped them would be a place to hide code."""

    def read(insp: Inspection, path: str, content: str) -> list[str]:
        where = f"written {path}"
        if len(content) > MAX_COMPILED:
            insp.add(f"proc.inline_code:{path}", f"{where}: too long to read without a parser")
            return []
        # A Go raw string is in backticks; in Rust or C they are only markdown (doc comments).
        _scan_source(insp, path, _GENERATE.sub("", content) if lang == "go" else content.replace("`", " "))
        langs = [lang, "c"] if lang == "go" and _CGO.search(content) else [lang]
        for one in langs:
            for table, name in ((_SPAWN, "proc.spawn"), (_SOCKET, ""), (_BEYOND, "")):
                m = re.search(table[one], content)
                if m is not None:
                    line = content[: m.start()].count("\n") + 1
                    why = {_SPAWN[one]: "starts processes", _SOCKET[one]: "opens raw sockets"}.get(
                        table[one], "goes beyond what words say (raw syscalls, assembly, libraries)"
                    )
                    evidence = f"{where}:{line}: {m.group(0)}: {why}"
                    insp.add(name or f"proc.inline_code:{path}", evidence[:200])
        return []

    return read


_SYSTEM_DIRS: Final = frozenset(
    "bin boot dev etc home lib lib32 lib64 libx32 media mnt opt proc root run sbin srv sys tmp usr var "
    "workspace".split()
)


def _scan_source(insp: Inspection, path: str, content: str) -> None:
    """Source read as inline code is (``scan_code``, piece by piece), except that reading a
    path counts only under the system's top directories: in a source file ``"/items"`` is a
    route (``NewRequest("GET", "/items")``) far more often than a file."""
    scratch = Inspection(posixpath.dirname(path) or "/")
    for chunk in _chunks(content):
        shell_code.scan_code(scratch, path, chunk, 0, spawn_words=False)
    for name, cap in scratch.caps.items():
        top = name.removeprefix("fs.read:").split("/", 2)[1:2] if name.startswith("fs.read:/") else []
        if not top or top[0] in _SYSTEM_DIRS:
            insp.caps.setdefault(name, cap)
    insp.ran_files |= scratch.ran_files


def _chunks(content: str) -> list[str]:
    """``content`` in pieces of at most ``shell_code.MAX_CODE``, cut at newlines outside strings
    and comments (a piece that cannot be cut is left whole: reading it is doubt)."""
    if len(content) <= shell_code.MAX_CODE:
        return [content]
    cuts = [m.end() for m in _C_TOKENS.finditer(content) if m.group(0) == "\n"]
    out: list[str] = []
    start = last = 0
    for cut in [*cuts, len(content)]:
        if cut - start > shell_code.MAX_CODE and last > start:
            out.append(content[start:last])
            start = last
        last = cut
    out.append(content[start:])
    return out


_GENERATE: Final = re.compile(r"^//go:generate[ \t]+(.*)$", re.M)


def _go_generate(insp: Inspection, path: str, content: str) -> list[str]:
    """``//go:generate`` lines: command lines go generate runs in the file's directory (without
    a shell: read as one, a shell sees at least as much). ``-command NAME CMD`` names an alias."""
    aliases: dict[str, str] = {}
    names = {"$GOFILE": posixpath.basename(path), "$GOPACKAGE": "main", "$GOARCH": "amd64",
             "$GOOS": "linux", "$GOLINE": "1", "$DOLLAR": "$"}  # fmt: skip
    for m in _GENERATE.finditer(content):
        line = m.group(1).strip()
        for var, value in names.items():
            line = line.replace(var, value).replace("${" + var[1:] + "}", value)
        words = line.split(None, 2)
        if words[:1] == ["-command"] and len(words) == 3:
            aliases[words[1]] = words[2]
            line = words[2]
        elif words and words[0] in aliases:
            line = aliases[words[0]] + line[len(words[0]) :]
        if line:
            insp.source(line, 1)
    return []


def _asm(insp: Inspection, path: str, content: str) -> list[str]:
    insp.add(f"proc.inline_code:{path}", f"written {path}: assembly linked into a build is not read")
    return []


def _object(insp: Inspection, path: str, content: str) -> list[str]:
    insp.opaque(f"written {path}: an object file linked into a build is not read")
    return []


def _toml(insp: Inspection, path: str, content: str) -> dict[str, Any] | None:
    try:
        return tomllib.loads(content)
    except (tomllib.TOMLDecodeError, RecursionError):
        insp.opaque(f"written {path}: not TOML")
        return None


def _cargo(insp: Inspection, path: str, content: str) -> list[str]:
    """``Cargo.toml``: a build script named elsewhere than ``build.rs`` (what it pulls in), and
    dependencies from git or another registry (fetched, and their build scripts run)."""
    doc = _toml(insp, path, content)
    if doc is None:
        return []
    imports: list[str] = []
    build = doc.get("package", {}).get("build") if isinstance(doc.get("package"), dict) else None
    if isinstance(build, str):
        imports.append(posixpath.normpath(posixpath.join(posixpath.dirname(path), build)))
    insp.scan(Word(v) for v in _toml_values(doc, ("git", "registry-index", "index")) if "://" in v)
    return imports


def _toml_values(doc: Any, keys: tuple[str, ...], depth: int = 0) -> Iterator[str]:
    """Every string value under one of ``keys``, at any depth."""
    if depth > 16:
        return
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for k, v in items:
        if isinstance(v, str) and k in keys:
            yield v
        elif isinstance(v, (dict, list)):
            yield from _toml_values(v, keys, depth + 1)


# Keys whose value is a program cargo runs (a string, or a list: the program and its arguments).
_CARGO_PROGRAMS: Final = frozenset(
    {"runner", "linker", "rustc", "rustc-wrapper", "rustc-workspace-wrapper", "rustdoc", "browser",
     "credential-provider", "global-credential-providers", "ar"}
)  # fmt: skip
_RUSTFLAGS: Final = frozenset({"rustflags", "rustdocflags"})
_LINKER_FLAG: Final = re.compile(r"(?:^|\s)(?:-C\s*|--codegen\s+|-C)linker=(\S+)")
_BEYOND_FLAGS: Final = re.compile(
    r"link-args?|codegen-backend|llvm-args|-Z|--extern|(?:^|\s)-[Ll]|passes|plugin"
)


def _cargo_config(insp: Inspection, path: str, content: str) -> list[str]:
    """``.cargo/config.toml``: cargo runs its runners, wrappers, linkers, rustc, rustdoc,
    credential providers (command lines); ``[env]`` is set for builds and runs (read as
    ``export``); aliases are cargo command lines; flags naming a linker or a backend, overridden
    build scripts, other sources of crates and included files are doubt or what they reach."""
    doc = _toml(insp, path, content)
    if doc is None:
        return []
    for key, value in _toml_items(doc):
        last = key[-1]
        where = f"written {path}: {'.'.join(key)}"
        if last in _CARGO_PROGRAMS or key[0] == "credential-alias":
            for line in _program_lines(insp, where, value):
                insp.source(line, 1)
        elif last in _RUSTFLAGS:
            flags = " ".join(value) if isinstance(value, list) else str(value)
            for m in _LINKER_FLAG.finditer(flags):
                insp.source(m.group(1), 1)
            if _BEYOND_FLAGS.search(_LINKER_FLAG.sub("", flags)):
                insp.opaque(f"{where} = {flags}: flags that link or load more than the crate"[:200])
        elif key[0] == "env" and len(key) >= 2:
            name = key[1]
            text = value if isinstance(value, str) else None
            if len(key) == 3 and last != "value":
                continue  # force, relative
            if text is None or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                insp.opaque(f"{where}: not a variable")
            else:
                insp.source(f"export {name}={shlex.quote(text)}", 1)
        elif key[0] == "alias":
            for line in _program_lines(insp, where, value):
                insp.source("cargo " + line, 1)
        elif key[0] == "target" and len(key) >= 3 and last not in ("rustflags", "rustdocflags"):
            insp.opaque(f"{where}: a build script's output overridden (libraries linked)")
        elif key[0] in ("source", "registries", "registry", "patch", "http", "net"):
            if isinstance(value, str) and "://" in value:
                insp.scan([Word(value)])
            if last == "proxy":
                insp.add("net.proxy", f"{where} = {value}"[:200])
        elif key[0] in ("paths", "include"):
            insp.opaque(f"{where}: crates or configuration from other paths")
    return []


def _toml_items(doc: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(key path, value) of every leaf of a TOML document (lists are leaves)."""
    if len(prefix) > 8:
        return
    for k, v in doc.items():
        if isinstance(v, dict):
            yield from _toml_items(v, (*prefix, str(k)))
        else:
            yield (*prefix, str(k)), v


def _program_lines(insp: Inspection, where: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        if value and all(isinstance(v, str) and " " in v.strip() for v in value):
            return list(value)  # global-credential-providers: each is a command line
        return [" ".join(shlex.quote(v) for v in value)]
    if isinstance(value, bool):
        return []
    insp.opaque(f"{where}: a program that is not a command line")
    return []


def _rust_toolchain(insp: Inspection, path: str, content: str) -> list[str]:
    """``rust-toolchain(.toml)``: a channel is fetched from the Rust project; a ``path`` runs
    that directory's cargo and rustc instead (doubt: what is there is not known)."""
    text = content.strip()
    if re.fullmatch(r"[A-Za-z0-9._+-]{1,64}", text):
        return []  # the legacy file: a channel name
    doc = _toml(insp, path, content)
    if doc is None:
        return []
    toolchain = doc.get("toolchain", {})
    if not isinstance(toolchain, dict) or "path" in toolchain:
        insp.opaque(f"written {path}: a toolchain from a path runs its own cargo and rustc")
    return []


_CMAKE_KEYWORDS: Final = (
    r"(?=\s(?:COMMAND|WORKING_DIRECTORY|OUTPUT|DEPENDS|COMMENT|BYPRODUCTS|VERBATIM|USES_TERMINAL|"
    r"RESULT_VARIABLE|RESULTS_VARIABLE|OUTPUT_VARIABLE|ERROR_VARIABLE|INPUT_FILE|OUTPUT_FILE|ERROR_FILE|"
    r"TIMEOUT|OUTPUT_QUIET|ERROR_QUIET|COMMAND_ECHO|ENCODING|MAIN_DEPENDENCY|IMPLICIT_DEPENDS|JOB_POOL|"
    r"JOB_SERVER_AWARE|SOURCES|APPEND|DEPFILE|COMMAND_EXPAND_LISTS|ECHO_OUTPUT_VARIABLE|"
    r"ECHO_ERROR_VARIABLE|COMMAND_ERROR_IS_FATAL)\b|\s*\))"
)
_CMAKE_COMMAND: Final = re.compile(r"\bCOMMAND\s+(.*?)" + _CMAKE_KEYWORDS, re.S)
# add_custom_target(Name [ALL] [command args...] ...): a command without the COMMAND keyword.
_CMAKE_TARGET: Final = re.compile(
    r"\badd_custom_target\s*\(\s*[^\s)]+(?:\s+ALL)?\s+(.*?)" + _CMAKE_KEYWORDS, re.S | re.I
)
_CMAKE_VAR: Final = re.compile(r"\$\{[^{}]*\}|\$<[^<>]*>")
_CMAKE_BEYOND: Final = re.compile(
    r"\b(?:cmake_language|install\s*\(\s*(?:CODE|SCRIPT)|load_command|variable_watch)\b", re.I
)


def _cmake(insp: Inspection, path: str, content: str) -> list[str]:
    """``CMakeLists.txt``/``.cmake``: the ``COMMAND`` lines of ``execute_process`` (run when cmake
    configures) and of custom commands and targets (when it builds) as command lines; its words
    as code (URLs of downloads and fetched projects); code cmake evaluates is doubt."""
    if len(content) > MAX_COMPILED:
        insp.add(f"proc.inline_code:{path}", f"written {path}: too long to read without a parser")
        return []
    _scan_source(insp, path, content)
    commands = [m.group(1) for m in _CMAKE_COMMAND.finditer(content)]
    commands += [m.group(1) for m in _CMAKE_TARGET.finditer(content) if not m.group(1).startswith("COMMAND")]
    for command in commands:
        if command.strip():
            insp.source(_CMAKE_VAR.sub("x", command), 1)
    m = _CMAKE_BEYOND.search(content)
    if m is not None:
        insp.add(f"proc.inline_code:{path}", f"written {path}: {m.group(0)}: runs what cmake evaluates")
    return []


def _text(insp: Inspection, path: str, content: str) -> list[str]:
    """A file with no code name: should it ever be run, it is read as Python if it parses as
    Python, else as a shell script. Larger text than code usually is, is doubt."""
    if len(content) > MAX_TEXT:
        insp.opaque(f"written {path}: too large to read as code, should it be run")
        return []
    try:
        ast.parse(content)
    except (SyntaxError, ValueError):
        return _shell(insp, path, content)
    return _python(insp, path, content)


def _startup(insp: Inspection, path: str, content: str) -> list[str]:
    """A ``.pth`` file runs its lines that start with ``import`` (the rest are path entries);
    ``sitecustomize``/``usercustomize`` in a site directory run whole. Either runs at every start
    of that Python, whatever it is asked to run (``shell_runs`` hands every Python start the
    ``startup`` records of the workspace and /tmp)."""
    if path.endswith(".pth"):
        content = "\n".join(line for line in content.splitlines() if line.startswith(("import ", "import\t")))
    if content.strip():
        _python(insp, path, content)
    return []


def _requirements(insp: Inspection, path: str, content: str) -> list[str]:
    """A pip requirements file: each line is read as ``pip install LINE`` would be (an index
    option, a URL, a local directory whose build runs); the builds of local directories it names
    are what it pulls in, so ``pip install -r`` inherits what was written into them."""
    for line in _logical_lines(content):
        line = re.sub(r"(^|\s)#.*", "", line).split(";", 1)[0]  # comments, environment markers
        words = [w for w in line.split() if not w.startswith("--hash")]
        if words:
            insp.source("pip install " + " ".join(shlex.quote(w) for w in words), 1)
    return sorted(insp.ran_files)


def _unknown(insp: Inspection, path: str, content: str) -> list[str]:
    insp.opaque(f"written {path}: a script for {content.partition(chr(10))[0][2:].strip()!r} is not read")
    return []


def _commands(insp: Inspection, path: str, lines: Iterator[str]) -> None:
    for line in lines:
        if line.strip():
            insp.source(line, 1)


def _npm(insp: Inspection, path: str, content: str) -> list[str]:
    try:
        doc = json.loads(content)
    except (ValueError, RecursionError):
        insp.opaque(f"written {path}: not JSON")
        return []
    if not isinstance(doc, dict):
        return []
    scripts = doc.get("scripts") or {}
    if not isinstance(scripts, dict) or not all(isinstance(v, str) for v in scripts.values()):
        insp.opaque(f"written {path}: scripts that are not command lines")
        return []
    # npm puts the package's node_modules/.bin first on PATH: a script's bare name may be a file there
    insp.path_assignment(Word("PATH=node_modules/.bin:$PATH"), "node_modules/.bin:$PATH")
    _commands(insp, path, iter(scripts.values()))
    for section in ("dependencies", "devDependencies", "optionalDependencies", "peerDependencies"):
        deps = doc.get(section) or {}
        if isinstance(deps, dict):  # a dependency fetched from a URL or a repository
            insp.scan(Word(v) for v in deps.values() if isinstance(v, str) and "://" in v)
    return []


# npm settings whose value is a program npm runs, or a file of JavaScript it loads.
_NPM_PROGRAM_KEYS: Final = frozenset(
    {"script-shell", "shell", "git", "editor", "browser", "viewer", "init-module"}
)
_NODE_REQUIRE: Final = re.compile(
    r"(?:^|\s)(?:-r|--require|--import|--loader|--experimental-loader)[=\s]+(\S+)"
)


def _npmrc(insp: Inspection, path: str, content: str) -> list[str]:
    """A project's ``.npmrc``: every setting is read as the option ``npm --key=value`` (a shell for
    scripts, node options, another registry); the programs and modules it names are pulled in."""
    here = posixpath.dirname(path)
    files: list[str] = []
    for line in content.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, _, value = (part.strip() for part in line.partition("="))
        if key.startswith("//") or (key.startswith("@") and key.endswith(":registry")):
            insp.scan([Word(value if "://" in value else "https:" + key)])  # a registry's host
            continue
        if key in shell_tables.NPM_PLAIN_KEYS:
            continue
        insp.source(f"npm --{shlex.quote(key)}={shlex.quote(value)}", 1)
        if key in _NPM_PROGRAM_KEYS and value:
            files.append(posixpath.normpath(posixpath.join(here, value.split()[0])))
        if key == "node-options":
            files += [posixpath.normpath(posixpath.join(here, m)) for m in _NODE_REQUIRE.findall(value)]
    return [p for p in files if p.startswith(CODE_ROOTS)]


def _yarnrc(insp: Inspection, path: str, content: str) -> list[str]:
    """``.yarnrc.yml``'s ``yarnPath`` and ``plugins`` are JavaScript yarn runs (``.yarnrc``'s
    ``yarn-path`` too); registries and proxies are where it connects."""
    here = posixpath.dirname(path)
    settings: dict[str, Any] = {}
    if path.endswith((".yml", ".yaml")):
        try:
            doc = load_yaml(content, path)
        except (yaml.YAMLError, RecursionError):
            insp.opaque(f"written {path}: not YAML")
            return []
        settings = doc if isinstance(doc, dict) else {}
    else:  # yarn 1: key "value" per line
        for line in content.splitlines():
            try:
                words = shlex.split(line, comments=True)
            except ValueError:  # yarn reads it some other way: what it would run is not known
                insp.opaque(f"written {path}: a line not understood: {line[:80]}")
                continue
            if len(words) >= 2:
                settings[words[0]] = words[1]
    files: list[str] = []
    for key, value in settings.items():
        if key in ("yarnPath", "yarn-path") and isinstance(value, str):
            files.append(value)
        elif key == "plugins" and isinstance(value, list):
            files += [
                v if isinstance(v, str) else str(v.get("path", ""))
                for v in value
                if isinstance(v, (str, dict))
            ]
        elif isinstance(value, str) and "://" in value:
            insp.scan([Word(value)])
    out = [posixpath.normpath(posixpath.join(here, f)) for f in files if f]
    outside = [p for p in out if not p.startswith(CODE_ROOTS)]
    if outside:
        insp.opaque(f"written {path}: yarn runs JavaScript from {outside[0]}")
    return [p for p in out if p.startswith(CODE_ROOTS)]


def _pyproject(insp: Inspection, path: str, content: str) -> list[str]:
    try:
        doc = tomllib.loads(content)
    except (tomllib.TOMLDecodeError, RecursionError):
        try:  # a lenient reader accepts unknown escapes ("about\.py$"): read it as one would
            doc = tomllib.loads(_UNKNOWN_ESCAPE.sub(r"\\\\", content))
        except (tomllib.TOMLDecodeError, RecursionError):
            insp.opaque(f"written {path}: not TOML")
            return []
    if _table(doc, "build-system").get("backend-path"):
        insp.opaque(f"written {path}: an in-tree build backend runs code of the workspace")
    tool = _table(doc, "tool")
    commands: list[Any] = []
    commands += list(_table(tool, "poe", "tasks").values())
    commands += list(_table(tool, "pdm", "scripts").values())
    for env in _table(tool, "hatch", "envs").values():
        if isinstance(env, dict):
            commands += list(_table(env, "scripts").values())
    _commands(insp, path, _strings(insp, path, commands))
    # Build hooks that are files of the project: poetry's build script, hatch's custom hooks.
    poetry = _table(tool, "poetry")
    build = poetry.get("build")
    hooks = [build.get("script") if isinstance(build, dict) else build, poetry.get("build-script")]
    custom = _table(tool, "hatch", "build", "hooks").get("custom")
    hooks += [custom.get("path", "hatch_build.py") if isinstance(custom, dict) else None]
    here = posixpath.dirname(path)
    built = [posixpath.normpath(posixpath.join(here, h)) for h in hooks if isinstance(h, str) and h]
    legacy = _table(tool, "tox").get("legacy_tox_ini")
    loaded = _tox(insp, path, legacy) if isinstance(legacy, str) else []
    built = [p for p in built if p.startswith(CODE_ROOTS)]
    _package_indexes(insp, path, tool)
    return built + loaded + _toml_tools(insp, path, tool if isinstance(tool, dict) else {})


# Where project managers fetch packages from, in pyproject.toml (uv, poetry, pdm, rye) and uv.toml:
# an index named here is used by ``uv sync``/``poetry install`` with nothing on their command line.
_INDEX_KEYS: Final = ("index-url", "extra-index-url", "find-links", "url")
_INDEX_TABLES: Final = (("uv",), ("uv", "pip"), ("poetry",), ("pdm",), ("rye",))
_INDEX_LISTS: Final = ("index", "source", "sources")


def _package_indexes(insp: Inspection, path: str, tool: dict[str, Any]) -> None:
    """Every index, source or find-links location of the project managers' tables, as
    destinations (a local path stays local)."""
    urls: list[Any] = []
    for keys in _INDEX_TABLES:
        table = _table(tool, *keys)
        for key in _INDEX_KEYS[:3]:
            value = table.get(key)
            urls += value if isinstance(value, list) else [value]
        for name in _INDEX_LISTS:
            entries = table.get(name)
            for entry in entries if isinstance(entries, list) else []:
                if isinstance(entry, dict):
                    urls += [entry.get(k) for k in _INDEX_KEYS]
    for url in urls:
        if isinstance(url, str) and url:
            shell_options.destination(insp, Word(url), f"written {path}: packages come from {url}")


def _uv_toml(insp: Inspection, path: str, content: str) -> list[str]:
    """``uv.toml``: the ``[tool.uv]`` table of a pyproject, on its own."""
    try:
        doc = tomllib.loads(content)
    except (tomllib.TOMLDecodeError, RecursionError):
        insp.opaque(f"written {path}: not TOML")
        return []
    _package_indexes(insp, path, {"uv": doc})
    return []


_UNKNOWN_ESCAPE: Final = re.compile(r"\\(?![btnfr\"\\uUe\n])")


def _strings(insp: Inspection, path: str, values: list[Any]) -> Iterator[str]:
    """Command lines of task tables: a string, a list of them, or ``{cmd|shell = ...}``."""
    for v in values:
        if isinstance(v, dict):
            v = v.get("cmd", v.get("shell", v.get("script")))
            if v is None:
                continue  # a task composed of other tasks (sequence, ref...): they are read too
        if isinstance(v, str):
            yield v
        elif isinstance(v, list) and all(isinstance(x, str) for x in v):
            yield from v
        else:
            insp.opaque(f"written {path}: a task that is not a command line")


_TOX_KEYS: Final = ("commands", "commands_pre", "commands_post", "install_command")
_TOX_SUBST: Final = re.compile(r"\{[^{}]*\}")


def _ini(insp: Inspection, path: str, content: str) -> configparser.ConfigParser | None:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(content)
    except configparser.Error:
        insp.opaque(f"written {path}: not an ini file")
        return None
    return parser


def _config(insp: Inspection, path: str, content: str) -> list[str]:
    """``pytest.ini``, ``setup.cfg``, ``.pylintrc``, ``mypy.ini``, ``.coveragerc``, ``.flake8``."""
    parser = _ini(insp, path, content)
    return [] if parser is None else _ini_tools(insp, path, parser)


# Where tools that read ini files find what loads code: pytest's addopts (-p), pylint's
# load-plugins and init-hook (Python run at start), mypy's and coverage's plugins, flake8's local
# plugins (modules under its own paths).
_PYTEST_SECTIONS: Final = ("pytest", "tool:pytest")
_PYLINT_SECTIONS: Final = frozenset({"main", "master", "pylint", "pylint.main", "pylint.master"})
_PLUGIN_KEYS: Final = (("mypy", "plugins"), ("run", "plugins"), ("coverage:run", "plugins"))


def _ini_tools(insp: Inspection, path: str, parser: configparser.ConfigParser) -> list[str]:
    modules: list[str] = []
    for section in _PYTEST_SECTIONS:
        modules += _addopts_plugins(insp, path, [parser.get(section, "addopts", fallback="")])
    for section in parser.sections():
        if section.lower() in _PYLINT_SECTIONS:
            modules += _names(parser.get(section, "load-plugins", fallback=""))
            modules += _hook(insp, path, parser.get(section, "init-hook", fallback=""))
    for section, key in _PLUGIN_KEYS:
        modules += _names(parser.get(section, key, fallback=""))
    local = "flake8:local-plugins"
    if parser.has_section(local):
        for key in ("extension", "report"):
            for line in parser.get(local, key, fallback="").splitlines():
                _, _, target = line.partition("=")
                modules += _names(target)
        dirs = tuple(_names(parser.get(local, "paths", fallback="")))
        return _module_files(insp, path, modules, extra_roots=dirs)
    return _module_files(insp, path, modules)


def _toml_tools(insp: Inspection, path: str, tool: dict[str, Any]) -> list[str]:
    """The same in ``pyproject.toml``'s (and ``pylintrc.toml``'s) ``[tool.*]`` tables."""
    modules: list[str] = []
    pytest = tool.get("pytest")
    if isinstance(pytest, dict):
        for table in (pytest, pytest.get("ini_options")):
            if isinstance(table, dict):
                opts = table.get("addopts")
                line = shlex.join(_listed(opts)) if isinstance(opts, list) else " ".join(_listed(opts))
                modules += _addopts_plugins(insp, path, [line])
    pylint = tool.get("pylint")
    if isinstance(pylint, dict):
        for table in (
            pylint,
            pylint.get("main"),
            pylint.get("master"),
            pylint.get("MAIN"),
            pylint.get("MASTER"),
        ):
            if isinstance(table, dict):
                modules += [n for v in _listed(table.get("load-plugins")) for n in _names(v)]
                modules += [m for v in _listed(table.get("init-hook")) for m in _hook(insp, path, v)]
    mypy = tool.get("mypy")
    coverage_run = _table(tool, "coverage", "run")
    for table in (mypy, coverage_run):
        if isinstance(table, dict):
            modules += [n for v in _listed(table.get("plugins")) for n in _names(v)]
    return _module_files(insp, path, modules)


def _table(doc: dict[str, Any], *keys: str) -> dict[str, Any]:
    """``doc[k1][k2]...`` when every step is a table, else an empty one."""
    for key in keys:
        value = doc.get(key)
        if not isinstance(value, dict):
            return {}
        doc = value
    return doc


def _listed(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _names(value: str) -> list[str]:
    """``a, b.c:entry`` and one per line: the module (or file) part of each."""
    return [n.split(":", 1)[0].strip() for n in re.split(r"[,\n]", value) if n.split(":", 1)[0].strip()]


def _addopts_plugins(insp: Inspection, path: str, values: list[str]) -> list[str]:
    """pytest's ``-p NAME`` in addopts (``no:NAME`` turns one off)."""
    out: list[str] = []
    for value in values:
        try:
            words = shlex.split(value)
        except ValueError:
            insp.opaque(f"written {path}: pytest options not understood: {value}")
            continue
        for i, w in enumerate(words):
            name = words[i + 1] if w == "-p" and i + 1 < len(words) else w[2:] if w.startswith("-p") else ""
            if name and not name.startswith("no:"):
                out.append(name)
    return out


def _hook(insp: Inspection, path: str, code: str) -> list[str]:
    """pylint's ``init-hook``: Python run when pylint starts (unquoted first, as pylint does)."""
    code = code.strip()
    if len(code) > 1 and code[0] == code[-1] and code[0] in "'\"":
        code = code[1:-1]
    return _python(insp, path, code) if code.strip() else []


def _module_files(
    insp: Inspection, path: str, modules: list[str], extra_roots: tuple[str, ...] = ()
) -> list[str]:
    """Where the modules (or ``x.py`` files) a configuration names would be loaded from."""
    here = posixpath.dirname(path)
    out: list[str] = []
    for name in modules[:64]:
        if name.endswith(".py") or "/" in name:
            out.append(posixpath.normpath(posixpath.join(here, name)))
            continue
        out += shell_runs.module_paths(insp, name)
        parts = name.split(".")
        for root in extra_roots:
            stem = posixpath.normpath(posixpath.join(here, root, *parts))
            out += [stem + ".py", stem + "/__init__.py"]
    return sorted({p for p in out if p.startswith(CODE_ROOTS)})


def _tox(insp: Inspection, path: str, content: str) -> list[str]:
    parser = _ini(insp, path, content)
    if parser is None:
        return []
    for section in parser.sections():
        if not section.startswith("testenv"):
            continue
        for key in _TOX_KEYS:
            for line in parser.get(section, key, fallback="").splitlines():
                line = line.strip().lstrip("-!").strip()
                line = line.replace("{envpython}", "python").replace("{posargs}", "")
                if line:
                    insp.source(_TOX_SUBST.sub("x", line), 1)
        # setenv: the environment of every command (PIP_INDEX_URL, HTTPS_PROXY, LD_PRELOAD...);
        # deps: pip install's arguments, options (-i URL, -r file) and requirements with URLs
        for line in parser.get(section, "setenv", fallback="").splitlines():
            name, eq, value = line.strip().partition("=")
            if eq and name.strip():
                value = _TOX_SUBST.sub("x", value.strip().replace("{toxinidir}", posixpath.dirname(path)))
                insp.assignment(Word(f"{name.strip()}={value}"), 1)
        for line in parser.get(section, "deps", fallback="").splitlines():
            line = _TOX_SUBST.sub("x", line.strip())
            try:
                words = shlex.split(line)
            except ValueError:
                insp.opaque(f"written {path}: a dependency line not understood: {line}")
                continue
            if words and (words[0].startswith("-") or "://" in line):
                insp.run([Word("pip"), Word("install"), *map(Word, words)], 1)
    return _ini_tools(insp, path, parser)


def _pre_commit(insp: Inspection, path: str, content: str) -> list[str]:
    try:
        doc = load_yaml(content, path)  # strict: a duplicate key is not a guess
    except (yaml.YAMLError, RecursionError):
        insp.opaque(f"written {path}: not YAML")
        return []
    repos = doc.get("repos", []) if isinstance(doc, dict) else []
    for repo in repos if isinstance(repos, list) else []:
        if not isinstance(repo, dict):
            continue
        url = repo.get("repo")
        if isinstance(url, str) and "://" in url:
            insp.scan([Word(url)])  # hooks fetched from there (and run like a package's code)
        hooks = repo.get("hooks")
        for hook in hooks if url in ("local", "meta") and isinstance(hooks, list) else []:
            entry = hook.get("entry") if isinstance(hook, dict) else None
            if isinstance(entry, str):
                args = hook.get("args", [])
                insp.source(" ".join([entry, *(str(a) for a in args if isinstance(a, (str, int)))]), 1)
    return []


# -- Makefiles ---------------------------------------------------------------------------
_ASSIGN: Final = re.compile(
    r"^(?:export\s+|override\s+)*([A-Za-z_.][A-Za-z0-9_.]*)\s*(::?=|:::=|\?=|\+=|!=|=)\s*(.*)$"
)
_INCLUDE: Final = re.compile(r"^-?(?:include|sinclude)\s+(.+)$")
_REF: Final = re.compile(r"\$(?:\(([^()$]*)\)|\{([^{}$]*)\}|([@<^?*%|+]))")
_SHELL_CALL: Final = re.compile(r"\$[({]shell\s+([^()]*)[)}]")
_DEFAULTS: Final = {
    "MAKE": "make", "CC": "cc", "CXX": "g++", "CPP": "cc -E", "RM": "rm -f", "AR": "ar", "LD": "ld",
    "SHELL": "/bin/sh", "CURDIR": ".", "MAKEFLAGS": "", "MFLAGS": "",
}  # fmt: skip
_SAFE_SHELLS: Final = frozenset({"/bin/sh", "/bin/bash", "/usr/bin/bash", "/usr/bin/sh", "sh", "bash"})


def _make(insp: Inspection, path: str, content: str) -> list[str]:
    """Recipes are shell command lines, after make's own variables are put in; ``$(shell ...)``
    runs when make reads the file; another ``SHELL`` makes every recipe another program's."""
    variables: dict[str, str] = dict(_DEFAULTS)
    recipes: list[str] = []
    includes: list[str] = []
    for line in _logical_lines(content):
        if line.startswith("\t"):
            recipes.append(line[1:].lstrip("@-+ \t"))
            continue
        stripped = line.split("#", 1)[0].strip()
        m = _ASSIGN.match(stripped)
        if m is not None:
            name, op, value = m.groups()
            if op == "!=":
                insp.source(value, 1)
            variables[name] = (variables.get(name, "") + " " + value) if op == "+=" else value
            if name in ("SHELL", ".SHELLFLAGS") and value.strip() not in _SAFE_SHELLS | {"-c", "-ec", "-euc"}:
                insp.opaque(f"written {path}: {name} = {value}: recipes run by another program")
            continue
        m = _INCLUDE.match(stripped)
        if m is not None:
            includes += [posixpath.join(posixpath.dirname(path), w) for w in m.group(1).split()]
        if ".RECIPEPREFIX" in stripped:
            insp.opaque(f"written {path}: .RECIPEPREFIX changes what a recipe line is")
        if ";" in stripped and ":" in stripped.split(";", 1)[0]:  # target: prereq ; recipe
            recipes.append(stripped.split(";", 1)[1])
    for m in _SHELL_CALL.finditer(content):
        insp.source(_expand(m.group(1), variables), 1)
    for recipe in recipes:
        insp.source(_expand(recipe, variables), 1)
    return includes


def _logical_lines(content: str) -> Iterator[str]:
    buf = ""
    for raw in content.splitlines():
        if raw.endswith("\\"):
            buf += raw[:-1] + " "
            continue
        yield buf + raw
        buf = ""
    if buf:
        yield buf


def _expand(text: str, variables: dict[str, str], depth: int = 0) -> str:
    """make's ``$(VAR)``/``${VAR}`` put in (undefined ones are empty, as make has them),
    automatic variables as a placeholder word, ``$$`` as the shell's ``$``; functions stay
    (the shell reader then doubts them)."""
    if depth > 8:
        return text

    def one(m: re.Match[str]) -> str:
        name = m.group(1) if m.group(1) is not None else m.group(2)
        if name is None or (name[:1] in "@<^?*%|+" and len(name) <= 2):
            return "target"
        if " " in name or "," in name:
            return m.group(0)  # a function: $(wildcard ...), $(patsubst ...)
        return _expand(variables.get(name, ""), variables, depth + 1)

    return _REF.sub(one, text.replace("$$", "\x00")).replace("\x00", "$")


_READERS: Final = {
    "text": _text,
    "requirements": _requirements,
    "startup": _startup,
    "python": _python,
    "notebook": _notebook,
    "shell": _shell,
    "javascript": _javascript,
    "make": _make,
    "npm": _npm,
    "pyproject": _pyproject,
    "uv-config": _uv_toml,
    "tox": _tox,
    "config": _config,
    "npmrc": _npmrc,
    "yarnrc": _yarnrc,
    "pre-commit": _pre_commit,
    "unknown": _unknown,
    "go": _compiled("go"),
    "rust": _compiled("rust"),
    "jvm": _compiled("jvm"),
    "maven": _maven,
    "c": _compiled("c"),
    "asm": _asm,
    "object": _object,
    "cargo": _cargo,
    "cargo-config": _cargo_config,
    "rust-toolchain": _rust_toolchain,
    "cmake": _cmake,
}


def shadows_stdlib(path: str) -> bool:
    """``DIR/string.py`` or ``DIR/string/__init__.py``: a standard-library module's name."""
    head, name = posixpath.split(path)
    if name == "__init__.py":
        name = posixpath.basename(head)
    elif name.endswith(".py"):
        name = name[: -len(".py")]
    else:
        return False
    return name in SHADOWABLE


def _shadow(insp: Inspection, path: str, content: str) -> list[str]:
    return _python(insp, path, content)


def _program_text(program: str, option: str) -> Any:
    """The reader of a file run as ``program option FILE``: its text given inline instead."""

    def read(insp: Inspection, path: str, content: str) -> list[str]:
        if program == "awk" and (shell_code.awk_refuses(content) or not shell_code.awk_runs_code(content)):
            # a syntax error every awk stops at before running any of it (most text that is not
            # awk: a quote in prose, a Python docstring or line starting with ``)``, a Markdown
            # table's ``|``; the cheaper proof, asked first), or no system(), pipe, getline,
            # ENVIRON, output redirection: it only computes
            return []
        if program == "sed" and not shell_code.sed_script(content)[3]:
            # sed refuses a script it cannot parse and runs none of it; ours may be stricter: doubt
            insp.add("proc.inline_code:sed", f"written {path}: not a sed script this reader understands")
            return []
        if len(content) > MAX_PROGRAM_TEXT:
            insp.opaque(f"written {path}: too large to read as a {program} program, should it be run")
        else:
            insp.run([Word(program), Word(option), Word(content)], 0)
        return []

    return read


_PART_READERS: Final = {
    "go-generate": _go_generate,
    "shadow": _shadow,
    "awk": _program_text("awk", "--source"),
    "sed": _program_text("sed", "--expression"),
}

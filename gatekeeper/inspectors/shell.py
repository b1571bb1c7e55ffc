"""Shell inspector: every program a command line would run, and what it would do.

A command line is parsed with bashlex (a real bash grammar) and walked in full: lists,
pipes, subshells, substitutions, ``bash -c`` and ``eval`` strings (recursively,
depth-limited), and wrappers such as ``sudo`` or ``env`` whose argument is the real
program. Anything whose meaning is only known at run time (``$S$H``, a non-literal ``-c``
string, a parse failure) becomes ``shell.opaque``: this inspector fails closed, never open.

Plain lines (words, simple quotes, ``|`` ``&&`` ``||`` ``;``, simple redirects) skip bashlex:
``shell_lexer`` builds the very trees bashlex would, or declines and bashlex reads the line.
The walk is the same either way; ``tests/inspectors/test_shell_fast_path.py`` holds the two
readings equal.
"""

from __future__ import annotations

import fnmatch
import functools
import operator
import posixpath
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from gatekeeper.inspectors import (
    shell_code,
    shell_compute,
    shell_files,
    shell_lexer,
    shell_network,
    shell_options,
    shell_runs,
    shell_static,
    shell_tables,
)
from gatekeeper.inspectors import shell_programs as P
from gatekeeper.inspectors.bashlex_fixes import bashlex
from gatekeeper.inspectors.content import content_capabilities
from gatekeeper.inspectors.paths import (
    CODE_ROOTS,
    HOME,
    credential_classes,
    normalize_path,
    path_capabilities,
    path_classes,
)
from gatekeeper.inspectors.shell_programs import Handler, Word
from gatekeeper.inspectors.url import (
    address_word_class,
    host_class_capabilities,
    normalize_host,
    url_capabilities,
)
from gatekeeper.models import Capability

if TYPE_CHECKING:
    from gatekeeper.inspectors import InspectContext

__all__ = ["MAX_DEPTH", "MAX_INPUT", "UNKNOWN_CWD", "Word", "inspect_shell", "inspect_shell_command"]

MAX_INPUT: Final = 64 * 1024
MAX_DEPTH: Final = 8
# bashlex costs ~35 us per token: at most this many tokens are parsed per call (all nested
# scripts together), which bounds one inspection to a few hundred ms; past it, opaque.
MAX_TOKENS: Final = 6000
_HEREDOC_START_RE: Final = re.compile(r"(?<!<)<<(?!<)-?\s*['\"]?([A-Za-z0-9_.-]+)['\"]?")
CACHE_MAX_INPUT: Final = 4096  # bounds the cache at ~8 MiB of keys
MAX_URLS: Final = 64
EVIDENCE_MAX: Final = 200

_URL_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]*")
_URL_IN_EXPANSION_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`()]*")
_ASSIGN_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\+?=")
_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DEFAULT_ASSIGN_RE: Final = re.compile(r"([A-Za-z_][A-Za-z0-9_]*):?=")  # ${NAME:=word}, ${NAME=word}
_WRITE_REDIRECTS: Final = frozenset({">", ">>", ">|", "&>", "&>>", ">&", "<>"})
_HARMLESS_TARGETS: Final = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty"})
_EXPANSION_KINDS: Final = frozenset({"parameter", "commandsubstitution", "processsubstitution"})
_QUOTING_RE: Final = re.compile(r"['\"\\$]")  # a word with these may read otherwise in bash
_NO_RUNS: Final[frozenset[str]] = frozenset()
_TEXT: Final = operator.attrgetter("text")
_OPERATOR_CHARS: Final = str.maketrans("", "", "|&;()`")  # deleted: the difference counts them
_SSH_DIR_RE: Final = re.compile(r"(?:^|[/=:~])\.ssh(?:/|$)")
_BRACES_RE: Final = re.compile(r"\{[^{}]*(?:,|\.\.)[^{}]*\}")
_DOT_GLOB_RE: Final = re.compile(r"(?:^|/)\.[^/]*[*?\[][^/]*/")


def _changes_pipe(r: Any, *, producer: bool) -> bool:
    """Does this redirection change what a pipe carries? On the producer, anything but sending
    its errors elsewhere (``2>/dev/null``; ``2>&1`` puts them in the pipe); on the consumer, a
    new stdin (``< list``, a here-string). Its own output and errors (``> out``, ``2>&1``) do not."""
    kind, fd = getattr(r, "type", ""), getattr(r, "input", None)
    if producer:
        return not (fd == 2 and kind in (">", ">>") and getattr(r.output, "kind", None) == "word")
    return kind.startswith("<") and fd in (None, 0)


def _kill(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """``server & PID=$!; sleep 5; kill $PID``: a signal to a job this command line started
    (``$!``, a variable assigned it, ``%N``) is its own business; any other process is
    ``proc.signal`` (the sidecar, another session's tools, ``kill -9 -1``: everything)."""
    rest = list(args)
    if rest and rest[0].literal and rest[0].text in ("-l", "-L"):
        return set()  # lists signal names
    # one signal option, first (-9, -TERM, -s KILL, -n 9); every word after it is a target
    # (kill -9 -01 is process -1: every process)
    if rest and rest[0].literal and rest[0].text in ("-s", "-n"):
        rest = rest[2:]
    elif (
        rest
        and rest[0].literal
        and re.fullmatch(r"-[A-Za-z][A-Za-z0-9+]*|-[0-9]+", rest[0].text)
        and len(rest) > 1
    ):
        rest = rest[1:]
    if rest and rest[0].literal and rest[0].text == "--":
        rest = rest[1:]
    for w in rest:
        t = w.text
        var = (
            t[1:].strip("{}")
            if re.fullmatch(r"\$[A-Za-z_][A-Za-z0-9_]*|\$\{[A-Za-z_][A-Za-z0-9_]*\}", t)
            else None
        )
        if (
            t == "$!"
            or (var is not None and var in insp.own_jobs and _bound_once(insp.root_src or insp.src, var))
            or (w.literal and re.fullmatch(r"%[0-9]+|%%|%\+|%-", t))
        ):
            continue
        insp.add("proc.signal", f"{name} {t}: a signal to a process this command did not start")
    return set()


def _trap(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """``trap 'ssh -R ...' EXIT``: the shell runs the action when the signal (or the end) comes."""
    rest = list(args)
    if rest and rest[0].literal and rest[0].text == "--":
        rest = rest[1:]
    if not rest or (rest[0].literal and (rest[0].text in ("-", "", "-l", "-p") or rest[0].text.isdigit())):
        return set()
    action = rest[0]
    # trap "kill $PID" EXIT: a job's PID expanded now, a number then; any other expansion could
    # put shell syntax in the action
    jobs = re.sub(r"\$(?:!|\{?([A-Za-z_][A-Za-z0-9_]*)\}?)", _job_or_keep(insp), action.text)
    if not action.literal and ("$" in jobs or "`" in jobs):
        insp.opaque(f"{name}: an action not known statically: {action.text}")
        return set()
    return set(insp.source(action.text, depth + 1, here=True))


def _job_or_keep(insp: Inspection) -> Any:
    def sub(m: re.Match[str]) -> str:
        var = m.group(1)
        own = var is None or (var in insp.own_jobs and _bound_once(insp.root_src or insp.src, var))
        return "0" if own else m.group()

    return sub


def _bound_once(src: str, name: str) -> bool:
    """Is ``name`` named in ``src`` only by ``name=$!`` and expansions (``$name``, ``${name}``)?
    read, for, getopts, mapfile, printf -v, unset and ``${name:=...}`` rebind it otherwise."""
    spots = [m.start() for m in re.finditer(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", src)]
    plain = [i for i in spots if not src[:i].endswith(("$", "${"))]
    return len(plain) == 1 and src.startswith(f"{name}=$!", plain[0])


HANDLERS: Final[dict[str, Handler]] = {
    "django-admin": shell_tables.django_admin,
    "kill": _kill,
    "trap": _trap,
    **P.HANDLERS,
    **shell_network.HANDLERS,
    **shell_code.HANDLERS,
    **shell_compute.HANDLERS,
}
# Names a glob in a program position (``/usr/bin/ss?``) is checked against: every program
# this inspector has something to say about. A glob matching none of them stays opaque only.
KNOWN_PROGRAMS: Final = tuple(
    sorted(
        set(HANDLERS)
        | set(P.TABLE_CAPS)
        | P.DOWNLOADERS
        | P.NET_CLIENTS
        | P.INTERPRETERS
        | {"ssh", "scp", "sftp", "rsync", "telnet", "crontab", "systemctl", "history", "nmap", "dd"}
    )
)
_GLOB_RE: Final = re.compile(r"[*?]|\[[^\]]+\]")
MAX_ALTERNATES: Final = 8
WORKSPACE_ROOT: Final = "/workspace"  # where the pack's workspace rules point
UNKNOWN_CWD: Final = ""  # a working directory that cannot be known statically (``cd "$X"``)
MAX_CWDS: Final = 16
_HEREDOC_QUOTE_RE: Final = re.compile(r'(\\*)"')
# Filters whose output is (a transform of) the files they are given: piped into an interpreter,
# those files are what it runs.
_PASS_THROUGH: Final = frozenset(
    {"cat", "tac", "head", "tail", "sort", "uniq", "tr", "cut", "sed", "awk", "grep", "egrep", "fgrep",
     "rg", "base64", "xxd", "zcat", "gunzip", "bzcat", "xzcat", "tee", "nl", "paste", "rev", "dd"}
)  # fmt: skip
MAX_WRITTEN: Final = 16  # files whose written text one command line keeps
_TEXT_WRITERS: Final = frozenset({"cat", "tee", "echo", "printf"})
# What makes text no reading holds: decoders and transformers (P.DECODES), and programs whose
# output is whatever their code prints.
_HIDING: Final = frozenset({P.DECODES, *(P.INTERPRETERS - {"source", "eval"})})
DOUBT: Final = Capability(
    "shell.opaque",
    "written by a shell command with text no reading holds (decoded, transformed, or a program's output)",
)
DOWNLOADED: Final = Capability(
    "net.download_exec",
    "saved from the network by a downloader or fetching code and never read: running it runs what "
    "the server sent",
)
# What a fragment of code (a sed -i replacement) does that no fragment of ordinary code does: the
# rest (program names, paths, hosts) is noise when a fragment is read as if it were a file.
FRAGMENT_SIGNALS: Final = (
    "net.reverse_shell",
    "net.tunnel",
    "net.download_exec",
    "net.connect:",
    "net.scan",
    "crypto.",
    "cred.",
    "persist.",
    "priv.",
    "log.",
    "proc.spawn",
    "proc.shell",
    "proc.exec_hook",
)
_OLD_STYLE: Final = frozenset(f for f, t in shell_tables.TABLES.items() if t.old_style)  # tar xvf
_CD: Final = frozenset({"cd", "pushd", "popd"})
_CODE_READERS: Final = frozenset({"python", "pypy", "perl", "ruby", "node", "php", "lua", "make", "gmake"})
Cwds = frozenset[str]


def _patch_bashlex() -> None:
    """Two bashlex gaps that made everyday commands unparseable (hence opaque), closed once.

    - ``time`` is a bash keyword bashlex refuses (NotImplementedError); read as a word it is
      the ``time`` wrapper, whose argument is the real program.
    - A quoted here-document delimiter (``<<'EOF'``) is compared with its quotes still on, so
      the document never ends. bash compares the delimiter after quote removal; so do we, and
      we mark the redirect: the body of such a document is not expanded.
    """
    from bashlex import heredoc, tokenizer

    tokenizer.valid_reserved_first_command.pop("time", None)
    original = heredoc.makeheredoc
    if getattr(heredoc, "gatekeeper_patched", False):  # patch once per process
        return

    def makeheredoc(tok: Any, redirnode: Any, lineno: int, killleading: bool) -> Any:
        word = redirnode.output.word
        bare = word.replace("'", "").replace('"', "").replace("\\", "")
        if bare == word:
            return original(tok, redirnode, lineno, killleading)
        redirnode.output.word = bare
        redirnode.quoted_delimiter = True
        return _quoted_heredoc(tok, redirnode, lineno, killleading)

    heredoc.makeheredoc = makeheredoc
    heredoc.gatekeeper_patched = True


def _heredoc_line(tok: Any) -> str | None:
    """One line of a quoted here-document as it is: bashlex's reader joins a line ending in a
    backslash with the next, which the shell does only when the delimiter is unquoted (so
    ``cat <<'X'`` / ``foo\\`` / ``X`` / ``ssh ...`` hid the ssh inside the document)."""
    line: list[str] = []
    while True:
        c = tok._getc(False)
        if c is None:
            if not line:
                return None
            c = "\n"
        line.append(c)
        if c == "\n":
            return "".join(line)


def _quoted_heredoc(tok: Any, redirnode: Any, lineno: int, killleading: bool) -> str:
    """bashlex's ``heredoc.makeheredoc`` for a quoted delimiter, reading lines unjoined."""
    from bashlex import ast, errors

    delimiter = redirnode.output.word
    document: list[str] = []
    startpos = tok._shell_input_line_index
    line = _heredoc_line(tok)
    while line:
        if killleading:
            line = line.lstrip("\t") or "\n"
        if line == delimiter + "\n":
            document.append(delimiter)
            break
        document.append(line)
        line = _heredoc_line(tok)
    if not line:
        raise errors.ParsingError(
            f"here-document at line {lineno} delimited by end-of-file (wanted {delimiter!r})",
            tok._shell_input_line,
            tok._shell_input_line_index,
        )
    endpos = tok._shell_input_line_index - 1
    redirnode.heredoc = ast.node(kind="heredoc", value="".join(document), pos=(startpos, endpos))
    if redirnode.pos[1] + 1 == startpos:
        redirnode.pos = (redirnode.pos[0], endpos)
    return "".join(document)


_patch_bashlex()


class _Scope:
    """``with insp.scope():`` restores the working directories on the way out, even on error.

    A class rather than ``@contextmanager``: a generator per pipeline element cost more than
    the element's own bookkeeping.
    """

    __slots__ = ("insp", "saved")

    def __init__(self, insp: Inspection) -> None:
        self.insp = insp
        self.saved = insp.cwds

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        self.insp.cwds = self.insp.fail_cwds = self.saved


# What may follow a $ to start an expansion (a name, a digit, a special parameter, a brace or
# parenthesis): any other character leaves the $ as it is.
_DOLLAR_STARTS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789{(@*#?$!-")


_NAME_FILTERS: Final = frozenset({"-l", "-L", "--files-with-matches", "--files-without-match"})


def _filters_names(n: Any) -> bool:
    """``xargs grep -l PATTERN``: prints only names of the files it was given (read-only)."""
    words = [p.word for p in n.parts if p.kind == "word"] if n.kind == "command" else []
    if (
        len(words) < 3
        or posixpath.basename(words[0]) != "xargs"
        or any(p.kind == "redirect" for p in n.parts)
    ):
        return False
    rest = words[1:]
    while rest and rest[0].startswith("-"):  # xargs's own options: only flags without values
        if rest[0] not in ("-r", "--no-run-if-empty", "-0", "--null"):
            return False
        rest = rest[1:]
    return (
        bool(rest)
        and rest[0] in ("grep", "egrep", "fgrep", "rg")
        and any(
            w in _NAME_FILTERS or (w.startswith("-") and not w.startswith("--") and "l" in w[1:])
            for w in rest[1:]
        )
    )


def _runs_xargs(n: Any) -> bool:
    """Whether a pipeline element may be xargs (cheap: its words, wrappers included, name it)."""
    return n.kind == "command" and any(
        p.kind == "word" and (p.word == "xargs" or p.word.endswith("/xargs")) for p in n.parts
    )


# A path with a blank inside a directory's name ("/workspace/a b/../../root/.aws/credentials"),
# not a sentence that starts with a path.
_LOCALE_DELIMITER_RE: Final = re.compile(r"<<-?[ \t]*[^\s;&|<>()]*\$['\"]")
_SPACED_PATH_RE: Final = re.compile(r"(?:/|~/|\.\.?/)[^ ]*(?: [^ /]*)+/\S.*", re.S)


class Inspection:
    """Accumulates capabilities for one shell argument; one instance per call."""

    __slots__ = (
        "calling",
        "caps",
        "captured",
        "cdpath",
        "copied",
        "copies",
        "cwds",
        "downloaded",
        "env",
        "fail_cwds",
        "fast_path",
        "function_src",
        "functions",
        "home_set",
        "noted",
        "own_jobs",
        "path_code_dirs",
        "positional",
        "ran_files",
        "root_src",
        "seen_dirs",
        "src",
        "stdin_decoded",
        "stdin_files",
        "stdin_text",
        "stdin_words",
        "tokens_left",
        "urls",
        "written",
    )

    def __init__(self, cwd: str, *, fast_path: bool = True) -> None:
        self.fast_path = fast_path  # False: every script goes to bashlex (the reference reading)
        # Every directory the shell may be in at this point (``cd`` can fail), and where it
        # would be had the last simple command failed (for ``||``).
        self.cwds: Cwds = frozenset((cwd,))
        self.fail_cwds: Cwds = self.cwds
        self.seen_dirs: set[str] = {cwd}  # candidates for popd, ``cd -`` and pushd rotations
        self.functions: dict[str, Any] = {}
        self.calling: set[str] = set()
        self.cdpath = False
        self.path_code_dirs: frozenset[str] = frozenset()  # PATH entries an agent can write into
        self.home_set = False
        self.caps: dict[str, Capability] = {}
        self.ran_files: set[str] = set()  # workspace files run as code (shell_runs)
        # file -> (the text a here-document or echo wrote there, whether that is the whole file
        # exactly: no expansion in it, not appended)
        self.written: dict[str, tuple[str, bool]] = {}
        self.urls = 0
        self.downloaded: set[str] = set()
        self.copies: dict[str, str] = {}  # absolute path -> the program copied or linked there
        self.copied: dict[str, set[str]] = {}  # workspace file -> the workspace files copied there
        self.src = ""  # the text bashlex parsed last: its node positions index into it
        self.root_src = ""  # the whole command line (the first text read)
        self.function_src: dict[str, str] = {}
        # Variables last assigned a value known statically, and the positional parameters of
        # the function being called (None: unknown). Only second readings use them.
        self.env: dict[str, str] = {"IFS": shell_static.DEFAULT_IFS}
        self.captured: set[str] = set()  # files a program's output was redirected (or teed) into
        self.own_jobs: set[str] = set()  # variables last assigned $! (a job this line started)
        self.positional: tuple[str, ...] | None = None
        self.tokens_left = MAX_TOKENS
        # What the pipeline element before this one writes, as words xargs would read from it
        # (None: not known; see pipe_words). Set only while that pipeline element is walked.
        self.stdin_words: list[Word] | None = None
        # The workspace files whose text the pipeline element before this one passes on (cat x |
        # tee y): what a pass-through writes from its stdin holds them. Set only while walked.
        self.stdin_files: list[str] = []
        self.stdin_decoded = False  # ... and whether a decoder or a program made that text
        self.stdin_text: str | None = None  # ... or the literal text an echo or printf before it prints
        # What files this line writes would do, added to their records should a later call run
        # them: doubt for text no reading holds, made by a decoder or transformer (base64 -d, tr,
        # gunzip) or a program (python3 gen.py > x.sh); what an in-place edit's text does.
        self.noted: dict[str, dict[str, Capability]] = {}

    # -- recording ---------------------------------------------------------
    def add(self, name: str, evidence: str = "") -> None:
        if name not in self.caps:
            self.caps[name] = Capability(name, evidence[:EVIDENCE_MAX])

    def opaque(self, why: str) -> None:
        self.add("shell.opaque", why)

    def connect(self, host: str, port: int | str, evidence: str) -> None:
        """``net.connect`` plus the host's class, or opaque if the host is not a clean literal."""
        norm, cls = normalize_host(host)
        if cls == "invalid":
            self.opaque(f"unknowable destination host {host!r}")
            return
        self.add(f"net.connect:{norm}:{port}", evidence)
        for cap in host_class_capabilities(cls, evidence):
            self.add(cap.name, cap.evidence)

    def host_class(self, host: str, evidence: str) -> None:
        """Only the class of a host seen without a port (internal, metadata...)."""
        _, cls = normalize_host(host)
        if cls != "invalid":
            for cap in host_class_capabilities(cls, evidence):
                self.add(cap.name, cap.evidence)

    # -- working directory -------------------------------------------------
    def set_cwds(self, cwds: Iterable[str]) -> None:
        new = frozenset(cwds)
        if len(new) > MAX_CWDS:
            new = frozenset({UNKNOWN_CWD})
        self.cwds = self.fail_cwds = new
        self.seen_dirs |= new

    def scope(self) -> _Scope:
        """A subshell, a pipeline element or a child process: directory changes do not leak out."""
        return _Scope(self)

    def cd_target(self, w: Word | None, base: Cwds) -> Cwds:
        """Where ``cd WORD`` from any of ``base`` leads."""
        if w is None or (w.literal and w.text.startswith("~") and self.home_set):
            return frozenset({UNKNOWN_CWD}) if w is not None or self.home_set else frozenset({HOME})
        t = w.text
        if not w.literal or _expands(t + "/", _DOT_GLOB_RE):
            return frozenset({UNKNOWN_CWD})
        if t == "-":
            return frozenset(self.seen_dirs | {UNKNOWN_CWD})
        out: set[str] = set()
        if self.cdpath and not t.startswith(("/", "./", "../", "~")) and t not in (".", ".."):
            out.add(UNKNOWN_CWD)
        for cwd in base:
            if cwd == UNKNOWN_CWD and not t.startswith(("/", "~")):
                out.add(UNKNOWN_CWD)
                continue
            norm = normalize_path(t, cwd or "/")
            out.add(UNKNOWN_CWD if norm is None else norm)
        return frozenset(out)

    def change_dir(self, name: str, args: Sequence[Word]) -> tuple[Cwds, Cwds]:
        """(success, failure) directories after a ``cd``/``pushd``/``popd`` run by this shell."""
        entry = self.cwds
        opts = [w for w in args if w.literal and len(w.text) > 1 and w.text[0] in "-+" and w.text != "--"]
        rest = [w for w in args if w not in opts and w.text != "--"]
        if name == "cd":
            target = self.cd_target(rest[0] if rest else None, entry)
        elif name == "pushd" and rest and "-n" not in [w.text for w in opts]:
            target = self.cd_target(rest[0], entry)
        elif name == "pushd" and rest:
            self.seen_dirs |= self.cd_target(rest[0], entry)
            return entry, entry
        elif name == "popd" and "-n" in [w.text for w in opts]:
            return entry, entry
        else:  # popd, pushd alone or +N: back to some directory the stack may hold
            target = frozenset(self.seen_dirs)
        self.seen_dirs |= target
        return target, entry

    def resolve(self, text: str, evidence: str, *, strict: bool = True) -> list[str]:
        """Every absolute spelling of a literal path over the possible working directories.

        ``strict`` (a path that is read or written): what cannot be resolved is ``shell.opaque``.
        Otherwise (naming classes only) an unknown directory is looked at from ``/``.
        """
        if _expands(text, _DOT_GLOB_RE):
            if strict:
                self.opaque(f"path is expanded at run time: {evidence}")
            return []
        if text.startswith(("/", "~")):
            norm = normalize_path(text)
            if norm is None and strict:
                self.opaque(f"unusable path: {evidence}")
            return [norm] if norm is not None else []
        out: list[str] = []
        for cwd in sorted(self.cwds) if len(self.cwds) > 1 else self.cwds:
            if cwd == UNKNOWN_CWD:
                if strict:
                    self.opaque(f"relative path after a change to an unknown directory: {evidence}")
                    continue
                cwd = "/"
            norm = normalize_path(text, cwd)
            if norm is None:
                if strict:
                    self.opaque(f"unusable path: {evidence}")
                continue
            out.append(norm)
        return out

    # -- parsing -----------------------------------------------------------
    def source(self, text: str, depth: int, *, here: bool = False) -> frozenset[str]:
        """Parse and walk one script; returns the program families it runs.

        A script runs in a child process (``bash -c``) unless ``here`` (``eval``): only then
        can its ``cd`` move the commands that follow.
        """
        if depth > MAX_DEPTH:
            self.opaque(f"nested deeper than {MAX_DEPTH} levels: {text}")
            return frozenset()
        if len(text) > MAX_INPUT or "\x00" in text:
            self.opaque("script too long or contains NUL")
            return frozenset()
        if not text or text.isspace():  # not text.strip(), without the copy
            return frozenset()
        self.tokens_left -= estimate_tokens(text)
        if self.tokens_left < 0:
            self.opaque(f"more than {MAX_TOKENS} shell tokens to inspect")
            return frozenset()
        if not self.root_src:
            self.root_src = text
        if "$'" in text and _dash_splits_ansi(text):
            # echo $'\'<newline>ssh ...<newline>#': one word to bash, but dash (/bin/sh, which
            # runs the command line) knows no $'...': its quote ends at the \ and ssh runs
            self.opaque(f"$'...' with \\' ends elsewhere in sh than in bash: {text}")
        if "<<" in text and _LOCALE_DELIMITER_RE.search(text):
            # cat <<$'X': bash ends the here-document at "X", dash (and bashlex) at "$X"; a
            # #!/bin/bash script then runs lines the reading took for text
            self.opaque(f"a here-document delimiter bash and sh read differently: {text}")
        if "&>" in text:
            # a &>f b: bash redirects a's output, dash runs "a &" then the command "b" (>f):
            # read the dash way too (a second reading only adds what it finds)
            cwds, fail = self.cwds, self.fail_cwds
            self.source(text.replace("&>", "& >"), depth + 1, here=here)
            self.cwds, self.fail_cwds = cwds, fail  # the bash reading starts where this one did
        # The plain common case is read by shell_lexer into the very trees bashlex would build;
        # anything else (or a forced slow path, for the differential test) goes to bashlex.
        trees: list[Any] | None = shell_lexer.parse(text) if self.fast_path else None
        if trees is None:
            try:
                trees = bashlex.parse(text)
            except Exception as exc:  # bashlex raises ParsingError, NotImplementedError, RecursionError...
                self.opaque(f"unparseable ({type(exc).__name__}: {exc}): {text}")
                return frozenset()
        ran: set[str] = set()
        saved_src, self.src = self.src, text
        try:
            if here:
                ran = self.sequence(trees, depth)
            else:
                with self.scope():
                    ran = self.sequence(trees, depth)
        finally:
            self.src = saved_src
        return frozenset(ran)

    def sequence(self, trees: Sequence[Any], depth: int) -> set[str]:
        ran: set[str] = set()
        for tree in trees:
            ran |= self.node(tree, depth)
            cwds, fail = self.cwds, self.fail_cwds
            self.set_cwds(cwds if cwds is fail else cwds | fail)  # most commands leave them one set
        return ran

    def node(self, n: Any, depth: int) -> set[str]:
        """Walk one node; leaves ``cwds``/``fail_cwds`` as the directories after it."""
        kind: str = n.kind
        if kind == "command":
            return self.command(n, depth)
        if kind == "pipeline":
            return self.pipeline(n, depth)
        if kind == "list":
            return self.and_or(n.parts, depth)
        if kind == "compound":
            return self.compound(n, depth)
        if kind in ("if", "for", "while", "until"):
            return self.control(n, depth)
        if kind == "function":
            return self.function(n, depth)
        if kind in ("word", "assignment"):
            return set(self.word(n, depth).runs)
        if kind == "redirect":
            return self.redirect(n, depth, frozenset())
        if kind in ("commandsubstitution", "processsubstitution"):
            with self.scope():
                return self.node(n.command, depth)
        if kind in ("reservedword", "operator", "pipe", "tilde", "heredoc"):
            return set()
        self.opaque(f"unsupported shell construct {kind!r}")
        return set()

    def and_or(self, parts: Sequence[Any], depth: int) -> set[str]:
        """``a && b || c; d & e``: ``&&`` goes on where the left side succeeded, ``||`` where it failed."""
        ran: set[str] = set()
        chain_entry = self.cwds
        succ: Cwds = self.cwds
        fail: Cwds = self.fail_cwds
        pending: str | None = None
        for part in parts:
            if part.kind == "operator":
                op: str = part.op
                if op in ("&&", "||"):
                    pending = op
                    continue
                if op == "&":  # the whole chain ran in the background: in a subshell
                    self.set_cwds(chain_entry)
                else:
                    self.set_cwds(succ | fail)
                chain_entry, succ, fail, pending = self.cwds, self.cwds, self.cwds, None
                continue
            if pending == "&&":
                self.cwds = self.fail_cwds = succ
            elif pending == "||":
                self.cwds = self.fail_cwds = fail
            ran |= self.node(part, depth)
            if pending == "&&":
                succ, fail = self.cwds, fail | self.fail_cwds
            elif pending == "||":
                succ, fail = succ | self.cwds, self.fail_cwds
            else:
                succ, fail = self.cwds, self.fail_cwds
            pending = None
        self.cwds, self.fail_cwds = succ, fail
        return ran

    def compound(self, n: Any, depth: int) -> set[str]:
        """``( ... )`` is a subshell; ``{ ...; }`` and the bodies of if/for/while are not."""
        items = list(n.list)
        subshell = bool(items) and items[0].kind == "reservedword" and items[0].word == "("
        ran: set[str] = set()
        if subshell:
            with self.scope():
                ran = self.walk(items, depth)
        else:
            ran = self.walk(items, depth)
        for r in getattr(n, "redirects", []):
            ran |= self.node(r, depth)
        return ran

    def walk(self, parts: Sequence[Any], depth: int) -> set[str]:
        ran: set[str] = set()
        for part in parts:
            ran |= self.node(part, depth)
            self.set_cwds(self.cwds | self.fail_cwds)
        return ran

    def control(self, n: Any, depth: int) -> set[str]:
        """if/for/while/until: any branch may run, a loop body any number of times."""
        entry = self.cwds
        if n.kind == "for":  # for NAME in ...: NAME takes values at run time, as read NAME does
            loop = next((p for p in n.parts if p.kind == "word"), None)
            if loop is not None:
                self.variable_set(loop.word, f"for {loop.word} in ...", depth)
        ran = self.walk(n.parts, depth)
        passes = 0
        while not self.cwds <= entry:
            entry = entry | self.cwds
            passes += 1
            if passes > 3:
                self.set_cwds(entry | {UNKNOWN_CWD})
                break
            self.set_cwds(entry)
            ran |= self.walk(n.parts, depth)
        self.set_cwds(entry | self.cwds)
        return ran

    def function(self, n: Any, depth: int) -> set[str]:
        """A definition runs nothing yet: the body is walked here (in a scope) and again at each call."""
        name_word = next((p for p in n.parts if p.kind == "word"), None)
        body = [p for p in n.parts if p.kind not in ("word", "reservedword")]
        if name_word is not None:
            self.functions[name_word.word] = body
            self.function_src[name_word.word] = self.src
        with self.scope():
            return self.walk(body, depth)

    def call(self, name: str, depth: int, args: Sequence[Word] = ()) -> set[str]:
        """A call to a function defined earlier runs its body here, in this shell's directory.

        With literal arguments the body sees them as ``$1``... and ``$@`` (for second readings).
        """
        if name in self.calling or depth > MAX_DEPTH:
            self.set_cwds(self.cwds | {UNKNOWN_CWD})
            return set()
        self.calling.add(name)
        saved = (self.src, self.positional)
        self.src = self.function_src.get(name, self.src)
        self.positional = tuple(w.text for w in args) if all(w.literal for w in args) else None
        try:
            return self.walk(self.functions[name], depth + 1)
        finally:
            self.calling.discard(name)
            self.src, self.positional = saved

    def word(self, n: Any, depth: int) -> Word:
        """A Word for a bashlex word node, walking any substitutions it contains."""
        text: str = n.word
        runs: frozenset[str] = _NO_RUNS
        literal = True
        parts = getattr(n, "parts", None)
        if parts:  # most words have none (a tilde part changes nothing here)
            found: set[str] = set()
            for part in parts:
                if part.kind == "parameter" and not part.value and self.lone_dollar(n, part):
                    continue  # "...$/..." or "...$'...": a $ that bash leaves as it is
                if part.kind in _EXPANSION_KINDS:
                    literal = False
                if part.kind == "parameter" and P.is_secret_name(part.value):
                    self.add("cred.env", f"a secret variable is expanded: {text}")
                if part.kind == "parameter" and (m := _DEFAULT_ASSIGN_RE.match(part.value)) is not None:
                    self.variable_set(m.group(1), f"${{{part.value}}}", depth)  # ${PATH:=...} assigns
                if part.kind == "parameter" and ("$(" in part.value or "`" in part.value):
                    self.opaque(f"command substitution inside ${{...}}: {text}")
                elif part.kind in ("commandsubstitution", "processsubstitution"):
                    with self.scope():
                        found |= self.node(part.command, depth)
            if found:
                runs = frozenset(found)
        static = None
        if not literal:
            static = self.static_value(n)
        elif n.kind == "word" and (
            _QUOTING_RE.search(text) or ((raw := self.raw(n)) != text and _QUOTING_RE.search(raw))
        ):
            # bashlex's quote removal is not bash's in corner cases: it drops the backslash of
            # "\/" and "\n" inside double quotes and loses track of '...' after "..'..". Ours is
            # bash's (tests/inspectors/test_shell_quoting.py holds it to bash itself), so for a
            # word without expansions it is the reading: bashlex's would only add false doubt
            # (sed -i "s/a\/b/c/" read as a script with a stray delimiter).
            value = self.static_value(n)
            if value is not None and len(value) == 1:
                return Word(value[0], True, runs)
            static = value if value is not None and value != (text,) else None
        return Word(text, literal, runs, static)

    def lone_dollar(self, n: Any, part: Any) -> bool:
        """bashlex reads a ``$`` that starts no expansion as an empty parameter. Bash leaves it as
        it is when no name, digit, special parameter or brace follows (bashlex would have named
        one), except ``$'...'`` and ``$"..."`` outside double quotes, which are quoting."""
        pos, at = getattr(n, "pos", None), getattr(part, "pos", None)
        if pos is None or at is None or not pos[0] <= at[0] < pos[1] <= len(self.src):
            return False
        after = self.src[at[0] + 1 : at[0] + 2]
        if after not in ("'", '"'):
            return after not in _DOLLAR_STARTS
        quote = ""
        i = pos[0]
        while i < at[0]:  # the quoting the $ stands in
            c = self.src[i]
            if c == "\\" and quote != "'":
                i += 2
                continue
            if c in "'\"" and (not quote or quote == c):
                quote = "" if quote == c else c
            i += 1
        return quote == '"'

    def raw(self, n: Any) -> str:
        pos = getattr(n, "pos", None)
        return self.src[pos[0] : pos[1]] if pos is not None and pos[1] <= len(self.src) else ""

    # -- second readings -----------------------------------------------------
    def static_value(self, n: Any) -> tuple[str, ...] | None:
        """What a non-literal word expands to, if every expansion in it is knowable (else None)."""
        pos = getattr(n, "pos", None)
        if pos is None or pos[1] > len(self.src):
            return None
        raw = self.src[pos[0] : pos[1]]
        parts = [p for p in getattr(n, "parts", []) if p.kind in _EXPANSION_KINDS]
        return shell_static.static_fields(
            raw,
            pos[0],
            parts,
            self.env,
            self.positional,
            self.substitution_output,
            assignment=n.kind == "assignment",
        )

    def substitution_output(self, n: Any) -> str | None:
        """The output of ``$(echo ...)``/``$(printf ...)`` with literal arguments."""
        if n.kind != "command":
            return None
        words = [p for p in n.parts if p.kind != "word" or getattr(p, "parts", [])]
        if words:
            return None
        argv = [p.word for p in n.parts]
        return shell_static.echo_output(argv[0], argv[1:]) if argv else None

    def remember_variable(self, w: Word) -> None:
        """``NAME=value`` run as a command of its own: later ``$NAME`` has that value, if known."""
        m = _ASSIGN_RE.match(w.text)
        if m is None:
            return
        name = m.group().rstrip("+=")
        if w.text[m.end() :] == "$!" and not m.group().endswith("+="):
            self.own_jobs.add(name)  # PID=$!: the job started just before, by this command line
        else:
            self.own_jobs.discard(name)
        if w.literal:
            value: str | None = w.text[m.end() :]
        elif w.static is not None:
            m2 = _ASSIGN_RE.match(w.static[0])
            value = w.static[0][m2.end() :] if m2 else None
        else:
            value = None
        if value is None or len(self.env) > 256:
            self.env.pop(name, None)
        elif m.group().endswith("+=") and name in self.env:
            self.env[name] += value
        else:
            self.env[name] = value

    def alternates(self, words: Sequence[Word]) -> list[list[Word]]:
        """Second readings of an argv whose words are not all literal (or whose program is a
        brace or glob pattern): the same command with everything knowable filled in."""
        changed = False
        argv: list[Word] = []
        for i, w in enumerate(words):
            if w.literal and i == 0 and _BRACES_RE.search(w.text):
                argv.extend(Word(t) for t in shell_static.brace_expand(w.text))
                changed = True
            elif w.static is not None:
                argv.extend(Word(t, True, w.runs) for t in w.static)
                changed = True
            else:
                argv.append(w)
        if not argv:
            return []
        head = argv[0]
        if head.literal and _GLOB_RE.search(head.text) and "/" not in posixpath.basename(head.text):
            pattern = posixpath.basename(head.text)
            names = [n for n in KNOWN_PROGRAMS if fnmatch.fnmatchcase(n, pattern)][:MAX_ALTERNATES]
            return [[Word(n), *argv[1:]] for n in names]
        return [argv] if changed else []

    # -- structure ---------------------------------------------------------
    def pass_through(
        self, execd: frozenset[str], words: list[Word], redirects: list[Any], depth: int
    ) -> None:
        """What a filter writes holds the workspace files it reads: its operands, its ``<`` file
        and what the pipe before it carries (``cat x.py > y.py``, ``tr -d x < x.sh > y.sh``,
        ``cat x | sort | tee y``). ``tee``'s operands are where its stdin goes."""
        tee = "tee" in execd
        operands = [w for w in words[1:] if w.literal and not w.text.startswith("-")]
        sources = [] if tee else [p for w in operands for p in self.workspace_files(w.text)]
        targets = [w.text for w in operands] if tee else []
        for r in redirects:
            if not hasattr(r.output, "kind"):
                continue
            w = self.word(r.output, depth)
            if not w.literal:
                continue
            if r.type == "<":
                sources += self.workspace_files(w.text)
            elif r.type in (">", ">>", ">|"):
                targets.append(w.text)
        sources += self.stdin_files
        for target in targets:
            self.remember_content(sources, target)
            if tee and self.stdin_decoded:
                self.note(self.workspace_files(target), DOUBT)

    def printed(self, n: Any, depth: int) -> str | None:
        """The text a pipeline element prints when it is an ``echo`` or ``printf`` of literal words
        that every shell prints alike (``printf '...' | tee x.py``); None otherwise."""
        if n.kind != "command" or any(p.kind == "redirect" for p in n.parts):
            return None
        words = [self.word(p, depth) for p in n.parts if p.kind == "word"]
        if len(words) < 2 or words[0].text not in ("echo", "printf") or not all(w.literal for w in words):
            return None
        args = [w.text for w in words[1:]]
        if not shell_static.same_in_every_shell(words[0].text, args):
            return None
        return shell_static.echo_output(words[0].text, args)

    def carried(self, n: Any, depth: int, stdin: list[str]) -> list[str]:
        """The workspace files whose text a pipeline element's output holds: a pass-through's
        operands (not ``tee``'s), its ``<`` file and what it was given on its stdin."""
        if n.kind != "command":
            return []
        words = [self.word(p, depth) for p in n.parts if p.kind == "word"]
        if (
            not words
            or not words[0].literal
            or P.family(posixpath.basename(words[0].text)) not in _PASS_THROUGH
        ):
            return []
        out = list(stdin)
        if P.family(posixpath.basename(words[0].text)) != "tee":
            out += [
                p
                for w in words[1:]
                if w.literal and not w.text.startswith("-")
                for p in self.workspace_files(w.text)
            ]
        for r in (p for p in n.parts if p.kind == "redirect" and p.type == "<" and hasattr(p.output, "kind")):
            w = self.word(r.output, depth)
            if w.literal:
                out += self.workspace_files(w.text)
        return out[:64]

    def pipeline(self, n: Any, depth: int) -> set[str]:
        elements = [p for p in n.parts if p.kind not in ("pipe", "reservedword")]
        negated = any(p.kind == "reservedword" and p.word == "!" for p in n.parts)
        if len(elements) == 1:
            ran = self.node(elements[0], depth)
            if negated:
                self.set_cwds(self.cwds | self.fail_cwds)
            return ran
        sets: list[set[str]] = []
        entry = self.cwds
        carried: list[Word] | None = None  # what the previous element prints, when xargs knows it
        files: list[str] = []  # the workspace files whose text the previous element passes on
        for i, e in enumerate(elements):  # every element of a real pipeline runs in a subshell
            if i and _runs_xargs(e):
                words = carried if carried is not None else self.pipe_words(elements[i - 1], e, depth)
            else:
                words = None
            # xargs grep -l X: the names it prints are some of the ones it was given (a lister's)
            carried = words if words is not None and _filters_names(e) else None
            self.stdin_words = words
            self.stdin_files = files = self.carried(elements[i - 1], depth, files) if i else []
            self.stdin_decoded = any(not ran.isdisjoint(_HIDING) for ran in sets)
            self.stdin_text = self.printed(elements[i - 1], depth) if i else None
            try:
                sets.append(self.node(e, depth))
            finally:
                self.cwds = self.fail_cwds = entry
                self.stdin_words = None
                self.stdin_files = []
                self.stdin_decoded = False
                self.stdin_text = None
        upstream: set[str] = set()
        for i, ran in enumerate(sets):
            if P.STDIN_EXEC in ran:
                if upstream & P.DOWNLOADERS:
                    self.add("net.download_exec", "download piped into an interpreter")
                if P.DECODES in upstream:
                    self.opaque("decoded data piped into an interpreter")
                    self.add("net.download_exec", "decoded or transformed text piped into an interpreter")
                if i > 0:
                    self.piped_literal(elements[i - 1], ran, depth)
                    self.ran_files.update(self.piped_files(elements[i - 1], depth))
            upstream |= ran
        if len(sets) > 1 and upstream & P.NET_CLIENTS and P.STDIN_EXEC in upstream:
            self.add("net.reverse_shell", "network client piped to or from a shell")
        return upstream

    def heredoc_substitutions(self, body: str, depth: int) -> set[str]:
        """An unquoted here-document expands as a double-quoted word does: its ``$(...)`` and
        backquotes run. Read as that word (every ``"`` escaped, with the backslashes before it
        doubled, so none can end it early); what cannot be parsed stays doubt."""
        escaped = _HEREDOC_QUOTE_RE.sub(lambda m: m.group(1) * 2 + '\\"', body)
        before = self.caps.get("shell.opaque")
        ran = set(self.source(f'echo "{escaped}"', depth + 1))
        if self.caps.get("shell.opaque") is not before:
            self.opaque("command substitution in a here-document")
        return ran

    def workspace_files(self, text: str) -> list[str]:
        return [p for p in self.resolve(text, text, strict=False) if p.startswith(CODE_ROOTS)]

    def piped_files(self, n: Any, depth: int) -> list[str]:
        """``cat x.py | python3``: the workspace files a filter passes on into an interpreter's
        stdin are run as code, as ``python3 x.py`` would run them."""
        if n.kind != "command":
            return []
        words = [self.word(p, depth) for p in n.parts if p.kind == "word"]
        if not words or P.family(words[0].text) not in _PASS_THROUGH:
            return []
        operands = [w for w in words[1:] if w.literal and not w.text.startswith("-")]
        return [p for w in operands for p in self.workspace_files(w.text)]

    def pipe_words(self, n: Any, consumer: Any, depth: int) -> list[Word] | None:
        """The words ``xargs`` in ``consumer`` would read from ``n``'s output, when known:
        ``echo``/``printf`` of literal words (split and unquoted as xargs does), or one word a
        lister's ``$(...)`` stands for (``find src ...``, ``git ls-files``: paths under known
        roots, see ``shell_options.lister_roots``). None: anything else, or the consumer's own
        stdin redirected."""
        if n.kind != "command" or consumer.kind != "command":
            return None
        if any(p.kind == "redirect" and _changes_pipe(p, producer=True) for p in n.parts) or any(
            p.kind == "redirect" and _changes_pipe(p, producer=False) for p in consumer.parts
        ):
            return None  # echo x > f | xargs ..., xargs ... < list: not what the pipe carries
        words = [self.word(p, depth) for p in n.parts if p.kind == "word"]
        if not words or not all(w.literal for w in words):
            return None
        head, args = P.family(words[0].text), [w.text for w in words[1:]]
        if head in ("echo", "printf") and any(re.search(r"\\[^nt]", a) for a in args):
            # printf '.en\166', dash's echo '.en\0166': .env; the escapes are not decoded here
            self.opaque(f"xargs reads text with escapes: {' '.join(w.text for w in words)}")
        if head == "echo":
            while args and re.fullmatch(r"-[neE]+", args[0]):
                args = args[1:]
            text: str | None = " ".join(args)
        elif head == "printf" and args:
            fmt, rest = args[0], args[1:]
            bare = re.sub(r"%[-#0 +]*[0-9]*(?:\.[0-9]+)?[sbqdc]|\\[nt]|\s", "", fmt)
            text = " ".join(rest) if rest and not bare else (fmt if "%" not in fmt else None)
        else:
            lister = "$(" + " ".join(w.text for w in words) + ")"
            return [Word(lister, False)] if shell_options.lister_roots(lister) is not None else None
        if text is None:
            return None
        text = text.replace("\\n", "\n").replace("\\t", "\t")
        lines = [line.strip() for line in text.splitlines() if " " in line.strip()]  # xargs -I: lines
        try:
            return [Word(t) for t in [*shlex.split(text), *lines]]
        except ValueError:
            return None

    def piped_literal(self, n: Any, consumer: set[str], depth: int) -> None:
        """``echo 'ssh -R ...' | sh``: a literal script piped into a shell is still readable."""
        if n.kind != "command":
            return
        words = [self.word(p, depth) for p in n.parts if p.kind == "word"]
        for _ in range(MAX_DEPTH):  # ``timeout 5 nohup echo ... | sh``: the wrapped program is echo
            spec = P.WRAPPERS.get(words[0].text) if len(words) > 1 else None
            if spec is None or not spec.runs_rest:
                break
            parsed = P.parse_opts(words[1:], spec.values | spec.scripts, max_pos=spec.positionals)
            if parsed.unknown is not None or any(o in spec.scripts for o, _ in parsed.opts):
                return
            words = words[1 + parsed.index :]
        if not words:
            return
        if not words or words[0].text not in ("echo", "printf") or not all(w.literal for w in words):
            return
        readings = [[w.text for w in words[1:]]]
        if any(w.static is not None for w in words[1:]):  # bashlex's quote removal, and ours
            readings.append([t for w in words[1:] for t in (w.static or (w.text,))])
        for texts in readings:
            args = [t for t in texts if not t.startswith("-")]
            if any("\\" in a or (words[0].text == "printf" and "%" in a) for a in args):
                self.opaque("escaped text piped into an interpreter")
                self.add("net.download_exec", "escaped (encoded) text piped into an interpreter")
                decoded = shell_static.echo_output(words[0].text, texts)
                if decoded is not None:
                    self.stdin_code(consumer, decoded, depth)
                continue
            self.stdin_code(consumer, " ".join(args), depth)

    def stdin_code(self, consumer: Iterable[str], text: str, depth: int, *, literal: bool = True) -> set[str]:
        """Code a program reads on stdin: a shell's is parsed, Python's read with ``ast``, anything
        else's is inline code. ``literal``: the text is what the program gets (no expansion)."""
        families = set(consumer)
        code = families & _CODE_READERS
        if not code:
            return set(self.source(text, depth + 1))
        for fam in sorted(code):
            if fam == "python" and literal:
                shell_code.python_inline(self, fam, text, depth)
                continue
            self.add(f"proc.inline_code:{fam}", f"{fam} <<< {text}")
            shell_code.scan_code(self, fam, text, depth)
        return set()

    def nested_command(self, text: str, depth: int) -> None:
        """A string inside inline code that may be a command line: keep what it would do.

        Program names alone are dropped (most strings are not commands), and so is
        ``shell.opaque`` from text that is not shell at all; everything else counts.
        """
        if depth > MAX_DEPTH:
            return
        child = Inspection(
            next(iter(sorted(self.cwds))) if len(self.cwds) == 1 else UNKNOWN_CWD, fast_path=self.fast_path
        )
        child.urls = self.urls
        child.tokens_left = self.tokens_left
        try:
            child.source(text, depth)
        except RecursionError:
            return
        finally:
            self.tokens_left = child.tokens_left
        first = text.split(None, 1)[0] if text.strip() else ""
        known = "/" in first or P.family(first) in KNOWN_PROGRAMS or first in P.BUILTINS
        # print(f"2 / p = {res}") is no command: what an unknown first word would read or write
        # is dropped; what its words say anyway (credentials, hosts, shells) stays.
        dropped = (
            ("proc.exec:", "shell.opaque")
            if known
            else ("proc.exec:", "shell.opaque", "fs.read:", "fs.write:")
        )
        for cap in child.caps.values():
            if not cap.name.startswith(dropped):
                self.add(cap.name, cap.evidence)
        self.ran_files |= child.ran_files

    def command(self, n: Any, depth: int) -> set[str]:
        words: list[Word] = []
        redirects: list[Any] = []
        assigned: list[Word] = []
        ran: set[str] = set()
        entry = self.cwds
        for part in n.parts:
            if part.kind == "word":
                words.append(self.word(part, depth))
            elif part.kind == "assignment":
                w = self.word(part, depth)
                ran |= w.runs
                self.assignment(w, depth)
                assigned.append(w)
            elif part.kind == "redirect":
                redirects.append(part)
            else:
                ran |= self.node(part, depth)
        for w in words:
            if w.runs:  # most words run nothing: no union with the empty set
                ran |= w.runs
        self.cwds = self.fail_cwds = entry
        execd = self.run(words, depth) if words else frozenset()
        if not words:
            for w in assigned:
                self.remember_variable(w)
        ran |= execd
        for r in redirects:  # bash opens redirections before the command runs, in the old directory
            ran |= self.redirect(r, depth, execd)
        if redirects or not execd.isdisjoint(_TEXT_WRITERS):
            self.remember_written(execd, words, redirects)
        if len(execd) == 1 and not execd.isdisjoint(_PASS_THROUGH):  # cat x.py > y.py, tee y < x
            self.pass_through(execd, words, redirects, depth)
        self.after_command(words, depth)
        return ran

    def remember_written(self, execd: frozenset[str], words: list[Word], redirects: list[Any]) -> None:
        """``cat > x.py <<'EOF' ... EOF``, ``tee x.sh <<EOF``, ``echo '...' > x.sh``: the text a
        command writes into a file, when it is in the command line (read if the file is run)."""
        family = next(iter(execd)) if len(execd) == 1 else None
        if family not in _TEXT_WRITERS or len(self.written) >= MAX_WRITTEN:
            return
        text: str | None = None
        exact = True
        targets: list[tuple[Word, bool]] = []  # (file, whether it is truncated first)
        for r in redirects:
            if r.type in ("<<", "<<-") and getattr(r, "heredoc", None) is not None:
                text = r.heredoc.value.rsplit("\n", 1)[0]
                exact = getattr(r, "quoted_delimiter", False) or not any(c in text for c in "$`\\")
                if not exact and _HEREDOC_EXPANSION_RE.search(text) is None:
                    # <<EOF without expansions: its backslashes are the only quoting, read as sh does
                    text, exact = _HEREDOC_ESCAPE_RE.sub(_heredoc_escape, text), True
            elif r.type in (">", ">>", ">|") and hasattr(r.output, "kind"):
                targets.append((self.word(r.output, 0), r.type != ">>"))
        if family in ("echo", "printf"):
            if len(words) < 2 or not all(w.literal for w in words[1:]):
                return
            args = [w.text for w in words[1:]]
            # what is printed, escapes decoded, when bash and sh would print the same
            text = (
                shell_static.echo_output(family, args)
                if shell_static.same_in_every_shell(family, args)
                else None
            )
            exact = text is not None
            if text is None:  # its words, read as they are
                text = " ".join(a for a in args if not (a.startswith("-") and family == "echo"))
        elif family == "tee":
            append = any(w.text in ("-a", "--append") for w in words[1:])
            targets += [(w, not append) for w in words[1:] if not w.text.startswith("-")]
        if text is None and family == "tee" and self.stdin_text is not None:  # printf '...' | tee x.py
            text, exact = self.stdin_text, True
        if text is None:
            for w, _ in targets:  # tee x.sh fed by a pipe
                if w.literal:
                    self.captured.update(self.resolve(w.text, w.text, strict=False))
            return
        if targets:  # a miner's configuration written from the command line, as file.write's
            for cap in content_capabilities(text):
                self.add(cap.name, cap.evidence)
        for w, _ in targets:
            if w.literal:
                for path in self.resolve(w.text, w.text, strict=False):
                    # exact: the text written, the whole file or (>>) what is added to it; a record
                    # of added text is merged into the file's (server/written_code.py)
                    self.written[path] = (text, exact)
                    if exact:  # known text: read when run, not code nobody has read
                        self.captured.discard(path)

    def after_command(self, words: Sequence[Word], depth: int) -> None:
        """Directory changes a simple command makes to this shell: cd, functions, sourced files."""
        entry = self.cwds
        i = 0
        while i < len(words) and words[i].literal and words[i].text in ("builtin", "command"):
            i += 1
        if i >= len(words) or not words[i].literal:
            return
        name = words[i].text
        if name in _CD:
            succ, fail = self.change_dir(name, words[i + 1 :])
            self.set_cwds(succ)
            self.fail_cwds = fail
        elif name in self.functions and i == 0:
            self.call(name, depth, words[1:])
        elif name in ("source", "."):
            self.set_cwds(entry | {UNKNOWN_CWD})

    def redirect(self, r: Any, depth: int, execd: frozenset[str]) -> set[str]:
        target = r.output
        if not hasattr(target, "kind"):
            return set()  # fd duplication such as 2>&1
        w = self.word(target, depth)
        ran = set(w.runs)
        text = w.text
        if r.type in ("<<", "<<-"):
            body = getattr(r, "heredoc", None)
            value: str = body.value.rsplit("\n", 1)[0] if body is not None else ""
            if "$" in value and not getattr(r, "quoted_delimiter", False):
                for secret in P.secret_expansions(value):
                    self.add("cred.env", f"a secret variable is expanded in a here-document: ${secret}")
            if P.STDIN_EXEC in execd or execd & P.SHELLS:
                expands = not getattr(r, "quoted_delimiter", False) and any(c in value for c in "$`\\")
                ran |= self.stdin_code(execd, value, depth, literal=not expands)
            elif ("$(" in value or "`" in value) and not getattr(r, "quoted_delimiter", False):
                ran |= self.heredoc_substitutions(value, depth)
            if shell_compute.STDIN_MANIFEST in execd:
                shell_compute.manifest(self, value, "here-document")
            return ran
        if r.type == "<<<":
            if P.STDIN_EXEC in execd or execd & P.SHELLS:
                if not w.literal:
                    self.opaque(f"non-literal here-string to an interpreter: {text}")
                else:
                    ran |= self.stdin_code(execd, text, depth)
            return ran
        if text.startswith(("/dev/tcp/", "/dev/udp/")):
            self.add("net.reverse_shell", text)
            parts = text.split("/")
            if w.literal and len(parts) == 5:
                self.connect(parts[3], parts[4], text)
            else:
                self.opaque(f"unknowable network redirect {text}")
                if len(parts) == 5 and "$" in parts[4] and "$" not in parts[3]:
                    self.add("net.scan", f"a port chosen at run time: {text}")
                    self.host_class(parts[3], text)
            return ran
        if r.type in _WRITE_REDIRECTS:
            self.write_target(w, f"{r.type} {text}")
            if w.literal:  # a program's output: text this reading does not hold
                self.captured.update(self.resolve(text, text, strict=False))
                if self.stdin_decoded or not execd.isdisjoint(_HIDING):
                    self.note(self.workspace_files(text), DOUBT)
            if execd & P.DOWNLOADERS and w.literal:
                self.remember_download(text)
        elif r.type == "<":
            self.read_path(w, f"< {text}")
            if P.STDIN_EXEC in execd and w.literal:  # python3 < x.py: the file is run as code
                self.ran_files.update(self.workspace_files(text))
        elif w.literal:
            self.classify_word(text)
        return ran

    # -- commands ----------------------------------------------------------
    def program(self, w: Word) -> str | None:
        """The basename a word would run, or None (and ``shell.opaque``) if it cannot be known."""
        t = w.text
        if (
            not w.literal
            or not t
            or "$" in t
            or "`" in t
            or "*" in t
            or "?" in t
            or ("[" in t and "]" in t[t.index("[") + 1 :])
            or ("{" in t and ("," in t or ".." in t))
        ):
            self.opaque(f"program name not known statically: {t}")
            return None
        if t == ".":
            return "source"
        base = posixpath.basename(posixpath.normpath(t)) if "/" in t else t
        if len(base) > 63 and len(base.encode()) > 255:  # NAME_MAX (at most 4 bytes a character)
            self.opaque(f"program name longer than any file name: {t}")
            return None
        if base in ("", ".", ".."):
            self.opaque(f"not a program: {t}")
            return None
        return base

    def run(self, argv: list[Word], depth: int) -> frozenset[str]:
        """Record one simple command (after assignments); returns the families it runs."""
        if depth > MAX_DEPTH:
            self.opaque(f"wrappers nested deeper than {MAX_DEPTH}: {' '.join(w.text for w in argv)}")
            return frozenset()
        args = argv[1:]
        alternate: set[str] = set()
        for w in argv:  # _needs_second_reading(argv), inline: this runs per command
            if w.static is not None or not w.literal:
                second = True
                break
        else:
            second = _expands(argv[0].text, _GLOB_RE)
        if second:
            for alt in self.alternates(argv):
                with self.scope():
                    alternate |= self.run(alt, depth + 1)
        head = argv[0].text
        patterns: frozenset[int] = frozenset()
        own: list[str] = []  # where the program may be a file the agent wrote, whatever its name
        if head and argv[0].literal and head not in P.BUILTINS:
            if "/" in head:  # ./ls, /tmp/x/grep, .venv/bin/python: that file runs (its record too)
                own = self.workspace_files(head)
                self.ran_files.update(own)
                if own:  # a venv's console script, a #!python script: .pth files run at its start
                    self.ran_files.update(shell_runs.STARTUP_TREES)
            elif self.path_code_dirs:
                self.ran_files |= self.path_programs(head)  # it may be a file written there: run as code
                own = [head]
            if self.path_code_dirs and not own:  # /usr/bin/make: its recipes find programs on PATH
                self.ran_files |= self.path_trees()
        if head and not own:  # grep's pattern is no file read, unless "grep" may be the agent's
            fam = P.family(posixpath.basename(head))
            patterns = shell_files.pattern_words(fam, args)
            if fam == "python":  # python -c CODE: the code's own reader scans its words
                patterns |= _python_code_word(args, (self.src, self.root_src))
        self.scan(args, patterns)
        name = self.program(argv[0])
        if name is None:
            return frozenset(alternate)
        if self.copies and argv[0].literal:
            copied = {
                self.copies[p]
                for p in self.resolve(argv[0].text, argv[0].text, strict=False)
                if p in self.copies
            }
            for real in sorted(copied - {name})[:MAX_ALTERNATES]:
                with self.scope():
                    self.add(f"proc.exec:{real}", f"{argv[0].text} is a copy of {real}")
                    self.run([Word(real), *args], depth + 1)
        family = P.family(name)
        if family in _OLD_STYLE:
            args = shell_options.old_style_args(shell_tables.TABLES[family], args)
            argv = [argv[0], *args]
        moves = shell_files.chdir_words(family, args)
        if moves is None:
            ran = self.run_here(name, family, argv, depth)
            return ran | alternate if alternate else ran
        dirs, for_good = moves
        entry = self.cwds
        reached: set[str] = set(entry) if not for_good else set()
        for d in dirs:
            if d is None:
                continue
            self.read_path(d, f"{name} -C {d.text}")  # like a call's cwd: the directory is read
            self.cwds = self.cd_target(d, self.cwds)
            reached |= self.cwds
        if not for_good:
            self.cwds = frozenset(reached)
        try:
            return self.run_here(name, family, argv, depth) | alternate
        finally:
            self.cwds = self.fail_cwds = entry

    def run_here(self, name: str, family: str, argv: list[Word], depth: int) -> frozenset[str]:
        args = argv[1:]
        texts: list[str] = list(map(_TEXT, argv))  # no comprehension frame per command
        evidence = " ".join(texts)
        if family not in P.BUILTINS:  # cd, export, set...: the shell itself, not a program
            program = self.workspace_program(argv[0], family)
            if program is None and (family in P.SHELLS or family == "source"):
                program = self.shell_script(family, args)  # bash x.sh runs x.sh, as ./x.sh does
            if program is not None:
                self.ran_files.add(program)
            self.add(f"proc.exec:{program or P.rule_name(name)}", evidence)
        if family in shell_runs.FAMILIES:
            self.ran_files.update(shell_runs.files_run(self, family, args))
        ran = {family}
        for cap in P.TABLE_CAPS.get(family, ()):
            self.add(cap, evidence)
        self.package_program(argv[0], family, args, evidence)
        if P.looks_like_miner(texts[1:]) or (family in P.FILE_TOOLS and any(map(P.names_miner, texts[1:]))):
            self.add("crypto.mine", evidence)  # a renamed miner still says so, or its archive does
        if family in P.INTERPRETERS:
            if any(w.runs & P.DOWNLOADERS for w in args):
                self.add("net.download_exec", evidence)
            if any(P.DECODES in w.runs for w in args):
                self.add("net.download_exec", f"decoded text run as code: {evidence}")
            first = next((w for w in args if not w.text.startswith("-")), None)
            if first is not None and first.literal and self.is_downloaded(first.text, script=True):
                self.add("net.download_exec", evidence)
        if self.downloaded and self.is_downloaded(argv[0].text):
            self.add("net.download_exec", evidence)
        for w in shell_files.read_operands(family, args):
            self.read_path(w, f"{name} {w.text}")
        handler = HANDLERS.get(family)
        if handler is not None:
            ran |= handler(self, name, args, depth)
        if family in shell_tables.TABLES:
            shell_tables.check_program(self, family, name, args, depth)
        return frozenset(ran)

    def package_program(self, program: Word, family: str, args: list[Word], evidence: str) -> None:
        """An installed package's script, run by its path (``./node_modules/localtunnel/bin/lt.js``)
        or by an interpreter (``node node_modules/.bin/lt``): the program it is, by the table."""
        paths = [program.text] if "/" in program.text else []
        if family in P.INTERPRETERS:
            first = next((w for w in args if not w.text.startswith("-")), None)
            if first is not None and first.literal:
                paths.append(first.text)
        for path in paths:
            for name in sorted(P.package_programs(path)):
                for cap in shell_tables.program_capabilities(name):
                    self.add(cap, f"{evidence}: the package's program {name}")

    def workspace_program(self, w: Word, family: str) -> str | None:
        """``./tests/runtests.py``, ``bin/test``: a file of the workspace run as a program, by its path
        (``proc.exec:/workspace/...``, and the file is read). A known program's name wins (a venv's
        ``.venv/bin/python`` is python), so its table and handler still apply."""
        t = w.text
        if "/" not in t or not w.literal or family in KNOWN_PROGRAMS or family in shell_tables.TABLES:
            return None
        paths = self.resolve(t, t, strict=False)
        if len(paths) != 1 or not paths[0].startswith(WORKSPACE_ROOT + "/"):
            return None
        self.read_path(w, f"runs {t}")
        return paths[0]

    def shell_script(self, family: str, args: list[Word]) -> str | None:
        """``bash x.sh``: the workspace script a shell runs, as ``proc.exec:/workspace/x.sh`` (the
        capability ``./x.sh`` has); a script elsewhere, or none, is not one."""
        w = shell_runs.shell_script(family, args)
        if w is None or not w.literal or w.runs or w.text.startswith(("<(", ">(")):
            return None  # <(curl ...) is a pipe from another program, not a file
        paths = self.resolve(w.text, w.text, strict=False)
        if len(paths) != 1 or not paths[0].startswith(WORKSPACE_ROOT + "/"):
            return None
        return paths[0]

    def assignment(self, w: Word, depth: int) -> None:
        """``NAME=value`` before a command or via export: history, loader and command variables."""
        m = _ASSIGN_RE.match(w.text)
        if m is None:
            return
        name, value = m.group().rstrip("+=").upper(), w.text[m.end() :]
        if name == "HISTFILE" or (name in ("HISTSIZE", "HISTFILESIZE") and value in ("", "0")):
            self.add("log.tamper", w.text)
        elif name in P.INJECTION_VARS:
            self.opaque(f"code injected through {name}: {w.text}")
            if name == "PROMPT_COMMAND" and w.literal:  # run before every prompt: read it too
                self.source(value, depth + 1)
        elif name in P.COMMAND_VARS or name in P.PREPROCESSOR_VARS:
            if not w.literal:
                self.opaque(f"non-literal command in {name}: {w.text}")
            elif name in P.PREPROCESSOR_VARS:  # "|cmd %s", "||cmd %s", "cmd %s %s": less runs cmd
                self.source(value.lstrip("|-").replace("%s", "/dev/null"), depth + 1)
            else:
                self.source(value, depth + 1)
        elif name == "CDPATH":
            self.cdpath = True
        elif name == "PATH":
            self.path_assignment(w, value)
        elif name == "HOME":
            self.home_set = True
            if not (w.literal and value.rstrip("/") == HOME):
                # every program's per-user configuration moves there: ~/.gitconfig (aliases,
                # sshCommand, url.insteadOf), ~/.curlrc, ~/.wgetrc, ~/.npmrc, pip.conf, ~/.netrc,
                # ~/.ssh/config and the user site's .pth files, which every python start runs
                self.opaque(f"programs read their per-user configuration from another home: {w.text}")
        else:
            shell_options.check_env(self, m.group().rstrip("+="), w, value, depth)
        if name != "MPLBACKEND":  # module://name is a module, not a place on the network
            self.scan([Word(value, w.literal)])

    def variable_set(self, name: str, evidence: str, depth: int) -> None:
        """``read NAME``, ``for NAME in``, ``printf -v NAME``, ``${NAME:=...}``: NAME gets a value
        only known at run time. Read as ``NAME=<unknown>``: ``PATH``, ``LD_PRELOAD`` and the other
        variables a later program obeys are doubt, as their assignment from a command would be."""
        if _NAME_RE.fullmatch(name):
            self.assignment(Word(f"{name}=`{evidence}`", False), depth)

    def path_assignment(self, w: Word, value: str) -> None:
        """``PATH=/workspace/bin:$PATH git``: a bare program name may now be a file written into
        the workspace (or /tmp). Such entries are remembered (relative ones as they are: they
        follow ``cd``) and later bare names are looked up in them too (``path_programs``). Entries
        not known statically are doubt; ``$PATH`` and the home directory are not the agent's."""
        entries = set(self.path_code_dirs)
        for entry in value.split(":"):
            if entry in ("$PATH", "${PATH}") or entry.startswith(("$HOME", "${HOME}", "~")):
                continue
            for pwd in ("$PWD", "${PWD}", "$(pwd)", "`pwd`"):
                if entry == pwd or entry.startswith(pwd + "/"):
                    entry = "." + entry[len(pwd) :]
            if "$" in entry or "`" in entry:
                self.opaque(f"PATH entry not known statically: {w.text}")
            elif not entry.startswith("/") or ((normalize_path(entry, "/") or "/") + "/").startswith(
                CODE_ROOTS
            ):
                entries.add(entry or ".")  # an empty entry is the working directory
        self.path_code_dirs = frozenset(entries)
        self.ran_files |= self.path_trees()  # also what a script setting PATH, once sourced, leads to

    def path_dirs(self) -> set[str]:
        """The directories the agent can write into that PATH names here (relative entries from
        each working directory; one from an unknown directory is doubt)."""
        out: set[str] = set()
        for entry in self.path_code_dirs:
            for cwd in ("/",) if entry.startswith("/") else self.cwds:
                if cwd == UNKNOWN_CWD:
                    self.opaque(f"a PATH entry relative to an unknown directory: {entry}")
                    continue
                d = (normalize_path(entry, cwd or "/") or "/").rstrip("/")
                if (d + "/").startswith(CODE_ROOTS):
                    out.add(d)
        return out

    def path_programs(self, name: str) -> set[str]:
        """Where a bare program name may be a file written into a PATH entry of the agent's, and
        every file there (the trees of ``path_trees``): the program may start others by name."""
        return {posixpath.join(d, name) for d in self.path_dirs()} | self.path_trees()

    def path_trees(self) -> set[str]:
        """The files of every kind under the PATH entries an agent can write into: any program
        started while they are on PATH (make's recipes, git's helpers, subprocess.run(["ls"]),
        a script sourced later) may run one of them by its bare name."""
        return {shell_runs.tree(d, shell_runs.PROGRAM_KINDS) for d in self.path_dirs()}

    # -- words -------------------------------------------------------------
    def scan(self, args: Iterable[Word], patterns: frozenset[int] = frozenset()) -> None:
        """URLs, mining pools, credential paths and inline reverse shells inside argument words
        (``patterns``: ids of words a program reads as a pattern, which name no path, or as code
        its own reader scans)."""
        for w in args:
            t = w.text
            if "://" in t and id(w) not in patterns:
                for m in (_URL_RE if w.literal else _URL_IN_EXPANSION_RE).finditer(t):
                    if self.urls >= MAX_URLS:
                        self.opaque("too many URLs to inspect")
                        break
                    self.urls += 1
                    for cap in url_capabilities(m.group()):
                        self.add(cap.name, cap.evidence)
                if P.names_miner(t.lower()):
                    self.add("crypto.mine", t)  # a miner fetched by name
            if P.mining_text(t):  # a pool's URL, a stratum method, a miner's config, a wallet
                self.add("crypto.mine", t)
            if t.startswith("R:") and w.literal and P.REVERSE_SPEC_RE.fullmatch(t):
                self.add("net.tunnel.reverse", t)
            if w.literal and len(t) > 4 and t[0] == "-" and t[1] != "-" and "=" not in t:
                self.attached_value(t)  # -opool.example.com:443, -u4Ad...: a short option's value
            if len(t) > 16 and P.looks_like_reverse_shell(t):
                self.add("net.reverse_shell", t)
            # an option word without "=" is classified by its ssh names alone (see classify_word)
            if w.literal and (not t.startswith("-") or "=" in t or "authorized_keys" in t or ".ssh" in t):
                if id(w) not in patterns:
                    self.classify_word(t)

    def attached_value(self, t: str) -> None:
        """The value attached to a short option (``-oHOST:PORT``, ``-uWALLET``, ``-hADDRESS``): a
        metadata address, a mining pool or a wallet, as a word of its own would be."""
        value = t[2:]
        if ("." in value or ":" in value) and len(value) <= 300:
            where = address_word_class(value)
            if where in ("metadata", "mining"):
                for cap in host_class_capabilities(where, t):
                    self.add(cap.name, cap.evidence)
        if P.mining_text(value):
            self.add("crypto.mine", t)

    def classify_word(self, t: str) -> None:
        if "authorized_keys" in t or (".ssh" in t and _SSH_DIR_RE.search(t)):
            self.add("cred.ssh", t)
        if t.startswith("-"):
            t = t.partition("=")[2]
        if not t or "://" in t or len(t) > 1024 or (P.has_space(t) and not _SPACED_PATH_RE.fullmatch(t)):
            return  # a word with blanks is text, unless it is spelled as a path that goes on past them
        if ("." in t or ":" in t) and len(t) <= 300:
            # a metadata address or a mining pool as a plain argument (./probe 169.254.169.254,
            # ./app -o pool:443); loopback and private addresses are also bind addresses: not here
            where = address_word_class(t)
            if where in ("metadata", "mining"):
                for cap in host_class_capabilities(where, t):
                    self.add(cap.name, cap.evidence)
        # REV:PATH (git show HEAD:.env, git cat-file -p :.env) and host:path name PATH too
        spellings = (t, t.rpartition(":")[2]) if ":" in t else (t,)
        for spelling in spellings:
            for norm in self.resolve(spelling, t, strict=False) if spelling else ():
                for cls in credential_classes(norm):
                    self.add(cls, t)

    def read_path(self, w: Word, evidence: str) -> None:
        """``fs.read`` and the read classes (credentials, system files) of a path a program reads.

        ``$(git ls-files)`` or ``$(find src -name '*.py')`` is not known, but lies under known
        roots: what is read is everything under each (``fs.read:/workspace/src/*``)."""
        if not w.literal:
            roots = shell_options.lister_roots(w.text)
            if roots is None:
                self.opaque(f"file read not known statically: {evidence}")
                return
            names = shell_options.lister_patterns(w.text)  # find -name '*.env': what it picks
            for root in roots:
                for norm in self.resolve(root, evidence):
                    under = norm.rstrip("/") + "/*"
                    self.add(f"fs.read:{under}", evidence)
                    for cls in path_classes(norm, write=False):
                        self.add(cls, evidence)
                    for name in names:
                        for cls in credential_classes(f"{norm.rstrip('/')}/{name}"):
                            self.add(cls, evidence)
            return
        for norm in self.resolve(w.text, evidence):
            if norm in _HARMLESS_TARGETS or norm in (
                "/dev/zero",
                "/dev/random",
                "/dev/urandom",
                "/dev/stdin",
            ):
                continue
            if norm.startswith("/dev/fd/"):
                continue
            self.add(f"fs.read:{norm}", evidence)
            for cls in path_classes(norm, write=False):
                self.add(cls, evidence)

    def write_target(self, w: Word, evidence: str, *, under: bool = False) -> None:
        """``fs.write`` and the write classes for a literal target; unknowable targets are opaque.
        ``under``: what is written is inside the directory, not the directory itself
        (``find DIR -delete``): ``fs.write:DIR/*``. A lister's output (``$(find src -name x)``,
        ``find . | xargs rm``) is written under its roots, as ``read_path`` reads under them."""
        if not w.literal:
            roots = shell_options.lister_roots(w.text)
            if roots is None:
                self.opaque(f"write target not known statically: {evidence}")
                return
            for root in roots:
                self.write_target(Word(root), evidence, under=True)
            return
        for norm in self.resolve(w.text, evidence):
            if norm in _HARMLESS_TARGETS or norm.startswith("/dev/fd/"):
                continue
            if under:
                norm = norm.rstrip("/") + "/*"
            self.add(f"fs.write:{norm}", evidence)
            for cls in path_classes(norm, write=True):
                self.add(cls, evidence)

    def remember_added(self, target: str, text: str) -> None:
        """Text an edit puts into a file (``sed -i`` lines and replacements): a fragment, not the
        file, so only what it does that no fragment of ordinary code does (``FRAGMENT_SIGNALS``:
        a reverse shell, a process started, a credential read) is noted on the file's record."""
        from gatekeeper.inspectors.written_code import analyse_written  # it imports this module

        for path in self.workspace_files(target):
            caps = [
                c for c in analyse_written(path, text).capabilities if c.name.startswith(FRAGMENT_SIGNALS)
            ]
            for c in caps:
                ev = f"{path}: an in-place edit adds {c.evidence}"[:200]
                self.noted.setdefault(path, {}).setdefault(c.name, Capability(c.name, ev, c.amounts))

    def note(self, paths: Iterable[str], cap: Capability) -> None:
        """``cap`` is added to the records of ``paths`` (workspace files), and to this command
        when it runs one of them."""
        for path in paths:
            self.noted.setdefault(path, {}).setdefault(cap.name, cap)

    def remember_copy(self, source: str, target: str) -> None:
        """``cp /usr/bin/ssh /tmp/x``: later ``/tmp/x`` (or ``/tmp/x/ssh`` for a directory) is ssh.
        ``cp x.py y.py``: what was written into ``x.py`` is in ``y.py`` now (``copied``)."""
        self.remember_content(self.workspace_files(source), target, posixpath.basename(source.rstrip("/")))
        prog = posixpath.basename(source.rstrip("/"))
        if not prog or prog in (".", "..") or len(self.copies) > 64:
            return
        resolved = self.copies.get(normalize_path(source, "/") or "", prog)
        for dest in self.resolve(target, target, strict=False):
            self.copies[dest] = resolved
            self.copies[posixpath.join(dest, prog)] = resolved

    def remember_content(self, sources: list[str], target: str, name: str = "") -> None:
        """The workspace files ``sources`` end up in ``target`` (or ``target/name``, a directory)."""
        if not sources or len(self.copied) > 64:
            return
        for dest in self.workspace_files(target):
            for d in (dest, posixpath.join(dest, name)) if name else (dest,):
                self.copied.setdefault(d, set()).update(sources)

    def remember_download(self, path: str) -> None:
        """``curl -o x.sh URL``: running ``x.sh`` in this command line is download-and-execute, and
        so it is in a later one (the file's record is noted: nobody has read what it holds)."""
        self.downloaded.update(self.resolve(path, path, strict=False))
        self.note(self.workspace_files(path), DOWNLOADED)

    def is_downloaded(self, path: str, *, script: bool = False) -> bool:
        """Was this file saved by a downloader earlier? A program name without ``/`` is looked
        up on PATH, but a script handed to an interpreter is a path relative to the cwd."""
        if not self.downloaded or ("/" not in path and not script):
            return False
        return any(p in self.downloaded for p in self.resolve(path, path, strict=False))


def _dash_splits_ansi(text: str) -> bool:
    """Does a ``$'...'`` (outside single quotes) hold an escaped quote ``\\'``? bash reads on past
    it; dash, without ANSI-C quoting, ends a single-quoted ``\\`` there and reads the rest as
    commands. One inside double quotes counts too (it may be in a ``$(...)`` there)."""
    i, n = 0, len(text)
    in_dq = False
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
        elif c == '"':
            in_dq = not in_dq
            i += 1
        elif c == "#" and not in_dq and (i == 0 or text[i - 1] in " \t\n;&|()"):
            end = text.find("\n", i)  # a comment: its quotes are text ("# it's")
            i = n if end < 0 else end
        elif c == "'" and not in_dq:
            end = text.find("'", i + 1)
            if end < 0:
                return False
            i = end + 1
        elif c == "$" and text.startswith("$'", i):
            j = i + 2
            while j < n and text[j] != "'":
                if text[j] == "\\":
                    if text[j + 1 : j + 2] == "'":
                        return True
                    j += 1
                j += 1
            i = j + 1
        else:
            i += 1
    return False


def _python_code_word(args: Sequence[Word], texts: Sequence[str]) -> frozenset[int]:
    """The id of ``python -c CODE``'s literal CODE word (read by ``shell_code.python_inline``,
    which scans its words after leaving out URLs the code only parses); else nothing. Only while
    what the code prints reaches the terminal: in ``texts`` (the command lines it is part of),
    without the code itself, no redirection, pipe or substitution may take its output
    (``python3 -c 'print(urlsplit(U).geturl())' > r.txt && pip install -r r.txt``)."""
    for i, w in enumerate(args):
        if not w.literal or not w.text.startswith("-") or w.text in ("-", "--"):
            return frozenset()
        if w.text == "-c":
            code = args[i + 1] if i + 1 < len(args) else None
            if code is None or not code.literal or not code.text:
                return frozenset()
            for text in texts:
                if text and (code.text not in text or _OUTPUT_TAKEN_RE.search(text.replace(code.text, " "))):
                    return frozenset()
            return frozenset({id(code)})
    return frozenset()


_OUTPUT_TAKEN_RE: Final = re.compile(r"[>|`]|\$\(")


def _needs_second_reading(argv: Sequence[Word]) -> bool:
    """Is any word non-literal or read otherwise by bash (``static``)? A loop: this runs per command."""
    for w in argv:
        if w.static is not None or not w.literal:
            return True
    return False


def _expands(text: str, glob: re.Pattern[str]) -> bool:
    """A brace list, or what ``glob`` finds (a glob, a dot-glob directory): bash expands the word at
    run time. Each pattern needs a character most words lack, which is looked for first."""
    return ("{" in text and _BRACES_RE.search(text) is not None) or (
        ("*" in text or "?" in text or "[" in text) and glob.search(text) is not None
    )


def estimate_tokens(text: str) -> int:
    """A cheap upper estimate of the tokens bashlex will lex (here-document bodies are only
    read line by line, so they do not count)."""
    if "\n" not in text:  # one line: no here-document body can follow
        # the characters _OPERATOR_CHARS deletes, counted one by one: half the cost of translate
        c = text.count
        return len(text.split()) + c("|") + c("&") + c(";") + c("(") + c(")") + c("`")
    count = 0
    delimiters: list[str] = []
    for line in text.split("\n"):
        if delimiters:
            if line.lstrip("\t") == delimiters[0]:
                delimiters.pop(0)
            continue
        count += len(line.split()) + len(line) - len(line.translate(_OPERATOR_CHARS))
        if "<<" in line:
            delimiters.extend(m.group(1) for m in _HEREDOC_START_RE.finditer(line))
    return count


def inspect_shell(value: object, ctx: InspectContext) -> list[Capability]:
    """Inspector for a shell command line, run in the workspace."""
    if not isinstance(value, str):
        return [Capability("inspect.invalid", f"command must be a string, not {type(value).__name__}")]
    return _inspect_command(value, ctx.workspace)


def inspect_shell_command(value: object, ctx: InspectContext) -> list[Capability]:
    """Inspector for a whole ``{cmd, cwd?}`` arguments object: the command runs in ``cwd``.

    The working directory itself is read (``fs.read:<cwd>``, as the ``fs.read`` inspector
    would say), and every relative path in the command resolves against it.
    """
    if not isinstance(value, dict):
        return [Capability("inspect.invalid", f"arguments must be an object, not {type(value).__name__}")]
    cmd, cwd = value.get("cmd"), value.get("cwd")
    if not isinstance(cmd, str):
        return [Capability("inspect.invalid", f"cmd must be a string, not {type(cmd).__name__}")]
    if cwd is None:
        return _inspect_command(cmd, ctx.workspace)
    if not isinstance(cwd, str):
        return [Capability("inspect.invalid", f"cwd must be a string, not {type(cwd).__name__}")]
    start = normalize_path(cwd, ctx.workspace)
    caps = {c.name: c for c in path_capabilities(cwd, ctx.workspace, write=False)}
    for c in _inspect_command(cmd, UNKNOWN_CWD if start is None else start):
        caps.setdefault(c.name, c)
    return list(caps.values())


def _inspect_command(command: str, cwd: str) -> list[Capability]:
    return list(_read_command(command, cwd).capabilities)


def _read_command(command: str, cwd: str) -> Reading:
    if len(command) <= CACHE_MAX_INPUT:
        return _read_cached(command, cwd)
    return _read(command, cwd)


@dataclass(frozen=True, slots=True)
class Reading:
    """One command line read: its capabilities, and the workspace files it runs as code."""

    capabilities: tuple[Capability, ...]
    files_run: frozenset[str]
    # (file, text) a command line wrote whole, with text of its own (cat > f <<'EOF', echo x > f)
    written: tuple[tuple[str, str], ...] = ()
    # (file, workspace file copied into it): cp x.py y.py, mv, ln, cat x.py > y.py
    copied: tuple[tuple[str, str], ...] = ()
    # (workspace file, capabilities added to its record): doubt for text no reading holds
    # (base64 -d x > y.py, python3 gen.py > y.sh), what an in-place edit's text does (sed -i)
    noted: tuple[tuple[str, tuple[Capability, ...]], ...] = ()


def _inspect(command: str, cwd: str, *, fast_path: bool = True) -> tuple[Capability, ...]:
    """The whole inspection of one command line; ``fast_path=False`` parses only with bashlex."""
    return _read(command, cwd, fast_path=fast_path).capabilities


def _read(command: str, cwd: str, *, fast_path: bool = True) -> Reading:
    insp = Inspection(cwd, fast_path=fast_path)
    if len(command) > MAX_INPUT:
        insp.opaque(f"command longer than {MAX_INPUT} characters")
    else:
        try:
            insp.source(command, 0, here=True)
        except RecursionError:
            insp.opaque("command nested too deeply to inspect")
    if insp.written and insp.ran_files:
        _written_and_run(insp)
    if insp.ran_files and insp.captured:
        _unknown_written_and_run(insp)
    caps = insp.caps  # keyed by name, and names are all Capability orders by: sort the keys
    written = (
        tuple(sorted((p, text) for p, (text, exact) in insp.written.items() if exact)) if insp.written else ()
    )
    for _ in range(4):  # cp x.py y.py && python3 y.py runs what x.py holds (awk -f y: y#awk, x#awk)
        more = {
            src + mark + part
            for base, mark, part in (entry.partition("#") for entry in insp.ran_files)
            for src in insp.copied.get(base, ())
        }
        if more <= insp.ran_files:
            break
        insp.ran_files |= more
    copied = tuple(sorted((dest, src) for dest, srcs in insp.copied.items() for src in srcs))
    for path, notes in insp.noted.items():  # sed -i '1a os.system(...)' x.py && python3 x.py
        if path in insp.ran_files:
            for cap in notes.values():
                caps.setdefault(cap.name, cap)
    noted = tuple(
        (path, tuple(notes[k] for k in sorted(notes))) for path, notes in sorted(insp.noted.items())
    )
    return Reading(
        tuple(map(caps.__getitem__, sorted(caps))), frozenset(insp.ran_files), written, copied, noted
    )


_HEREDOC_ESCAPE_RE: Final = re.compile(r"\\([$`\\\n])")
# What starts an expansion in a here-document: a $ before a name, digit, special parameter, { or
# (, and a backquote. A $ before anything else ("...about\.py$", a regex's end) is itself.
_HEREDOC_EXPANSION_RE: Final = re.compile(r"\$[A-Za-z0-9_@*#?$!{(-]|`")


def _heredoc_escape(m: re.Match[str]) -> str:
    """In a here-document with an unquoted delimiter, ``\\`` before ``$``, a backquote, ``\\`` or
    a newline is removed (with the newline: the lines are joined); any other stays."""
    return "" if m.group(1) == "\n" else m.group(1)


def _unknown_written_and_run(insp: Inspection) -> None:
    """``python3 gen.py > x.sh; sh x.sh``: a file this command line writes with text it does not
    hold (a program's output, a pipe through tee) and then runs is code nobody has read: doubt.
    The run-file checks read the file as it was before the call."""
    from gatekeeper.inspectors.written_code import code_kind  # it imports this module

    if not insp.captured:
        return
    trees = [t for t in map(shell_runs.split_tree, insp.ran_files) if t is not None]
    for path in sorted(insp.captured):
        ran = path in insp.ran_files or any(e.partition("#")[0] == path for e in insp.ran_files)
        if not ran and trees:  # python3 gen.py > conftest.py; pytest
            kind = code_kind(path, "")
            ran = any(path.startswith(d) and kind in kinds for d, kinds in trees)
        if ran:
            insp.opaque(f"{path} is written by this command line with text not known, then run")


def _written_and_run(insp: Inspection) -> None:
    """``cat > x.py <<'EOF' ... EOF; python3 x.py``: code written and run in one command line is
    read as if ``file.write`` had written it (``written_code``)."""
    from gatekeeper.inspectors.written_code import analyse_written, imported_paths  # they import this module

    analyses = {path: analyse_written(path, insp.written[path][0]) for path in sorted(insp.written)}
    runs = set(insp.ran_files)
    for _ in range(4):  # main.py written to import helper.py, written too: helper's code runs
        trees = [t for t in map(shell_runs.split_tree, runs) if t is not None]
        more = {
            p
            for path, analysis in analyses.items()
            if path in runs or any(path.startswith(d) and analysis.kind in k for d, k in trees)
            for p in imported_paths(path, analysis.kind, analysis.imports)
        }
        if more <= runs:
            break
        runs |= more
    trees = [t for t in map(shell_runs.split_tree, runs) if t is not None]
    for path, analysis in analyses.items():
        for where, code in ((path, analysis), *analysis.parts):  # go test ./... runs main.go's code
            if where in runs or any(where.startswith(d) and code.kind in k for d, k in trees):
                for cap in code.capabilities:
                    insp.add(cap.name, f"{path}, written by this command: {cap.evidence}")


def reading(value: object, workspace: str) -> Reading | None:
    """The cached reading of a ``{cmd, cwd?}`` (as the inspector made it); None for a wrong shape."""
    if not isinstance(value, dict) or not isinstance(value.get("cmd"), str):
        return None
    cwd = value.get("cwd")
    if cwd is None:
        return _read_command(value["cmd"], workspace)
    if not isinstance(cwd, str):
        return None
    start = normalize_path(cwd, workspace)
    return _read_command(value["cmd"], UNKNOWN_CWD if start is None else start)


def files_run(value: object, workspace: str) -> frozenset[str]:
    """The workspace files a ``{cmd, cwd?}`` runs as code (see ``shell_runs``), from the same
    cached reading the inspector made; an argument of the wrong shape runs nothing known."""
    read = reading(value, workspace)
    return read.files_run if read is not None else frozenset()


# Pure in (command, cwd), and a walk (after bashlex, ~200 us) is not free: agents repeat themselves.
_read_cached = functools.lru_cache(maxsize=2048)(_read)

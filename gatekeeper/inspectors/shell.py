"""Shell inspector: every program a command line would run, and what it would do.

A command line is parsed with bashlex (a real bash grammar, never regexes for
structure) and walked in full: lists, pipes, subshells, substitutions, ``bash -c``
and ``eval`` strings (recursively, depth-limited), and wrappers such as ``sudo``
or ``env`` whose argument is the real program. Anything whose meaning is only
known at run time (``$S$H``, a non-literal ``-c`` string, a parse failure)
becomes ``shell.opaque``: this inspector fails closed, never open.
"""

from __future__ import annotations

import functools
import posixpath
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

import bashlex

from gatekeeper.inspectors import shell_network
from gatekeeper.inspectors import shell_programs as P
from gatekeeper.inspectors.paths import credential_classes, normalize_path, path_classes
from gatekeeper.inspectors.shell_programs import Handler, Word
from gatekeeper.inspectors.url import host_class_capabilities, normalize_host, url_capabilities
from gatekeeper.models import Capability

if TYPE_CHECKING:
    from gatekeeper.inspectors import InspectContext

__all__ = ["MAX_DEPTH", "MAX_INPUT", "Word", "inspect_shell"]

MAX_INPUT: Final = 64 * 1024
MAX_DEPTH: Final = 8
CACHE_MAX_INPUT: Final = 4096  # bounds the cache at ~8 MiB of keys
MAX_URLS: Final = 64
EVIDENCE_MAX: Final = 200

_URL_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]*")
_URL_IN_EXPANSION_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`()]*")
_ASSIGN_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\+?=")
_WRITE_REDIRECTS: Final = frozenset({">", ">>", ">|", "&>", "&>>", ">&", "<>"})
_HARMLESS_TARGETS: Final = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty"})
_EXPANSION_KINDS: Final = frozenset({"parameter", "commandsubstitution", "processsubstitution"})
_SSH_DIR_RE: Final = re.compile(r"(?:^|[/=:~])\.ssh(?:/|$)")
HANDLERS: Final[dict[str, Handler]] = {**P.HANDLERS, **shell_network.HANDLERS}


class Inspection:
    """Accumulates capabilities for one shell argument; one instance per call."""

    def __init__(self, cwd: str) -> None:
        self.cwd = cwd
        self.caps: dict[str, Capability] = {}
        self.urls = 0
        self.downloaded: set[str] = set()

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

    # -- parsing -----------------------------------------------------------
    def source(self, text: str, depth: int) -> frozenset[str]:
        """Parse and walk one script; returns the program families it runs."""
        if depth > MAX_DEPTH:
            self.opaque(f"nested deeper than {MAX_DEPTH} levels: {text}")
            return frozenset()
        if len(text) > MAX_INPUT or "\x00" in text:
            self.opaque("script too long or contains NUL")
            return frozenset()
        if not text.strip():
            return frozenset()
        try:
            trees: list[Any] = bashlex.parse(text)
        except Exception as exc:  # bashlex raises ParsingError, NotImplementedError, RecursionError...
            self.opaque(f"unparseable ({type(exc).__name__}: {exc}): {text}")
            return frozenset()
        ran: set[str] = set()
        for tree in trees:
            ran |= self.node(tree, depth)
        return frozenset(ran)

    def node(self, n: Any, depth: int) -> set[str]:
        kind: str = n.kind
        if kind == "command":
            return self.command(n, depth)
        if kind == "pipeline":
            return self.pipeline(n, depth)
        if kind in ("list", "if", "for", "while", "until", "function"):
            parts: list[Any] = n.parts
        elif kind == "compound":
            parts = list(n.list) + list(getattr(n, "redirects", []))
        elif kind in ("word", "assignment"):
            return set(self.word(n, depth).runs)
        elif kind == "redirect":
            return self.redirect(n, depth, frozenset())
        elif kind in ("commandsubstitution", "processsubstitution"):
            return self.node(n.command, depth)
        elif kind in ("reservedword", "operator", "pipe", "tilde", "heredoc"):
            return set()
        else:
            self.opaque(f"unsupported shell construct {kind!r}")
            return set()
        ran: set[str] = set()
        for part in parts:
            ran |= self.node(part, depth)
        return ran

    def word(self, n: Any, depth: int) -> Word:
        """A Word for a bashlex word node, walking any substitutions it contains."""
        runs: set[str] = set()
        literal = True
        for part in getattr(n, "parts", []):
            if part.kind in _EXPANSION_KINDS:
                literal = False
            if part.kind == "parameter" and ("$(" in part.value or "`" in part.value):
                self.opaque(f"command substitution inside ${{...}}: {n.word}")
            elif part.kind in ("commandsubstitution", "processsubstitution"):
                runs |= self.node(part.command, depth)
        return Word(n.word, literal, frozenset(runs))

    # -- structure ---------------------------------------------------------
    def pipeline(self, n: Any, depth: int) -> set[str]:
        elements = [p for p in n.parts if p.kind not in ("pipe", "reservedword")]
        sets = [self.node(e, depth) for e in elements]
        upstream: set[str] = set()
        for i, ran in enumerate(sets):
            if P.STDIN_EXEC in ran:
                if upstream & P.DOWNLOADERS:
                    self.add("net.download_exec", "download piped into an interpreter")
                if P.DECODES in upstream:
                    self.opaque("decoded data piped into an interpreter")
                if i > 0:
                    self.piped_literal(elements[i - 1], depth)
            upstream |= ran
        if len(sets) > 1 and upstream & P.NET_CLIENTS and P.STDIN_EXEC in upstream:
            self.add("net.reverse_shell", "network client piped to or from a shell")
        return upstream

    def piped_literal(self, n: Any, depth: int) -> None:
        """``echo 'ssh -R ...' | sh``: a literal script piped into a shell is still readable."""
        if n.kind != "command":
            return
        words = [self.word(p, depth) for p in n.parts if p.kind == "word"]
        if not words or words[0].text not in ("echo", "printf") or not all(w.literal for w in words):
            return
        args = [w.text for w in words[1:] if not w.text.startswith("-")]
        if any("\\" in a or (words[0].text == "printf" and "%" in a) for a in args):
            self.opaque("escaped text piped into an interpreter")
            return
        self.source(" ".join(args), depth + 1)

    def command(self, n: Any, depth: int) -> set[str]:
        words: list[Word] = []
        redirects: list[Any] = []
        ran: set[str] = set()
        for part in n.parts:
            if part.kind == "word":
                words.append(self.word(part, depth))
            elif part.kind == "assignment":
                w = self.word(part, depth)
                ran |= w.runs
                self.assignment(w, depth)
            elif part.kind == "redirect":
                redirects.append(part)
            else:
                ran |= self.node(part, depth)
        for w in words:
            ran |= w.runs
        execd = self.run(words, depth) if words else frozenset()
        ran |= execd
        for r in redirects:
            ran |= self.redirect(r, depth, execd)
        return ran

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
            if execd & P.SHELLS:
                ran |= self.source(value, depth + 1)
            elif "$(" in value or "`" in value:
                self.opaque("command substitution in a here-document")
            return ran
        if r.type == "<<<":
            if execd & P.SHELLS:
                ran |= self.source(text, depth + 1) if w.literal else set()
                if not w.literal:
                    self.opaque(f"non-literal here-string to a shell: {text}")
            return ran
        if text.startswith(("/dev/tcp/", "/dev/udp/")):
            self.add("net.reverse_shell", text)
            parts = text.split("/")
            if w.literal and len(parts) == 5:
                self.connect(parts[3], parts[4], text)
            else:
                self.opaque(f"unknowable network redirect {text}")
            return ran
        if r.type in _WRITE_REDIRECTS:
            self.write_target(w, f"{r.type} {text}")
            if execd & P.DOWNLOADERS and w.literal:
                self.remember_download(text)
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
        if base in ("", ".", ".."):
            self.opaque(f"not a program: {t}")
            return None
        return base

    def run(self, argv: Sequence[Word], depth: int) -> frozenset[str]:
        """Record one simple command (after assignments); returns the families it runs."""
        if depth > MAX_DEPTH:
            self.opaque(f"wrappers nested deeper than {MAX_DEPTH}: {' '.join(w.text for w in argv)}")
            return frozenset()
        args = argv[1:]
        self.scan(args)
        name = self.program(argv[0])
        if name is None:
            return frozenset()
        evidence = " ".join(w.text for w in argv)
        self.add(f"proc.exec:{name}", evidence)
        family = P.family(name)
        ran = {family}
        for cap in P.TABLE_CAPS.get(family, ()):
            self.add(cap, evidence)
        if family in P.INTERPRETERS:
            if any(w.runs & P.DOWNLOADERS for w in args):
                self.add("net.download_exec", evidence)
            first = next((w for w in args if not w.text.startswith("-")), None)
            if first is not None and first.literal and self.is_downloaded(first.text):
                self.add("net.download_exec", evidence)
        if self.is_downloaded(argv[0].text):
            self.add("net.download_exec", evidence)
        handler = HANDLERS.get(family)
        if handler is not None:
            ran |= handler(self, name, list(args), depth)
        return frozenset(ran)

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
        elif name in P.COMMAND_VARS:
            if w.literal:
                self.source(value, depth + 1)
            else:
                self.opaque(f"non-literal command in {name}: {w.text}")
        self.scan([Word(value, w.literal)])

    # -- words -------------------------------------------------------------
    def scan(self, args: Iterable[Word]) -> None:
        """URLs, mining pools, credential paths and inline reverse shells inside argument words."""
        for w in args:
            t = w.text
            if "://" in t:
                for m in (_URL_RE if w.literal else _URL_IN_EXPANSION_RE).finditer(t):
                    if self.urls >= MAX_URLS:
                        self.opaque("too many URLs to inspect")
                        break
                    self.urls += 1
                    for cap in url_capabilities(m.group()):
                        self.add(cap.name, cap.evidence)
                low = t.lower()
                if any(s in low for s in P.STRATUM):
                    self.add("crypto.mine", t)
            if len(t) > 16 and P.looks_like_reverse_shell(t):
                self.add("net.reverse_shell", t)
            if w.literal:
                self.classify_word(t)

    def classify_word(self, t: str) -> None:
        if "authorized_keys" in t or _SSH_DIR_RE.search(t):
            self.add("cred.ssh", t)
        if t.startswith("-"):
            t = t.partition("=")[2]
        if not t or "://" in t or len(t) > 1024 or any(c.isspace() for c in t):
            return
        norm = normalize_path(t, self.cwd)
        if norm is not None:
            for cls in credential_classes(norm):
                self.add(cls, t)

    def write_target(self, w: Word, evidence: str) -> None:
        """``fs.write`` and the write classes for a literal target; unknowable targets are opaque."""
        if not w.literal:
            self.opaque(f"write target not known statically: {evidence}")
            return
        norm = normalize_path(w.text, self.cwd)
        if norm is None:
            self.opaque(f"unusable write target: {evidence}")
            return
        if norm in _HARMLESS_TARGETS or norm.startswith("/dev/fd/"):
            return
        self.add(f"fs.write:{norm}", evidence)
        for cls in path_classes(norm, write=True):
            self.add(cls, evidence)

    def remember_download(self, path: str) -> None:
        norm = normalize_path(path, self.cwd)
        if norm is not None:
            self.downloaded.add(norm)

    def is_downloaded(self, path: str) -> bool:
        if not self.downloaded or "/" not in path:
            return False
        return normalize_path(path, self.cwd) in self.downloaded


def inspect_shell(value: object, ctx: InspectContext) -> list[Capability]:
    """Inspector for a shell command line."""
    if not isinstance(value, str):
        return [Capability("inspect.invalid", f"command must be a string, not {type(value).__name__}")]
    if len(value) <= CACHE_MAX_INPUT:
        return list(_inspect_cached(value, ctx.workspace))
    return list(_inspect(value, ctx.workspace))


def _inspect(command: str, cwd: str) -> tuple[Capability, ...]:
    insp = Inspection(cwd)
    if len(command) > MAX_INPUT:
        insp.opaque(f"command longer than {MAX_INPUT} characters")
    else:
        try:
            insp.source(command, 0)
        except RecursionError:
            insp.opaque("command nested too deeply to inspect")
    return tuple(sorted(insp.caps.values()))


# Pure in (command, cwd), and bashlex costs ~200 us a parse: agents repeat themselves.
_inspect_cached = functools.lru_cache(maxsize=2048)(_inspect)

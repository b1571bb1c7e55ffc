"""Default to doubt: what each option and environment variable of an allowed program does.

A program the pack allows is only as safe as the options it is given: ``sort
--compress-program=sh``, ``git -c core.pager=...``, ``curl -x proxy``, ``make CC=...``. So every
such program has a ``Table`` (in ``shell_tables``) naming each option it knows, with its
``Effect`` and the reason, and one walker (``check``) reads an argv against it. A known dangerous
option becomes its capability; an option the table does not know is ``shell.opaque`` (doubt,
escalated by the pack), never silence. Environment variables are read the same way, from
``ENV`` (exact names) and ``ENV_FAMILIES`` (name patterns such as ``GIT_*`` or ``*_proxy``).

The walker does not replace the program handlers (``shell_programs``, ``shell_code``...): an
option they read in full is ``HANDLED`` here, so that each fact has one reader.
"""

from __future__ import annotations

import enum
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from gatekeeper.inspectors.shell_programs import Word, is_secret_name, is_stdin_path
from gatekeeper.inspectors.url import url_capabilities

if TYPE_CHECKING:
    from gatekeeper.inspectors.shell import Inspection

__all__ = [
    "ENV",
    "Effect",
    "Opt",
    "Table",
    "check",
    "check_env",
    "git_config",
    "is_stdin_path",
    "opts",
]


class Effect(enum.Enum):
    """What an option (or variable) makes its program do; the walker turns each into capabilities."""

    SAFE = "safe"  # nothing beyond what the program does anyway
    HANDLED = "handled"  # read in full by the program's handler (shell_programs, shell_code...)
    READ = "read"  # its value is a file read: fs.read and the path's classes
    WRITE = "write"  # its value (or, without one, anywhere) is written: fs.write
    EXEC = "exec"  # its value is a command the program runs: proc.exec_hook, and the command read
    CONNECT = "connect"  # its value is a destination: a URL, host:port or scp-like host:path
    PROXY = "proxy"  # its value is a proxy every connection goes through: net.proxy and the proxy
    REMOTE = "remote"  # its value is a file, or host:path reached with rsh/ssh (tar -f, git remotes)
    DATA = "data"  # its value is sent, or names a file sent in its place (curl -d @f): Opt.syntax says how
    DOUBT = "doubt"  # cannot be judged statically (a config file, an include): shell.opaque
    PROGRAM = "program"  # an interpreter by path (uv --python /tmp/x): that file runs, as a program


@dataclass(frozen=True, slots=True)
class Opt:
    """One option: its effect, whether it takes a value (``=`` in the spec), and why."""

    effect: Effect
    value: bool
    reason: str
    attached: bool = False  # an optional value, only ever attached (sed -i.bak, git grep -Ocmd)
    ends: bool = False  # the rest of the argv is not this program's (python -c CODE ARGS, -m MOD ARGS)
    syntax: str = ""  # DATA: how the value names a file (see sent_files)


@dataclass(frozen=True, slots=True)
class Table:
    """One program's options, read by ``check``.

    ``stop``: after this many operands the rest is someone else's argv (a script's arguments, the
    command a wrapper runs); None: options may follow operands (GNU permutation). ``operands``:
    what every operand is (SAFE: files or names, read elsewhere; CONNECT: URLs, curl-style).
    ``subcommands``: the first operand picks a table (git, pip...); an unknown one is doubt.
    """

    options: Mapping[str, Opt]
    stop: int | None = None
    operands: Effect = Effect.SAFE
    scheme: str = "http"  # CONNECT operands without one
    subcommands: Mapping[str, Table] | None = None
    single_dash_long: bool = False  # find -name, go -race, cmake -DX=1: whole words first
    numeric: bool = False  # head -5, git log -3: a count as an option
    prefixes: tuple[tuple[str, Opt], ...] = ()  # -DVAR=..., -I<dir>: options spelled as a prefix
    remote_operand: int | None = None  # this operand (0-based) is a repository: REMOTE
    # find -exec CMD ... ; : a command up to ; or + (its handler reads it)
    commands: frozenset[str] = frozenset()
    old_style: bool = False  # tar xvf F: a first word without a dash is letters (see old_style_args)
    long_names: tuple[str, ...] = field(init=False)  # for GNU-style unambiguous abbreviations
    risky: bool = field(init=False)  # any option that is not SAFE/READ/HANDLED

    def __post_init__(self) -> None:
        object.__setattr__(self, "long_names", tuple(sorted(k for k in self.options if k.startswith("--"))))
        quiet = (Effect.SAFE, Effect.READ, Effect.HANDLED)
        risky = any(o.effect not in quiet for o in self.options.values()) or self.operands is not Effect.SAFE
        object.__setattr__(self, "risky", risky or bool(self.subcommands))


def old_style_args(tbl: Table, args: list[Word]) -> list[Word]:
    """``tar xvfC a.tar dir``: the first word, without a dash, is option letters; each letter that
    takes a value takes the next word, in order. Spelled out as ``-x -v -f a.tar -C dir`` so that
    the walker, the handler and the file readers all read the same options (GNU tar's rule)."""
    if not tbl.old_style or not args or not args[0].literal:
        return args
    first = args[0].text
    if not first or first[0] == "-" or not first.isalnum():
        return args
    out: list[Word] = []
    k = 1
    for ch in first:
        out.append(Word("-" + ch))
        spec = tbl.options.get("-" + ch)
        if spec is not None and spec.value and k < len(args):
            out.append(args[k])
            k += 1
    return [*out, *args[k:]]


def opts(spec: str, effect: Effect = Effect.SAFE, reason: str = "harmless") -> dict[str, Opt]:
    """``"-n= --lines= -q -i? -c=!"``: ``=`` takes a value, ``?`` an optional attached one, ``!``
    ends the options (what follows belongs to the code or module it names)."""
    out: dict[str, Opt] = {}
    for name in spec.split():
        ends = name.endswith("!")
        name = name.rstrip("!")
        bare = name.rstrip("=?")
        out[bare] = Opt(effect, name.endswith("="), reason, name.endswith("?"), ends)
    return out


def data(spec: str, syntax: str, reason: str) -> dict[str, Opt]:
    """Options whose value is sent, in curl's syntax ``syntax`` for naming files (see ``sent_files``)."""
    return {k: Opt(Effect.DATA, o.value, reason, syntax=syntax) for k, o in opts(spec).items()}


def table(*groups: Mapping[str, Opt], **kw: Any) -> Table:
    """A Table of the merged option groups; ``kw`` are Table's other fields (checked by Table)."""
    merged: dict[str, Opt] = {}
    for g in groups:
        merged.update(g)
    return Table(MappingProxyType(merged), **kw)


_BRACKETED_RE: Final = re.compile(r"(?:[^@/:\s]+@)?\[([0-9A-Fa-f:.]+)\]:")
_HOSTISH_RE: Final = re.compile(
    r"(?:[^@/\s]+@)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.\-_]*)(?::\d{1,5})?(?:[/?#].*)?"
)


def scp_host(text: str) -> str | None:
    """The host of an scp-like ``[user@]host:path``, else None.

    git, tar, scp and rsync on Linux all use one rule: a colon with something before it and no
    slash before it is a remote reached over ssh/rsh (git's ``url_is_local_not_ssh``, tar's
    ``_remdev``). There are no drive letters: ``c:/x.tar`` is the host ``c``. What stands before
    the colon is returned as is, so a name that is no clean host makes ``connect`` doubt.
    """
    if "://" in text:
        return None
    m = _BRACKETED_RE.match(text)
    if m is not None:
        return m.group(1)
    colon = text.find(":")
    if colon <= 0 or "/" in text[:colon]:
        return None
    return text[:colon].rpartition("@")[2]


def destination(insp: Inspection, w: Word | None, evidence: str, *, scheme: str = "http") -> None:
    """A value that names where to connect: a URL, ``host[:port][/path]`` (curl guesses http) or host:path."""
    if w is None:
        insp.opaque(f"missing destination: {evidence}")
        return
    if not w.literal:
        insp.opaque(f"destination not known statically: {evidence}")
        return
    t = w.text
    if "://" in t:
        for cap in url_capabilities(t):
            insp.add(cap.name, cap.evidence)
        scheme_name, _, rest = t.partition("://")
        if not scheme_name.lower().startswith("http"):  # socks5://h:p: still a connection to h
            hostport = rest.split("/", 1)[0].rpartition("@")[2]
            host, _, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "1080")
            if host and port.isdigit():
                insp.connect(host.strip("[]"), port, evidence)
        return
    if t.startswith(("/", "./", "../", "~")) or t in (".", "-", ""):
        return  # a local path (pip -f ./wheels, git clone ../other)
    if _HOSTISH_RE.fullmatch(t) is None:
        insp.opaque(f"destination not understood: {evidence}")
        return
    for cap in url_capabilities(f"{scheme}://{t}"):
        insp.add(cap.name, cap.evidence)


def remote(insp: Inspection, w: Word | None, evidence: str) -> None:
    """A repository or archive that may be ``host:path`` (ssh/rsh) or a URL; a plain path is local."""
    if w is None:
        return
    if not w.literal:
        insp.opaque(f"repository or archive not known statically: {evidence}")
        return
    host = scp_host(w.text)
    if host is not None:
        insp.connect(host, 22, evidence)
    elif "://" in w.text:
        destination(insp, w, evidence)


def apply(insp: Inspection, fam: str, name: str, opt: str, spec: Opt, value: Word | None, depth: int) -> None:
    """Turn one option (or variable) of known effect into capabilities."""
    effect = spec.effect
    if effect is Effect.SAFE or effect is Effect.HANDLED:
        return
    evidence = f"{name} {opt}" + (f" {value.text}" if value is not None else "") + f": {spec.reason}"
    if effect is Effect.READ:
        if value is not None and not is_stdin_path(value.text):
            insp.read_path(value, evidence)
    elif effect is Effect.WRITE:
        if value is not None:
            insp.write_target(value, evidence)
        else:
            insp.add("fs.write:/", evidence)  # written anywhere: only "/" covers it
    elif effect is Effect.EXEC:
        insp.add(f"proc.exec_hook:{fam}", evidence)
        insp.add(f"proc.inline_code:{fam}", evidence)
        if value is not None and value.literal and value.text:
            insp.source(value.text, depth + 1)
        elif value is not None:
            insp.opaque(f"command not known statically: {evidence}")
    elif effect is Effect.CONNECT:
        destination(insp, value, evidence)
    elif effect is Effect.PROXY:
        insp.add("net.proxy", evidence)
        if value is not None and value.text.lower() not in ("", "none", "off", "no"):
            destination(insp, value, evidence)
    elif effect is Effect.REMOTE:
        remote(insp, value, evidence)
    elif effect is Effect.DATA:
        if value is not None:
            _sent(insp, spec.syntax, value, evidence)
    elif effect is Effect.PROGRAM:
        if value is not None and not value.literal:
            insp.opaque(f"interpreter not known statically: {evidence}")
        elif value is not None and "/" in value.text and not value.text.startswith(_SYSTEM_PROGRAMS):
            # a file the agent may have written (a version, a name or a system interpreter is not)
            insp.run([value], depth + 1)
    else:
        insp.opaque(evidence)


# Interpreters installed with the system, not files the agent writes (those are under CODE_ROOTS).
_SYSTEM_PROGRAMS: Final = ("/usr/", "/bin/", "/opt/", "/sbin/")
_OUTPUT_RE: Final = re.compile(r"%output\{(?:>>)?([^}]*)\}")
_FIELD_FILE_RE: Final = re.compile(r"[^=@<]*(?:=[@<]|@)")  # name=@f, name=<f, name@f (up to the file)


def sent_files(syntax: str, text: str) -> tuple[list[str], list[str], list[str]]:
    """(files read, files written, variables read) by one value of a curl option, by its syntax.

    ``at``: ``@file`` sends the file (``-d``, ``--data-binary``, ``--json``, ``-H``, ``-w``), and a
    ``-w`` format's ``%output{file}`` (or ``%output{>>file}``) writes there. ``field``: ``@file``,
    ``name@file`` (``--data-urlencode``, ``--url-query``, ``--variable``), ``name=@file`` and
    ``name=<file`` (``-F``; up to ``;type=``...), and ``%NAME`` imports a variable
    (``--variable``). ``cookie``: a value without ``=`` is a cookie file read (``-b``)."""
    reads: list[str] = []
    variables: list[str] = []
    writes = [m.group(1) for m in _OUTPUT_RE.finditer(text)] if syntax == "at" else []
    if syntax == "cookie":
        if "=" not in text:
            reads.append(text)
    elif text.startswith("@"):
        reads.append(text[1:])
    elif syntax == "field" and text.startswith("%"):
        variables.append(re.split(r"[=@]", text[1:], maxsplit=1)[0])
    elif syntax == "field" and (m := _FIELD_FILE_RE.match(text)) is not None:
        path = text[m.end() :]
        if m.group().endswith(("=@", "=<")):
            path = path.split(";", 1)[0]
        reads.append(path.strip('"'))
    return [r for r in reads if r and not is_stdin_path(r)], writes, variables


# Request headers that re-target a request at the server or at the CDN in front of it (the names
# http.fetch's manifest refuses): ``Host: other.example`` sent to an allow-listed name reaches
# another site behind the same CDN (domain fronting), and the X-Forwarded/Original family reroutes
# inside proxies. ``header`` syntax: sent as ``at`` is, and a routing header is ``net.proxy``.
_ROUTING_HEADER_RE: Final = re.compile(
    r"\s*(host|:authority|forwarded|x-forwarded-[a-z-]*|x-real-ip|x-original-url|x-rewrite-url|"
    r"x-original-host|x-host|x-http-host-override|proxy-[a-z-]*|via)\s*:(.*)",
    re.IGNORECASE | re.DOTALL,
)
_HOST_HEADERS: Final = frozenset(
    {"host", ":authority", "x-forwarded-host", "x-original-host", "x-host", "x-http-host-override"}
)
_FORWARDED_HOST_RE: Final = re.compile(r"(?i)host=\"?([^;,\"\s]+)")


def _routing_header(insp: Inspection, value: Word, evidence: str) -> None:
    """``-H 'Host: x'``: the request goes where the header says, through the URL's address."""
    if value.text.startswith("@"):  # -H @file: one header per line, Host: among them perhaps
        insp.opaque(f"headers read from a file may re-target the request: {evidence}")
        return
    m = _ROUTING_HEADER_RE.match(value.text)
    if m is None:
        if not value.literal and value.text.startswith(("$", "`")):
            insp.opaque(f"a header not known statically may route the request: {evidence}")
        return
    insp.add("net.proxy", f"a routing header sends the request elsewhere: {evidence}")
    name, rest = m.group(1).lower(), m.group(2).strip()
    if not value.literal:
        return
    if name == "forwarded":
        hosts = _FORWARDED_HOST_RE.findall(rest)
    elif name in (
        "host",
        ":authority",
        "x-forwarded-host",
        "x-original-host",
        "x-host",
        "x-http-host-override",
    ):
        hosts = [rest]
    else:
        hosts = []
    for host in hosts:
        if host.startswith("[") and "]" in host:
            host = host[1 : host.find("]")]
        elif host.count(":") == 1:
            host = host.partition(":")[0]
        insp.host_class(host, evidence)


def _sent(insp: Inspection, syntax: str, value: Word, evidence: str) -> None:
    """A value curl sends: the files it names are read, ``%output{}`` targets written, imported
    variables read. A value not known statically may name any file: doubt, unless its known
    beginning rules that out (``-d "a=$X"`` is text)."""
    if syntax == "header":
        _routing_header(insp, value, evidence)
        syntax = "at"
    text = value.text
    if not value.literal:
        cut = min((k for k in (text.find("$"), text.find("`")) if k >= 0), default=len(text))
        head = text[:cut]
        decided = head[:1] not in ("", "@", "%") and (
            syntax == "at" or (syntax == "field" and _FIELD_FILE_RE.match(head) is None and "=" in head)
        )
        if not decided or "%output{" in text:
            insp.opaque(f"a value that may name a file is not known statically: {evidence}")
            return
        text = head
    reads, writes, variables = sent_files(syntax, text)
    for path in reads:
        insp.read_path(Word(path), evidence)
    for path in writes:
        insp.write_target(Word(path), evidence)
    for name in variables:
        if is_secret_name(name):
            insp.add("cred.env", f"a secret variable is sent: {evidence}")


def _long(table: Table, name: str) -> tuple[str, Opt] | None:
    """Exact, ``--no-X`` of a known ``--X``, or a unique abbreviation (GNU getopt and git accept both)."""
    spec = table.options.get(name)
    if spec is not None:
        return name, spec
    if name.startswith("--no-") and ("--" + name[5:]) in table.options:
        return name, Opt(Effect.SAFE, False, "turns a known option off")
    hits = [n for n in table.long_names if n.startswith(name)]
    if len(hits) == 1:
        return hits[0], table.options[hits[0]]
    return None


def _prefixed(table: Table, t: str) -> tuple[str, Opt] | None:
    for prefix, spec in table.prefixes:
        if t.startswith(prefix) and len(t) > len(prefix):
            return prefix, spec
    return None


def check(
    insp: Inspection, tables: Mapping[str, Table], fam: str, name: str, args: list[Word], depth: int
) -> None:
    """Read ``args`` against ``fam``'s table (if it has one): every option known, or doubt."""
    spec = tables.get(fam)
    if spec is not None:
        walk(insp, spec, fam, name, args, depth)


def walk(insp: Inspection, tbl: Table, fam: str, name: str, args: list[Word], depth: int) -> None:
    n = len(args)
    i = 0
    operands = 0
    while i < n:
        w = args[i]
        t = w.text
        i += 1
        if t == "--" and w.literal:
            _operands(insp, tbl, fam, name, args[i:], operands, depth)
            return
        if len(t) < 2 or t[0] != "-" or (not w.literal and not _literal_head(t)):
            if not w.literal and tbl.risky and w.static is None and lister_roots(w.text) is None:
                insp.opaque(f"{name}: {t} could expand to any option")
            if tbl.subcommands is not None and operands == 0:
                sub = tbl.subcommands.get(t) if w.literal else None
                if sub is None:
                    insp.opaque(f"{name}: subcommand {t!r} is not in its table")
                    return
                walk(insp, sub, fam, f"{name} {t}", args[i:], depth)
                return
            if tbl.stop == 0:
                return  # the first operand starts someone else's argv (a wrapper's command)
            _operand(insp, tbl, name, w, operands)
            operands += 1
            if tbl.stop is not None and operands >= tbl.stop:
                return  # the rest is the script's or the command's
            continue
        if tbl.numeric and t[1:].isdigit():
            continue
        found: tuple[str, Opt] | None
        value: Word | None = None
        if t.startswith("--") or (
            len(t) > 2 and (tbl.single_dash_long or t.partition("=")[0] in tbl.options)
        ):
            key, eq, val = t.partition("=")
            found = _long(tbl, key) if key.startswith("--") else _single(tbl, key)
            if found is None:
                found = _prefixed(tbl, t)
                if found is not None:
                    apply(insp, fam, name, found[0], found[1], Word(t[len(found[0]) :], w.literal), depth)
                    continue
                insp.opaque(f"{name}: option {key} is not in its table")
                continue
            if found[0] != key and found[1].effect is Effect.HANDLED:
                # its handler reads the full spelling only: --to-comm=sh must not slip past it
                insp.opaque(f"{name}: {key} abbreviates {found[0]}, which is read only spelled out")
                continue
            if key in tbl.commands:
                while i < n and args[i].text not in (";", "+"):
                    i += 1
                i += 1
                continue
            if eq:
                value = Word(val, w.literal)
            elif found[1].value:
                value = args[i] if i < n else None
                i += 1
            apply(insp, fam, name, found[0], found[1], value, depth)
            if found[1].ends:
                return
            continue
        i = _cluster(insp, tbl, fam, name, args, i, depth)
        if i < 0:
            return


def _single(tbl: Table, key: str) -> tuple[str, Opt] | None:
    spec = tbl.options.get(key)
    return (key, spec) if spec is not None else None


def _literal_head(t: str) -> bool:
    """``--output=$X``: the option's name is literal even if its value is not."""
    head = t.partition("=")[0]
    return "$" not in head and "`" not in head and "=" in t


def _cluster(insp: Inspection, tbl: Table, fam: str, name: str, args: list[Word], i: int, depth: int) -> int:
    """``-abc``, ``-n5``, ``-o file``: each letter known, the first taking a value ends the cluster.

    Returns the next index, or -1 when an option ended the program's own options."""
    w = args[i - 1]
    t = w.text
    found = _prefixed(tbl, t)
    if found is not None and found[0] not in tbl.options:
        apply(insp, fam, name, found[0], found[1], Word(t[len(found[0]) :], w.literal), depth)
        return i
    for j in range(1, len(t)):
        key = "-" + t[j]
        spec = tbl.options.get(key)
        if spec is None:
            if tbl.numeric and t[j:].isdigit():
                return i
            insp.opaque(f"{name}: option {key} (in {t}) is not in its table")
            return i
        if spec.attached:
            apply(insp, fam, name, key, spec, Word(t[j + 1 :], w.literal) if j + 1 < len(t) else None, depth)
            return i
        if spec.value:
            if j + 1 < len(t):
                value: Word | None = Word(t[j + 1 :], w.literal)
            else:
                value = args[i] if i < len(args) else None
                i += 1
            apply(insp, fam, name, key, spec, value, depth)
            return -1 if spec.ends else i
        apply(insp, fam, name, key, spec, None, depth)
    return i


def _operand(insp: Inspection, tbl: Table, name: str, w: Word, index: int) -> None:
    if tbl.operands is Effect.CONNECT:
        if w.literal and "://" in w.text:
            return  # scan() already read every URL in the argv
        destination(insp, w, f"{name} {w.text}", scheme=tbl.scheme)
    elif tbl.remote_operand is not None and index == tbl.remote_operand:
        remote(insp, w, f"{name} {w.text}")


def _operands(
    insp: Inspection, tbl: Table, fam: str, name: str, rest: list[Word], start: int, depth: int
) -> None:
    for k, w in enumerate(rest):
        if tbl.stop is not None and start + k >= tbl.stop:
            return
        _operand(insp, tbl, name, w, start + k)


_LISTER_RE: Final = re.compile(
    r"\$\((git (?:ls-files|diff --name-only|ls-tree -r --name-only HEAD)|find|ls|fd)"
    r"((?: +[^\s;&|<>`$()'\"\\]+)*) *\)"
)
_FIND_TESTS: Final = ("-", "(", "!", ")")


def lister_roots(text: str) -> list[str] | None:
    """``$(git ls-files '*.py')``, ``$(find src -name x)``: a word that is only paths under known roots.

    Returns the directories the listed paths lie under (``.`` for git and a bare find or ls), or
    None when the word is anything else. Quotes inside are allowed only as bashlex left them.
    """
    m = _LISTER_RE.fullmatch(text.replace("'", "").replace('"', ""))
    if m is None:
        return None
    words = m.group(2).split()
    if m.group(1).startswith("git"):
        return ["."]
    roots: list[str] = []
    for word in words:
        if word.startswith(_FIND_TESTS):
            if m.group(1) == "find":
                break
            continue
        roots.append(word)
    return roots or ["."]


NAME_TESTS: Final = frozenset(
    {
        "-name",
        "-iname",
        "-path",
        "-ipath",
        "-wholename",
        "-iwholename",
        "-regex",
        "-iregex",
        "-lname",
        "-ilname",
    }
)
_GLOB_TESTS: Final = NAME_TESTS - {"-regex", "-iregex", "-lname", "-ilname"}


def find_patterns(words: list[str]) -> list[str]:
    """The last segment of each glob find's tests pick files by (``-name '*.env'``, ``-path
    '*/.ssh/*'``), not those it excludes (``-not -path '*/.*'``, ``! -name x``)."""
    out: list[str] = []
    for i, w in enumerate(words[:-1]):
        if w in _GLOB_TESTS and not (i > 0 and words[i - 1] in ("-not", "!")):
            segments = [s for s in words[i + 1].split("/") if s]
            out += segments[-2:]  # -path '*/.ssh/*': the folder is what it is aimed at
    return out


def lister_patterns(text: str) -> list[str]:
    """The names a lister word is limited to: find's tests (``find_patterns``), the pathspecs of
    ``git ls-files '*.env'``, fd's pattern. Only their last segments; [] for none."""
    m = _LISTER_RE.fullmatch(text.replace("'", "").replace('"', ""))
    if m is None:
        return []
    words = m.group(2).split()
    if m.group(1) == "find":
        return find_patterns(words)
    if m.group(1).startswith("git ls-files") or m.group(1) == "fd":
        return [p.rstrip("/").rsplit("/", 1)[-1] for p in words if not p.startswith("-") and p.rstrip("/")]
    return []


# -- environment -------------------------------------------------------------------
def _env(spec: str, effect: Effect, reason: str) -> dict[str, Opt]:
    return {n: Opt(effect, True, reason) for n in spec.split()}


ENV: Final[Mapping[str, Opt]] = MappingProxyType(
    {
        **_env(
            "GIT_AUTHOR_NAME GIT_AUTHOR_EMAIL GIT_AUTHOR_DATE GIT_COMMITTER_NAME GIT_COMMITTER_EMAIL "
            "GIT_COMMITTER_DATE GIT_TERMINAL_PROMPT GIT_PAGER_IN_USE GIT_FLUSH GIT_MERGE_AUTOEDIT "
            "GIT_OPTIONAL_LOCKS GIT_LITERAL_PATHSPECS GIT_NO_REPLACE_OBJECTS GIT_CEILING_DIRECTORIES "
            "GIT_DISCOVERY_ACROSS_FILESYSTEM GIT_PROGRESS_DELAY GIT_DEFAULT_HASH GIT_CONFIG_NOSYSTEM",
            Effect.SAFE,
            "identity, dates and prompts only",
        ),
        **_env("GIT_CONFIG_COUNT", Effect.SAFE, "the number of GIT_CONFIG_KEY_n pairs; each key is read"),
        **_env("GIT_CONFIG_PARAMETERS", Effect.HANDLED, "every key=value in it is read like git -c"),
        **_env(
            "GIT_CONFIG GIT_CONFIG_GLOBAL GIT_CONFIG_SYSTEM GIT_DIR GIT_WORK_TREE GIT_COMMON_DIR "
            "GIT_INDEX_FILE GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES GIT_NAMESPACE "
            "GIT_TEMPLATE_DIR GIT_EXEC_PATH GIT_ALLOW_PROTOCOL GIT_PROTOCOL_FROM_USER GIT_SSL_NO_VERIFY "
            "GIT_SSL_CAINFO GIT_TRACE GIT_TRACE2 GIT_TRACE_PACKET GIT_TRACE_SETUP GIT_REPLACE_REF_BASE",
            Effect.DOUBT,
            "another repository, config, template or protocol: what git then runs is not in the command",
        ),
        **_env(
            "GIT_ASKPASS SSH_ASKPASS GIT_SSH GIT_SSH_COMMAND GIT_PROXY_COMMAND GIT_EXTERNAL_DIFF "
            "GIT_PAGER GIT_EDITOR GIT_SEQUENCE_EDITOR PAGER EDITOR VISUAL RSYNC_RSH MANPAGER "
            "BROWSER LESSOPEN LESSCLOSE SUDO_ASKPASS SYSTEMD_PAGER",
            Effect.HANDLED,
            "a command a program runs: read as a command line",
        ),
        **_env(
            "PYTHONPATH",
            Effect.READ,
            "modules are imported from these directories",
        ),
        **_env(
            "PYTHONDONTWRITEBYTECODE PYTHONUNBUFFERED PYTHONHASHSEED PYTHONIOENCODING PYTHONUTF8 "
            "PYTHONFAULTHANDLER PYTHONDEVMODE PYTHONNOUSERSITE PYTHONOPTIMIZE "
            "PYTHONVERBOSE PYTHONTRACEMALLOC PYTHONASYNCIODEBUG PYTHONCOERCECLOCALE PYTHONSAFEPATH "
            "PYTHONINTMAXSTRDIGITS PYTHONMALLOC PYTHONDEBUG PYTHONBREAKPOINT_OFF",
            Effect.SAFE,
            "interpreter behaviour, no code or path",
        ),
        **_env(
            "PYTHONSTARTUP PYTHONHOME PYTHONUSERBASE PYTHONEXECUTABLE PYTHONPLATLIBDIR PYTHONBREAKPOINT "
            "PYTHONPYCACHEPREFIX PYTHONINSPECT",
            Effect.DOUBT,
            "names code or a tree the interpreter runs or writes",
        ),
        **_env(
            "HTTP_PROXY HTTPS_PROXY FTP_PROXY ALL_PROXY RSYNC_PROXY PIP_PROXY NPM_CONFIG_PROXY "
            "NPM_CONFIG_HTTPS_PROXY YARN_PROXY YARN_HTTPS_PROXY",
            Effect.PROXY,
            "every connection goes through this proxy",
        ),
        **_env("NO_PROXY", Effect.SAFE, "only narrows where a proxy is used"),
        **_env(
            "PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_FIND_LINKS NPM_CONFIG_REGISTRY YARN_REGISTRY "
            "UV_INDEX_URL UV_EXTRA_INDEX_URL UV_DEFAULT_INDEX UV_INDEX "
            "CARGO_REGISTRIES_CRATES_IO_PROTOCOL GOPROXY",
            Effect.CONNECT,
            "packages come from this index",
        ),
        **_env(
            "PIP_NO_CACHE_DIR PIP_DISABLE_PIP_VERSION_CHECK PIP_QUIET PIP_VERBOSE PIP_NO_INPUT "
            "PIP_PROGRESS_BAR PIP_ROOT_USER_ACTION PIP_BREAK_SYSTEM_PACKAGES PIP_PREFER_BINARY PIP_NO_COLOR",
            Effect.SAFE,
            "output and caching only",
        ),
        **_env(
            "PIP_CONFIG_FILE PIP_TRUSTED_HOST PIP_TARGET PIP_PREFIX PIP_SRC PIP_CERT PIP_CLIENT_CERT "
            "NPM_CONFIG_USERCONFIG NPM_CONFIG_GLOBALCONFIG NPM_CONFIG_SCRIPT_SHELL NPM_CONFIG_NODE_OPTIONS",
            Effect.DOUBT,
            "another config, trust anchor or install location",
        ),
        **_env("MAKEFLAGS MFLAGS GNUMAKEFLAGS", Effect.HANDLED, "read as make's own options and variables"),
        **_env(
            "PYTHONWARNINGS MPLBACKEND",
            Effect.HANDLED,
            "a warning category or a backend named by module: that module is imported (read by check_env)",
        ),
        **_env(
            "XDG_CONFIG_HOME XDG_CONFIG_DIRS OPENSSL_CONF OPENSSL_ENGINES OPENSSL_MODULES GCONV_PATH "
            "KUBECONFIG AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE MPLCONFIGDIR IPYTHONDIR "
            "JUPYTER_CONFIG_DIR JUPYTER_CONFIG_PATH MAVEN_OPTS GRADLE_OPTS JDK_JAVA_OPTIONS SBT_OPTS "
            "CLASSPATH LUA_INIT LUA_PATH LUA_CPATH PERL5DB PERLLIB PHPRC PHP_INI_SCAN_DIR R_PROFILE_USER "
            "R_ENVIRON_USER GEM_HOME GEM_PATH BUNDLE_GEMFILE ZDOTDIR INPUTRC DOCKER_CONFIG GNUPGHOME "
            "AWKPATH AWKLIBPATH LESS LESSKEY LESSKEYIN LESSKEY_CONTENT LESSEDIT HOME CARGO_HOME VIRTUAL_ENV",
            Effect.DOUBT,
            "another configuration directory (HOME: every program's dotfiles, a login shell's profile, "
            "Python's user site), or code a program loads (engines, agents, init code, credential "
            "helpers): what runs is not in the command",
        ),
        **_env("TAPE", Effect.REMOTE, "tar's archive when no -f is given: host:path is reached with rsh/ssh"),
        **_env("TAR_OPTIONS", Effect.HANDLED, "read as tar's own options (tar puts them before its argv)"),
        **_env(
            "PYTEST_PLUGINS PYTEST_ADDOPTS",
            Effect.DOUBT,
            "plugin modules pytest imports (by name, from the working directory too), or options naming them",
        ),
        **_env(
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD PYTEST_THEME PYTEST_THEME_MODE",
            Effect.SAFE,
            "fewer plugins, colours",
        ),
        **_env(
            "NODE_OPTIONS RUBYOPT PERL5OPT PERL5LIB RUBYLIB JAVA_TOOL_OPTIONS _JAVA_OPTIONS "
            "NODE_PATH PYTHONBREAKPOINT",
            Effect.DOUBT,
            "code the interpreter loads before the program",
        ),
        **_env(
            "BASH_ENV ENV LD_PRELOAD LD_AUDIT PROMPT_COMMAND",
            Effect.HANDLED,
            "code injected into every program started: read by the assignment itself",
        ),
        **_env(
            "GOFLAGS CGO_CFLAGS CGO_LDFLAGS CC CXX LD AR CPP RUSTC RUSTC_WRAPPER RUSTFLAGS "
            "CARGO_BUILD_RUSTC_WRAPPER CARGO_TARGET_DIR GOBIN GOPATH GOTOOLCHAIN COMPILER_PATH "
            "GCC_EXEC_PREFIX CCC_OVERRIDE_OPTIONS CCACHE_PREFIX CCACHE_COMPILER DISTCC_HOSTS "
            "CPATH C_INCLUDE_PATH CPLUS_INCLUDE_PATH OBJC_INCLUDE_PATH LIBRARY_PATH DEPENDENCIES_OUTPUT "
            "SUNPRO_DEPENDENCIES GCC_COMPARE_DEBUG",
            Effect.DOUBT,
            "the compiler, linker or flags a build runs, the folders it reads headers and libraries "
            "from, or a file it writes (the dependency output)",
        ),
        **_env(
            "GOOS GOARCH GOAMD64 GOARM GOARM64 GO386 GOMAXPROCS GOGC GOMEMLIMIT GODEBUG GOTRACEBACK "
            "GOEXPERIMENT GOTELEMETRY GOCOVERDIR GOTMPDIR",
            Effect.SAFE,
            "the target platform and the runtime's tuning",
        ),
        **_env("MAKEFILES", Effect.DOUBT, "makefiles make reads before the project's own: their recipes run"),
        **_env(
            "CFLAGS CXXFLAGS CPPFLAGS LDFLAGS",
            Effect.HANDLED,
            "compiler flags (make, cmake, cc crates read them): those that load code are doubt",
        ),
    }
)
# Families: a variable matching one of these but missing from ENV is doubt (a new git or
# Python knob is not assumed harmless); anything else is an ordinary variable.
ENV_FAMILIES: Final[tuple[tuple[re.Pattern[str], Opt], ...]] = (
    (re.compile(r"GIT_CONFIG_KEY_\d+"), Opt(Effect.HANDLED, True, "a config key, read like git -c")),
    (re.compile(r"GIT_CONFIG_VALUE_\d+"), Opt(Effect.SAFE, True, "its key decides (GIT_CONFIG_KEY_n)")),
    (re.compile(r"[A-Z0-9_]*_PROXY", re.I), Opt(Effect.PROXY, True, "a proxy for connections")),
    (re.compile(r"GIT_.*"), Opt(Effect.DOUBT, True, "a git variable missing from the table")),
    (
        re.compile(r"GO[A-Z0-9]+|RUSTUP_.*|RUSTC_.*|RUSTDOC.*"),
        Opt(
            Effect.DOUBT,
            True,
            "a Go or Rust toolchain setting missing from the table (GOROOT, GOENV, GONOSUMDB, "
            "RUSTUP_TOOLCHAIN: another toolchain, configuration or unchecked modules)",
        ),
    ),
    (re.compile(r"PYTHON.*"), Opt(Effect.DOUBT, True, "a Python variable missing from the table")),
    (re.compile(r"PYTEST_.*"), Opt(Effect.DOUBT, True, "a pytest variable missing from the table")),
    (
        re.compile(r"LD_.*|DYLD_.*"),
        Opt(Effect.DOUBT, True, "the dynamic loader: what libraries every program loads"),
    ),
    (
        re.compile(r"(?:PIP|NPM_CONFIG|YARN|UV|CARGO|GO|POETRY|NODE)_.*"),
        Opt(Effect.DOUBT, True, "a package tool's setting missing from the table"),
    ),
    (
        re.compile(r"(?:SSL_CERT|CURL_CA|REQUESTS_CA)_.*|CURL_HOME|WGETRC|NETRC"),
        Opt(Effect.DOUBT, True, "a config or trust anchor for connections"),
    ),
)


COMPILER_FLAG_VARS: Final = frozenset({"CFLAGS", "CXXFLAGS", "CPPFLAGS", "LDFLAGS"})
# Compiler and linker flags that load or run code: a GCC/Clang plugin, another directory of the
# compiler's own programs, a wrapper every tool runs under, a specs file (which can run programs),
# a linker by path or a linker plugin.
_CODE_FLAGS_RE: Final = re.compile(
    r"(?:^|[\s,=])(?:-fplugin\b|-B(?!symbolic|static|dynamic)|-wrapper\b|--?specs\b|-fuse-ld=[^\s]*/|--ld-path\b|-Xclang\b|"
    r"-plugin\b|--plugin\b|-load\b|-iplugindir|-fpass-plugin\b|--config\b|-ccc-|--gcc-toolchain\b|"
    r"--gcc-install-dir\b|-ivfsoverlay\b|-fcompare-debug=)"
)


def compiler_flags(insp: Inspection, name: str, value: str, literal: bool) -> None:
    """``CFLAGS=-O2`` is data; ``CFLAGS=-fplugin=/tmp/x.so`` loads code into the compiler: doubt."""
    if not literal:
        insp.opaque(f"{name} not known statically: {value}")
    elif _CODE_FLAGS_RE.search(value):
        insp.opaque(f"{name}={value}: compiler flags that load or run code")


def warning_modules(value: str) -> list[str]:
    """``-W``/``PYTHONWARNINGS`` filters ``action:message:category:module:line``: a dotted
    category (``evil.Warning``) makes Python import its module (``evil``)."""
    out: list[str] = []
    for spec in value.split(","):
        fields = spec.split(":")
        category = fields[2].strip() if len(fields) > 2 else ""
        if "." in category:
            out.append(category.rpartition(".")[0])
    return out


def check_env(insp: Inspection, name: str, w: Word, value: str, depth: int) -> None:
    """One ``NAME=value`` (prefix, ``export``, ``env``): read like an option of every program after it."""
    upper = name.upper()
    spec = ENV.get(upper) or ENV.get(name)
    if spec is None:
        for pattern, family_spec in ENV_FAMILIES:
            if pattern.fullmatch(name):
                spec = family_spec
                break
    if spec is None or spec.effect is Effect.SAFE:
        return
    val = Word(value, w.literal)
    if upper == "GIT_CONFIG_PARAMETERS" or upper.startswith("GIT_CONFIG_KEY_"):
        if not w.literal:
            insp.opaque(f"git config not known statically: {w.text}")
            return
        pairs = _split(value) if upper == "GIT_CONFIG_PARAMETERS" else [value + "=?"]
        for pair in pairs:
            git_config(insp, pair, depth, evidence=f"{name}={value}")
        return
    if upper in ("MAKEFLAGS", "MFLAGS", "GNUMAKEFLAGS"):
        from gatekeeper.inspectors.shell_tables import make_words  # the tables import this module

        make_words(insp, name, value, w.literal, depth)
        return
    if upper == "TAR_OPTIONS":
        _tar_options(insp, name, value, w.literal, depth)
        return
    if upper in COMPILER_FLAG_VARS:
        compiler_flags(insp, name, value, w.literal)
        return
    if upper in ("PYTHONWARNINGS", "MPLBACKEND"):
        modules = warning_modules(value) if upper == "PYTHONWARNINGS" else [value.removeprefix("module://")]
        if not w.literal:
            insp.opaque(f"{name} not known statically: {w.text}")
        elif upper == "PYTHONWARNINGS" or value.startswith("module://"):
            from gatekeeper.inspectors.shell_runs import module_paths  # it imports this module

            insp.ran_files.update(p for m in modules for p in module_paths(insp, m))
        return
    if spec.effect is Effect.HANDLED:
        return
    if spec.effect is Effect.READ:
        parts = value.split(":") if w.literal else _path_list(insp, name, value)
        if parts is None:
            insp.opaque(f"{name} not known statically: {w.text}")
            return
        for part in filter(None, parts):
            insp.read_path(Word(part), f"{name}={value}: {spec.reason}")
        if upper == "PYTHONPATH":
            python_path(insp, [p for p in parts if p])
        return
    apply(insp, "env", name, "=", spec, val, depth)


def python_path(insp: Inspection, dirs: list[str]) -> None:
    """``PYTHONPATH=/tmp python3 -c 'import evil'``: modules are imported from these folders, so
    the Python written under them (in this command line, or by an earlier call) runs."""
    from gatekeeper.inspectors.shell_runs import tree  # it imports this module

    for d in dirs:
        insp.ran_files.update(tree(norm) for norm in insp.resolve(d, d, strict=False))


_HERE: Final = frozenset({"$(pwd)", "`pwd`", "$PWD", "${PWD}"})


def _path_list(insp: Inspection, name: str, value: str) -> list[str] | None:
    """``PYTHONPATH=$PYTHONPATH:$(pwd)``: a path list whose only expansions are its own inherited
    value (the environment Gatekeeper's runner gave, not set earlier in this command) and the working
    directory is known after all: the inherited part adds nothing, ``$(pwd)`` is ``.``. Anything
    else (another variable, another command's output) stays unknown (None)."""
    own = {f"${name}", f"${{{name}}}", f"${{{name}:-}}", f"${{{name}-}}"}
    out: list[str] = []
    for part in value.split(":"):
        if part in own and name not in insp.env:
            continue
        here = next((h for h in _HERE if part == h or part.startswith(h + "/")), None)
        if here is not None:
            part = "." + part[len(here) :]
        if here is not None and "$" not in part and "`" not in part:
            out.append(part)
        elif "$" in part or "`" in part or "\\" in part or '"' in part or "'" in part:
            return None
        else:
            out.append(part)
    return out


def _tar_options(insp: Inspection, name: str, value: str, literal: bool, depth: int) -> None:
    """``TAR_OPTIONS='--to-command=sh'``: options of every later tar, read as if given to it."""
    words = _split(value) if literal else None
    if not words or any(not t.startswith("-") for t in words[:1]):
        if value.strip():
            insp.opaque(f"{name} not understood or not known statically: {value}")
        return
    with insp.scope():
        insp.run([Word("tar"), *(Word(t) for t in words)], depth + 1)


def _split(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        return [text]


# -- git configuration -------------------------------------------------------------
_GIT_EXEC_KEYS: Final = frozenset(
    {
        "core.sshcommand",
        "core.pager",
        "core.editor",
        "core.fsmonitor",
        "core.gitproxy",
        "core.askpass",
        "core.hookspath",
        "sequence.editor",
        "diff.external",
        "diff.tool",
        "merge.tool",
        "gpg.program",
        "uploadpack.packobjectshook",
        "credential.helper",
        "web.browser",
        "sendemail.sendmailcmd",
        "interactive.difffilter",
        "init.templatedir",
        "receive.procreceiverefs",
        "core.alternaterefscommand",
    }
)
# filter.<x>.clean, diff.<x>.textconv, merge.<x>.driver, difftool.<x>.cmd, remote.<x>.uploadpack...
_GIT_EXEC_SUFFIXES: Final = (
    ".clean",
    ".smudge",
    ".process",
    ".textconv",
    ".driver",
    ".cmd",
    ".command",
    ".program",
    ".helper",
    ".uploadpack",
    ".receivepack",
)
_GIT_CONNECT_SUFFIXES: Final = (".url", ".pushurl")
_GIT_SAFE_KEYS: Final = frozenset(
    {
        "user.name",
        "user.email",
        "user.useconfigonly",
        "author.name",
        "author.email",
        "committer.name",
        "committer.email",
        "core.autocrlf",
        "core.filemode",
        "core.quotepath",
        "core.ignorecase",
        "core.eol",
        "core.safecrlf",
        "core.abbrev",
        "core.whitespace",
        "core.excludesfile",
        "core.precomposeunicode",
        "core.longpaths",
        "core.symlinks",
        "core.logallrefupdates",
        "init.defaultbranch",
        "pull.rebase",
        "pull.ff",
        "push.default",
        "push.autosetupremote",
        "push.followtags",
        "fetch.prune",
        "fetch.fsckobjects",
        "transfer.fsckobjects",
        "merge.conflictstyle",
        "merge.ff",
        "rebase.autostash",
        "rebase.autosquash",
        "rebase.updaterefs",
        "diff.renames",
        "diff.algorithm",
        "diff.noprefix",
        "diff.mnemonicprefix",
        "diff.colormoved",
        "format.pretty",
        "protocol.version",
        "gc.auto",
        "help.autocorrect",
        "rerere.enabled",
        "commit.verbose",
        "commit.gpgsign:false",
        "tag.gpgsign:false",
        "advice.detachedhead",
        "status.showuntrackedfiles",
        "status.short",
        "branch.sort",
        "tag.sort",
        "column.ui",
        "color.ui",
        "index.version",
        "feature.manyfiles",
        "pack.threads",
        "submodule.recurse",
        "checkout.defaultremote",
        "blame.coloring",
        "log.date",
        "log.decorate",
        "log.showsignature",
        "http.postbuffer",
        "http.version",
    }
)
_GIT_SAFE_SECTIONS: Final = ("color.", "advice.", "log.", "status.", "column.", "pretty.", "i18n.")
_GIT_ALIAS_RE: Final = re.compile(r"alias\.[A-Za-z0-9_.-]+")


def git_config(insp: Inspection, pair: str, depth: int, *, evidence: str) -> None:
    """One ``key=value`` git will use: commands run, proxies and URLs, includes, or harmless."""
    key, eq, value = pair.partition("=")
    key = key.lower()
    ev = f"{evidence}: git config {key}"
    if key in _GIT_SAFE_KEYS or f"{key}:{value.lower()}" in _GIT_SAFE_KEYS:
        return
    if key.startswith(_GIT_SAFE_SECTIONS) and key.count(".") == 1:
        return
    if key.startswith("branch.") and key.endswith((".remote", ".merge", ".rebase", ".description")):
        return
    if _GIT_ALIAS_RE.fullmatch(key):
        if value.startswith("!"):
            insp.add("proc.exec_hook:git", ev)
            insp.add("proc.inline_code:git", ev)
            if eq and value != "!":
                insp.source(value[1:], depth + 1)
        return  # an alias of a git subcommand runs git
    if key in ("http.proxy", "https.proxy", "core.gitproxy") or key.endswith(".proxy"):
        if key == "core.gitproxy":
            insp.add("proc.exec_hook:git", ev)
        insp.add("net.proxy", ev)
        if eq and value not in ("", "?"):
            destination(insp, Word(value), ev)
        return
    if key.endswith(_GIT_CONNECT_SUFFIXES) and key.startswith(("remote.", "submodule.")):
        if eq and value != "?":
            remote(insp, Word(value), ev)
        else:
            insp.opaque(f"{ev}: a URL set elsewhere")
        return
    if (
        key in _GIT_EXEC_KEYS
        or (key.count(".") >= 2 and key.endswith(_GIT_EXEC_SUFFIXES))
        or key.endswith(".cmd")
    ):
        insp.add("proc.exec_hook:git", ev)
        insp.add("proc.inline_code:git", ev)
        if eq and value not in ("", "?") and key not in ("core.hookspath", "init.templatedir"):
            insp.source(value.removeprefix("!"), depth + 1)
        return
    insp.opaque(f"{ev}: a config key missing from the table")

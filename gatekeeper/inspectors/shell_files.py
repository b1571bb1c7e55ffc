"""Which argv words a program reads as files, and which ones change its working directory.

Readers (``cat``, ``grep``, ``python script.py``...) read their file operands, relative or
not; for any other program an argument that is plainly a path (``/x``, ``~/x``, ``./x``,
``../x``, ``--opt=/x``, curl's ``@/x``) is taken as read too. Patterns, scripts and filters
(the first operand of grep, sed, awk, jq) are not files. ``git -C``, ``make -C``, ``tar -C``
and ``env --chdir`` move one command; the shell inspector resolves paths against that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from gatekeeper.inspectors.shell_code import MAKE_VALUES
from gatekeeper.inspectors.shell_programs import GIT_VALUES, WRAPPERS, Word, fs, has_space, parse_opts

__all__ = ["chdir_words", "read_operands"]


@dataclass(frozen=True, slots=True)
class Reader:
    """Option values to skip, leading operands that are not files, options that replace them."""

    values: frozenset[str] = frozenset()
    leading: int = 0
    pattern_opts: frozenset[str] = frozenset()
    assignments: bool = False  # awk's var=value operands
    with_value: frozenset[str] = field(init=False)  # values | pattern_opts: what parse_opts is given

    def __post_init__(self) -> None:
        object.__setattr__(self, "with_value", self.values | self.pattern_opts)


_GREP: Final = Reader(
    fs("-e", "-f", "-m", "-A", "-B", "-C", "-d", "-D", "--regexp", "--file", "--max-count", "--context"),
    1,
    fs("-e", "-f", "--regexp", "--file"),
)
_RG: Final = Reader(
    fs(
        "-e",
        "-f",
        "-g",
        "-t",
        "-T",
        "-m",
        "-A",
        "-B",
        "-C",
        "-j",
        "-M",
        "-r",
        "-E",
        "--regexp",
        "--file",
        "--glob",
        "--iglob",
        "--type",
        "--type-not",
        "--type-add",
        "--max-count",
        "--replace",
        "--encoding",
        "--pre",
        "--pre-glob",
        "--max-depth",
        "--threads",
        "--sort",
        "--sortr",
        "--colors",
        "--max-columns",
    ),
    1,
    fs("-e", "-f", "--regexp", "--file", "--files", "--type-list"),
)
_SCRIPT: Final = Reader(leading=0)
READERS: Final[dict[str, Reader]] = {
    **{
        n: Reader()
        for n in (
            "cat",
            "tac",
            "less",
            "more",
            "most",
            "view",
            "vim",
            "vi",
            "nano",
            "base32",
            "basenc",
            "wc",
            "comm",
            "md5sum",
            "sha1sum",
            "sha224sum",
            "sha256sum",
            "sha384sum",
            "sha512sum",
            "b2sum",
            "cksum",
            "sum",
            "du",
            "zcat",
            "bzcat",
            "xzcat",
            "zstdcat",
            "zless",
            "gunzip",
            "unzip",
            "ln",
            "readlink",
            "realpath",
            "iconv",
            "fold",
            "fmt",
            "expand",
            "unexpand",
            "rev",
            "shuf",
            "split",
            "csplit",
            "column",
            "tsort",
            "ptx",
            "pr",
        )
    },
    "nl": Reader(fs("-b", "-n", "-s", "-v", "-w", "-i", "-l", "-d", "-f", "-h")),
    "head": Reader(fs("-n", "-c", "--lines", "--bytes")),
    "tail": Reader(fs("-n", "-c", "-s", "--lines", "--bytes", "--pid", "--sleep-interval")),
    "base64": Reader(fs("-w", "--wrap")),
    "xxd": Reader(fs("-s", "-l", "-c", "-g", "-o", "-n")),
    "od": Reader(fs("-A", "-t", "-N", "-j", "-w", "-S")),
    "hexdump": Reader(fs("-n", "-s", "-e", "-f")),
    "hd": Reader(fs("-n", "-s", "-e", "-f")),
    "strings": Reader(fs("-n", "-t", "-e", "-T")),
    "sort": Reader(fs("-k", "-t", "-o", "-S", "-T", "--key", "--field-separator", "--output")),
    "uniq": Reader(fs("-f", "-s", "-w")),
    "cut": Reader(fs("-d", "-f", "-c", "-b", "--delimiter", "--fields", "--characters", "--bytes")),
    "paste": Reader(fs("-d", "--delimiters")),
    "diff": Reader(fs("-U", "-C", "-L", "-x", "-X", "-I", "-F", "--label")),
    "cmp": Reader(fs("-i", "-n", "--ignore-initial", "--bytes")),
    "file": Reader(fs("-m", "-f", "-F", "-e", "-P")),
    "stat": Reader(fs("-c", "--format", "--printf")),
    "ls": Reader(fs("-I", "-w", "-T", "--ignore", "--width", "--tabsize", "--hide")),
    "tree": Reader(fs("-L", "-P", "-I", "-o", "--charset", "--filelimit", "--sort")),
    "cp": Reader(fs("-t", "-S", "--target-directory", "--suffix")),
    "mv": Reader(fs("-t", "-S", "--target-directory", "--suffix")),
    "install": Reader(fs("-t", "-S", "-m", "-o", "-g", "--target-directory", "--suffix", "--mode")),
    "tar": Reader(fs("-b", "-H", "-I", "-T", "-X", "-K", "-N", "-g", "-L", "-V", "-F", "-C", "--directory")),
    "gzip": Reader(fs("-S", "--suffix")),
    "bzip2": Reader(),
    "xz": Reader(),
    "zstd": Reader(fs("-o")),
    "jq": Reader(fs("--arg", "--argjson", "--indent", "--args", "--jsonargs"), 1, fs("-f", "--from-file")),
    "yq": Reader(fs("--arg", "--indent", "-I"), 1),
    "grep": _GREP,
    "egrep": _GREP,
    "fgrep": _GREP,
    "zgrep": _GREP,
    "rg": _RG,
    "sed": Reader(
        fs("-l", "--line-length", "-e", "--expression"), 1, fs("-e", "-f", "--expression", "--file")
    ),
    "awk": Reader(
        fs("-F", "-v", "-i", "-l", "-W", "--field-separator", "--assign", "-e", "--source"),
        1,
        fs("-f", "-e", "--file", "--source", "-E", "--exec"),
        assignments=True,
    ),
    "source": _SCRIPT,
}
for _awk in ("gawk", "mawk", "nawk"):
    READERS[_awk] = READERS["awk"]
# Interpreters read their script (the first operand) unless given inline code or a module.
# (options taking a value, options whose value is inline code or a module): parse_opts gets both.
_INTERPRETERS: Final[dict[str, tuple[frozenset[str], frozenset[str]]]] = {
    n: (values | inline, inline)
    for n, (values, inline) in {
        "python": (fs("-W", "-X"), fs("-c", "-m")),
        "pypy": (fs("-W", "-X"), fs("-c", "-m")),
        "node": (
            fs("-r", "--require", "--import", "-C", "--input-type"),
            fs("-e", "-p", "--eval", "--print"),
        ),
        "perl": (fs("-I", "-M", "-m", "-x", "-i"), fs("-e", "-E")),
        "ruby": (fs("-r", "-I", "-C", "-E", "-F"), fs("-e")),
        "php": (fs("-c", "-d", "-z"), fs("-r", "-B", "-R", "-F", "-E")),
        "lua": (fs("-l"), fs("-e")),
        **{
            n: (fs("-o", "-O", "+o", "+O", "--rcfile", "--init-file"), fs("-c", "--command"))
            for n in ("sh", "bash", "zsh", "dash", "ksh", "mksh", "ash")
        },
    }.items()
}
# Programs whose operands are not files read (or are writes recorded elsewhere).
NOT_READERS: Final = fs(
    "echo",
    "printf",
    "cd",
    "pushd",
    "popd",
    "dirs",
    "mkdir",
    "touch",
    "which",
    "type",
    "whereis",
    "test",
    "[",
    "[[",
    "true",
    "false",
    ":",
    "export",
    "declare",
    "typeset",
    "local",
    "readonly",
    "unset",
    "set",
    "alias",
    "unalias",
    "kill",
    "sleep",
    "date",
    "pwd",
    "dirname",
    "basename",
    "exit",
    "return",
    "shift",
    "trap",
    "wait",
    "umask",
    "ulimit",
    "read",
    "getopts",
    "hash",
    "history",
    "eval",
    "rm",
    "rmdir",
    "unlink",
    "shred",
    "truncate",
    "tee",
    "srm",
    "wipe",
    "dd",
    "mkfifo",
    "mktemp",
    "seq",
    "yes",
    "expr",
    "bc",
)
_HARMLESS: Final = fs(
    "/dev/null",
    "/dev/zero",
    "/dev/random",
    "/dev/urandom",
    "/dev/stdin",
    "/dev/stdout",
    "/dev/stderr",
    "/dev/tty",
    "-",
    "{}",
)


def path_like(text: str) -> bool:
    """Plainly a path whatever the program: absolute, home-relative, or explicitly relative."""
    return (
        text in (".", "..", "~")
        or text.startswith(("/", "~/", "./", "../"))
        or (text.startswith("~") and "/" in text and text[1:2].isalpha())
    )


def _may_hold_path(t: str) -> bool:
    """Could ``_candidate`` find a ``path_like`` text in word ``t``? The candidate is a suffix of
    ``t``, and a path-like text holds a ``/`` or a ``~`` or is ``.``/``..``: most words cannot."""
    return "/" in t or "~" in t or t.endswith(".")


def _candidate(w: Word, *, operand: bool = False) -> Word | None:
    """The path inside one word, if any: the word, ``--opt=PATH``, ``@PATH`` or ``k=@PATH``.
    ``operand``: the program reads the word as a file, so a blank in it is part of the name
    (``cat '/workspace/a b/../../root/.aws/credentials'``); elsewhere a word with blanks is text."""
    t = w.text
    if t.startswith("--") and "=" in t:
        t = t.partition("=")[2]
    elif "=@" in t or "=<" in t:
        t = t.split("=", 1)[1][1:]
    if t.startswith("@"):
        t = t[1:]
    if not t or "://" in t or len(t) > 1024 or (has_space(t) and not operand) or t in _HARMLESS:
        return None
    if t.startswith(("/dev/fd/", "/dev/tcp/", "/dev/udp/")):
        return None
    return w if t is w.text else Word(t, w.literal)  # callers read only text and literal


_PATTERN_VALUES: Final = frozenset({"-e", "--regexp", "--expression", "--source"})


def pattern_words(fam: str, args: list[Word]) -> frozenset[int]:
    """The words ``fam`` reads as a pattern or a program, not as files (grep's pattern, jq's filter,
    sed's script), by ``id``: ``grep -rn .env src`` names no credential file."""
    if fam == "find":  # -name '*.env' is a pattern: what it picks is read by its consumer, if any
        from gatekeeper.inspectors.shell_options import NAME_TESTS  # it imports this module

        return frozenset(id(args[i + 1]) for i, w in enumerate(args[:-1]) if w.text in NAME_TESTS)
    spec = READERS.get(fam)
    if spec is None or not spec.leading:
        return frozenset()
    p = parse_opts(args, spec.with_value)
    out = {id(v) for o, v in p.opts if v is not None and o in _PATTERN_VALUES}
    if not any(o in spec.pattern_opts for o, _ in p.opts):
        out |= set(map(id, [*p.pos, *args[p.index :]][: spec.leading]))
    return frozenset(out)


def read_operands(fam: str, args: list[Word]) -> list[Word]:
    """Words ``fam`` would read as files, in order; non-literal ones are the caller's to judge."""
    if fam == "find":  # starting points come before the first expression
        starts: list[Word] = []
        i = 0
        while i < len(args) and (args[i].text in ("-H", "-L", "-P", "-D") or args[i].text.startswith("-O")):
            i += 2 if args[i].text == "-D" else 1
        for w in args[i:]:
            if w.text.startswith(("-", "(", "!")) and w.text not in ("-", "--"):
                break
            c = _candidate(w) if w.literal else w
            if w.text != "--" and c is not None:
                starts.append(c)
        return starts
    if fam in NOT_READERS or fam in WRAPPERS or fam in ("xargs", "watch", "busybox", "ln"):  # ln: its handler
        return []
    out: list[Word] = []
    spec = READERS.get(fam)
    interp = _INTERPRETERS.get(fam)
    if spec is None and interp is None:  # no operand read as a file: only path-like words
        seen_here: set[int] = set()
        for w in args:
            if w.literal and _may_hold_path(w.text) and id(w) not in seen_here:
                c = _candidate(w)
                if c is not None and path_like(c.text):
                    seen_here.add(id(w))
                    out.append(c)
        return out
    operands: list[Word] = []
    skip: set[int] = set()
    if spec is not None:
        p = parse_opts(args, spec.with_value)
        leading = spec.leading
        if leading and any([o in spec.pattern_opts for o, _ in p.opts]):
            leading = 0  # the pattern came from an option: every operand is a file
        operands = p.pos[leading:] + args[p.index :]
        skip = set(map(id, p.pos[:leading]))
        for o, v in p.opts:
            if v is not None and o in ("-f", "--file", "--from-file", "-E", "--exec"):
                operands.append(v)
            elif v is not None and o in ("-e", "--regexp", "--source", "--expression", "-r", "--replace"):
                skip.add(id(v))
        if spec.assignments:
            operands = [
                w for w in operands if not (w.literal and "=" in w.text and "/" not in w.text.split("=")[0])
            ]
    elif interp is not None:
        with_value, inline = interp
        p = parse_opts(args, with_value, max_pos=1)
        if not any(o in inline or (o == "-m" and fam in ("python", "pypy")) for o, _ in p.opts):
            operands = p.pos[:1]
        skip = {id(v) for o, v in p.opts if o in inline and v is not None}
    seen: set[int] = set()
    for w in operands:
        if id(w) in seen:
            continue
        seen.add(id(w))
        c = _candidate(w, operand=True)
        if c is not None or not w.literal:
            out.append(c if c is not None and w.literal else w)
    for w in args:
        if not w.literal or not _may_hold_path(w.text) or id(w) in seen or id(w) in skip:
            continue
        c = _candidate(w)
        if c is not None and path_like(c.text):
            seen.add(id(w))
            out.append(c)
    return out


_CHDIR: Final[dict[str, tuple[frozenset[str], bool]]] = {
    # family: (options naming a directory, whether every later operand is relative to it)
    "git": (fs("-C"), True),
    "make": (fs("-C", "--directory"), True),
    "gmake": (fs("-C", "--directory"), True),
    "tar": (fs("-C", "--directory"), False),
    "env": (fs("-C", "--chdir"), True),
    "sudo": (fs("-D", "--chdir"), True),
}
_CHDIR_VALUES: Final[dict[str, frozenset[str]]] = {
    "git": GIT_VALUES,
    "make": MAKE_VALUES,
    "gmake": MAKE_VALUES,
    "tar": fs("-f", "-C", "-b", "-H", "-I", "-T", "-X", "-K", "-N", "-g", "-L", "-V", "-F", "--file"),
    "env": WRAPPERS["env"].values,
    "sudo": WRAPPERS["sudo"].values,
}


def chdir_words(fam: str, args: list[Word]) -> tuple[list[Word | None], bool] | None:
    """Directories a program moves into (in order) and whether it moves for good; None if it stays."""
    spec = _CHDIR.get(fam)
    if spec is None:
        return None
    if not any([w.text.startswith("-") for w in args]):
        return None  # no option at all (parse_opts reads options only from words starting with "-")
    names, for_good = spec
    max_pos = 0 if fam in ("git", "env", "sudo") else None
    p = parse_opts(args, _CHDIR_VALUES[fam], max_pos=max_pos)
    dirs = [v for o, v in p.opts if o in names]
    return (dirs, for_good) if dirs else None

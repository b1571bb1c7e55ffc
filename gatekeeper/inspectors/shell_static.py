"""What a shell word expands to when every expansion in it is knowable without running anything.

Filters that only look at the literal text lose to ``$'\\x73sh'``, ``ssh${IFS}-R``, ``$(printf
ssh)``, ``S=ss; H=h; $S$H``, ``{ssh,-R,...}`` and ``/usr/bin/ss?``. The shell inspector keeps
its fail-closed reading of such words (``shell.opaque``) and adds a second reading built here:
the word's value with ANSI-C quotes decoded, variables it has seen assigned to literals
substituted, ``echo``/``printf`` substitutions of literals replaced by their output, unquoted
results split on ``IFS``, and brace expansion applied. A second reading only ever adds
capabilities, so a guess here can make a refusal stricter but never lets a call through.

Word boundaries come from bashlex; this module only evaluates one word's own text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

__all__ = [
    "DEFAULT_IFS",
    "ansi_c",
    "brace_expand",
    "decode_escapes",
    "echo_output",
    "same_in_every_shell",
    "static_fields",
    "unescape_echo",
]

DEFAULT_IFS: Final = " \t\n"
MAX_FIELDS: Final = 256
MAX_VALUE: Final = 16 * 1024
_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!-]")
_SIMPLE_ESCAPES: Final = {
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "E": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
}
_HEX: Final = frozenset("0123456789abcdefABCDEF")

Pieces = list[tuple[str, bool]]  # (text, produced by an unquoted expansion: subject to IFS splitting)
_OCTAL: Final = frozenset("01234567")

# Bash's three dialects of backslash escapes (lib/sh/strtrans.c, builtins/printf.def), which
# differ in corners an encoded payload can use: ANSI-C quoting ``$'...'``; ``echo -e`` and
# printf's ``%b`` (``\c`` ends all output, octal is ``\0nnn``, ``\'`` keeps its backslash);
# and printf's format (``\nnn`` of at most three digits, ``\c`` is text).
ANSI: Final = "ansi"
ECHO: Final = "echo"
BARG: Final = "%b"
FORMAT: Final = "format"


def decode_escapes(text: str, dialect: str) -> tuple[str, bool]:
    """``text`` with its backslash escapes decoded as bash does in ``dialect``; the flag says that
    a ``\\c`` ended the output there (``echo -e`` and ``%b`` print nothing after it)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c != "\\" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        e, j = text[i + 1], i + 2
        simple = _SIMPLE_ESCAPES.get(e)
        if simple is not None:
            out.append(simple)
        elif e in "'\"?":
            out.append(e if dialect in (ANSI, FORMAT) else "\\" + e)
        elif e in _OCTAL:
            if dialect == ECHO and e != "0":
                out.append("\\" + e)  # echo -e knows only \0nnn
            else:
                more = 3 if e == "0" and dialect in (ECHO, BARG) else 2
                value = int(e)
                while j < n and more and text[j] in _OCTAL:
                    value, j, more = value * 8 + int(text[j]), j + 1, more - 1
                out.append(chr(value & 0xFF))
        elif e in "xuU":
            more = {"x": 2, "u": 4, "U": 8}[e]
            value, k = 0, j
            while k < n and more and text[k] in _HEX:
                value, k, more = value * 16 + int(text[k], 16), k + 1, more - 1
            if k == j:
                out.append("\\" + e)  # no digit: the text as it is
            else:
                out.append(chr(value & 0xFF) if e == "x" else _unichr(value))
                j = k
        elif e == "c" and dialect in (ECHO, BARG):
            return "".join(out), True
        elif e == "c" and dialect == ANSI and j < n:
            ctl = text[j]
            j += 2 if ctl == "\\" and text[j + 1 : j + 2] == "\\" else 1
            out.append("\x7f" if ctl == "?" else chr(ord(ctl.upper()) & 0x1F) if ctl.isascii() else "\ufffd")
        else:
            out.append("\\" + e)  # not an escape: both characters stay
        i = j
    return "".join(out), False


def _unichr(value: int) -> str:
    try:
        return chr(value)
    except (ValueError, OverflowError):
        return "\ufffd"


def ansi_c(body: str) -> str:
    """The value of ``$'body'`` (bash ANSI-C quoting)."""
    return decode_escapes(body, ANSI)[0]


def unescape_echo(text: str) -> str:
    """What ``echo -e`` does with one argument's backslash escapes (up to a ``\\c``)."""
    return decode_escapes(text, ECHO)[0]


def echo_output(program: str, args: Sequence[str]) -> str | None:
    """The output of ``echo``/``printf`` with literal arguments (without echo's newline), or None
    when it depends on more than that."""
    if program == "echo":
        escapes = False
        rest = list(args)
        while rest and re.fullmatch(r"-[neE]+", rest[0]):
            escapes = "e" in rest[0] or (escapes and "E" not in rest[0])
            rest.pop(0)
        return " ".join(_until_stop(rest, ECHO) if escapes else rest)
    if program == "printf" and args:
        fmt, rest = args[0], list(args[1:])
        if fmt == "--" and rest:
            fmt, rest = rest[0], rest[1:]
        elif fmt.startswith("-") and fmt != "-":
            return None  # an option (-v NAME) or bash's "invalid option"
        if fmt in ("%s", "%b") and rest:
            return "".join(rest if fmt == "%s" else _until_stop(rest, BARG))
        if rest:
            return None
        pieces = fmt.split("%%")
        if any("%" in p for p in pieces):
            return None
        # "\%%" is a backslash then a percent sign: decode each piece, "%%" between them
        return "%".join(_format_piece(p) for p in pieces)
    return None


# Escapes bash's printf and dash's (Debian's /bin/sh) read alike; dash keeps \x41, \" and \? as
# they are. Which shell runs a command line is the tool's business, so text is known exactly
# only when both would print the same.
_PORTABLE_ESCAPES_RE: Final = re.compile(r"\\(.)", re.S)
_PORTABLE: Final = frozenset("ntabfrv\\01234567")


def same_in_every_shell(program: str, args: Sequence[str]) -> bool:
    """Would bash's and dash's ``echo``/``printf`` print the same for these literal arguments?
    (dash's echo decodes escapes and knows no ``-e``; their printf escapes differ in corners.)"""
    if program == "echo":
        options = [a for a in args if re.fullmatch(r"-[neE]+", a)]  # any place: more is stricter
        return all(o == "-n" for o in options) and not any("\\" in a for a in args)
    if program != "printf" or not args or args[0].startswith("-"):
        return False
    texts = args if args[0] == "%b" else args[:1]
    return all(m.group(1) in _PORTABLE for t in texts for m in _PORTABLE_ESCAPES_RE.finditer(t))


def _until_stop(args: Sequence[str], dialect: str) -> list[str]:
    """Each argument decoded, up to the ``\\c`` that ends all output (echo -e, printf %b)."""
    shown: list[str] = []
    for arg in args:
        text, stop = decode_escapes(arg, dialect)
        shown.append(text)
        if stop:
            break
    return shown


def _format_piece(piece: str) -> str:
    text, _ = decode_escapes(piece, FORMAT)
    return text


def _ansi_end(raw: str, start: int) -> int:
    """Index of the closing quote of a ``$'...'`` body starting at ``start``; -1 if unterminated."""
    i = start
    while i < len(raw):
        if raw[i] == "\\":
            i += 2
            continue
        if raw[i] == "'":
            return i
        i += 1
    return -1


def static_pieces(
    raw: str,
    base: int,
    parts: Sequence[Any],
    lookup: Callable[[str], str | None],
    substitute: Callable[[Any], str | None],
) -> Pieces | None:
    """Evaluate one word's source text; None when any expansion in it is not knowable.

    ``base`` is the word's offset in the parsed text (bashlex positions are absolute); ``parts``
    are its expansion nodes; ``lookup`` gives a parameter's value (None: unknown);
    ``substitute`` gives a command substitution's output (None: unknown).
    """
    starts = {p.pos[0] - base: p for p in parts}
    out: Pieces = []
    size = 0
    in_dq = False
    i = 0
    while i < len(raw):
        c = raw[i]
        part = starts.get(i)
        if part is not None and c in "$`":
            kind = part.kind
            if kind == "parameter" and not getattr(part, "value", None):
                if in_dq or raw[i + 1 : i + 2] != "'":
                    return None
                end = _ansi_end(raw, i + 2)
                if end < 0:
                    return None
                out.append((ansi_c(raw[i + 2 : end]), False))
                size += end - i
                i = end + 1
                continue
            if kind == "parameter":
                name = str(part.value)
                if not _NAME_RE.fullmatch(name):
                    return None
                value = lookup(name)
            elif kind == "commandsubstitution":
                value = substitute(part.command)
                value = value.rstrip("\n") if value is not None else None
            else:
                return None
            if value is None:
                return None
            out.append((value, not in_dq))
            size += len(value)
            if size > MAX_VALUE:
                return None
            i = part.pos[1] - base
            continue
        if c == "'" and not in_dq:
            end = raw.find("'", i + 1)
            if end < 0:
                return None
            out.append((raw[i + 1 : end], False))
            i = end + 1
        elif c == '"':
            in_dq = not in_dq
            if not in_dq:
                out.append(("", False))  # "" is a word of its own, however empty
            i += 1
        elif c == "\\" and i + 1 < len(raw):
            nxt = raw[i + 1]
            if nxt == "\n":
                pass
            elif in_dq and nxt not in '$`"\\':
                out.append(("\\" + nxt, False))
            else:
                out.append((nxt, False))
            i += 2
        else:
            out.append((c, False))
            i += 1
        size += 1
        if size > MAX_VALUE:
            return None
    return out


def fields(pieces: Pieces, ifs: str) -> tuple[str, ...]:
    """Word splitting: unquoted expansion results split on IFS characters, quoted text kept whole."""
    result: list[str] = []
    current: list[str] = []
    started = False
    for text, split in pieces:
        if not split or not ifs:
            current.append(text)
            started = started or bool(text) or not split
            continue
        for ch in text:
            if ch in ifs:
                if started or current:
                    result.append("".join(current))
                current, started = [], False
            else:
                current.append(ch)
                started = True
        if len(result) > MAX_FIELDS:
            break
    if started or current:
        result.append("".join(current))
    return tuple(result[:MAX_FIELDS])


def joined(pieces: Pieces) -> str:
    return "".join(t for t, _ in pieces)


def static_fields(
    raw: str,
    base: int,
    parts: Sequence[Any],
    env: Mapping[str, str],
    positional: Sequence[str] | None,
    substitute: Callable[[Any], str | None],
    *,
    assignment: bool = False,
) -> tuple[str, ...] | None:
    """The argv words one shell word becomes, or None when that cannot be known statically."""
    if not parts and len(raw) > 1 and raw[0] == "'" and raw.find("'", 1) == len(raw) - 1:
        return (raw[1:-1],)  # one single-quoted string: its text, whatever it holds (the common case)

    def lookup(name: str) -> str | None:
        if name in ("@", "*"):
            return " ".join(positional) if positional is not None else None
        if name == "#":
            return str(len(positional)) if positional is not None else None
        if name.isdigit():
            if positional is None or name == "0":
                return None
            k = int(name)
            return positional[k - 1] if k <= len(positional) else ""
        return env.get(name)

    pieces = static_pieces(raw, base, parts, lookup, substitute)
    if pieces is None:
        return None
    if assignment:
        return (joined(pieces),)
    return fields(pieces, env.get("IFS", DEFAULT_IFS))


_BRACE_RE: Final = re.compile(r"\{([^{}]*)\}")
MAX_BRACE_WORDS: Final = 64


def brace_expand(word: str) -> list[str]:
    """Bash brace expansion of one word (comma lists and numeric or letter ranges), bounded."""
    out = [word]
    for _ in range(8):
        nxt: list[str] = []
        changed = False
        for w in out:
            m = next((m for m in _BRACE_RE.finditer(w) if "," in m.group(1) or ".." in m.group(1)), None)
            if m is None:
                nxt.append(w)
                continue
            inner = m.group(1)
            if "," in inner:
                alts = inner.split(",")
            else:
                lo, _, hi = inner.partition("..")
                if lo.lstrip("-").isdigit() and hi.lstrip("-").isdigit() and abs(int(hi) - int(lo)) < 64:
                    step = 1 if int(hi) >= int(lo) else -1
                    alts = [str(k) for k in range(int(lo), int(hi) + step, step)]
                elif len(lo) == 1 and len(hi) == 1:
                    step = 1 if ord(hi) >= ord(lo) else -1
                    alts = [chr(k) for k in range(ord(lo), ord(hi) + step, step)]
                else:
                    alts = [inner]
            nxt.extend(w[: m.start()] + a + w[m.end() :] for a in alts)
            changed = True
        out = nxt[:MAX_BRACE_WORDS]
        if not changed:
            break
    return [w for w in out if w != ""]

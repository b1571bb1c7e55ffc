"""The Python reader on code no Python runs: one-liners with compound statements after ``;``."""

from __future__ import annotations

import ast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatekeeper.inspectors.python_code import _rejoined, analyse


@pytest.mark.parametrize(
    "code",
    [
        "class A: pass; class B: pass; print(A < B)",
        "from functools import partial; p = partial(int); def w(): pass; print(w)",
        "try: import json; print(json.dumps(1)); except ImportError: print('skip')",
        "if True: x = 1; else: x = 2",
    ],
)
def test_semicolon_before_a_compound_statement_is_read_statement_by_statement(code: str) -> None:
    with pytest.raises(SyntaxError):
        ast.parse(code)  # no Python runs it as written
    rejoined = _rejoined(code)
    assert rejoined is not None
    ast.parse(rejoined)
    assert analyse(code).doubts == []


@pytest.mark.parametrize(
    ("code", "effect"),
    [
        ("import os; def f(): os.system('id'); f()", "spawns"),
        ("x = 1; class A: import socket; socket.create_connection(('203.0.113.7', 4444))", "net"),
        ("try: import subprocess; subprocess.run(['id']); except Exception: pass", "spawns"),
    ],
)
def test_what_the_statements_do_is_still_seen(code: str, effect: str) -> None:
    fx = analyse(code)
    assert getattr(fx, effect), fx


@pytest.mark.parametrize(
    "code",
    [
        # Python 3.12 reads a nested quote inside an f-string; 3.11 does not: still a doubt.
        'f"{"x;class A: pass"}"',
        "x = (1; class A: pass)",  # inside brackets: nothing to rejoin
        "print(1); match x:\n case 1: pass",  # a soft keyword is a name after ';'
    ],
)
def test_what_stays_unreadable_stays_a_doubt(code: str) -> None:
    assert any("can be parsed" in d for d in analyse(code).doubts)


@given(st.text(alphabet="ab;:() \n\"'f{}classdefiftry", max_size=40))
def test_rejoined_never_raises(code: str) -> None:
    _rejoined(code)
    analyse(code)

"""Properties of the option tables (``shell_tables``): generated from the tables themselves.

- An option a program's table does not know is never harmless: ``shell.opaque`` (doubt).
- A known option of a risky effect yields its capability (exec, write, proxy, doubt).
- Known safe options, however combined, add no doubt.
"""

from __future__ import annotations

import string
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatekeeper.inspectors import InspectContext
from gatekeeper.inspectors.shell import inspect_shell
from gatekeeper.inspectors.shell_options import Effect, Table
from gatekeeper.inspectors.shell_tables import TABLES

CTX = InspectContext()


def _tables() -> Iterator[tuple[str, Table]]:
    """Every (command prefix, table): each program, and each subcommand of one."""
    for name, table in sorted(TABLES.items()):
        if table.subcommands is None:
            yield name, table
            continue
        for sub, subtable in sorted(table.subcommands.items()):
            yield f"{name} {sub}", subtable


ALL = list(_tables())
IDS = [p for p, _ in ALL]


def names(cmd: str) -> set[str]:
    return {c.name for c in inspect_shell(cmd, CTX)}


def _known(table: Table, word: str) -> bool:
    """Would the walker accept ``word`` as one of the table's options (exactly, negated, abbreviated,
    as a prefix form, or a count)?"""
    key = word.partition("=")[0]
    if key in table.options:
        return True
    if key.startswith("--no-") and "--" + key[5:] in table.options:
        return True
    if key.startswith("--") and any(n.startswith(key) for n in table.long_names):
        return True
    if any(word.startswith(p) for p, _ in table.prefixes):
        return True
    return table.numeric and word[1:].isdigit()


_LONG = st.from_regex(r"--[a-z][a-z0-9-]{1,24}", fullmatch=True)
_SHORT = st.sampled_from([f"-{c}" for c in string.ascii_letters])
_SINGLE_LONG = st.from_regex(r"-[a-z][a-z0-9]{2,16}", fullmatch=True)


@pytest.mark.parametrize(("prefix", "table"), ALL, ids=IDS)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_an_option_the_table_does_not_know_is_doubt(prefix: str, table: Table, data: st.DataObject) -> None:
    strategy = st.one_of(_LONG, _SHORT, _SINGLE_LONG) if table.single_dash_long else st.one_of(_LONG, _SHORT)
    word = data.draw(strategy.filter(lambda w: not _known(table, w)))
    got = names(f"{prefix} {word} x")
    assert "shell.opaque" in got, f"{prefix} {word}: {sorted(got)}"


_CAPABILITY: dict[Effect, str] = {
    Effect.EXEC: "proc.exec_hook:",
    Effect.PROXY: "net.proxy",
    Effect.DOUBT: "shell.opaque",
}


def _risky() -> Iterator[tuple[str, str, Effect, bool]]:
    for prefix, table in ALL:
        for opt, spec in sorted(table.options.items()):
            if opt.startswith("-") and spec.effect in (*_CAPABILITY, Effect.WRITE):
                yield prefix, opt, spec.effect, spec.value


RISKY = list(_risky())


@pytest.mark.parametrize(
    ("prefix", "opt", "effect", "value"), RISKY, ids=[f"{p} {o}" for p, o, _, _ in RISKY]
)
def test_a_known_risky_option_yields_its_capability(
    prefix: str, opt: str, effect: Effect, value: bool
) -> None:
    word = f"{opt}=/tmp/gk-x" if opt.startswith("--") and value else (f"{opt} /tmp/gk-x" if value else opt)
    got = names(f"{prefix} {word} x")
    if effect is Effect.WRITE:
        assert any(c.startswith("fs.write:") for c in got), f"{prefix} {word}: {sorted(got)}"
    else:
        assert any(c.startswith(_CAPABILITY[effect]) for c in got), f"{prefix} {word}: {sorted(got)}"


def _safe_flags(table: Table) -> list[str]:
    return sorted(
        o for o, s in table.options.items() if o.startswith("-") and s.effect is Effect.SAFE and not s.value
    )


SAFE = [(p, t) for p, t in ALL if _safe_flags(t)]


@pytest.mark.parametrize(("prefix", "table"), SAFE, ids=[p for p, _ in SAFE])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_known_safe_flags_add_no_doubt(prefix: str, table: Table, data: st.DataObject) -> None:
    flags = data.draw(st.lists(st.sampled_from(_safe_flags(table)), min_size=1, max_size=4))
    got = names(" ".join([prefix, *flags, "--", "x"]))
    assert "shell.opaque" not in got and not any(c.startswith("proc.exec_hook:") for c in got), sorted(got)


def test_every_entry_has_a_reason() -> None:
    for prefix, table in ALL:
        for opt, spec in table.options.items():
            assert spec.reason.strip(), f"{prefix} {opt}"


def _abbreviated_handled() -> Iterator[tuple[str, str, str]]:
    """Each long option a handler reads, cut to its shortest unambiguous abbreviation."""
    for prefix, table in ALL:
        for opt, spec in sorted(table.options.items()):
            if not opt.startswith("--") or spec.effect is not Effect.HANDLED:
                continue
            for cut in range(3, len(opt)):
                short = opt[:cut]
                if [n for n in table.long_names if n.startswith(short)] == [opt]:
                    yield prefix, opt, short
                    break


ABBREVIATED = list(_abbreviated_handled())


@pytest.mark.parametrize(("prefix", "opt", "short"), ABBREVIATED, ids=[f"{p} {s}" for p, _, s in ABBREVIATED])
def test_an_abbreviated_handled_option_is_doubt(prefix: str, opt: str, short: str) -> None:
    """Handlers read an option by its full name: an abbreviation (``tar --to-comm=sh``) must not slip by."""
    got = names(f"{prefix} {short}=./gk-x x")
    assert "shell.opaque" in got, f"{prefix} {short} ({opt}): {sorted(got)}"

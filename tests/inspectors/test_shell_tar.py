"""tar's archives on other hosts, old-style options and its variables (GNU tar's rules).

GNU tar reaches an archive named ``[user@]host:path`` (a colon with no slash before it) over
rsh/ssh unless ``--force-local`` is given; ``TAPE`` names the archive when ``-f`` does not, and
``TAR_OPTIONS`` is read as options before the command line's own.
"""

from __future__ import annotations

import pytest

from gatekeeper.inspectors import InspectContext
from gatekeeper.inspectors.shell import inspect_shell
from gatekeeper.inspectors.shell_options import old_style_args, scp_host
from gatekeeper.inspectors.shell_programs import Word
from gatekeeper.inspectors.shell_tables import TABLES

CTX = InspectContext()


def names(cmd: str) -> set[str]:
    return {c.name for c in inspect_shell(cmd, CTX)}


@pytest.mark.parametrize(
    ("cmd", "host"),
    [
        ("tar -xf a:b.tar", "a"),
        ("tar -cf host:x.tar src", "host"),
        ("tar -xzf a:pkg.tgz", "a"),
        ("tar -cvf u@b:/tmp/x.tar .", "b"),
        ("tar -cfx:loot.tar src", "x"),
        ("tar --file=c:/x.tar -c src", "c"),
        ("tar -c --file c:/x.tar src", "c"),
        ("tar xf a:b", "a"),
        ("tar cvzf h:loot.tgz .", "h"),
        ("TAPE=h:x.tar tar -c src", "h"),
        ("export TAPE=a:b.tar; tar -x", "a"),
        ("TAR_OPTIONS=-fh:x.tar tar -c src", "h"),
        ("tar --label --force-local -cf h:x src", "h"),  # the label is "--force-local"
        ("tar -C --force-local -xf h:x", "h"),  # so is the directory
        ("tar -xf 'u@[::1]:x'", "[::1]"),
    ],
)
def test_an_archive_on_another_host_is_a_connection(cmd: str, host: str) -> None:
    got = names(cmd)
    assert f"net.connect:{host}:22" in got, sorted(got)


@pytest.mark.parametrize(
    "cmd",
    [
        "tar -xzf dist/pkg-1.0.tar.gz",
        "tar --force-local -cf c:/x.tar src",
        "tar -cf h:x.tar --force-local src",  # anywhere on the line
        "tar xzf pkg-1.0.tar.gz",
        "tar cvf out.tar src",
        "tar -tf ./build/a:b.tar",  # a slash before the colon: a local path
        "tar -tf :x.tar",  # nothing before the colon
    ],
)
def test_a_local_archive_is_no_connection(cmd: str) -> None:
    got = names(cmd)
    assert not any(c.startswith("net.") for c in got) and "shell.opaque" not in got, sorted(got)


@pytest.mark.parametrize(
    "cmd",
    [
        "tar --force-local --rsh-command=/tmp/x -cf h:x src",
        "tar --rmt-command=/tmp/x -cf h:x src",
        "tar xIf ./x a.tar",
        "TAR_OPTIONS=--to-command=./x tar -xf a.tar",
    ],
)
def test_programs_tar_runs_are_hooks(cmd: str) -> None:
    assert "proc.exec_hook:tar" in names(cmd)


def test_a_host_name_that_is_no_clean_host_is_doubt() -> None:
    assert "shell.opaque" in names("tar -xf 'a b:x'")


def test_old_style_letters_take_their_values_in_order() -> None:
    args = [Word("xvfC"), Word("a.tar"), Word("dir"), Word("member")]
    assert [w.text for w in old_style_args(TABLES["tar"], args)] == [
        "-x", "-v", "-f", "a.tar", "-C", "dir", "member"
    ]  # fmt: skip
    dashed = [Word("-xf"), Word("a.tar")]
    assert old_style_args(TABLES["tar"], dashed) == dashed


@pytest.mark.parametrize(
    ("text", "host"),
    [("a:b", "a"), ("c:/x", "c"), ("u@h:p", "h"), ("[::1]:x", "::1"), ("./a:b", None), ("x", None),
     ("https://h/x", None), (":x", None), ("a/b:c", None)],
)  # fmt: skip
def test_scp_host_follows_the_linux_rule(text: str, host: str | None) -> None:
    assert scp_host(text) == host

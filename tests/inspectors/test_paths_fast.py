"""The path classifier's shortcuts against the readings they skip.

``normalize_path`` returns an absolute path with no empty, ``.`` or ``..`` segment as it is,
without ``normpath``; ``credential_classes`` looks for its names in the whole path before
splitting it. Both must answer exactly as the full reading would, for any path.
"""

from __future__ import annotations

import posixpath
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper.inspectors import paths
from gatekeeper.inspectors.paths import HOME, credential_classes, normalize_path, path_classes

# Every name, segment and affix credential_classes and path_classes test, in several cases,
# plus noise: the generated paths reach each rule (and the hint must find each of them).
_NAMES = [
    ".ssh",
    "authorized_keys2",
    "etc",
    "ssh",
    ".aws",
    ".Azure",
    ".kube",
    ".config",
    "gcloud",
    ".docker",
    "config.json",
    ".netrc",
    "_netrc",
    ".pgpass",
    ".git-credentials",
    ".pypirc",
    ".NPMRC",
    ".vault-token",
    "shadow",
    "gshadow",
    "proc",
    "1",
    "task",
    "environ",
    "mem",
    "cmdline",
    "run",
    "var",
    "secrets",
    ".env",
    ".env.local",
    ".env.example",
    "a.pem",
    "b.KEY",
    "c.p12",
    "d.pfx",
    "e.jks",
    "f.keystore",
    "id_rsa",
    "ID_ED25519.pub",
    "log",
    ".bash_history",
    "sys",
    "kernel",
    "mm",
    "hugepages",
    "msr",
    "cron.d",
    "spool",
    "at",
    "systemd",
    "autostart",
    "profile.d",
    ".bashrc",
    "lib64",
    "usr",
    "src",
    "x.py",
    "",
    ".",
    "..",
    "~",
    "İ",
]
_SEGMENTS = st.lists(st.sampled_from(_NAMES), max_size=6)


def _normalize_reference(path: str, cwd: str) -> str | None:
    """normalize_path without its shortcut: every path through normpath."""
    if not path or "\x00" in path or len(path) > paths.MAX_PATH_LENGTH:
        return None
    if path == "~" or path.startswith("~/"):
        path = HOME + path[1:]
    elif path.startswith("~"):
        user, sep, rest = path[1:].partition("/")
        path = (HOME if user == "root" else f"/home/{user}") + sep + rest
    elif not path.startswith("/"):
        path = f"{cwd}/{path}"
    return posixpath.normpath(re.sub("/{2,}", "/", path))


@settings(max_examples=400, deadline=None)
@given(_SEGMENTS, st.sampled_from(["", "/", "//", "~", "./"]), st.sampled_from(["", "/"]))
def test_normalize_shortcut_is_normpath(segments: list[str], lead: str, tail: str) -> None:
    path = lead + "/".join(segments) + tail
    for cwd in ("/workspace", "/", "", "/w/", "/a/../b", "w", "/root/.ssh"):
        assert normalize_path(path, cwd) == _normalize_reference(path, cwd), (path, cwd)


def _classes(path: str) -> tuple[list[str], list[str], list[str]]:
    return credential_classes(path), path_classes(path, write=False), path_classes(path, write=True)


def _full_reading(path: str) -> tuple[list[str], list[str], list[str]]:
    """The classes with a hint that finds something in every path: each one read in full."""
    module = vars(paths)  # the hint is Final to the code, swapped here for the reference reading
    hint = module["_CREDENTIAL_HINT_RE"]
    module["_CREDENTIAL_HINT_RE"] = re.compile("")
    try:
        return _classes(path)
    finally:
        module["_CREDENTIAL_HINT_RE"] = hint


@settings(max_examples=400, deadline=None)
@given(_SEGMENTS, st.sampled_from(["/", "", "//"]))
def test_credential_hint_never_skips_a_class(segments: list[str], lead: str) -> None:
    path = lead + "/".join(segments)
    assert _classes(path) == _full_reading(path), path
    assert _classes(path.lower()) == _full_reading(path.lower()), path


def test_hint_reference_can_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hint missing a name would skip its class: the comparison above sees it."""
    assert credential_classes("/root/.aws/credentials") == ["cred.cloud"]
    monkeypatch.setattr(paths, "_CREDENTIAL_HINT_RE", re.compile(r"\.ssh"))
    assert credential_classes("/root/.aws/credentials") == []

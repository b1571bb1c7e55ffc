"""Path inspectors: one canonical absolute path, plus the classes policies key on."""

from __future__ import annotations

import posixpath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper.inspectors import INSPECTORS, InspectContext
from gatekeeper.inspectors.paths import inspect_fs_read, inspect_fs_write, normalize_path

CTX = InspectContext()


def read(path: str) -> set[str]:
    return {c.name for c in inspect_fs_read(path, CTX)}


def write(path: str) -> set[str]:
    return {c.name for c in inspect_fs_write(path, CTX)}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("README.md", "/workspace/README.md"),
        ("./src/../README.md", "/workspace/README.md"),
        ("../../../../etc/passwd", "/etc/passwd"),
        ("//etc///passwd", "/etc/passwd"),
        ("/workspace/./a//b/", "/workspace/a/b"),
        ("~", "/root"),
        ("~/.ssh/id_rsa", "/root/.ssh/id_rsa"),
        ("~root/x", "/root/x"),
        ("~bob/x", "/home/bob/x"),
        ("/..", "/"),
    ],
)
def test_normalize(path: str, expected: str) -> None:
    assert normalize_path(path, "/workspace") == expected


def test_design_example() -> None:
    assert write("/root/.ssh/authorized_keys") == {"fs.write:/root/.ssh/authorized_keys", "cred.ssh"}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("src/app.py", {"fs.read:/workspace/src/app.py"}),
        (".env", {"fs.read:/workspace/.env", "cred.secret"}),
        (".env.example", {"fs.read:/workspace/.env.example"}),
        ("/root/.aws/credentials", {"fs.read:/root/.aws/credentials", "cred.cloud"}),
        ("~/.config/gcloud/credentials.db", {"fs.read:/root/.config/gcloud/credentials.db", "cred.cloud"}),
        ("~/.kube/config", {"fs.read:/root/.kube/config", "cred.cloud"}),
        ("~/.docker/config.json", {"fs.read:/root/.docker/config.json", "cred.cloud"}),
        ("certs/server.key", {"fs.read:/workspace/certs/server.key", "cred.secret"}),
        ("tls.PEM", {"fs.read:/workspace/tls.PEM", "cred.secret"}),
        ("~/.netrc", {"fs.read:/root/.netrc", "cred.secret"}),
        ("/etc/passwd", {"fs.read:/etc/passwd", "fs.system"}),
        ("/lib64/ld-linux-x86-64.so.2", {"fs.read:/lib64/ld-linux-x86-64.so.2", "fs.system"}),
        ("/proc/self/environ", {"fs.read:/proc/self/environ", "fs.system", "cred.secret"}),
        ("/proc/1/task/7/environ", {"fs.read:/proc/1/task/7/environ", "fs.system", "cred.secret"}),
        ("/proc/self/mem", {"fs.read:/proc/self/mem", "fs.system", "cred.secret"}),
        ("/proc/self/status", {"fs.read:/proc/self/status", "fs.system"}),
        ("/run/secrets/db", {"fs.read:/run/secrets/db", "cred.secret"}),
        (
            "/var/run/secrets/kubernetes.io/serviceaccount/token",
            {"fs.read:/var/run/secrets/kubernetes.io/serviceaccount/token", "cred.secret"},
        ),
    ],
)
def test_read_classes(path: str, expected: set[str]) -> None:
    assert read(path) == expected


@pytest.mark.parametrize(
    ("path", "klass"),
    [
        ("/var/log/auth.log", "log.tamper"),
        ("~/.bash_history", "log.tamper"),
        ("/etc/cron.d/job", "persist.cron"),
        ("/var/spool/cron/crontabs/root", "persist.cron"),
        ("/etc/systemd/system/x.service", "persist.service"),
        ("~/.config/systemd/user/x.service", "persist.service"),
        ("~/.bashrc", "persist.shellrc"),
        ("/home/bob/.profile", "persist.shellrc"),
        ("~/.zshrc", "persist.shellrc"),
        ("/etc/profile.d/x.sh", "persist.shellrc"),
    ],
)
def test_write_classes(path: str, klass: str) -> None:
    assert klass in write(path)
    assert klass not in read(path)


@pytest.mark.parametrize("path", ["", "a\x00b", "/" + "a" * 5000])
def test_unusable_paths_are_opaque(path: str) -> None:
    assert read(path) == {"fs.opaque"}


@pytest.mark.parametrize("value", [None, 1, ["a"], {"path": "a"}])
def test_wrong_type_is_invalid(value: object) -> None:
    assert [c.name for c in inspect_fs_write(value, CTX)] == ["inspect.invalid"]


def test_registered() -> None:
    assert INSPECTORS["fs.read"] is inspect_fs_read
    assert INSPECTORS["fs.write"] is inspect_fs_write


def test_workspace_from_context() -> None:
    assert {c.name for c in inspect_fs_read("x", InspectContext(workspace="/srv"))} == {"fs.read:/srv/x"}


_SEGMENTS = st.lists(st.sampled_from(["..", ".", "", "a", "b", "~", ".ssh", "workspace", "etc"]), max_size=10)


@settings(max_examples=300, deadline=None)
@given(_SEGMENTS, st.booleans())
def test_normalised_paths_are_absolute_canonical_and_stable(segments: list[str], absolute: bool) -> None:
    path = ("/" if absolute else "") + "/".join(segments)
    norm = normalize_path(path, "/workspace")
    if norm is None:
        assert path == ""
        return
    assert norm.startswith("/")
    assert "//" not in norm and "/./" not in norm and "/../" not in norm and not norm.endswith("/..")
    assert norm == posixpath.normpath(norm)
    assert normalize_path(norm, "/elsewhere") == norm

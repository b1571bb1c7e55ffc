"""File-path inspectors: one canonical absolute path per argument, plus its risk classes.

Policies match paths by prefix (``fs.write:/workspace/*``), so a path must be
reduced to the single spelling the kernel would resolve before anyone compares
it: relative to the workspace, ``~`` as the simulated home, dot segments and
repeated slashes collapsed, never above ``/``. Symlinks cannot be seen from
here (inspectors do no I/O); the tools resolve them inside their sandbox.
"""

from __future__ import annotations

import fnmatch
import functools
import posixpath
import re
from typing import TYPE_CHECKING, Final

from gatekeeper.models import Capability

if TYPE_CHECKING:
    from gatekeeper.inspectors import InspectContext

__all__ = ["CODE_ROOTS", "HOME", "inspect_fs_read", "inspect_fs_write", "normalize_path", "path_classes"]

HOME: Final = "/root"
# Where an agent's own files live, so where code it writes is recorded and a run of it inherits
# what was written (server/written_code.py): the workspace, and /tmp (the sandbox's private scratch).
CODE_ROOTS: Final = ("/workspace/", "/tmp/")  # noqa: S108 - paths an agent names, not files we open
MAX_PATH_LENGTH: Final = 4096
EVIDENCE_MAX: Final = 200

_SLASHES_RE: Final = re.compile(r"/{2,}")
_SYSTEM_TOPS: Final = frozenset({"etc", "usr", "bin", "sbin", "boot", "proc", "sys", "dev"})
_SECRET_NAMES: Final = frozenset(
    {
        ".netrc",
        "_netrc",
        ".pgpass",
        ".git-credentials",
        ".pypirc",
        ".npmrc",
        ".vault-token",
        "shadow",
        "gshadow",
    }
)
_PROC_SECRETS: Final = frozenset({"environ", "mem", "cmdline"})
_SECRET_SUFFIXES: Final = (".pem", ".key", ".p12", ".pfx", ".jks", ".keystore")
_SECRET_PREFIXES: Final = ("id_rsa", "id_dsa", "id_ecdsa", "id_ed25519")
_ENV_EXAMPLES: Final = frozenset({".env.example", ".env.sample", ".env.template", ".env.dist"})
_SHELLRC_NAMES: Final = frozenset(
    {
        ".bashrc",
        ".bash_profile",
        ".bash_login",
        ".bash_logout",
        ".profile",
        ".zshrc",
        ".zprofile",
        ".zshenv",
        ".zlogin",
        ".kshrc",
        ".mkshrc",
        ".cshrc",
        ".tcshrc",
        "config.fish",
    }
)
_HISTORY_NAMES: Final = frozenset({".bash_history", ".zsh_history", ".sh_history", ".history"})
_SERVICE_PREFIXES: Final = (
    ("etc", "systemd"),
    ("etc", "init.d"),
    ("etc", "init"),
    ("etc", "rc.local"),
    ("etc", "rc.d"),
    ("usr", "lib", "systemd"),
    ("lib", "systemd"),
    ("etc", "xdg", "autostart"),
)
# Files of a working tree that another program runs on its own, later, outside the task and its
# gate: direnv's .envrc (whoever next enters the directory), editors' tasks and settings and dev
# containers (when the folder is opened; a dev container's initializeCommand runs on the host),
# git hook managers (at the next commit), CI pipelines (on the next push, with the repository's
# secrets). By name anywhere in the tree, as .git is: a nested project is opened and pushed too.
_AUTORUN_NAMES: Final = frozenset(
    {
        ".envrc",
        ".pre-commit-config.yaml",
        ".pre-commit-hooks.yaml",
        "lefthook.yml",
        "lefthook.yaml",
        ".lefthook.yml",
        ".lefthook.yaml",
        ".devcontainer.json",
        ".gitlab-ci.yml",
        ".travis.yml",
        "Jenkinsfile",
        "azure-pipelines.yml",
        "bitbucket-pipelines.yml",
    }
)
_AUTORUN_DIRS: Final = frozenset({".husky", ".githooks", ".devcontainer", ".circleci", ".buildkite"})
_AUTORUN_PAIRS: Final = (
    (".github", "workflows"),
    (".github", "actions"),
    (".vscode", "tasks.json"),
    (".vscode", "settings.json"),
    (".vscode", "launch.json"),
    (".gitlab", "ci"),
)
_AUTORUN_SUFFIXES: Final = (".code-workspace",)


def normalize_path(path: str, cwd: str = "/workspace") -> str | None:
    """The absolute, canonical spelling of ``path`` seen from ``cwd``; None if it cannot be one."""
    if not path or "\x00" in path or len(path) > MAX_PATH_LENGTH:
        return None
    first = path[0]
    if first == "~":
        if path == "~" or path[1] == "/":
            path = HOME + path[1:]
        else:
            user, sep, rest = path[1:].partition("/")
            path = (HOME if user == "root" else f"/home/{user}") + sep + rest
    elif first != "/":
        path = f"{cwd}/{path}"
    if path[0] == "/" and "//" not in path and "/." not in path and path[-1] != "/":
        return path  # already canonical (no empty, ``.`` or ``..`` segment): what normpath returns
    # normpath keeps a leading "//" (POSIX leaves it implementation-defined); Linux does not.
    return posixpath.normpath(_SLASHES_RE.sub("/", path))


# Every test of credential_classes needs one of these in the lower-cased path (each is a
# substring of the name, segment pair or suffix tested): a path with none has no credential class.
_CREDENTIAL_HINT_RE: Final = re.compile(
    r"\.(?:ssh|aws|azure|kube|docker|pgpass|git-credentials|pypirc|npmrc|vault-token|env|pem|key|p12|pfx|jks)"
    r"|/(?:etc/ssh|proc/|run/secrets)|netrc|authorized_keys|gcloud|shadow|id_"
    r"|krb5cc|/tmp/(?:ssh-|tmux-|\.x11-unix|\.ice-unix|systemd-private-)|/run/(?:screen|user/)|ssl/private"
)
# What other sessions leave in the shared /tmp and /run: a Kerberos ticket cache, an ssh agent's
# socket, a terminal multiplexer's or X server's socket (keystrokes into someone's shell), another
# service's private /tmp. Reading, writing or linking them hands over that session.
_SESSION_DIRS: Final = ("ssh-", "tmux-", ".x11-unix", ".ice-unix", "systemd-private-")


def _has_seq(parts: list[str], seq: tuple[str, ...]) -> bool:
    n = len(seq)
    return any(tuple(parts[i : i + n]) == seq for i in range(len(parts) - n + 1))


def _starts(parts: list[str], *prefixes: tuple[str, ...]) -> bool:
    return any(tuple(parts[: len(p)]) == p for p in prefixes)


def _process_secret(parts: list[str]) -> bool:
    """``/proc/<pid>/environ`` (and ``mem``, ``task/<tid>/environ``...): another process's secrets."""
    if not parts or parts[0] != "proc" or parts[-1] not in _PROC_SECRETS:
        return False
    return len(parts) == 3 or (len(parts) == 5 and parts[2] == "task")


_GLOB_RE: Final = re.compile(r"[*?\[]")
# What a glob in a path is tried against: a name of each kind of credential file or folder the
# classes below know (``cat .e*`` reads .env, ``cat ~/.ss?/id_rsa`` a key). Matched as find's
# -name does (a leading dot is no exception: dotglob, find, python's glob.glob with hidden names).
_CREDENTIAL_WITNESSES: Final = tuple(
    sorted(
        {*_SECRET_NAMES, ".env", ".env.secret", *(f"secret{s}" for s in _SECRET_SUFFIXES),
         *_SECRET_PREFIXES, "authorized_keys", ".ssh", ".aws", ".azure", ".kube", ".docker", "gcloud",
         "config.json", "environ", "krb5cc_0", "secrets"}
    )
)  # fmt: skip
# Ordinary names: a glob that matches one of them too reads whatever is there (``src/*``,
# ``*.py``), as ``grep -r`` does, and is judged by the folder, not as aimed at credentials.
_ORDINARY_WITNESSES: Final = ("main.py", "README.md", "data.csv", "notes.txt", "src", "x")
MAX_GLOB_WITNESSES: Final = 64


def glob_witnesses(path: str) -> list[str]:
    """Paths a glob in ``path`` could stand for that are credentials: each globbed segment that
    matches no ordinary name is replaced by each credential name it matches (at most 64 paths)."""
    out = [""]
    for part in path.split("/")[1:]:
        if _GLOB_RE.search(part) is None or any(fnmatch.fnmatchcase(o, part) for o in _ORDINARY_WITNESSES):
            choices = [part]
        else:
            choices = [w for w in _CREDENTIAL_WITNESSES if fnmatch.fnmatchcase(w, part)] or [part]
        out = [f"{head}/{c}" for head in out for c in choices][:MAX_GLOB_WITNESSES]
    return [p for p in out if p != path]


def credential_classes(path: str) -> list[str]:
    """Credential classes of a normalised path (reading these is already a leak). A glob is the
    names it may match: ``.e*`` is ``.env``."""
    if _GLOB_RE.search(path) is not None:
        found = dict.fromkeys(_credential_classes(path))
        for witness in glob_witnesses(path):
            found.update(dict.fromkeys(_credential_classes(witness)))
        return list(found)
    return _credential_classes(path)


def _credential_classes(path: str) -> list[str]:
    low = path.lower()
    if _CREDENTIAL_HINT_RE.search(low) is None:
        return []  # most paths: none of the names below occurs anywhere in it
    parts = low.split("/")[1:]
    base = parts[-1] if parts else ""
    out: list[str] = []
    if ".ssh" in parts or base.startswith("authorized_keys") or _starts(parts, ("etc", "ssh")):
        out.append("cred.ssh")
    if (
        ".aws" in parts
        or ".azure" in parts
        or ".kube" in parts
        or _has_seq(parts, (".config", "gcloud"))
        or _has_seq(parts, (".docker", "config.json"))
    ):
        out.append("cred.cloud")
    if (
        base in _SECRET_NAMES
        or _process_secret(parts)
        or _starts(parts, ("run", "secrets"), ("var", "run", "secrets"))
        or base == ".env"
        or (base.startswith(".env.") and base not in _ENV_EXAMPLES)
        or base.endswith(_SECRET_SUFFIXES)
        or base.startswith(_SECRET_PREFIXES)
        or base.startswith("krb5cc")
        or (len(parts) > 1 and parts[0] == "tmp" and parts[1].startswith(_SESSION_DIRS))
        or _starts(parts, ("run", "screen"), ("run", "user"))
        # TLS private keys: /etc/ssl/private, and /usr/lib/ssl/private, the link to it that
        # OpenSSL's directory holds (/usr may be read), with a glob or a listing of it
        or _has_seq(parts, ("ssl", "private"))
    ):
        out.append("cred.secret")
    return out


def path_classes(path: str, *, write: bool) -> list[str]:
    """Risk classes of a normalised absolute path; writes add tampering and persistence."""
    out = credential_classes(path)
    _, slash, rest = path.partition("/")
    top = rest.partition("/")[0] if slash else ""  # parts[0] below, without splitting a read's path
    if top in _SYSTEM_TOPS or top.startswith("lib"):
        out.append("fs.system")
    if not write:
        return out
    parts = path.split("/")[1:]
    base = parts[-1] if parts else ""
    if ".git" in parts or base == ".gitmodules":  # any repository's, nested ones too, and .git itself
        out.append("fs.gitdir")  # hooks and config there run code the next time git runs
    if _autorun(parts, base):
        out.append("fs.autorun")
    if _starts(parts, ("var", "log")) or base in _HISTORY_NAMES:
        out.append("log.tamper")
    if "hugepages" in base or _starts(parts, ("sys", "kernel", "mm", "hugepages")) or base == "msr":
        out.append("crypto.mine")  # hugepages and MSR tuning prepare a machine for mining
    if (
        top == "etc" and len(parts) > 1 and (parts[1].startswith("cron") or parts[1] == "anacrontab")
    ) or _starts(parts, ("var", "spool", "cron"), ("var", "spool", "at")):
        out.append("persist.cron")
    if (
        _starts(parts, *_SERVICE_PREFIXES)
        or _has_seq(parts, (".config", "systemd"))
        or _has_seq(parts, (".config", "autostart"))
    ):
        out.append("persist.service")
    if base in _SHELLRC_NAMES or _starts(
        parts,
        ("etc", "profile"),
        ("etc", "profile.d"),
        ("etc", "bash.bashrc"),
        ("etc", "zsh"),
        ("etc", "environment"),
    ):
        out.append("persist.shellrc")
    return out


def _autorun(parts: list[str], base: str) -> bool:
    """A file another program runs on its own later (``_AUTORUN_NAMES``), or a folder of them."""
    return (
        base in _AUTORUN_NAMES
        or base.endswith(_AUTORUN_SUFFIXES)
        or not _AUTORUN_DIRS.isdisjoint(parts)
        or any(_has_seq(parts, pair) for pair in _AUTORUN_PAIRS)
    )


def path_capabilities(path: str, cwd: str, *, write: bool) -> list[Capability]:
    """``fs.read:``/``fs.write:`` for one path plus its classes, or ``fs.opaque``."""
    if len(path) <= _CACHE_MAX_PATH:
        return list(_path_capabilities_cached(path, cwd, write))
    return list(_path_capabilities(path, cwd, write))


def _path_capabilities(path: str, cwd: str, write: bool) -> tuple[Capability, ...]:
    ev = path[:EVIDENCE_MAX]
    norm = normalize_path(path, cwd)
    if norm is None:
        return (Capability("fs.opaque", f"unusable path: {ev!r}"),)
    verb = "fs.write" if write else "fs.read"
    return (Capability(f"{verb}:{norm}", ev), *(Capability(c, ev) for c in path_classes(norm, write=write)))


# Agents read the same few paths over and over; the answer depends only on the arguments.
_CACHE_MAX_PATH = 1024
_path_capabilities_cached = functools.lru_cache(maxsize=4096)(_path_capabilities)


def _inspect(value: object, ctx: InspectContext, *, write: bool) -> list[Capability]:
    if not isinstance(value, str):
        return [Capability("inspect.invalid", f"path must be a string, not {type(value).__name__}")]
    return path_capabilities(value, ctx.workspace, write=write)


def inspect_fs_read(value: object, ctx: InspectContext) -> list[Capability]:
    """Inspector for a path that will be read."""
    return _inspect(value, ctx, write=False)


def inspect_fs_write(value: object, ctx: InspectContext) -> list[Capability]:
    """Inspector for a path that will be written."""
    return _inspect(value, ctx, write=True)

"""What particular programs do with their arguments, for the shell inspector.

``shell.py`` knows bash; this module knows programs: which ones are wrappers
whose argument is the real program (``sudo``, ``env``, ``timeout``...), how
``ssh``/``nc``/``socat`` spell tunnels, reverse shells and destinations, and
which names alone are a capability (miners, scanners, firewalls). Handlers get
the argv after the program name and report back through the ``Inspection``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from gatekeeper.inspectors.paths import CODE_ROOTS

if TYPE_CHECKING:
    from gatekeeper.inspectors.shell import Inspection


@dataclass(slots=True, unsafe_hash=True)
class Word:
    """One argv word: its text after quote removal and whether that text is final.

    ``literal`` is False when an expansion makes the run-time value unknowable;
    ``runs`` names the programs its substitutions start (for ``bash <(curl ...)``);
    ``static`` is what a non-literal word expands to when that is knowable after all
    (``$'\\x73sh'``, ``${IFS}``, ``$(printf ssh)``): a second reading, see ``shell_static``.

    A value: never changed once built. Not ``frozen=True`` only because one is built per argv
    word and a frozen dataclass's ``__init__`` costs three times as much.
    """

    text: str
    literal: bool = True
    runs: frozenset[str] = frozenset()
    static: tuple[str, ...] | None = None


Handler = Callable[["Inspection", str, list[Word], int], set[str]]

# Markers travel with program families through pipelines; NUL never occurs in a word.
STDIN_EXEC: Final = "\x00stdin-exec"  # runs whatever arrives on stdin as code
DECODES: Final = "\x00decode"  # turns encoded text back into bytes (base64 -d, xxd -r)

SHELLS: Final = frozenset({"sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "fish", "csh", "tcsh"})
INTERPRETERS: Final = SHELLS | {"python", "pypy", "perl", "ruby", "node", "php", "lua", "source", "eval"}
DOWNLOADERS: Final = frozenset(
    {
        "curl",
        "wget",
        "fetch",
        "aria2c",
        "http",
        "https",
        "xh",
        "curlie",
        "lwp-download",
        "lwp-request",
        "axel",
    }
)
NET_CLIENTS: Final = frozenset({"nc", "ncat", "netcat", "telnet", "socat", "openssl"})
# Every miner's spelling of the stratum protocol in a URL: stratum+tcp, stratum1+tls, stratums...
STRATUM_RE: Final = re.compile(r"stratum[0-9]*(?:\+[a-z0-9]+)*s?://", re.IGNORECASE)
# A Monero address (standard or subaddress: 95 base58 characters from 4 or 8; integrated: 106).
# Nothing but a miner's command line or configuration names the wallet it pays.
_B58: Final = "1-9A-HJ-NP-Za-km-z"
WALLET_RE: Final = re.compile(rf"(?<![{_B58}])[48][0-9AB][{_B58}]{{93}}(?:[{_B58}]{{11}})?(?![{_B58}])")
INJECTION_VARS: Final = frozenset({"LD_PRELOAD", "LD_AUDIT", "BASH_ENV", "ENV", "PROMPT_COMMAND"})
COMMAND_VARS: Final = frozenset(
    {
        "GIT_SSH_COMMAND",
        "GIT_SSH",
        "RSYNC_RSH",
        "GIT_PROXY_COMMAND",
        "GIT_EXTERNAL_DIFF",
        "GIT_PAGER",
        "PAGER",
        "EDITOR",
        "VISUAL",
        "GIT_EDITOR",
        "GIT_SEQUENCE_EDITOR",
        "GIT_ASKPASS",
        "SSH_ASKPASS",
        "SUDO_ASKPASS",
        "MANPAGER",
        "SYSTEMD_PAGER",
        "BROWSER",
    }
)

# less's input preprocessor and postprocessor: command lines less runs for every file it shows,
# whichever program starts less as its pager (git, man, systemctl...).
PREPROCESSOR_VARS: Final = frozenset({"LESSOPEN", "LESSCLOSE"})

_MINERS = (
    "xmrig",
    "ethminer",
    "t-rex",
    "lolminer",
    "nbminer",
    "cgminer",
    "bfgminer",
    "cpuminer",
    "minerd",
    "phoenixminer",
    "gminer",
    "nanominer",
    "teamredminer",
    "xmr-stak",
    "ccminer",
    "srbminer",
    "rigel",
    "onezerominer",
    "bzminer",
    "wildrig",
    "teamblackminer",
    "kawpowminer",
    "nheqminer",
    "hellminer",
    "cryptodredge",
    "z-enemy",
    "bminer",
    "nsfminer",
    "sgminer",
    "xmrigcc",
    "verthashminer",
    "coin-hive",
    "coinhive",
    # libraries that hash for a pool from Python or Node (pip install pycryptonight, import pyrx)
    "pycryptonight",
    "pyrx",
    "cryptonight-hash",
    "node-cryptonight",
    "multi-hashing",
)
MINERS: Final = _MINERS
# Miners renamed to anything still take their own options: these are theirs.
_MINER_FLAGS: Final = (
    "--donate-level",
    "--randomx",
    "--nicehash",
    "--rig-id",
    "--cpu-max-threads-hint",
    "--ethstratum",  # lolMiner, NBMiner
    "--dualpool",  # lolMiner's second coin
    "--dualmode",
    "-epool",  # PhoenixMiner: -epool/-ewal/-epsw
    "-ewal",
    "--fee-wallet",
)
_MINING_ALGOS: Final = frozenset(
    {
        "rx/0",
        "rx/wow",
        "randomx",
        "cryptonight",
        "cn/r",
        "cn/0",
        "kawpow",
        "ethash",
        "etchash",
        "autolykos2",
        "kheavyhash",
        "ghostrider",
        "argon2/chukwa",
        "equihash",
        "octopus",
        "progpow",
        "sha256d",
        "scrypt",
        # more coins' proof-of-work, as miners spell them
        "rx/arq",
        "rx/sfx",
        "rx/graft",
        "cn-heavy",
        "cn-heavy/xhv",
        "cn/half",
        "cn-pico",
        "cn/ccx",
        "cn/gpu",
        "firopow",
        "zelhash",
        "beamhash",
        "beamhashiii",
        "cuckatoo32",
        "cuckaroo29",
        "karlsenhash",
        "pyrinhash",
        "nexapow",
        "dynexsolve",
        "verthash",
        "x16r",
        "x16rv2",
        "x25x",
        "lyra2z",
        "yescryptr16",
        "yespowerr16",
        "heavyhash",
        "fishhash",
        "meowpow",
        "evrprogpow",
    }
)
POOL_RE: Final = re.compile(r"(?:[A-Za-z0-9-]+\.)+[A-Za-z0-9-]+:\d{2,5}")
STRATUM_METHODS: Final = ("mining.subscribe", "mining.authorize", "mining.submit", "mining.notify")
_TUNNELS = (
    "autossh",
    "chisel",
    "ngrok",
    "frpc",
    "frps",
    "cloudflared",
    "bore",
    "lt",
    "localtunnel",
    "zrok",
    "pagekite",
    "pagekite.py",
    "inlets",
    "rathole",
    "sshuttle",
    "gost",
    "iodine",
    "ptunnel",
    "ptunnel-ng",
    "stunnel",
    "openvpn",
    "wg-quick",
    "npc",
    "ligolo-ng",
    # more of the same: tunnel services, SOCKS/VPN relays, reverse proxies (also python -m NAME)
    "pyngrok",
    "sshtunnel",
    "pproxy",
    "tunnelmole",
    "tmole",
    "untun",
    "loclx",
    "devtunnel",
    "playit",
    "revsocks",
    "rpivot",
    "dnscat",
    "dnscat2",
    "iodined",
    "v2ray",
    "xray",
    "sing-box",
    "hysteria",
    "brook",
    "sslocal",
    "ss-local",
    "ssserver",
    "ss-server",
)
_FIREWALLS = (
    "iptables",
    "ip6tables",
    "iptables-legacy",
    "iptables-nft",
    "iptables-restore",
    "ip6tables-restore",
    "nft",
    "ufw",
    "firewall-cmd",
    "ebtables",
    "arptables",
)
_SCANNERS = ("nmap", "masscan", "zmap", "rustscan", "naabu", "unicornscan", "arp-scan")
TABLE_CAPS: Final[dict[str, tuple[str, ...]]] = {
    **{n: ("crypto.mine",) for n in _MINERS},
    **{n: ("net.tunnel",) for n in _TUNNELS},
    **{n: ("net.firewall",) for n in _FIREWALLS},
    **{n: ("net.scan",) for n in _SCANNERS},
    **{n: ("priv.escalate",) for n in ("sudo", "su", "doas", "pkexec", "runuser")},
    **{n: ("persist.cron",) for n in ("at", "batch")},
    **{n: ("crypto.mine",) for n in ("wrmsr", "rdmsr", "randomx-boost")},
    **{n: ("net.scan",) for n in ("fping", "hping3", "netdiscover", "nbtscan", "onesixtyone")},
    "ssh-copy-id": ("cred.ssh",),  # appends a key to a remote authorized_keys
    "systemd-run": ("persist.service",),  # a transient unit or timer outlives the call
    "auditctl": ("log.tamper",),
    "auditd": ("log.tamper",),
    **{n: ("persist.service",) for n in ("update-rc.d", "chkconfig")},
}

# The shell's own commands: they change the shell, they are not programs a policy grants.
BUILTINS: Final = frozenset(
    {
        "cd", "pushd", "popd", "dirs", "export", "declare", "typeset", "local", "readonly", "unset",
        "set", "shopt", "shift", "return", "exit", "break", "continue", "wait", "umask", "ulimit",
        "hash", "type", "read", "getopts", "times", "jobs", "bg", "fg", "disown", ":", "command",
        "builtin", "caller", "compgen", "complete", "compopt", "help", "logout", "mapfile",
        "readarray", "let", "trap",
    }
)  # fmt: skip
# Variables that hold credentials by convention; printing or expanding them leaks them.
_SECRET_NAMES: Final = frozenset(
    {
        "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID", "GITHUB_TOKEN", "GH_TOKEN",
        "GITLAB_TOKEN", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN",
        "NPM_TOKEN", "PYPI_TOKEN", "TWINE_PASSWORD", "DOCKER_PASSWORD", "SLACK_TOKEN", "DATABASE_URL",
        "GOOGLE_APPLICATION_CREDENTIALS", "AZURE_CLIENT_SECRET", "VAULT_TOKEN", "GATEKEEPER_TOKEN",
        "SSH_AUTH_SOCK", "PGPASSWORD", "MYSQL_PWD", "REDIS_PASSWORD", "STRIPE_SECRET_KEY",
    }
)  # fmt: skip
_SECRET_RE: Final = re.compile(
    r"[A-Z0-9_]*(?:SECRET|PASSWORD|PASSWD|PRIVATE_KEY|API_KEY|APIKEY|ACCESS_KEY|AUTH_TOKEN|_TOKEN|CREDENTIALS?)[A-Z0-9_]*"
    # a name that ends in a key, a personal access token, a JWT, a DSN (Sentry's carries its key)
    # or an auth value (npm's _auth), docker's auth config, and URLs of databases and brokers,
    # which carry their passwords
    r"|(?:[A-Z0-9_]*_)?(?:KEY|PAT|JWT|DSN|AUTH)|[A-Z0-9_]*AUTH_CONFIG[A-Z0-9_]*"
    r"|(?:[A-Z0-9_]*_)?(?:DATABASE|DB|REDIS|MONGO|MONGODB|POSTGRES|POSTGRESQL|PG|MYSQL|AMQP|BROKER|RABBITMQ)_UR[LI]"
)
_PARAM_NAME_RE: Final = re.compile(r"[#!]?([A-Za-z_][A-Za-z0-9_]*)")
_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EXPANSION_RE: Final = re.compile(r"\$\{?[#!]?([A-Za-z_][A-Za-z0-9_]*)")


def is_secret_name(param: str) -> bool:
    """The variable a ``$NAME``/``${NAME:...}``/``${!NAME}`` expansion reads holds a credential."""
    m = _PARAM_NAME_RE.match(param)
    if m is None:
        return False
    name = m.group(1).upper()
    return name in _SECRET_NAMES or _SECRET_RE.fullmatch(name) is not None


def secret_expansions(text: str) -> list[str]:
    """Secret variables expanded in an unquoted here-document body (or any text bash expands)."""
    return [m.group(1) for m in _EXPANSION_RE.finditer(text) if is_secret_name(m.group(1))]


_COIN_MINER_RE: Final = re.compile(
    r"(?<![a-z0-9])(?:xmr|monero|eth|etc|btc|bitcoin|ltc|rvn|kas|kaspa|zec|erg|cpu|gpu|cuda|opencl|"
    r"crypto|coin|rx)[-_]?miner"
)
_MINER_NAME_RE: Final = re.compile(
    r"(?<![a-z0-9])(?:" + "|".join(re.escape(m) for m in _MINERS) + r")(?![a-z])"
)


# Programs that fetch, unpack, rename or mark files executable: a miner's name among their
# words (an archive, a --transform expression, a target) is a miner being set up.
FILE_TOOLS: Final = frozenset(
    {"tar", "gtar", "bsdtar", "unzip", "7z", "gzip", "gunzip", "xz", "unxz", "bzip2", "mv", "cp", "ln",
     "install", "chmod", "rsync", "scp", "curl", "wget", "rename", "ar", "cpio",
     # package tools: a miner installed, or run, by its package name (pip install xmrig, python -m)
     "pip", "pip3", "uv", "uvx", "pipx", "poetry", "npm", "npx", "yarn", "pnpm", "cargo", "go", "gem",
     "python", "pypy", "node"}
)  # fmt: skip


def mining_text(text: str) -> bool:
    """Text only a miner's setup contains, in a word or a file: a stratum URL, a stratum method,
    a miner's JSON configuration (``"pools": [{"url": "host:port"}]``) or a Monero wallet."""
    if "://" in text and STRATUM_RE.search(text):
        return True
    if "mining." in text and any(m in text for m in STRATUM_METHODS):
        return True
    if '"pools"' in text and POOL_RE.search(text):
        return True
    return len(text) >= 95 and WALLET_RE.search(text) is not None


# chisel's remote (reverse) forward, R:[bind:]port:host:port or R:socks: a renamed chisel, or any
# client spelling it so, opens a port on the far side back into this machine.
REVERSE_SPEC_RE: Final = re.compile(
    r"R:(?:socks|(?:[0-9A-Za-z.\[\]-]+:)?[0-9]{1,5}:(?:[0-9A-Za-z.\[\]-]+:)?[0-9A-Za-z.\[\]-]+(?::[0-9]{1,5})?)(?:/(?:tcp|udp))?"
)
_PACKAGE_DIRS: Final = ("node_modules/", "site-packages/", "dist-packages/")
_SCRIPT_SUFFIXES: Final = (".js", ".cjs", ".mjs", ".py", ".pyw")


def package_programs(path: str) -> set[str]:
    """The program names a script path of an installed package stands for, lower-cased:
    ``node_modules/localtunnel/bin/lt.js`` is ``localtunnel`` and ``lt``, ``node_modules/.bin/lt``
    is ``lt``, ``.../site-packages/sshuttle/__main__.py`` is ``sshuttle``. Empty for other paths:
    a workspace script is the agent's own, read by its path."""
    low = path.lower()
    cut = max(low.rfind(d) for d in _PACKAGE_DIRS)
    if cut < 0 and "/.bin/" not in low and not low.startswith(".bin/"):
        return set()
    base = posixpath.basename(low)
    for suffix in _SCRIPT_SUFFIXES:
        base = base.removesuffix(suffix)
    names = {base} if base not in ("__main__", "index", "main", "cli", "") else set()
    if cut >= 0:
        parts = low[cut:].split("/")[1:]
        if parts and parts[0].startswith("@") and len(parts) > 1:  # @scope/name
            parts = parts[1:]
        if parts and parts[0] not in (".bin", ""):
            names.add(parts[0])
    return names


def names_miner(text: str) -> bool:
    """A miner's name as a word of a path, URL, archive or rename expression (``xmrig-6.21.tar.gz``),
    or a coin's or a device's miner (``xmr-miner``, ``cuda_miner``, ``pycryptonight``)."""
    low = text.lower()
    if "miner" in low and _COIN_MINER_RE.search(low) is not None:
        return True
    return any(m in low for m in _MINERS) and _MINER_NAME_RE.search(low) is not None


_VERSIONED_RE: Final = re.compile(r"(python|pypy|perl|ruby|node|php|lua|bash|zsh|ksh)[0-9][0-9.]*")
_VERSION_END: Final = frozenset("0123456789.")
_ASSIGN_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\+?=")


_PIP_VERSIONED_RE: Final = re.compile(r"pip([0-9])[0-9.]*")  # pip3.11: pip3's table
# python3.11, pip3.12, pypy3.10: the policy's name drops the minor version (python3, pip3), so a
# pack that allows python3 allows the interpreter whatever its minor version; python2 stays python2.
_MINOR_VERSION_RE: Final = re.compile(r"((?:python|pypy|pip|perl|ruby|php|lua)[0-9]+)\.[0-9][0-9.]*")


def family(name: str) -> str:
    """The rule key for a basename: lower-cased, interpreter version suffix dropped."""
    key = name.lower()
    m = _VERSIONED_RE.fullmatch(key) if key[-1:] in _VERSION_END else None  # the regex ends so
    if m:
        return m.group(1)
    if key.startswith("pip") and key[-1:] in _VERSION_END:
        pm = _PIP_VERSIONED_RE.fullmatch(key)
        if pm:
            return "pip3" if pm.group(1) == "3" else "pip"
    return "node" if key == "nodejs" else key


def rule_name(name: str) -> str:
    """The program's name in ``proc.exec:NAME``: as typed, but ``python3.11`` is ``python3``."""
    if name[-1:] not in _VERSION_END:
        return name
    m = _MINOR_VERSION_RE.fullmatch(name)
    return m.group(1) if m else name


def has_space(t: str) -> bool:
    """``any(c.isspace() for c in t)``, without the per-character loop for printable ASCII."""
    if t.isascii() and t.isprintable():  # the only whitespace left in printable ASCII is " "
        return " " in t
    return any(c.isspace() for c in t)


def looks_like_reverse_shell(text: str) -> bool:
    """Inline interpreter code that wires a socket to a shell (python/perl/ruby/php one-liners)."""
    low = text.lower()
    if "fsockopen" in low:
        return True
    return "socket" in low and any(
        k in low
        for k in (
            "dup2",
            "/bin/sh",
            "/bin/bash",
            "pty.spawn",
            "subprocess",
            "exec(",
            "exec ",
            "spawn(",
            "popen",
            "system",
            "fdopen",
            "sh -i",
        )
    )


def looks_like_miner(texts: Sequence[str]) -> bool:
    """A renamed miner still says ``--donate-level``, an algorithm, or ``-o pool:port -u wallet``.

    Each of these is an option word: words that do not start with ``-`` are only read as values.
    """
    pool = user = False
    for i, t in enumerate(texts):
        if not t.startswith("-"):
            continue
        low = t.lower()
        if low.startswith(_MINER_FLAGS):
            return True
        key, eq, val = low.partition("=")
        if not eq:
            val = texts[i + 1].lower() if i + 1 < len(texts) else ""
        if key in ("-a", "--algo", "--algorithm") and val in _MINING_ALGOS:
            return True
        if key == "--coin":
            return True
        if key in ("-o", "--url", "--pool", "-pool", "--server") and POOL_RE.fullmatch(val):
            pool = True
        elif key == "--server" and _HOST_RE.fullmatch(val) and "--port" in texts:
            pool = True  # gminer, lolMiner: --server HOST --port N --user WALLET
        elif key in _POOL_COMPANIONS:
            user = True
    return pool and user


# Options that come with a pool (-o host:port) on a miner's command line: the wallet, the pool's
# password, threads, the GPU back-ends, running in the background, CPU limits.
_POOL_COMPANIONS: Final = frozenset(
    "-u --user --wallet -w -p --pass -t --threads --cuda --opencl --cuda-devices --opencl-devices -b -B "
    "--background --max-cpu-usage --cpu-priority --tls -k --keepalive -wal -wallet -worker --worker "
    "--devices -d --pers --rig-id".split()
)
_HOST_RE: Final = re.compile(r"(?:[A-Za-z0-9-]+\.)+[A-Za-z0-9-]+")


# -- option parsing ------------------------------------------------------
@dataclass(slots=True)
class Parsed:
    """getopt-style split of an argv: options with values, positionals, where parsing stopped."""

    opts: list[tuple[str, Word | None]] = field(default_factory=list)
    pos: list[Word] = field(default_factory=list)
    index: int = 0
    unknown: Word | None = None  # a non-literal word where an option could hide


def parse_opts(
    args: Sequence[Word], values: frozenset[str], *, max_pos: int | None = None, assignments: bool = False
) -> Parsed:
    """Options may be clustered (``-NfR x``), attached (``-p2222``, ``--user=x``) or separate."""
    p = Parsed()
    i = 0
    while i < len(args):
        w, t = args[i], args[i].text
        if not w.literal:
            p.unknown = p.unknown or w
        if w.literal and t == "--":
            i += 1
            break
        if w.literal and len(t) > 1 and t[0] == "-":
            nxt = args[i + 1] if i + 1 < len(args) else None
            if t.startswith("--"):
                name, eq, val = t.partition("=")
                if eq:
                    p.opts.append((name, Word(val)))
                elif name in values:
                    p.opts.append((name, nxt))
                    i += 1
                else:
                    p.opts.append((name, None))
                i += 1
                continue
            if t in values:  # also multi-letter single-dash options such as socat's -lf
                p.opts.append((t, nxt))
                i += 2
                continue
            for j in range(1, len(t)):
                o = "-" + t[j]
                if o in values:
                    if j + 1 == len(t):
                        p.opts.append((o, nxt))
                        i += 1
                    else:
                        p.opts.append((o, Word(t[j + 1 :])))
                    break
                p.opts.append((o, None))
            i += 1
            continue
        if assignments and w.literal and _ASSIGN_RE.match(t):
            p.opts.append(("=", w))
            i += 1
            continue
        if max_pos is not None and len(p.pos) >= max_pos:
            break
        p.pos.append(w)
        i += 1
    while max_pos is not None and len(p.pos) < max_pos and i < len(args):
        p.pos.append(args[i])
        i += 1
    p.index = i
    return p


def literal_text(insp: Inspection, w: Word | None, what: str) -> str | None:
    if w is None:
        return None
    if not w.literal:
        insp.opaque(f"{what} not known statically: {w.text}")
        return None
    return w.text


def option_values(args: list[Word], names: tuple[str, ...]) -> list[Word]:
    """Every value given to the options ``names``: ``-o X``, ``-oX`` (two-letter names), ``--opt=X``."""
    out: list[Word] = []
    for i, w in enumerate(args):
        t = w.text
        if t in names and i + 1 < len(args):
            out.append(args[i + 1])
        for n in names:
            if t.startswith(n + "=") or (len(n) == 2 and t.startswith(n) and len(t) > 2 and "=" not in n):
                out.append(Word(t[len(n) + 1 :] if t.startswith(n + "=") else t[2:], w.literal))
    return out


# -- wrappers ------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Wrap:
    """A program whose arguments name another program (or a script) to run."""

    values: frozenset[str] = frozenset()
    positionals: int = 0
    assignments: bool = False
    scripts: frozenset[str] = frozenset()  # options whose value is a shell command line
    runs_rest: bool = True
    shell_if_empty: bool = False


def fs(*names: str) -> frozenset[str]:
    return frozenset(names)


WRAPPERS: Final[dict[str, Wrap]] = {
    "nohup": Wrap(),
    "command": Wrap(),
    "builtin": Wrap(),
    "setsid": Wrap(),
    "unbuffer": Wrap(),
    "caffeinate": Wrap(),
    "firejail": Wrap(),
    "exec": Wrap(fs("-a")),
    "sudo": Wrap(
        fs(
            "-u",
            "-g",
            "-h",
            "-p",
            "-C",
            "-D",
            "-r",
            "-t",
            "-T",
            "-U",
            "-R",
            "--user",
            "--group",
            "--host",
            "--prompt",
            "--close-from",
            "--chdir",
            "--role",
            "--type",
            "--command-timeout",
            "--other-user",
            "--chroot",
        ),
        assignments=True,
        shell_if_empty=True,
    ),
    "doas": Wrap(fs("-u", "-C"), shell_if_empty=True),
    "pkexec": Wrap(fs("--user"), shell_if_empty=True),
    "su": Wrap(
        fs("-s", "-g", "-G", "-w", "--shell", "--group", "--supp-group"),
        scripts=fs("-c", "--command", "--session-command"),
        runs_rest=False,
        shell_if_empty=True,
    ),
    "timeout": Wrap(fs("-s", "-k", "--signal", "--kill-after"), positionals=1),
    "nice": Wrap(fs("-n", "--adjustment")),
    "ionice": Wrap(fs("-c", "-n", "-p", "-P", "-u", "--class", "--classdata", "--pid", "--pgid", "--uid")),
    "taskset": Wrap(positionals=1),
    "chrt": Wrap(positionals=1),
    "xargs": Wrap(
        fs(
            "-a",
            "-d",
            "-E",
            "-I",
            "-L",
            "-n",
            "-P",
            "-s",
            "--arg-file",
            "--delimiter",
            "--eof",
            "--replace",
            "--max-lines",
            "--max-args",
            "--max-procs",
            "--max-chars",
            "--process-slot-var",
        )
    ),
    "time": Wrap(fs("-f", "-o", "--format", "--output")),
    "stdbuf": Wrap(fs("-i", "-o", "-e", "--input", "--output", "--error")),
    "env": Wrap(fs("-u", "-C", "--unset", "--chdir"), assignments=True, scripts=fs("-S", "--split-string")),
    "strace": Wrap(fs("-e", "-o", "-p", "-s", "-u", "-E", "-a", "-b", "-I", "-O", "-P", "-S", "-X", "-U")),
    "ltrace": Wrap(fs("-e", "-o", "-p", "-s", "-u", "-a", "-n")),
    "flock": Wrap(
        fs("-w", "-E", "--timeout", "--conflict-exit-code"), positionals=1, scripts=fs("-c", "--command")
    ),
    "chroot": Wrap(fs("--userspec", "--groups"), positionals=1, shell_if_empty=True),
    "torsocks": Wrap(fs("-u", "-p", "-a", "-P")),
    "proxychains": Wrap(fs("-f")),
    "proxychains4": Wrap(fs("-f")),
    "sshpass": Wrap(fs("-p", "-f", "-d", "-P")),
    "script": Wrap(
        fs("-E", "-T", "-I", "-O", "-B", "-m", "--log-in", "--log-out", "--log-io", "--log-timing"),
        scripts=fs("-c", "--command"),
        runs_rest=False,
        shell_if_empty=True,
    ),
    "systemd-run": Wrap(
        fs(
            "-p",
            "--property",
            "-u",
            "--unit",
            "--description",
            "-M",
            "--machine",
            "-H",
            "--host",
            "--slice",
            "-E",
            "--setenv",
            "--uid",
            "--gid",
            "--working-directory",
            "--on-calendar",
            "--on-active",
            "--on-boot",
            "--on-startup",
        )
    ),
}
WRAPPERS["runuser"] = WRAPPERS["su"]


def wrapper(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    spec = WRAPPERS[name.lower()]
    p = parse_opts(args, spec.values | spec.scripts, max_pos=spec.positionals, assignments=spec.assignments)
    if p.unknown is not None:
        insp.opaque(f"{name}: cannot tell which program runs past {p.unknown.text}")
        return set()
    ran: set[str] = set()
    scripted = False
    for o, v in p.opts:
        if o == "=" and v is not None:
            insp.assignment(v, depth)
        elif o in spec.scripts:
            scripted = True
            text = literal_text(insp, v, f"{name} {o}")
            if text is not None:
                ran |= insp.source(text, depth + 1)
    rest = args[p.index :]
    if spec.runs_rest and rest:
        if family(name) == "xargs" and _script_from_input(rest):
            insp.opaque(f"{name} {rest[0].text}: the script it runs is named on its input, not here")
        if family(name) == "xargs":
            return ran | _xargs(insp, rest, p.opts, depth)
        return ran | insp.run(rest, depth + 1)
    if name.lower() == "env" and not scripted:
        insp.add("cred.env", f"{name} without a command prints every variable, secrets included")
    if not scripted and spec.shell_if_empty:
        insp.add("proc.shell", f"{name} without a command starts a shell")
        ran.add(STDIN_EXEC)
    return ran


_XARGS_INPUT: Final = "$(xargs input)"  # not a lister: files read or written there are not known


def _xargs(insp: Inspection, argv: list[Word], opts: list[tuple[str, Word | None]], depth: int) -> set[str]:
    """``xargs CMD ARGS``: CMD runs with the words of xargs's input appended (or, with ``-I R``,
    put in place of ``R``). Those words are what a pipe from ``echo``/``printf``/a lister
    carries (``Inspection.pipe_words``), else unknown: a non-literal word, so that a file read
    or written there, a destination or an option is doubt (``xargs cp job < targets.txt``)."""
    from_file = any(o in ("-a", "--arg-file") for o, _ in opts)
    known = None if from_file else insp.stdin_words
    words = known if known is not None else [Word(_XARGS_INPUT, False)]
    # Unknown input: CMD as written is read too (``xargs bash -c`` runs its input as a script).
    ran: set[str] = set(insp.run(argv, depth + 1)) if known is None else set()
    replace = next((v.text for o, v in opts if o in ("-I", "--replace") and v is not None), None)
    if replace is None:
        return ran | insp.run([*argv, *words], depth + 1)
    for w in words[:16]:  # one run per input line
        ran |= insp.run(
            [
                w
                if a.text == replace
                else Word(a.text.replace(replace, w.text), a.literal and w.literal)
                if replace in a.text
                else a
                for a in argv
            ],
            depth + 1,
        )
    return ran


def _script_from_input(argv: list[Word]) -> bool:
    """``xargs python3``: an interpreter given no script, no inline code and no module here runs the
    file its input names (what was written into that file cannot be looked up)."""
    if family(argv[0].text) not in INTERPRETERS:
        return False
    flags = [w.text for w in argv[1:] if w.text.startswith("-")]
    if any(
        f in ("-c", "-m", "-e", "-E", "-r", "--eval", "--print", "-p") or f.startswith(("-c", "-m"))
        for f in flags
    ):
        return False
    return all(w.text.startswith("-") for w in argv[1:])


# -- interpreters ------------------------------------------------------------
def shell(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """``bash -c STRING`` is parsed; any other shell start runs code we cannot see (``proc.shell``)."""
    flags = ""
    i = 0
    while i < len(args):
        w, t = args[i], args[i].text
        if not w.literal and not t.startswith("<("):  # <(...) is a script file; $X could be -c
            insp.opaque(f"{name}: non-literal argument {t}")
            return set()
        if t in ("--", "-"):
            i += 1
            break
        if len(t) < 2 or t[0] not in "-+":
            break
        if t.startswith("--"):
            if t == "--command":
                flags += "c"
            if t in ("--rcfile", "--init-file"):  # run first by an interactive shell (-i), -c too
                _rcfile(insp, name, args[i + 1] if i + 1 < len(args) else None)
            i += 2 if t in ("--rcfile", "--init-file") else 1
            continue
        if t[0] == "-":
            flags += t[1:]
        i += 2 if ("o" in t[1:] or "O" in t[1:]) else 1
    rest = args[i:]
    if "c" in flags:
        if not rest:  # ``xargs bash -c``: the script is appended from somewhere we cannot see
            insp.add("proc.shell", f"{name} -c with its script supplied at run time")
            return {STDIN_EXEC}
        text = literal_text(insp, rest[0], f"{name} -c script")
        return set(insp.source(text, depth + 1)) if text is not None else set()
    if rest and insp.shell_script(family(name), args) is not None:
        return set()  # a workspace script: proc.exec:/workspace/..., like ./x.sh (see run_here)
    insp.add("proc.shell", " ".join([name, *(w.text for w in args)]))
    stdin = not rest or "s" in flags or "i" in flags or (rest[0].literal and is_stdin_path(rest[0].text))
    return {STDIN_EXEC} if stdin else set()


def _rcfile(insp: Inspection, name: str, w: Word | None) -> None:
    """``bash --rcfile F -i -c CMD`` runs F before CMD: a file of the workspace or /tmp is run as
    ``bash F`` runs it (inheriting what was written there); any other is a shell on code unseen."""
    paths = insp.resolve(w.text, w.text, strict=False) if w is not None and w.literal else []
    if not paths or not all(p.startswith(CODE_ROOTS) for p in paths):
        insp.add("proc.shell", f"{name} runs an rc file first: {w.text if w is not None else ''}")
        return
    insp.ran_files.update(paths)


def evaluate(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """Joins its arguments and runs them in a child shell (``git rebase --exec``, ``watch``)."""
    if not args:
        return set()
    if not all(w.literal for w in args):
        insp.opaque(f"eval of a non-literal string: {' '.join(w.text for w in args)}")
        return set()
    return set(insp.source(" ".join(w.text for w in args), depth + 1))


def eval_here(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """``eval`` runs in this very shell: its ``cd`` moves the commands after it."""
    if not args:
        return set()
    if not all(w.literal for w in args):
        insp.opaque(f"eval of a non-literal string: {' '.join(w.text for w in args)}")
        return set()
    return set(insp.source(" ".join(w.text for w in args), depth + 1, here=True))


def source(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    return {STDIN_EXEC} if not args or is_stdin_path(args[0].text) else set()


_STDIN_PATH_RE: Final = re.compile(r"/dev/(?:stdin|fd/\d+)|/proc/(?:self|thread-self|\d+)/fd/\d+")


def is_stdin_path(text: str) -> bool:
    """``-``, ``/dev/stdin``, ``/dev/fd/N``, ``/proc/self/fd/N``: a "file" that is really a stream.

    A program read from one of these is inline code (a here-document or a pipe supplies it).
    """
    return text == "-" or _STDIN_PATH_RE.fullmatch(text.rstrip("/")) is not None


# -- persistence, logs, files ------------------------------------------------
_SYSTEMCTL_VERBS: Final = fs(
    "enable",
    "start",
    "restart",
    "reenable",
    "link",
    "edit",
    "preset",
    "set-default",
    "isolate",
    "unmask",
    "reload",
    "try-restart",
    "reload-or-restart",
    "add-wants",
    "add-requires",
    "revert",
)


def crontab(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    if not any(w.text == "-l" for w in args):
        insp.add("persist.cron", " ".join([name, *(w.text for w in args)]))
    return set()


_FIREWALL_UNITS: Final = ("firewalld", "ufw", "nftables", "iptables", "ip6tables", "netfilter-persistent")
_LOG_UNITS: Final = ("auditd", "rsyslog", "syslog", "systemd-journald", "syslog-ng", "journald", "falco")


def systemctl(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    verbs = [w.text for w in args if not w.text.startswith("-")]
    if verbs and verbs[0] in ("stop", "disable", "mask", "kill"):
        units = [u.removesuffix(".service").lower() for u in verbs[1:]]
        evidence = " ".join([name, *(w.text for w in args)])
        if any(u in _FIREWALL_UNITS for u in units):
            insp.add("net.firewall", evidence)
        if any(u in _LOG_UNITS for u in units):
            insp.add("log.tamper", evidence)
    if not all(w.literal for w in args) or (verbs and verbs[0] in _SYSTEMCTL_VERBS):
        insp.add("persist.service", " ".join([name, *(w.text for w in args)]))
    return set()


def service(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    texts = [w.text for w in args]
    if any(t in ("start", "restart", "enable", "load", "bootstrap", "submit", "on") for t in texts):
        insp.add("persist.service", " ".join([name, *texts]))
    return set()


def history(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    if any(w.text.startswith("-") and ("c" in w.text or "d" in w.text) for w in args):
        insp.add("log.tamper", " ".join([name, *(w.text for w in args)]))
    return set()


def unset(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    bash_eval(insp, name, args)
    texts = [w.text for w in args]
    if name == "set" and not texts:  # set alone prints every variable with its value, as env does
        insp.add("cred.env", "set without arguments prints every variable, secrets included")
    if name == "unset" and "PATH" in texts and "-f" not in texts:
        insp.path_assignment(Word("PATH="), "")  # without PATH, bash runs a bare name from the cwd
    if "HISTFILE" in texts or (name == "set" and "+o" in texts and "history" in texts):
        insp.add("log.tamper", " ".join([name, *texts]))
    return set()


def declare(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """export/declare/local/readonly: their NAME=value words are assignments. Without a NAME
    (``declare``, ``export -p``, ``typeset -x``) they print variables with their values, as ``env``
    does; ``declare -p NAME`` prints NAME's."""
    bash_eval(insp, name, args)
    names = [w for w in args if not w.text.startswith(("-", "+"))]
    functions = any(w.text.startswith("-") and ("f" in w.text or "F" in w.text) for w in args)
    if not names and not functions:
        insp.add("cred.env", f"{name} without a name prints variables with their values, secrets included")
    elif any(w.text.startswith("-") and "p" in w.text[1:] for w in args) and any(
        not w.literal or is_secret_name(w.text) for w in names
    ):
        insp.add("cred.env", f"{name} -p prints a secret variable: {' '.join(w.text for w in args)}")
    if name != "export" and any(w.text.startswith("-") and "n" in w.text[1:] for w in args):
        insp.opaque(f"{name} -n: assignments through a name reference reach another variable")
    if any(w.text.startswith("-") and "i" in w.text[1:] for w in args):  # integer: values are arithmetic
        if any("=" in w.text and not w.text.partition("=")[2].lstrip("-").isdigit() for w in args):
            insp.opaque(f"{name} -i: values are evaluated as arithmetic")
    for w in args:
        if not w.text.startswith("-"):
            insp.assignment(w, depth)
            insp.remember_variable(w)
    return set()


def journalctl(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    if any(w.text.startswith(("--vacuum", "--rotate")) for w in args):
        insp.add("log.tamper", " ".join([name, *(w.text for w in args)]))
    return set()


_REMOVE_VALUES: Final = fs("-s", "-r", "--size", "--reference", "-n", "--iterations", "--random-source")


def remove(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """rm/shred/truncate/tee: every operand is written (or destroyed)."""
    p = parse_opts(args, _REMOVE_VALUES)
    for w in p.pos:
        insp.write_target(w, " ".join([name, w.text]))
    return set()


def _link_sources(insp: Inspection, args: list[Word], pos: list[Word], directories: list[Word]) -> None:
    """What a link points at is read through it later. A relative symbolic link's target is
    resolved from the link's own directory, not from the working directory: ``ln -s ../x
    sub/l`` points at ``x`` beside ``sub``. A last operand may be the link or a directory the link
    is made in, so both readings count (``-r`` takes the target from here, as a hard link does)."""
    flags = [w.text for w in args if w.text.startswith("-") and w.text != "-"]
    symbolic = any(f == "--symbolic" or (not f.startswith("--") and "s" in f[1:]) for f in flags)
    relative = any(f == "--relative" or (not f.startswith("--") and "r" in f[1:]) for f in flags)
    bases: list[tuple[Word, tuple[str, ...]]]
    if directories:  # -t DIR: every operand is a target, linked inside DIR
        sources, bases = pos, [(d, (d.text,)) for d in directories]
    elif len(pos) == 1:  # ln -s ../x: the link is made here
        sources, bases = pos, [(Word("."), (".",))]
    else:
        last = pos[-1] if pos else Word(".")
        sources, bases = pos[:-1], [(last, (posixpath.dirname(last.text.rstrip("/")) or ".", last.text))]
    for w in sources:
        if not w.literal or not symbolic or relative or w.text.startswith(("/", "~")):
            insp.read_path(w, f"ln {w.text}")
            continue
        for dest, dirs in bases:
            if not dest.literal:
                insp.opaque(f"ln {w.text} {dest.text}: where the link is made is not known statically")
                continue
            for base in dict.fromkeys(dirs):
                insp.read_path(Word(posixpath.join(base, w.text)), f"ln -s {w.text} {dest.text}")


_COPY_VALUES: Final = fs(
    "-t", "--target-directory", "-S", "--suffix", "-m", "--mode", "-o", "--owner", "-g", "--group"
)


def copy(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """cp/mv/install/ln: the destination (``-t DIR`` or the last operand) is written.

    A program copied or linked under another name (``cp /usr/bin/ssh /tmp/x``) is remembered:
    running ``/tmp/x`` later in the same command is running ssh.
    """
    p = parse_opts(args, _COPY_VALUES)
    targets = [v for o, v in p.opts if o in ("-t", "--target-directory") and v is not None]
    sources = p.pos if targets else p.pos[:-1]
    if not targets and len(p.pos) >= 2:
        targets = [p.pos[-1]]
    for w in targets:
        insp.write_target(w, " ".join([name, w.text]))
    if name.lower() == "ln":
        directories = [v for o, v in p.opts if o in ("-t", "--target-directory") and v is not None]
        _link_sources(insp, args, p.pos, directories)
    if name.lower() == "mv":  # a move removes its sources: .git moved away is .git destroyed
        for w in sources:
            insp.write_target(w, f"mv {w.text} (moved away)")
    if len(sources) == 1 and len(targets) == 1 and sources[0].literal and targets[0].literal:
        insp.remember_copy(sources[0].text, targets[0].text)
    return set()


def dd(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    for w in args:
        if w.text.startswith("of="):
            insp.write_target(Word(w.text[3:], w.literal), f"dd {w.text}")
    return set()


def find(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """``find -exec CMD ... ;`` runs CMD once per match. What its tests pick (``-name '*.env'``)
    is what an action (-exec, -delete) touches: a pattern aimed at credentials is theirs."""
    from gatekeeper.inspectors.paths import credential_classes
    from gatekeeper.inspectors.shell_files import read_operands  # it imports this module
    from gatekeeper.inspectors.shell_options import find_patterns

    ran: set[str] = set()
    if any(w.text in ("-exec", "-execdir", "-ok", "-okdir", "-delete") for w in args):
        names = find_patterns([w.text for w in args])
        for start in read_operands("find", args) or [Word(".")]:
            for root in insp.resolve(start.text, f"find {start.text}", strict=False) if start.literal else []:
                for cls in {c for n in names for c in credential_classes(f"{root.rstrip('/')}/{n}")}:
                    insp.add(cls, f"find {start.text} picks {' '.join(names)}")
    i = 0
    while i < len(args):
        if args[i].text in ("-exec", "-execdir", "-ok", "-okdir"):
            end = next((j for j in range(i + 1, len(args)) if args[j].text in (";", "+")), len(args))
            if end > i + 1:
                ran |= insp.run(args[i + 1 : end], depth + 1)
            i = end
        elif args[i].text == "-delete":  # every starting point (default: here) loses what matches
            for w in read_operands("find", args) or [Word(".")]:
                insp.write_target(w, f"find {w.text} -delete", under=True)
        elif args[i].text in ("-fprint", "-fprint0", "-fprintf", "-fls") and i + 1 < len(args):
            insp.write_target(args[i + 1], f"find {args[i].text} {args[i + 1].text}")  # the listing's file
            i += 1
        i += 1
    return ran


_WATCH_VALUES: Final = fs("-n", "--interval", "-q", "--equexit")


def watch(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """watch joins its arguments and runs them with ``sh -c`` (unless ``-x``)."""
    p = parse_opts(args, _WATCH_VALUES, max_pos=0)
    rest = args[p.index :]
    if not rest:
        return set()
    if any(o in ("-x", "--exec") for o, _ in p.opts):
        return set(insp.run(rest, depth + 1))
    return set(evaluate(insp, name, rest, depth))


_GIT_PACK_OPTIONS: Final = fs("--upload-pack", "--receive-pack", "--exec", "-u")
# git's options before the subcommand that take a value (also what ``git -C`` is found among).
GIT_VALUES: Final = fs("-c", "-C", "--git-dir", "--work-tree", "--namespace", "--config-env")
_REBASE_EXEC: Final = fs("-x", "--exec")


def git(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """``git -c core.sshCommand=...``, aliases and ``rebase --exec`` run commands too."""
    from gatekeeper.inspectors.shell_options import git_config  # it imports this module

    p = parse_opts(args, GIT_VALUES, max_pos=0)
    ran: set[str] = set()
    for o, v in p.opts:
        if o in ("-c", "--config-env") and v is not None:
            text = literal_text(insp, v, f"git {o}")
            if text is not None:
                pair = text if o == "-c" else text.partition("=")[0] + "=?"  # the value is in a variable
                git_config(insp, pair, depth, evidence=f"git {o} {text}")
    rest = args[p.index :]
    texts = [w.text for w in rest]
    if texts[:1] == ["clone"]:  # clone -c key=value / --config key=value: set in the new repository
        for o, v in parse_opts(
            rest[1:], fs("-c", "--config", "-b", "--branch", "-o", "--origin", "--depth")
        ).opts:
            if o in ("-c", "--config") and v is not None:
                text = literal_text(insp, v, f"git clone {o}")
                if text is not None:
                    git_config(insp, text, depth, evidence=f"git clone {o} {text}")
    elif texts[:1] == ["config"]:
        _git_config_command(insp, rest[1:], depth)
    elif texts[:1] == ["var"] and "-l" in texts:  # every configuration variable, and the idents
        git_config_read(insp, set(), [], "git var -l")
    for i, w in enumerate(rest):
        t = w.text
        if t.startswith("ext::") or "::ext::" in t:  # the ext transport runs its "URL" as a command
            insp.add(f"proc.inline_code:{name}", f"{name} {t}")
            insp.add("proc.exec_hook:git", f"{name} {t}")
            text = literal_text(insp, w, "git ext:: remote")
            if text is not None:
                ran |= insp.source(text.partition("ext::")[2].replace("%%", "%"), depth + 1)
        elif t.partition("=")[0] in _GIT_PACK_OPTIONS and (t != "-u" or texts[:1] == ["clone"]):
            arg = (
                Word(t.partition("=")[2], w.literal)
                if "=" in t
                else (rest[i + 1] if i + 1 < len(rest) else None)
            )
            insp.add(f"proc.inline_code:{name}", f"{name} {t}")
            insp.add("proc.exec_hook:git", f"{name} {t}")
            text = literal_text(insp, arg, f"git {t}")
            if text is not None:
                ran |= insp.source(text, depth + 1)
    if texts[:1] == ["rebase"]:
        for o, v in parse_opts(rest[1:], _REBASE_EXEC).opts:
            if o in ("-x", "--exec") and v is not None:
                ran |= evaluate(insp, "git rebase --exec", [v], depth)
    elif texts[:2] == ["submodule", "foreach"] or texts[:2] == ["bisect", "run"]:
        cmd = [w for w in rest[2:] if w.text != "--recursive"]
        ran |= (
            evaluate(insp, "git " + " ".join(texts[:2]), cmd, depth)
            if texts[0] == "submodule"
            else set(insp.run(cmd, depth + 1) if cmd else frozenset())
        )
    return ran


_CREATE_VALUES: Final = fs("-m", "--mode", "-d", "--date", "-r", "--reference", "-t", "-Z", "--context")


def create(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """touch/mkdir: every operand is created (a write), wherever it lands."""
    for w in parse_opts(args, _CREATE_VALUES).pos:
        insp.write_target(w, f"{name} {w.text}")
    return set()


def chmod(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """chmod/chown/chgrp: every file after the mode (or owner) is changed, a write."""
    p = parse_opts(args, fs("--reference"))
    has_ref = any(o == "--reference" for o, _ in p.opts)
    for w in p.pos if has_ref else p.pos[1:]:
        insp.write_target(w, f"{name} {w.text}")
    return set()


_SUBSCRIPT_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\[([^\]]*)\]")


def bash_eval(insp: Inspection, name: str, args: list[Word]) -> None:
    """Builtins that take a variable name evaluate an array subscript in it as arithmetic, and
    arithmetic runs ``$(...)`` even from single quotes (``test -v 'a[$(id)]'``): opaque, unless
    every subscript is a plain number. ``let`` is arithmetic throughout."""
    if name == "let" and args:
        insp.opaque(
            f"let evaluates arithmetic, where a value can run commands: {' '.join(w.text for w in args)}"
        )
        return
    for w in args:
        if "[" not in w.text:
            continue
        for m in _SUBSCRIPT_RE.finditer(w.text):
            sub = m.group(1)
            if not (sub.isdigit() or sub in ("@", "*")):
                insp.opaque(f"{name}: bash evaluates the subscript in {w.text}")
                return


# Builtins that set the variables they name (``read PATH``, ``printf -v LD_PRELOAD ...``): where the
# names are. printf and wait set only their -v/-p value; the others any operand (or option value)
# may be one, which costs nothing for a name no rule knows.
_SETS_VALUE_OF: Final = {"printf": "-v", "wait": "-p"}
_SETS_NAMES: Final = fs("read", "mapfile", "readarray", "getopts")


def name_taker(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """test -v, printf -v, read, getopts, wait -p, mapfile, let: see ``bash_eval``. A variable
    they set gets a value known at run time only (``Inspection.variable_set``); mapfile's -C
    callback is a command line bash evaluates."""
    bash_eval(insp, name, args)
    evidence = " ".join([name, *(w.text for w in args)])
    if name in _SETS_NAMES:
        if name != "getopts" and any(w.text.startswith("-") and "C" in w.text[1:] for w in args):
            insp.opaque(f"{name} -C: the callback is a command line evaluated at run time: {evidence}")
        for w in args:
            for t in (w.text, w.text[2:]) if w.text.startswith("-") else (w.text,):
                insp.variable_set(t, evidence, depth)
    elif name in _SETS_VALUE_OF:
        opt = _SETS_VALUE_OF[name]
        for i, w in enumerate(args):
            if w.text == opt and i + 1 < len(args):
                insp.variable_set(args[i + 1].text, evidence, depth)
            elif w.text.startswith(opt) and len(w.text) > 2:
                insp.variable_set(w.text[2:], evidence, depth)
            elif w.text == "--" or not w.text.startswith("-"):
                break
    return set()


def hash_builtin(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """``hash -p FILE NAME``: NAME now runs FILE, whatever PATH says (a file the agent wrote)."""
    if any(w.text.startswith("-") and "p" in w.text[1:] for w in args) or not all(w.literal for w in args):
        insp.opaque(f"hash -p binds a program name to a file: {' '.join(w.text for w in args)}")
    return set()


def command_builtin(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """``command -v x`` and ``type x`` look a name up; ``command x`` runs it."""
    if args and args[0].literal and args[0].text.startswith("-") and set(args[0].text[1:]) & set("vV"):
        return set()
    return wrapper(insp, name, args, depth)


def printenv(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """``printenv SECRET`` prints a credential; ``printenv`` (or ``env``) alone prints them all."""
    names = [w for w in args if not w.text.startswith("-")]
    if (
        not names
        or any(is_secret_name(w.text) for w in names)
        # printenv $X, "${!A*}", H*: which variables it prints is not known here
        or not all(w.literal and _NAME_RE.fullmatch(w.text) for w in names)
    ):
        insp.add("cred.env", " ".join([name, *(w.text for w in args)]) + ": prints secret variables")
    return set()


_GIT_CONFIG_READS: Final = fs(
    "--get", "--get-all", "--get-regexp", "--get-urlmatch", "-l", "--list", "get", "list", "-e", "--edit"
)
_GIT_CONFIG_VALUES: Final = fs("-f", "--file", "--blob", "--type", "--default", "--comment", "--value")


# What a listing of git's configuration prints, by scope: no scope is every file git reads (the
# repository's own, in the workspace, is readable anyway). ~/.gitconfig is where tokens live:
# ``url."https://TOKEN@github.com/".insteadOf``, ``http.extraHeader``, a store helper's options.
_GIT_CONFIG_SCOPE_FILES: Final = {
    "--global": ("~/.gitconfig", "~/.config/git/config"),
    "--system": ("/etc/gitconfig",),
}
_GIT_CONFIG_REPO_SCOPES: Final = fs("--local", "--worktree", "-f", "--file", "--blob")
_GIT_CONFIG_LISTS: Final = fs("-l", "--list", "list", "--get-regexp", "--regexp", "--get-urlmatch", "--url")
# Keys whose value is a credential, in any file: a helper's username or options, an extra header
# (actions/checkout's ``AUTHORIZATION: basic ...``), tokens and passwords tools keep there.
_GIT_SECRET_KEY_RE: Final = re.compile(
    r"credential\..*|.*\.(?:extraheader|token|oauth-?token|access-?token|api-?key|password|pass|smtppass"
    r"|passphrase|secret)",
    re.IGNORECASE,
)


def git_config_read(insp: Inspection, names: set[str], pos: list[str], evidence: str) -> None:
    """A read of git's configuration: a listing prints every file of its scope (``fs.read`` of
    ``~/.gitconfig``, ``/etc/gitconfig``), a get of a key that holds a credential prints it."""
    listing = bool(names & _GIT_CONFIG_LISTS) or (pos[:1] == ["list"]) or evidence == "git var -l"
    if listing and not names & _GIT_CONFIG_REPO_SCOPES:
        scopes = [s for s in _GIT_CONFIG_SCOPE_FILES if s in names] or list(_GIT_CONFIG_SCOPE_FILES)
        for scope in scopes:
            for path in _GIT_CONFIG_SCOPE_FILES[scope]:
                insp.read_path(Word(path), f"{evidence} prints {path}")
    keys = [t for t in pos if t not in ("get", "list")][:1] if not listing else []
    if keys and _GIT_SECRET_KEY_RE.fullmatch(keys[0]):
        insp.add("cred.secret", f"{evidence} {keys[0]}: prints a credential git keeps")


def _git_config_command(insp: Inspection, args: list[Word], depth: int) -> None:
    """``git config KEY VALUE`` (or ``set``, ``--add``...): a later git call uses the value."""
    from gatekeeper.inspectors.shell_options import git_config

    p = parse_opts(args, _GIT_CONFIG_VALUES)
    names = {o for o, _ in p.opts}
    pos = [w for w in p.pos if w.text not in ("set", "unset", "add")]
    if names & _GIT_CONFIG_READS or (p.pos[:1] and p.pos[0].text in _GIT_CONFIG_READS) or len(pos) < 2:
        git_config_read(insp, names, [w.text for w in p.pos], "git config")
        return  # a read, or a one-argument get
    if not all(w.literal for w in pos[:2]):
        insp.opaque("git config with a key or value not known statically")
        return
    git_config(
        insp, f"{pos[0].text}={pos[1].text}", depth, evidence=f"git config {pos[0].text} {pos[1].text}"
    )
    where = (
        "~/.gitconfig" if "--global" in names else "/etc/gitconfig" if "--system" in names else ".git/config"
    )
    if not names & {"-f", "--file"}:
        insp.write_target(Word(where), f"git config {pos[0].text}: written to {where}")


def alias(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    if any("=" in w.text for w in args):
        insp.opaque(f"alias changes what a name runs: {' '.join(w.text for w in args)}")
    return set()


def busybox(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    return set(insp.run(args, depth + 1)) if args and not args[0].text.startswith("-") else set()


HANDLERS: Final[dict[str, Handler]] = {
    **{n: wrapper for n in WRAPPERS},
    **{n: shell for n in SHELLS},
    **{n: remove for n in ("rm", "shred", "unlink", "rmdir", "truncate", "tee", "srm", "wipe")},
    **{n: copy for n in ("cp", "mv", "install", "ln")},
    **{n: declare for n in ("export", "declare", "typeset", "local", "readonly")},
    **{n: unset for n in ("unset", "set")},
    **{n: service for n in ("service", "launchctl", "update-rc.d", "chkconfig")},
    "eval": eval_here,
    "source": source,
    "crontab": crontab,
    "systemctl": systemctl,
    "history": history,
    "journalctl": journalctl,
    "dd": dd,
    "find": find,
    "watch": watch,
    "git": git,
    "alias": alias,
    "busybox": busybox,
    **{n: create for n in ("touch", "mkdir")},
    **{
        n: name_taker
        for n in ("test", "[", "printf", "read", "getopts", "wait", "mapfile", "readarray", "let")
    },
    "command": command_builtin,
    **{n: chmod for n in ("chmod", "chown", "chgrp")},
    "printenv": printenv,
    "hash": hash_builtin,
}

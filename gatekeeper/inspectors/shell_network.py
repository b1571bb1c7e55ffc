"""What network programs do with their arguments, for the shell inspector.

ssh, scp, nc and socat each spell tunnels, reverse shells and destinations in
their own option syntax; getting one flag wrong here is a bypass, so each has
its own small parser over the already-tokenised argv (never the raw string).
"""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING, Final

from gatekeeper.inspectors.shell_programs import DECODES, Handler, Word, family, fs, literal_text, parse_opts

if TYPE_CHECKING:
    from gatekeeper.inspectors.shell import Inspection

_REMOTE_RE: Final = re.compile(r"(?:[^@/:]+@)?(\[[0-9A-Fa-f:.]+\]|[^@/:\[\]]+):(:?)")
_PORT_RE: Final = re.compile(r"[0-9]{1,5}(?:-[0-9]{1,5})?|[A-Za-z][A-Za-z0-9-]{0,30}")
_SSH_OPTION_RE: Final = re.compile(r"[=\s]+")


# -- network -----------------------------------------------------------------
_SSH_VALUES: Final = frozenset("-" + c for c in "BbcDEeFIiJLlmOopQRSWw")
_SCP_VALUES: Final = fs("-c", "-F", "-i", "-J", "-l", "-o", "-P", "-S", "-D", "-X")
_SFTP_VALUES: Final = fs("-B", "-b", "-c", "-D", "-F", "-i", "-J", "-l", "-o", "-P", "-R", "-S", "-s")
_RSYNC_VALUES: Final = fs(
    "-e",
    "--rsh",
    "-f",
    "--filter",
    "--exclude",
    "--include",
    "--exclude-from",
    "--include-from",
    "--files-from",
    "-T",
    "--temp-dir",
    "--port",
    "--password-file",
    "--log-file",
    "-B",
    "--block-size",
    "-M",
    "--remote-option",
    "--rsync-path",
    "--chmod",
    "--chown",
    "--timeout",
    "--contimeout",
    "--bwlimit",
    "--partial-dir",
    "--compare-dest",
    "--copy-dest",
    "--link-dest",
    "--suffix",
    "--backup-dir",
    "--max-size",
    "--min-size",
    "--out-format",
    "--info",
    "--debug",
    "--iconv",
    "--sockopts",
)
_NC_VALUES: Final = fs(
    "-e",
    "-c",
    "-I",
    "-i",
    "-M",
    "-m",
    "-O",
    "-o",
    "-P",
    "-p",
    "-q",
    "-s",
    "-T",
    "-V",
    "-W",
    "-w",
    "-X",
    "-x",
    "-g",
    "-G",
    "--exec",
    "--sh-exec",
    "--lua-exec",
    "--proxy",
    "--proxy-type",
    "--proxy-auth",
    "--source",
    "--source-port",
    "--wait",
    "--output",
    "--hex-dump",
    "--idle-timeout",
    "--max-conns",
    "--allow",
    "--allowfile",
    "--deny",
    "--denyfile",
    "--ssl-cert",
    "--ssl-key",
    "--ssl-trustfile",
    "--ssl-ciphers",
)
_SOCAT_VALUES: Final = fs("-b", "-T", "-L", "-W", "-lf", "-lp")
_SOCAT_CONNECT: Final = fs(
    "TCP",
    "TCP4",
    "TCP6",
    "TCP-CONNECT",
    "TCP4-CONNECT",
    "TCP6-CONNECT",
    "UDP",
    "UDP4",
    "UDP6",
    "UDP-CONNECT",
    "OPENSSL",
    "OPENSSL-CONNECT",
    "SSL",
    "SCTP",
    "SCTP-CONNECT",
    "SOCKS4",
    "SOCKS4A",
    "SOCKS5",
    "PROXY",
    "PROXY-CONNECT",
)


def _ssh_option(insp: Inspection, text: str, depth: int, dest: dict[str, str]) -> None:
    """One ``-o Key=Value``: forwards, destination overrides, and commands ssh runs locally."""
    parts = _SSH_OPTION_RE.split(text.strip(), maxsplit=1)
    key, value = parts[0].lower(), parts[1] if len(parts) > 1 else ""
    if key == "remoteforward":
        insp.add("net.tunnel.reverse", text)
    elif key in ("localforward", "dynamicforward") or (key == "tunnel" and value.lower() != "no"):
        insp.add("net.tunnel.forward", text)
    elif key in ("port", "hostname", "proxyjump"):
        dest[key] = value
    elif key in ("proxycommand", "localcommand", "knownhostscommand") and value.lower() != "none":
        insp.source(value, depth + 1)


def _connect_spec(insp: Inspection, spec: str, port: str, evidence: str) -> None:
    """``[user@]host[:port]`` (ssh jump hosts, ``ssh://`` authorities) to ``net.connect``."""
    hostport = spec.rpartition("@")[2]
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port = rest[1:] if rest.startswith(":") and rest[1:] else port
    elif hostport.count(":") == 1:
        host, _, p = hostport.partition(":")
        port = p or port
    else:
        host = hostport
    if not _PORT_RE.fullmatch(port):
        insp.opaque(f"unknowable port in {evidence}")
        return
    insp.connect(host, port, evidence)


def ssh(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """OpenSSH options (before and after the destination); what follows runs remotely, not here."""
    values = _SSH_VALUES | {"-M"} if name.lower() == "autossh" else _SSH_VALUES
    p = parse_opts(args, values, max_pos=1)
    evidence = " ".join([name, *(w.text for w in args)])
    if p.unknown is not None and p.unknown not in args[p.index :]:
        insp.opaque(f"{name}: non-literal argument {p.unknown.text} could hide options")
    dest: dict[str, str] = {}
    for o, v in p.opts:
        text = literal_text(insp, v, f"{name} {o}")
        if text is None:
            continue
        if o == "-R":
            insp.add("net.tunnel.reverse", evidence)
        elif o in ("-L", "-D", "-w", "-W"):
            insp.add("net.tunnel.forward", evidence)
        elif o == "-p":
            dest["port"] = text
        elif o == "-J":
            dest["proxyjump"] = text
        elif o == "-o":
            _ssh_option(insp, text, depth, dest)
        elif o == "-F" and text != "/dev/null":
            insp.opaque(f"{name} -F {text}: a config file may add forwards")
    for jump in filter(None, dest.get("proxyjump", "").split(",")):
        if jump.lower() != "none":
            _connect_spec(insp, jump.removeprefix("ssh://"), "22", evidence)
    if not p.pos:
        return set()
    target = p.pos[0]
    if not target.literal:
        insp.opaque(f"{name}: destination not known statically: {target.text}")
        return set()
    port = dest.get("port", "22")
    if target.text.startswith("ssh://"):
        authority = target.text[6:].split("/", 1)[0]
        _connect_spec(insp, dest.get("hostname", authority), port, evidence)
    elif not _PORT_RE.fullmatch(port):
        insp.opaque(f"unknowable port in {evidence}")
    else:
        insp.connect(dest.get("hostname", target.text.rpartition("@")[2]), port, evidence)
    return set()


def remote_copy(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """scp/sftp/rsync: every ``host:path`` operand is a connection (``host::mod`` is the rsync daemon)."""
    key = name.lower()
    values = {"scp": _SCP_VALUES, "sftp": _SFTP_VALUES}.get(key, _RSYNC_VALUES)
    p = parse_opts(args, values)
    evidence = " ".join([name, *(w.text for w in args)])
    port = "22"
    dest: dict[str, str] = {}
    ran: set[str] = set()
    for o, v in p.opts:
        text = literal_text(insp, v, f"{name} {o}")
        if text is None:
            continue
        if o == "-P" and key != "rsync":
            port = text
        elif o == "-o":
            _ssh_option(insp, text, depth, dest)
        elif o == "-J":
            dest["proxyjump"] = text
        elif o in ("-e", "--rsh"):
            ran |= insp.source(text, depth + 1)
            try:
                tokens = shlex.split(text)
            except ValueError:
                tokens = []
            if "-p" in tokens[:-1]:
                port = tokens[tokens.index("-p") + 1]
    port = dest.get("port", port)
    for jump in filter(None, dest.get("proxyjump", "").split(",")):
        _connect_spec(insp, jump, "22", evidence)
    for i, w in enumerate(p.pos):
        t = w.text
        for scheme, default in (("scp://", port), ("sftp://", port), ("rsync://", "873")):
            if t.startswith(scheme):
                _connect_spec(insp, t[len(scheme) :].split("/", 1)[0], default, evidence)
                break
        else:
            m = _REMOTE_RE.match(t)
            if m is not None and not w.literal:
                insp.opaque(f"{name}: remote not known statically: {t}")
            elif m is not None:
                insp.connect(m.group(1), "873" if m.group(2) else port, evidence)
            elif key == "sftp" and i == 0 and w.literal:
                _connect_spec(insp, t, port, evidence)
    return ran


def netcat(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """nc/ncat/netcat: ``-e``/``-c`` hand the connection to a program; positionals are host and ports."""
    p = parse_opts(args, _NC_VALUES)
    evidence = " ".join([name, *(w.text for w in args)])
    if any(o == "-z" for o, _ in p.opts):  # zero-I/O mode: is the port open? -- a port scan
        insp.add("net.scan", evidence)
    if p.unknown is not None:
        insp.opaque(f"{name}: non-literal argument {p.unknown.text}")
        return set()
    ran: set[str] = set()
    listen = False
    for o, v in p.opts:
        if o in ("-e", "--exec", "--lua-exec", "-c", "--sh-exec"):
            insp.add("net.reverse_shell", evidence)
            text = literal_text(insp, v, f"{name} {o}")
            if text and o in ("-c", "--sh-exec"):
                ran |= insp.source(text, depth + 1)
            elif text and o == "-e":
                ran |= insp.run([Word(text)], depth + 1)
        elif o in ("-l", "--listen"):
            listen = True
    if not listen and len(p.pos) >= 2:
        for port in p.pos[1:]:
            if _PORT_RE.fullmatch(port.text):
                insp.connect(p.pos[0].text, port.text, evidence)
    return ran


def ping(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """ping with a host chosen at run time (``10.0.0.$i`` in a loop) is a host sweep."""
    p = parse_opts(args, fs("-c", "-W", "-w", "-i", "-I", "-s", "-t", "-p", "-Q", "-l", "-M", "-m"))
    evidence = " ".join([name, *(w.text for w in args)])
    for w in p.pos:
        if not w.literal:
            insp.add("net.scan", evidence)
            prefix = w.text.split("$", 1)[0].rstrip(".")
            if prefix.count(".") >= 1:
                insp.host_class(prefix + ".0" * (3 - prefix.count(".")), evidence)
        else:
            insp.host_class(w.text, evidence)
    return set()


def telnet(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    p = parse_opts(args, fs("-l", "-e", "-b", "-n"))
    if p.unknown is not None:
        insp.opaque(f"{name}: non-literal argument {p.unknown.text}")
    elif p.pos:
        port = p.pos[1].text if len(p.pos) > 1 else "23"
        if _PORT_RE.fullmatch(port):
            insp.connect(p.pos[0].text, port, " ".join([name, *(w.text for w in args)]))
    return set()


def socat(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """socat addresses: EXEC/SYSTEM give a program the stream, *-LISTEN accepts, TCP:h:p connects."""
    p = parse_opts(args, _SOCAT_VALUES)
    evidence = " ".join([name, *(w.text for w in args)])
    ran: set[str] = set()
    for w in p.pos:
        if not w.literal:
            insp.opaque(f"socat address not known statically: {w.text}")
            continue
        head, _, rest = w.text.partition(":")
        kind = head.split(",")[0].upper()
        params = rest.split(",")[0]
        if kind in ("EXEC", "SYSTEM"):
            insp.add("net.reverse_shell", evidence)
            insp.add("net.tunnel", evidence)
            ran |= insp.source(params, depth + 1)
        elif "LISTEN" in kind or kind.endswith("-L"):
            insp.add("net.tunnel", evidence)
        elif kind in _SOCAT_CONNECT:
            host, _, port = params.rpartition(":")
            if kind.startswith(("SOCKS", "PROXY")):
                host, port = params.split(":")[0], port
            if host and _PORT_RE.fullmatch(port):
                insp.connect(host, port, evidence)
            else:
                insp.opaque(f"socat destination not understood: {w.text}")
    return ran


def openssl(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    texts = [w.text for w in args]
    if "s_client" in texts and "-connect" in texts[:-1]:
        target = texts[texts.index("-connect") + 1]
        host, _, port = target.rpartition(":")
        if host and _PORT_RE.fullmatch(port):
            insp.connect(host, port, " ".join([name, *texts]))
    if texts[:1] in (["base64"], ["enc"]) and ("-d" in texts or ("-base64" in texts and "-d" in texts)):
        return {DECODES}
    return set()


def transformer(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """rev, tr, gunzip, zcat...: text that reaches a shell through them was hidden from review."""
    return {DECODES}


def decoder(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """base64 -d / xxd -r / gzip -d: marks a pipeline element as producing decoded (hidden) text."""
    flag = "r" if family(name) == "xxd" else "d"
    for w in args:
        t = w.text
        if t in ("--decode", "-revert", "-D") or (t.startswith("-") and not t.startswith("--") and flag in t):
            return {DECODES}
    return {DECODES} if family(name) == "uudecode" else set()


_CURL_REDIRECTS: Final = frozenset(
    {"--resolve", "--connect-to", "--unix-socket", "--abstract-unix-socket", "--dns-servers"}
)


def _curl_redirects(insp: Inspection, name: str, args: list[Word]) -> None:
    """``--resolve name:port:addr`` and ``--connect-to h:p:h2:p2`` send an allowed name elsewhere."""
    for i, w in enumerate(args):
        if not w.text.startswith("--"):  # each option below is long
            continue
        key, eq, val = w.text.partition("=")
        if key not in _CURL_REDIRECTS:
            continue
        evidence = " ".join([name, *(w.text for w in args)])
        value = Word(val, w.literal) if eq else (args[i + 1] if i + 1 < len(args) else None)
        text = literal_text(insp, value, f"{name} {key}")
        if text is None:
            continue
        if key in ("--unix-socket", "--abstract-unix-socket"):
            insp.add("net.internal", evidence)
            insp.add(f"fs.read:{text}", evidence)
            continue
        if key == "--dns-servers":
            for server in text.split(","):
                insp.host_class(server.rsplit(":", 1)[0] if server.count(":") == 1 else server, evidence)
            insp.opaque(f"{name}: names resolved by a chosen DNS server: {text}")
            continue
        fields = text.split(":")
        target = fields[2:] if key == "--resolve" else fields[2:4]
        if key == "--resolve":
            addresses = ":".join(target).split(",")
            for addr in addresses:
                addr = addr.strip("[]")
                if addr and addr != "*":
                    insp.connect(addr, fields[1] if len(fields) > 1 else "443", evidence)
        elif len(target) == 2 and target[0]:
            port = target[1] or (fields[1] if len(fields) > 1 else "443")
            insp.connect(target[0].strip("[]"), port if _PORT_RE.fullmatch(port) else "443", evidence)
        if not all(f.replace(".", "").replace("-", "").isalnum() or f in ("", "*") for f in fields[:2]):
            insp.opaque(f"{name} {key} {text} not understood")


def downloader(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    """Remember where curl/wget save files, so running that file later counts as download-and-exec."""
    if family(name) == "curl":
        _curl_redirects(insp, name, args)
    for i, w in enumerate(args):
        if w.text in ("-o", "--output", "-O", "--output-document") and i + 1 < len(args):
            nxt = args[i + 1]
            if nxt.literal and nxt.text != "-" and not (w.text == "-O" and family(name) == "curl"):
                insp.remember_download(nxt.text)
        elif w.literal and "://" in w.text:
            base = w.text.split("?", 1)[0].split("#", 1)[0].rstrip("/").rpartition("/")[2]
            if base and "://" not in base and ":" not in base:
                insp.remember_download(base)
    return set()


def chisel(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    if any(w.text.startswith("R:") or w.text == "--reverse" or ":R:" in w.text for w in args):
        insp.add("net.tunnel.reverse", " ".join([name, *(w.text for w in args)]))
    return set()


def tailscale(insp: Inspection, name: str, args: list[Word], depth: int) -> set[str]:
    if any(w.text in ("up", "funnel", "serve") for w in args):
        insp.add("net.tunnel", " ".join([name, *(w.text for w in args)]))
    return set()


HANDLERS: Final[dict[str, Handler]] = {
    **{n: downloader for n in ("curl", "wget")},
    **{n: remote_copy for n in ("scp", "sftp", "rsync")},
    **{n: netcat for n in ("nc", "ncat", "netcat")},
    "ssh": ssh,
    "autossh": ssh,
    "telnet": telnet,
    **{n: ping for n in ("ping", "ping6", "arping")},
    "socat": socat,
    "openssl": openssl,
    "chisel": chisel,
    "tailscale": tailscale,
    **{n: decoder for n in ("base64", "base32", "basenc", "xxd", "uudecode", "gzip", "bzip2", "xz", "zstd")},
    **{
        n: transformer
        for n in ("rev", "tr", "gunzip", "zcat", "bunzip2", "bzcat", "unxz", "xzcat", "zstdcat")
    },
}

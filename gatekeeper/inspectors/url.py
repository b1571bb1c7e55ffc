"""URL inspector: where a request would really go, as the OS would see it.

Parsers disagree about URLs (userinfo tricks, backslashes, numeric hosts), and
every disagreement is a way past an allow-list. So this module accepts one
strict, unambiguous shape, normalises hosts the way ``inet_aton`` and IDNA would
(``0x7f000001`` is ``127.0.0.1``), and turns everything else into ``url.opaque``.
It never resolves a name: the host class comes from the literal alone.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import idna

from gatekeeper.models import Capability

if TYPE_CHECKING:
    from gatekeeper.inspectors import InspectContext

__all__ = [
    "MINING_POOL_SUFFIXES",
    "ParsedURL",
    "UrlError",
    "address_word_class",
    "host_class_capabilities",
    "inspect_url",
    "is_mining_scheme",
    "normalize_host",
    "normalize_url",
    "parse_url",
]

MAX_URL_LENGTH: Final = 8192
EVIDENCE_MAX: Final = 200

WEB_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}
# Every miner's spelling of the stratum protocol: stratum+tcp, stratum1+tls, stratum2+ssl,
# stratums (ethminer, T-Rex, lolMiner, NBMiner...); none is anything but a pool.
_MINING_SCHEME_RE: Final = re.compile(r"stratum[0-9]*(?:\+[a-z0-9]+)*s?")

# Hosts a cloud instance can reach but the internet cannot; documentation ranges
# (192.0.2/24, 198.51.100/24, 203.0.113/24) stay public: they stand for "outside".
_V4_INTERNAL: Final = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
)
_V6_ULA: Final = ipaddress.IPv6Network("fc00::/7")
_V6_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
# 168.63.129.16 is Azure's WireServer: a public address every Azure VM reaches for its platform
# (certificates, extension settings), the SSRF target next to 169.254.169.254.
_METADATA_IPS: Final = frozenset(
    {"169.254.169.254", "169.254.170.2", "100.100.100.200", "192.0.0.192", "[fd00:ec2::254]", "168.63.129.16"}
)
_METADATA_NAMES: Final = frozenset({"metadata.google.internal", "metadata", "instance-data"})
_INTERNAL_SUFFIXES: Final = (
    "localhost",
    "internal",
    "local",
    "localdomain",
    "home.arpa",
    "lan",
    "intranet",
    "svc",
    "localtest.me",
    "lvh.me",
    # never delegated on the internet (RFC 6762 appendix G, ICANN's name collision list): they
    # resolve only inside an organisation, or through service discovery (.consul). Not .test:
    # tests pin names there to stand for outside hosts.
    "corp",
    "home",
    "private",
    "consul",
)
# Mining pools: a name under one of these is a pool whatever the port or scheme (pools listen on
# 443 too, and their web pages are the same name's). Class "mining": ``crypto.mine``.
MINING_POOL_SUFFIXES: Final = (
    "supportxmr.com",
    "moneroocean.stream",
    "nanopool.org",
    "2miners.com",
    "nicehash.com",
    "minexmr.com",
    "hashvault.pro",
    "xmrpool.eu",
    "c3pool.com",
    "c3pool.org",
    "herominers.com",
    "f2pool.com",
    "ethermine.org",
    "flexpool.io",
    "hiveon.net",
    "unmineable.com",
    "kryptex.network",
    "woolypooly.com",
    "viabtc.com",
    "antpool.com",
    "poolin.com",
    "zpool.ca",
    "zergpool.com",
    "mining-dutch.nl",
    "prohashing.com",
    "minergate.com",
    "dwarfpool.com",
    "miningpoolhub.com",
    "slushpool.com",
    "emcd.io",
    "k1pool.com",
    "p2pool.io",
    "xmrfast.com",
    "gntl.uk",
    "rplant.xyz",
    "zeropool.io",
    "baikalmine.com",
)
# Wildcard-DNS services that answer with the address written in the name.
_ECHO_DNS: Final = ("nip.io", "sslip.io", "xip.io", "traefik.me")

_INTERNAL_SET: Final = frozenset(_INTERNAL_SUFFIXES)
_MINING_SET: Final = frozenset(MINING_POOL_SUFFIXES)
_ECHO_SET: Final = frozenset(_ECHO_DNS)

_SCHEME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_ASCII_BAD_RE: Final = re.compile(r"[\x00-\x20\x7f\\]")
_LABEL_RE: Final = re.compile(r"[a-z0-9_-]{1,63}")
_NUMERIC_LABEL_RE: Final = re.compile(r"[0-9]+|0[xX][0-9a-fA-F]*")
_DASHED_QUAD_RE: Final = re.compile(r"(\d{1,3})[.-](\d{1,3})[.-](\d{1,3})[.-](\d{1,3})")
_HEX_QUAD_RE: Final = re.compile(r"(?:^|[.-])([0-9a-f]{8})\.")


class UrlError(ValueError):
    """The text is not a URL this module can vouch for (becomes ``url.opaque``)."""


@dataclass(frozen=True, slots=True)
class ParsedURL:
    """One URL reduced to what decides where it goes."""

    scheme: str
    userinfo: str | None
    host: str  # normalised; "" for URLs without an authority (data:, mailto:, file:///)
    host_class: str  # "public" | "internal" | "metadata" | "mining" | "none"
    idn: bool
    port: int | None  # explicit, else the scheme's default, else None
    tail: str  # path, query and fragment exactly as given


_DIGITS: Final = {
    8: frozenset("01234567"),
    10: frozenset("0123456789"),
    16: frozenset("0123456789abcdefABCDEF"),
}


def is_mining_scheme(scheme: str) -> bool:
    """``stratum+tcp`` and every other spelling of the stratum protocol (lower-cased scheme)."""
    return _MINING_SCHEME_RE.fullmatch(scheme) is not None


def _parse_ipv4(host: str) -> int | None:
    """``inet_aton`` semantics: 1-4 parts, each decimal, 0-octal or 0x-hex; the last fills the rest."""
    parts = host.split(".")
    if len(parts) > 4:
        return None
    values: list[int] = []
    for part in parts:
        # Digits only: int() would also take "-1", "+1", "1_0" and surrounding spaces.
        if part[:2] in ("0x", "0X"):
            digits, base = part[2:], 16
        elif len(part) > 1 and part[0] == "0":
            digits, base = part[1:], 8
        else:
            digits, base = part, 10
        if digits == "" and base == 16:
            values.append(0)
            continue
        if not digits or not all(c in _DIGITS[base] for c in digits):
            return None
        values.append(int(digits, base))
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    result = 0
    for v in head:
        result = result << 8 | v
    return result << 8 * (4 - len(head)) | last


def _classify_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, text: str) -> str:
    if text in _METADATA_IPS:
        return "metadata"
    if isinstance(ip, ipaddress.IPv4Address):
        internal = any(ip in net for net in _V4_INTERNAL)
        return "internal" if internal else "public"
    embedded = ip.sixtofour
    if embedded is None and ip.teredo is not None:  # 2001::/32 relays to the client it embeds
        server, client = ip.teredo
        classes = {_classify_ip(a, str(a)) for a in (server, client)}
        return next((c for c in ("metadata", "internal") if c in classes), "public")
    if embedded is None and ip in _V6_NAT64:
        embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if embedded is not None:
        return _classify_ip(embedded, str(embedded))
    internal = (
        ip.is_loopback
        or ip.is_link_local
        or ip.is_site_local
        or ip.is_unspecified
        or ip.is_multicast
        or ip.is_reserved
        or ip in _V6_ULA
    )
    return "internal" if internal else "public"


def _classify_name(name: str) -> str:
    if name in _METADATA_NAMES:
        return "metadata"
    if "." not in name:
        return "internal"  # single labels resolve through search domains: cluster services
    labels = name.split(".")
    tails = {".".join(labels[i:]) for i in range(len(labels))}  # the name and each parent domain
    if tails & _INTERNAL_SET:
        return "internal"
    if tails & _MINING_SET:
        return "mining"
    if (tails - {name}) & _ECHO_SET:
        m = _DASHED_QUAD_RE.search(name)
        if m and all(int(g) <= 255 for g in m.groups()):
            quad = ".".join(m.groups())
            return _classify_ip(ipaddress.IPv4Address(quad), quad)
        h = _HEX_QUAD_RE.search(name)  # 7f000001.nip.io, a9fea9fe.sslip.io: hex notation
        if h:
            address = ipaddress.IPv4Address(int(h.group(1), 16))
            return _classify_ip(address, str(address))
        if "--" in name:  # sslip.io's IPv6 with dashes (--1.sslip.io is ::1): not read here
            return "internal"
    return "public"


def _normalize_host(host: str) -> tuple[str, str, bool]:
    """(host, class, idn); raises UrlError for anything that is not a clean host literal."""
    if not host or len(host) > 255 or "%" in host:
        raise UrlError("empty, oversized or percent-encoded host")
    if host.startswith("[") or ":" in host:
        inner = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            ip6 = ipaddress.IPv6Address(inner)
        except ValueError as exc:
            raise UrlError(f"bad IPv6 literal {host!r}") from exc
        if ip6.ipv4_mapped is not None:
            quad = str(ip6.ipv4_mapped)
            return quad, _classify_ip(ip6.ipv4_mapped, quad), False
        text = f"[{ip6.compressed}]"
        return text, _classify_ip(ip6, text), False
    idn = False
    if host.isascii():
        host = host.lower()
    else:
        idn = True
        try:
            host = idna.uts46_remap(host, std3_rules=False, transitional=False)
        except (idna.IDNAError, UnicodeError, ValueError) as exc:
            raise UrlError(f"unmappable host {host!r}") from exc
    if host.endswith("."):
        host = host[:-1]
    labels = host.split(".")
    if _NUMERIC_LABEL_RE.fullmatch(labels[-1]):
        value = _parse_ipv4(host)
        if value is None:
            raise UrlError(f"host {host!r} ends in a number but is not an IPv4 address")
        ip4 = ipaddress.IPv4Address(value)
        return str(ip4), _classify_ip(ip4, str(ip4)), idn
    out: list[str] = []
    for label in labels:
        try:
            if not label.isascii():
                label = idna.alabel(label).decode("ascii")
            elif label.startswith("xn--"):
                idna.ulabel(label)  # must be valid punycode
                idn = True
        except (idna.IDNAError, UnicodeError, ValueError) as exc:
            raise UrlError(f"invalid international label {label!r}") from exc
        if not _LABEL_RE.fullmatch(label):
            raise UrlError(f"invalid host label {label!r}")
        out.append(label)
    name = ".".join(out)
    if len(name) > 253:
        raise UrlError("host name too long")
    return name, _classify_name(name), idn


def normalize_host(host: str) -> tuple[str, str]:
    """(normalised host, class) with class one of public/internal/metadata/mining/invalid; never resolves."""
    try:
        norm, cls, _idn = _normalize_host(host)
    except UrlError:
        return host, "invalid"
    return norm, cls


_ADDRESS_WORD_RE: Final = re.compile(
    r"(?:[^@\s/]+@)?(\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f]*::[0-9A-Fa-f:.]*|[A-Za-z0-9][A-Za-z0-9.\-]*)(?::[0-9]{1,5})?(?:/\S*)?"
)


def address_word_class(text: str) -> str | None:
    """The class of a word spelled as a scheme-less ``host``, ``host:port`` or ``user@host:port``,
    perhaps with a path (``169.254.169.254/latest``, ``pool.example.com:3333``, a Go module path),
    with a dot or colon in the host, else None.
    Single labels are left out: ``metadata`` as a word is a file or a subcommand far more often."""
    m = _ADDRESS_WORD_RE.fullmatch(text)
    if m is None:
        return None
    host = m.group(1)
    if "." not in host and ":" not in host:
        return None
    _norm, cls = normalize_host(host)
    return cls


def host_class_capabilities(host_class: str, evidence: str) -> list[Capability]:
    """The capabilities a destination's class adds (metadata implies internal)."""
    ev = evidence[:EVIDENCE_MAX]
    if host_class == "mining":
        return [Capability("crypto.mine", f"a mining pool: {ev}"[:EVIDENCE_MAX])]
    if host_class == "metadata":
        return [Capability("net.metadata", ev), Capability("net.internal", ev)]
    if host_class == "internal":
        return [Capability("net.internal", ev)]
    return []


def _has_bad_chars(url: str) -> bool:
    if url.isascii():
        return _ASCII_BAD_RE.search(url) is not None
    return any(
        c == "\\" or unicodedata.category(c) in ("Cc", "Cf", "Zs", "Zl", "Zp", "Cs", "Co", "Cn") for c in url
    )


def parse_url(url: str) -> ParsedURL:
    """Split and normalise one absolute URL; raises UrlError where parsers could disagree."""
    if len(url) > MAX_URL_LENGTH:
        raise UrlError("URL too long")
    if _has_bad_chars(url):
        raise UrlError("control characters, whitespace or backslashes in URL")
    m = _SCHEME_RE.match(url)
    if m is None:
        raise UrlError("no scheme")
    scheme = m.group()[:-1].lower()
    rest = url[m.end() :]
    if not rest.startswith("//"):
        if scheme in WEB_PORTS or is_mining_scheme(scheme):
            raise UrlError(f"{scheme}: URL without '//'")
        return ParsedURL(scheme, None, "", "none", False, None, rest)
    rest = rest[2:]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    userinfo: str | None = None
    if "@" in authority:
        userinfo, _, authority = authority.rpartition("@")
        if "@" in userinfo:
            raise UrlError("more than one '@' in the authority")
    if authority.startswith("["):
        close = authority.find("]")
        if close < 0:
            raise UrlError("unterminated IPv6 literal")
        host, port_text = authority[: close + 1], authority[close + 1 :]
        if port_text and not port_text.startswith(":"):
            raise UrlError("junk after IPv6 literal")
        port_text = port_text[1:]
    else:
        host, _, port_text = authority.partition(":")
        if ":" in port_text:
            raise UrlError("more than one ':' in the authority")
    if not host:
        if scheme == "file" and userinfo is None and not port_text:
            return ParsedURL(scheme, None, "", "none", False, None, tail)
        raise UrlError("empty host")
    port = WEB_PORTS.get(scheme)
    if port_text:
        if not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5:
            raise UrlError(f"bad port {port_text!r}")
        port = int(port_text)
        if not 0 < port < 65536:
            raise UrlError(f"port out of range: {port}")
    norm, cls, idn = _normalize_host(host)
    if scheme in WEB_PORTS and not tail:
        tail = "/"
    return ParsedURL(scheme, userinfo, norm, cls, idn, port, tail)


def normalize_url(url: str) -> str:
    """The canonical text of a URL (idempotent); raises UrlError like ``parse_url``."""
    p = parse_url(url)
    if not p.host and p.scheme != "file":
        return f"{p.scheme}:{p.tail}"
    auth = f"{p.userinfo}@" if p.userinfo is not None else ""
    port = "" if p.port is None or p.port == WEB_PORTS.get(p.scheme) else f":{p.port}"
    return f"{p.scheme}://{auth}{p.host}{port}{p.tail}"


def url_capabilities(url: str) -> list[Capability]:
    """Capabilities for one URL string (also used on URLs found inside shell words)."""
    ev = url[:EVIDENCE_MAX]
    try:
        p = parse_url(url)
    except UrlError as exc:
        return [Capability("url.opaque", f"{exc}: {ev}")]
    caps: list[Capability] = []
    if p.scheme in WEB_PORTS:
        caps.append(Capability(f"net.egress:{p.host}:{p.port}", ev))
    else:
        caps.append(Capability(f"net.scheme:{p.scheme}", ev))
        if is_mining_scheme(p.scheme):
            caps.append(Capability("crypto.mine", ev))
    if p.userinfo is not None:
        caps.append(Capability("net.userinfo", ev))
    if p.idn:
        caps.append(Capability("net.idn", ev))
    caps.extend(host_class_capabilities(p.host_class, ev))
    return caps


def inspect_url(value: object, ctx: InspectContext) -> list[Capability]:
    """Inspector for a URL argument."""
    if not isinstance(value, str):
        return [Capability("inspect.invalid", f"url must be a string, not {type(value).__name__}")]
    return url_capabilities(value)

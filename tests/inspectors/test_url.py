"""URL inspector: table-driven cases (cases/url.yaml), host normalisation and properties."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper.inspectors import INSPECTORS, InspectContext
from gatekeeper.inspectors.url import UrlError, inspect_url, normalize_host, normalize_url
from gatekeeper.models import Capability
from gatekeeper.yamlfile import read_yaml

CTX = InspectContext()
CASES: list[dict[str, Any]] = read_yaml(Path(__file__).parent / "cases" / "url.yaml")


@pytest.mark.parametrize("case", CASES, ids=[c["url"][:60] for c in CASES])
def test_case(case: dict[str, Any]) -> None:
    got = {c.name for c in inspect_url(case["url"], CTX)}
    if "exact" in case:
        assert got == set(case["exact"])
    assert set(case.get("expect", [])) <= got, f"missing {set(case.get('expect', [])) - got}"
    assert not set(case.get("forbid", [])) & got


def test_registered() -> None:
    assert INSPECTORS["url"] is inspect_url


@pytest.mark.parametrize("value", [None, 1, ["http://x/"], {"url": "http://x/"}])
def test_wrong_type_is_invalid(value: object) -> None:
    assert [c.name for c in inspect_url(value, CTX)] == ["inspect.invalid"]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("2130706433", ("127.0.0.1", "internal")),
        ("0x7f000001", ("127.0.0.1", "internal")),
        ("0x7f.0.0.1", ("127.0.0.1", "internal")),
        ("0177.0.0.1", ("127.0.0.1", "internal")),
        ("127.1", ("127.0.0.1", "internal")),
        ("[::ffff:127.0.0.1]", ("127.0.0.1", "internal")),
        ("::1", ("[::1]", "internal")),
        ("169.254.169.254", ("169.254.169.254", "metadata")),
        ("Metadata.Google.Internal.", ("metadata.google.internal", "metadata")),
        ("GitHub.com", ("github.com", "public")),
        ("203.0.113.7", ("203.0.113.7", "public")),
        ("192.168.1.10", ("192.168.1.10", "internal")),
        ("172.31.0.1", ("172.31.0.1", "internal")),
        ("fe80::1", ("[fe80::1]", "internal")),
        ("fd12::1", ("[fd12::1]", "internal")),
        ("[64:ff9b::a00:1]", ("[64:ff9b::a00:1]", "internal")),
        ("bad host", ("bad host", "invalid")),
        ("08.0.0.1", ("08.0.0.1", "invalid")),
    ],
)
def test_normalize_host(host: str, expected: tuple[str, str]) -> None:
    assert normalize_host(host) == expected


def test_normalize_url_canonical_form() -> None:
    assert normalize_url("HTTP://User@0x7F000001:80") == "http://User@127.0.0.1/"
    assert normalize_url("https://Example.COM.:8443/a?b#c") == "https://example.com:8443/a?b#c"


def test_normalize_url_rejects_ambiguity() -> None:
    with pytest.raises(UrlError):
        normalize_url("http://a\\b/")


_HOSTS = st.one_of(
    st.from_regex(r"[a-zA-Z0-9-]{1,10}(\.[a-zA-Z0-9-]{1,10}){0,3}\.?", fullmatch=True),
    st.integers(0, 2**32 - 1).map(str),
    st.integers(0, 2**32 - 1).map(hex),
    st.ip_addresses(v=6).map(lambda ip: f"[{ip}]"),
    st.text(min_size=1, max_size=12),
)
_URLS = st.builds(
    lambda scheme, user, host, port, path: f"{scheme}://{user}{host}{port}{path}",
    st.sampled_from(["http", "HTTPS", "ws", "wss", "ftp", "gopher", "file"]),
    st.sampled_from(["", "u@", "u:p@"]),
    _HOSTS,
    st.one_of(st.just(""), st.integers(0, 70000).map(lambda p: f":{p}")),
    st.sampled_from(["", "/", "/a/b?c=d#e", "/%2e%2e/"]),
)


@settings(max_examples=500, deadline=None)
@given(st.one_of(_URLS, st.text(max_size=80)))
def test_normalisation_is_idempotent(url: str) -> None:
    try:
        once = normalize_url(url)
    except UrlError:
        return
    assert normalize_url(once) == once
    before = {c.name for c in inspect_url(url, CTX)}
    after = {c.name for c in inspect_url(once, CTX)}
    # net.idn is evidence about how the URL was written; an address written in non-ASCII
    # digits ("http://²") normalises to plain ASCII, so only the original can carry it.
    assert after - {"net.idn"} == before - {"net.idn"}
    assert "net.idn" not in after - before


def test_an_address_in_non_ascii_digits_is_flagged_as_idn() -> None:
    names = {c.name for c in inspect_url("http://²", CTX)}
    assert normalize_url("http://²") == "http://0.0.0.2/"
    assert "net.idn" in names and "net.egress:0.0.0.2:80" in names


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_arbitrary_text_yields_capabilities(text: str) -> None:
    caps = inspect_url(text, CTX)
    assert caps and all(isinstance(c, Capability) for c in caps)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_every_ipv4_spelling_agrees(n: int) -> None:
    quad = ".".join(str(n >> s & 255) for s in (24, 16, 8, 0))
    for spelling in (str(n), hex(n), quad, f"0{n >> 24:o}.{n >> 16 & 255}.{n & 0xFFFF}"):
        assert normalize_host(spelling)[0] == quad

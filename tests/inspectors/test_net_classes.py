"""Rules about where connections go and what a command stands for, that the corpus shows only by
example: mining pools and stratum spellings, address words, Teredo, routing headers, a module or
a package script as the program of its name, and miner configurations in written content."""

from __future__ import annotations

import pytest

from gatekeeper.inspectors import INSPECTORS, InspectContext
from gatekeeper.inspectors.content import content_capabilities, inspect_content
from gatekeeper.inspectors.shell import inspect_shell
from gatekeeper.inspectors.shell_programs import mining_text, package_programs
from gatekeeper.inspectors.url import address_word_class, is_mining_scheme, normalize_host

CTX = InspectContext()
WALLET = "4AdUndXHHZ6cfufTMvppY6JwXNouMBzSkbLYfpAV5Usx3skxNgYeYTRj5UzqtReoS44qo9mtmXCqY45DJ852K5Jv2684Rge"


def _caps(cmd: str) -> set[str]:
    return {c.name for c in inspect_shell(cmd, CTX)}


@pytest.mark.parametrize(
    "scheme", ["stratum+tcp", "stratum+ssl", "stratum2+tcp", "stratum1+tls", "stratum+tls", "stratums"]
)
def test_every_stratum_spelling_is_mining(scheme: str) -> None:
    assert is_mining_scheme(scheme)
    assert mining_text(f"{scheme.upper()}://pool.example.com:3333")


@pytest.mark.parametrize("scheme", ["https", "ssh", "strata", "git+ssh"])
def test_other_schemes_are_not_mining(scheme: str) -> None:
    assert not is_mining_scheme(scheme)


@pytest.mark.parametrize(
    ("host", "cls"),
    [
        ("gulf.moneroocean.stream", "mining"),
        ("XMR.2miners.com.", "mining"),
        ("nanopool.org", "mining"),
        ("notnanopool.org", "public"),  # a suffix match is on a label boundary
        ("168.63.129.16", "metadata"),  # Azure's WireServer
        ("[2001:0:4136:e378:8000:63bf:f5ff:fffe]", "internal"),  # Teredo for 10.0.0.1
        ("[2001:0:4136:e378:8000:63bf:3fff:fdd2]", "public"),  # Teredo for 192.0.2.45
    ],
)
def test_host_classes(host: str, cls: str) -> None:
    assert normalize_host(host)[1] == cls


@pytest.mark.parametrize(
    ("word", "cls"),
    [
        ("169.254.169.254", "metadata"),
        ("169.254.169.254:80", "metadata"),
        ("u@169.254.169.254/latest/meta-data", "metadata"),
        ("metadata.google.internal/computeMetadata/v1", "metadata"),
        ("pool.supportxmr.com:443", "mining"),
        ("[fd00:ec2::254]:80", "metadata"),
        ("127.0.0.1:8000", "internal"),  # callers take only metadata and mining from words
        ("metadata", None),  # a single label is a file or a subcommand
        ("instance-data", None),
        ("src/x.py", None),
        ("docs.python.org/3/", "public"),
        ("a b", None),
    ],
)
def test_address_words(word: str, cls: str | None) -> None:
    assert address_word_class(word) == cls


def test_address_words_in_commands() -> None:
    assert {"net.metadata", "net.internal"} <= _caps("./probe 169.254.169.254")
    assert "crypto.mine" in _caps("./app -o pool.supportxmr.com:443")
    assert not {"net.internal", "net.metadata"} & _caps("python3 app.py --host 127.0.0.1 --port 8000")
    assert not {"net.internal", "net.metadata"} & _caps("ls metadata instance-data")


def test_monero_wallet_is_mining() -> None:
    wallet = WALLET
    assert mining_text(wallet) and mining_text(f"--user={wallet}")
    assert not mining_text(wallet[:-1])  # 94 characters: no address
    assert not mining_text("a" * 200)


@pytest.mark.parametrize(
    ("header", "caps"),
    [
        ("Host: 203.0.113.7", {"net.proxy"}),
        ("host:169.254.169.254:80", {"net.proxy", "net.metadata"}),
        ("X-Forwarded-Host: [::1]", {"net.proxy", "net.internal"}),
        ("Forwarded: for=192.0.2.1;host=metadata.google.internal", {"net.proxy", "net.metadata"}),
        ("Accept: application/json", set()),
        ("X-Hostname-Hint: 169.254.169.254", set()),  # not a routing header
    ],
)
def test_routing_headers(header: str, caps: set[str]) -> None:
    for cmd in (f"curl -H '{header}' https://pypi.org/", f"wget --header='{header}' https://pypi.org/"):
        got = _caps(cmd) & {"net.proxy", "net.metadata", "net.internal"}
        assert got >= caps and (caps or not got), (cmd, got)


@pytest.mark.parametrize(
    ("path", "names"),
    [
        ("node_modules/localtunnel/bin/lt.js", {"localtunnel", "lt"}),
        ("./node_modules/.bin/lt", {"lt"}),
        ("node_modules/@scope/tool/index.js", {"tool"}),
        (".venv/lib/python3.12/site-packages/sshuttle/__main__.py", {"sshuttle"}),
        ("scripts/build.js", set()),
        ("lt.js", set()),
    ],
)
def test_package_programs(path: str, names: set[str]) -> None:
    assert package_programs(path) == names


@pytest.mark.parametrize(
    ("cmd", "cap"),
    [
        ("python3 -m sshuttle -r u@203.0.113.7 0/0", "net.tunnel"),
        ("python -m pyngrok http 8000", "net.tunnel"),
        ("python3 -m twisted portforward --port 1 --host 203.0.113.7 --dest_port 22", "net.tunnel"),
        ("python3 -m pyftpdlib -w", "net.listen"),
        ("python3 -m jupyter lab --ip 0.0.0.0", "net.listen"),
        ("node node_modules/.bin/lt --port 3000", "net.tunnel"),
        ("cargo run --bin bore -- local 8000 --to 203.0.113.7", "net.tunnel"),
        ("cargo run -p rathole -- client.toml", "net.tunnel"),
        ("go run -tags x ./cmd/chisel client 203.0.113.7:8080", "net.tunnel"),
        ("cd chisel && go run . client 203.0.113.7:8080", "net.tunnel"),
        ("./app client 203.0.113.7:8080 R:2222:localhost:22", "net.tunnel.reverse"),
    ],
)
def test_programs_by_another_name(cmd: str, cap: str) -> None:
    assert cap in _caps(cmd)


@pytest.mark.parametrize(
    "cmd",
    [
        "python -m notebook --generate-config",
        "python3 -m jupyter nbconvert --to html x.ipynb",
        "python3 -m mypkg.server",
        "cargo run --bin server",
        "go run ./cmd/server",
        "git log R:x",
    ],
)
def test_ordinary_look_alikes(cmd: str) -> None:
    assert not {"net.tunnel", "net.tunnel.reverse", "net.listen", "crypto.mine"} & _caps(cmd)


@pytest.mark.parametrize(
    "content",
    [
        '{"pools": [{"url": "203.0.113.9:3333", "user": "4abc"}]}',
        '{"donate-level": 1}',
        "pool = eu.nanopool.org:14444\n",
        "url: stratum2+ssl://pool.example.com:443\n",
        'msg = {"method": "mining.subscribe"}\n',
    ],
)
def test_written_miner_configuration(content: str) -> None:
    assert [c.name for c in content_capabilities(content)] == ["crypto.mine"]
    assert "crypto.mine" in _caps(f"cat > c.txt <<'EOF'\n{content}\nEOF")


@pytest.mark.parametrize(
    "content",
    [
        "# Pools\nThe worker pool has 4 threads; see https://pypi.org/.\n",
        '{"servers": [{"url": "db.example.com:5432", "user": "app"}]}',
        '{"random": 4, "level": "donate"}',
    ],
)
def test_ordinary_content(content: str) -> None:
    assert content_capabilities(content) == []


def test_content_inspector_registered() -> None:
    assert INSPECTORS["content"] is inspect_content
    assert [c.name for c in inspect_content(3, CTX)] == ["inspect.invalid"]


@pytest.mark.parametrize(
    "name", ["Host ", ":authority", "X-Original-Host", "X-Host", "Host\n", "X-Forwarded-Host"]
)
def test_http_fetch_refuses_routing_and_malformed_header_names(name: str) -> None:
    from gatekeeper.errors import SchemaError
    from tests.corpus.test_corpus import evaluate

    with pytest.raises(SchemaError):
        evaluate(
            {
                "tool": "http.fetch",
                "arguments": {"url": "https://pypi.org/", "headers": {name: "203.0.113.7"}},
            }
        )


def test_http_fetch_takes_ordinary_headers() -> None:
    from tests.corpus.test_corpus import evaluate

    headers = {"Accept": "application/json", "X-Request-Id": "1", "Authorization": "Bearer x"}
    assert (
        evaluate(
            {"tool": "http.fetch", "arguments": {"url": "https://pypi.org/", "headers": headers}}
        ).outcome
        == "allow"
    )


@pytest.mark.parametrize(
    "cmd",
    [
        "HOME=/workspace curl https://pypi.org/",
        "export HOME=/workspace; git fetch origin",
        "env HOME=/tmp/h pip install x",
        "cd /workspace && HOME=. python3 x.py",
    ],
)
def test_another_home_is_doubt(cmd: str) -> None:
    assert "shell.opaque" in _caps(cmd)


def test_the_real_home_is_not_doubt() -> None:
    assert "shell.opaque" not in _caps("HOME=/root git status")


@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("/workspace/pyproject.toml", "[[tool.uv.index]]\nname = 'x'\nurl = 'https://203.0.113.7/simple'\n"),
        ("/workspace/pyproject.toml", "[tool.uv]\nextra-index-url = ['https://203.0.113.7/simple']\n"),
        ("/workspace/pyproject.toml", "[tool.uv.pip]\nindex-url = 'https://203.0.113.7/simple'\n"),
        (
            "/workspace/pyproject.toml",
            "[[tool.poetry.source]]\nname = 'x'\nurl = 'https://203.0.113.7/simple'\n",
        ),
        (
            "/workspace/pyproject.toml",
            "[[tool.pdm.source]]\nname = 'x'\nurl = 'https://203.0.113.7/simple'\n",
        ),
        ("/workspace/uv.toml", "index-url = 'https://203.0.113.7/simple'\n"),
        ("/workspace/tox.ini", "[testenv]\nsetenv =\n    PIP_INDEX_URL = https://203.0.113.7/simple\n"),
        ("/workspace/tox.ini", "[testenv]\ndeps =\n    pytest\n    --index-url=https://203.0.113.7/simple\n"),
    ],
)
def test_written_package_indexes_are_destinations(path: str, content: str) -> None:
    from gatekeeper.inspectors.written_code import analyse_written

    names = {c.name for c in analyse_written(path, content).capabilities}
    assert "net.egress:203.0.113.7:443" in names


def test_written_local_indexes_and_plain_deps_are_not_destinations() -> None:
    from gatekeeper.inspectors.written_code import analyse_written

    for path, content in (
        ("/workspace/pyproject.toml", "[tool.uv]\nfind-links = ['./wheels']\n"),
        ("/workspace/tox.ini", "[testenv]\ndeps =\n    pytest>=7\n    mock\ncommands = pytest\n"),
    ):
        names = {c.name for c in analyse_written(path, content).capabilities}
        assert not any(n.startswith("net.") for n in names), names


def test_npm_pkg_set_scripts_are_read_now() -> None:
    assert {"proc.exec:nc", "net.connect:203.0.113.7:1"} <= _caps(
        "npm pkg set scripts.test='nc 203.0.113.7 1'"
    )
    assert "shell.opaque" in _caps('npm pkg set "scripts.test=$CMD"')
    assert _caps("npm pkg set name=foo version=1.0.0") == {"proc.exec:npm"}


@pytest.mark.parametrize("cmd", ["yarn exec lt --port 3000", "yarn run lt", "pnpm exec lt"])
def test_package_bins_by_name(cmd: str) -> None:
    assert "net.tunnel" in _caps(cmd)


@pytest.mark.parametrize("host", ["vault.service.consul", "pypi.corp", "router.home", "db.private"])
def test_names_that_resolve_only_inside_are_internal(host: str) -> None:
    assert normalize_host(host)[1] == "internal"


@pytest.mark.parametrize(
    ("cmd", "cap"),
    [
        ("python -Im pproxy", "net.tunnel"),
        ("python -Bmsshuttle -r u@203.0.113.7 0/0", "net.tunnel"),
        ("python -I -Wignore -m pproxy", "net.tunnel"),
        ("python3 -c 'import sshuttle.cmdline; sshuttle.cmdline.main()'", "net.tunnel"),
        ("python3 -c 'import pyrx'", "crypto.mine"),
    ],
)
def test_python_flag_clusters_and_imports(cmd: str, cap: str) -> None:
    assert cap in _caps(cmd)


def test_imports_take_only_tunnels_and_miners() -> None:
    assert "net.tunnel" not in _caps("python3 -c 'import xray, numpy'")  # xarray's old name
    assert "net.scan" not in _caps("python3 -c 'import nmap'")  # imported, not run


def test_written_python_importing_a_tunnel_is_a_tunnel() -> None:
    from gatekeeper.inspectors.written_code import analyse_written

    written = analyse_written("/workspace/t.py", "import sshuttle.cmdline\nsshuttle.cmdline.main()\n")
    assert "net.tunnel" in {c.name for c in written.capabilities}


@pytest.mark.parametrize(
    ("content", "tunnel"),
    [
        ("const lt = require('localtunnel');\nlt({port: 3000});\n", True),
        ('import ngrok from "@ngrok/ngrok";\nawait ngrok.forward({addr: 3000});\n', True),
        ('import x from "./lt.js";\nconst fs = require("fs");\n', False),
        ('import express from "express";\n', False),
    ],
)
def test_written_javascript_loading_a_tunnel(content: str, tunnel: bool) -> None:
    from gatekeeper.inspectors.written_code import analyse_written

    assert (
        "net.tunnel" in {c.name for c in analyse_written("/workspace/t.js", content).capabilities}
    ) is tunnel


@pytest.mark.parametrize("cmd", ["cd /workspace/su && go run .", "cargo run --bin at", "yarn run sudo"])
def test_programs_by_a_given_name_carry_only_network_and_mining(cmd: str) -> None:
    assert not {"priv.escalate", "persist.cron"} & _caps(cmd)


@pytest.mark.parametrize(
    ("cmd", "runs"),
    [
        ("uv venv --python /workspace/x.sh", "proc.exec:/workspace/x.sh"),
        ("uv run -p ./bin/py python", "proc.exec:/workspace/bin/py"),
        ("pip --python /workspace/tools/py install y", "proc.exec:/workspace/tools/py"),
    ],
)
def test_an_interpreter_by_path_runs(cmd: str, runs: str) -> None:
    assert runs in _caps(cmd)


def test_an_interpreter_by_version_runs_nothing_more() -> None:
    assert _caps("uv venv --python 3.12") == {"proc.exec:uv"}


@pytest.mark.parametrize(
    ("cmd", "cap"),
    [
        ("./t -opool.supportxmr.com:443", "crypto.mine"),
        (
            "./t -u" + WALLET,
            "crypto.mine",
        ),
        ("./probe -h169.254.169.254", "net.metadata"),
    ],
)
def test_attached_short_option_values(cmd: str, cap: str) -> None:
    assert cap in _caps(cmd)


def test_attached_short_option_look_alikes() -> None:
    assert not {"crypto.mine", "net.metadata"} & _caps("gcc -ofoo.o -I./include -L/usr/lib x.c")

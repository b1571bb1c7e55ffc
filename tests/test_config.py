"""The configuration file: defaults, and errors that name the file, the key and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatekeeper.config import load_config
from gatekeeper.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "gatekeeper.yaml"


def test_embedded_defaults_are_loopback_and_enforcing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GATEKEEPER_HOME", str(tmp_path / "home"))
    config = load_config(None)
    assert config.agent_listener.host == "127.0.0.1" and config.agent_listener.port == 8080
    assert config.operator_listener.port == 8081
    assert config.mode == "enforce"
    assert config.data_dir == tmp_path / "home"
    assert config.policy.policy.is_file()
    assert set(config.upstreams) == {"demo"}


def test_example_file_loads() -> None:
    config = load_config(EXAMPLE)
    assert config.source == str(EXAMPLE)
    assert config.policy.tools.is_file()


def test_upstream_headers_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TOOL_TOKEN", "s3cret")
    path = tmp_path / "gk.yaml"
    path.write_text(
        "upstreams:\n  t:\n    url: http://127.0.0.1:9\n    headers: {X-Key: 'k ${TOOL_TOKEN}'}\n"
    )
    assert load_config(path).upstreams["t"].headers == {"X-Key": "k s3cret"}


def test_an_upstream_can_ask_for_per_call_egress_credentials(tmp_path: Path) -> None:
    path = tmp_path / "gk.yaml"
    path.write_text(
        "listeners:\n  egress: {port: 0}\n"
        "upstreams:\n  t: {url: 'http://127.0.0.1:9', egress_credential: true}\n"
    )
    config = load_config(path)
    assert config.upstreams["t"].egress_credential and config.egress_enabled


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("listeners:\n  agent: {port: 99999}\n", "listeners.agent.port", "0-65535"),
        ("listners: {}\n", "listners", "unknown setting"),
        ("mode: yolo\n", "mode", "enforce"),
        ("identity:\n  algorithms: [HS256]\n", "identity.algorithms", "asymmetric"),
        ("identity:\n  algorithms: [none]\n", "identity.algorithms", "asymmetric"),
        ("identity:\n  audience: gatekeeper-operator\n", "identity", "differ"),
        ("upstreams:\n  t: {headers: {}}\n", "upstreams.t", "needs url"),
        ("upstreams:\n  t: {url: 'ftp://x'}\n", "upstreams.t.url", "http"),
        (
            "upstreams:\n  t: {url: 'http://127.0.0.1:1', egress_credential: true}\n",
            "upstreams.t.egress_credential",
            "listeners.egress",
        ),
        (
            "upstreams:\n  t: {url: 'http://127.0.0.1:1', egress_credential: 1}\n",
            "upstreams.t.egress_credential",
            "bool",
        ),
        (
            "upstreams:\n  t: {url: 'http://127.0.0.1:1', headers: {X: '${NOT_SET_ANYWHERE_42}'}}\n",
            "upstreams.t.headers.X",
            "NOT_SET_ANYWHERE_42",
        ),
        ("limits:\n  max_body_bytes: -1\n", "limits.max_body_bytes", "positive"),
        ("runner:\n  gpu_devices: [nvidia0]\n", "runner.gpu_devices", "absolute"),
        ("runner:\n  gpu_shared_devices: [/dev/../etc/shadow]\n", "runner.gpu_shared_devices", "absolute"),
        ("limits:\n  max_body_bytes: lots\n", "limits.max_body_bytes", "int"),
        ("listeners:\n  agent: {port: 7000}\n  operator: {port: 7000}\n", "listeners.operator", "differ"),
        ("- just\n- a list\n", "", "mapping"),
        ("a: [unclosed\n", "", "YAML"),
    ],
)
def test_bad_config_names_file_key_and_problem(tmp_path: Path, text: str, key: str, problem: str) -> None:
    path = tmp_path / "gatekeeper.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = info.value.message
    assert message.startswith(str(path)), message
    assert key in message and problem in message, message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")


def test_budgets_prefix_is_read_and_checked(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("budgets: {store: 'redis://127.0.0.1:6379/0', prefix: 'team-a:budget:'}\n")
    assert load_config(good).budget_prefix == "team-a:budget:"
    assert load_config(None).budget_prefix == "gatekeeper:budget:"
    bad = tmp_path / "bad.yaml"
    bad.write_text("budgets: {prefix: 'has spaces'}\n")
    with pytest.raises(ConfigError, match=r"budgets\.prefix"):
        load_config(bad)

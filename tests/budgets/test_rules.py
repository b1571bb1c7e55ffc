"""Loading budgets.yaml, and every way a rule can be wrong (each names file, rule and key)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gatekeeper.budgets import BudgetRule, load_budget_rules, parse_window
from gatekeeper.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

GOOD: dict[str, Any] = {
    "id": "gpu-daily",
    "subject": "agent",
    "match": "compute.gpu:*",
    "metric": "gpu_hours",
    "limit": 24,
    "window": "1d",
    "per": "principal",
    "on_exceed": "escalate",
    "note": "too many GPU-hours",
}


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "budgets.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def rule(**changes: Any) -> dict[str, Any]:
    out = {**GOOD, **changes}
    return {k: v for k, v in out.items() if v is not _DROP}


_DROP = object()


def test_default_pack_budgets_load() -> None:
    rules = load_budget_rules(REPO / "policies" / "budgets.yaml")
    by_id = {r.id: r for r in rules}
    assert len(rules) == 4 and len(by_id) == 4
    assert len(rules.version) == 64
    gpu_principal = by_id["agent-gpu-hours-per-principal-daily"]
    assert (gpu_principal.subject, gpu_principal.match, gpu_principal.metric) == (
        "agent",
        "compute.gpu:*",
        "gpu_hours",
    )
    assert (gpu_principal.limit, gpu_principal.window_seconds, gpu_principal.per) == (
        24.0,
        86400,
        "principal",
    )
    assert gpu_principal.on_exceed == "escalate"
    gpu_role = by_id["agent-gpu-hours-per-role-daily"]
    assert (gpu_role.limit, gpu_role.per, gpu_role.on_exceed) == (200.0, "role", "deny")
    shell = by_id["agent-shell-calls-hourly"]
    assert (shell.match, shell.metric, shell.limit, shell.window_seconds) == (
        "tool:shell.exec",
        "calls",
        2000,
        3600,
    )
    assert shell.per == "principal" and shell.on_exceed == "deny"
    http = by_id["agent-http-calls-hourly"]
    assert (http.match, http.limit, http.window_seconds, http.on_exceed) == (
        "tool:http.fetch",
        1000,
        3600,
        "deny",
    )
    assert rules.get("agent-http-calls-hourly") is http and rules.get("nope") is None


def test_a_full_rule_loads(tmp_path: Path) -> None:
    rules = load_budget_rules(write(tmp_path, {"budgets": [GOOD, rule(id="b", note=None, subject="*")]}))
    assert rules.rules[0] == BudgetRule(
        id="gpu-daily",
        subject="agent",
        match="compute.gpu:*",
        metric="gpu_hours",
        limit=24.0,
        window_seconds=86400,
        per="principal",
        on_exceed="escalate",
        note="too many GPU-hours",
        location="budgets.yaml:gpu-daily",
    )
    assert rules.rules[1].note == "" and rules.rules[1].subject == "*"
    assert rules.source == str(tmp_path / "budgets.yaml")


def test_an_empty_list_is_no_budgets(tmp_path: Path) -> None:
    assert len(load_budget_rules(write(tmp_path, {"budgets": []}))) == 0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (1, 1),
        (3600, 3600),
        ("3600", 3600),
        ("90s", 90),
        ("15m", 900),
        ("1h", 3600),
        ("1d", 86400),
        ("2w", 14 * 86400),
        (" 1h ", 3600),
        ("366d", 366 * 86400),
    ],
)
def test_windows(value: object, seconds: int) -> None:
    assert parse_window(value) == seconds


@pytest.mark.parametrize(
    "value", [0, -5, True, 1.5, "", "h", "1y", "1 h", "-1h", "0h", "1H", "367d", None, [1]]
)
def test_bad_windows(value: object) -> None:
    with pytest.raises(ValueError, match="must be"):
        parse_window(value)


# (label, budgets-file content, key the error names, words in the message)
BAD_FILES: list[tuple[str, Any, str, str]] = [
    ("empty file", "", "budgets", "expected a mapping"),
    ("a list at the top", "- 1\n", "budgets", "expected a mapping"),
    ("budgets not a list", {"budgets": {"a": GOOD}}, "budgets", "'budgets' list"),
    ("unknown top-level key", {"budgets": [], "limits": []}, "limits", "unknown key"),
    ("a rule is not a mapping", {"budgets": ["x"]}, "budgets[0]", "must be a mapping"),
    ("unknown rule key", {"budgets": [rule(action="deny")]}, "budgets.gpu-daily.action", "unknown key"),
    ("duplicate id", {"budgets": [GOOD, GOOD]}, "budgets.gpu-daily.id", "duplicate"),
]
for _key in ("id", "subject", "match", "metric", "limit", "window", "per", "on_exceed"):
    _where = "budgets[0].id" if _key == "id" else f"budgets.gpu-daily.{_key}"
    BAD_FILES.append((f"missing {_key}", {"budgets": [rule(**{_key: _DROP})]}, _where, "required"))

# (label, one changed key, its bad value, words in the message)
BAD_VALUES: list[tuple[str, str, Any, str]] = [
    ("id with a space", "id", "gpu daily", "letters, digits"),
    ("id with a bar", "id", "gpu|daily", "letters, digits"),
    ("id too long", "id", "x" * 65, "letters, digits"),
    ("id not text", "id", 7, "letters, digits"),
    ("empty subject", "subject", "", "role name"),
    ("subject not text", "subject", 3, "role name"),
    ("subject with a comma", "subject", "a,b", "role name"),
    ("subject with spaces around", "subject", " agent", "role name"),
    ("user: without a name", "subject", "user:", "needs a subject"),
    ("a wildcard inside a subject", "subject", "ag*", "lone"),
    ("empty match", "match", "", "pattern"),
    ("match not text", "match", ["compute.gpu:*"], "pattern"),
    ("metric with capitals", "metric", "GPU_hours", "amount name"),
    ("metric not text", "metric", 1, "amount name"),
    ("an amount of a tool", "match", "tool:compute.provision", "tools carry no amounts"),
    ("limit a boolean", "limit", True, "finite number"),
    ("limit text", "limit", "24", "finite number"),
    ("limit negative", "limit", -1, "finite number"),
    ("limit infinite", "limit", float("inf"), "finite number"),
    ("limit NaN", "limit", float("nan"), "finite number"),
    ("window zero", "window", 0, "between 1 second"),
    ("window in years", "window", "1y", "must be whole seconds"),
    ("window fractional", "window", 1.5, "must be whole seconds"),
    ("per nonsense", "per", "team", "'principal' or 'role'"),
    ("on_exceed nonsense", "on_exceed", "allow", "'deny' or 'escalate'"),
    ("note not text", "note", ["x"], "must be text"),
]


@pytest.mark.parametrize(("label", "content", "key", "words"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files(tmp_path: Path, label: str, content: Any, key: str, words: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(ConfigError) as info:
        load_budget_rules(path)
    err = info.value
    assert err.detail["file"] == str(path)
    assert err.detail["key"] == key, label
    assert str(path) in err.message and key in err.message and words in err.message


@pytest.mark.parametrize(("label", "key", "value", "words"), BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_bad_values(tmp_path: Path, label: str, key: str, value: Any, words: str) -> None:
    if key == "match":  # an amount over a tool pattern is reported on the metric
        changed = rule(match=value)
        where = "metric" if isinstance(value, str) and value.startswith("tool:") else "match"
    else:
        changed, where = rule(**{key: value}), key
    path = write(tmp_path, {"budgets": [GOOD, changed] if key != "id" else [changed]})
    with pytest.raises(ConfigError) as info:
        load_budget_rules(path)
    err = info.value
    rule_id = "gpu-daily" if key != "id" else "budgets[0]"
    if key == "id":
        assert err.detail["key"] == "budgets[0].id" and err.detail["rule"] == "budgets[0]"
    else:
        assert err.detail["key"] == f"budgets.gpu-daily.{where}"
        assert err.detail["rule"] == "gpu-daily"
    assert err.detail["file"] == str(path)
    assert str(path) in err.message and rule_id in err.message and words in err.message, err.message


def test_duplicate_ids_fail_even_when_valid(tmp_path: Path) -> None:
    # the duplicate check runs after the second rule passes on its own
    path = write(tmp_path, {"budgets": [GOOD, rule(limit=1)]})
    with pytest.raises(ConfigError, match="duplicate rule id"):
        load_budget_rules(path)


def test_per_role_needs_a_role(tmp_path: Path) -> None:
    path = write(tmp_path, {"budgets": [rule(subject="user:alice", per="role")]})
    with pytest.raises(ConfigError) as info:
        load_budget_rules(path)
    assert info.value.detail["key"] == "budgets.gpu-daily.per"
    assert "use per: principal" in info.value.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="budget file not found"):
        load_budget_rules(tmp_path / "nope.yaml")


def test_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_budget_rules(write(tmp_path, "budgets: [\n"))


def test_a_calls_budget_over_a_tool_is_fine(tmp_path: Path) -> None:
    rules = load_budget_rules(write(tmp_path, {"budgets": [rule(match="tool:shell.exec", metric="calls")]}))
    assert rules.rules[0].matches("tool:shell.exec") and not rules.rules[0].matches("tool:shell.execute")


@pytest.mark.parametrize(
    ("pattern", "obj", "expected"),
    [
        ("compute.gpu:*", "compute.gpu:H100", True),
        ("compute.gpu:*", "compute.gpu:", True),
        ("compute.gpu:*", "compute.opaque", False),
        ("net.tunnel*", "net.tunnel.reverse", True),
        ("net.tunnel", "net.tunnel.reverse", False),
        ("*", "anything", True),
        ("a*b", "a-anything", True),  # keyMatch: everything before the first * is a prefix
    ],
)
def test_key_match(pattern: str, obj: str, expected: bool) -> None:
    assert BudgetRule("r", "*", pattern, "calls", 1, 60, "principal", "deny").matches(obj) is expected

"""The README's examples against the code: every ``policy.csv:N`` it cites is the rule the default
pack really decides its example call by, and its example times are not fixed dates that age."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from gatekeeper.config import DEFAULT_POLICY_DIR
from gatekeeper.gate import load_policy_set
from gatekeeper.models import Principal
from gatekeeper.policy.explain import explain
from gatekeeper.policy.lint import policy_files_in

README = Path(__file__).resolve().parent.parent / "README.md"
_BODY = re.compile(r"-d '(\{.*\})'")
_CITED = re.compile(r"policy\.csv:(\d+)")


def _calls(lines: list[str]) -> list[tuple[int, dict[str, Any]]]:
    """(line number, body) of every example request in the README."""
    return [(n, json.loads(m.group(1))) for n, line in enumerate(lines, 1) if (m := _BODY.search(line))]


def test_every_cited_rule_line_decides_its_example_call() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    calls = _calls(lines)
    pack = load_policy_set(policy_files_in(DEFAULT_POLICY_DIR))
    agent = Principal("demo-agent", ("agent",), "gatekeeper-dev", 0.0)
    cited = [(n, int(m.group(1))) for n, line in enumerate(lines, 1) for m in _CITED.finditer(line)]
    assert cited, "the README cites no rule: this test would check nothing"
    for number, rule_line in cited:
        before = [(n, body) for n, body in calls if n < number]
        assert before, f"README.md:{number} cites policy.csv:{rule_line} with no example call before it"
        _, body = before[-1]
        report = explain(pack, agent, body["tool"], body["arguments"])
        decided = report.get("policy_decision", report["decision"])["rule"]
        assert decided == f"policy.csv:{rule_line}", (
            f"README.md:{number} cites policy.csv:{rule_line}; the default pack decides "
            f"{body['tool']} {body['arguments']} by {decided}"
        )


def test_example_times_are_relative() -> None:
    text = README.read_text(encoding="utf-8")
    fixed = re.findall(r"--(?:since|until)[ =]\d{4}-\d\d-\d\d", text)
    assert fixed == [], f"fixed dates age into the past: {fixed}"

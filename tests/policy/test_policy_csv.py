"""``policy_csv``: the one reader of policy.csv, and the engine and lint reading a file alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatekeeper.errors import PolicyError
from gatekeeper.policy.casbin_engine import CasbinPolicy
from gatekeeper.policy.lint import ERROR, lint, policy_files_in
from gatekeeper.policy.policy_csv import PolicyLine, Rule, RuleProblem, is_shadow, parse_lines, parse_rule
from tests.helpers import copy_policy_pack

TEXT = """\
# a comment, then a blank line

p, agent, tool:file.read, allow, True, reading
p, *, tool:x, escalate:3!shadow, r.ctx.gpus > (1), nested (a, b) stays one field
g, intern, agent
p, agent, tool:y, allow, True
p, agent, tool:z, maybe, True, bad effect
p, agent, tool:z, escalate:11, True, too many approvers
p, agent, tool:), allow, True, unbalanced
"""


def test_lines_keep_their_numbers_and_split_as_casbin_does() -> None:
    lines = list(parse_lines(TEXT))
    assert [line.number for line in lines] == [3, 4, 5, 6, 7, 8, 9]
    assert lines[0] == PolicyLine(3, "p", ("agent", "tool:file.read", "allow", "True", "reading"))
    assert lines[1].fields == (
        "*",
        "tool:x",
        "escalate:3!shadow",
        "r.ctx.gpus > (1)",
        "nested (a, b) stays one field",
    )
    assert lines[2] == PolicyLine(5, "g", ("intern", "agent"))
    assert lines[6] == PolicyLine(9, "", None)


def test_rules_and_what_is_wrong_with_the_rest() -> None:
    lines = list(parse_lines(TEXT))
    assert parse_rule(lines[0]) == Rule(3, "agent", "tool:file.read", "allow", 1, "True", "reading")
    shadow = parse_rule(lines[1])
    assert isinstance(shadow, Rule)
    assert (shadow.effect, shadow.quorum, shadow.shadow, shadow.line) == ("escalate", 3, True, 4)
    assert shadow.casbin_fields()[2] == "escalate"
    assert is_shadow(lines[1]) and not is_shadow(lines[0])
    assert [parse_rule(line) for line in lines[3:]] == [
        RuleProblem.FIELD_COUNT,
        RuleProblem.EFFECT,
        RuleProblem.QUORUM,
        RuleProblem.FIELD_COUNT,
    ]


@pytest.mark.parametrize(
    ("line", "engine_says"),
    [
        ("p, agent, tool:z, maybe, True, bad effect", "effect must be allow, deny, escalate or escalate:N"),
        ("p, agent, tool:z, escalate:11, True, many", "escalate:N needs 1 to 10 approvers"),
        ("p, agent, tool:y, allow, True", "expected 'p, SUBJECT, OBJECT, EFFECT, CONDITION, NOTE'"),
        ("p, agent, tool:), allow, True, unbalanced", "could not parse this line"),
    ],
)
def test_the_engine_and_lint_refuse_the_same_line(tmp_path: Path, line: str, engine_says: str) -> None:
    pack = tmp_path / "pack"
    copy_policy_pack(pack)
    policy = pack / "policy.csv"
    number = len(policy.read_text().splitlines()) + 1
    policy.write_text(policy.read_text() + line + "\n")
    with pytest.raises(PolicyError) as refused:
        CasbinPolicy(pack / "model.conf", policy)
    assert f"policy.csv:{number}: {engine_says}" in refused.value.message
    errors = [f for f in lint(policy_files_in(pack)) if f.severity == ERROR and f.path.endswith("policy.csv")]
    assert [f.line for f in errors] == [number]

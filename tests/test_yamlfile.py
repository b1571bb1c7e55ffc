"""Duplicate keys in any YAML Gatekeeper reads are errors naming both places, never a silent
replacement (a copy-pasted ``file.read`` without ``inspect:`` once became the only one)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from gatekeeper.budgets import load_budget_rules
from gatekeeper.config import load_config
from gatekeeper.errors import ConfigError
from gatekeeper.gate import load_policy_set
from gatekeeper.policy.lint import has_errors, lint, policy_files_in
from gatekeeper.policy.testing import load_cases
from gatekeeper.yamlfile import read_yaml

from .policy_tools import PACK, copy_pack

FILE_READ = """\
  file.read:
    upstream: demo
    arguments:
      type: object
      properties:
        path: {type: string}
      required: [path]
      additionalProperties: false
"""


def _both_lines(message: str, name: str, first: int, second: int) -> None:
    assert f"{name}:{first}" in message and f"{name}:{second}" in message, message


def _dup_tools(tmp_path: Path) -> tuple[Path, int, int]:
    """The default pack's tools.yaml with a second, uninspected ``file.read`` appended."""
    pack = copy_pack(tmp_path / "pack")
    tools = pack / "tools.yaml"
    text = tools.read_text()
    first = next(n for n, line in enumerate(text.splitlines(), 1) if line == "  file.read:")
    text = text.rstrip("\n") + "\n\n" + FILE_READ
    tools.write_text(text)
    second = len(text.splitlines()) - len(FILE_READ.splitlines()) + 1
    return pack, first, second


def test_a_duplicated_tool_is_refused_by_the_loader_and_lint(tmp_path: Path) -> None:
    pack, first, second = _dup_tools(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_policy_set(policy_files_in(pack))
    _both_lines(caught.value.message, "tools.yaml", first, second)
    assert "duplicate key 'file.read'" in caught.value.message

    findings = lint(policy_files_in(pack))
    assert has_errors(findings)
    dup = [f for f in findings if f.code == "duplicate-key"]
    assert len(dup) == 1 and Path(dup[0].path).name == "tools.yaml" and dup[0].line == second
    _both_lines(dup[0].message, "tools.yaml", first, second)


@pytest.mark.parametrize(
    ("name", "text", "first", "second"),
    [
        ("gatekeeper.yaml", "mode: enforce\nlogging: {level: info}\nmode: monitor\n", 1, 3),
        ("nested.yaml", "listeners:\n  agent: {port: 1}\n  agent: {port: 2}\n", 2, 3),
    ],
)
def test_configuration_duplicates_name_both_lines(
    tmp_path: Path, name: str, text: str, first: int, second: int
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    _both_lines(caught.value.message, name, first, second)


def test_budget_file_duplicates_name_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    shutil.copyfile(PACK / "budgets.yaml", path)
    lines = path.read_text().splitlines()
    at = next(n for n, line in enumerate(lines, 1) if line.strip().startswith("limit: 24"))
    lines.insert(at, "    limit: 2400")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as caught:
        load_budget_rules(path)
    _both_lines(caught.value.message, "budgets.yaml", at, at + 1)


def test_policy_test_file_duplicates_name_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "cases.yaml"
    path.write_text("cases:\n  - name: a\n    tool: file.read\n    expect: allow\n    expect: deny\n")
    with pytest.raises(ConfigError) as caught:
        load_cases(path)
    _both_lines(caught.value.message, "cases.yaml", 4, 5)


def test_merge_keys_may_still_be_overridden(tmp_path: Path) -> None:
    path = tmp_path / "merge.yaml"
    path.write_text("base: &b {x: 1, y: 1}\nthing:\n  <<: *b\n  x: 2\n")
    assert read_yaml(path) == {"base": {"x": 1, "y": 1}, "thing": {"x": 2, "y": 1}}


def test_no_module_parses_yaml_around_the_strict_loader() -> None:
    """One loader for the whole package: a new ``yaml.safe_load`` would bring silent replacement back."""
    package = Path(__file__).resolve().parents[1] / "gatekeeper"
    offenders = [
        f"{path.relative_to(package)}:{number}"
        for path in package.rglob("*.py")
        if path.name != "yamlfile.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"yaml\.(safe_|full_|unsafe_)?load(_all)?\(", line)
    ]
    assert offenders == []

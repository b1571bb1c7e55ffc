"""The default pack against its own test cases (policies/tests/*.yaml), through the pure gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gatekeeper.config import PolicyFiles
from gatekeeper.gate import Gate, load_policy_set
from gatekeeper.models import Principal
from gatekeeper.yamlfile import read_yaml

PACK = Path(__file__).resolve().parents[2] / "policies"
CASES = [case for f in sorted((PACK / "tests").glob("*.yaml")) for case in read_yaml(f)["cases"]]
GATE = Gate(load_policy_set(PolicyFiles(PACK / "model.conf", PACK / "policy.csv", PACK / "tools.yaml")))


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_case(case: dict[str, Any]) -> None:
    principal = Principal("test-agent", tuple(case["roles"]), "gatekeeper-dev", 0.0)
    verdict = GATE.evaluate(principal, case["tool"], case["arguments"])
    capabilities = [c.name for c in verdict.call.capabilities] if verdict.call else []
    assert verdict.decision.outcome == case["expect"], (verdict.decision, capabilities)
    if "code" in case:
        assert verdict.decision.code == case["code"], (verdict.decision, capabilities)


def test_there_are_cases() -> None:
    assert len(CASES) >= 20

"""Compute inspector: GPU requests as capabilities with budget amounts."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatekeeper.inspectors import INSPECTORS, InspectContext
from gatekeeper.inspectors.compute import inspect_compute

CTX = InspectContext()


def test_design_example() -> None:
    [cap] = inspect_compute({"gpu_type": "H100", "count": 8, "hours": 72}, CTX)
    assert cap.name == "compute.gpu:H100"
    assert dict(cap.amounts) == {"gpus": 8.0, "gpu_hours": 576.0}


def test_hours_default_to_one_and_type_is_normalised() -> None:
    [cap] = inspect_compute({"gpu_type": "  a100-80gb ", "count": 2}, CTX)
    assert cap.name == "compute.gpu:A100-80GB"
    assert dict(cap.amounts) == {"gpus": 2.0, "gpu_hours": 2.0}


def test_fractional_hours() -> None:
    [cap] = inspect_compute({"gpu_type": "T4", "count": 3, "hours": 0.5}, CTX)
    assert dict(cap.amounts)["gpu_hours"] == 1.5


@pytest.mark.parametrize(
    "args",
    [
        {"gpu_type": "H100"},
        {"gpu_type": "H100", "count": 0},
        {"gpu_type": "H100", "count": -1},
        {"gpu_type": "H100", "count": True},
        {"gpu_type": "H100", "count": 1.5},
        {"gpu_type": "H100", "count": "8"},
        {"gpu_type": "H100", "count": 8, "hours": -1},
        {"gpu_type": "H100", "count": 8, "hours": 0},
        {"gpu_type": "H100", "count": 8, "hours": math.inf},
        {"gpu_type": "H100", "count": 8, "hours": math.nan},
        {"gpu_type": "H100", "count": 8, "hours": "72"},
        {"gpu_type": "H100", "count": 8, "hours": False},
        {"gpu_type": "H 100", "count": 8},
        {"gpu_type": "H100*", "count": 8},
        {"gpu_type": "", "count": 8},
        {"gpu_type": "Ｈ100", "count": 8},
        {"gpu_type": 100, "count": 8},
        {"count": 8},
    ],
)
def test_bad_shapes_are_opaque(args: dict[str, object]) -> None:
    assert [c.name for c in inspect_compute(args, CTX)] == ["compute.opaque"]


@pytest.mark.parametrize("value", [None, "H100", 8, ["H100", 8]])
def test_wrong_type_is_invalid(value: object) -> None:
    assert [c.name for c in inspect_compute(value, CTX)] == ["inspect.invalid"]


def test_registered() -> None:
    assert INSPECTORS["compute"] is inspect_compute


@given(
    st.dictionaries(
        st.sampled_from(["gpu_type", "count", "hours", "x"]),
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    )
)
def test_never_raises_and_amounts_are_sane(args: dict[str, object]) -> None:
    for cap in inspect_compute(args, CTX):
        assert cap.name.startswith(("compute.gpu:", "compute.opaque"))
        for _, amount in cap.amounts:
            assert math.isfinite(amount) and amount > 0

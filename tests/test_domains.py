"""Every function of the op table at points outside its real domain (below it, above it, at its branch points):
the exact side says the value does not exist, torch's NaN or inf is compared against that; nothing crashes."""

from __future__ import annotations

import pytest

from verifier.case.validate import case_from_expression
from verifier.errors import CaseError
from verifier.language.ops import ELEMENTWISE, OPS
from verifier.runner import verify_case

POINTS = [-3.0, -1.1, -1.0, -0.5, 0.0, 0.5, 1.0, 1.1, 3.0]  # branch points of log, sqrt, acos, acosh, atanh, ...
UNARY = sorted(name for name, op in OPS.items() if op.kind == ELEMENTWISE and op.arity[0] <= 1 <= op.arity[1])
BINARY = sorted(name for name, op in OPS.items() if op.kind == ELEMENTWISE and op.arity[0] <= 2 <= op.arity[1]
                and op.arity[0] == 2)


def _run(expression: str, inputs: dict) -> None:
    try:
        case = case_from_expression(expression, inputs, checks=["value", "backward", "jvp"])
    except CaseError:
        pytest.skip(f"{expression} is not a plain function of tensors")
    result = verify_case(case)
    assert result.crashed is None and result.error is None, result.crashed or result.error
    errors = [c.error for c in result.checks if c.error]
    assert not errors, errors[0][-1500:]


@pytest.mark.parametrize("name", UNARY)
def test_unary_outside_its_domain(name):
    _run(f"{name}(x)", {"x": {"value": POINTS}})


@pytest.mark.parametrize("name", BINARY)
def test_binary_outside_its_domain(name):
    _run(f"{name}(x, y)", {"x": {"value": POINTS}, "y": {"value": POINTS[::-1]}})

"""Facts where no derivative formula applies (issue 16 part 4), on the real engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from verifier import GradientMismatch, assert_gradients_match
from verifier.case.validate import case_from_expression
from verifier.runner import verify_case


class CubeOnCtx(torch.autograd.Function):
    """x³ keeping x on ctx instead of save_for_backward: nothing guards it against an in-place change."""

    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        return x**3

    @staticmethod
    def backward(ctx, g):
        return 3 * ctx.x**2 * g


class Cube(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x**2 * g


X = torch.tensor([0.5, -1.25, 2.0], dtype=torch.float64)


def test_an_input_changed_in_place_is_refused_by_save_for_backward():
    result = assert_gradients_match(Cube.apply, "x**3", {"x": X}, checks=["inplace"])
    (fact,) = [f for ch in result.checks for f in ch.facts]
    assert fact.passed and fact.got == "refused"


def test_a_stale_input_kept_on_ctx_is_found():
    with pytest.raises(GradientMismatch) as info:
        assert_gradients_match(CubeOnCtx.apply, "x**3", {"x": X}, checks=["inplace"])
    assert "stale_input" in info.value.result.diagnoses()


def test_a_linear_function_needs_no_refusal_its_gradient_is_the_original():
    result = assert_gradients_match(lambda x: 3 * x + 1, "3 * x + 1", {"x": X}, checks=["inplace"])
    assert all(c.passed for ch in result.checks for c in ch.comparisons)


def test_zero_to_the_b_along_b_at_a_zero_has_derivative_zero():
    case = case_from_expression("a ** b", {"a": np.array(0.0), "b": np.array(2.5)}, name="t", checks=["backward"])
    result = verify_case(case)
    grads = {c.wrt: c for ch in result.checks for c in ch.comparisons}
    assert grads["b"].expected == 0.0 and not grads["b"].undefined  # a value, not "0·inf, no derivative"


def test_torchs_nan_where_a_limit_exists_at_base_zero_is_a_finding():
    case = case_from_expression("a ** b", {"a": np.array(0.0), "b": np.array(2.5)}, name="ops.pow0", order=2,
                                checks=["higher"], op="torch.pow")
    result = verify_case(case)
    assert result.status == "finding" and "nonfinite" in result.diagnoses()


def test_nan_at_an_ordinary_point_is_a_finding_not_an_edge():
    # torch's sinc double backward at 0 is NaN; sinc is analytic there (its derivative formula is not 0/0)
    case = case_from_expression("sinc(x)", {"x": np.array(0.0)}, name="ops.sinc0", order=2, checks=["higher"],
                                op="torch.sinc")
    assert verify_case(case).status == "finding"

"""The derived tolerance (issue 16 part 3, issue 14 item 5): a value is never accepted because it is small, and
conditioning widens the bound as much as the chain rule's own terms do, not more. Each test runs the real engine."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from verifier import GradientMismatch, assert_gradients_match
from verifier.case.model import DEFAULT_TOLERANCES
from verifier.case.validate import case_from_expression
from verifier.report.json_report import case_json
from verifier.runner import verify_case


def _diagnoses(exc: pytest.ExceptionInfo[GradientMismatch]) -> str:
    return str(exc.value)


class DoubledExp(torch.autograd.Function):
    """exp with a backward twice too large: wrong everywhere, but at x = -35 the gradient is 6e-16."""

    @staticmethod
    def forward(ctx, x):
        y = torch.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return 2 * g * y


class StableSigmoid(torch.autograd.Function):
    """sigmoid whose backward keeps its digits in the tail: sigmoid(x) * sigmoid(-x) instead of y * (1 - y)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sigmoid(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.sigmoid(x) * torch.sigmoid(-x)


def test_a_wrong_gradient_is_found_where_it_is_tiny():
    # the old fixed atol 1e-13 accepted any error below it: a factor 2 on a 6e-16 gradient passed
    x = torch.tensor([-35.0, -36.0], dtype=torch.float64)
    with pytest.raises(GradientMismatch) as exc:
        assert_gradients_match(DoubledExp.apply, "exp(x)", {"x": x})
    assert "2x expected" in str(exc.value) or "constant factor" in str(exc.value)


def test_torch_sigmoid_in_its_float64_tail_is_a_finding_named_saturated():
    # sigmoid'(40) = 4.25e-18 is a normal float64 number; torch's y (1 - y) gives 0 because y rounds to 1
    x = torch.tensor([40.0], dtype=torch.float64)
    with pytest.raises(GradientMismatch) as exc:
        assert_gradients_match(torch.sigmoid, "sigmoid(x)", {"x": x}, checks=["backward"])
    text = str(exc.value)
    assert "4.2483542552915889e-18" in text or "4.248354255" in text
    assert "rounds to its limit" in text


def test_a_stable_sigmoid_backward_passes_in_the_tail():
    x = torch.tensor([40.0, -40.0, 20.0, 0.5], dtype=torch.float64)
    assert_gradients_match(StableSigmoid.apply, "sigmoid(x)", {"x": x}, checks=["backward", "vjp", "grad"])


def test_torch_sigmoid_below_saturation_passes_in_float64_and_float32():
    # at x = 20 float64 reading the rounded output loses 8 digits of 16: within the derived bound (at most half)
    assert_gradients_match(torch.sigmoid, "sigmoid(x)", {"x": torch.tensor([20.0, 5.0], dtype=torch.float64)})
    assert_gradients_match(torch.tanh, "tanh(x)", {"x": torch.tensor([5.0, -6.0, 0.3], dtype=torch.float32)})


def test_a_derivative_sympy_writes_as_zero_allows_torchs_cancellation():
    # d/dx (sin² + cos²) is 0 exactly; torch's two product-rule terms cancel to about 1e-17, as the chain rule must
    x = torch.tensor([0.7, 1.9, -2.3], dtype=torch.float64)
    assert_gradients_match(lambda x: torch.sin(x) ** 2 + torch.cos(x) ** 2, "sin(x)**2 + cos(x)**2", {"x": x},
                           order=2)


def test_an_ill_conditioned_float32_sum_passes():
    # the gradient 2 * sum(x) is a sum that cancels 10^4-fold: float32 cannot do better, and must not fail
    x = torch.tensor([1000.0, -999.875, 512.25, -512.3125, 3.0, -3.0625], dtype=torch.float32)
    assert_gradients_match(lambda x: x.sum() ** 2, "sum(x)**2", {"x": x})


def test_a_fast_oscillation_passes_in_float32():
    # 1000 x is rounded before sin sees it: the derivative 1000 cos(1000 x) moves by 1000² |x| u, necessarily
    x = torch.tensor([1.25, 2.5, 2.9, -1.7], dtype=torch.float32)
    assert_gradients_match(lambda x: torch.sin(1000 * x), "sin(1000 * x)", {"x": x})


def test_a_library_function_evaluated_at_its_rounded_argument_passes():
    # torch's sinc(1) computes sin(pi * 1) from the rounded pi: 3.9e-17 where the exact value is 0
    x = torch.tensor([1.0, -2.0, 0.25], dtype=torch.float64)
    assert_gradients_match(torch.sinc, "sinc(x)", {"x": x}, checks=["value"])


def test_a_users_tolerance_is_taken_as_it_stands():
    x = torch.tensor([40.0], dtype=torch.float64)
    assert_gradients_match(torch.sigmoid, "sigmoid(x)", {"x": x}, checks=["backward"], atol=1e-15)


def test_the_json_carries_the_effective_tolerance_of_every_comparison():
    case = case_from_expression("exp(x) * sin(x)", {"x": np.array([0.5, -1.25])}, name="t", checks=["backward"])
    data = json.loads(json.dumps(case_json(verify_case(case))))
    comparisons = [c for ch in data["checks"] for c in ch["comparisons"]]
    assert comparisons and all(c["tolerance"] == "derived" and c["allowed"] > 0 for c in comparisons)
    assert all(c["atol"] == pytest.approx(2.0 ** -1022) for c in comparisons)
    assert DEFAULT_TOLERANCES["float64"].derived


def test_the_bound_is_far_below_the_old_atol_for_small_well_conditioned_values():
    case = case_from_expression("exp(x)", {"x": np.array([-35.0])}, name="t", checks=["backward"])
    result = verify_case(case)
    (c,) = [c for ch in result.checks for c in ch.comparisons][:1]
    assert c.slack is not None and float(c.slack.max()) < 1e-25


def test_an_exact_zero_accumulated_k_times_allows_k_roundings():
    """The gradient of a bias that batch norm removes is exactly 0; torch's sum of cancelling terms is a few ULPs
    of 1 each call, and k calls without zero_() accumulate k of them (seen as a false alarm at call 4)."""
    from verifier.case.model import Tolerance
    from verifier.checks.context import _zeros_floored, scaled
    from verifier.values import Exact

    zero = np.zeros(4)
    one = Exact(zero, zero, slack=np.zeros(4))
    tol = Tolerance(1e-11, 2.2e-308, True)
    once = _zeros_floored(one, tol, "float64", terms=15).slack
    four = _zeros_floored(scaled(one, 4), tol, "float64", terms=15).slack
    assert once is not None and four is not None and np.all(once > 0)
    np.testing.assert_allclose(four, 4 * once)
    assert np.all(_zeros_floored(one.copy(), tol, "float64", terms=15).slack == once)  # a copy keeps its count

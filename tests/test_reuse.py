"""What is kept between calls for speed (issue 20) never carries one case's verdict into another's: the exact
quantities at a point are reused only for the same derivation, point and rounding; a formula's exact value only for
the same arguments."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from verifier import GradientMismatch, assert_gradients_match
from verifier.case.validate import build_case, case_from_expression
from verifier.runner import verify_case

from .mutations import sin_exp


def test_a_kept_point_does_not_carry_one_cases_expect_into_another():
    right = build_case({"name": "a", "inputs": {"x": 2.0}, "function": "x**3", "checks": ["expect"],
                        "expect": {"grad": {"x": "3*x**2"}}})
    wrong = build_case({"name": "b", "inputs": {"x": 2.0}, "function": "x**3", "checks": ["expect"],
                        "expect": {"grad": {"x": "3*x**2 + 1"}}})
    assert verify_case(right).status == "pass"
    assert verify_case(wrong).status == "fail"  # the same function and point: the hand formula is its own
    assert verify_case(right).status == "pass"


def test_the_same_function_at_another_point_is_computed_again():
    x = torch.tensor([0.5, 1.0], dtype=torch.float64)
    assert_gradients_match(torch.sin, "sin(x)", inputs={"x": x})
    with pytest.raises(GradientMismatch):  # cos's derivative is not sin's: the kept point of sin(x) is not reused
        assert_gradients_match(torch.sin, "cos(x)", inputs={"x": x})
    assert_gradients_match(torch.sin, "sin(x)", inputs={"x": x + 1})


def test_a_kept_refinement_is_per_argument_value():
    """The vectorised reference's exact refinement at sampled elements, kept per formula and argument: a wrong
    implementation at other values is still caught."""
    n = 5000
    x = np.linspace(-2, 2, n)
    good = case_from_expression("sum(sin(x) * exp(x))", {"x": x}, name="g", checks=["backward"], order=1)
    assert verify_case(good).status == "pass"
    shifted = case_from_expression("sum(sin(x) * exp(x))", {"x": x + 0.25}, name="h", checks=["backward"], order=1)
    assert verify_case(shifted).status == "pass"

    with pytest.raises(GradientMismatch):
        assert_gradients_match(sin_exp(1e-6).apply, "sin(x) * exp(x)", inputs={"x": torch.tensor(x)},
                               checks=["backward"])  # a backward off by one part in a million everywhere


def test_a_kept_quantity_is_handed_out_as_a_copy_per_weights():
    """A point's quantities are computed once and handed out as copies: what one check writes into its copy (a value
    beyond the dtype's range is set to NaN in place) never reaches the next, and another weight vector is its own
    quantity."""
    from verifier.reference.choice import make_reference, point_quantities

    case = case_from_expression("sin(x) * exp(x)", {"x": [0.5, -1.0, 2.0]}, checks=["vjp"])
    point = {"x": np.array([0.5, -1.0, 2.0])}
    at = point_quantities(make_reference(case), point, "float64")
    ones, other = np.ones(3), np.array([1.0, -2.0, 0.5])
    first = at.vjp(ones, "x")
    expected = np.cos(point["x"]) * np.exp(point["x"]) + np.sin(point["x"]) * np.exp(point["x"])
    np.testing.assert_allclose(first.lo, expected, rtol=1e-15)
    first.lo[0], first.undefined[0] = np.nan, "written by a check"
    again = at.vjp(ones, "x")
    assert again is not first and not again.undefined
    np.testing.assert_allclose(again.lo, expected, rtol=1e-15)
    np.testing.assert_allclose(at.vjp(other, "x").lo, other * expected, rtol=1e-15)
    value = at.value()
    value.lo[:] = 0.0
    np.testing.assert_allclose(at.value().lo, np.sin(point["x"]) * np.exp(point["x"]), rtol=1e-15)

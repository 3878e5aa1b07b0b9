"""Half precisions (issue 7, part 2): float16 and bfloat16 with tolerances derived from the dtype and the computation."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import sympy as sp
import torch

from verifier.case.loading import load_cases
from verifier.case.validate import case_from_expression
from verifier.dtypes import round_to, ulp
from verifier.reference.numeric.mp import Evaluator
from verifier.reference.rounding import RoundingBound
from verifier.runner import verify_case
from verifier.torchside.lowering import Program

from .conftest import CASES

TORCH = {"float16": torch.float16, "bfloat16": torch.bfloat16}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_rounding_and_spacing_match_torch(dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(20_000) * np.exp(rng.uniform(-30, 30, 20_000))
    x = np.concatenate([x, [0.0, -0.0, 1.0, 2.0**-14, 65504.0, 1e-45]])
    mine = round_to(x, dtype)
    theirs = torch.tensor(mine).to(TORCH[dtype]).double().numpy()
    assert np.array_equal(mine, theirs, equal_nan=True)  # representable: torch holds them exactly
    finite = np.isfinite(mine)
    t = torch.tensor(np.abs(mine[finite])).to(TORCH[dtype])
    step = (torch.nextafter(t, torch.full_like(t, math.inf)).double() - t.double()).numpy()
    ok = np.isfinite(step)
    assert np.array_equal(ulp(mine[finite], dtype)[ok], step[ok])


def test_bfloat16_rounds_to_nearest_even():
    # 1 + 2**-8 is halfway between 1 and 1 + 2**-7: ties go to the even significand (1); 1 + 3 * 2**-8 goes up
    assert round_to(np.array([1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20]), "bfloat16").tolist() == \
        [1.0, 1 + 2**-6, 1 + 2**-7]


def _bound(expr, values):
    with mpmath.workdps(30):
        return RoundingBound(Evaluator(values)).bound(expr)[0]


def test_running_error_bound_by_hand():
    x, y, z = sp.symbols("x y z", real=True)
    # x*y: one rounding of 6; + z: one level of pairwise summation of |6| + |1|: R = 6 + 7
    assert _bound(x * y + z, {x: 3, y: 2, z: 1}) == pytest.approx(13)
    # 1 - tanh(x)**2 at 3: tanh rounds (t), the square carries 2t*t and rounds (t²), the sum adds 1 + t²
    t = math.tanh(3.0)
    assert _bound(1 - sp.tanh(x) ** 2, {x: 3}) == pytest.approx(3 * t**2 + 1 + t**2)
    # exp carries its argument's error times exp: exp(x*y) at x*y = 2 -> R = e²·2 + e²
    assert _bound(sp.exp(x * y), {x: 1, y: 2}) == pytest.approx(3 * math.exp(2))


def test_the_half_cases_pass():
    for case in load_cases(CASES / "half.yaml"):
        assert verify_case(case).status == "pass", case.name


def test_the_bound_is_what_lets_a_correct_computation_pass():
    # tanh at 3 and 6 in bfloat16: 1 - y² from the rounded y is 20% off at x = 3; one rounding alone cannot allow it
    case = next(c for c in load_cases(CASES / "half.yaml") if c.name == "half.tanh_saturating.bfloat16")
    result = verify_case(case, checks=["backward"])
    c = result.checks[0].comparisons[0]
    assert c.passed and c.slack is not None
    assert c.abs_err > c.tolerance.atol + c.tolerance.rtol * abs(c.expected)


class _Scale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return g * (1 + 1e-2)


class _OnePercentOff(Program):
    """The lowered definition with every reverse-mode gradient 1% too large: a wrong half-precision backward."""

    def __call__(self, env, *, retain=()):
        out, nodes = super().__call__(env, retain=retain)
        return _Scale.apply(out), nodes


def test_a_one_percent_error_fails_in_float16():
    for case in load_cases(CASES / "half.yaml"):
        if case.dtype != "float16":
            continue
        result = verify_case(case, checks=["backward"], program=lambda c, d=case.dtype: _OnePercentOff(c, d))
        assert result.status == "fail", case.name


def test_values_beyond_the_range_are_not_compared():
    case = next(c for c in load_cases(CASES / "half.yaml") if c.name == "half.overflow.float16")
    result = verify_case(case, checks=["value"])
    c = result.checks[0].comparisons[0]
    assert c.passed and "beyond float16's largest finite value 65504" in c.undefined[1]


def test_an_op_without_a_half_kernel_is_skipped_with_the_reason():
    case = case_from_expression("det(A)", {"A": np.array([[2.0, 1.0], [0.5, 3.0]])}, name="d", dtype="float16")
    result = verify_case(case, checks=["value", "backward"])
    assert result.status == "skip" and "torch has no float16 kernel" in result.skipped
    assert "torch has no float16 kernel" in result.checks[0].skipped


def test_complex_inputs_skip_half_parts():
    case = case_from_expression("x * 2", {"x": np.array([1.0])}, name="c")
    from dataclasses import replace

    result = verify_case(replace(case, complex_inputs=("x",)), dtype="bfloat16")
    assert result.status == "skip" and "complex128 or complex64" in result.skipped


def test_a_case_tolerance_is_not_applied_unchanged_in_another_dtype():
    # found on the GPU run of the suite in float32: elementary.digamma's tolerance (1e-9, for float64) made
    # --dtype float32 fail on a 3-ULP difference
    case = next(c for c in load_cases(CASES / "elementary.yaml") if c.name == "elementary.digamma")
    assert case.tolerance is not None and case.tolerance.rtol < 1e-8
    assert case.tolerance_for(case.dtype) == case.tolerance
    loose = case.tolerance_for("float32")
    assert loose.rtol >= 2e-5 and loose.atol >= 1e-6
    assert verify_case(case, dtype="float32").status == "pass"


def test_a_second_backward_error_proves_saved_tensors(monkeypatch):
    # torch 2.11 lists no _saved_ attribute on cross_entropy's nodes: torch's own error is the evidence
    import verifier.torchside.autodiff as autodiff

    monkeypatch.setattr(autodiff, "has_saved_tensors", lambda fn: False)
    case = case_from_expression("sum(exp(x) * x)", {"x": np.array([0.5, 1.5])}, name="s")
    result = verify_case(case, checks=["backward"])
    fact = next(f for f in result.checks[0].facts if f.label == "second backward without retain_graph raises")
    assert fact.passed and fact.got is True


def test_large_float32_tensors_get_the_normwise_bound():
    case = next(c for c in load_cases(CASES / "large") if c.name == "large.least_squares_256")
    result = verify_case(case, dtype="float32", checks=["backward"])
    c = result.checks[0].comparisons[0]
    assert result.status == "pass" and c.slack is not None and float(np.max(c.slack)) > 0

"""Higher orders through every composition of forward and reverse mode (issue 16 part 1), on the real engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from verifier import GradientMismatch, assert_gradients_match
from verifier.case.validate import case_from_expression
from verifier.checks.modes import contract
from verifier.runner import verify_case
from verifier.torchside.paths import NESTED, Path, Why
from verifier.values import Exact


class CubeLosesItsJvpDerivative(torch.autograd.Function):
    """x³ with a right backward and a jvp that is right at first order, but computed from a detached x: its own
    derivative (what forward over forward differentiates) is lost. Only paths with forward mode inside see it."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        return x**3

    @staticmethod
    def setup_context(ctx, inputs, output):
        (x,) = inputs
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x**2 * g

    @staticmethod
    def jvp(ctx, t):
        (x,) = ctx.saved_tensors
        return 3 * x.detach() ** 2 * t


class Cube(CubeLosesItsJvpDerivative):
    @staticmethod
    def jvp(ctx, t):
        (x,) = ctx.saved_tensors
        return 3 * x**2 * t


X = torch.tensor([0.5, -1.25, 2.0], dtype=torch.float64)
FORWARD_INSIDE = {Path.JVP_JVP, Path.GRAD_JVP, Path.VJP_JVP, Path.JACFWD_JACFWD, Path.JACREV_JACFWD, Path.GRAD_FWAD}


def _failing_paths(info: pytest.ExceptionInfo[GradientMismatch]) -> set[str]:
    result = info.value.result
    return {c.path for ch in result.checks for c in ch.comparisons if not c.passed}


def test_a_jvp_whose_own_derivative_is_lost_is_caught_only_by_forward_inside_paths():
    assert_gradients_match(lambda x: CubeLosesItsJvpDerivative.apply(x).sum(), "sum(x**3)", {"x": X})  # order 1
    with pytest.raises(GradientMismatch) as info:
        assert_gradients_match(lambda x: CubeLosesItsJvpDerivative.apply(x).sum(), "sum(x**3)", {"x": X}, order=2)
    failing = _failing_paths(info)
    assert failing and failing <= {str(p) for p in FORWARD_INSIDE}
    assert str(Path.GRAD_JVP) in failing  # reverse over forward differentiates the jvp: it sees the loss
    passed = {c.path for ch in info.value.result.checks for c in ch.comparisons if c.passed}
    assert {str(Path.CREATE_GRAPH), str(Path.JVP_GRAD), str(Path.FWAD_GRAD), str(Path.JACREV_JACREV)} <= passed


def test_the_same_function_with_a_differentiable_jvp_passes_every_path_to_order_3():
    # torch.func's jvp of jvp does not differentiate an autograd.Function's jvp again (it returns 0): a probe finds
    # those paths, and they are "not supported" with the Function named, never a failure of right code
    result = assert_gradients_match(lambda x: Cube.apply(x).sum(), "sum(x**3)", {"x": X}, order=3)
    higher = [ch for ch in result.checks if ch.check == "higher"][0]
    compared = {c.path for c in higher.comparisons}
    unsupported = {str(u.path): u for u in higher.unsupported}
    assert {str(p) for p in NESTED} <= compared | set(unsupported)
    assert all(u.why is Why.NOT_NESTABLE and u.functions == ("Cube",) for u in unsupported.values())
    assert str(Path.JVP_JVP) in unsupported and str(Path.GRAD_JVP) in compared


def test_torchs_det_forward_over_forward_is_found():
    a = torch.tensor([[1.5, -0.7, 0.3], [0.4, 2.0, -1.1], [-0.9, 0.6, 1.2]], dtype=torch.float64)
    assert_gradients_match(torch.linalg.det, "det(A)", {"A": a})
    with pytest.raises(GradientMismatch) as info:
        assert_gradients_match(torch.linalg.det, "det(A)", {"A": a}, order=2)
    failing = _failing_paths(info)
    assert str(Path.JVP_JVP) in failing and str(Path.CREATE_GRAPH) not in failing


def test_a_non_scalar_output_is_verified_at_order_2_through_v_dot_y():
    case = case_from_expression("softmax(x) * x", {"x": np.array([0.3, -1.1, 2.0, 0.7])}, name="t", order=2,
                                checks=["higher"])
    result = verify_case(case)
    assert result.status == "pass", result.checks
    labels = [c.label for ch in result.checks for c in ch.comparisons]
    assert any("(v . y)" in label for label in labels) and len(labels) >= len(NESTED) // 2


def test_a_wrong_second_derivative_of_a_non_scalar_output_is_found():
    class SquareTwiceWrong(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x**2

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * x.detach() * g  # right once; its derivative (2 g) is lost

    x = torch.tensor([0.3, -1.1, 2.0], dtype=torch.float64)
    assert_gradients_match(SquareTwiceWrong.apply, "x**2", {"x": x})
    with pytest.raises(GradientMismatch):
        assert_gradients_match(SquareTwiceWrong.apply, "x**2", {"x": x}, order=2)


def test_contract_is_the_tensor_contraction_and_carries_undefined_columns():
    rng = np.random.default_rng(0)
    t = rng.standard_normal((3, 3, 3))
    u = rng.standard_normal(3)
    out = contract(Exact(t, t.copy(), slack=np.full(t.shape, 1e-15)), u, "float64")
    assert np.allclose(out.lo, np.einsum("i,ijk->jk", u, t))
    assert out.slack is not None and out.slack.shape == (3, 3) and (out.slack > 0).all()
    t[1, 2, 0] = np.nan
    holed = contract(Exact(t, t.copy(), {1 * 9 + 2 * 3 + 0: "a pole"}), u, "float64")
    assert np.isnan(holed.lo[2, 0]) and 2 * 3 + 0 in holed.undefined and not np.isnan(holed.lo[0, 0])

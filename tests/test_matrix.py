"""The matrix reference: sympy's matrix calculus for large linear algebra, never trusted without a check against
element expansion on a shrunken copy of the case."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
import torch

from verifier import GradientMismatch
from verifier.assertions import assert_gradients_match
from verifier.case.validate import case_from_expression
from verifier.reference import matrix as matrix_module
from verifier.reference.base import NotVectorisable
from verifier.reference.choice import make_reference
from verifier.reference.matrix import MatrixReference, _gradient
from verifier.runner import verify_case


def _rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape)


def test_least_squares_256_uses_the_closed_form():
    case = case_from_expression("sum((X @ w - y)**2)", {"X": _rand(256, 256), "w": _rand(256, seed=1),
                                                        "y": {"value": _rand(256, seed=2).tolist(), "requires_grad": False}},
                                name="ls")
    assert isinstance(make_reference(case), MatrixReference)
    result = verify_case(case)
    assert result.status == "pass", result.checks
    assert "2*X.T*(X*w - y)" in result.evaluation and "shrunken copy" in result.evaluation


def test_sympy_alone_is_wrong_on_sums_of_traces_and_we_are_not():
    A, B = sp.MatrixSymbol("A", 3, 3), sp.MatrixSymbol("B", 3, 3)
    f = 2 * sp.Trace(A * B) + sp.Trace(A) ** 2
    assert isinstance(f.diff(A), sp.ZeroMatrix)  # sympy 1.14's matrix calculus: the reason every closed form is checked
    ours = _gradient(f, A)
    a, b = _rand(3, 3), _rand(3, 3, seed=1)
    got = matrix_module.evaluate(ours, {A: a, B: b})
    assert np.allclose(got, 2 * b.T + 2 * np.trace(a) * np.eye(3))


def test_a_closed_form_that_disagrees_with_expansion_is_not_used(monkeypatch):
    monkeypatch.setattr(matrix_module, "_gradient", lambda scalar, wrt: 3 * sp.Identity(wrt.shape[0]) * wrt)
    case = case_from_expression("sum((X @ w)**2)", {"X": _rand(100, 50), "w": _rand(50, seed=1)}, name="wrong",
                                reference="matrix")
    result = verify_case(case)
    assert result.status == "invalid"
    assert "disagrees with element expansion on a shrunken copy" in str(result.error)


class _DetNoTranspose(torch.autograd.Function):
    """det with the classic bug: d det(A)/dA = det(A) A^-T written without the transpose."""

    @staticmethod
    def forward(ctx, a):
        d = torch.linalg.det(a)
        ctx.save_for_backward(a, d)
        return d

    @staticmethod
    def backward(ctx, g):
        a, d = ctx.saved_tensors
        return g * d * torch.linalg.inv(a)


def test_jacobi_formula_for_det_finds_a_missing_transpose_at_64x64():
    a = torch.tensor(_rand(64, 64) + 8 * np.eye(64))
    assert_gradients_match(torch.linalg.det, "det(A)", {"A": a}, checks=["grad"])
    with pytest.raises(GradientMismatch) as info:
        assert_gradients_match(_DetNoTranspose.apply, "det(A)", {"A": a}, checks=["grad"])
    assert "transpose" in str(info.value).lower()


def test_non_scalar_output_vjp_checked_jvp_says_why_not():
    case = case_from_expression("X @ w", {"X": _rand(60, 30), "w": _rand(30, seed=1)}, name="xw")
    result = verify_case(case)
    assert result.status == "pass"
    by_check = {c.check: c for c in result.checks}
    assert by_check["vjp"].comparisons and not by_check["vjp"].skipped
    assert "needs element expansion" in by_check["jvp"].skipped


def test_outside_matrix_calculus_is_named():
    with pytest.raises(NotVectorisable, match="sin"):
        MatrixReference(case_from_expression("sum(sin(A @ B))", {"A": _rand(30, 30), "B": _rand(30, 30)}, name="s"))

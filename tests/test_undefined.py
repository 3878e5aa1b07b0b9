"""The undefined check (gradcheck's check_undefined_grad): a Function with several outputs, used only in part, gets
None for the unused outputs' grad_outputs (when it turns off set_materialize_grads) and must read them as zeros."""

from __future__ import annotations

import pytest
import torch

from verifier import GradientMismatch, assert_gradients_match

F64 = torch.float64


class SinCos(torch.autograd.Function):
    """(sin x, cos x), both outputs; grad_outputs are not materialised: an unused one arrives as None."""

    @staticmethod
    def forward(ctx, x):
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x)
        return torch.sin(x), torch.cos(x)

    @staticmethod
    def backward(ctx, g_sin, g_cos):
        (x,) = ctx.saved_tensors
        grad = torch.zeros_like(x)
        if g_sin is not None:
            grad = grad + g_sin * torch.cos(x)
        if g_cos is not None:
            grad = grad - g_cos * torch.sin(x)
        return grad


class SinCosAssumesBoth(SinCos):
    """The same forward; the backward assumes every grad_output is a tensor."""

    @staticmethod
    def backward(ctx, g_sin, g_cos):
        (x,) = ctx.saved_tensors
        return g_sin * torch.cos(x) - g_cos * torch.sin(x)


class SinCosNoneAsOnes(SinCos):
    """Reads an undefined grad_output as ones, not zeros."""

    @staticmethod
    def backward(ctx, g_sin, g_cos):
        (x,) = ctx.saved_tensors
        g_sin = torch.ones_like(x) if g_sin is None else g_sin
        g_cos = torch.ones_like(x) if g_cos is None else g_cos
        return g_sin * torch.cos(x) - g_cos * torch.sin(x)


def _x():
    return torch.tensor([0.3, -1.2, 2.0], dtype=F64)


def test_a_backward_that_reads_none_as_zeros_passes():
    result = assert_gradients_match(SinCos.apply, inputs={"x": _x()})
    (undefined,) = [c for c in result.checks if c.check == "undefined"]
    assert undefined.status == "pass" and len(undefined.comparisons) == 2  # one per output left unused


def test_a_backward_that_assumes_every_grad_output_fails_the_check():
    with pytest.raises(GradientMismatch) as info:
        assert_gradients_match(SinCosAssumesBoth.apply, inputs={"x": _x()})
    failed = {c.check for c in info.value.result.checks if c.status not in ("pass", "not supported") and not c.skipped}
    assert failed == {"undefined"}, failed  # every other path gives both grad_outputs


def test_none_read_as_ones_is_a_wrong_gradient():
    with pytest.raises(GradientMismatch) as info:
        assert_gradients_match(SinCosNoneAsOnes.apply, inputs={"x": _x()})
    failed = {c.check for c in info.value.result.checks if c.status == "fail"}
    assert failed == {"undefined"}, failed


def test_a_single_output_skips_the_check():
    result = assert_gradients_match(torch.sin, "sin(x)", {"x": _x()})
    (undefined,) = [c for c in result.checks if c.check == "undefined"]
    assert undefined.skipped

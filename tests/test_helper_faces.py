"""The helper as users call it: keywords, constant and integer inputs, grad_output=, define=; torch's rules judged
on what the implementation returned; and a report that leads with one root cause."""

from __future__ import annotations

import pytest
import torch

from verifier import GradientMismatch, assert_gradients_match

from .user_code import CORPUS

X = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)


def test_called_by_keyword():
    assert assert_gradients_match(torch.sin, reference="sin(x)", inputs={"x": X}).status == "pass"


def test_a_view_output_keeps_the_grad_output_tensors_apart():
    """x.view(3) ends in a view: AccumulateGrad adopts the incoming gradient as .grad and accumulates into it later
    (pytorch#34082); with one reused grad_output tensor the accumulation checks saw 4, 8, ... 64."""
    result = assert_gradients_match(lambda x: x.view(3), "1*x", {"x": X})
    assert result.status == "pass"


@pytest.mark.parametrize("impl", [lambda x: x.view_as(x), lambda x: x.new(x)], ids=["view_as", "new"])
def test_no_grad_is_judged_by_what_the_implementation_returned(impl):
    assert assert_gradients_match(impl, "1*x", {"x": X}).status == "pass"
    assert assert_gradients_match(lambda x: x * 1.0, "x", {"x": X}).status == "pass"  # a bare name, a non-view


def test_one_element_outputs_allow_y_backward():
    one = torch.ones(1, dtype=torch.float64)
    result = assert_gradients_match(lambda x, o: (x**2).sum().reshape(1), "sum(x**2) * o",
                                    {"x": X.clone().requires_grad_(), "o": one})
    (backward,) = [c for c in result.checks if c.check == "backward"]
    assert any(c.path == "y.backward()" and c.passed for c in backward.comparisons)


def test_constants_targets_and_masks_are_not_differentiated():
    x = X.clone().requires_grad_()
    t, m = torch.ones(3, dtype=torch.float64), torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    result = assert_gradients_match(lambda x, t, m: ((x - t) ** 2 * m).sum(), "sum((x - t)**2 * m)",
                                    {"x": x, "t": t, "m": m})
    assert [i.name for i in result.case.differentiable] == ["x"]
    # none marked: every floating input is differentiated, as before
    result = assert_gradients_match(lambda a, b: a * b, "a * b", {"a": X, "b": X + 1})
    assert [i.name for i in result.case.differentiable] == ["a", "b"]


def test_integer_labels_are_int64_constants():
    seen = {}

    def loss(p, y):
        seen["dtype"] = y.dtype
        yf = y.to(p.dtype)
        return -(yf * p.log() + (1 - yf) * (1 - p).log()).mean()

    p = torch.tensor([0.2, 0.7, 0.9], dtype=torch.float64, requires_grad=True)
    result = assert_gradients_match(loss, "mean(where(y == 1, -log(p), -log(1 - p)))", {"p": p, "y": torch.tensor([0, 1, 1])})
    assert result.status == "pass" and seen["dtype"] == torch.int64


def test_define_and_grad_output_keywords():
    assert assert_gradients_match(lambda x: torch.sin(x) ** 2, "a * a", {"x": X}, define={"a": "sin(x)"}).status == "pass"
    v = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    result = assert_gradients_match(torch.exp, "exp(x)", {"x": X}, grad_output=v)
    (vjp,) = [c for c in result.checks if c.check == "vjp"]
    assert any("grad_output" in c.label for c in vjp.comparisons)


def test_the_report_leads_with_one_root_cause():
    (code,) = [c for c in CORPUS if c.name == "swish missing a term"]
    with pytest.raises(GradientMismatch) as info:
        assert_gradients_match(code.impl, code.reference, code.inputs())
    text = str(info.value)
    assert text.startswith("FAIL implementation [backward] grad wrt x via y.backward()") or \
        text.startswith("FAIL implementation [vjp] v^T J wrt x (v = ones)")
    assert text.count("FAIL implementation") == 1 and "the same cause most likely explains:" in text
    assert len(text.splitlines()) <= 20


def test_an_exception_in_the_users_backward_shows_the_users_frames():
    class Bad(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.exp()

        @staticmethod
        def backward(ctx, g):
            return g.reshape(-1, 7)

    with pytest.raises(GradientMismatch) as info:
        assert_gradients_match(Bad.apply, "exp(x)", {"x": X})
    text = str(info.value)
    assert "in backward" in text and "RuntimeError: shape '[-1, 7]' is invalid" in text
    assert "verifier/checks" not in text and "verifier/torchside" not in text

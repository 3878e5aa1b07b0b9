"""What torch supports is decided by capability, never by an error's wording (torchside.support).

The custom Functions here follow the style the PyTorch docs recommend for torch.func (a forward without ctx, a
setup_context staticmethod, no vmap rule), and the patterns seen in real code: a backward that is wrong, a backward
that raises its own error, a Function without jvp.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from verifier import GradientMismatch
from verifier.assertions import assert_gradients_match
from verifier.torchside.graphs import custom_functions
from verifier.torchside.paths import Need, Path, Why
from verifier.torchside.support import lacks

from .user_code import DocsCube  # the PyTorch docs' setup_context example: no vmap rule


class WrongCube(DocsCube):
    """The same style, with a backward that forgets the factor 3 (a real bug class: a wrong constant)."""

    @staticmethod
    def backward(ctx, grad_output, grad_dx):
        x, dx = ctx.saved_tensors
        return grad_output * x**2 + grad_dx * 6 * x


class RaisingBackward(torch.autograd.Function):
    """A backward that raises a RuntimeError of its own (a shape bug), in every mode."""

    @staticmethod
    def forward(x):
        return x.exp()

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return (g * y).reshape(-1, 7)  # RuntimeError: shape '[-1, 7]' is invalid ...


def cube(x):
    return DocsCube.apply(x)[0]


def x3():
    return torch.tensor([0.5, -1.25, 2.0], dtype=torch.float64)


def test_docs_setup_context_function_passes_at_order_1():
    result = assert_gradients_match(cube, "x**3", {"x": x3()})
    unsupported = [u for c in result.checks for u in c.unsupported]
    # jacfwd needs a vmap rule and a jvp the Function does not have: recorded as data, not a failure
    jacfwd = [u for u in unsupported if u.path == Path.JACFWD]
    assert jacfwd and jacfwd[0].why is Why.FUNCTION_LACKS and jacfwd[0].functions == ("DocsCube",)
    assert set(jacfwd[0].needs) >= {"VMAP", "JVP"}
    # torch.func.vjp needs only setup_context, which the Function has: it ran and was compared
    vjp = [c for c in result.checks if c.check == "vjp"][0]
    assert any(x.path == "torch.func.vjp" for x in vjp.comparisons)


def test_docs_setup_context_function_passes_at_order_2():
    result = assert_gradients_match(lambda x: cube(x).sum(), "sum(x**3)", {"x": x3()}, order=2)
    higher = [c for c in result.checks if c.check == "higher"][0]
    assert higher.status == "pass"
    assert any(c.path == "autograd.grad(create_graph=True)" for c in higher.comparisons)  # double backward ran
    # the vmap- and forward-mode-based paths are unsupported by capability (the Function has no vmap rule and no jvp),
    # each recorded with what it lacks; every reverse-over-reverse path ran
    assert Path.FUNC_HESSIAN in [u.path for u in higher.unsupported]
    assert all(u.why is Why.FUNCTION_LACKS and u.functions == ("DocsCube",) and set(u.needs) & {"VMAP", "JVP"}
               for u in higher.unsupported)
    ran = {c.path for c in higher.comparisons}
    assert {str(Path.CREATE_GRAPH), str(Path.FUNCTIONAL_HESSIAN), str(Path.DOUBLE_BACKWARD)} <= ran


def test_a_wrong_backward_without_vmap_rule_still_fails():
    with pytest.raises(GradientMismatch) as info:
        assert_gradients_match(lambda x: WrongCube.apply(x)[0], "x**3", {"x": x3()})
    assert "grad wrt x" in str(info.value)


def test_a_backward_raising_its_own_error_is_an_error_not_unsupported():
    with pytest.raises(GradientMismatch) as info:
        assert_gradients_match(RaisingBackward.apply, "exp(x)", {"x": x3()}, checks=["vjp"])
    assert "RuntimeError" in str(info.value)


def test_capabilities_are_read_off_the_class():
    assert lacks(DocsCube, Need.VMAP) and lacks(DocsCube, Need.JVP) and not lacks(DocsCube, Need.FUNCTORCH)

    class WithRule(DocsCube):
        generate_vmap_rule = True

    assert not lacks(WithRule, Need.VMAP)

    class OldStyle(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2

    assert lacks(OldStyle, Need.FUNCTORCH) and lacks(OldStyle, Need.VMAP)
    y = cube(x3().requires_grad_())
    assert custom_functions(y) == {DocsCube}


def test_with_a_vmap_rule_every_path_runs():
    class Ruled(DocsCube):
        generate_vmap_rule = True

        @staticmethod
        def jvp(ctx, x_t):
            x, dx = ctx.saved_for_jvp
            return dx * x_t, 6 * x * x_t

        @staticmethod
        def setup_context(ctx, inputs, output):
            (x,) = inputs
            _, dx = output
            ctx.save_for_backward(x, dx)
            ctx.saved_for_jvp = (x, dx)

    result = assert_gradients_match(lambda x: Ruled.apply(x)[0], "x**3", {"x": x3()})
    assert not [u for c in result.checks for u in c.unsupported]


def test_half_precision_without_a_kernel_is_skipped_by_probe():
    """det has no float16 kernel on the CPU (torch says so in a NotImplementedError or a RuntimeError, depending on
    the op); the probe runs the same check in float32 and skips, whatever the words."""
    from verifier.case.validate import case_from_expression
    from verifier.runner import verify_case

    case = case_from_expression("det(A)", {"A": np.array([[2.0, 0.5], [0.25, 1.5]])}, dtype="float16",
                                checks=["value", "backward"])
    result = verify_case(case)
    checks = {c.check: c for c in result.checks}
    assert checks["backward"].status == "skip" and checks["backward"].no_kernel
    assert result.status == "skip"  # nothing ran: the case is skipped, not passed


def test_a_foreseen_functorch_refusal_is_recorded_as_if_it_ran(monkeypatch):
    """An old-style Function (forward(ctx, ...), no setup_context) is refused by every torch.func transform. After the
    first refusal on a side, the other transforms are recorded with that refusal, not run: the same paths, reasons,
    Functions and needs as running each one, torch's own exception as the evidence, and far fewer refusals raised."""
    from verifier.torchside import support

    from .mutations import sin_exp

    fn = sin_exp(0.0).apply
    x = torch.linspace(-1, 1, 5, dtype=torch.float64)

    def unsupported(result):
        return sorted((str(u.path), u.why.value, u.functions, u.needs) for c in result.checks for u in c.unsupported)

    raised = []
    real = support.classify
    monkeypatch.setattr(support, "classify", lambda *a: raised.append(1) or real(*a))
    foreseeing = assert_gradients_match(fn, "sin(x) * exp(x)", {"x": x}, order=2)
    with_foresight = len(raised)
    errors = [u.error for c in foreseeing.checks for u in c.unsupported if "FUNCTORCH" in u.needs]
    assert errors and all(e.startswith("RuntimeError: ") for e in errors)
    raised.clear()
    monkeypatch.setattr(support, "foreseen", lambda side, path: None)
    running = assert_gradients_match(fn, "sin(x) * exp(x)", {"x": x}, order=2)
    assert unsupported(foreseeing) == unsupported(running)
    assert any(p == str(Path.FUNC_HESSIAN) and "FUNCTORCH" in needs for p, _, _, needs in unsupported(running))
    assert with_foresight < len(raised) / 2

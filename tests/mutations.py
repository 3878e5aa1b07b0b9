"""A mutation set: correct implementations and wrong ones of every kind the assertion helper must catch.

Shared by tests/test_mutations.py and benchmarks/mutations_vs_gradcheck.py. Each entry: name, reference
expression, input factory, implementation, order, and whether it is correct.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Mutant:
    name: str
    reference: str
    inputs: Callable[[], dict[str, torch.Tensor]]
    impl: Callable[..., torch.Tensor]
    correct: bool
    order: int = 1


def vec(n: int = 8, dtype: torch.dtype = torch.float64, lo: float = 0.1, hi: float = 1.5, seed: int = 0):
    def make() -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        return {"x": lo + (hi - lo) * torch.rand(n, generator=g, dtype=dtype)}

    return make


def exp_function(grad: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable[..., Any]:
    """A custom exp whose backward is ``grad(g, y, x)``."""

    class Exp(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
            y = x.exp()
            ctx.save_for_backward(y, x)
            return y

        @staticmethod
        def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
            y, x = ctx.saved_tensors
            return grad(g, y, x)

    return Exp.apply


def sin_exp(eps: float = 0.0, index: int | None = None) -> type[torch.autograd.Function]:
    """sin(x) * exp(x) as a custom Function whose backward carries a relative error eps (everywhere, or at one
    element): the sensitivity probe of tests/test_vectorised.py and benchmarks/speed.py."""

    class SinExp(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return torch.sin(x) * torch.exp(x)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            d = (torch.cos(x) + torch.sin(x)) * torch.exp(x)
            if index is None:
                d = d * (1 + eps)
            else:
                d[index] *= 1 + eps
            return g * d

    return SinExp


class ModernSigmoid(torch.autograd.Function):
    """A correct custom Function in the torch.func style: setup_context, jvp and vmap all supported."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return 1 / (1 + torch.exp(-x))

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        ctx.save_for_backward(output)
        ctx.save_for_forward(output)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        (s,) = ctx.saved_tensors
        return g * s * (1 - s)

    @staticmethod
    def jvp(ctx: Any, t: torch.Tensor) -> torch.Tensor:
        (s,) = ctx.saved_tensors
        return t * s * (1 - s)


class Stateful(torch.autograd.Function):
    """Keeps state between calls: each backward scales by how many times it ran."""

    calls = 0

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.exp()

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        Stateful.calls += 1
        return g * x.exp() * (1 + 0.5 * (Stateful.calls > 1))


class Outer(torch.autograd.Function):
    """x * y with x (3, 1) and y (1, 4): the backward must sum the broadcast axis back."""

    reduce = "sum"

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, y)
        return x * y

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = ctx.saved_tensors
        gx, gy = g * y, g * x
        if Outer.reduce == "sum":
            return gx.sum(1, keepdim=True), gy.sum(0, keepdim=True)
        return gx.mean(1, keepdim=True), gy.sum(0, keepdim=True)


def outer(reduce: str) -> Callable[..., torch.Tensor]:
    def f(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        Outer.reduce = reduce
        return Outer.apply(x, y)

    return f


def outer_inputs() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {"x": torch.rand(3, 1, generator=g, dtype=torch.float64), "y": torch.rand(1, 4, generator=g, dtype=torch.float64)}


def cube(differentiable: bool) -> Callable[..., torch.Tensor]:
    """x**3 with a right first derivative; the second is right only when the backward is differentiable."""

    class Cube(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
            ctx.save_for_backward(x)
            return x**3

        @staticmethod
        def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
            (x,) = ctx.saved_tensors
            return g * 3 * (x if differentiable else x.detach()) ** 2

    return Cube.apply


def stateful(x: torch.Tensor) -> torch.Tensor:
    return Stateful.apply(x)


class TanhTimes(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x) * x


def _part(g: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return g * y * torch.where(x > 1.2, 1.001, 1.0)


def _x_sin_missing_term(x: torch.Tensor) -> torch.Tensor:
    class XSin(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
            ctx.save_for_backward(x)
            return x * torch.sin(x)

        @staticmethod
        def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
            (x,) = ctx.saved_tensors
            return g * torch.sin(x)  # misses x * cos(x)

    return XSin.apply(x)


MUTANTS: list[Mutant] = [
    # correct implementations: none may be flagged
    Mutant("correct: custom exp (float64)", "exp(x)", vec(), exp_function(lambda g, y, x: g * y), True),
    Mutant("correct: custom exp (float32)", "exp(x)", vec(dtype=torch.float32), exp_function(lambda g, y, x: g * y), True),
    Mutant("correct: custom exp, order 2", "exp(x)", vec(), exp_function(lambda g, y, x: g * y), True, order=2),
    Mutant("correct: torch.func-style sigmoid with jvp", "sigmoid(x)", vec(lo=-3, hi=3), ModernSigmoid.apply, True),
    Mutant("correct: sigmoid float32", "sigmoid(x)", vec(dtype=torch.float32, lo=-3, hi=3), ModernSigmoid.apply, True),
    Mutant("correct: nn.Module tanh(x)*x", "tanh(x)*x", vec(lo=-2, hi=2), TanhTimes(), True, order=2),
    Mutant("correct: plain function, scalar loss", "sum(log1p(x**2))", vec(lo=-2, hi=2),
           lambda x: torch.log1p(x**2).sum(), True, order=2),
    Mutant("correct: broadcast reduced by sum", "x * y", outer_inputs, outer("sum"), True),
    Mutant("correct: differentiable backward, order 2", "x**3", vec(), cube(True), True, order=2),
    Mutant("correct: torch softmax", "softmax(x)", vec(lo=-2, hi=2), lambda x: torch.softmax(x, 0), True),
    # wrong implementations: every one must be caught
    Mutant("wrong: sign", "exp(x)", vec(), exp_function(lambda g, y, x: -g * y), False),
    Mutant("wrong: factor 2", "exp(x)", vec(), exp_function(lambda g, y, x: 2 * g * y), False),
    Mutant("wrong: missing term", "x*sin(x)", vec(), _x_sin_missing_term, False),
    Mutant("wrong: relative error 1e-6", "exp(x)", vec(), exp_function(lambda g, y, x: g * y * (1 + 1e-6)), False),
    Mutant("wrong: relative error 1e-9", "exp(x)", vec(), exp_function(lambda g, y, x: g * y * (1 + 1e-9)), False),
    Mutant("wrong: error only where x > 1.2", "exp(x)", vec(), exp_function(_part), False),
    Mutant("wrong: ignores grad_output", "exp(x)", vec(), exp_function(lambda g, y, x: y), False),
    Mutant("wrong: applies grad_output twice", "exp(x)", vec(), exp_function(lambda g, y, x: g * g * y), False),
    Mutant("wrong: state kept between calls", "exp(x)", vec(), stateful, False),
    Mutant("wrong: broadcast reduced by mean", "x * y", outer_inputs, outer("mean"), False),
    Mutant("wrong: float32 inside a float64 function", "exp(x)", vec(),
           exp_function(lambda g, y, x: (g.float() * y.float()).double()), False),
    Mutant("wrong: backward not differentiable (order 2)", "x**3", vec(), cube(False), False, order=2),
    Mutant("wrong: float32 backward off by 1e-3", "exp(x)", vec(dtype=torch.float32),
           exp_function(lambda g, y, x: g * y * (1 + 1e-3)), False),
]

"""Example implementations for cases that name an ``impl`` (and for the README's runnable examples).

Each is what a user would write; the bundled cases verify them against the exact derivative.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Exp(torch.autograd.Function):
    """exp with a hand-written backward (saves its output)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        y = torch.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return grad * y


class Softplus(torch.autograd.Function):
    """softplus in the torch.func style: setup_context, a backward and a jvp, so every path applies."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.softplus(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        (x,) = inputs
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * torch.sigmoid(x)

    @staticmethod
    def jvp(ctx: Any, tangent: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return tangent * torch.sigmoid(x)


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """A plain function: mean squared error."""
    return ((pred - target) ** 2).mean()


class LogisticRegression(nn.Module):
    """seed-notes section 3: nn.Linear(2, 1) + nn.Sigmoid, with nn.BCELoss against the labels."""

    def __init__(self, features: int = 2) -> None:
        super().__init__()
        self.linear = nn.Linear(features, 1)
        self.sigmoid = nn.Sigmoid()
        self.loss = nn.BCELoss()

    def forward(self, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # noqa: N803 - X is the data matrix
        return self.loss(self.sigmoid(self.linear(X)).squeeze(-1), y)


class TutorialLogisticRegression(nn.Module):
    """seed-notes section 3 as the tutorial writes it: nn.Linear(2, 1) (named features), then nn.Sigmoid."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Linear(2, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sigmoid(self.features(x))


class TutorialLogisticLoss(nn.Module):
    """The tutorial's training objective: nn.BCELoss of its model over both clouds, class 0 first, then class 1."""

    def __init__(self) -> None:
        super().__init__()
        self.model = TutorialLogisticRegression()
        self.loss = nn.BCELoss()

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        x = torch.cat((x0, x1), 0)
        y = torch.cat((torch.zeros(len(x0), 1), torch.ones(len(x1), 1)), 0).to(x)
        return self.loss(self.model(x), y)


def sgd_step(params: dict[str, torch.Tensor], loss_fn: Any, lr: float) -> torch.Tensor:
    """A correct hand-written training step: forward, backward, p -= lr * p.grad, zero the gradients."""
    loss = loss_fn(params)
    loss.backward()
    with torch.no_grad():
        for p in params.values():
            assert p.grad is not None  # backward filled it
            p.sub_(lr * p.grad)
            p.grad.zero_()
    return loss


def sgd_step_without_zero_grad(params: dict[str, torch.Tensor], loss_fn: Any, lr: float) -> torch.Tensor:
    """The classic bug: the gradients are never zeroed, so each step uses the sum of all gradients so far."""
    loss = loss_fn(params)
    loss.backward()
    with torch.no_grad():
        for p in params.values():
            assert p.grad is not None  # backward filled it
            p.sub_(lr * p.grad)
    return loss


class ComplexSquare(torch.autograd.Function):
    """z**2 for complex z with a hand-written backward under torch's convention: grad_in = conj(dz**2/dz) * grad."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(z)
        return z * z

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (z,) = ctx.saved_tensors
        return grad * (2 * z).conj()


class ComplexSquareNoConj(ComplexSquare):
    """The classic mistake: the holomorphic derivative 2z without the conjugate torch's convention asks for."""

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (z,) = ctx.saved_tensors
        return grad * 2 * z

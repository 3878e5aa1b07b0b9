"""A corpus of custom-gradient code in the styles users write: activations, gradient reversal, straight-through
estimators, label-smoothing, focal and dice losses, fused kernels and the PyTorch docs' own examples; correct ones
and wrong ones of every bug class the helper must catch, each with the cause the report must name.

Written for this project from descriptions of the patterns (never copied): shared by tests/test_user_code.py and
benchmarks/user_code_vs_gradcheck.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

F64 = torch.float64


@dataclass(frozen=True)
class Code:
    """One implementation: what it is, how to call it, its reference, and the cause of its bug (None: correct)."""

    name: str
    impl: Callable[..., torch.Tensor]
    reference: str
    inputs: Callable[[], dict[str, torch.Tensor]]
    bug: str | None = None  # the diagnosis the report must name
    order: int = 1
    options: dict[str, Any] = field(default_factory=dict)  # more keywords of assert_gradients_match
    surrogate: str | None = None  # the gradient_of its backward means, where that is not its forward's derivative


def seeded(*shapes: tuple[int, ...], lo: float = -2.0, hi: float = 2.0, seed: int = 0, grad: tuple[bool, ...] = ()):
    """Inputs x (or x, w, ...) drawn uniformly in [lo, hi], seeded; grad marks which require grad."""
    names = ["x", "w", "b", "t"]

    def make() -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        out = {}
        for k, s in enumerate(shapes):
            t = lo + (hi - lo) * torch.rand(s, generator=g, dtype=F64)
            out[names[k]] = t.requires_grad_(grad[k]) if grad else t
        return out

    return make


# --- activations ---------------------------------------------------------------------------------------------------

class Swish(torch.autograd.Function):
    """x * sigmoid(x), memory-light: saves x only and recomputes sigmoid in backward."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * torch.sigmoid(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(x)
        return g * (s + x * s * (1 - s))


class SwishMissingTerm(Swish):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.sigmoid(x)  # forgets the x * s * (1 - s) term


class TanhGelu(torch.autograd.Function):
    """The tanh approximation of GELU with a hand-derived backward."""

    C = (2 / torch.pi) ** 0.5

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return 0.5 * x * (1 + torch.tanh(TanhGelu.C * (x + 0.044715 * x**3)))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        u = TanhGelu.C * (x + 0.044715 * x**3)
        t = torch.tanh(u)
        du = TanhGelu.C * (1 + 3 * 0.044715 * x**2)
        return g * (0.5 * (1 + t) + 0.5 * x * (1 - t**2) * du)


class LeakyReluSignBug(torch.autograd.Function):
    """leaky_relu whose backward flips the sign of the slope above a cutoff (a copy-paste branch bug)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x > 0, x, 0.1 * x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        slope = torch.where(x > 0, torch.ones_like(x), torch.full_like(x, 0.1))
        slope = torch.where(x > 1.0, -slope, slope)
        return g * slope


class ScaledTanhIgnoresGrad(torch.autograd.Function):
    """1.7159 tanh(2x/3) whose backward returns the local derivative, not grad_output times it."""

    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(2 * x / 3)
        ctx.save_for_backward(y)
        return 1.7159 * y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return 1.7159 * (2 / 3) * (1 - y**2)  # grad_output never used


# --- gradient reversal, straight-through estimators ------------------------------------------------------------------

class GradReverse(torch.autograd.Function):
    """The usual gradient reversal layer: identity forward (a view), -lambda * grad backward."""

    @staticmethod
    def forward(ctx, x, lam):
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return -ctx.lam * g, None


class GradReverseInPlace(GradReverse):
    @staticmethod
    def backward(ctx, g):
        return g.mul_(-ctx.lam), None  # negates the caller's grad_output in place


class BinarySTE(torch.autograd.Function):
    """sign() forward (binarised weights), identity (straight-through) backward."""

    @staticmethod
    def forward(ctx, x):
        return torch.sign(x)

    @staticmethod
    def backward(ctx, g):
        return g.clone()


class SignSTEClamped(torch.autograd.Function):
    """sign() forward, hardtanh-style gradient: passed through where |x| <= 1, zero outside."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sign(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x.abs() <= 1).to(g.dtype)


class BinarySTEZero(BinarySTE):
    @staticmethod
    def backward(ctx, g):
        return torch.zeros_like(g)  # the true derivative of sign, not the surrogate the model trains with


# --- losses ----------------------------------------------------------------------------------------------------------

class SoftmaxCE(torch.autograd.Function):
    """Cross-entropy with soft targets, fused: softmax - targets, scaled by grad_output / batch."""

    @staticmethod
    def forward(ctx, z, t):
        logp = torch.log_softmax(z, dim=1)
        ctx.save_for_backward(logp, t)
        return -(t * logp).sum() / z.shape[0]

    @staticmethod
    def backward(ctx, g):
        logp, t = ctx.saved_tensors
        return g * (logp.exp() - t) / logp.shape[0], None


class SoftmaxCEWrongScale(SoftmaxCE):
    @staticmethod
    def backward(ctx, g):
        logp, t = ctx.saved_tensors
        return g * (logp.exp() - t) / (2 * logp.shape[0]), None  # 0.5x: divides by the batch twice over


class BCELabels(torch.autograd.Function):
    """Binary cross-entropy on probabilities with integer (0/1) labels, mean over the batch."""

    @staticmethod
    def forward(ctx, p, y):
        yf = y.to(p.dtype)
        ctx.save_for_backward(p, yf)
        return -(yf * p.log() + (1 - yf) * (1 - p).log()).mean()

    @staticmethod
    def backward(ctx, g):
        p, yf = ctx.saved_tensors
        return g * (p - yf) / (p * (1 - p)) / p.numel(), None


class FocalPartial(torch.autograd.Function):
    """A fused binary focal loss (gamma = 2) on logits: forward computes the loss and its partial gradient, backward
    scales the saved partial gradient."""

    @staticmethod
    def forward(ctx, z, t):
        p = torch.sigmoid(z)
        pt = torch.where(t > 0.5, p, 1 - p)
        loss = -((1 - pt) ** 2 * torch.log(pt)).sum()
        # d loss / dz, elementwise
        dpt = torch.where(t > 0.5, p * (1 - p), -p * (1 - p))
        partial = (2 * (1 - pt) * torch.log(pt) - (1 - pt) ** 2 / pt) * dpt
        ctx.save_for_backward(partial)
        return loss

    @staticmethod
    def backward(ctx, g):
        (partial,) = ctx.saved_tensors
        return partial * g, None


class FocalPartialInPlace(FocalPartial):
    @staticmethod
    def backward(ctx, g):
        (partial,) = ctx.saved_tensors
        return partial.mul_(g), None  # scales the saved buffer in place: right once, refused the second time


class DiceLoss(torch.autograd.Function):
    """Soft dice loss 1 - 2 sum(p t) / (sum p + sum t) with a hand-written backward."""

    @staticmethod
    def forward(ctx, p, t):
        inter, total = (p * t).sum(), p.sum() + t.sum()
        ctx.save_for_backward(p, t, inter, total)
        return 1 - 2 * inter / total

    @staticmethod
    def backward(ctx, g):
        p, t, inter, total = ctx.saved_tensors
        return g * (-2 * (t * total - inter) / total**2), None


class DiceLossCachedDenominator(DiceLoss):
    """Keeps the squared denominator on ctx (not saved): backward squares it in place each call."""

    @staticmethod
    def forward(ctx, p, t):
        inter, total = (p * t).sum(), p.sum() + t.sum()
        ctx.save_for_backward(p, t, inter)
        ctx.denominator = total.clone()
        return 1 - 2 * inter / total

    @staticmethod
    def backward(ctx, g):
        p, t, inter = ctx.saved_tensors
        total = ctx.denominator.clone()
        ctx.denominator.pow_(2)  # state kept across calls: the second backward sees total**2 as "total"
        return g * (-2 * (t * total - inter) / (total * total)), None


class ScaledMSEDividesGrad(torch.autograd.Function):
    """Mean squared error whose backward divides grad_output by n in place."""

    @staticmethod
    def forward(ctx, x, t):
        ctx.save_for_backward(x, t)
        return ((x - t) ** 2).mean()

    @staticmethod
    def backward(ctx, g):
        x, t = ctx.saved_tensors
        g.div_(x.numel())  # the caller's grad_output is changed
        return 2 * (x - t) * g, None


# --- fused kernels and the PyTorch docs' examples ----------------------------------------------------------------------

class LinearFunction(torch.autograd.Function):
    """The docs' linear layer: y = x W^T + b, backward for all three."""

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x, w)
        return x @ w.T + b

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return g @ w, g.T @ x, g.sum(0)


class LinearTransposedWeightGrad(LinearFunction):
    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return g @ w, x.T @ g, g.sum(0)  # x^T g: the weight gradient transposed (square W: torch cannot tell)


class FusedLinearTanh(torch.autograd.Function):
    """tanh(x W^T + b) fused: saves the activation, backward through both."""

    @staticmethod
    def forward(ctx, x, w, b):
        y = torch.tanh(x @ w.T + b)
        ctx.save_for_backward(x, w, y)
        return y

    @staticmethod
    def backward(ctx, g):
        x, w, y = ctx.saved_tensors
        d = g * (1 - y**2)
        return d @ w, d.T @ x, d.sum(0)


class DocsExp(torch.autograd.Function):
    """The docs' Exp: saves its output."""

    @staticmethod
    def forward(ctx, i):
        result = i.exp()
        ctx.save_for_backward(result)
        return result

    @staticmethod
    def backward(ctx, g):
        (result,) = ctx.saved_tensors
        return g * result


class DocsCube(torch.autograd.Function):
    """The docs' setup_context example with double backward: forward returns x**3 and 3x**2; no vmap rule."""

    @staticmethod
    def forward(x):
        return x**3, 3 * x**2

    @staticmethod
    def setup_context(ctx, inputs, output):
        (x,) = inputs
        _, dx = output
        ctx.save_for_backward(x, dx)

    @staticmethod
    def backward(ctx, g, g_dx):
        x, dx = ctx.saved_tensors
        return g * dx + g_dx * 6 * x


class SavedSquareInPlace(torch.autograd.Function):
    """x**2 that saves 2x and multiplies the saved tensor by grad_output in place."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(2 * x)
        return x**2

    @staticmethod
    def backward(ctx, g):
        (grad,) = ctx.saved_tensors
        grad *= g
        return grad


def _labels() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return {"p": (0.05 + 0.9 * torch.rand(6, generator=g, dtype=F64)).requires_grad_(),
            "y": torch.tensor([0, 1, 1, 0, 1, 0])}


def _logits_targets() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(4)
    z = torch.randn(4, 3, generator=g, dtype=F64).requires_grad_()
    t = torch.softmax(torch.randn(4, 3, generator=g, dtype=F64), dim=1)  # soft targets: constants
    return {"z": z, "t": t}


def _focal() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    return {"z": torch.randn(6, generator=g, dtype=F64).requires_grad_(),
            "t": torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0], dtype=F64)}


def _dice() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(6)
    return {"p": torch.rand(8, generator=g, dtype=F64).requires_grad_(),
            "t": (torch.rand(8, generator=g, dtype=F64) > 0.5).to(F64)}


def _linear() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    return {"x": torch.randn(3, 4, generator=g, dtype=F64), "w": torch.randn(2, 4, generator=g, dtype=F64),
            "b": torch.randn(2, generator=g, dtype=F64)}


def _square_linear() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(9)
    return {"x": torch.randn(2, 3, generator=g, dtype=F64), "w": torch.randn(3, 3, generator=g, dtype=F64),
            "b": torch.randn(3, generator=g, dtype=F64)}


def _mse() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(8)
    return {"x": torch.randn(5, generator=g, dtype=F64).requires_grad_(), "t": torch.randn(5, generator=g, dtype=F64)}


FOCAL = "sum(-(1 - where(t > 0.5, sigmoid(z), 1 - sigmoid(z)))**2 * log(where(t > 0.5, sigmoid(z), 1 - sigmoid(z))))"
DICE = "1 - 2 * sum(p * t) / (sum(p) + sum(t))"
SOFT_CE = "-sum(t * log_softmax(z, axis=1)) / 4"

CORPUS: list[Code] = [
    # correct
    Code("swish", Swish.apply, "x * sigmoid(x)", seeded((10,))),
    Code("tanh gelu", TanhGelu.apply, "0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x**3)))", seeded((10,))),
    Code("gradient reversal (view forward)", lambda x: GradReverse.apply(x, 0.5), "detach(1.5 * x) - 0.5 * x",
         seeded((6,)), surrogate="-0.5 * x"),
    Code("binary STE", BinarySTE.apply, "x + detach(sign(x) - x)", seeded((8,), lo=-3, hi=3), surrogate="x"),
    Code("sign STE clamped", SignSTEClamped.apply, "where(abs(x) <= 1, x, detach(x)) + detach(sign(x) - where(abs(x) "
         "<= 1, x, detach(x)))", seeded((8,), lo=-2, hi=2, seed=1), surrogate="clamp(x, -1, 1)"),
    Code("soft-target cross-entropy", SoftmaxCE.apply, SOFT_CE, _logits_targets),
    Code("BCE with integer labels", BCELabels.apply, "mean(where(y == 1, -log(p), -log(1 - p)))", _labels),
    Code("fused focal loss", FocalPartial.apply, FOCAL, _focal),
    Code("dice loss", DiceLoss.apply, DICE, _dice),
    Code("docs linear layer", LinearFunction.apply, "x @ transpose(w) + b", _linear),
    Code("fused linear + tanh", FusedLinearTanh.apply, "tanh(x @ transpose(w) + b)", _linear),
    Code("docs Exp", DocsExp.apply, "exp(x)", seeded((5,))),
    Code("docs Exp, order 2", DocsExp.apply, "exp(x)", seeded((5,)), order=2),
    Code("docs setup_context cube, order 2", lambda x: DocsCube.apply(x)[0].sum(), "sum(x**3)", seeded((4,)), order=2),
    Code("one-element loss", lambda x, one: (x**2).sum().reshape(1), "sum(x**2) * one",
         lambda: {"x": torch.tensor([0.5, -1.0, 2.0], dtype=F64, requires_grad=True),
                  "one": torch.ones(1, dtype=F64)}),
    Code("identity view", lambda x: x.view(3), "x", lambda: {"x": torch.tensor([0.5, -1.0, 2.0], dtype=F64)}),
    # wrong, each with the cause the report must name
    Code("swish missing a term", SwishMissingTerm.apply, "x * sigmoid(x)", seeded((10,)), bug="partial"),
    Code("leaky relu sign flipped above 1", LeakyReluSignBug.apply, "where(x > 0, x, 0.1 * x)",
         seeded((40,), lo=-2, hi=3), bug="region"),
    Code("scaled tanh ignores grad_output", ScaledTanhIgnoresGrad.apply, "1.7159 * tanh(2 * x / 3)", seeded((6,)),
         bug="ignores_grad_output"),
    Code("gradient reversal negates grad_output in place", lambda x: GradReverseInPlace.apply(x, 1.0),
         "2 * detach(x) - x", seeded((6,)), bug="grad_output_modified", surrogate="-x"),
    Code("binary STE with the true zero derivative", BinarySTEZero.apply, "x + detach(sign(x) - x)",
         seeded((8,), lo=-3, hi=3), bug="zero", surrogate="x"),
    Code("cross-entropy scaled twice", SoftmaxCEWrongScale.apply, SOFT_CE, _logits_targets, bug="factor"),
    Code("focal loss scales its saved buffer in place", FocalPartialInPlace.apply, FOCAL, _focal,
         bug="mutated_state"),
    Code("dice loss squares a cached denominator", DiceLossCachedDenominator.apply, DICE, _dice,
         bug="mutated_state"),
    Code("mse divides grad_output in place", ScaledMSEDividesGrad.apply, "mean((x - t)**2)", _mse,
         bug="grad_output_modified"),
    Code("linear layer with a transposed weight grad", LinearTransposedWeightGrad.apply, "x @ transpose(w) + b",
         _square_linear, bug="transpose"),
    Code("saved 2x scaled in place", SavedSquareInPlace.apply, "x**2", seeded((5,)), bug="mutated_state"),
    Code("saved 2x scaled in place (scalar loss)", lambda x: SavedSquareInPlace.apply(x).sum(), "sum(x**2)",
         seeded((5,)), bug="mutated_state"),
]

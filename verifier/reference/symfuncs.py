"""sympy functions the case language needs beyond sympy's own, and the namespace the op table's meanings receive."""

from __future__ import annotations

import types
from typing import Any

import sympy as sp


class StopGrad(sp.Function):
    """detach(e): the value of e, a constant for the derivative."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.Integer(0)

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real

    def _eval_evalf(self, prec: int) -> sp.Expr:
        return self.args[0]._eval_evalf(prec)

    def _sympystr(self, printer: Any) -> str:
        return f"detach({printer._print(self.args[0])})"


class LogAbsGamma(sp.Function):
    """lgamma(x) = log|Gamma(x)| for real x (sympy's loggamma is complex for negative x)."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.polygamma(0, self.args[0])

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real

    def _sympystr(self, printer: Any) -> str:
        return f"lgamma({printer._print(self.args[0])})"


class Sinc(sp.Function):
    """torch.sinc: sin(pi x) / (pi x), and 1 at x = 0 (the continuous extension)."""

    nargs = 1

    @classmethod
    def eval(cls, x: sp.Expr) -> sp.Expr | None:
        if x.is_zero:
            return sp.Integer(1)
        if x.is_Number:
            return sp.sin(sp.pi * x) / (sp.pi * x)
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return SincDerivative(1, self.args[0])

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real

    def _sympystr(self, printer: Any) -> str:
        return f"sinc({printer._print(self.args[0])})"


class SincDerivative(sp.Function):
    """The n-th derivative of :class:`Sinc`, defined at 0 too (no 0/0 in the formula: see mpeval.sinc_derivative)."""

    nargs = 2

    def fdiff(self, argindex: int = 2) -> sp.Expr:
        if argindex != 2:
            raise sp.ArgumentIndexError(self, argindex)
        n, x = self.args
        return SincDerivative(n + 1, x)

    def _eval_is_real(self) -> bool | None:
        return self.args[1].is_real

    def _sympystr(self, printer: Any) -> str:
        n, x = self.args
        return f"sinc^({printer._print(n)})({printer._print(x)})"


class Ndtr(sp.Function):
    """The standard normal CDF, (1 + erf(x / sqrt 2)) / 2, kept as one function: sympy would rewrite erfc(-x/sqrt 2)
    as 2 - erfc(x/sqrt 2), which cancels catastrophically for large negative x."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        x = self.args[0]
        return sp.exp(-(x**2) / 2) / sp.sqrt(2 * sp.pi)

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real

    def _sympystr(self, printer: Any) -> str:
        return f"ndtr({printer._print(self.args[0])})"


class XLogY(sp.Function):
    """torch.xlogy: x log(y), and 0 wherever x = 0 (torch's convention, also at y = 0)."""

    nargs = 2

    @classmethod
    def eval(cls, x: sp.Expr, y: sp.Expr) -> sp.Expr | None:
        if x.is_zero:
            return sp.Integer(0)
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        x, y = self.args
        if argindex == 1:
            return sp.log(y)
        if argindex == 2:
            return x / y
        raise sp.ArgumentIndexError(self, argindex)

    def _eval_is_real(self) -> bool | None:
        return None

    def _sympystr(self, printer: Any) -> str:
        return f"xlogy({printer._print(self.args[0])}, {printer._print(self.args[1])})"


class Step(sp.Function):
    """A piecewise-constant function (round, floor, ceil, trunc): its derivative is 0 away from the jumps, where
    no derivative exists (straight-through estimators state the surrogate they train with instead)."""

    nargs = 1
    printed = "step"

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.Integer(0)

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real

    def _sympystr(self, printer: Any) -> str:
        return f"{self.printed}({printer._print(self.args[0])})"


class Floor(Step):
    printed = "floor"


class Ceil(Step):
    printed = "ceil"


class Trunc(Step):
    printed = "trunc"


class Round(Step):
    """torch.round: to the nearest integer, halves to even."""

    printed = "round"


class Zeta(sp.Function):
    """The Hurwitz zeta function zeta(s, q) = sum_k (k + q)**-s, differentiable in both arguments (sympy leaves the
    derivative in s unevaluated): ZetaDerivative(n, s, q) is its n-th derivative in s."""

    nargs = 2

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        s_, q = self.args
        if argindex == 1:
            return ZetaDerivative(1, s_, q)
        return -s_ * Zeta(s_ + 1, q)

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real and self.args[1].is_real

    def _sympystr(self, printer: Any) -> str:
        return f"zeta({printer._print(self.args[0])}, {printer._print(self.args[1])})"


class ZetaDerivative(sp.Function):
    """d^n/ds^n zeta(s, q)."""

    nargs = 3

    def fdiff(self, argindex: int = 2) -> sp.Expr:
        n, s_, q = self.args
        if argindex == 2:
            return ZetaDerivative(n + 1, s_, q)
        if argindex == 3:  # d/dq of d^n/ds^n (-s zeta(s + 1, q))
            lower = ZetaDerivative(n - 1, s_ + 1, q) if n > 1 else Zeta(s_ + 1, q)
            return -s_ * ZetaDerivative(n, s_ + 1, q) - n * lower
        raise ValueError("the order of a zeta derivative is a constant")

    def _eval_is_real(self) -> bool | None:
        return self.args[1].is_real and self.args[2].is_real


# The namespace passed as ``S`` to the op table's sympy meanings.
S = types.SimpleNamespace(**{n: getattr(sp, n) for n in dir(sp) if not n.startswith("_")})
S.StopGrad = StopGrad
S.LogAbsGamma = LogAbsGamma
S.Sinc = Sinc
S.Ndtr = Ndtr
S.XLogY = XLogY
S.Floor, S.Ceil, S.Trunc, S.Round = Floor, Ceil, Trunc, Round
S.Zeta = Zeta

NONSMOOTH = (sp.Abs, sp.sign, sp.Max, sp.Min, sp.Heaviside, sp.Piecewise)

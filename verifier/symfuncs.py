"""sympy functions the case language needs beyond sympy's own, and the namespace the op table's meanings receive."""

from __future__ import annotations

import types
from typing import Any

import mpmath
import sympy as sp


class StopGrad(sp.Function):
    """detach(e): the value of e, a constant for the derivative."""

    nargs = 1

    @classmethod
    def eval(cls, arg: sp.Expr) -> sp.Expr | None:
        return arg if arg.is_number else None

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

    @classmethod
    def eval(cls, arg: sp.Expr) -> sp.Expr | None:
        if arg.is_number and arg.is_positive:
            return sp.loggamma(arg)
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.polygamma(0, self.args[0])

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real

    def _sympystr(self, printer: Any) -> str:
        return f"lgamma({printer._print(self.args[0])})"


def _heaviside(x: Any, h0: Any = 0.5) -> Any:
    return mpmath.mpf(0) if x < 0 else (mpmath.mpf(1) if x > 0 else mpmath.mpf(h0))


# What lambdify needs to evaluate our functions with mpmath.
MPMATH_FUNCTIONS: dict[str, Any] = {
    "StopGrad": lambda x: x,
    "LogAbsGamma": lambda x: mpmath.log(abs(mpmath.gamma(x))),
    "Heaviside": _heaviside,
    "DiracDelta": lambda *a: mpmath.mpf(0),
    "sign": lambda x: mpmath.mpf(mpmath.sign(x)),
}

# The namespace passed as ``S`` to the op table's sympy meanings.
S = types.SimpleNamespace(**{n: getattr(sp, n) for n in dir(sp) if not n.startswith("_")})
S.StopGrad = StopGrad
S.LogAbsGamma = LogAbsGamma

NONSMOOTH = (sp.Abs, sp.sign, sp.Max, sp.Min, sp.Heaviside, sp.Piecewise)

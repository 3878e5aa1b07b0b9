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


# The namespace passed as ``S`` to the op table's sympy meanings.
S = types.SimpleNamespace(**{n: getattr(sp, n) for n in dir(sp) if not n.startswith("_")})
S.StopGrad = StopGrad
S.LogAbsGamma = LogAbsGamma

NONSMOOTH = (sp.Abs, sp.sign, sp.Max, sp.Min, sp.Heaviside, sp.Piecewise)
